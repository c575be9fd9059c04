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
//! Usage: `search_quality [NOISE_PCT] [AGENT_SEEDS] [RANDOM_SEEDS] [CAP]`
//! (defaults 2, 10, 200, 40). `SQ_PATH=N` prints the agent's path on scenario N (0-based,
//! first seed); `SQ_ONLY=N` runs scenario N alone; `SQ_TOP=K` prints the K best configs.

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
use forge::tune::row::{Arm, ExperimentRow, Measurement, Sample, Status};
use forge::tune::run::legality;
use forge::tune::score;
use forge::tune::settings::TuneSettings;
use forge::tune::state::RunState;
use forge::tune::verdict::{self, Decision, Rule};
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
    fn new(sc: Scenario, noise: f64, playbook: &Playbook) -> anyhow::Result<Bench> {
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
    stop: String,
    path: Vec<String>,
}

fn base_row(state: &RunState, inc: &Recipe, status: Status, rationale: &str) -> ExperimentRow {
    ExperimentRow {
        seq: state.next_seq(),
        exp: None,
        id: inc.id.clone(),
        parent_id: inc.parent_id.clone(),
        generation: inc.generation,
        layer: Layer::Config,
        changes: BTreeMap::new(),
        rationale: rationale.to_string(),
        agent: "builtin".into(),
        status,
        failure: None,
        score: None,
        measurement: None,
        interval: None,
        log_ratios: vec![],
        samples: vec![],
        predicted_gain_pct: None,
        recipe: inc.clone(),
        cost_usd: 0.0,
        wall_s: 0.0,
        finished_at: String::new(),
        engine_log: None,
        notes: vec![],
    }
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

/// Paired comparison, as `tune::decide::compare` does it.
struct Compared {
    decision: Decision,
    failure: Option<Failure>,
    interval: Option<verdict::Interval>,
    log_ratios: Vec<f64>,
    samples: Vec<Sample>,
    candidate: Option<Measurement>,
    note: Option<String>,
}

fn compare(
    b: &Bench,
    cand: &Recipe,
    inc: &Recipe,
    state: &RunState,
    rng: &mut ChaCha8Rng,
    noise: f64,
) -> Compared {
    let rule = Rule {
        min_improvement_pct: b.settings.min_improvement_pct,
        confidence: 0.95,
        max_pairs: b.settings.max_repeats,
        min_pairs: 1,
    };
    let mut out = Compared {
        decision: Decision::MeasureMore,
        failure: None,
        interval: None,
        log_ratios: vec![],
        samples: vec![],
        candidate: None,
        note: None,
    };
    let mut cands = Vec::new();
    for k in 0..rule.max_pairs {
        let order = if k % 2 == 0 {
            [Arm::Candidate, Arm::Incumbent]
        } else {
            [Arm::Incumbent, Arm::Candidate]
        };
        let mut pair: [Option<Measurement>; 2] = [None, None];
        for arm in order {
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
        if let Some((d, note)) = sla_decides(&c, &i, &b.settings) {
            out.decision = d;
            out.note = Some(note);
            break;
        }
        if let Some(lr) = verdict::log_ratio(c.value, i.value) {
            out.log_ratios.push(lr);
        }
        let (d, iv) = verdict::decide(&out.log_ratios, &state.noise, &rule);
        out.interval = iv;
        out.decision = d;
        if d != Decision::MeasureMore {
            break;
        }
    }
    if out.decision == Decision::MeasureMore {
        out.decision = Decision::Inconclusive;
    }
    out.candidate = forge::tune::decide::median(&cands);
    out
}

/// `tune::decide`'s SLA rule: when exactly one side meets the SLA, that decides.
fn sla_decides(c: &Measurement, i: &Measurement, s: &TuneSettings) -> Option<(Decision, String)> {
    match (c.sla_ok, i.sla_ok) {
        (false, true) => Some((
            Decision::Revert,
            format!(
                "candidate misses the SLA: {}",
                score::sla_violations(c, s).join("; ")
            ),
        )),
        (true, false) => Some((
            Decision::Keep,
            format!(
                "candidate meets the SLA the incumbent misses ({})",
                score::sla_violations(i, s).join("; ")
            ),
        )),
        _ => None,
    }
}

fn propose(b: &Bench, state: &RunState, agent: &mut BuiltinAgent) -> anyhow::Result<Proposal> {
    let inc = state
        .incumbent
        .as_ref()
        .map_or_else(|| b.baseline.clone(), |i| i.recipe.clone());
    let effective = context::effective_vllm(&inc, b.gpu);
    let facts = context::facts(&state.rows, &effective, &b.stats, &b.settings);
    let base = inc.id.clone();
    let is_tried = |r: &Recipe| state.was_tried(&base, &r.id);
    let legal = |r: &Recipe| legality(r, Some(&b.sim));
    let surrogate_fn = |r: &Recipe| b.sim.predict(r);
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
    let o = compare(b, &cand, &inc, state, rng, noise);
    row.exp = Some(state.experiments_used);
    row.samples = o.samples;
    row.log_ratios = o.log_ratios;
    row.interval = o.interval;
    row.measurement = o.candidate;
    let inc_score = state.incumbent.as_ref().map_or(1.0, |i| i.score);
    row.score = row
        .interval
        .map(|iv| inc_score * (1.0 + iv.gain_pct / 100.0));
    if let Some(note) = o.note {
        row.rationale = format!("{} [{note}]", row.rationale);
    }
    row.status = match (o.failure, o.decision) {
        (Some(f), _) => {
            row.failure = Some(f);
            Status::Failed
        }
        (None, Decision::Keep) => Status::Kept,
        (None, Decision::Revert) => Status::Reverted,
        (None, _) => Status::Inconclusive,
    };
    if row.status == Status::Kept && row.score.is_none() {
        row.score = Some(inc_score);
    }
    row
}

fn run_agent(b: &Bench, sw: &Sweep, noise: f64, seed: u64, cap: u32) -> anyhow::Result<AgentRun> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut state = RunState::default();
    let mut agent = BuiltinAgent;
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
    let mut run = AgentRun {
        reached: sw.reached(sw.baseline).then_some(0),
        experiments: 0,
        runs: 1,
        runs_to_reach: sw.reached(sw.baseline).then_some(1),
        final_ratio: 0.0,
        stop: String::new(),
        path: vec![],
    };
    loop {
        if run.experiments >= cap {
            run.stop = format!("cap ({cap})");
            break;
        }
        if state.current_layer(&b.settings).is_none() {
            run.stop = "converged".into();
            break;
        }
        let p = propose(b, &state, &mut agent)?;
        let row = handle(b, &state, &p, &mut rng, noise);
        let counted = row.status.is_experiment();
        let line = describe(b, sw, &state, &row);
        state.apply(row);
        if counted {
            run.experiments += 1;
            run.runs += state.rows.last().map_or(0, |r| r.samples.len() as u32);
        }
        let inc_truth = state
            .incumbent
            .as_ref()
            .map_or(0.0, |i| sw.score(b, &i.recipe));
        run.path.push(format!(
            "{line} → incumbent at {:.1} % of best",
            inc_truth / sw.best * 100.0
        ));
        if run.reached.is_none() && sw.reached(inc_truth) {
            run.reached = Some(run.experiments);
            run.runs_to_reach = Some(run.runs);
        }
    }
    let inc = state.incumbent.as_ref().map_or(&b.baseline, |i| &i.recipe);
    run.final_ratio = sw.score(b, inc) / sw.best;
    Ok(run)
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
        let t = sw.score(b, &row.recipe);
        format!(
            " (true {:+.1} %)",
            (t / sw.score(b, inc).max(1e-12) - 1.0) * 100.0
        )
    } else {
        String::new()
    };
    let rule = row.rationale.find("Playbook:").map_or("", |_| " [rule]");
    format!(
        "{exp} {:<12} {}{pred}{meas}{truth}{rule}",
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

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let noise: f64 = args.next().map_or(Ok(2.0), |v| v.parse())?;
    let agent_seeds: u64 = args.next().map_or(Ok(10), |v| v.parse())?;
    let random_seeds: u64 = args.next().map_or(Ok(200), |v| v.parse())?;
    let cap: u32 = args.next().map_or(Ok(40), |v| v.parse())?;
    let only: Option<usize> = std::env::var("SQ_ONLY").ok().and_then(|v| v.parse().ok());
    let path_var = std::env::var("SQ_PATH").unwrap_or_default();
    let path_of = |i: usize| path_var == "all" || path_var.parse() == Ok(i);
    let top: usize = std::env::var("SQ_TOP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let started = Instant::now();
    let playbook = bench_playbook()?;
    let mut rows = Vec::new();
    for (i, sc) in scenarios().into_iter().enumerate() {
        if only.is_some_and(|o| o != i) {
            continue;
        }
        let b = Bench::new(sc, noise, &playbook)?;
        let sw = sweep(&b);
        match b.run_once(&b.baseline, b.settings.seed, 0.0) {
            Ok((m, f)) => eprintln!(
                "  baseline: value {:.3} sla_ok {} p99 ttft {:.0} ms p99 tpot {:.1} ms tput {:.0} tok/s; preemptions {} peak running {} waiting {} kv {:.2}",
                m.value,
                m.sla_ok,
                m.p99_ttft_ms,
                m.p99_tpot_ms,
                m.output_throughput,
                f.preemptions,
                f.peak_running,
                f.peak_waiting,
                f.peak_kv_usage
            ),
            Err(e) => {
                eprintln!("{}: the baseline does not boot: {e}", b.name);
                continue;
            }
        }
        eprintln!(
            "{}: {} configs, {} feasible, baseline {:.3} best {:.3} ({:.1} s); best {}",
            b.name,
            sw.total,
            sw.feasible.len(),
            sw.baseline,
            sw.best,
            sw.seconds,
            sw.best_key
        );
        if std::env::var("SQ_NOISE").is_ok() {
            for (what, r) in [
                ("baseline", b.baseline.clone()),
                ("best", recipe_of(&b, &sw.best_key)),
            ] {
                let v: Vec<f64> = (0..16)
                    .filter_map(|k| b.run_once(&r, 0x0123_0000 + k, noise).ok())
                    .map(|(m, _)| {
                        if m.sla_ok {
                            m.value.max(1e-12).ln()
                        } else {
                            f64::NAN
                        }
                    })
                    .collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64)
                    .sqrt();
                eprintln!(
                    "  noise of ln(objective), {what}: sd {:.1} % per run",
                    sd * 100.0
                );
            }
        }
        if top > 0 {
            let mut f = sw.feasible.clone();
            f.sort_by(|a, b| b.1.total_cmp(&a.1));
            for (k, s) in f.iter().take(top) {
                eprintln!("  {s:.3} {k}");
            }
            let good = sw.feasible.iter().filter(|(_, s)| sw.reached(*s)).count();
            eprintln!("  {good} configs within {:.0} % of the best", REACH * 100.0);
        }
        let t = Instant::now();
        let mut runs = Vec::new();
        for s in 0..agent_seeds {
            let r = run_agent(&b, &sw, noise, 0xa9e7_0000 + s, cap)?;
            if path_of(i) && s == 0 {
                println!("Agent path, {} (noise seed 0):\n", b.name);
                for l in &r.path {
                    println!("    {l}");
                }
                println!("    stop: {}\n", r.stop);
            }
            runs.push(r);
        }
        eprintln!(
            "  agent: {agent_seeds} runs in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        let rnd = random_search(&sw, random_seeds);
        rows.push(summarize(&b, &sw, &runs, &rnd, cap));
    }
    print_table(&rows, noise, agent_seeds, random_seeds, cap);
    println!("\ntotal runtime {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// One scenario's line of the table.
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
    random: Vec<f64>,
}

fn summarize(b: &Bench, sw: &Sweep, runs: &[AgentRun], rnd: &[u32], cap: u32) -> Summary {
    Summary {
        name: b.name,
        total: sw.total,
        feasible: sw.feasible.len(),
        good: sw.feasible.iter().filter(|(_, s)| sw.reached(*s)).count(),
        baseline_pct: sw.baseline / sw.best * 100.0,
        agent: runs
            .iter()
            .map(|r| r.reached.map_or(f64::from(cap) + 1.0, f64::from))
            .collect(),
        capped: runs.iter().filter(|r| r.reached.is_none()).count(),
        runs_to_reach: runs
            .iter()
            .filter_map(|r| r.runs_to_reach.map(f64::from))
            .collect(),
        final_pct: runs.iter().map(|r| r.final_ratio * 100.0).collect(),
        experiments: runs.iter().map(|r| f64::from(r.experiments)).collect(),
        random: rnd.iter().map(|&n| f64::from(n)).collect(),
    }
}

fn print_table(rows: &[Summary], noise: f64, agent_seeds: u64, random_seeds: u64, cap: u32) {
    println!(
        "Experiments to reach {:.0} % of the sweep's best score (agent: median over {agent_seeds} noise seeds, {noise} % noise, cap {cap}; random: {random_seeds} orders)\n",
        REACH * 100.0
    );
    println!(
        "| scenario | configs (feasible) | within 95 % | baseline / best | agent experiments (runs) | agent not reached | agent final / best | agent stops after | random median (p25–p75) | random ÷ agent |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut agent_all, mut random_all) = (Vec::new(), Vec::new());
    for r in rows {
        let a = quantile(&r.agent, 0.5);
        let rm = quantile(&r.random, 0.5);
        agent_all.push(a);
        random_all.push(rm);
        let ratio = if a > 0.0 {
            format!("{:.1}×", rm / a)
        } else {
            "—".into()
        };
        println!(
            "| {} | {} ({}) | {} | {:.1} % | {} ({}) | {}/{} | {:.1} % | {} | {} ({}–{}) | {} |",
            r.name,
            r.total,
            r.feasible,
            r.good,
            r.baseline_pct,
            fmt_n(a, cap),
            fmt_n(quantile(&r.runs_to_reach, 0.5), cap * 100),
            r.capped,
            r.agent.len(),
            quantile(&r.final_pct, 0.5),
            fmt_n(quantile(&r.experiments, 0.5), cap * 100),
            fmt_n(rm, u32::MAX),
            fmt_n(quantile(&r.random, 0.25), u32::MAX),
            fmt_n(quantile(&r.random, 0.75), u32::MAX),
            ratio
        );
    }
    let a = quantile(&agent_all, 0.5);
    let rm = quantile(&random_all, 0.5);
    println!(
        "\nmedian over scenarios: agent {} experiments, random {}; random ÷ agent {:.1}×",
        fmt_n(a, cap),
        fmt_n(rm, u32::MAX),
        rm / a
    );
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
