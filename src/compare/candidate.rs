//! One row of `benchmark/candidates.jsonl`: every candidate the gate tried — failed,
//! skipped and SLA-failing ones included — with the campaign contract's keys, so the file
//! reads the same as the seed's (`../shared/notes/sota-loop.md`). Where the contract leaves
//! an object's contents open (`spec_decode{...}`, `memory{...}`), the fields below are
//! forge's. Every key is always written (`null` when unknown), so a reader never has to
//! guess whether a key was forgotten or not measured.

use serde::{Deserialize, Serialize};

/// What became of a candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Measured; the metrics can be trusted.
    Ok,
    /// Failed for a known reason other than memory.
    Failed,
    /// Ran out of GPU or host memory.
    Oom,
    /// The server or the benchmark timed out.
    Timeout,
    /// Not run on purpose (`failure_reason` says why).
    Skipped,
}

impl Status {
    /// The contract's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Oom => "oom",
            Status::Timeout => "timeout",
            Status::Skipped => "skipped",
        }
    }
}

/// The GPUs a candidate ran on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hardware {
    /// The GPU's name as the driver reports it (or the simulated GPU's).
    pub gpu_model: String,
    /// GPUs used.
    pub gpu_count: u32,
    /// `CUDA_VISIBLE_DEVICES` as given to the server.
    pub visible_devices: Option<String>,
}

/// The load a candidate was measured under.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// `random` (a default scenario) or `custom` (the user's workload file).
    pub kind: String,
    /// `chat`, `summarization`, or the workload file's name.
    pub scenario: String,
    /// The workload file replayed.
    pub dataset_path: Option<String>,
    /// Input tokens per request (fixed-length scenarios).
    pub input_len: Option<u32>,
    /// Output tokens per request (fixed-length scenarios).
    pub output_len: Option<u32>,
    /// Median input length.
    pub input_len_p50: Option<f64>,
    /// 95th-percentile input length.
    pub input_len_p95: Option<f64>,
    /// Median output length.
    pub output_len_p50: Option<f64>,
    /// 95th-percentile output length.
    pub output_len_p95: Option<f64>,
    /// Requests per run.
    pub num_prompts: usize,
    /// Requests per second offered (`null` = all at once).
    pub request_rate: Option<f64>,
    /// Cap on requests in flight (`null` = none).
    pub max_concurrency: Option<usize>,
    /// `/v1/completions` or `/v1/chat/completions`.
    pub endpoint: String,
}

/// The SLA and whether the candidate met it at its best rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaResult {
    /// Bound on median TTFT, ms.
    pub max_p50_ttft_ms: Option<f64>,
    /// Bound on median TPOT, ms.
    pub max_p50_tpot_ms: Option<f64>,
    /// Share of requests that must succeed.
    pub min_success_rate: f64,
    /// Bound on median end-to-end latency, ms (optional in the contract).
    pub max_p50_e2e_ms: Option<f64>,
    /// Met every bound.
    pub passed: bool,
}

/// What the benchmark measured (the run at the candidate's best rate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Metrics {
    pub request_throughput: Option<f64>,
    pub output_token_throughput: Option<f64>,
    pub total_token_throughput: Option<f64>,
    pub p50_ttft_ms: Option<f64>,
    pub mean_ttft_ms: Option<f64>,
    pub p99_ttft_ms: Option<f64>,
    pub p50_tpot_ms: Option<f64>,
    pub mean_tpot_ms: Option<f64>,
    pub p99_tpot_ms: Option<f64>,
    pub p50_e2e_ms: Option<f64>,
    pub mean_e2e_ms: Option<f64>,
    pub p99_e2e_ms: Option<f64>,
    pub success_rate: Option<f64>,
}

/// Speculative decoding, when the candidate used it (forge's fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SpecDecode {
    /// Turned on.
    pub enabled: bool,
    /// Method (`eagle3`, `ngram`, `mtp`, …).
    pub method: Option<String>,
    /// Draft tokens per step.
    pub num_speculative_tokens: Option<u32>,
    /// Accepted draft tokens / proposed, from the server's metrics.
    pub acceptance_rate: Option<f64>,
}

/// Prefix and KV cache facts the server reported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cache {
    /// Prefix caching on.
    pub prefix_cache_enabled: Option<bool>,
    /// Share of prompt tokens served from the prefix cache.
    pub prefix_cache_hit_rate: Option<f64>,
    /// KV cache capacity, tokens.
    pub kv_cache_tokens: Option<u64>,
    /// Peak share of the KV cache in use.
    pub kv_cache_utilization: Option<f64>,
}

/// Memory settings and use (forge's fields).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    /// The framework's memory knob and its value (`gpu_memory_utilization=0.9`,
    /// `mem_fraction_static=0.82`, `free_gpu_memory_fraction=0.75`).
    pub setting: Option<String>,
    /// Peak GPU memory used, GiB.
    pub peak_gpu_memory_gib: Option<f64>,
}

/// What was checked to be the same across frameworks, and what was not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Same number of GPUs as every other framework's candidates.
    pub same_gpu_count: bool,
    /// Same weights (content hash or resolved revision).
    pub same_model_weights: bool,
    /// Same tokenizer.
    pub same_tokenizer: bool,
    /// Same API endpoint.
    pub same_endpoint: bool,
    /// What differs, or how sameness was established.
    pub notes: Vec<String>,
}

/// Flags checked against each tool's own `--help` before running.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ValidatedFlags {
    /// The server's.
    pub server: Vec<String>,
    /// The benchmark client's.
    pub benchmark: Vec<String>,
}

/// Files behind the row (relative to the campaign directory).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Artifacts {
    /// The server's log.
    pub server_log: Option<String>,
    /// The benchmark's raw result JSON.
    pub raw_result: Option<String>,
    /// The server's `--help` as captured.
    pub server_help: Option<String>,
    /// The benchmark client's `--help` as captured.
    pub benchmark_help: Option<String>,
}

/// One candidate, as a line of `candidates.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)]
pub struct Candidate {
    pub framework: String,
    pub framework_version: Option<String>,
    pub framework_commit: Option<String>,
    pub candidate_id: String,
    pub model: String,
    pub status: Status,
    pub failure_reason: String,
    pub hardware: Hardware,
    pub workload: Workload,
    pub sla: SlaResult,
    pub metrics: Metrics,
    pub spec_decode: SpecDecode,
    pub cache: Cache,
    pub memory: Memory,
    pub normalization: Normalization,
    pub server_command: String,
    pub benchmark_command: String,
    pub validated_cli_flags: ValidatedFlags,
    pub artifacts: Artifacts,
}

impl Candidate {
    /// Counts for the winner: measured and within the SLA.
    pub fn eligible(&self) -> bool {
        self.status == Status::Ok && self.sla.passed
    }

    /// The contract's ranking key, best first when sorted descending: status ok, SLA
    /// passed, request throughput, output throughput, lower p50 TTFT, lower p50 TPOT,
    /// fewer GPUs. (Ties within the noise are decided by re-measuring, not here.)
    pub fn rank_key(&self) -> [f64; 7] {
        let m = &self.metrics;
        let or = |v: Option<f64>, d: f64| v.filter(|x| x.is_finite()).unwrap_or(d);
        [
            (self.status == Status::Ok) as u8 as f64,
            self.sla.passed as u8 as f64,
            or(m.request_throughput, 0.0),
            or(m.output_token_throughput, 0.0),
            -or(m.p50_ttft_ms, f64::MAX),
            -or(m.p50_tpot_ms, f64::MAX),
            -(self.hardware.gpu_count as f64),
        ]
    }
}

/// `candidates` best first by the contract's ranking.
pub fn ranked(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut v: Vec<&Candidate> = candidates.iter().collect();
    v.sort_by(|a, b| {
        b.rank_key()
            .partial_cmp(&a.rank_key())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    v
}

/// Each framework's best row of `scenario` (only SLA-passing ones when `eligible_only`),
/// best first by the contract's ranking.
pub fn best_per_framework<'a>(
    candidates: &'a [Candidate],
    scenario: &str,
    eligible_only: bool,
) -> Vec<&'a Candidate> {
    let mut seen: Vec<&str> = Vec::new();
    ranked(candidates)
        .into_iter()
        .filter(|c| c.workload.scenario == scenario && (c.eligible() || !eligible_only))
        .filter(|c| {
            let first = !seen.contains(&c.framework.as_str());
            seen.push(c.framework.as_str());
            first
        })
        .collect()
}
