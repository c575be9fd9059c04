//! Search quality of the built-in agent against random search (run by
//! `bench/search_quality.sh`).
//!
//! For each (model, GPU, workload, objective) scenario:
//!
//! - **Sweep.** Every combination of the bench search space (the config knobs below) is
//!   predicted noise-free with `forge::sim::predict::predict` and scored as forge scores
//!   (`forge::tune::score::measure` with the scenario's settings). A configuration that
//!   misses the SLA scores 0 (forge never prefers it to one that meets the SLA); one the
//!   simulator refuses to boot is infeasible. The best score is the target; "reached" means
//!   an incumbent whose *true* score is at least 95 % of it.
//! - **Agent.** forge's loop, mirrored step by step from `tune::run`: the built-in agent
//!   proposes with a playbook whose Search space is exactly the swept space, the simulator
//!   (`SimModel`) as surrogate and legality check; each candidate is measured against the
//!   incumbent in interleaved pairs of *noisy* predictions (fresh seed per run) and decided
//!   with forge's rule (`verdict::decide`, pooled noise, SLA first); rows go through
//!   `RunState::apply` as in a real run. One experiment = one measured candidate.
//! - **Random search.** Uniform draws without replacement from the feasible space, each one
//!   experiment, best so far by *true* score (no noise, no decision rule: generous).
//!
//! The surrogate and the truth share the simulator here (noise-free, same seed), so this
//! measures the search strategy given a good model; on real hardware the agent corrects its
//! surrogate with its calibration. `SQ_SURROGATE_ERR=σ` (%) multiplies every surrogate
//! prediction by a fixed per-configuration factor exp(σ·z) to see what a wrong model does.
//!
//! `forge sim predict` reports no server metrics, and the playbook's rules read them
//! (preemptions, peak running/waiting, KV usage, prefix hits): [`Bench::observe`] replays the
//! same run through the simulated engine and samples its counters after every step, as the
//! real loop's `/metrics` watcher does.
//!
//! Usage: `search_quality [NOISE_PCT] [AGENT_SEEDS] [RANDOM_SEEDS] [CAP]`
//! (defaults 2, 10, 200, 40). Environment: `SQ_PATH=N|all` prints the agent's path
//! on scenario N (0-based, first seed), `SQ_ONLY=N` runs scenario N alone, `SQ_TOP=K`
//! prints the K best configurations of each sweep, `SQ_SURROGATE_ERR=σ` (above).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use forge::agent::builtin::BuiltinAgent;
use forge::agent::{Agent, AgentContext, Proposal, Surrogate};
use forge::bench::schedule::{dispatch_order, intended_offsets};
use forge::bench::{Endpoint, LoadSpec, Timing};
use forge::cli::{Cli, Command};
use forge::engine::failure::{Failure, FailureClass};
use forge::engine::metrics::ServerFacts;
use forge::hardware::GpuSpec;
use forge::playbook::{Playbook, VLLM_PLAYBOOK};
use forge::recipe::knobs::{self, Layer};
use forge::recipe::{EngineKind, Hardware, Recipe};
use forge::sim::engine::{SimEngine, SimRequest, SimSetup};
use forge::sim::model::ModelShape;
use forge::tune::context::{self, SimModel};
use forge::tune::decide::Outcome;
use forge::tune::row::{Arm, ExperimentRow, Measurement, Sample, Status};
use forge::tune::run::legality;
use forge::tune::score;
use forge::tune::settings::TuneSettings;
use forge::tune::state::RunState;
use forge::workload::stats::WorkloadStats;
use forge::workload::synth::{self, SynthSpec};
use forge::workload::{Workload, WorkloadRequest};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};
use serde_json::Value;

/// The swept space: the same values for the sweep, the agent's playbook and random search.
/// Every GPU's engine defaults (max_num_seqs 256/1024, max_num_batched_tokens 2048/8192,
/// gpu_memory_utilization 0.92, prefix caching on, no long-prefill cap) are on the grid.
const SPACE_YAML: &str = "config:
  max_num_seqs: [16, 32, 64, 128, 256, 512, 1024]
  max_num_batched_tokens: [1024, 2048, 4096, 8192, 16384]
  gpu_memory_utilization: [0.85, 0.90, 0.92, 0.95]
  enable_prefix_caching: [true, false]
  long_prefill_token_threshold: [0, 256, 1024, 4096]
";

/// Share of the sweep's best score that counts as "reached".
const REACH: f64 = 0.95;

/// A (model, GPU, workload, objective) combination.
struct Scenario {
    name: &'static str,
    model: &'static str,
    gpu: &'static str,
    /// Extra `forge tune` flags: concurrency, objective, SLO.
    flags: &'static [&'static str],
    requests: Vec<WorkloadRequest>,
}

fn synth(
    input_len: u32,
    output_len: u32,
    n: usize,
    prefix_len: u32,
    seed: u64,
) -> Vec<WorkloadRequest> {
    synth::generate(&SynthSpec {
        input_len,
        output_len,
        num_prompts: n,
        prefix_len,
        range_ratio: 0.3,
        seed,
    })
}

/// Poisson arrivals at `rate` req/s written into the requests (a trace: forge replays it
/// with trace timing).
fn with_arrivals(mut reqs: Vec<WorkloadRequest>, rate: f64, seed: u64) -> Vec<WorkloadRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gap = Exp::new(rate).ok();
    let mut t = 0.0;
    for r in &mut reqs {
        r.arrival_offset_s = Some(t);
        t += gap.as_ref().map_or(1.0 / rate, |d| d.sample(&mut rng));
    }
    reqs
}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "8B/H100 chat, goodput",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "H100",
            flags: &[
                "-c",
                "256",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=1000,tpot_ms=45",
            ],
            requests: synth(1000, 300, 256, 0, 1),
        },
        Scenario {
            name: "8B/H100 c384, p99 TPOT ≤ 40 ms",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "H100",
            flags: &["-c", "384", "--slo", "tpot_ms=40"],
            requests: synth(500, 400, 512, 0, 6),
        },
        Scenario {
            name: "8B/A100 chat, p99 TPOT ≤ 35 ms",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "A100-80GB",
            flags: &["-c", "128", "--slo", "tpot_ms=35"],
            requests: synth(1000, 300, 256, 0, 9),
        },
        Scenario {
            name: "14B/A100 RAG trace, latency",
            model: "Qwen/Qwen3-14B",
            gpu: "A100-80GB",
            flags: &["-c", "64", "--objective", "latency"],
            requests: with_arrivals(synth(3000, 250, 120, 1000, 4), 1.5, 4),
        },
        Scenario {
            name: "7B/L40S summarize, goodput",
            model: "Qwen/Qwen2.5-7B-Instruct",
            gpu: "L40S",
            flags: &[
                "-c",
                "32",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=3000,tpot_ms=35",
            ],
            requests: synth(6000, 300, 64, 0, 5),
        },
        Scenario {
            name: "3B/L4 long prompts, latency",
            model: "Qwen/Qwen2.5-3B-Instruct",
            gpu: "L4",
            flags: &["-c", "48", "--objective", "latency"],
            requests: synth(4000, 200, 96, 0, 2),
        },
        Scenario {
            name: "7B/A10G chat, p99 TPOT ≤ 60 ms",
            model: "mistralai/Mistral-7B-Instruct-v0.3",
            gpu: "A10G",
            flags: &["-c", "64", "--slo", "tpot_ms=60"],
            requests: synth(600, 200, 128, 0, 9),
        },
        Scenario {
            name: "7B/A10G RAG, goodput (defaults at 0)",
            model: "mistralai/Mistral-7B-Instruct-v0.3",
            gpu: "A10G",
            flags: &[
                "-c",
                "64",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=5000,tpot_ms=100",
            ],
            requests: synth(1500, 200, 128, 0, 3),
        },
    ]
}

/// The bundled vLLM playbook with its Search space replaced by [`SPACE_YAML`] (and rule
/// moves on knobs outside it dropped, as the playbook validator requires).
fn bench_playbook() -> anyhow::Result<Playbook> {
    let start = VLLM_PLAYBOOK
        .find("## Search space")
        .context("bundled playbook: no Search space")?;
    let end = VLLM_PLAYBOOK
        .find("## Rules")
        .context("bundled playbook: no Rules")?;
    let text = format!(
        "{}## Search space\n```yaml\n{SPACE_YAML}```\n\n{}",
        &VLLM_PLAYBOOK[..start],
        &VLLM_PLAYBOOK[end..]
    )
    .replace(", kv_cache_quant: fp8}", "}")
    .replace("{kv_cache_quant: fp8, ", "{");
    Ok(Playbook::parse("<search-quality bench playbook>", &text)?)
}

/// A scenario made ready: settings, simulator inputs, the loop's helpers.
struct Bench {
    name: &'static str,
    /// σ of the surrogate's per-configuration error, % (0 = forge's simulator as is).
    surrogate_err: f64,
    settings: TuneSettings,
    gpu: &'static GpuSpec,
    shape: ModelShape,
    requests: Vec<WorkloadRequest>,
    load: LoadSpec,
    stats: WorkloadStats,
    sim: SimModel,
    playbook: Playbook,
    baseline: Recipe,
    /// Tokenized prompts, warm-ups and offsets for the facts replay.
    prompts: Vec<SimRequest>,
    warmups: Vec<SimRequest>,
    offsets: Vec<f64>,
}

/// `forge tune`'s load for a workload (mirrors `tune::command::load_spec`).
fn load_spec(s: &TuneSettings, requests: &[WorkloadRequest]) -> LoadSpec {
    LoadSpec {
        endpoint: Endpoint::Completions,
        concurrency: Some(s.concurrency),
        request_rate: None,
        burstiness: 1.0,
        timing: if requests.iter().any(|r| r.arrival_offset_s.is_some()) {
            Timing::Trace
        } else {
            Timing::Rate
        },
        num_warmups: (requests.len() / 10).clamp(1, 4),
        slo: s.slo,
        pin_output: true,
        seed: s.seed,
        percentiles: vec![50.0, 90.0, 99.0],
        time_scale: 1.0,
    }
}

fn settings_for(sc: &Scenario, noise: f64) -> anyhow::Result<TuneSettings> {
    let noise = noise.to_string();
    let mut argv = vec![
        "forge",
        "tune",
        "-m",
        sc.model,
        "-w",
        "search-quality.jsonl",
        "--dry-run",
        "--sim-gpu",
        sc.gpu,
        "--sim-noise",
        &noise,
        "--skip-quant",
        "--skip-kernel",
    ];
    argv.extend_from_slice(sc.flags);
    match Cli::parse_from(argv).command {
        Command::Tune(t) => TuneSettings::resolve(&t.args, None),
        _ => anyhow::bail!("not a tune command line"),
    }
}

impl Bench {
    fn new(sc: Scenario, o: &Options, playbook: &Playbook) -> anyhow::Result<Bench> {
        let noise = o.noise;
        let settings = settings_for(&sc, noise)?;
        let gpu = forge::hardware::gpus::lookup(sc.gpu).context("unknown GPU")?;
        let shape = ModelShape::resolve(sc.model).map_err(anyhow::Error::msg)?;
        let load = load_spec(&settings, &sc.requests);
        let workload = Workload {
            source: "search-quality.jsonl".into(),
            requests: sc.requests.clone(),
        };
        let stats = forge::workload::stats::compute(&workload);
        let sim = SimModel::new(&settings, gpu, &sc.requests, &load).context("no sim model")?;
        let hw = Hardware {
            vendor: "nvidia".into(),
            gpu_type: gpu.name.to_string(),
            count: 1,
            memory_gb_per_gpu: (gpu.memory_gib() * 10.0).round() / 10.0,
        };
        let baseline = Recipe::baseline(EngineKind::Vllm, sc.model, hw);
        let prompts: Vec<SimRequest> = sc
            .requests
            .iter()
            .enumerate()
            .map(|(i, r)| {
                sim_request(
                    i as u64,
                    forge::sim::predict::prompt_tokens(r, load.endpoint),
                    r.expected_output_tokens,
                )
            })
            .collect();
        let warmups = warmups(&prompts, &load);
        let offsets = intended_offsets(&sc.requests, &load);
        Ok(Bench {
            name: sc.name,
            surrogate_err: o.surrogate_err,
            settings,
            gpu,
            shape,
            requests: sc.requests,
            load,
            stats,
            sim,
            playbook: playbook.clone(),
            baseline,
            prompts,
            warmups,
            offsets,
        })
    }

    /// The run-to-run noise of this scenario's measurements, %.
    fn settings_noise(&self) -> f64 {
        match self.settings.engine {
            forge::tune::settings::EngineChoice::Sim { noise_pct, .. } => noise_pct,
            _ => 0.0,
        }
    }

    /// The agent's surrogate: forge's `SimModel::predict`, times a fixed per-configuration
    /// error factor exp(σ·z) when `SQ_SURROGATE_ERR` = σ in % is set (a model that is wrong
    /// about some configurations, as a real surrogate is).
    fn surrogate(&self, r: &Recipe) -> Option<f64> {
        let v = self.sim.predict(r)?;
        if self.surrogate_err <= 0.0 {
            return Some(v);
        }
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&self.key(r), &mut h);
        let mut rng = ChaCha8Rng::seed_from_u64(std::hash::Hasher::finish(&h));
        let z: f64 = rand_distr::StandardNormal.sample(&mut rng);
        Some(v * (self.surrogate_err / 100.0 * z).exp())
    }

    fn setup(&self, r: &Recipe, seed: u64, noise: f64) -> Result<SimSetup, String> {
        let args = forge::recipe::vllm::to_vllm_args(r)?;
        let mut config = args.resolve(self.gpu);
        config.model = self.settings.model.clone();
        Ok(SimSetup {
            model: self.shape.clone(),
            gpu: self.gpu,
            config,
            seed,
            noise_pct: noise,
        })
    }

    /// One run of `r`: what `forge bench` would measure, scored, and what the server's
    /// `/metrics` would have shown during it.
    fn run_once(
        &self,
        r: &Recipe,
        seed: u64,
        noise: f64,
    ) -> Result<(Measurement, ServerFacts), String> {
        let setup = self.setup(r, seed, noise)?;
        let res = forge::sim::predict::predict(
            setup.clone(),
            &self.requests,
            &self.load,
            &self.settings.model,
        )
        .map_err(|e| e.to_string())?;
        if res.completed == 0 {
            return Err("no request completed".into());
        }
        let m = score::measure(&res, &self.settings, None);
        let facts = self.observe(setup);
        Ok((m, facts))
    }

    /// The true score: the noise-free run, 0 when it misses the SLA, `None` if infeasible.
    fn truth(&self, r: &Recipe) -> Option<f64> {
        let setup = self.setup(r, self.settings.seed, 0.0).ok()?;
        let res =
            forge::sim::predict::predict(setup, &self.requests, &self.load, &self.settings.model)
                .ok()?;
        let m = score::measure(&res, &self.settings, None);
        Some(if m.sla_ok && m.completed > 0 {
            m.value
        } else {
            0.0
        })
    }

    /// The values of the swept knobs in effect for `r` (defaults filled in): the key of
    /// the truth table.
    fn key(&self, r: &Recipe) -> String {
        let eff = context::effective_vllm(r, self.gpu);
        let knobs = &self.playbook.space[&Layer::Config];
        let m: BTreeMap<&String, Value> = knobs
            .keys()
            .map(|k| (k, eff.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        serde_json::to_string(&m).unwrap_or_default()
    }

    /// The server's view of the same run as [`Self::run_once`]'s prediction: the replay of
    /// `sim::predict` (warm-ups, then the schedule under the concurrency cap) with the
    /// engine's counters sampled after every step, as `/metrics` shows them.
    fn observe(&self, setup: SimSetup) -> ServerFacts {
        let Ok((mut e, _)) = SimEngine::boot(setup) else {
            return ServerFacts::default();
        };
        let mut f = ServerFacts {
            available: true,
            ..ServerFacts::default()
        };
        let cap = self.load.concurrency;
        drive(
            &mut e,
            &self.warmups,
            &vec![0.0; self.warmups.len()],
            cap,
            0.0,
            &mut f,
        );
        let origin = e.clock();
        drive(&mut e, &self.prompts, &self.offsets, cap, origin, &mut f);
        let s = e.stats();
        f.preemptions = s.preemptions as f64;
        f.prefix_queries = s.prefix_cache_queries as f64;
        f.prefix_hits = s.prefix_cache_hits as f64;
        f
    }
}

fn sim_request(id: u64, prompt: Vec<u32>, out: u32) -> SimRequest {
    let out = out.max(1);
    SimRequest {
        id,
        prompt,
        max_tokens: out,
        min_tokens: out,
        ignore_eos: true,
    }
}

/// Warm-ups as `sim::predict` makes them: fresh random tokens, median lengths.
fn warmups(prompts: &[SimRequest], load: &LoadSpec) -> Vec<SimRequest> {
    let median = |mut v: Vec<u32>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(1).max(1)
    };
    let len = median(prompts.iter().map(|r| r.prompt.len() as u32).collect());
    let out = median(prompts.iter().map(|r| r.max_tokens).collect());
    let mut rng = ChaCha8Rng::seed_from_u64(load.seed ^ 0x5741_524d);
    (0..load.num_warmups as u64)
        .map(|i| {
            let prompt = (0..len)
                .map(|_| rng.random_range(0..forge::tokenize::VOCAB))
                .collect();
            sim_request((1 << 40) + i, prompt, out)
        })
        .collect()
}

/// Client-engine loopback delay, as in `sim::predict`.
const LOOPBACK_S: f64 = 0.0003;

/// Replay `reqs` due at `offsets` under a concurrency cap, sampling the engine's gauges.
fn drive(
    e: &mut SimEngine,
    reqs: &[SimRequest],
    offsets: &[f64],
    cap: Option<usize>,
    origin: f64,
    f: &mut ServerFacts,
) {
    let mut pending: VecDeque<usize> = dispatch_order(offsets).into();
    let mut free: Option<VecDeque<f64>> = cap.map(|c| vec![f64::NEG_INFINITY; c.max(1)].into());
    let next = |pending: &VecDeque<usize>, free: &Option<VecDeque<f64>>| -> Option<f64> {
        let &i = pending.front()?;
        let slot = match free {
            Some(s) => *s.front()?,
            None => f64::NEG_INFINITY,
        };
        Some(offsets[i].max(slot))
    };
    let (mut t, mut stalled) = (0.0, 0u32);
    loop {
        while let Some(at) = next(&pending, &free) {
            if at > t + 1e-12 {
                break;
            }
            let Some(i) = pending.pop_front() else { break };
            if let Some(s) = &mut free {
                s.pop_front();
            }
            if e.submit_at(reqs[i].clone(), origin + at + LOOPBACK_S)
                .is_err()
                && let Some(s) = &mut free
            {
                s.push_back(at);
            }
        }
        if e.is_idle() {
            match next(&pending, &free) {
                Some(n) if n > t => {
                    t = n;
                    continue;
                }
                _ => break,
            }
        }
        let r = e.step(origin + t);
        stalled = if r.duration_s > 0.0 || !r.outputs.is_empty() {
            0
        } else {
            stalled + 1
        };
        if stalled > 10_000 {
            break;
        }
        t = e.clock() - origin;
        let s = e.stats();
        f.peak_running = f.peak_running.max(s.running as f64);
        f.peak_waiting = f.peak_waiting.max(s.waiting as f64);
        f.peak_kv_usage = f.peak_kv_usage.max(s.kv_usage);
        for o in &r.outputs {
            if o.finish.is_some()
                && let Some(s) = &mut free
            {
                s.push_back(t + LOOPBACK_S);
            }
        }
    }
}

/// The exhaustive sweep of one scenario.
struct Sweep {
    /// Truth by effective-config key; `None` = infeasible.
    truth: HashMap<String, Option<f64>>,
    /// Feasible keys with their score, in enumeration order.
    feasible: Vec<(String, f64)>,
    total: usize,
    best: f64,
    best_key: String,
    baseline: f64,
    seconds: f64,
}

/// The recipe for a truth-table key (every swept knob set explicitly).
fn recipe_of(b: &Bench, key: &str) -> Recipe {
    let m: BTreeMap<String, Value> = serde_json::from_str(key).unwrap_or_default();
    b.baseline.mutate(Layer::Config, &m)
}

fn combinations(space: &BTreeMap<String, Vec<Value>>) -> Vec<BTreeMap<String, Value>> {
    let mut out = vec![BTreeMap::new()];
    for (k, values) in space {
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    m.insert(k.clone(), v.clone());
                    m
                })
            })
            .collect();
    }
    out
}

fn sweep(b: &Bench) -> Sweep {
    let started = Instant::now();
    let mut space = b.playbook.space[&Layer::Config].clone();
    if std::env::var("SQ_COARSE").is_ok() {
        space.insert("gpu_memory_utilization".into(), vec![Value::from(0.92)]);
        space.insert("enable_prefix_caching".into(), vec![Value::from(true)]);
    }
    let combos = combinations(&space);
    let mut truth = HashMap::new();
    let mut feasible = Vec::new();
    for c in &combos {
        let r = b.baseline.mutate(Layer::Config, c);
        let key = b.key(&r);
        let t = legality(&r, Some(&b.sim)).ok().and_then(|_| b.truth(&r));
        if let Some(s) = t {
            feasible.push((key.clone(), s));
        }
        truth.insert(key, t);
    }
    let (best_key, best) = feasible
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let baseline = b.truth(&b.baseline).unwrap_or(0.0);
    Sweep {
        truth,
        feasible,
        total: combos.len(),
        best,
        best_key,
        baseline,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Sweep {
    fn score(&self, b: &Bench, r: &Recipe) -> f64 {
        let key = b.key(r);
        match self.truth.get(&key) {
            Some(t) => t.unwrap_or(0.0),
            None => b.truth(r).unwrap_or(0.0),
        }
    }

    fn reached(&self, s: f64) -> bool {
        s >= REACH * self.best
    }
}

/// Experiments random search needs to reach the target, over `seeds` orders.
fn random_search(sw: &Sweep, seeds: u64) -> Vec<u32> {
    if sw.reached(sw.baseline) {
        return vec![0; seeds as usize];
    }
    let mut out = Vec::new();
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000 + seed);
        let mut order: Vec<usize> = (0..sw.feasible.len()).collect();
        // Fisher-Yates.
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let n = order
            .iter()
            .position(|&i| sw.reached(sw.feasible[i].1))
            .map_or(order.len(), |p| p + 1);
        out.push(n as u32);
    }
    out
}

/// What one agent run did.
#[derive(Default)]
struct AgentRun {
    /// Experiments until the incumbent's true score reached the target.
    reached: Option<u32>,
    experiments: u32,
    /// Measured runs (two per pair), baseline included.
    runs: u32,
    /// Runs until the target was reached.
    runs_to_reach: Option<u32>,
    /// The final incumbent's true score / the best.
    final_ratio: f64,
    /// Experiments a playbook rule pushed although the surrogate predicted less than half
    /// the keep threshold.
    rule_pushed: u32,
    /// Experiments whose candidate was truly better by 3 % or more (or met the SLA the
    /// incumbent missed) and was not kept.
    lost: u32,
    stop: String,
    path: Vec<String>,
}

fn base_row(state: &RunState, inc: &Recipe, status: Status, rationale: &str) -> ExperimentRow {
    let seq = state.next_seq();
    ExperimentRow::bare(seq, Layer::Config, status, inc, rationale, "builtin".into())
}

fn infeasible(why: String) -> Failure {
    Failure {
        class: FailureClass::InfeasibleConfig,
        exit_code: None,
        signal: None,
        summary: why,
        hints: vec![],
    }
}

/// Paired comparison, as `tune::decide::compare` does it (on simulated runs).
fn compare(
    b: &Bench,
    cand: &Recipe,
    inc: &Recipe,
    state: &RunState,
    rng: &mut ChaCha8Rng,
    noise: f64,
    predicted_pct: Option<f64>,
) -> Outcome {
    let rule = forge::tune::decide::rule(&b.settings, predicted_pct);
    let mut out = Outcome::default();
    let mut cands = Vec::new();
    for k in 0..rule.max_pairs {
        let mut pair: [Option<Measurement>; 2] = [None, None];
        for arm in forge::tune::decide::pair_order(k) {
            let (recipe, slot) = match arm {
                Arm::Candidate => (cand, 0),
                Arm::Incumbent => (inc, 1),
            };
            match b.run_once(recipe, rng.random(), noise) {
                Ok((m, facts)) => {
                    out.samples.push(Sample {
                        arm,
                        m: m.clone(),
                        facts,
                    });
                    pair[slot] = Some(m);
                }
                Err(why) if arm == Arm::Candidate => {
                    out.failure = Some(infeasible(why));
                    out.candidate = forge::tune::decide::median(&cands);
                    return out;
                }
                Err(_) => {}
            }
        }
        let [Some(c), Some(i)] = pair else { continue };
        cands.push(c.clone());
        if out.add_pair(&c, &i, &b.settings, &state.noise, &rule) {
            break;
        }
    }
    out.finish(&cands);
    out
}

fn propose(b: &Bench, state: &RunState, agent: &mut dyn Agent) -> anyhow::Result<Proposal> {
    let inc = state
        .incumbent
        .as_ref()
        .map_or_else(|| b.baseline.clone(), |i| i.recipe.clone());
    let effective = context::effective_vllm(&inc, b.gpu);
    let facts = context::facts(&state.rows, &effective, &b.stats, &b.settings);
    let base = inc.id.clone();
    let is_tried = |r: &Recipe| state.was_tried(&base, &r.id);
    let legal = |r: &Recipe| legality(r, Some(&b.sim));
    let surrogate_fn = |r: &Recipe| b.surrogate(r);
    let ctx = AgentContext {
        settings: &b.settings,
        playbook: &b.playbook,
        layer: Layer::Config,
        incumbent: &inc,
        effective,
        facts,
        workload: &b.stats,
        history: &state.rows,
        is_tried: &is_tried,
        legal: &legal,
        surrogate: Some(&surrogate_fn as &Surrogate<'_>),
        gpu: Some(b.gpu),
        spent_usd: 0.0,
    };
    futures::executor::block_on(agent.propose(&ctx))
}

/// One proposal handled as `Tuner::handle` does; returns the row to record.
fn handle(
    b: &Bench,
    state: &RunState,
    p: &Proposal,
    rng: &mut ChaCha8Rng,
    noise: f64,
) -> ExperimentRow {
    let inc = state
        .incumbent
        .as_ref()
        .map_or_else(|| b.baseline.clone(), |i| i.recipe.clone());
    if p.changes.is_empty() {
        return base_row(state, &inc, Status::Converged, &p.rationale);
    }
    let illegal = p
        .changes
        .iter()
        .find_map(|(k, v)| knobs::check(inc.engine, p.layer, k, v).err())
        .or_else(|| legality(&inc.mutate(p.layer, &p.changes), Some(&b.sim)).err());
    let cand = inc.mutate(p.layer, &p.changes);
    let mut row = base_row(state, &inc, Status::Rejected, &p.rationale);
    row.changes = p.changes.clone();
    if let Some(why) = illegal {
        row.id = format!("rej-{:04}", row.seq);
        row.failure = Some(infeasible(why));
        return row;
    }
    row.id = cand.id.clone();
    row.parent_id = cand.parent_id.clone();
    row.generation = cand.generation;
    row.recipe = cand.clone();
    row.predicted_gain_pct = p.expected_throughput_delta_pct;
    if cand.id == inc.id || state.was_tried(&inc.id, &cand.id) {
        row.status = Status::Duplicate;
        row.id = format!("dup-{}", cand.id);
        return row;
    }
    let o = compare(
        b,
        &cand,
        &inc,
        state,
        rng,
        noise,
        p.expected_throughput_delta_pct,
    );
    let inc_score = state.incumbent.as_ref().map_or(1.0, |i| i.score);
    o.fill(&mut row, state.experiments_used, inc_score);
    row
}

fn baseline_state(b: &Bench, rng: &mut ChaCha8Rng, noise: f64) -> anyhow::Result<RunState> {
    let mut state = RunState::default();
    let (m, facts) = b
        .run_once(&b.baseline, rng.random(), noise)
        .map_err(anyhow::Error::msg)?;
    let mut row = base_row(&state, &b.baseline, Status::Baseline, "baseline");
    row.exp = Some(0);
    row.score = Some(1.0);
    row.samples.push(Sample {
        arm: Arm::Incumbent,
        m: m.clone(),
        facts,
    });
    row.measurement = Some(m);
    state.apply(row);
    Ok(state)
}

fn run_agent(b: &Bench, sw: &Sweep, o: &Options, seed: u64) -> anyhow::Result<AgentRun> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state = baseline_state(b, &mut rng, o.noise)?;
    let mut agent = BuiltinAgent;
    let at_start = sw.reached(sw.baseline);
    let mut run = AgentRun {
        reached: at_start.then_some(0),
        runs: 1,
        runs_to_reach: at_start.then_some(1),
        ..AgentRun::default()
    };
    run.stop = loop {
        if run.experiments >= o.cap {
            break format!("cap ({})", o.cap);
        }
        if state.current_layer(&b.settings).is_none() {
            break "converged".into();
        }
        let p = propose(b, &state, &mut agent)?;
        let row = handle(b, &state, &p, &mut rng, o.noise);
        tally(b, sw, &state, &row, &mut run);
        state.apply(row);
        let inc_truth = state
            .incumbent
            .as_ref()
            .map_or(0.0, |i| sw.score(b, &i.recipe));
        if let Some(line) = run.path.last_mut() {
            line.push_str(&format!(
                " → incumbent at {:.1} % of best",
                inc_truth / sw.best * 100.0
            ));
        }
        if run.reached.is_none() && sw.reached(inc_truth) {
            run.reached = Some(run.experiments);
            run.runs_to_reach = Some(run.runs);
        }
    };
    let inc = state.incumbent.as_ref().map_or(&b.baseline, |i| &i.recipe);
    run.final_ratio = sw.score(b, inc) / sw.best;
    Ok(run)
}

/// Count a row (before it is applied: `state` still has the incumbent it was measured
/// against).
fn tally(b: &Bench, sw: &Sweep, state: &RunState, row: &ExperimentRow, run: &mut AgentRun) {
    run.path.push(describe(b, sw, state, row));
    if !row.status.is_experiment() {
        return;
    }
    run.experiments += 1;
    run.runs += row.samples.len() as u32;
    let half = b.settings.min_improvement_pct * 0.5;
    if row.rationale.contains("Playbook:") && row.predicted_gain_pct.is_none_or(|p| p < half) {
        run.rule_pushed += 1;
    }
    let inc = state.incumbent.as_ref().map_or(&b.baseline, |i| &i.recipe);
    let (t, i) = (sw.score(b, &row.recipe), sw.score(b, inc));
    let better = if i > 0.0 { t >= i * 1.03 } else { t > 0.0 };
    if better && row.status != Status::Kept {
        run.lost += 1;
    }
}

fn describe(b: &Bench, sw: &Sweep, state: &RunState, row: &ExperimentRow) -> String {
    let inc = state.incumbent.as_ref().map_or(&b.baseline, |i| &i.recipe);
    let eff = context::effective_vllm(inc, b.gpu);
    let moves: Vec<String> = row
        .changes
        .iter()
        .map(|(k, v)| format!("{k} {} → {}", show(eff.get(k)), show(Some(v))))
        .collect();
    let exp = row.exp.map_or("  ".to_string(), |e| format!("{e:2}"));
    let pred = row
        .predicted_gain_pct
        .map_or(String::new(), |p| format!(" predicted {p:+.1} %"));
    let meas = row.interval.map_or(String::new(), |iv| {
        format!(
            " measured {:+.1} % [{:+.1}, {:+.1}] over {} pairs",
            iv.gain_pct, iv.lo_pct, iv.hi_pct, iv.pairs
        )
    });
    let truth = if row.status.is_experiment() {
        let (t, base) = (sw.score(b, &row.recipe), sw.score(b, inc));
        if base < sw.best * 1e-6 {
            format!(" (true: {:.1} % of best, from ~0)", t / sw.best * 100.0)
        } else {
            format!(" (true {:+.1} %)", (t / base - 1.0) * 100.0)
        }
    } else {
        String::new()
    };
    let rule = row.rationale.find("Playbook:").map_or("", |_| " [rule]");
    let why = match row.status {
        Status::Converged => format!(" {}", row.rationale),
        _ => String::new(),
    };
    format!(
        "{exp} {:<12} {}{pred}{meas}{truth}{rule}{why}",
        row.status.as_str(),
        moves.join(", ")
    )
}

fn show(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "default".into(),
    }
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let pos = q * (s.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    s[lo] + (s[hi] - s[lo]) * (pos - lo as f64)
}

/// Command-line and environment options.
struct Options {
    noise: f64,
    agent_seeds: u64,
    random_seeds: u64,
    cap: u32,
    only: Option<usize>,
    path: String,
    top: usize,
    surrogate_err: f64,
}

impl Options {
    fn parse() -> anyhow::Result<Options> {
        let mut args = std::env::args().skip(1);
        let env = |k: &str| std::env::var(k).unwrap_or_default();
        Ok(Options {
            noise: args.next().map_or(Ok(2.0), |v| v.parse())?,
            agent_seeds: args.next().map_or(Ok(10), |v| v.parse())?,
            random_seeds: args.next().map_or(Ok(200), |v| v.parse())?,
            cap: args.next().map_or(Ok(40), |v| v.parse())?,
            only: env("SQ_ONLY").parse().ok(),
            path: env("SQ_PATH"),
            top: env("SQ_TOP").parse().unwrap_or(0),
            surrogate_err: env("SQ_SURROGATE_ERR").parse().unwrap_or(0.0),
        })
    }

    fn show_path(&self, i: usize) -> bool {
        self.path == "all" || self.path.parse() == Ok(i)
    }
}

fn main() -> anyhow::Result<()> {
    let o = Options::parse()?;
    let started = Instant::now();
    let playbook = bench_playbook()?;
    let mut setups = Vec::new();
    let mut rows: Vec<Summary> = Vec::new();
    for (i, sc) in scenarios().into_iter().enumerate() {
        if o.only.is_some_and(|x| x != i) {
            continue;
        }
        let b = Bench::new(sc, &o, &playbook)?;
        let sw = sweep(&b);
        report_sweep(&b, &sw, &o);
        setups.push(setup_line(&b, &sw));
        let rnd = random_search(&sw, o.random_seeds);
        let t = Instant::now();
        let mut runs = Vec::new();
        for s in 0..o.agent_seeds {
            runs.push(run_agent(&b, &sw, &o, 0xa9e7_0000 + s)?);
        }
        eprintln!(
            "  agent: {} runs in {:.1} s",
            o.agent_seeds,
            t.elapsed().as_secs_f64()
        );
        if o.show_path(i) {
            print_path(&b, "first noise seed", &runs[0]);
            if let Some(r) = runs.iter().find(|r| r.reached.is_none()) {
                print_path(&b, "first seed that did not reach 95 %", r);
            }
        }
        rows.push(summarize(&b, &sw, &runs, &rnd, o.cap));
    }
    println!(
        "| scenario | objective (SLA) | workload | the engine defaults | objective's noise per run (defaults / best) |"
    );
    println!("|---|---|---|---|---:|");
    for l in &setups {
        println!("{l}");
    }
    print_table(&rows, &o);
    println!("\ntotal runtime {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn print_path(b: &Bench, which: &str, run: &AgentRun) {
    println!("Agent path, {} ({which}):\n", b.name);
    println!("```");
    for l in &run.path {
        println!("{l}");
    }
    println!("stop: {}", run.stop);
    println!("```\n");
}

/// The scenario's setup line: objective, workload, and what the defaults get.
fn setup_line(b: &Bench, sw: &Sweep) -> String {
    let s = &b.settings;
    let mut slo = Vec::new();
    for (n, v) in [
        ("TTFT", s.slo.ttft_ms),
        ("TPOT", s.slo.tpot_ms),
        ("E2EL", s.slo.e2el_ms),
    ] {
        if let Some(v) = v {
            slo.push(format!("{n} ≤ {v} ms"));
        }
    }
    let objective = match s.objective {
        forge::cli::Objective::Throughput => "output tok/s",
        forge::cli::Objective::Goodput => "goodput (req/s within SLO)",
        forge::cli::Objective::Latency => "1 / p99 E2EL",
    };
    let st = &b.stats;
    let timing = match st.mean_arrival_rate {
        Some(r) => format!("trace at {r:.1} req/s"),
        None => "all at once".into(),
    };
    let prefix = if st.prefix_share > 0.01 {
        format!(", {:.0} % shared prefix", st.prefix_share * 100.0)
    } else {
        String::new()
    };
    let defaults = match b.run_once(&b.baseline, s.seed, 0.0) {
        Ok((m, _)) if !m.sla_ok => {
            format!("miss the SLA ({})", score::sla_violations(&m, s).join("; "))
        }
        Ok((m, _)) if m.value <= 0.0 => "score 0 (no request within the SLO)".into(),
        Ok(_) => format!("score {:.1} % of the best", sw.baseline / sw.best * 100.0),
        Err(e) => format!("do not boot: {e}"),
    };
    let sd = |r: &Recipe| objective_noise(b, r).map_or("—".into(), |x| format!("{x:.1} %"));
    let noise = format!("{} / {}", sd(&b.baseline), sd(&recipe_of(b, &sw.best_key)));
    format!(
        "| {} | {objective}{} | {} requests, {:.0} → {:.0} tokens{prefix}, concurrency {}, {timing} | {defaults} | {noise} |",
        b.name,
        if slo.is_empty() {
            String::new()
        } else {
            format!(" ({})", slo.join(", "))
        },
        st.requests,
        st.prompt_tokens.mean,
        st.output_tokens.mean,
        s.concurrency,
    )
}

/// Standard deviation of ln(objective) over 16 noisy runs of `r`, %: how much the
/// run-to-run noise moves the score (a threshold metric such as goodput amplifies it).
fn objective_noise(b: &Bench, r: &Recipe) -> Option<f64> {
    let noise = b.settings_noise();
    let v: Vec<f64> = (0..16)
        .filter_map(|k| b.run_once(r, 0x0123_0000 + k, noise).ok())
        .filter(|(m, _)| m.sla_ok && m.value > 0.0)
        .map(|(m, _)| m.value.ln())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
    Some(var.sqrt() * 100.0)
}

fn report_sweep(b: &Bench, sw: &Sweep, o: &Options) {
    eprintln!(
        "{}: {} configs, {} feasible, baseline {:.4} best {:.4} ({:.1} s); best {}",
        b.name,
        sw.total,
        sw.feasible.len(),
        sw.baseline,
        sw.best,
        sw.seconds,
        sw.best_key
    );
    if o.top > 0 {
        let mut f = sw.feasible.clone();
        f.sort_by(|a, b| b.1.total_cmp(&a.1));
        for (k, s) in f.iter().take(o.top) {
            eprintln!("  {s:.4} {k}");
        }
    }
}

/// One scenario's line of the table.
#[derive(Clone)]
struct Summary {
    name: &'static str,
    total: usize,
    feasible: usize,
    good: usize,
    baseline_pct: f64,
    /// Per agent run: experiments to reach (cap + 1 when not reached).
    agent: Vec<f64>,
    capped: usize,
    runs_to_reach: Vec<f64>,
    final_pct: Vec<f64>,
    experiments: Vec<f64>,
    rule_pushed: Vec<f64>,
    lost: Vec<f64>,
    random: Vec<f64>,
}

fn summarize(b: &Bench, sw: &Sweep, runs: &[AgentRun], rnd: &[u32], cap: u32) -> Summary {
    let per = |f: &dyn Fn(&AgentRun) -> f64| runs.iter().map(f).collect::<Vec<f64>>();
    Summary {
        name: b.name,
        total: sw.total,
        feasible: sw.feasible.len(),
        good: sw.feasible.iter().filter(|(_, s)| sw.reached(*s)).count(),
        baseline_pct: sw.baseline / sw.best * 100.0,
        agent: per(&|r| r.reached.map_or(f64::from(cap) + 1.0, f64::from)),
        capped: runs.iter().filter(|r| r.reached.is_none()).count(),
        runs_to_reach: runs
            .iter()
            .filter_map(|r| r.runs_to_reach.map(f64::from))
            .collect(),
        final_pct: per(&|r| r.final_ratio * 100.0),
        experiments: per(&|r| f64::from(r.experiments)),
        rule_pushed: per(&|r| f64::from(r.rule_pushed)),
        lost: per(&|r| f64::from(r.lost)),
        random: rnd.iter().map(|&n| f64::from(n)).collect(),
    }
}

fn print_table(rows: &[Summary], o: &Options) {
    let err = if o.surrogate_err > 0.0 {
        format!(", surrogate error σ = {} %", o.surrogate_err)
    } else {
        String::new()
    };
    println!(
        "\nbuilt-in agent: experiments to reach {:.0} % of the sweep's best score ({} noise seeds, {} % run-to-run noise{err}, cap {}; random search: {} orders)\n",
        REACH * 100.0,
        o.agent_seeds,
        o.noise,
        o.cap,
        o.random_seeds
    );
    println!(
        "| scenario | configs (feasible) | within 95 % | baseline / best | agent: experiments to 95 % (runs) | not reached | final / best | stops after | rule-pushed | true gains lost | random: median (p25–p75) | random ÷ agent |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut agent_all, mut random_all) = (Vec::new(), Vec::new());
    for r in rows {
        let a = quantile(&r.agent, 0.5);
        let rm = quantile(&r.random, 0.5);
        agent_all.push(a);
        random_all.push(rm);
        println!(
            "| {} | {} ({}) | {} | {:.1} % | {} ({}) | {}/{} | {:.1} % | {} | {} | {} | {} ({}–{}) | {} |",
            r.name,
            r.total,
            r.feasible,
            r.good,
            r.baseline_pct,
            fmt_n(a, o.cap),
            fmt_n(quantile(&r.runs_to_reach, 0.5), u32::MAX),
            r.capped,
            r.agent.len(),
            quantile(&r.final_pct, 0.5),
            fmt_n(quantile(&r.experiments, 0.5), u32::MAX),
            fmt_n(quantile(&r.rule_pushed, 0.5), u32::MAX),
            fmt_n(quantile(&r.lost, 0.5), u32::MAX),
            fmt_n(rm, u32::MAX),
            fmt_n(quantile(&r.random, 0.25), u32::MAX),
            fmt_n(quantile(&r.random, 0.75), u32::MAX),
            ratio(rm, a, o.cap)
        );
    }
    let a = quantile(&agent_all, 0.5);
    let rm = quantile(&random_all, 0.5);
    println!(
        "\nmedian over scenarios: agent {} experiments, random search {}; random ÷ agent {}",
        fmt_n(a, o.cap),
        fmt_n(rm, u32::MAX),
        ratio(rm, a, o.cap)
    );
}

/// random ÷ agent; a capped agent counts as cap + 1 (so the ratio is an upper bound).
fn ratio(random: f64, agent: f64, cap: u32) -> String {
    if agent <= 0.0 {
        return "—".into();
    }
    let bound = if agent > f64::from(cap) { "< " } else { "" };
    format!("{bound}{:.1}×", random / agent)
}

fn fmt_n(x: f64, cap: u32) -> String {
    if x.is_nan() {
        "—".into()
    } else if x > f64::from(cap) {
        format!("> {cap}")
    } else if (x - x.round()).abs() < 1e-9 {
        format!("{x:.0}")
    } else {
        format!("{x:.1}")
    }
}
