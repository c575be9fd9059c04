//! The allowlist: every recipe field forge may set, per engine, with its layer, type and
//! legal values. Nothing outside this table reaches an engine's command line, and values
//! vLLM rejects (`kv_cache_dtype: bf16`, TP = 3 on 32 heads, removed flags such as
//! `swap_space`) are refused here, with the reason, before anything boots.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::EngineKind;

/// Tuning layers, in escalation order.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    /// Layer 1: serving flags.
    Config,
    /// Layer 2: quantization.
    Quant,
    /// Layer 3: kernel choices.
    Kernel,
}

impl Layer {
    /// 1, 2 or 3 (the original's numbering, used by `--start-layer`).
    pub fn number(self) -> u8 {
        match self {
            Layer::Config => 1,
            Layer::Quant => 2,
            Layer::Kernel => 3,
        }
    }

    /// From 1, 2 or 3.
    pub fn from_number(n: u8) -> Option<Layer> {
        match n {
            1 => Some(Layer::Config),
            2 => Some(Layer::Quant),
            3 => Some(Layer::Kernel),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Config => "config",
            Layer::Quant => "quant",
            Layer::Kernel => "kernel",
        }
    }
}

/// The type and legal values of a knob.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Integer in an inclusive range.
    Int(i64, i64),
    /// Float in an inclusive range.
    Float(f64, f64),
    /// true / false.
    Bool,
    /// One of these strings.
    Choice(&'static [&'static str]),
}

/// One allowlisted knob.
#[derive(Debug, Clone, PartialEq)]
pub struct Knob {
    /// Recipe field name.
    pub name: &'static str,
    /// Its layer.
    pub layer: Layer,
    /// Type and range.
    pub kind: Kind,
    /// One line on what it does.
    pub help: &'static str,
}

const fn knob(name: &'static str, layer: Layer, kind: Kind, help: &'static str) -> Knob {
    Knob {
        name,
        layer,
        kind,
        help,
    }
}

/// vLLM's kv-cache dtypes (`bf16` is not one).
pub const VLLM_KV_DTYPES: &[&str] = &["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"];
/// Quantization methods forge may select for vLLM (`none` = the checkpoint's own).
pub const VLLM_QUANT_METHODS: &[&str] = &[
    "none",
    "fp8",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "compressed-tensors",
];
/// Attention backends of current vLLM.
pub const VLLM_ATTENTION_BACKENDS: &[&str] = &[
    "auto",
    "FLASH_ATTN",
    "FLASHINFER",
    "TRITON_ATTN",
    "FLEX_ATTENTION",
];

/// vLLM's knobs.
pub const VLLM_KNOBS: &[Knob] = &[
    knob(
        "max_num_seqs",
        Layer::Config,
        Kind::Int(1, 8192),
        "sequences per step; higher raises throughput until TPOT and preemptions bite",
    ),
    knob(
        "max_num_batched_tokens",
        Layer::Config,
        Kind::Int(16, 1_048_576),
        "token budget per step = chunked-prefill chunk; small → better ITL, large → better TTFT",
    ),
    knob(
        "enable_prefix_caching",
        Layer::Config,
        Kind::Bool,
        "reuse KV blocks of shared prompt prefixes",
    ),
    knob(
        "enable_chunked_prefill",
        Layer::Config,
        Kind::Bool,
        "split long prefills across steps",
    ),
    knob(
        "gpu_memory_utilization",
        Layer::Config,
        Kind::Float(0.5, 0.98),
        "fraction of GPU memory for this instance; the rest is headroom",
    ),
    knob(
        "block_size",
        Layer::Config,
        Kind::Int(8, 128),
        "KV block size in tokens (8, 16, 32, 64, 128)",
    ),
    knob(
        "max_model_len",
        Layer::Config,
        Kind::Int(64, 10_485_760),
        "context limit; lower frees KV capacity for more sequences",
    ),
    knob(
        "tensor_parallel_size",
        Layer::Config,
        Kind::Int(1, 64),
        "GPUs per replica; must divide the attention heads",
    ),
    knob(
        "enforce_eager",
        Layer::Config,
        Kind::Bool,
        "no CUDA graphs: faster start, slower decode",
    ),
    knob(
        "optimization_level",
        Layer::Config,
        Kind::Int(0, 3),
        "compilation level -O0..-O3 (-O2 default)",
    ),
    knob(
        "max_cudagraph_capture_size",
        Layer::Config,
        Kind::Int(1, 2048),
        "largest batch captured in a CUDA graph",
    ),
    knob(
        "performance_mode",
        Layer::Config,
        Kind::Choice(&["balanced", "interactivity", "throughput"]),
        "vLLM's preset trade-off",
    ),
    knob(
        "async_scheduling",
        Layer::Config,
        Kind::Bool,
        "overlap CPU scheduling with GPU execution",
    ),
    knob(
        "long_prefill_token_threshold",
        Layer::Config,
        Kind::Int(0, 1_048_576),
        "cap on one request's prefill chunk per step (0 = none)",
    ),
    knob(
        "scheduling_policy",
        Layer::Config,
        Kind::Choice(&["fcfs", "priority"]),
        "queue order",
    ),
    knob(
        "speculative_method",
        Layer::Config,
        Kind::Choice(&["none", "ngram"]),
        "speculative decoding method (ngram needs no draft model)",
    ),
    knob(
        "num_speculative_tokens",
        Layer::Config,
        Kind::Int(1, 8),
        "tokens proposed per speculative step",
    ),
    knob(
        "method",
        Layer::Quant,
        Kind::Choice(VLLM_QUANT_METHODS),
        "weight quantization",
    ),
    knob(
        "kv_cache_quant",
        Layer::Quant,
        Kind::Choice(VLLM_KV_DTYPES),
        "KV cache precision",
    ),
    knob(
        "checkpoint",
        Layer::Quant,
        Kind::Choice(&[]),
        "pre-quantized checkpoint (validated against the known-checkpoint list)",
    ),
    knob(
        "attention_backend",
        Layer::Kernel,
        Kind::Choice(VLLM_ATTENTION_BACKENDS),
        "attention kernel implementation",
    ),
];

/// llama.cpp `llama-server` knobs.
pub const LLAMACPP_KNOBS: &[Knob] = &[
    knob(
        "parallel",
        Layer::Config,
        Kind::Int(1, 256),
        "slots (-np); per-slot context is ctx_size / parallel",
    ),
    knob(
        "ctx_size",
        Layer::Config,
        Kind::Int(256, 1_048_576),
        "total context (-c) shared by the slots",
    ),
    knob(
        "batch_size",
        Layer::Config,
        Kind::Int(32, 16384),
        "logical batch (-b)",
    ),
    knob(
        "ubatch_size",
        Layer::Config,
        Kind::Int(16, 8192),
        "physical batch (-ub); <= batch_size",
    ),
    knob(
        "threads",
        Layer::Config,
        Kind::Int(1, 1024),
        "generation threads (-t)",
    ),
    knob(
        "threads_batch",
        Layer::Config,
        Kind::Int(1, 1024),
        "prompt-processing threads (-tb)",
    ),
    knob(
        "cont_batching",
        Layer::Config,
        Kind::Bool,
        "continuous batching",
    ),
    knob(
        "flash_attn",
        Layer::Config,
        Kind::Choice(&["on", "off", "auto"]),
        "flash attention",
    ),
    knob(
        "kv_cache_quant",
        Layer::Quant,
        Kind::Choice(&[
            "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
        ]),
        "KV cache type (both K and V: --cache-type-k/-v)",
    ),
    knob(
        "cache_type_k",
        Layer::Quant,
        Kind::Choice(&[
            "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
        ]),
        "K cache type",
    ),
    knob(
        "cache_type_v",
        Layer::Quant,
        Kind::Choice(&[
            "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1",
        ]),
        "V cache type",
    ),
    knob(
        "n_gpu_layers",
        Layer::Config,
        Kind::Int(0, 1000),
        "layers offloaded to a GPU (only where one exists)",
    ),
    knob(
        "cache_reuse",
        Layer::Config,
        Kind::Int(0, 65536),
        "min chunk size for KV reuse via shifting",
    ),
];

/// The knob table of an engine.
pub fn table(engine: EngineKind) -> &'static [Knob] {
    match engine {
        EngineKind::Vllm => VLLM_KNOBS,
        EngineKind::Llamacpp => LLAMACPP_KNOBS,
    }
}

/// Look a knob up by layer and name.
pub fn find(engine: EngineKind, layer: Layer, name: &str) -> Option<&'static Knob> {
    table(engine)
        .iter()
        .find(|k| k.layer == layer && k.name == name)
}

/// Check one value against the allowlist. `Err` says why, in words a user (or an LLM)
/// can act on.
pub fn check(engine: EngineKind, layer: Layer, name: &str, value: &Value) -> Result<(), String> {
    let Some(k) = find(engine, layer, name) else {
        let known: Vec<&str> = table(engine)
            .iter()
            .filter(|k| k.layer == layer)
            .map(|k| k.name)
            .collect();
        return Err(format!(
            "`{name}` is not a {} knob forge may set for {engine:?} (allowed: {})",
            layer.as_str(),
            known.join(", ")
        ));
    };
    if value.is_null() && layer == Layer::Config {
        return Ok(()); // back to the engine default
    }
    check_kind(name, &k.kind, value)
}

fn check_kind(name: &str, kind: &Kind, value: &Value) -> Result<(), String> {
    match kind {
        Kind::Int(lo, hi) => match value.as_i64() {
            Some(v) if (*lo..=*hi).contains(&v) => Ok(()),
            Some(v) => Err(format!("{name}: {v} is outside {lo}..={hi}")),
            None => Err(format!("{name}: expected an integer, got {value}")),
        },
        Kind::Float(lo, hi) => match value.as_f64() {
            Some(v) if v >= *lo && v <= *hi => Ok(()),
            Some(v) => Err(format!("{name}: {v} is outside {lo}..={hi}")),
            None => Err(format!("{name}: expected a number, got {value}")),
        },
        Kind::Bool => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{name}: expected true or false, got {value}")),
        },
        Kind::Choice([]) => match value {
            Value::String(s) if is_safe_model_id(s) => Ok(()),
            _ => Err(format!("{name}: expected a model id, got {value}")),
        },
        Kind::Choice(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(()),
            _ => Err(format!(
                "{name}: {value} is not one of {}",
                choices.join(", ")
            )),
        },
    }
}

/// A Hugging Face id or local path with no characters that could be read as a flag or
/// shell syntax (argv is never a shell string, but ids also reach logs and prompts).
pub fn is_safe_model_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_what_vllm_rejects() {
        let e = check(
            EngineKind::Vllm,
            Layer::Quant,
            "kv_cache_quant",
            &json!("bf16"),
        )
        .unwrap_err();
        assert!(e.contains("not one of"), "{e}");
        let e = check(EngineKind::Vllm, Layer::Config, "swap_space", &json!(4)).unwrap_err();
        assert!(e.contains("not a config knob"), "{e}");
        let e = check(
            EngineKind::Vllm,
            Layer::Kernel,
            "attention_backend",
            &json!("flash-attn-3"),
        )
        .unwrap_err();
        assert!(e.contains("not one of"), "{e}");
        assert!(check(EngineKind::Vllm, Layer::Config, "max_num_seqs", &json!(0)).is_err());
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "max_num_seqs",
                &json!("64")
            )
            .is_err()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "gpu_memory_utilization",
                &json!(0.99)
            )
            .is_err()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "enable_prefix_caching",
                &json!(1)
            )
            .is_err()
        );
    }

    #[test]
    fn accepts_legal_values_and_resets() {
        assert!(check(EngineKind::Vllm, Layer::Config, "max_num_seqs", &json!(256)).is_ok());
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "gpu_memory_utilization",
                &json!(0.95)
            )
            .is_ok()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "max_num_seqs",
                &Value::Null
            )
            .is_ok()
        );
        assert!(check(EngineKind::Vllm, Layer::Quant, "method", &json!("fp8")).is_ok());
        assert!(check(EngineKind::Llamacpp, Layer::Config, "parallel", &json!(4)).is_ok());
        assert!(
            check(
                EngineKind::Llamacpp,
                Layer::Config,
                "max_num_seqs",
                &json!(4)
            )
            .is_err()
        );
    }

    #[test]
    fn model_ids() {
        assert!(is_safe_model_id(
            "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"
        ));
        assert!(!is_safe_model_id("--trust-remote-code"));
        assert!(!is_safe_model_id("x; rm -rf /"));
        assert!(!is_safe_model_id(""));
    }
}
