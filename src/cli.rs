//! Command-line types (clap derive) and nothing else: what the user typed, before
//! validation. Turning these into settings happens in each command's module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::{Endpoint, Timing};

/// forge tunes LLM serving deployments: give it a model, a GPU and a workload trace.
#[derive(Debug, Parser)]
#[command(name = "forge", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Debug logging on stderr.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// forge's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a workload against any OpenAI-compatible server and report its metrics.
    #[command(after_help = BENCH_AFTER_HELP)]
    Bench(BenchArgs),
    /// The built-in vLLM simulator: serve its HTTP API, or predict a config's metrics.
    #[command(subcommand)]
    Sim(SimCommand),
    /// A zero-latency OpenAI-compatible SSE server for measuring `forge bench` itself.
    #[command(hide = true)]
    LoopbackServer(LoopbackArgs),
}

/// `forge loopback-server` (hidden; used by `bench/loadgen.sh` and tests).
#[derive(Debug, Args)]
pub struct LoopbackArgs {
    /// Port on 127.0.0.1 (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Delay from receiving a request to its first token, ms.
    #[arg(long, default_value_t = 0.0)]
    pub ttft_ms: f64,
    /// Delay between tokens, ms.
    #[arg(long, default_value_t = 0.0)]
    pub itl_ms: f64,
    /// Model name served by /v1/models and echoed in chunks.
    #[arg(long, default_value = "loopback")]
    pub model: String,
    /// With zero delays, let chunks coalesce into one write instead of one write each.
    #[arg(long)]
    pub burst: bool,
}

/// Extra help for `forge bench`: metrics, outputs and exit status.
const BENCH_AFTER_HELP: &str = "\
Metrics follow `vllm bench serve` (TTFT, TPOT, ITL, E2EL, throughputs, goodput; JSON keys
match its result files), plus token-correct ITL, latency from the intended send time, failures
by kind and schedule accuracy. The summary goes to stdout, progress and warnings to stderr.

Exit status: 0 when the run completed (failed requests are data, counted in the result),
1 on errors (bad arguments or workload, no model to request), 2 on usage errors,
130 when interrupted (the requests that finished are still reported and written).";

/// `forge bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server root, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub base_url: String,
    /// Workload JSONL (one request a line).
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// API to call.
    #[arg(long, value_enum, default_value_t = Endpoint::Completions)]
    pub endpoint: Endpoint,
    /// Model name to request (default: the first id in /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// Cap on requests in flight (default: no cap). Requests due while the cap is reached
    /// wait client-side; that wait is recorded as schedule delay.
    #[arg(long, short = 'c', alias = "max-concurrency")]
    pub concurrency: Option<usize>,
    /// Requests per second for rate timing, or `inf` to send all at once (the default when
    /// rate timing is used without a rate).
    #[arg(long)]
    pub request_rate: Option<String>,
    /// Gamma shape of inter-arrival gaps: 1 = Poisson, < 1 burstier, > 1 smoother.
    #[arg(long, default_value_t = 1.0)]
    pub burstiness: f64,
    /// `trace` replays `arrival_offset_s`; `rate` generates arrivals. Default: trace when
    /// the workload has offsets and no --request-rate is given, else rate.
    #[arg(long, value_enum)]
    pub timing: Option<Timing>,
    /// Warm-up requests (fresh synthetic text, not measured).
    #[arg(long, default_value_t = 0)]
    pub num_warmups: usize,
    /// Goodput bounds, e.g. `ttft_ms=500,tpot_ms=50,e2el_ms=20000`.
    #[arg(long)]
    pub slo: Option<String>,
    /// Percentiles to report, e.g. `90,95,99`.
    #[arg(long, default_value = "90,95,99")]
    pub metric_percentiles: String,
    /// Do not pin output length with ignore_eos/min_tokens.
    #[arg(long)]
    pub no_ignore_eos: bool,
    /// Per-request deadline in seconds (server seconds, scaled by --time-scale).
    #[arg(long, default_value_t = 600.0)]
    pub request_timeout: f64,
    /// Seed for generated arrivals and warm-up text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// For a simulator on a scaled clock (`forge sim serve --sim-time-scale F`): wall
    /// seconds per server second. The schedule is compressed and durations rescaled.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// Write the result JSON here.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Include per-request lists (lengths, TTFTs, ITLs, texts, errors, send times) in the
    /// JSON, at its top level as vLLM writes them.
    #[arg(long)]
    pub save_detailed: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// `forge sim ...`.
#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Serve vLLM's HTTP API from the simulator. Takes `vllm serve` flags plus --sim-* flags.
    #[command(
        disable_help_flag = false,
        after_help = crate::sim::cli::SERVE_HELP
    )]
    Serve(SimRawArgs),
    /// Predict `forge bench` metrics for a config and workload without HTTP.
    #[command(after_help = crate::sim::cli::PREDICT_HELP)]
    Predict(SimRawArgs),
}

/// A model followed by `vllm serve`-style flags, parsed by the simulator's own
/// argparse-compatible parser (so errors read as vLLM's do).
#[derive(Debug, Args)]
pub struct SimRawArgs {
    /// Model id (built-in catalogue) or a directory with an HF config.json.
    pub model: String,
    /// `vllm serve` flags and --sim-* flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}
