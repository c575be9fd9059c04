//! What one replayed request measured, client side. The load generator fills these from
//! the wire; the simulator's predictor fills them from simulated time; both feed the same
//! aggregation in [`super::metrics`], so their JSON is computed by one piece of code.

use serde::{Deserialize, Serialize};

/// Why a request failed. Failures are counted by kind and never abort a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP connect refused/reset before any response.
    Connect,
    /// The server answered with a non-2xx status.
    HttpStatus,
    /// An `{"error": ...}` event (or a broken connection) after the stream started.
    MidStream,
    /// The per-request deadline passed.
    Timeout,
    /// The stream ended cleanly but with fewer tokens than were pinned, or without `[DONE]`.
    Truncated,
}

impl FailureKind {
    /// Every kind, in report order.
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::HttpStatus,
        FailureKind::MidStream,
        FailureKind::Timeout,
        FailureKind::Truncated,
    ];

    /// The snake_case name used in JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::HttpStatus => "http_status",
            FailureKind::MidStream => "mid_stream",
            FailureKind::Timeout => "timeout",
            FailureKind::Truncated => "truncated",
        }
    }
}

/// A failed request's kind and message (status code and body excerpt, error text, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The class.
    pub kind: FailureKind,
    /// Human-readable detail.
    pub message: String,
}

/// One request's measurements. Times are seconds; offsets are from the start of the
/// measured phase (first intended arrival is at offset 0), latencies are durations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Index of the request in the workload (warm-ups are not recorded).
    pub index: usize,
    /// When the schedule wanted the request sent.
    pub intended_s: f64,
    /// When the POST actually started (after the concurrency cap let it through).
    pub dispatched_s: f64,
    /// Prompt tokens (`usage.prompt_tokens`, else the local estimate).
    pub prompt_tokens: u64,
    /// Generated tokens (`usage.completion_tokens`, else counted from chunks).
    pub output_tokens: u64,
    /// True when `output_tokens` had to be estimated (no usage reported).
    pub output_tokens_estimated: bool,
    /// Dispatch → first SSE message with non-empty `choices`.
    pub ttft_s: Option<f64>,
    /// Dispatch → first chunk with non-empty text (chat's first chunk is role-only).
    pub first_content_s: Option<f64>,
    /// Gap between consecutive token-carrying chunks, one sample per chunk after the first.
    pub itl_s: Vec<f64>,
    /// Tokens carried by each chunk after the first (same length as `itl_s`), from
    /// `continuous_usage_stats` when the server sends it, else 1 per chunk.
    pub itl_tokens: Vec<u32>,
    /// Dispatch → last chunk carrying `choices`.
    pub e2el_s: Option<f64>,
    /// Generated text, kept for accuracy checks and `--save-detailed`.
    pub generated_text: String,
    /// Set when the request failed.
    pub failure: Option<Failure>,
}

impl RequestRecord {
    /// True when the request completed successfully.
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// Time spent waiting client-side for a concurrency slot.
    pub fn queue_delay_s(&self) -> f64 {
        (self.dispatched_s - self.intended_s).max(0.0)
    }

    /// Time per output token after the first: (E2EL − TTFT)/(out − 1), for out > 1.
    pub fn tpot_s(&self) -> Option<f64> {
        match (self.ttft_s, self.e2el_s) {
            (Some(t), Some(e)) if self.output_tokens > 1 => {
                Some((e - t) / (self.output_tokens - 1) as f64)
            }
            _ => None,
        }
    }
}
