//! TensorRT-LLM (`trtllm-serve serve`, PyTorch backend): its allowlist ([`knobs`]), its
//! defaults ([`defaults`]), the rules between knobs ([`legal`]), how a recipe becomes its
//! command line and `--extra_llm_api_options` YAML ([`flags`], [`yaml`]), what the installed
//! release says about itself ([`help`]), how its log reads ([`logs`]), and the engine
//! behind the `Engine` trait ([`adapter`]), real or as forge's twin.

pub mod adapter;
pub mod defaults;
pub mod flags;
pub mod help;
pub mod knobs;
pub mod legal;
pub mod logs;
pub mod yaml;

/// The model must be one TensorRT-LLM can load: a local model directory or a well-formed
/// repository id (the same rule as vLLM's).
pub fn check_model(model: &str) -> anyhow::Result<()> {
    crate::engine::vllm::check_model(model)
}
