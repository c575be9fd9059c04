//! SGLang's allowlist: every recipe field forge may set for `sglang serve`, named as
//! SGLang's own `ServerArgs` fields (`max_running_requests`, `mem_fraction_static`), with
//! layer, type and legal values. Cross-field rules and what a version can express are
//! checked when a recipe is rendered ([`super::flags`]).

use crate::engine::knobs::{Kind, Knob, knob};
use crate::recipe::Layer;

/// `--kv-cache-dtype` values forge may choose (`auto` = the model's dtype).
pub const SGLANG_KV_DTYPES: &[&str] = &["auto", "fp8_e4m3", "fp8_e5m2", "bf16"];
/// `--quantization` methods forge may choose (`none` = the checkpoint's own).
pub const SGLANG_QUANT_METHODS: &[&str] = &[
    "none",
    "fp8",
    "awq",
    "awq_marlin",
    "gptq",
    "gptq_marlin",
    "w8a8_fp8",
    "w8a8_int8",
    "compressed-tensors",
    "modelopt_fp4",
    "mxfp4",
];
/// `--schedule-policy` values that need nothing from the client (no priorities, no
/// routing keys).
pub const SGLANG_SCHEDULE_POLICIES: &[&str] = &["fcfs", "lpm", "dfs-weight", "lof", "random"];
/// `--attention-backend` values for NVIDIA GPUs and dense/GQA models.
pub const SGLANG_ATTENTION_BACKENDS: &[&str] =
    &["auto", "fa3", "flashinfer", "triton", "trtllm_mha", "fa4"];

/// SGLang's knobs.
pub const SGLANG_KNOBS: &[Knob] = &[
    knob(
        "max_running_requests",
        Layer::Config,
        Kind::Int(1, 8192),
        "requests decoded together; default from the KV pool; higher raises throughput until TPOT bites",
    ),
    knob(
        "chunked_prefill_size",
        Layer::Config,
        Kind::Int(-1, 1_048_576),
        "prefill chunk in tokens (-1 disables chunking); default by GPU memory (2048/4096/8192/16384)",
    ),
    knob(
        "max_prefill_tokens",
        Layer::Config,
        Kind::Int(64, 1_048_576),
        "token budget of one prefill batch (default 16384)",
    ),
    knob(
        "mem_fraction_static",
        Layer::Config,
        Kind::Float(0.3, 0.98),
        "fraction of GPU memory for weights + KV pool; the rest is activations and CUDA graphs",
    ),
    knob(
        "schedule_policy",
        Layer::Config,
        Kind::Choice(SGLANG_SCHEDULE_POLICIES),
        "queue order: lpm = longest prefix match first (prefix reuse), fcfs = arrival",
    ),
    knob(
        "schedule_conservativeness",
        Layer::Config,
        Kind::Float(0.1, 3.0),
        "how much future decode KV admission reserves (lower admits more, retracts more)",
    ),
    knob(
        "disable_radix_cache",
        Layer::Config,
        Kind::Bool,
        "turn off the radix-tree prefix cache",
    ),
    knob(
        "cuda_graph_max_bs",
        Layer::Config,
        Kind::Int(1, 4096),
        "largest decode batch captured in a CUDA graph (default by GPU and TP)",
    ),
    knob(
        "disable_cuda_graph",
        Layer::Config,
        Kind::Bool,
        "no CUDA graphs: faster start, slower decode",
    ),
    knob(
        "page_size",
        Layer::Config,
        Kind::Int(1, 256),
        "KV page in tokens (1 = token-granular prefix matching)",
    ),
    knob(
        "context_length",
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
        "disable_overlap_schedule",
        Layer::Config,
        Kind::Bool,
        "schedule on the GPU's critical path instead of overlapping it (debugging)",
    ),
    knob(
        "enable_mixed_chunk",
        Layer::Config,
        Kind::Bool,
        "mix prefill chunks with decodes in one batch",
    ),
    knob(
        "enable_torch_compile",
        Layer::Config,
        Kind::Bool,
        "torch.compile the model (slower start; small batches decode faster)",
    ),
    knob(
        "stream_interval",
        Layer::Config,
        Kind::Int(1, 64),
        "tokens per streamed chunk",
    ),
    knob(
        "method",
        Layer::Quant,
        Kind::Choice(SGLANG_QUANT_METHODS),
        "weight quantization (--quantization)",
    ),
    knob(
        "kv_cache_quant",
        Layer::Quant,
        Kind::Choice(SGLANG_KV_DTYPES),
        "KV cache precision (--kv-cache-dtype)",
    ),
    knob(
        "checkpoint",
        Layer::Quant,
        Kind::Choice(&[]),
        "pre-quantized checkpoint served instead of the model",
    )
    .alternatives(),
    knob(
        "attention_backend",
        Layer::Kernel,
        Kind::Choice(SGLANG_ATTENTION_BACKENDS),
        "attention kernels (auto: fa3 on Hopper, trtllm_mha on Blackwell, else flashinfer)",
    ),
];
