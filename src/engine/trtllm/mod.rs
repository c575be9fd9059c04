//! TensorRT-LLM: its allowlist ([`knobs`]), how a recipe becomes its command line ([`flags`]),
//! and the engine behind the `Engine` trait ([`adapter`]), real or as forge's twin.

pub mod adapter;
pub mod flags;
pub mod knobs;

/// The model must be one TensorRT-LLM can load: a local model directory or a well-formed
/// repository id (the same rule as vLLM's).
pub fn check_model(model: &str) -> anyhow::Result<()> {
    crate::engine::vllm::check_model(model)
}
