//! The quantization hardware gates: which precision scheme each engine runs on which GPU —
//! natively, through a slower fallback kernel, or not at all — as one table with the source
//! of every row. Layer 2 reads it three ways: a pre-quantized checkpoint the GPU cannot run
//! as made is refused before it becomes a candidate (`forge tune` says why), a knob value
//! the GPU cannot run leaves the search space, and the LLM agent's prompt lists the rows
//! for the run's GPU. `forge playbook gates` prints it.

use crate::hardware::{GpuSpec, Vendor};
use crate::recipe::EngineKind;

/// A precision scheme, as a checkpoint or a flag makes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// 4-bit integer weights, 16-bit activations (AWQ, GPTQ, compressed-tensors W4A16).
    Int4W4A16,
    /// 8-bit integer weights, 16-bit activations (GPTQ 8-bit).
    Int8W8A16,
    /// 8-bit integer weights and activations (SmoothQuant, compressed-tensors W8A8).
    Int8W8A8,
    /// FP8 weights and activations (FP8, FP8-dynamic, ModelOpt FP8, `--quantization fp8`).
    Fp8W8A8,
    /// NVFP4 weights and activations (ModelOpt / compressed-tensors NVFP4).
    Nvfp4,
    /// MXFP4 weights (gpt-oss).
    Mxfp4,
    /// An FP8 KV cache.
    Fp8Kv,
}

impl Scheme {
    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Scheme::Int4W4A16 => "INT4 W4A16 (AWQ/GPTQ)",
            Scheme::Int8W8A16 => "INT8 W8A16",
            Scheme::Int8W8A8 => "INT8 W8A8",
            Scheme::Fp8W8A8 => "FP8 W8A8",
            Scheme::Nvfp4 => "NVFP4 W4A4",
            Scheme::Mxfp4 => "MXFP4",
            Scheme::Fp8Kv => "FP8 KV cache",
        }
    }

    /// The scheme of a checkpoint's `quantization_config` (method, weight bits, activation
    /// bits, float weights); `None` for a method the table does not cover.
    pub fn of_checkpoint(method: &str, bits: u32, act: Option<u32>, float: bool) -> Option<Self> {
        Some(match (method, bits, act, float) {
            ("mxfp4", ..) => Scheme::Mxfp4,
            (_, 4, Some(4), _) => Scheme::Nvfp4,
            (_, 4, _, true) if method.contains("fp4") => Scheme::Nvfp4,
            (_, 4, None, false) => Scheme::Int4W4A16,
            (_, 8, Some(8), true) => Scheme::Fp8W8A8,
            (_, 8, Some(8), false) => Scheme::Int8W8A8,
            (_, 8, None, true) => Scheme::Fp8W8A8,
            (_, 8, None, false) => Scheme::Int8W8A16,
            _ => return None,
        })
    }
}

/// One row: where `scheme` runs on `engine`.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The engine.
    pub engine: EngineKind,
    /// The scheme.
    pub scheme: Scheme,
    /// NVIDIA: the lowest compute capability (×10) that runs it natively.
    pub native_from: Option<u32>,
    /// NVIDIA: below `native_from`, the lowest capability that still loads it, and how.
    pub fallback: Option<(u32, &'static str)>,
    /// AMD: the architectures that run it.
    pub amd: &'static [&'static str],
    /// Where the row comes from.
    pub source: &'static str,
}

const CDNA3_4: &[&str] = &["gfx942", "gfx950"];
const FP8_MARLIN: &str = "weight-only FP8 (W8A16) through the FP8 Marlin kernel: half the \
                          weight bytes, no FP8 compute (what `--quantization fp8` gives)";
const FP4_MARLIN: &str = "weight-only FP4 (W4A16) through Marlin: no FP4 compute, slower than \
                          the INT4 checkpoints' Marlin kernels on the same GPU";

const fn row(
    engine: EngineKind,
    scheme: Scheme,
    native_from: Option<u32>,
    fallback: Option<(u32, &'static str)>,
    amd: &'static [&'static str],
    source: &'static str,
) -> Row {
    Row {
        engine,
        scheme,
        native_from,
        fallback,
        amd,
        source,
    }
}

use EngineKind::{Sglang, Trtllm, Vllm};
use Scheme::*;

/// The table.
pub const TABLE: &[Row] = &[
    row(
        Vllm,
        Int4W4A16,
        Some(75),
        None,
        &[],
        "vLLM docs, Quantization → Supported Hardware (AWQ/GPTQ from Turing, not on AMD); \
         Marlin on SM 7.5 since vllm-project/vllm#29901 (awq_marlin.py, gptq_marlin.py \
         get_min_capability; 80 before it)",
    ),
    row(
        Vllm,
        Int8W8A16,
        Some(75),
        None,
        &[],
        "vLLM docs, Supported Hardware (GPTQ); gptq_marlin.py get_min_capability",
    ),
    row(
        Vllm,
        Int8W8A8,
        Some(75),
        None,
        &[],
        "vLLM docs, Supported Hardware (INT8 W8A8 from Turing, not on AMD)",
    ),
    row(
        Vllm,
        Fp8W8A8,
        Some(89),
        Some((75, FP8_MARLIN)),
        CDNA3_4,
        "vLLM docs, FP8 W8A8 (\"FP8 computation is supported on compute capability >= 8.9 \
         … will run on >= 7.5 as weight-only W8A16, utilizing FP8 Marlin\"); \
         vllm-project/vllm#5975; MI300-class FP8 in the Supported Hardware table",
    ),
    row(
        Vllm,
        Nvfp4,
        Some(100),
        Some((80, FP4_MARLIN)),
        &[],
        "vLLM marlin_utils_fp4.py (\"Your GPU does not have native support for FP4 \
         computation … Weight-only FP4 compression will be used leveraging the Marlin \
         kernel\", quoted in vllm-project/vllm#31085); NVFP4 needs compute capability 10.0 \
         (Hugging Face Transformers docs, NVFP4)",
    ),
    row(
        Vllm,
        Mxfp4,
        Some(90),
        Some((80, "weight-only MXFP4 through the Marlin kernel")),
        CDNA3_4,
        "vLLM mxfp4.py backend selection (FlashInfer on SM 10.x, Triton kernels on SM 9.0 \
         to 11 — gpt-oss's intended Hopper path — Marlin otherwise), as quoted in \
         vllm-project/vllm#31085",
    ),
    row(
        Vllm,
        Fp8Kv,
        Some(80),
        None,
        CDNA3_4,
        "vLLM docs, Quantized KV Cache (FP8 E4M3 on CUDA and ROCm MI300); forge's simulator \
         gate (sim/quant.rs): an FP8-KV attention backend exists from SM 8.0",
    ),
    row(
        Sglang,
        Int4W4A16,
        Some(80),
        None,
        &[],
        "SGLang runs AWQ/GPTQ through vLLM's and sgl-kernel's Marlin kernels (SM 8.0+)",
    ),
    row(
        Sglang,
        Int8W8A8,
        Some(80),
        None,
        &[],
        "sgl-project/sglang#2474 and #2881 (W8A8 INT8 on A100)",
    ),
    row(
        Sglang,
        Fp8W8A8,
        Some(89),
        None,
        CDNA3_4,
        "sgl-project/sglang#7715 and #12887: FP8 checkpoints on Ampere fail with \"type \
         fp8e4nv not supported in this architecture\" (only ModelOpt FP8 gained a Marlin \
         path, sgl-project/sglang#31340)",
    ),
    row(
        Sglang,
        Nvfp4,
        Some(100),
        None,
        &[],
        "NVIDIA Model Optimizer support matrix: FP4 on Blackwell and later",
    ),
    row(
        Sglang,
        Fp8Kv,
        Some(89),
        None,
        CDNA3_4,
        "SGLang --kv-cache-dtype fp8_e4m3 uses FP8 attention kernels (Ada/Hopper and later)",
    ),
    row(
        Trtllm,
        Int4W4A16,
        Some(80),
        None,
        &[],
        "NVIDIA Model Optimizer support matrix: W4A16 AWQ on Ampere and later",
    ),
    row(
        Trtllm,
        Int8W8A8,
        Some(80),
        None,
        &[],
        "NVIDIA Model Optimizer support matrix: INT8 SmoothQuant on Ampere and later",
    ),
    row(
        Trtllm,
        Fp8W8A8,
        Some(89),
        None,
        &[],
        "NVIDIA Model Optimizer support matrix: FP8 on Ada and later; TensorRT-LLM docs, \
         Quantization (\"FP4 and FP8 … on the latest Blackwell and Hopper GPUs\")",
    ),
    row(
        Trtllm,
        Nvfp4,
        Some(100),
        None,
        &[],
        "NVIDIA Model Optimizer support matrix: FP4 on Blackwell and later (a Hopper W4A16 \
         path for Nemotron-H only is NVIDIA/TensorRT-LLM#14775, unmerged)",
    ),
    row(
        Trtllm,
        Fp8Kv,
        Some(89),
        None,
        &[],
        "TensorRT-LLM docs, Quantization → FP8 KV Cache (FP8 kernels: Ada and later)",
    ),
];

/// What the table says of one scheme on one GPU.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// It runs as made.
    Native,
    /// It loads, but runs as something else: how.
    Fallback(String),
    /// It does not run: why.
    Refused(String),
}

/// The row for `scheme` on `engine`, if the table has one.
pub fn row_for(engine: EngineKind, scheme: Scheme) -> Option<&'static Row> {
    TABLE
        .iter()
        .find(|r| r.engine == engine && r.scheme == scheme)
}

/// Whether `engine` runs `scheme` on `gpu`. A scheme without a row is not gated (the engine
/// itself says at boot).
pub fn check(engine: EngineKind, scheme: Scheme, gpu: &GpuSpec) -> Gate {
    let Some(r) = row_for(engine, scheme) else {
        return Gate::Native;
    };
    let what = format!("{} on {}", scheme.label(), engine.display_name());
    match gpu.vendor {
        Vendor::Amd => match gpu.gfx {
            Some(g) if r.amd.contains(&g) => Gate::Native,
            g => Gate::Refused(format!(
                "{what} does not run on {} ({})",
                gpu.name,
                g.unwrap_or("unknown architecture"),
            )),
        },
        Vendor::Nvidia => nvidia(r, &what, gpu),
    }
}

fn nvidia(r: &Row, what: &str, gpu: &GpuSpec) -> Gate {
    let cap = gpu.capability_int();
    let sm = |c: u32| format!("SM {}.{}", c / 10, c % 10);
    match (r.native_from, r.fallback) {
        (Some(n), _) if cap >= n => Gate::Native,
        (Some(n), Some((f, how))) if cap >= f => Gate::Fallback(format!(
            "{what} needs {} for native kernels and {} is {}: it would run as {how}",
            sm(n),
            gpu.name,
            sm(cap),
        )),
        (Some(n), _) => Gate::Refused(format!(
            "{what} needs {}; {} is {}",
            sm(n),
            gpu.name,
            sm(cap),
        )),
        (None, _) => Gate::Refused(format!("{what} does not run on NVIDIA GPUs")),
    }
}

/// The gate for a pre-quantized checkpoint: a checkpoint that would only run through a
/// fallback is refused too — layer 2 already has what the fallback gives (FP8 weights on
/// the fly; INT4 checkpoints on faster kernels), so serving it would measure the wrong
/// thing under the checkpoint's name.
pub fn check_checkpoint(engine: EngineKind, scheme: Scheme, gpu: &GpuSpec) -> Result<(), String> {
    match check(engine, scheme, gpu) {
        Gate::Native => Ok(()),
        Gate::Fallback(why) | Gate::Refused(why) => Err(format!(
            "{why} (`forge playbook gates --engine {} --gpu {}` cites the source)",
            engine.as_str(),
            gpu.name
        )),
    }
}

/// The scheme a layer-2 knob value asks for (`method: fp8`, `kv_cache_quant: fp8_e4m3`),
/// for the engines whose knobs name them.
pub fn scheme_of_knob(field: &str, value: &str) -> Option<Scheme> {
    let v = value.to_ascii_lowercase();
    match field {
        "kv_cache_quant" | "kv_cache_dtype" if v.starts_with("fp8") => Some(Fp8Kv),
        "method" | "quantization" if matches!(v.as_str(), "fp8" | "fbgemm_fp8" | "w8a8_fp8") => {
            Some(Fp8W8A8)
        }
        "method" | "quantization" if v == "modelopt_fp4" || v == "nvfp4" => Some(Nvfp4),
        "method" | "quantization" if v == "w8a8_int8" => Some(Int8W8A8),
        _ => None,
    }
}

/// The rows of `engine`, each with what it means on `gpu`: the lines the LLM agent's prompt
/// and `forge playbook gates` show.
pub fn lines_for(engine: EngineKind, gpu: &GpuSpec) -> Vec<String> {
    TABLE
        .iter()
        .filter(|r| r.engine == engine)
        .map(|r| {
            let verdict = match check(engine, r.scheme, gpu) {
                Gate::Native => "runs natively".to_string(),
                Gate::Fallback(_) => format!(
                    "loads, but runs as {}",
                    r.fallback.map_or("a fallback", |f| f.1)
                ),
                Gate::Refused(_) => "does not run".to_string(),
            };
            format!("{}: {verdict}", r.scheme.label())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpus::lookup;

    fn gpu(name: &str) -> &'static GpuSpec {
        lookup(name).unwrap()
    }

    #[test]
    fn fp8_on_an_a100_is_a_fallback_in_vllm_and_refused_elsewhere() {
        let a100 = gpu("A100-80GB");
        let Gate::Fallback(why) = check(Vllm, Fp8W8A8, a100) else {
            panic!()
        };
        assert!(
            why.contains("needs SM 8.9") && why.contains("SM 8.0"),
            "{why}"
        );
        assert!(why.contains("FP8 Marlin"), "{why}");
        let why = check_checkpoint(Vllm, Fp8W8A8, a100).unwrap_err();
        assert!(
            why.contains("forge playbook gates --engine vllm --gpu A100-80GB"),
            "{why}"
        );
        for e in [Sglang, Trtllm] {
            assert!(matches!(check(e, Fp8W8A8, a100), Gate::Refused(_)), "{e:?}");
        }
        assert_eq!(check(Vllm, Fp8W8A8, gpu("H100")), Gate::Native);
        assert_eq!(check(Vllm, Fp8W8A8, gpu("L4")), Gate::Native);
        assert_eq!(check(Vllm, Fp8W8A8, gpu("MI300X")), Gate::Native);
        assert!(matches!(
            check(Vllm, Fp8W8A8, gpu("MI250X")),
            Gate::Refused(_)
        ));
    }

    #[test]
    fn nvfp4_needs_blackwell() {
        let why = check_checkpoint(Vllm, Nvfp4, gpu("H100")).unwrap_err();
        assert!(
            why.contains("needs SM 10.0") && why.contains("H100 is SM 9.0"),
            "{why}"
        );
        assert!(matches!(
            check(Trtllm, Nvfp4, gpu("H100")),
            Gate::Refused(_)
        ));
        assert_eq!(check(Vllm, Nvfp4, gpu("B200")), Gate::Native);
        assert_eq!(check(Trtllm, Nvfp4, gpu("GB200")), Gate::Native);
        // gpt-oss's MXFP4 runs on Hopper through Triton as intended; Ampere only via Marlin.
        assert_eq!(check(Vllm, Mxfp4, gpu("H100")), Gate::Native);
        assert!(matches!(
            check(Vllm, Mxfp4, gpu("A100-80GB")),
            Gate::Fallback(_)
        ));
    }

    #[test]
    fn int4_runs_on_a_t4_in_vllm_and_fp8_kv_does_not() {
        assert_eq!(check(Vllm, Int4W4A16, gpu("T4")), Gate::Native);
        assert!(matches!(check(Vllm, Fp8Kv, gpu("T4")), Gate::Refused(_)));
        assert!(matches!(
            check(Trtllm, Int4W4A16, gpu("T4")),
            Gate::Refused(_)
        ));
        assert!(matches!(
            check(Vllm, Int4W4A16, gpu("MI300X")),
            Gate::Refused(_)
        ));
    }

    #[test]
    fn schemes_of_checkpoints_and_knobs() {
        assert_eq!(
            Scheme::of_checkpoint("awq", 4, None, false),
            Some(Int4W4A16)
        );
        assert_eq!(
            Scheme::of_checkpoint("fp8", 8, Some(8), true),
            Some(Fp8W8A8)
        );
        assert_eq!(
            Scheme::of_checkpoint("compressed-tensors", 8, Some(8), false),
            Some(Int8W8A8)
        );
        assert_eq!(
            Scheme::of_checkpoint("compressed-tensors", 4, Some(4), true),
            Some(Nvfp4)
        );
        assert_eq!(Scheme::of_checkpoint("mxfp4", 4, None, true), Some(Mxfp4));
        assert_eq!(scheme_of_knob("kv_cache_quant", "fp8_e5m2"), Some(Fp8Kv));
        assert_eq!(scheme_of_knob("method", "fp8"), Some(Fp8W8A8));
        assert_eq!(scheme_of_knob("method", "awq"), None);
    }

    #[test]
    fn every_row_cites_a_source_and_is_unique() {
        for (i, r) in TABLE.iter().enumerate() {
            assert!(r.source.len() > 20, "{r:?}");
            assert!(
                TABLE[..i]
                    .iter()
                    .all(|o| o.engine != r.engine || o.scheme != r.scheme),
                "{r:?}"
            );
        }
    }
}
