//! What the cross-framework gate costs in GPU time, and whether its winners hold: forge's
//! gate (each framework's own bounded search, then a rate search per candidate) against the
//! seed's recipe (the first 8 candidates of each framework's space in key order × every
//! scenario × a QPS bisection of 0.25–16 req/s in at most 5 rounds, one run each), both
//! judged against an exhaustive sweep of the space (every candidate, its SLA edge found
//! noise-free to 1 %).
//!
//! Everything runs in process on the simulator's predictions (`forge sim predict`), with
//! run-to-run noise on every measured run; GPU time is the simulated seconds of every run
//! plus a fixed boot cost per server started. Llama-3.1-8B-Instruct on a simulated H100,
//! the seed's scenarios (chat 1000/1000, summarization 8000/1000, 80 prompts) and SLA
//! (p50 TTFT 1500 ms, p50 TPOT 30 ms, 99 % success).
//!
//! Usage: cargo run --release --example gate_cost -- [NOISE_PCT] [REPEATS] [BUDGET]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use forge::bench::{LoadSpec, Timing};
use forge::cli::{Cli, Command};
use forge::compare::rate::{self, Bounds, Outcome};
use forge::compare::search::floor_flag;
use forge::compare::sla::Sla;
use forge::engine::adapter::Engine;
use forge::engine::failure::Failure;
use forge::recipe::{EngineKind, Hardware, Layer, Recipe};
use forge::record::Status;
use forge::tune::assemble::{assemble, sim_launch};
use forge::tune::measure::{Measure, Predicted, SampleOutput};
use forge::tune::state::RunState;
use forge::workload::WorkloadRequest;
use forge::workload::synth::{self, Scenario};
use serde_json::{Value, json};

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
const GPU: &str = "H100";
/// GPU seconds charged for starting one server (an 8B model on one H100 boots in about a
/// minute and a half with CUDA-graph capture).
const BOOT_S: f64 = 90.0;
/// The longest request of the two scenarios (8000 + 1000): every sequence-length flag.
const FLOOR: u64 = 9000;

type Space = Vec<(&'static str, Layer, Vec<Value>)>;

/// The seed's search space of each framework (sota-loop notes; SGLang's
/// `max_running_requests` has no values there: 64/128/256 here).
fn space(fw: EngineKind) -> Space {
    match fw {
        EngineKind::Vllm => vec![
            (
                "max_num_seqs",
                Layer::Config,
                vec![json!(64), json!(96), json!(128)],
            ),
            (
                "max_num_batched_tokens",
                Layer::Config,
                vec![json!(8192), json!(16384)],
            ),
            (
                "long_prefill_token_threshold",
                Layer::Config,
                vec![json!(0), json!(4096)],
            ),
        ],
        EngineKind::Sglang => vec![
            (
                "attention_backend",
                Layer::Kernel,
                vec![json!("fa3"), json!("flashinfer")],
            ),
            (
                "chunked_prefill_size",
                Layer::Config,
                vec![json!(4096), json!(8192)],
            ),
            (
                "max_running_requests",
                Layer::Config,
                vec![json!(64), json!(128), json!(256)],
            ),
        ],
        _ => vec![
            (
                "max_batch_size",
                Layer::Config,
                vec![json!(64), json!(128), json!(256)],
            ),
            (
                "max_num_tokens",
                Layer::Config,
                vec![json!(8192), json!(16384)],
            ),
            (
                "max_seq_len",
                Layer::Config,
                vec![json!(12288), json!(16384)],
            ),
        ],
    }
}

fn hardware() -> Hardware {
    let g = forge::hardware::gpus::lookup(GPU).expect("GPU");
    Hardware {
        vendor: "nvidia".into(),
        gpu_type: g.name.to_string(),
        count: 1,
        memory_gb_per_gpu: (g.memory_gib() * 10.0).round() / 10.0,
    }
}

/// The baseline with the sequence-length floor pinned.
fn base(fw: EngineKind) -> Recipe {
    let floor = match fw {
        EngineKind::Vllm => "max_model_len",
        EngineKind::Sglang => "context_length",
        _ => "max_seq_len",
    };
    let b = Recipe::baseline(fw, MODEL, hardware());
    b.mutate(
        Layer::Config,
        &BTreeMap::from([(floor.to_string(), json!(FLOOR))]),
    )
}

/// Every candidate of the space, in key order (the last key varies fastest).
fn candidates(fw: EngineKind) -> Vec<Recipe> {
    let mut out = vec![base(fw)];
    for (k, layer, values) in space(fw) {
        out = out
            .into_iter()
            .flat_map(|r| {
                values
                    .iter()
                    .map(|v| r.mutate(layer, &BTreeMap::from([(k.to_string(), v.clone())])))
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    out
}

/// Runs and their simulated seconds.
#[derive(Default, Debug, Clone, Copy)]
struct Cost {
    seconds: f64,
    runs: u64,
    boots: u64,
}

impl Cost {
    fn gpu_hours(&self) -> f64 {
        (self.seconds + self.boots as f64 * BOOT_S) / 3600.0
    }
}

/// One measured run of `r` at `rate` (noise from `tag`).
fn run_once(
    r: &Recipe,
    requests: &[WorkloadRequest],
    rate: Option<f64>,
    noise: f64,
    tag: &str,
    cost: &mut Cost,
) -> Outcome<f64> {
    let load = LoadSpec {
        request_rate: rate,
        timing: Timing::Rate,
        percentiles: vec![50.0, 99.0],
        ..LoadSpec::default()
    };
    let mut m = Predicted::new(
        MODEL,
        forge::hardware::gpus::lookup(GPU).expect("GPU"),
        requests.to_vec(),
        &load,
        noise,
        0,
    )
    .expect("predicted");
    // The prediction finishes without waiting on anything: poll it once.
    let out =
        futures::FutureExt::now_or_never(m.sample(r, tag)).expect("prediction is synchronous");
    match out {
        Ok(o) => {
            cost.seconds += o.result.duration;
            cost.runs += 1;
            Outcome::measured(&Sla::default(), &o.result, o.result.request_throughput)
        }
        Err(_) => Outcome::failed(0.0),
    }
}

/// The SLA-passing throughput forge's rate search finds for `r` (0 when nothing passes).
fn rate_search(
    r: &Recipe,
    req: &[WorkloadRequest],
    b: Bounds,
    noise: f64,
    tag: &str,
    cost: &mut Cost,
) -> f64 {
    let mut k = 0;
    let probe = |rate: Option<f64>| {
        k += 1;
        let o = run_once(r, req, rate, noise, &format!("{tag}-{k}"), cost);
        std::future::ready(o)
    };
    let s = futures::executor::block_on(rate::search(b, probe));
    s.best().map_or(0.0, |x| x.data)
}

/// The seed's search: both bounds, then at most five halvings of the QPS interval.
fn seed_bisection(
    r: &Recipe,
    req: &[WorkloadRequest],
    noise: f64,
    tag: &str,
    cost: &mut Cost,
) -> f64 {
    let (mut lo, mut hi) = (0.25, 16.0);
    let probe = |rate: f64, k: usize, cost: &mut Cost| {
        let o = run_once(r, req, Some(rate), noise, &format!("{tag}-{k}"), cost);
        (o.slack >= 0.0).then_some(o.data)
    };
    if let Some(t) = probe(hi, 0, cost) {
        return t;
    }
    let Some(mut best) = probe(lo, 1, cost) else {
        return 0.0;
    };
    for k in 0..5 {
        if hi - lo <= 0.1 {
            break;
        }
        let mid = (lo + hi) / 2.0;
        match probe(mid, k + 2, cost) {
            Some(t) => {
                best = t;
                lo = mid;
            }
            None => hi = mid,
        }
    }
    best
}

/// Measures what the tune loop spends: simulated seconds, runs, and a boot whenever the
/// recipe changes.
struct Metered {
    inner: Predicted,
    cost: Cost,
    last: Option<String>,
}

impl Measure for Metered {
    fn sample(
        &mut self,
        recipe: &Recipe,
        tag: &str,
    ) -> impl Future<Output = Result<SampleOutput, Failure>> + Send {
        if self.last.as_deref() != Some(recipe.id.as_str()) {
            self.cost.boots += 1;
            self.last = Some(recipe.id.clone());
        }
        async move {
            let out = self.inner.sample(recipe, tag).await;
            if let Ok(o) = &out {
                self.cost.seconds += o.result.duration;
                self.cost.runs += 1;
            }
            out
        }
    }
}

/// forge's search for `fw`: a `forge tune` run in process; its baseline and newest kept
/// recipes (at most 3) are the candidates.
fn forge_search(
    fw: EngineKind,
    all: &[WorkloadRequest],
    noise: f64,
    budget: u32,
    seed: u64,
    cost: &mut Cost,
) -> anyhow::Result<Vec<Recipe>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("search.jsonl");
    std::fs::write(&path, synth::to_jsonl(all))?;
    let floor = floor_flag(fw, FLOOR).expect("floor");
    let argv = [
        "forge",
        "tune",
        "-m",
        MODEL,
        "-w",
        path.to_str().unwrap_or(""),
        "--engine",
        fw.as_str(),
        "--dry-run",
        "--sim-gpu",
        GPU,
        "--sim-noise",
        &noise.to_string(),
        "--skip-quant",
        "--llm",
        "builtin",
        "--max-experiments",
        &budget.to_string(),
        "--concurrency",
        "16",
        "--objective",
        "goodput",
        "--slo",
        "ttft_ms=1500,tpot_ms=30",
        "--engine-args",
        &floor,
        "--seed",
        &seed.to_string(),
        "--max-repeats",
        &max_repeats().to_string(),
    ];
    let Command::Tune(t) = <Cli as clap::Parser>::parse_from(argv).command else {
        anyhow::bail!("not a tune command");
    };
    let w = forge::workload::load(&path)?;
    let mut settings = forge::commands::tune::resolve(&t.args, None)?;
    settings.load = Some(forge::commands::tune::resolve_load(&t.args, &w)?);
    let load = settings.load_spec(false, w.requests.len());
    let gpu = forge::hardware::gpus::lookup(GPU).expect("GPU");
    let inner = Predicted::new(MODEL, gpu, w.requests.clone(), &load, noise, seed)?;
    let sim = sim_launch(&settings, "forge".into());
    let engine: Arc<dyn Engine> = match fw {
        EngineKind::Sglang => {
            Arc::new(forge::engine::sglang::adapter::SglangEngine::simulated(sim))
        }
        EngineKind::Trtllm => {
            Arc::new(forge::engine::trtllm::adapter::TrtllmEngine::simulated(sim))
        }
        _ => Arc::new(forge::engine::vllm::adapter::VllmEngine::simulated(sim)),
    };
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir)?;
    let metered = Metered {
        inner,
        cost: Cost::default(),
        last: None,
    };
    let (mut tuner, _) = assemble(settings, &run_dir, RunState::default(), metered, engine)?;
    let reason = futures::executor::block_on(tuner.run())?;
    futures::executor::block_on(tuner.finish(&reason))?;
    cost.seconds += tuner.measure.cost.seconds;
    cost.runs += tuner.measure.cost.runs;
    cost.boots += tuner.measure.cost.boots;
    let rows: Vec<forge::record::ExperimentRow> =
        forge::store::read_rows(&run_dir.join(forge::store::JOURNAL_FILE))?;
    let mut picks: Vec<Recipe> = rows
        .iter()
        .filter(|r| r.exp == Some(0) && r.status == Status::Baseline)
        .map(|r| r.recipe.clone())
        .take(1)
        .collect();
    let kept: Vec<&forge::record::ExperimentRow> =
        rows.iter().filter(|r| r.status == Status::Kept).collect();
    picks.extend(kept.iter().rev().take(2).map(|r| r.recipe.clone()));
    Ok(picks)
}

/// Paired repeats per decision of forge's search (`forge compare --max-repeats`).
fn max_repeats() -> usize {
    std::env::var("MAX_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let noise: f64 = args.first().map_or(Ok(2.0), |a| a.parse())?;
    let repeats: u64 = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let budget: u32 = args.get(2).map_or(Ok(6), |a| a.parse())?;
    let scenarios = [
        ("chat", synth::generate(&Scenario::Chat.spec(0))),
        (
            "summarization",
            synth::generate(&Scenario::Summarization.spec(0)),
        ),
    ];
    let per = std::env::var("SEARCH_PER_SCENARIO")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(forge::compare::search::SEARCH_PER_SCENARIO);
    let all: Vec<WorkloadRequest> = scenarios
        .iter()
        .flat_map(|(_, r)| forge::compare::search::sample_evenly(r, per))
        .collect();
    let fine = Bounds {
        lo: 0.05,
        hi: 64.0,
        tolerance: 0.01,
        max_runs: 40,
        all_at_once: true,
    };
    println!(
        "gate cost: {MODEL} on a simulated {GPU}, noise {noise} %, {repeats} repeats, forge search budget {budget} ({} paired repeats at most) on {per} requests per scenario, boot {BOOT_S} s",
        max_repeats()
    );
    println!(
        "| framework | scenario | sweep best req/s | seed's winner (true, % of best) | forge's winner (true, % of best) |"
    );
    println!("|---|---|---:|---:|---:|");
    let (mut seed_total, mut forge_total) = (Cost::default(), Cost::default());
    let (mut seed_ok, mut forge_ok, mut cells) = (0, 0, 0);
    for fw in [EngineKind::Vllm, EngineKind::Sglang, EngineKind::Trtllm] {
        let cands = candidates(fw);
        // The truth: every candidate's edge, noise-free.
        let truth = |r: &Recipe, req: &[WorkloadRequest]| {
            let mut c = Cost::default();
            rate_search(r, req, fine, 0.0, "truth", &mut c)
        };
        let best: Vec<f64> = scenarios
            .iter()
            .map(|(_, req)| cands.iter().map(|r| truth(r, req)).fold(0.0, f64::max))
            .collect();
        for rep in 0..repeats {
            let mut seed_cost = Cost::default();
            let mut forge_cost = Cost::default();
            let picks = forge_search(fw, &all, noise, budget, rep, &mut forge_cost)?;
            forge_cost.boots += picks.len() as u64;
            seed_cost.boots += 8;
            for ((name, req), &best) in scenarios.iter().zip(&best) {
                let seed_pick = cands
                    .iter()
                    .take(8)
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            seed_bisection(
                                r,
                                req,
                                noise,
                                &format!("seed-{rep}-{i}-{name}"),
                                &mut seed_cost,
                            ),
                            r,
                        )
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, r)| r.clone())
                    .expect("candidates");
                let forge_pick = picks
                    .iter()
                    .enumerate()
                    .map(|(i, r)| {
                        (
                            rate_search(
                                r,
                                req,
                                Bounds::default(),
                                noise,
                                &format!("forge-{rep}-{i}-{name}"),
                                &mut forge_cost,
                            ),
                            r,
                        )
                    })
                    .max_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, r)| r.clone())
                    .expect("picks");
                let (ts, tf) = (truth(&seed_pick, req), truth(&forge_pick, req));
                let pct = |t: f64| if best > 0.0 { t / best * 100.0 } else { 100.0 };
                cells += 1;
                seed_ok += (pct(ts) >= 98.0) as u32;
                forge_ok += (pct(tf) >= 98.0) as u32;
                println!(
                    "| {} | {name} | {best:.3} | {ts:.3} ({:.1} %) | {tf:.3} ({:.1} %) |",
                    fw.as_str(),
                    pct(ts),
                    pct(tf)
                );
            }
            for (t, c) in [(&mut seed_total, seed_cost), (&mut forge_total, forge_cost)] {
                t.seconds += c.seconds;
                t.runs += c.runs;
                t.boots += c.boots;
            }
        }
    }
    println!();
    println!(
        "winner within 2 % of the sweep's best: seed {seed_ok}/{cells}, forge {forge_ok}/{cells}"
    );
    println!(
        "GPU time: seed {:.2} h ({} runs, {} boots), forge {:.2} h ({} runs, {} boots): forge/seed = {:.2}",
        seed_total.gpu_hours(),
        seed_total.runs,
        seed_total.boots,
        forge_total.gpu_hours(),
        forge_total.runs,
        forge_total.boots,
        forge_total.gpu_hours() / seed_total.gpu_hours()
    );
    Ok(())
}
