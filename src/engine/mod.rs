//! Serving engines: their configuration surfaces (flags, defaults, validation) and, later,
//! their lifecycles behind the `Engine` trait.

pub mod adapter;
pub mod failure;
pub mod health;
pub mod metrics;
pub mod process;
pub mod vllm;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::recipe::Recipe;

/// Effective knob values of a llama.cpp recipe (explicit values; llama-server's defaults
/// where known).
pub fn llamacpp_defaults(r: &Recipe) -> BTreeMap<String, Value> {
    r.config.clone()
}
