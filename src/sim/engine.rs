//! The simulated engine: boot (memory plan, validation) and one scheduler step at a time.
//! Both the HTTP server and the offline predictor drive this same state machine, so they
//! agree by construction.
//!
//! INTERFACE STUB: bodies to be written by the sim-core work.

use serde::Serialize;

use super::model::ModelShape;
use crate::engine::vllm::VllmConfig;
use crate::hardware::GpuSpec;

/// Everything a simulated engine is built from.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// Model architecture.
    pub model: ModelShape,
    /// GPU (one of `tensor_parallel_size` identical GPUs).
    pub gpu: &'static GpuSpec,
    /// Resolved vLLM configuration.
    pub config: VllmConfig,
    /// Seed for everything random (noise, natural stop lengths).
    pub seed: u64,
    /// Run-to-run noise, percent (0 = deterministic timing).
    pub noise_pct: f64,
}

/// What booting reports (the values vLLM prints in its startup log).
#[derive(Debug, Clone, Serialize)]
pub struct BootInfo {
    /// Weight memory per GPU, GiB.
    pub weights_gib: f64,
    /// Simulated model loading time, s.
    pub load_seconds: f64,
    /// Memory left for the KV cache per GPU, GiB.
    pub kv_cache_gib: f64,
    /// KV cache capacity in tokens.
    pub kv_cache_tokens: u64,
    /// Context limit in force.
    pub max_model_len: u32,
    /// KV capacity ÷ max_model_len (vLLM's "Maximum concurrency ... Nx").
    pub max_concurrency: f64,
    /// CUDA-graph capture sizes (empty when eager).
    pub cudagraph_capture_sizes: Vec<u32>,
    /// Simulated graph capture / compile time, s.
    pub graph_capture_seconds: f64,
    /// Total simulated startup time, s (before the server accepts connections).
    pub startup_seconds: f64,
}

/// Why the engine cannot start: vLLM's own error text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BootError {
    /// Not enough memory (weights do not fit, no KV blocks, or KV below max_model_len).
    #[error("{0}")]
    Oom(String),
    /// An invalid combination of arguments (vLLM's ValueError).
    #[error("{0}")]
    Config(String),
}

/// A request handed to the engine.
#[derive(Debug, Clone)]
pub struct SimRequest {
    /// Caller-chosen unique id.
    pub id: u64,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// `max_tokens`.
    pub max_tokens: u32,
    /// `min_tokens`.
    pub min_tokens: u32,
    /// `ignore_eos`.
    pub ignore_eos: bool,
}

/// Why a request stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// Hit `max_tokens`.
    Length,
    /// Natural end of sequence.
    Stop,
}

/// Tokens a request produced, visible at the end of the step that reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenOutput {
    /// Request id.
    pub id: u64,
    /// New tokens in this step (1 without speculative decoding).
    pub new_tokens: u32,
    /// Output tokens so far, including these.
    pub total_tokens: u32,
    /// Prompt length.
    pub prompt_tokens: u32,
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: u32,
    /// Set when the request is done.
    pub finish: Option<FinishReason>,
}

/// The outcome of one engine step.
#[derive(Debug, Clone, Default)]
pub struct StepResult {
    /// Step period, seconds of simulated time.
    pub duration_s: f64,
    /// Tokens that become visible when the step ends.
    pub outputs: Vec<TokenOutput>,
    /// Tokens scheduled in the step.
    pub scheduled_tokens: u32,
}

/// Live engine counters (what `/metrics` exposes).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimStats {
    /// Requests running.
    pub running: usize,
    /// Requests waiting.
    pub waiting: usize,
    /// KV blocks in use ÷ total.
    pub kv_usage: f64,
    /// Prompt tokens looked up in the prefix cache.
    pub prefix_cache_queries: u64,
    /// Of which hits.
    pub prefix_cache_hits: u64,
    /// Preemptions so far.
    pub preemptions: u64,
    /// Prompt tokens processed.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generation_tokens: u64,
    /// Requests finished.
    pub requests_finished: u64,
}

/// The simulated engine.
#[derive(Debug)]
pub struct SimEngine {
    _private: (),
}

impl SimEngine {
    /// Plan memory, validate the config, and build the engine.
    pub fn boot(_setup: SimSetup) -> Result<(SimEngine, BootInfo), BootError> {
        todo!("sim core")
    }

    /// Context limit in force.
    pub fn max_model_len(&self) -> u32 {
        todo!("sim core")
    }

    /// Queue a request. Errors carry vLLM's 400 message (e.g. prompt longer than the
    /// context limit).
    pub fn submit(&mut self, _req: SimRequest) -> Result<(), String> {
        todo!("sim core")
    }

    /// Drop a request (client went away).
    pub fn abort(&mut self, _id: u64) {
        todo!("sim core")
    }

    /// True when nothing is running or waiting.
    pub fn is_idle(&self) -> bool {
        todo!("sim core")
    }

    /// Run one scheduler step starting at simulated time `now`.
    pub fn step(&mut self, _now: f64) -> StepResult {
        todo!("sim core")
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> SimStats {
        todo!("sim core")
    }
}
