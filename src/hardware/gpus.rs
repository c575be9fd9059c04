//! GPU specifications (dense, per GPU) from vendor datasheets, as listed in forge's
//! serving-engines notes. Memory is what `nvidia-smi` reports as `memory.total` (MiB).
//! Detection matches on compute capability and memory, never on marketing names alone.

use serde::Serialize;

/// GPU vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    /// NVIDIA (CUDA).
    Nvidia,
    /// AMD (ROCm).
    Amd,
}

/// One GPU model's performance-relevant specification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GpuSpec {
    /// Canonical name (`H100`, `A100-80GB`, ...), accepted by `--sim-gpu`.
    pub name: &'static str,
    /// Other spellings accepted on the command line and in `nvidia-smi` names.
    pub aliases: &'static [&'static str],
    /// Vendor.
    pub vendor: Vendor,
    /// CUDA compute capability as (major, minor); AMD parts carry their gfx id instead.
    pub compute_capability: Option<(u32, u32)>,
    /// AMD architecture id (`gfx942`), if AMD.
    pub gfx: Option<&'static str>,
    /// Total memory in MiB as the driver reports it.
    pub memory_mib: u64,
    /// Peak memory bandwidth in TB/s.
    pub bandwidth_tbs: f64,
    /// Dense BF16 (or FP16 where BF16 is absent) tensor throughput in TFLOP/s.
    pub bf16_tflops: f64,
    /// Dense FP8 tensor throughput in TFLOP/s, where the part has native FP8.
    pub fp8_tflops: Option<f64>,
    /// Per-direction GPU-to-GPU link bandwidth in GB/s (NVLink / Infinity Fabric / PCIe).
    pub link_gbs: f64,
}

impl GpuSpec {
    /// Total memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }

    /// Total memory in GiB.
    pub fn memory_gib(&self) -> f64 {
        self.memory_mib as f64 / 1024.0
    }

    /// Compute capability as vLLM's integer (`90` for 9.0), 0 for non-CUDA parts.
    pub fn capability_int(&self) -> u32 {
        self.compute_capability.map_or(0, |(a, b)| a * 10 + b)
    }

    /// True for parts where bfloat16 is supported (SM >= 8.0, and all AMD CDNA2+).
    pub fn supports_bf16(&self) -> bool {
        match self.vendor {
            Vendor::Nvidia => self.capability_int() >= 80,
            Vendor::Amd => true,
        }
    }

    /// True for A100 parts (vLLM's default batch sizes special-case them).
    pub fn is_a100(&self) -> bool {
        self.name.starts_with("A100")
    }
}

/// The table. Figures from serving-engines.md (vendor datasheets).
pub const GPUS: &[GpuSpec] = &[
    gpu(
        "T4",
        &["Tesla T4"],
        Vendor::Nvidia,
        Some((7, 5)),
        None,
        15360,
        0.32,
        65.0,
        None,
        32.0,
    ),
    gpu(
        "A10G",
        &["NVIDIA A10G"],
        Vendor::Nvidia,
        Some((8, 6)),
        None,
        23028,
        0.60,
        70.0,
        None,
        32.0,
    ),
    gpu(
        "L4",
        &["NVIDIA L4"],
        Vendor::Nvidia,
        Some((8, 9)),
        None,
        23034,
        0.30,
        121.0,
        Some(242.0),
        32.0,
    ),
    gpu(
        "L40S",
        &["NVIDIA L40S"],
        Vendor::Nvidia,
        Some((8, 9)),
        None,
        46068,
        0.864,
        362.0,
        Some(733.0),
        32.0,
    ),
    gpu(
        "A100-40GB",
        &[
            "A100",
            "A100-SXM4-40GB",
            "A100-PCIE-40GB",
            "NVIDIA A100-SXM4-40GB",
        ],
        Vendor::Nvidia,
        Some((8, 0)),
        None,
        40960,
        1.555,
        312.0,
        None,
        300.0,
    ),
    gpu(
        "A100-80GB",
        &[
            "A100-SXM4-80GB",
            "A100-PCIE-80GB",
            "NVIDIA A100-SXM4-80GB",
            "NVIDIA A100 80GB PCIe",
        ],
        Vendor::Nvidia,
        Some((8, 0)),
        None,
        81920,
        2.04,
        312.0,
        None,
        300.0,
    ),
    gpu(
        "H100",
        &["H100-SXM", "H100-SXM5-80GB", "NVIDIA H100 80GB HBM3"],
        Vendor::Nvidia,
        Some((9, 0)),
        None,
        81559,
        3.35,
        989.0,
        Some(1979.0),
        450.0,
    ),
    gpu(
        "H100-PCIe",
        &["NVIDIA H100 PCIe"],
        Vendor::Nvidia,
        Some((9, 0)),
        None,
        81559,
        2.0,
        756.0,
        Some(1513.0),
        64.0,
    ),
    gpu(
        "H200",
        &["NVIDIA H200", "H200-SXM"],
        Vendor::Nvidia,
        Some((9, 0)),
        None,
        143771,
        4.8,
        989.0,
        Some(1979.0),
        450.0,
    ),
    gpu(
        "B200",
        &["NVIDIA B200"],
        Vendor::Nvidia,
        Some((10, 0)),
        None,
        183359,
        8.0,
        2250.0,
        Some(4500.0),
        900.0,
    ),
    // B200 in a GB200 superchip: NVIDIA's GB200 NVL72 page (13.4 TB HBM3E and 576 TB/s
    // over 72 GPUs; dense BF16/FP8 half of its sparse 360/720 PFLOPS per rack);
    // memory.total as nvidia-smi reports it on GB200 nodes.
    gpu(
        "GB200",
        &["NVIDIA GB200"],
        Vendor::Nvidia,
        Some((10, 0)),
        None,
        189471,
        8.0,
        2500.0,
        Some(5000.0),
        900.0,
    ),
    // HGX B300 (Blackwell Ultra, compute capability 10.3 per NVIDIA's CUDA GPU list): the
    // Blackwell Ultra datasheet's HGX column (7.7 TB/s; 36/72 PFLOPS sparse BF16/FP8 per 8
    // GPUs, dense half); memory.total of "NVIDIA B300 SXM6 AC" in nvidia-smi.
    gpu(
        "B300",
        &["NVIDIA B300", "NVIDIA B300 SXM6 AC"],
        Vendor::Nvidia,
        Some((10, 3)),
        None,
        275040,
        7.7,
        2250.0,
        Some(4500.0),
        900.0,
    ),
    gpu(
        "MI250X",
        &["AMD Instinct MI250X"],
        Vendor::Amd,
        None,
        Some("gfx90a"),
        65536,
        1.64,
        191.5,
        None,
        100.0,
    ),
    gpu(
        "MI300X",
        &["AMD Instinct MI300X"],
        Vendor::Amd,
        None,
        Some("gfx942"),
        196608,
        5.3,
        1307.0,
        Some(2615.0),
        448.0,
    ),
    // CDNA3 like the MI300X (gfx942, ROCm's GPU specs table: 256 GiB): 6.0 TB/s, dense
    // BF16/FP8 per AMD's footnote MI325-002; 7 Infinity Fabric links of 64 GB/s.
    gpu(
        "MI325X",
        &["AMD Instinct MI325X"],
        Vendor::Amd,
        None,
        Some("gfx942"),
        262144,
        6.0,
        1307.4,
        Some(2614.9),
        448.0,
    ),
    // CDNA4 (gfx950): AMD's CDNA4 white paper — 288 GB HBM3E at 8.0 TB/s, dense BF16/FP8
    // from its per-clock rates at 256 CUs and 2.4 GHz, 7 links of 76.8 GB/s each way;
    // memory.total as amd-smi reports it.
    gpu(
        "MI355X",
        &["AMD Instinct MI355X"],
        Vendor::Amd,
        None,
        Some("gfx950"),
        294896,
        8.0,
        2516.6,
        Some(5033.2),
        537.6,
    ),
];

#[allow(clippy::too_many_arguments)]
const fn gpu(
    name: &'static str,
    aliases: &'static [&'static str],
    vendor: Vendor,
    compute_capability: Option<(u32, u32)>,
    gfx: Option<&'static str>,
    memory_mib: u64,
    bandwidth_tbs: f64,
    bf16_tflops: f64,
    fp8_tflops: Option<f64>,
    link_gbs: f64,
) -> GpuSpec {
    GpuSpec {
        name,
        aliases,
        vendor,
        compute_capability,
        gfx,
        memory_mib,
        bandwidth_tbs,
        bf16_tflops,
        fp8_tflops,
        link_gbs,
    }
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase()
}

/// Find a GPU by canonical name or alias, ignoring case and punctuation
/// (`h100`, `A100-80GB`, `a100_80gb` all work).
pub fn lookup(name: &str) -> Option<&'static GpuSpec> {
    let want = norm(name);
    GPUS.iter()
        .find(|g| norm(g.name) == want || g.aliases.iter().any(|a| norm(a) == want))
}

/// Match a detected NVIDIA GPU by compute capability and reported memory (MiB), within 3 %
/// on memory so driver-reserved differences do not matter. Ties go to the first table row.
pub fn match_nvidia(cc: (u32, u32), memory_mib: u64, name_hint: &str) -> Option<&'static GpuSpec> {
    let close = |g: &&GpuSpec| {
        g.compute_capability == Some(cc)
            && (g.memory_mib as f64 - memory_mib as f64).abs() <= 0.03 * g.memory_mib as f64
    };
    let candidates: Vec<&GpuSpec> = GPUS.iter().filter(close).collect();
    if candidates.len() > 1 {
        // Same capability and memory (H100 SXM vs PCIe): the name decides.
        let hint = norm(name_hint);
        if let Some(g) = candidates.iter().find(|g| {
            let n = norm(g.name);
            hint.contains(&n) && (n != "h100" || !hint.contains("pcie"))
        }) {
            return Some(g);
        }
    }
    candidates.first().copied()
}

/// Match an NVIDIA GPU from whatever the driver reported. With capability and memory this
/// is [`match_nvidia`]; without them (old drivers lack `compute_cap`, unified-memory parts
/// print `[N/A]` for memory) the name must be a known spelling, and any reported capability
/// or memory must still agree with the table.
pub fn match_nvidia_detected(
    cc: Option<(u32, u32)>,
    memory_mib: Option<u64>,
    name: &str,
) -> Option<&'static GpuSpec> {
    if let (Some(cc), Some(mib)) = (cc, memory_mib) {
        return match_nvidia(cc, mib, name);
    }
    let g = lookup(name).filter(|g| g.vendor == Vendor::Nvidia)?;
    let cc_ok = cc.is_none_or(|c| g.compute_capability == Some(c));
    let mem_ok = memory_mib
        .is_none_or(|m| (g.memory_mib as f64 - m as f64).abs() <= 0.03 * g.memory_mib as f64);
    (cc_ok && mem_ok).then_some(g)
}

/// PCI device ids of AMD parts in the table (`rocm-smi` `Device ID`, or `Card Model` in
/// ROCm 6.1+), with a note where one id covers more than one product.
const AMD_DEVICE_IDS: &[(&str, &str, Option<&str>)] = &[
    ("0x74a1", "MI300X", None),
    // vLLM's ROCm device table (`_ROCM_DEVICE_ID_NAME_MAP`): 0x74a5 is the MI325X.
    ("0x74a5", "MI325X", None),
    ("0x7408", "MI250X", None),
    (
        "0x740c",
        "MI250X",
        Some("device 0x740c is an MI250X or an MI250; assuming MI250X"),
    ),
];

/// How an AMD GPU matched the table, and anything the user should know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct AmdMatch {
    /// The matched part.
    pub spec: Option<&'static GpuSpec>,
    /// Caveat about the match (ambiguous id, architecture-only evidence).
    pub note: Option<String>,
}

/// Match an AMD GPU by product name, then by PCI device id. The gfx target alone does not
/// decide: gfx942 is MI300X, MI300A and MI325X alike, gfx90a is MI250X, MI250 and MI210.
pub fn match_amd(name: &str, device_id: Option<&str>, gfx: Option<&str>) -> AmdMatch {
    let n = norm(name);
    for g in GPUS.iter().filter(|g| g.vendor == Vendor::Amd) {
        if n.contains(&norm(g.name)) {
            return AmdMatch {
                spec: Some(g),
                note: None,
            };
        }
    }
    let id = device_id.map(str::to_ascii_lowercase);
    if let Some((_, part, note)) = AMD_DEVICE_IDS
        .iter()
        .find(|(d, _, _)| Some(*d) == id.as_deref())
    {
        return AmdMatch {
            spec: lookup(part),
            note: note.map(str::to_string),
        };
    }
    let note = gfx
        .filter(|x| GPUS.iter().any(|g| g.gfx == Some(*x)))
        .map(|x| format!("{x} alone does not identify the product (several parts share it)"));
    AmdMatch { spec: None, note }
}

/// Names of every GPU in the table (for help and error messages).
pub fn names() -> Vec<&'static str> {
    GPUS.iter().map(|g| g.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_ignores_case_and_punctuation() {
        assert_eq!(lookup("h100").unwrap().name, "H100");
        assert_eq!(lookup("a100_80gb").unwrap().name, "A100-80GB");
        assert_eq!(lookup("NVIDIA L4").unwrap().name, "L4");
        assert!(lookup("GTX 1080").is_none());
    }

    #[test]
    fn match_by_capability_and_memory() {
        assert_eq!(
            match_nvidia((9, 0), 81559, "NVIDIA H100 80GB HBM3")
                .unwrap()
                .name,
            "H100"
        );
        assert_eq!(
            match_nvidia((9, 0), 81559, "NVIDIA H100 PCIe")
                .unwrap()
                .name,
            "H100-PCIe"
        );
        assert_eq!(
            match_nvidia((8, 0), 81920, "whatever").unwrap().name,
            "A100-80GB"
        );
        assert_eq!(match_nvidia((9, 0), 143771, "").unwrap().name, "H200");
        assert!(match_nvidia((8, 0), 24000, "").is_none());
    }

    #[test]
    fn partial_nvidia_information_needs_a_known_name_that_agrees() {
        let m = |cc, mib, name| match_nvidia_detected(cc, mib, name).map(|g| g.name);
        assert_eq!(m(None, Some(143771), "NVIDIA H200"), Some("H200"));
        assert_eq!(m(None, Some(81559), "NVIDIA H100 PCIe"), Some("H100-PCIe"));
        assert_eq!(m(Some((9, 0)), None, "NVIDIA H100 80GB HBM3"), Some("H100"));
        // A known name whose memory disagrees is not that part.
        assert_eq!(m(None, Some(40960), "NVIDIA H200"), None);
        assert_eq!(m(Some((8, 0)), None, "NVIDIA H200"), None);
        assert_eq!(m(None, None, "NVIDIA GB10"), None);
        // Full information goes through match_nvidia (name is only a tie-breaker).
        assert_eq!(m(Some((8, 0)), Some(81920), "whatever"), Some("A100-80GB"));
    }

    #[test]
    fn amd_by_name_then_device_id_never_by_gfx_alone() {
        let m = match_amd("AMD Instinct MI300X OAM", None, Some("gfx942"));
        assert_eq!((m.spec.map(|g| g.name), m.note), (Some("MI300X"), None));
        let m = match_amd(
            "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",
            Some("0x7408"),
            None,
        );
        assert_eq!(m.spec.map(|g| g.name), Some("MI250X"));
        let m = match_amd("AMD INSTINCT MI250 (MCM) OAM AC MBA", Some("0x740C"), None);
        assert_eq!(m.spec.map(|g| g.name), Some("MI250X"));
        assert!(m.note.unwrap().contains("MI250"));
        let m = match_amd("AMD Instinct MI300A", Some("0x74a0"), Some("gfx942"));
        assert_eq!(m.spec, None);
        assert!(m.note.unwrap().starts_with("gfx942 alone"));
        let m = match_amd("Navi 23", Some("0x73ff"), Some("gfx1032"));
        assert_eq!(
            m,
            AmdMatch {
                spec: None,
                note: None
            }
        );
    }

    #[test]
    fn blackwell_and_cdna_parts_of_2026() {
        // nvidia-smi on an HGX B300 and a GB200 node: capability and memory.total.
        assert_eq!(
            match_nvidia((10, 3), 275040, "NVIDIA B300 SXM6 AC")
                .unwrap()
                .name,
            "B300"
        );
        assert_eq!(
            match_nvidia((10, 0), 189471, "NVIDIA GB200").unwrap().name,
            "GB200"
        );
        // A B200 stays a B200: 3.3 % less memory than a GB200's is outside the tolerance.
        assert_eq!(
            match_nvidia((10, 0), 183359, "NVIDIA B200").unwrap().name,
            "B200"
        );
        let m = match_amd("AMD Instinct MI355X", None, Some("gfx950"));
        assert_eq!(m.spec.map(|g| g.name), Some("MI355X"));
        let m = match_amd("AMD Radeon Graphics", Some("0x74A5"), Some("gfx942"));
        assert_eq!(m.spec.map(|g| g.name), Some("MI325X"));
        for name in ["B300", "GB200", "MI325X", "MI355X"] {
            let g = lookup(name).unwrap();
            assert!(g.fp8_tflops.unwrap() >= 2.0 * g.bf16_tflops - 1.0, "{name}");
        }
    }

    #[test]
    fn gates() {
        assert!(!lookup("T4").unwrap().supports_bf16());
        assert!(lookup("A100").unwrap().is_a100());
        assert_eq!(lookup("H100").unwrap().capability_int(), 90);
    }
}
