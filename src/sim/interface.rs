//! The simulated engine's interface: the request it takes, the token output it streams,
//! why a request finished, what a step produced, its live counters, and why a boot failed.
//! The engine's parts (scheduler, memory plan, API server, validation) speak these types,
//! so none of them depends on the engine that ties them together.

use serde::Serialize;

/// Why the engine cannot start: vLLM's own error text, including the exception's class as
/// vLLM's log prints it (`ValueError: ...`, `torch.OutOfMemoryError: ...`).
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
    /// Which of the request's `n` sequences this is (0 for a plain request): sequences
    /// after the first draw their own output length and text.
    pub choice: u32,
    /// A stop string or stop token id completes at this output token count (the HTTP side
    /// finds it in the simulated text): the sequence finishes `Stop` there unless it ends
    /// sooner. Honoured with `ignore_eos` too, as vLLM does.
    pub stop_at: Option<u32>,
}

/// Why a request stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// Hit `max_tokens`.
    Length,
    /// Natural end of sequence, a stop string or a stop token id.
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
