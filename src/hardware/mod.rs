//! Hardware: the GPU specification table that drives the memory model, the simulator and
//! the quantization gates; detection of the GPUs actually present (NVML, then `nvidia-smi`,
//! then `rocm-smi`), filtered by the `*_VISIBLE_DEVICES` variables; and the GPUs' used
//! memory, which forge waits on before each engine boot.

pub mod command;
pub mod detect;
pub mod gpus;
pub mod host;
pub mod memory;
pub mod nvml;
pub mod rocm;
pub mod smi;
pub mod visible;

use std::fmt;

use serde::{Deserialize, Serialize, Serializer};

pub use detect::{DetectOptions, detect};
pub use gpus::{GpuSpec, Vendor};
pub use host::HostInfo;
pub use memory::{MemoryError, MemoryProbe, WaitOutcome, wait_for_idle_memory};

/// Where a recipe runs: the `hardware` block of a recipe (vendor, GPU type, count, memory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Hardware {
    /// `nvidia`, `amd` or `cpu`.
    pub vendor: String,
    /// GPU type from the spec table (`H100`, `A100-80GB`, ...) or `cpu`.
    pub gpu_type: String,
    /// GPUs used.
    pub count: u32,
    /// Memory per GPU, GB (GiB as the driver reports it).
    pub memory_gb_per_gpu: f64,
}

/// What forge runs the engine on (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    /// NVIDIA GPUs.
    Cuda,
    /// AMD GPUs.
    Rocm,
    /// No GPU.
    Cpu,
}

impl Device {
    /// The `--device` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Device::Cuda => "cuda",
            Device::Rocm => "rocm",
            Device::Cpu => "cpu",
        }
    }
}

impl std::str::FromStr for Device {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "cuda" => Ok(Device::Cuda),
            "rocm" => Ok(Device::Rocm),
            "cpu" => Ok(Device::Cpu),
            other => Err(format!(
                "--device must be cuda, rocm or cpu (got `{other}`)"
            )),
        }
    }
}

/// Where the GPU list came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// NVML (the NVIDIA management library, loaded at run time).
    Nvml,
    /// `nvidia-smi --query-gpu`.
    NvidiaSmi,
    /// `rocm-smi --showproductname --json`.
    RocmSmi,
    /// Nothing was detected (or nothing was asked: `--device cpu`).
    None,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Nvml => "NVML",
            Source::NvidiaSmi => "nvidia-smi",
            Source::RocmSmi => "rocm-smi",
            Source::None => "none",
        })
    }
}

/// One GPU as the driver reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectedGpu {
    /// The driver's index (nvidia-smi/NVML index, rocm-smi card number), not the position
    /// after `*_VISIBLE_DEVICES`.
    pub index: u32,
    /// Vendor.
    pub vendor: Vendor,
    /// Product name as reported.
    pub name: String,
    /// Total memory in MiB; `None` where the driver does not say (unified memory parts,
    /// rocm-smi product queries).
    pub memory_mib: Option<u64>,
    /// CUDA compute capability (major, minor), NVIDIA only.
    pub compute_capability: Option<(u32, u32)>,
    /// gfx target (`gfx942`), AMD only.
    pub gfx: Option<String>,
    /// Driver version.
    pub driver_version: Option<String>,
    /// UUID (`GPU-...`), when known.
    pub uuid: Option<String>,
    /// The spec-table entry it matched.
    #[serde(serialize_with = "spec_name")]
    pub spec: Option<&'static GpuSpec>,
}

fn spec_name<S: Serializer>(spec: &Option<&'static GpuSpec>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_some(&spec.map(|g| g.name))
}

impl DetectedGpu {
    /// `NVIDIA H100 80GB HBM3 (CC 9.0, 81559 MiB)`.
    pub fn describe(&self) -> String {
        let mut facts = Vec::new();
        if let Some((a, b)) = self.compute_capability {
            facts.push(format!("CC {a}.{b}"));
        }
        if let Some(g) = &self.gfx {
            facts.push(g.clone());
        }
        if let Some(m) = self.memory_mib {
            facts.push(format!("{m} MiB"));
        }
        if facts.is_empty() {
            self.name.clone()
        } else {
            format!("{} ({})", self.name, facts.join(", "))
        }
    }

    /// The facts that must agree for two GPUs to count as identical.
    fn identity(&self) -> Identity<'_> {
        (
            &self.name,
            self.memory_mib,
            self.compute_capability,
            self.gfx.as_deref(),
        )
    }
}

type Identity<'a> = (&'a str, Option<u64>, Option<(u32, u32)>, Option<&'a str>);

/// Whether NVML was used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "status", content = "reason")]
pub enum NvmlStatus {
    /// NVML answered.
    Used,
    /// Switched off by configuration.
    Disabled,
    /// It could not be loaded or initialised.
    Unavailable(String),
    /// Not tried (`--device rocm` or `cpu`).
    NotTried,
}

/// A source that was tried and gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceFailure {
    /// The source.
    pub source: Source,
    /// Why, in one line.
    pub reason: String,
}

/// Everything detection found out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HardwareReport {
    /// The device asked for.
    pub device: Device,
    /// Visible GPUs in device order (after `*_VISIBLE_DEVICES`); the first is the one a
    /// recipe is tuned for.
    pub gpus: Vec<DetectedGpu>,
    /// GPUs the source reported before visibility filtering.
    pub detected: usize,
    /// Where the list came from.
    pub source: Source,
    /// True when the visible GPUs are not all the same model.
    pub mixed: bool,
    /// NVML's status.
    pub nvml: NvmlStatus,
    /// Things the user should know (mixed GPUs, ignored visibility entries, old driver).
    pub warnings: Vec<String>,
    /// Sources that were tried and failed, in order.
    pub failures: Vec<SourceFailure>,
    /// CPUs and memory (`--device cpu`).
    pub host: Option<HostInfo>,
}

impl HardwareReport {
    /// An empty report for `device`.
    pub fn new(device: Device) -> Self {
        HardwareReport {
            device,
            gpus: Vec::new(),
            detected: 0,
            source: Source::None,
            mixed: false,
            nvml: NvmlStatus::NotTried,
            warnings: Vec::new(),
            failures: Vec::new(),
            host: None,
        }
    }

    /// The GPU a recipe is tuned for: the first visible one.
    pub fn recipe_gpu(&self) -> Option<&DetectedGpu> {
        self.gpus.first()
    }

    /// Spec-table name of the recipe GPU (what `--sim-gpu` accepts).
    pub fn gpu_type(&self) -> Option<&'static str> {
        self.recipe_gpu().and_then(|g| g.spec).map(|g| g.name)
    }

    /// The recipe's `hardware` block for this machine: vendor, spec-table GPU type (or the
    /// reported name when the table lacks it), visible GPU count, memory per GPU in GiB
    /// (reported, else the table's).
    pub fn recipe_hardware(&self) -> Hardware {
        let Some(g) = self.recipe_gpu() else {
            return Hardware {
                vendor: "cpu".into(),
                gpu_type: "cpu".into(),
                count: 0,
                memory_gb_per_gpu: 0.0,
            };
        };
        let mib = g.memory_mib.or(g.spec.map(|s| s.memory_mib)).unwrap_or(0);
        Hardware {
            vendor: match g.vendor {
                Vendor::Nvidia => "nvidia".into(),
                Vendor::Amd => "amd".into(),
            },
            gpu_type: g.spec.map_or(g.name.clone(), |s| s.name.to_string()),
            count: u32::try_from(self.gpus.len()).unwrap_or(u32::MAX),
            memory_gb_per_gpu: mib as f64 / 1024.0,
        }
    }
}

/// True when the GPUs differ in name, memory, compute capability or gfx target.
pub fn is_mixed(gpus: &[DetectedGpu]) -> bool {
    gpus.windows(2).any(|w| w[0].identity() != w[1].identity())
}

/// `2× NVIDIA TITAN V (CC 7.0), 1× ...`: the visible GPUs grouped by model, in order.
pub fn group_summary(gpus: &[DetectedGpu]) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for g in gpus {
        let d = g.describe();
        match groups.iter_mut().find(|(k, _)| *k == d) {
            Some((_, n)) => *n += 1,
            None => groups.push((d, 1)),
        }
    }
    groups
        .iter()
        .map(|(d, n)| format!("{n}× {d}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu(name: &str, mib: Option<u64>, spec: Option<&'static GpuSpec>) -> DetectedGpu {
        DetectedGpu {
            index: 0,
            vendor: Vendor::Nvidia,
            name: name.into(),
            memory_mib: mib,
            compute_capability: None,
            gfx: None,
            driver_version: None,
            uuid: None,
            spec,
        }
    }

    #[test]
    fn recipe_hardware_from_a_report() {
        let mut r = HardwareReport::new(Device::Cuda);
        assert_eq!(r.recipe_hardware().vendor, "cpu");
        let h100 = gpus::lookup("H100");
        r.gpus = vec![gpu("NVIDIA H100 80GB HBM3", Some(81559), h100); 2];
        let h = r.recipe_hardware();
        assert_eq!(
            (h.vendor.as_str(), h.gpu_type.as_str(), h.count),
            ("nvidia", "H100", 2)
        );
        assert!((h.memory_gb_per_gpu - 79.647).abs() < 0.001);
        r.gpus = vec![gpu("NVIDIA GB10", None, None)];
        let h = r.recipe_hardware();
        assert_eq!(
            (h.gpu_type.as_str(), h.memory_gb_per_gpu),
            ("NVIDIA GB10", 0.0)
        );
    }

    #[test]
    fn describe_and_group() {
        let a = gpu("A", Some(10), None);
        let mut b = gpu("B", None, None);
        b.compute_capability = Some((8, 9));
        assert_eq!(a.describe(), "A (10 MiB)");
        assert_eq!(b.describe(), "B (CC 8.9)");
        assert_eq!(gpu("C", None, None).describe(), "C");
        assert_eq!(
            group_summary(&[a.clone(), a.clone(), b.clone()]),
            "2× A (10 MiB), 1× B (CC 8.9)"
        );
        assert!(is_mixed(&[a.clone(), b]));
        assert!(!is_mixed(&[a.clone(), a]));
    }

    #[test]
    fn device_names() {
        assert_eq!("rocm".parse::<Device>(), Ok(Device::Rocm));
        assert!("tpu".parse::<Device>().is_err());
    }
}
