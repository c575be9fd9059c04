//! llama.cpp's allowlist: every recipe field forge may set for `llama-server`, with its
//! layer, type and legal values (combinations are judged in [`super::legal`]). Layer 3 has
//! one knob, `patch`: which patch of the run's series the server is built with (no flag;
//! it picks the program, [`super::source`]).

use crate::engine::knobs::{Kind, Knob, knob};
use crate::recipe::Layer;

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
    knob(
        "patch",
        Layer::Kernel,
        Kind::Patch,
        "a patch of the run's series applied to the llama.cpp checkout (`forge tune --source … --patches DIR`): that build serves instead of the checkout's own",
    )
    .alternatives(),
    knob(
        "method",
        Layer::Quant,
        Kind::Choice(super::quant::GGUF_TYPES),
        "the weights' GGUF type: the model requantized with llama-quantize (with an importance matrix from the workload), served instead of the given file",
    )
    .alternatives(),
];
