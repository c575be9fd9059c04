//! vLLM's allowlist: every recipe field forge may set for vLLM, with its layer, type and
//! legal values (TP = 3 on 32 heads and other cross-field rules are checked when a recipe
//! becomes `VllmArgs`, [`super::recipe`]).

use crate::engine::knobs::{Kind, Knob, knob};
use crate::recipe::Layer;

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
    )
    .alternatives(),
    knob(
        "attention_backend",
        Layer::Kernel,
        Kind::Choice(VLLM_ATTENTION_BACKENDS),
        "attention kernel implementation",
    ),
];
