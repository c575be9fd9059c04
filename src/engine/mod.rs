//! Serving engines: their configuration surfaces (flags, defaults, validation) and their
//! lifecycles behind the `Engine` trait — vLLM, SGLang and TensorRT-LLM (each also as
//! forge's simulated twin) and llama.cpp.

pub mod adapter;
pub mod allowlist;
pub mod deploy;
pub mod failure;
pub mod gates;
pub mod health;
pub mod knobs;
pub mod llamacpp;
pub mod metrics;
pub mod port_owner;
pub mod probe;
pub mod process;
pub mod sglang;
pub mod trtllm;
pub mod twin;
pub mod vllm;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::recipe::{EngineKind, Illegal, Recipe};

/// The recipe config base engine arguments `argv` set for an engine of `kind` (`forge tune
/// --engine-args`): each flag one a recipe carries, each value on the allowlist.
pub fn base_config(kind: EngineKind, argv: &[String]) -> Result<BTreeMap<String, Value>, Illegal> {
    if argv.is_empty() {
        return Ok(BTreeMap::new());
    }
    match kind {
        EngineKind::Vllm => vllm::recipe::config_from_args(argv),
        EngineKind::Llamacpp => llamacpp::flags::config_from_args(argv),
        EngineKind::Sglang => sglang::flags::config_from_args(argv),
        EngineKind::Trtllm => trtllm::flags::config_from_args(argv),
    }
}

/// Effective knob values of a llama.cpp recipe: its explicit values, and llama-server's
/// own defaults for the rest (see [`llamacpp::defaults`]).
pub fn llamacpp_defaults(r: &Recipe) -> BTreeMap<String, Value> {
    llamacpp::defaults(r)
}
