//! TensorRT-LLM's allowlist: every recipe field forge may set for `trtllm-serve` (PyTorch
//! backend), with layer, type and legal values. Some are command-line options
//! (`max_batch_size`), the rest live in the `--extra_llm_api_options` YAML
//! (`capacity_scheduler_policy`, `cuda_graph_max_batch_size`); [`super::flags`] decides
//! which, and never puts one knob in both places.

use crate::engine::knobs::{Kind, Knob, knob};
use crate::recipe::Layer;

/// `kv_cache_config.dtype` values.
pub const TRTLLM_KV_DTYPES: &[&str] = &["auto", "fp8"];
/// `scheduler_config.capacity_scheduler_policy` values forge may choose.
pub const TRTLLM_CAPACITY_POLICIES: &[&str] = &["GUARANTEED_NO_EVICT", "MAX_UTILIZATION"];
/// `attn_backend` values of the PyTorch backend.
pub const TRTLLM_ATTENTION_BACKENDS: &[&str] = &["TRTLLM", "FLASHINFER"];

/// TensorRT-LLM's knobs.
pub const TRTLLM_KNOBS: &[Knob] = &[
    knob(
        "max_batch_size",
        Layer::Config,
        Kind::Int(1, 4096),
        "requests in flight per iteration (default 2048)",
    ),
    knob(
        "max_num_tokens",
        Layer::Config,
        Kind::Int(64, 1_048_576),
        "token budget of one iteration (default 8192); without chunked prefill also the longest prompt",
    ),
    knob(
        "max_seq_len",
        Layer::Config,
        Kind::Int(64, 10_485_760),
        "context limit (default the model's)",
    ),
    knob(
        "tp_size",
        Layer::Config,
        Kind::Int(1, 64),
        "GPUs per replica; must divide the attention heads",
    ),
    knob(
        "kv_cache_free_gpu_memory_fraction",
        Layer::Config,
        Kind::Float(0.3, 0.98),
        "fraction of the memory free after loading that becomes KV cache (default 0.9)",
    ),
    knob(
        "enable_chunked_prefill",
        Layer::Config,
        Kind::Bool,
        "split long prompts across iterations (off by default)",
    ),
    knob(
        "enable_block_reuse",
        Layer::Config,
        Kind::Bool,
        "reuse KV blocks of shared prefixes (on by default)",
    ),
    knob(
        "tokens_per_block",
        Layer::Config,
        Kind::Int(8, 128),
        "KV block in tokens (8, 16, 32, 64, 128; default 32)",
    ),
    knob(
        "capacity_scheduler_policy",
        Layer::Config,
        Kind::Choice(TRTLLM_CAPACITY_POLICIES),
        "GUARANTEED_NO_EVICT reserves each request's whole output; MAX_UTILIZATION admits more and may pause",
    ),
    knob(
        "enable_cuda_graph",
        Layer::Config,
        Kind::Bool,
        "capture decode steps in CUDA graphs (cuda_graph_config; null disables)",
    ),
    knob(
        "cuda_graph_max_batch_size",
        Layer::Config,
        Kind::Int(1, 4096),
        "largest batch captured in a CUDA graph",
    ),
    knob(
        "cuda_graph_padding",
        Layer::Config,
        Kind::Bool,
        "pad a batch up to the next captured size instead of running eager",
    ),
    knob(
        "disable_overlap_scheduler",
        Layer::Config,
        Kind::Bool,
        "schedule on the GPU's critical path instead of overlapping it",
    ),
    knob(
        "stream_interval",
        Layer::Config,
        Kind::Int(1, 64),
        "iterations per streamed chunk",
    ),
    knob(
        "kv_cache_quant",
        Layer::Quant,
        Kind::Choice(TRTLLM_KV_DTYPES),
        "KV cache precision (kv_cache_config.dtype)",
    ),
    knob(
        "checkpoint",
        Layer::Quant,
        Kind::Choice(&[]),
        "pre-quantized checkpoint (ModelOpt FP8/NVFP4) served instead of the model",
    )
    .alternatives(),
    knob(
        "attn_backend",
        Layer::Kernel,
        Kind::Choice(TRTLLM_ATTENTION_BACKENDS),
        "attention kernels",
    ),
];
