//! SGLang: its allowlist ([`knobs`]), how a recipe becomes its command line ([`flags`]),
//! what an installed SGLang says it is and accepts ([`help`]), its defaults for a GPU
//! ([`defaults`], shared with forge's twin), how its log reads ([`logs`]), and the engine
//! behind the `Engine` trait ([`adapter`]), real or as forge's twin.

pub mod adapter;
pub mod defaults;
pub mod flags;
pub mod help;
pub mod knobs;
pub mod logs;

/// The model must be one SGLang can load: a local model directory or a well-formed
/// repository id (the same rule as vLLM's).
pub fn check_model(model: &str) -> anyhow::Result<()> {
    crate::engine::vllm::check_model(model)
}

/// SGLang's torch profiler writing into `dir` (`SGLANG_TORCH_PROFILER_DIR`, and the same
/// directory in the body of `/start_profile`).
pub fn torch_profiler(dir: &std::path::Path) -> crate::engine::adapter::ProfilerSetup {
    crate::engine::adapter::ProfilerSetup {
        env: vec![(
            "SGLANG_TORCH_PROFILER_DIR".into(),
            dir.display().to_string(),
        )],
        start_body: Some(profile_start_body(dir)),
        ..Default::default()
    }
}

/// The body of SGLang's `POST /start_profile` writing traces under `dir` (its
/// `ProfileReqInput.output_dir`).
pub fn profile_start_body(dir: &std::path::Path) -> serde_json::Value {
    serde_json::json!({"output_dir": dir.display().to_string()})
}
