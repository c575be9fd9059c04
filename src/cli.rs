//! Command-line types (clap derive) and nothing else: what the user typed, before
//! validation. Turning these into settings happens in each command's module.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::bench::LoadArgs;
use crate::hardware::Device;
use crate::record::Objective;
use crate::report::ReportFormat;

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
    /// Tune a deployment: propose, boot, replay, score, keep or revert, repeat.
    Tune(Box<TuneCli>),
    /// Find each framework's best deployment under one workload and SLA, and rank them.
    Compare(Box<CompareCli>),
    /// Where a compare campaign's target framework stands against the best rival.
    Gap(GapArgs),
    /// Analyze torch-profiler traces: where the GPU time goes.
    #[command(subcommand)]
    Trace(TraceCmd),
    /// Capture torch-profiler traces of a serving engine (prefill and decode) and analyze
    /// them.
    Profile(ProfileArgs),
    /// Close the gap to the best framework by patching the target engine's source: decide
    /// the gap, profile, propose a patch, build, check the answers, measure, keep or revert.
    #[command(after_help = CAMPAIGN_AFTER_HELP)]
    Campaign(Box<CampaignCli>),
    /// Summarise a run: baseline, best, gain with its interval, every experiment, failures.
    Report(ReportArgs),
    /// Show or validate a playbook.
    #[command(subcommand)]
    Playbook(PlaybookCmd),
    /// Work with recipes.
    #[command(subcommand)]
    Recipe(RecipeCmd),
    /// Create or inspect workloads.
    #[command(subcommand)]
    Workload(WorkloadCmd),
    /// A zero-latency OpenAI-compatible SSE server for measuring `forge bench` itself.
    #[command(hide = true)]
    LoopbackServer(LoopbackArgs),
    /// Check this machine for a tuning run: engine, GPUs, NVML, API key, disk.
    #[command(after_help = DOCTOR_ENV_HELP)]
    Doctor(DoctorArgs),
}

/// `forge loopback-server` (hidden; used by `bench/loadgen.sh` and tests).
#[derive(Debug, Args)]
pub struct LoopbackArgs {
    /// Port on 127.0.0.1 (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Delay from receiving a request to its first token, ms.
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::millis())]
    pub ttft_ms: f64,
    /// Delay between tokens, ms.
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::millis())]
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

Exit status: 0 when the run completed with at most --max-failed-pct of its requests failed
(failed requests are data, counted in the result), 1 on errors (bad arguments or workload, no
model to request), 2 on usage errors, 3 when no request completed, 4 when more than
--max-failed-pct failed (the summary and JSON are written either way), 130 when interrupted
(the requests that finished are still reported and written).";

/// `forge bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Server root, e.g. http://127.0.0.1:8000.
    #[arg(long)]
    pub base_url: String,
    /// Workload JSONL (one request a line).
    #[arg(long, short = 'w')]
    pub workload: PathBuf,
    /// Model name to request (default: the first id in /v1/models).
    #[arg(long)]
    pub model: Option<String>,
    /// How the load is offered.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Per-request deadline in seconds (server seconds, scaled by --time-scale).
    #[arg(long, default_value_t = 600.0, value_parser = crate::bounds::seconds())]
    pub request_timeout: f64,
    /// Seed for generated arrivals and warm-up text.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Exit with status 4 when more than this percent of the requests failed (the summary
    /// and JSON are still written); status 3 when none completed.
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::percent())]
    pub max_failed_pct: f64,
    /// For a simulator on a scaled clock (`forge sim serve --sim-time-scale F`): wall
    /// seconds per server second. The schedule is compressed and durations rescaled.
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::clock_scale())]
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
    /// Serve vLLM's HTTP API from the simulator (with --engine sglang|trtllm: SGLang's or
    /// TensorRT-LLM's). Takes that framework's serve flags plus --sim-* flags.
    #[command(disable_help_flag = true, after_help = SIM_SERVE_HELP)]
    Serve(SimRawArgs),
    /// Predict `forge bench` metrics for a config and workload without HTTP.
    #[command(disable_help_flag = true, after_help = SIM_PREDICT_HELP)]
    Predict(SimRawArgs),
    /// The simulated engine-core worker `--sim-spawn-child` starts (sleeps until killed).
    #[command(hide = true)]
    Worker,
}

/// A model followed by `vllm serve`-style flags, parsed by the simulator's own
/// argparse-compatible parser (so errors read as vLLM's do).
#[derive(Debug, Args)]
pub struct SimRawArgs {
    /// Print help: `--help` this command's, `--help=all` (or any vLLM help key) the vLLM
    /// flag listing, as `vllm serve --help=KEY` does.
    #[arg(short = 'h', long = "help", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub help: Option<String>,
    /// The framework to stand in for: vllm (default), sglang (`sglang serve` flags:
    /// `--model-path M ...`) or trtllm (`trtllm-serve serve` options: `MODEL ...`).
    #[arg(long, value_enum)]
    pub engine: Option<crate::recipe::EngineKind>,
    /// Model id (built-in catalogue) or a directory with an HF config.json.
    #[arg(allow_hyphen_values = true)]
    pub model: Option<String>,
    /// `vllm serve` flags and --sim-* flags.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Extra help for `forge sim serve`.
pub const SIM_SERVE_HELP: &str = "\
Runs a simulated vLLM server: vLLM's CLI flags, startup log, HTTP API (/health,
/v1/models, /version, /metrics, /v1/completions, /v1/chat/completions with SSE) and
failure modes, on a simulated GPU. Connections are refused until the engine is up.

vLLM flags (the most used; `forge sim serve MODEL --help=all` lists every one):
  --max-num-seqs N  --max-num-batched-tokens N  --max-model-len N
  --gpu-memory-utilization F  --kv-cache-dtype {auto,bfloat16,float16,fp8,...}
  --enable-prefix-caching / --disable-prefix-caching  --block-size N
  -tp N  -pp N  -dp N  -q METHOD  --dtype D  --enforce-eager  -O0..-O3
  --speculative-config/-sc JSON  --served-model-name NAME...  --api-key KEY
  --host HOST (default 127.0.0.1)  --port PORT (default 8000; 0 = any free port)

Simulator flags:
  --sim-gpu NAME            GPU to simulate (default H100; e.g. A100-80GB, L4, H200)
  --sim-time-scale F        wall seconds per simulated second (default 1; 0.1 = 10x faster)
  --sim-boot-time-scale F   the same for the startup delay only (default: --sim-time-scale)
  --sim-seed N              seed for text and noise (default 0)
  --sim-noise PCT           run-to-run timing noise, percent (default 0)

Fault injection:
  --sim-fail-startup oom|config   fail at startup like vLLM (exit 1)
  --sim-slow-start S              S extra wall seconds before the port opens
  --sim-crash-after N             engine dies once N requests have started streaming
  --sim-garbage-after N           streams turn into invalid SSE after N chunks
  --sim-ignore-sigterm            ignore SIGTERM/SIGINT (only SIGKILL works)
  --sim-spawn-child               start a worker process that survives a SIGKILL of
                                  the server (only a process-group kill reaches it)

Exit codes: 2 bad command line, 1 config cannot boot or engine died, 0 on SIGTERM.";

/// Extra help for `forge sim predict`.
pub const SIM_PREDICT_HELP: &str = "\
Predicts `forge bench` metrics for a vLLM config and a workload without HTTP, in
milliseconds, with the same engine model `forge sim serve` runs. Prints the result JSON.

Takes the vLLM flags (with --engine sglang|trtllm: that framework's) and
--sim-gpu/--sim-seed/--sim-noise of `forge sim serve`, plus:
  --workload FILE            workload JSONL (required)
  --endpoint completions|chat
  --concurrency N, -c N      cap on requests in flight
  --request-rate R|inf       requests per second (default inf)
  --burstiness B             gamma shape of arrival gaps (default 1 = Poisson)
  --timing trace|rate        default: trace when the workload has arrival offsets and no
                             --request-rate is given, else rate
  --num-warmups N            warm-up requests, not measured
  --slo ttft_ms=..,tpot_ms=..,e2el_ms=..   goodput bounds
  --metric-percentiles 90,95,99
  --no-ignore-eos            let outputs end naturally instead of pinning their length
  --seed N                   seed for generated arrivals
  --output FILE              also write the JSON here (atomically)
  --save-detailed            include per-request lists
  --offline                  an offline benchmark: the engine driven in process with no API
                             server (trtllm-bench, SGLang's bench_offline_throughput, vLLM's
                             `vllm bench throughput`)

The load flags are `forge bench`'s, resolved by the same code: what bench refuses, predict
refuses with the same message.

Exit codes: 2 bad command line, 1 bad value or config cannot boot (vLLM's message), 0
otherwise.";

/// `forge tune` and `forge tune resume`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct TuneCli {
    /// `resume` continues an interrupted run.
    #[command(subcommand)]
    pub action: Option<TuneAction>,
    /// Options of a new run.
    #[command(flatten)]
    pub args: TuneArgs,
}

/// `forge compare`: the fair cross-framework gate.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CompareCli {
    /// `resume DIR` continues an interrupted campaign.
    #[command(subcommand)]
    pub action: Option<CompareAction>,
    /// Options of a new campaign.
    #[command(flatten)]
    pub args: CompareArgs,
}

/// `forge trace ...`.
#[derive(Debug, Subcommand)]
pub enum TraceCmd {
    /// Where the GPU time goes in a torch-profiler trace: kernel, overlap-opportunity and
    /// fuse-opportunity tables and the layer pipeline, per stage (read as a stream, never
    /// whole).
    Analyze(TraceAnalyzeArgs),
}

/// `forge trace analyze`.
#[derive(Debug, Args)]
#[command(
    after_help = "A directory is searched four levels deep for `*trace*.json[.gz]`; per stage named \
in the path (prefill/extend, decode) it gives the lowest tensor-parallel rank (tp0, TP-0, rank0, \
worker0) and, among those, the newest file."
)]
pub struct TraceAnalyzeArgs {
    /// The trace (`.json` or `.json.gz`, a `{"traceEvents": […]}` object or a bare array),
    /// or a profile directory.
    pub trace: PathBuf,
    /// The framework that wrote it (where fused implementations are looked up).
    #[arg(long, value_enum, default_value_t = crate::trace::Framework::Auto)]
    pub framework: crate::trace::Framework,
    /// The served model's `config.json` (`num_hidden_layers` sets the layer count).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which stage to report (default: each stage found, one section each).
    #[arg(long, value_enum)]
    pub stage: Option<TraceStage>,
    /// The kernel that marks each layer of the pipeline (a substring of its name; default:
    /// found from launch counts).
    #[arg(long)]
    pub anchor: Option<String>,
    /// A second trace (or directory) to set side by side: another framework, or the same
    /// engine after a patch.
    #[arg(long, value_name = "TRACE2")]
    pub compare: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TraceFormat::Md)]
    pub format: TraceFormat,
}

/// `--stage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceStage {
    /// Prompt processing (SGLang's extend).
    Prefill,
    /// Token generation.
    Decode,
    /// Steps batching both.
    Mixed,
    /// Every kernel in one section.
    All,
}

/// How `forge trace analyze` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// Markdown tables.
    Md,
    /// Aligned plain-text tables.
    Text,
    /// JSON.
    Json,
}

/// `forge profile`.
#[derive(Debug, Args)]
#[command(
    group(clap::ArgGroup::new("server").required(true).args(["campaign", "base_url"])),
    after_help = "With --campaign forge boots the framework's best gated deployment with its \
torch profiler on (vLLM ≥ 0.13: --profiler-config; older vLLM: VLLM_TORCH_PROFILER_DIR; SGLang: \
SGLANG_TORCH_PROFILER_DIR), captures prefill (input L → 1 token) and decode (1 token → output L) \
at the median lengths of the scenario with the longest requests (--scenario picks another) through \
/start_profile and /stop_profile, files the traces under \
CAMPAIGN/profiles/FRAMEWORK/{prefill,decode}/ with analysis.md beside them, and stops the server. \
With --base-url the server is already running with its profiler on and writes to --trace-dir."
)]
pub struct ProfileArgs {
    /// A `forge compare` campaign: profile this framework's best deployment.
    #[arg(long)]
    pub campaign: Option<PathBuf>,
    /// A running server, profiler on (`http://127.0.0.1:8000`).
    #[arg(long, requires = "trace_dir")]
    pub base_url: Option<String>,
    /// The framework: vllm or sglang (TensorRT-LLM has no profiler over HTTP).
    #[arg(long)]
    pub framework: String,
    /// Where the running server writes its traces (its `torch_profiler_dir`, or
    /// `SGLANG_TORCH_PROFILER_DIR`).
    #[arg(long)]
    pub trace_dir: Option<PathBuf>,
    /// The campaign scenario whose lengths to use (default: the one with the longest
    /// requests).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Prompt tokens of the prefill capture (default: the scenario's; 1024 with
    /// --base-url).
    #[arg(long, value_parser = crate::bounds::count_u32(1, 1_000_000))]
    pub input_len: Option<u32>,
    /// Output tokens of the decode capture (default: the scenario's; 256 with --base-url).
    #[arg(long, value_parser = crate::bounds::count_u32(1, 1_000_000))]
    pub output_len: Option<u32>,
    /// Requests per capture, sent at once.
    #[arg(long, default_value_t = 8, value_parser = crate::bounds::count(1, 4096))]
    pub batch: usize,
    /// The model name requests carry (--base-url; default: the first of `/v1/models`).
    #[arg(long)]
    pub model: Option<String>,
    /// The served model's `config.json` (its layer count for the pipeline).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output directory (default: CAMPAIGN/profiles/FRAMEWORK, or ./profiles/FRAMEWORK).
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    /// Seconds to wait for the traces after `/stop_profile`.
    #[arg(long, default_value_t = 300, value_parser = crate::bounds::count(1, 86_400))]
    pub wait_s: usize,
}

/// `forge gap`.
#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 ahead or tied (within 1 %) in every scenario; 10 behind; \
11 fails the SLA where another framework passes; 12 unresolved (the interval straddles ±1 % \
after the pair budget); 13 no framework meets the SLA."
)]
pub struct GapArgs {
    /// The compare campaign's directory.
    #[arg(long)]
    pub campaign: PathBuf,
    /// The framework whose standing is decided.
    #[arg(long, default_value = "vllm")]
    pub target: String,
    /// Most interleaved pairs per scenario.
    #[arg(long, default_value_t = 6, value_parser = crate::bounds::count(2, 100))]
    pub max_pairs: usize,
}

/// Extra help for `forge campaign`: what it writes and its exit status.
const CAMPAIGN_AFTER_HELP: &str = "\
The campaign directory holds campaign.json (its settings), benchmark/ (the fixed benchmark \
and the latest, winning commands), analysis/root-cause.md, patches/ (every diff tried and its \
build log), ledgers/ (attempt-ledger.md, optimization-ledger.md, source-idea-ledger.md, \
lineage.jsonl), checkpoint.md and final_report.md.

Exit status: 0 the target is ahead or tied within 1 %; 10 stopped still behind (proposals \
exhausted, a budget, or an external cause); 12 no gap could be shown (the interval straddles \
±1 % after --gap-pairs pairs); 1 an error.";

/// `forge campaign`: a new campaign, or `resume DIR`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CampaignCli {
    /// `resume DIR` continues an interrupted campaign.
    #[command(subcommand)]
    pub action: Option<CampaignAction>,
    /// Options of a new campaign.
    #[command(flatten)]
    pub args: CampaignArgs,
}

/// `forge campaign resume DIR`.
#[derive(Debug, Subcommand)]
pub enum CampaignAction {
    /// Continue an interrupted campaign with the settings it started with.
    Resume {
        /// The campaign directory.
        dir: PathBuf,
    },
}

/// Options of `forge campaign`.
#[derive(Debug, Args)]
pub struct CampaignArgs {
    /// The model served (a GGUF file for llama.cpp; a Hugging Face id or a directory for
    /// vLLM).
    #[arg(long, short = 'm')]
    pub model: Option<PathBuf>,
    /// The engine whose source is patched.
    #[arg(long, value_enum, default_value = "vllm")]
    pub target: crate::campaign::settings::Target,
    /// The target engine's git checkout (clean; the campaign works on its own branch).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// The fair gate to start from (vLLM): a `forge compare` campaign directory after
    /// `forge gap --target vllm`. The best rival there is the competitor, launched exactly
    /// as the gate launched it, and the target serves its own winning flags.
    #[arg(long, conflicts_with_all = ["leader_server", "leader_args", "leader_framework"])]
    pub compare: Option<PathBuf>,
    /// With --compare: the gate's scenario to close (default: where the target is furthest
    /// behind).
    #[arg(long, requires = "compare")]
    pub scenario: Option<String>,
    /// The competitor's server: for llama.cpp, a stock `llama-server` (its shared libraries
    /// beside it).
    #[arg(long)]
    pub leader_server: Option<PathBuf>,
    /// The competitor's arguments after --leader-server (repeat the flag; `{port}` is
    /// replaced by the port it must serve on). For llama.cpp the target's own arguments are
    /// used instead.
    #[arg(long = "leader-arg", allow_hyphen_values = true)]
    pub leader_args: Vec<String>,
    /// The competitor's name in reports (default: stock llama.cpp for llama.cpp, else the
    /// program's name).
    #[arg(long)]
    pub leader_name: Option<String>,
    /// The competitor's framework (vllm, sglang): its torch profiler is switched on that
    /// framework's way so each round can profile it beside the target.
    #[arg(long, value_enum)]
    pub leader_framework: Option<crate::trace::Framework>,
    /// vLLM: the interpreter of the environment vLLM is installed in (editable, from the
    /// checkout).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// vLLM: install with this `uv` (`uv pip install --editable`, the current docs) instead
    /// of `python -m pip`.
    #[arg(long)]
    pub uv: Option<PathBuf>,
    /// A patch series: every *.diff / *.patch file, tried in name order.
    #[arg(long)]
    pub patches: Option<PathBuf>,
    /// The LLM agent that proposes patches, provider/model (its key from the environment).
    #[arg(long, conflicts_with = "patches")]
    pub llm: Option<String>,
    /// The LLM provider's base URL (a proxy or a local server).
    #[arg(long)]
    pub llm_base_url: Option<String>,
    /// Reference prompts: the first requests of a workload (JSONL); default: four built-in
    /// smoke prompts, labelled so.
    #[arg(long)]
    pub workload: Option<PathBuf>,
    /// How many prompts of the workload to use.
    #[arg(long, default_value_t = 4, value_parser = crate::bounds::count(1, 64))]
    pub prompts: usize,
    /// Concurrent requests per measurement.
    #[arg(long, default_value_t = 4, value_parser = crate::bounds::count(1, 256))]
    pub concurrent: usize,
    /// Output tokens per measured request.
    #[arg(long, default_value_t = 48, value_parser = crate::bounds::count(1, 8192))]
    pub output_tokens: usize,
    /// Tokens per reference answer.
    #[arg(long, default_value_t = 16, value_parser = crate::bounds::count(1, 4096))]
    pub answer_tokens: usize,
    /// Where the engine is built (outside the checkout; default: DIR/build).
    #[arg(long)]
    pub build_dir: Option<PathBuf>,
    /// The campaign directory (default: ./forge-campaign).
    #[arg(long, default_value = "forge-campaign")]
    pub dir: PathBuf,
    /// The branch the campaign commits to in the checkout.
    #[arg(long, default_value = "forge-campaign")]
    pub branch: String,
    /// Attempts per round before the gap is decided again (each on the latest kept
    /// commit; 1 = one patch per round).
    #[arg(long, default_value_t = 4, value_parser = crate::bounds::count(1, 100))]
    pub attempts_per_round: usize,
    /// Most interleaved pairs per gap decision.
    #[arg(long, default_value_t = 6, value_parser = crate::bounds::count(2, 100))]
    pub gap_pairs: usize,
    /// The gap's tie threshold, %: the contract's 1 % unless this machine's own run-to-run
    /// noise cannot resolve it (the reports say so, with the noise measured).
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::percent())]
    pub tie_threshold: f64,
    /// Stop after this many rounds.
    #[arg(long, value_parser = crate::bounds::count_u32(1, 10_000))]
    pub max_rounds: Option<u32>,
    /// Stop after this many hours of campaign time.
    #[arg(long, value_parser = crate::bounds::hours())]
    pub max_hours: Option<f64>,
    /// Stop after this many dollars (LLM spend + machine time at --gpu-hour-usd).
    #[arg(long, value_parser = crate::bounds::dollars())]
    pub max_dollars: Option<f64>,
    /// What an hour of this machine costs, USD.
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::dollars())]
    pub gpu_hour_usd: f64,
    /// Label the reports as a flow check (a CPU stand-in for a GPU campaign).
    #[arg(long)]
    pub flow_check: bool,
}

/// `forge compare resume DIR`.
#[derive(Debug, Subcommand)]
pub enum CompareAction {
    /// Continue an interrupted campaign with the settings it started with.
    Resume {
        /// The campaign directory.
        dir: PathBuf,
    },
}

/// Options of `forge compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The model every framework serves (Hugging Face id, local directory, or GGUF for
    /// llama.cpp).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// Frameworks to compare, comma-separated: vllm, sglang, trtllm, llamacpp.
    #[arg(long, default_value = "vllm,sglang,trtllm")]
    pub frameworks: String,
    /// The seed's fixed scenarios, comma-separated (chat: 1000/1000, summarization:
    /// 8000/1000, 80 random prompts each).
    #[arg(
        long,
        default_value = "chat,summarization",
        conflicts_with = "workload"
    )]
    pub scenarios: String,
    /// A production workload (JSONL) replacing the fixed scenarios.
    #[arg(long, short = 'w')]
    pub workload: Option<PathBuf>,
    /// The SLA: p50_ttft_ms, p50_tpot_ms, success_rate, p50_e2e_ms (any subset; `none`
    /// drops a latency bound).
    #[arg(
        long,
        default_value = "p50_ttft_ms=1500,p50_tpot_ms=30,success_rate=0.99"
    )]
    pub sla: String,
    /// Experiments each framework's search may spend (its baseline included).
    #[arg(long, default_value_t = 4, value_parser = crate::bounds::count_u32(1, 1_000))]
    pub budget: u32,
    /// Candidates per framework taken into the gate (its baseline and newest kept recipes).
    #[arg(long, default_value_t = 3, value_parser = crate::bounds::count(1, 100))]
    pub candidates: usize,
    /// Concurrency caps to search under, comma-separated (`none` = no cap).
    #[arg(long, default_value = "none")]
    pub max_concurrency: String,
    /// Lowest and highest request rate of the search, req/s (`LO,HI`).
    #[arg(long, default_value = "0.25,16")]
    pub rate_bounds: String,
    /// Run forge's simulated twins instead of the real engines.
    #[arg(long)]
    pub dry_run: bool,
    /// The GPU the twins model (implies --dry-run).
    #[arg(long)]
    pub sim_gpu: Option<String>,
    /// Run-to-run noise of the twins, %.
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::percent())]
    pub sim_noise: f64,
    /// GPU backend of the real engines: cuda, rocm, or cpu.
    #[arg(long, short = 'd', value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// A framework's launcher instead of its default (`llamacpp=/opt/llama-server`);
    /// repeatable.
    #[arg(long = "engine-cmd")]
    pub engine_cmds: Vec<String>,
    /// Seconds a server may take to become ready.
    #[arg(long, default_value_t = 600.0, value_parser = crate::bounds::seconds())]
    pub boot_timeout: f64,
    /// The campaign directory (default: a new one under .forge/campaigns/).
    #[arg(long)]
    pub campaign_dir: Option<PathBuf>,
    /// Seed of the scenarios, the searches and the load.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The searches' accuracy floor (agreement with the baseline's answers).
    #[arg(long, default_value_t = 0.99, value_parser = crate::bounds::fraction())]
    pub accuracy_floor: f64,
    /// Most paired repeats per keep/revert decision of the searches (2: a search only
    /// nominates candidates, and the gate measures every one of them on the full
    /// scenarios; `bench/gate_cost.sh`).
    #[arg(long, default_value_t = 2, value_parser = crate::bounds::count(1, 1_000))]
    pub max_repeats: usize,
}

/// `forge tune resume [RUN_DIR]`.
#[derive(Debug, Subcommand)]
pub enum TuneAction {
    /// Resume an interrupted run (RUN, default: the latest under --run-dir) with every
    /// setting and budget it started with, spend included.
    Resume(ResumeArgs),
}

/// `forge tune resume` options.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Run directory (default: the latest interrupted run under --run-dir).
    pub run: Option<PathBuf>,
    /// Store directory to search for the latest interrupted run.
    #[arg(long, default_value = ".forge")]
    pub run_dir: PathBuf,
}

/// Options of `forge tune` (the original's flags, plus forge's own).
#[derive(Debug, Args, Clone)]
#[command(
    mut_arg("concurrency", |a| a
        .default_value("8")
        .help("Max concurrent requests during benchmarking")),
    mut_arg("slo", |a| a
        .help("SLA: `ttft_ms=..,tpot_ms=..,e2el_ms=..` (p99 bounds; goodput counts requests meeting all)")),
    mut_arg("num_warmups", |a| a
        .help("Warm-up requests before each measured run (default: a tenth of the workload, 1 to 4)")),
    mut_arg("metric_percentiles", |a| a.hide(true)),
)]
pub struct TuneArgs {
    /// Hugging Face model id or local path (GGUF file for llama.cpp).
    #[arg(long, short = 'm')]
    pub model: Option<String>,
    /// GPU backend: cuda, rocm, or cpu.
    #[arg(long, short = 'd', value_enum, default_value_t = Device::Cuda)]
    pub device: Device,
    /// Workload JSONL.
    #[arg(long, short = 'w')]
    pub workload: Option<PathBuf>,
    /// Custom playbook (default: the bundled one for the engine).
    #[arg(long)]
    pub playbook: Option<PathBuf>,
    /// Agent LLM as provider/model, or `builtin`; the built-in agent also runs when the
    /// provider's key is not in the environment.
    #[arg(long, default_value = "anthropic/claude-sonnet-4-6")]
    pub llm: String,
    /// Base URL replacing the provider's (its API shape is kept: Anthropic or
    /// OpenAI-compatible); a provider forge does not know is called in the OpenAI shape, with
    /// the key, if any, from FORGE_LLM_API_KEY.
    #[arg(long)]
    pub llm_base_url: Option<String>,
    /// YAML price table for LLM spend, `provider/model: {input: X, output: Y}` in USD per
    /// million tokens (default: $FORGE_LLM_PRICES, ~/.config/forge/prices.yaml, built-in).
    #[arg(long)]
    pub llm_prices: Option<PathBuf>,
    /// How the workload is replayed for each measurement.
    #[command(flatten)]
    pub load: LoadArgs,
    /// Experiment budget across all layers (the baseline counts as one; the final
    /// confirmation of the best against the baseline does not).
    #[arg(long, default_value_t = 50, value_parser = crate::bounds::count_u32(1, 100_000))]
    pub max_experiments: u32,
    /// Cap on layer-1 (config) experiments, the baseline included, before escalating to
    /// quantization.
    #[arg(long, value_parser = crate::bounds::count_u32(1, 100_000))]
    pub max_config_experiments: Option<u32>,
    /// Cap on layer-2 (quantization) experiments.
    #[arg(long, value_parser = crate::bounds::count_u32(1, 100_000))]
    pub max_quant_experiments: Option<u32>,
    /// Time budget: hours of experiment wall time, summed across resumes.
    #[arg(long, default_value_t = 12.0, value_parser = crate::bounds::hours())]
    pub max_hours: f64,
    /// LLM spend cap, USD.
    #[arg(long, value_parser = crate::bounds::dollars())]
    pub max_dollars: Option<f64>,
    /// Minimum accuracy relative to the baseline (0..1).
    #[arg(long, default_value_t = 0.99, value_parser = crate::bounds::fraction())]
    pub accuracy_floor: f64,
    /// Minimum improvement worth keeping, percent.
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::percent())]
    pub min_improvement_pct: f64,
    /// Store directory.
    #[arg(long, default_value = ".forge")]
    pub run_dir: PathBuf,
    /// Use the built-in simulator instead of a real engine (the detected GPU, or --sim-gpu).
    #[arg(long)]
    pub dry_run: bool,
    /// Skip layer 1 (config).
    #[arg(long)]
    pub skip_config: bool,
    /// Skip layer 2 (quantization).
    #[arg(long)]
    pub skip_quant: bool,
    /// Skip layer 3 (kernels).
    #[arg(long)]
    pub skip_kernel: bool,
    /// Start at this layer (1 config, 2 quant, 3 kernel).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=3))]
    pub start_layer: Option<u8>,
    /// Engine: vllm, sim (vLLM's simulator, same as --dry-run), llamacpp, sglang or trtllm
    /// (with --dry-run: forge's simulated twin of SGLang or TensorRT-LLM).
    #[arg(long, value_enum, default_value_t = EngineArg::Vllm)]
    pub engine: EngineArg,
    /// Launcher for the engine, e.g. "python -m vllm.entrypoints.cli.main" or a container
    /// wrapper; split on whitespace into argv (never run through a shell).
    #[arg(long)]
    pub engine_cmd: Option<String>,
    /// Base engine arguments every experiment starts from, e.g. "--max-model-len 8192"
    /// (split like a shell would, never run by one; each value checked by the engine's
    /// allowlist; recorded in config.json). Only serving flags a recipe carries.
    #[arg(long, allow_hyphen_values = true)]
    pub engine_args: Option<String>,
    /// Layer 3 from source (llama.cpp): the engine's git checkout (a clean tree). Its own
    /// build serves the baseline; each patch of --patches is a layer-3 candidate, built once
    /// into the run directory, the checkout put back after each build.
    #[arg(long, requires = "patches")]
    pub source: Option<PathBuf>,
    /// The patch series for --source: every *.diff and *.patch file of the directory.
    #[arg(long, requires = "source")]
    pub patches: Option<PathBuf>,
    /// Where --source is built (outside the checkout; default: a directory per checkout
    /// under --run-dir, kept between runs so builds are incremental).
    #[arg(long, requires = "source")]
    pub build_dir: Option<PathBuf>,
    /// Layer 2 on llama.cpp: the GGUF types the model is requantized to, comma-separated
    /// (default: q8_0,q6_k,q5_k_m,q4_k_m,iq4_xs).
    #[arg(long, value_delimiter = ',')]
    pub quant_types: Option<Vec<String>>,
    /// Where llama-quantize and llama-imatrix are (default: beside llama-server, else PATH).
    #[arg(long)]
    pub quant_tools: Option<PathBuf>,
    /// Prompts of the workload, stratified by length, that layer 2 calibrates on: the
    /// importance matrix (llama.cpp) or llm-compressor's calibration (vLLM, SGLang).
    #[arg(long, default_value_t = 64, value_parser = crate::bounds::count(1, 100_000))]
    pub calibration_prompts: usize,
    /// Layer 2 on vLLM or SGLang when the model has no pre-quantized checkpoint: the Python
    /// llm-compressor runs in (default: the engine's own, from its launcher's script).
    #[arg(long)]
    pub calibration_python: Option<PathBuf>,
    /// Seconds to wait for an engine to become ready.
    #[arg(long, default_value_t = 600.0, value_parser = crate::bounds::seconds())]
    pub boot_timeout: f64,
    /// While a measured run lasts longer, say every this many seconds how far it is
    /// (requests done, in flight, failed, current output tokens/s); 0 says nothing.
    #[arg(long, default_value_t = 60.0, value_parser = crate::bounds::period())]
    pub heartbeat: f64,
    /// GPU the simulator models (dry runs; default: the detected GPU, else H100).
    #[arg(long)]
    pub sim_gpu: Option<String>,
    /// Simulator clock: wall seconds per simulated second (dry runs). Default: 0.1, or
    /// slower when the predicted engine step would last under 0.5 ms of wall time (too
    /// short for the client to time tokens one by one).
    #[arg(long, value_parser = crate::bounds::clock_scale())]
    pub sim_time_scale: Option<f64>,
    /// Simulator clock for model loading and graph capture (dry runs): a boot need not take
    /// a scaled minute.
    #[arg(long, default_value_t = 0.01, value_parser = crate::bounds::clock_scale())]
    pub sim_boot_time_scale: f64,
    /// Run-to-run noise of the simulator, percent (dry runs).
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::percent())]
    pub sim_noise: f64,
    /// What to maximise.
    #[arg(long, value_enum, default_value_t = Objective::Throughput)]
    pub objective: Objective,
    /// Most paired repeats for one keep/revert decision.
    #[arg(long, default_value_t = 4, value_parser = crate::bounds::count(1, 1_000))]
    pub max_repeats: usize,
    /// Seed for everything random (arrivals, agent tie-breaks, simulator).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `forge tune --engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EngineArg {
    /// vLLM (`vllm serve`, or --engine-cmd).
    Vllm,
    /// forge's simulator of vLLM (same as --dry-run).
    Sim,
    /// llama.cpp's `llama-server`.
    Llamacpp,
    /// SGLang (`sglang serve`, or --engine-cmd); with --dry-run its simulated twin.
    Sglang,
    /// TensorRT-LLM (`trtllm-serve serve`, PyTorch backend, or --engine-cmd); with --dry-run
    /// its simulated twin.
    Trtllm,
}

impl EngineArg {
    /// The framework whose recipes a run with this `--engine` tunes (`sim` is vLLM's
    /// simulator; a dry run of llama.cpp runs the vLLM simulator).
    pub fn framework(self, dry_run: bool) -> crate::recipe::EngineKind {
        use crate::recipe::EngineKind;
        match self {
            EngineArg::Llamacpp if !dry_run => EngineKind::Llamacpp,
            EngineArg::Sglang => EngineKind::Sglang,
            EngineArg::Trtllm => EngineKind::Trtllm,
            _ => EngineKind::Vllm,
        }
    }
}

/// `forge report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A run directory, or a store (`.forge`) or its `runs/` directory, whose latest run is
    /// shown.
    #[arg(default_value = ".forge")]
    pub path: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Write the report to this file (atomically) instead of standard output.
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Price a million output tokens at this many US dollars per GPU-hour (default: the
    /// GPU's built-in on-demand price, dated and sourced: `forge report --prices`).
    #[arg(long, value_parser = crate::bounds::dollars())]
    pub gpu_hour_usd: Option<f64>,
    /// List every run of the store (model, engine, GPU, state, confirmed gain) instead.
    #[arg(long, conflicts_with_all = ["format", "output"])]
    pub list: bool,
    /// Print the built-in GPU-hour prices (each with its source and date) instead.
    #[arg(long, conflicts_with_all = ["format", "output", "list", "gpu_hour_usd"])]
    pub prices: bool,
    /// Show two runs side by side (each a run directory, or a store for its latest run)
    /// instead: what each tuned, recommends, gained over its own baseline, and costs.
    #[arg(long, num_args = 2, value_name = "RUN", conflicts_with_all = ["list", "prices"])]
    pub compare: Option<Vec<PathBuf>>,
}

/// `forge playbook ...`.
#[derive(Debug, Subcommand)]
pub enum PlaybookCmd {
    /// Print a playbook (default: the bundled one).
    Show(PlaybookArgs),
    /// Check a playbook's structure, search space and rules; say what is wrong and where.
    Validate(PlaybookArgs),
    /// The quantization hardware gates layer 2 reads: which scheme runs where, and why.
    Gates(GatesArgs),
}

/// `forge playbook gates`.
#[derive(Debug, Args)]
pub struct GatesArgs {
    /// Engine whose gates to print.
    #[arg(long, value_enum, default_value_t = crate::recipe::EngineKind::Vllm)]
    pub engine: crate::recipe::EngineKind,
    /// Say what each scheme does on this GPU (a name `--sim-gpu` accepts).
    #[arg(long)]
    pub gpu: Option<String>,
}

/// Playbook selection.
#[derive(Debug, Args)]
pub struct PlaybookArgs {
    /// Playbook file (default: the bundled one for --engine).
    pub path: Option<PathBuf>,
    /// Engine whose bundled playbook to use.
    #[arg(long, value_enum, default_value_t = crate::recipe::EngineKind::Vllm)]
    pub engine: crate::recipe::EngineKind,
}

/// `forge recipe ...`.
#[derive(Debug, Subcommand)]
pub enum RecipeCmd {
    /// Print the exact engine command line a recipe deploys as.
    Command(RecipeCommandArgs),
}

/// `forge recipe command`.
#[derive(Debug, Args)]
pub struct RecipeCommandArgs {
    /// Recipe YAML (e.g. a run's best_recipe.yaml).
    pub recipe: PathBuf,
    /// Port to put on the command line.
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Host to bind (forge's own servers always use 127.0.0.1; a deployment may differ).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// vLLM version to render flags for (flags were renamed and removed across releases).
    #[arg(long, default_value = "0.33.0")]
    pub vllm_version: String,
}

/// `forge workload ...`.
#[derive(Debug, Subcommand)]
pub enum WorkloadCmd {
    /// Generate a random workload, or one of the benchmark gate's fixed scenarios.
    Synth(SynthArgs),
    /// Print a workload's statistics (lengths, prefix sharing, arrivals).
    Stats(WorkloadStatsArgs),
}

/// `forge workload synth`.
#[derive(Debug, Args)]
pub struct SynthArgs {
    /// A fixed scenario of the cross-framework gate (chat 1000/1000, summarization 8000/1000,
    /// 80 prompts); the length flags then default to it.
    #[arg(long, value_enum)]
    pub scenario: Option<crate::workload::synth::Scenario>,
    /// Input tokens per request.
    #[arg(long, required_unless_present = "scenario", value_parser = crate::bounds::count_u32(1, 1 << 20))]
    pub input_len: Option<u32>,
    /// Output tokens per request.
    #[arg(long, required_unless_present = "scenario", value_parser = crate::bounds::count_u32(1, 1 << 20))]
    pub output_len: Option<u32>,
    /// Requests.
    #[arg(long, required_unless_present = "scenario", value_parser = crate::bounds::count(1, 10_000_000))]
    pub num_prompts: Option<usize>,
    /// Tokens of a prefix shared by every prompt (added to --input-len, as vLLM's random
    /// dataset does).
    #[arg(long, default_value_t = 0, value_parser = crate::bounds::count_u32(0, 1 << 20))]
    pub prefix_len: u32,
    /// Lengths vary uniformly within ±ratio.
    #[arg(long, default_value_t = 0.0, value_parser = crate::bounds::fraction())]
    pub range_ratio: f64,
    /// Seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write here instead of stdout.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
}

/// `forge workload stats`.
#[derive(Debug, Args)]
pub struct WorkloadStatsArgs {
    /// Workload JSONL.
    pub workload: PathBuf,
}

/// Environment that `forge doctor` (and GPU detection everywhere) reads.
pub const DOCTOR_ENV_HELP: &str = "Environment:
  CUDA_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES   GPUs an engine would see
  FORGE_NVIDIA_SMI, FORGE_ROCM_SMI   nvidia-smi / rocm-smi to run (default: from PATH)
  FORGE_NVML=off                     skip NVML and use nvidia-smi
  FORGE_NVML_LIB                     path of libnvidia-ml (default libnvidia-ml.so.1)
  <PROVIDER>_API_KEY                 checked for presence only; never printed";

/// `forge doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Engine to check.
    #[arg(long, value_enum, default_value_t = crate::recipe::EngineKind::Vllm)]
    pub engine: crate::recipe::EngineKind,
    /// Launcher for the engine, as for `forge tune` (split on whitespace, never a shell).
    #[arg(long)]
    pub engine_cmd: Option<String>,
    /// Store directory whose disk to check.
    #[arg(long, default_value = ".forge")]
    pub run_dir: PathBuf,
    /// Agent LLM as provider/model: whose API key to look for.
    #[arg(long, default_value = "anthropic/claude-sonnet-4-6")]
    pub llm: String,
    /// GPU backend: cuda, rocm, or cpu.
    #[arg(long, short = 'd', value_enum, default_value_t = crate::hardware::Device::Cuda)]
    pub device: crate::hardware::Device,
    /// Warn when the run directory's disk has less free space than this, GiB.
    #[arg(long, default_value_t = 5.0, value_parser = crate::bounds::gib())]
    pub min_free_gib: f64,
}
