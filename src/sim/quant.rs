//! Precision: which weight quantization and KV-cache dtype the engine ends up with, the
//! gates vLLM applies (compute capability per method, bfloat16 on SM < 8.0, FP8 KV support,
//! checkpoint/flag mismatch), and what each choice does to bytes and compute rate.
//!
//! Minimum capabilities follow vLLM's `get_min_capability()` (AWQ/AWQ-Marlin/GPTQ-Marlin/FP8
//! 75, GPTQ 60, compressed-tensors 70, ModelOpt/MXFP4 80). FP8 runs W8A8 (twice the BF16
//! tensor rate) only on SM >= 8.9 or MI300X; below that it runs weight-only through Marlin.
//! AMD parts use vLLM's ROCm capability numbers (gfx90a = 90, gfx942 = 94, gfx950 = 95);
//! FP8 on MI250X is rejected. The FP8-KV gate (SM >= 8.0 on NVIDIA, MI300X/MI325X/MI355X
//! on AMD) and its message are
//! forge's: vLLM reports it from whichever attention backend it picked.

use super::interface::BootError;
use super::model::{ModelShape, is_four_bit_method, same_family};
use crate::engine::vllm::{KvCacheDtype, VllmConfig};
use crate::hardware::{GpuSpec, Vendor};

/// Methods vLLM accepts for `--quantization`, with their minimum capability.
const METHODS: &[(&str, u32)] = &[
    ("awq", 75),
    ("awq_marlin", 75),
    ("gptq", 60),
    ("gptq_marlin", 75),
    ("marlin", 75),
    ("fp8", 75),
    ("fbgemm_fp8", 80),
    ("compressed-tensors", 70),
    ("modelopt", 80),
    ("mxfp4", 80),
    ("auto-round", 75),
    ("experts_int8", 80),
];

/// The numeric precision the engine runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Precision {
    /// Effective weight quantization method (`None` = unquantized).
    pub method: Option<String>,
    /// Bytes per element of activations and unquantized weights (2, or 4 for float32).
    pub act_bytes: f64,
    /// Linear layers run on FP8 tensor cores (W8A8 on SM >= 8.9 / MI300X).
    pub fp8_compute: bool,
    /// Linear layers run on INT8 tensor cores (W8A8 int8).
    pub int8_compute: bool,
    /// Weight-only quantization: dequantized on the fly (slightly slower compute).
    pub weight_only: bool,
    /// Bytes per KV element.
    pub kv_bytes: f64,
}

/// vLLM's integer capability for a GPU (ROCm parts: gfx90a = 90, gfx942 = 94, gfx950 =
/// 95, as vLLM's ROCm platform reports them).
pub fn capability(gpu: &GpuSpec) -> u32 {
    match (gpu.vendor, gpu.gfx) {
        (Vendor::Amd, Some("gfx942")) => 94,
        (Vendor::Amd, Some("gfx950")) => 95,
        (Vendor::Amd, _) => 90,
        (Vendor::Nvidia, _) => gpu.capability_int(),
    }
}

fn value_error(msg: String) -> BootError {
    BootError::Config(format!("ValueError: {msg}"))
}

/// Resolve and validate the precision of `model` under `config` on `gpu`.
pub fn resolve(
    model: &ModelShape,
    config: &VllmConfig,
    gpu: &GpuSpec,
) -> Result<Precision, BootError> {
    let act_bytes = resolve_dtype(model, config, gpu)?;
    let method = resolve_method(model, config)?;
    if let Some(m) = &method {
        check_capability(m, gpu)?;
    }
    let kv_bytes = resolve_kv(config, gpu, act_bytes)?;
    let (w_bits, a_bits, float) = bits_of(model, method.as_deref());
    let fp8_native = capability(gpu) >= 89 && gpu.fp8_tflops.is_some();
    let w8a8 = method.is_some() && w_bits == 8 && a_bits == Some(8);
    Ok(Precision {
        fp8_compute: w8a8 && float && fp8_native,
        int8_compute: w8a8 && !float,
        weight_only: method.is_some() && !(w8a8 && (!float || fp8_native)),
        method,
        act_bytes,
        kv_bytes,
    })
}

/// (weight bits, activation bits, float weights) of the effective method.
fn bits_of(model: &ModelShape, method: Option<&str>) -> (u32, Option<u32>, bool) {
    let fp8_family = |m: &str| matches!(m, "fp8" | "fbgemm_fp8" | "modelopt");
    match (method, &model.quant) {
        (None, _) => (16, None, true),
        (Some(_), Some(q)) => (q.weight_bits, q.activation_bits, q.float_weights),
        (Some(m), None) if fp8_family(m) => (8, Some(8), true),
        (Some(m), None) if is_four_bit_method(m) => (4, None, false),
        (Some(_), None) => (8, None, false),
    }
}

/// Element size of the model dtype; bfloat16 requested on SM < 8.0 is vLLM's error.
fn resolve_dtype(model: &ModelShape, config: &VllmConfig, gpu: &GpuSpec) -> Result<f64, BootError> {
    let d = config.dtype.to_ascii_lowercase();
    match d.as_str() {
        "bfloat16" | "bf16" if !gpu.supports_bf16() => Err(value_error(format!(
            "Bfloat16 is only supported on GPUs with compute capability of at least 8.0. \
             Your {} GPU has compute capability {}.{}. You can use float16 instead by \
             explicitly setting the `dtype` flag in CLI, for example: --dtype=half.",
            gpu.aliases.first().copied().unwrap_or(gpu.name),
            capability(gpu) / 10,
            capability(gpu) % 10
        ))),
        "float32" | "float" => Ok(4.0),
        "auto" => Ok(if model.dtype == "float32" {
            2.0
        } else {
            model.dtype_bytes.min(2.0)
        }),
        _ => Ok(2.0),
    }
}

/// The effective method: the flag, else the checkpoint's; mismatches are vLLM's errors.
fn resolve_method(model: &ModelShape, config: &VllmConfig) -> Result<Option<String>, BootError> {
    let ckpt = model.quant.as_ref().map(|q| q.method.clone());
    let user = config.quantization.as_ref().map(|q| q.to_ascii_lowercase());
    if let Some(u) = &user
        && !METHODS.iter().any(|(m, _)| m == u)
    {
        let names: Vec<&str> = METHODS.iter().map(|(m, _)| *m).collect();
        return Err(value_error(format!(
            "Unknown quantization method: {u}. Must be one of {names:?}."
        )));
    }
    match (ckpt, user) {
        (None, None) => Ok(None),
        (Some(c), None) => Ok(Some(c)),
        (None, Some(u)) if matches!(u.as_str(), "fp8" | "fbgemm_fp8") => Ok(Some(u)),
        (None, Some(u)) => Err(value_error(format!("Cannot find the config file for {u}"))),
        (Some(c), Some(u)) if c == u || same_family(&c, &u) || u == "marlin" => Ok(Some(c)),
        (Some(c), Some(u)) => Err(value_error(format!(
            "Quantization method specified in the model config ({c}) does not match the \
             quantization method specified in the `quantization` argument ({u})."
        ))),
    }
}

fn check_capability(method: &str, gpu: &GpuSpec) -> Result<(), BootError> {
    let cap = capability(gpu);
    let mut min = METHODS
        .iter()
        .find(|(m, _)| *m == method)
        .map_or(0, |(_, c)| *c);
    let fp8_family = matches!(method, "fp8" | "fbgemm_fp8" | "modelopt");
    if gpu.vendor == Vendor::Amd && fp8_family {
        min = 94;
    }
    if cap < min {
        return Err(value_error(format!(
            "The quantization method {method} is not supported for the current GPU. Minimum \
             capability: {min}. Current capability: {cap}."
        )));
    }
    Ok(())
}

fn resolve_kv(config: &VllmConfig, gpu: &GpuSpec, act_bytes: f64) -> Result<f64, BootError> {
    let fp8 = matches!(
        config.kv_cache_dtype,
        KvCacheDtype::Fp8 | KvCacheDtype::Fp8E4m3 | KvCacheDtype::Fp8E5m2
    );
    let ok = match gpu.vendor {
        Vendor::Nvidia => gpu.capability_int() >= 80,
        Vendor::Amd => capability(gpu) >= 94,
    };
    if fp8 && !ok {
        return Err(value_error(format!(
            "The KV cache dtype {} is not supported on {} (compute capability {}): no \
             attention backend supports an FP8 KV cache on this GPU.",
            config.kv_cache_dtype.as_flag(),
            gpu.name,
            capability(gpu)
        )));
    }
    Ok(config.kv_cache_dtype.bytes(act_bytes))
}

/// Share of generated tokens that come out differently under the configured quantization
/// (the simulator's stand-in for accuracy loss): FP8 weights 0.5 %, 4-bit weights 2 %, an
/// FP8 KV cache 0.3 % more. Chosen so FP8 keeps forge's default 0.99 accuracy floor and
/// 4-bit does not, as published evaluations of Llama-3-8B roughly show. A pre-quantized
/// checkpoint (`checkpoint`, its `quantization_config`) counts as its method does.
pub fn text_perturbation(
    args: &crate::engine::vllm::VllmArgs,
    checkpoint: Option<&super::model::QuantConfig>,
) -> f64 {
    let weights = match (args.quantization.as_deref(), checkpoint) {
        (Some(m), _) if is_four_bit_method(m) => 0.02,
        (Some(_), _) => 0.005,
        (None, Some(q)) if q.weight_bits <= 4 => 0.02,
        (None, Some(_)) => 0.005,
        (None, None) => 0.0,
    };
    let kv = match args.kv_cache_dtype {
        Some(KvCacheDtype::Fp8) | Some(KvCacheDtype::Fp8E4m3) | Some(KvCacheDtype::Fp8E5m2) => {
            0.003
        }
        _ => 0.0,
    };
    weights + kv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vllm::VllmArgs;
    use crate::hardware::gpus::lookup;
    use crate::sim::model::QuantConfig;

    fn cfg(gpu: &str, args: VllmArgs) -> (VllmConfig, &'static GpuSpec) {
        let g = lookup(gpu).unwrap();
        (
            VllmArgs {
                model: "m".into(),
                ..args
            }
            .resolve(g),
            g,
        )
    }

    fn shape() -> ModelShape {
        crate::sim::catalog::lookup("Qwen/Qwen3-8B").unwrap()
    }

    #[test]
    fn capability_gate_uses_vllm_text() {
        let mut m = shape();
        m.quant = Some(QuantConfig {
            method: "awq".into(),
            weight_bits: 4,
            activation_bits: None,
            float_weights: false,
        });
        let (c, g) = cfg(
            "T4",
            VllmArgs {
                dtype: Some("half".into()),
                ..Default::default()
            },
        );
        assert!(resolve(&m, &c, g).unwrap().weight_only);
        let (c, g) = cfg(
            "H100",
            VllmArgs {
                quantization: Some("mxfp4".into()),
                ..Default::default()
            },
        );
        let e = resolve(&m, &c, g).unwrap_err().to_string();
        assert!(
            e.contains("does not match the quantization method specified"),
            "{e}"
        );
        let (c, g) = cfg(
            "T4",
            VllmArgs {
                quantization: Some("modelopt".into()),
                ..Default::default()
            },
        );
        let e = resolve(&shape(), &c, g).unwrap_err().to_string();
        assert!(
            e.contains("Cannot find the config file for modelopt"),
            "{e}"
        );
        m.quant = Some(QuantConfig {
            method: "modelopt".into(),
            weight_bits: 8,
            activation_bits: Some(8),
            float_weights: true,
        });
        let e = resolve(&m, &c, g).unwrap_err().to_string();
        assert_eq!(
            e,
            "ValueError: The quantization method modelopt is not supported for the current GPU. \
             Minimum capability: 80. Current capability: 75."
        );
    }

    #[test]
    fn fp8_is_w8a8_only_from_sm89() {
        let (c, g) = cfg(
            "H100",
            VllmArgs {
                quantization: Some("fp8".into()),
                ..Default::default()
            },
        );
        let p = resolve(&shape(), &c, g).unwrap();
        assert!(p.fp8_compute && !p.weight_only);
        let (c, g) = cfg(
            "A100-80GB",
            VllmArgs {
                quantization: Some("fp8".into()),
                ..Default::default()
            },
        );
        let p = resolve(&shape(), &c, g).unwrap();
        assert!(!p.fp8_compute && p.weight_only);
        let (c, g) = cfg(
            "MI250X",
            VllmArgs {
                quantization: Some("fp8".into()),
                ..Default::default()
            },
        );
        assert!(
            resolve(&shape(), &c, g)
                .unwrap_err()
                .to_string()
                .contains("Minimum capability: 94")
        );
        // CDNA3/CDNA4 and Blackwell Ultra run FP8 natively, with an FP8 KV cache.
        for gpu in ["MI325X", "MI355X", "B300", "GB200"] {
            let (c, g) = cfg(
                gpu,
                VllmArgs {
                    quantization: Some("fp8".into()),
                    kv_cache_dtype: Some(KvCacheDtype::Fp8),
                    ..Default::default()
                },
            );
            let p = resolve(&shape(), &c, g).unwrap();
            assert!(p.fp8_compute && p.kv_bytes == 1.0, "{gpu}: {p:?}");
        }
    }

    #[test]
    fn bf16_and_fp8_kv_gates() {
        let (c, g) = cfg(
            "T4",
            VllmArgs {
                dtype: Some("bfloat16".into()),
                ..Default::default()
            },
        );
        assert_eq!(
            resolve(&shape(), &c, g).unwrap_err().to_string(),
            "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least \
             8.0. Your Tesla T4 GPU has compute capability 7.5. You can use float16 instead by \
             explicitly setting the `dtype` flag in CLI, for example: --dtype=half."
        );
        let (c, g) = cfg(
            "T4",
            VllmArgs {
                kv_cache_dtype: Some(KvCacheDtype::Fp8),
                ..Default::default()
            },
        );
        assert!(resolve(&shape(), &c, g).is_err());
        let (c, g) = cfg(
            "A100",
            VllmArgs {
                kv_cache_dtype: Some(KvCacheDtype::Fp8),
                ..Default::default()
            },
        );
        assert_eq!(resolve(&shape(), &c, g).unwrap().kv_bytes, 1.0);
    }
}
