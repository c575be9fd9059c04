//! Decision quality of forge's keep/revert rule against the original tool's, on the same
//! decisions (run by `bench/decisions.sh`).
//!
//! Each decision compares a candidate recipe with an incumbent, measured through forge's
//! in-process `Measure` (the simulator's prediction with `--sim-noise`: a run-level speed
//! factor ~ N(1, noise) per run, as on a real machine). forge's rule is forge's own code,
//! `tune::decide::compare` judged by `tune::judge`: interleaved pairs until the verdict is
//! clear (the SLA's standing on each side, the candidate's accuracy against the
//! incumbent's, the objective's interval against the threshold; up to `max_pairs`), with
//! noise pooled over the scenario's earlier decisions. The original rule runs each once and
//! keeps when the candidate scores 1 % better.
//!
//! Three kinds of scenario:
//! - **throughput**: no SLO, the default accuracy floor (answers are deterministic);
//! - **SLA-bound**: a p99 TTFT or TPOT bound set just above the defaults' own (noise-free)
//!   p99, so moves cross it both ways and a run's p99 straddles it;
//! - **accuracy-bound**: quantization moves against a strict floor (0.996: FP8 weights, which
//!   change 0.5 % of the simulated tokens, fall below it; an FP8 KV cache, 0.3 %, does not),
//!   with deterministic answers, and once with answers that vary 2 % from run to run (as
//!   batch-dependent numerics make them on llama.cpp).
//!
//! The *truth* of a decision: the candidate's score over the incumbent's — forge's score
//! (`score::comparable`: the objective inside the SLA and the accuracy floor, graded by how
//! far outside), with accuracy from deterministic answers — averaged over 16 runs with
//! common noise for throughput scenarios, and from the noise-free runs for SLA- and
//! accuracy-bound ones (meeting a bound is a property of a config's typical p99, not of how
//! often noise pushes one run across it). "Truly not better" = that ratio ≤ 1.
//!
//! Usage: `decision_quality [NOISE_PCT] [DECISIONS_PER_SCENARIO]` (defaults 3, 50).

use std::collections::BTreeMap;

use clap::Parser;
use forge::bench::{LoadSpec, Slo, Timing};
use forge::cli::{Cli, Command};
use forge::hardware::gpus::lookup;
use forge::recipe::{EngineKind, Hardware, Layer, Recipe};
use forge::record::{Measurement, TuneSettings};
use forge::tune::accuracy::References;
use forge::tune::decide;
use forge::tune::judge::{Judge, Pools};
use forge::tune::measure::{Measure, Predicted, SampleOutput};
use forge::tune::score;
use forge::tune::verdict::{self, Decision, Rule};
use forge::workload::WorkloadRequest;
use forge::workload::synth::{self, SynthSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// What bounds a scenario's decisions.
#[derive(Clone, Copy, PartialEq)]
enum Bound {
    /// The objective alone.
    Throughput,
    /// A p99 TTFT bound at `factor` × the defaults' noise-free p99 TTFT.
    Ttft(f64),
    /// A p99 TPOT bound at `factor` × the defaults' noise-free p99 TPOT.
    Tpot(f64),
    /// An accuracy floor, with a share of answer tokens varying run to run.
    Accuracy { floor: f64, answer_noise: f64 },
}

impl Bound {
    fn kind(self) -> &'static str {
        match self {
            Bound::Throughput => "throughput",
            Bound::Ttft(_) | Bound::Tpot(_) => "SLA-bound",
            Bound::Accuracy { .. } => "accuracy-bound",
        }
    }
}

/// A (model, GPU, workload, load, bound) combination.
struct Scenario {
    name: &'static str,
    model: &'static str,
    gpu: &'static str,
    requests: Vec<WorkloadRequest>,
    load: LoadSpec,
    bound: Bound,
}

fn synth(i: u32, o: u32, n: usize, seed: u64) -> Vec<WorkloadRequest> {
    synth::generate(&SynthSpec {
        input_len: i,
        output_len: o,
        num_prompts: n,
        prefix_len: 0,
        range_ratio: 0.3,
        seed,
    })
}

fn load(c: usize, rate: Option<f64>) -> LoadSpec {
    LoadSpec {
        concurrency: Some(c),
        request_rate: rate,
        timing: Timing::Rate,
        seed: 1,
        ..LoadSpec::default()
    }
}

fn scenarios() -> Vec<Scenario> {
    let llama8 = "meta-llama/Llama-3.1-8B-Instruct";
    let sc = |name, model, gpu, requests, load, bound| Scenario {
        name,
        model,
        gpu,
        requests,
        load,
        bound,
    };
    vec![
        sc(
            "8B/H100 chat",
            llama8,
            "H100",
            synth(1000, 300, 96, 1),
            load(64, None),
            Bound::Throughput,
        ),
        sc(
            "7B/A100 rag",
            "Qwen/Qwen2.5-7B-Instruct",
            "A100-80GB",
            synth(3000, 200, 64, 2),
            load(32, Some(6.0)),
            Bound::Throughput,
        ),
        sc(
            "3B/L4 chat",
            "meta-llama/Llama-3.2-3B-Instruct",
            "L4",
            synth(800, 200, 64, 3),
            load(32, None),
            Bound::Throughput,
        ),
        sc(
            "14B/H100 summarize",
            "Qwen/Qwen3-14B",
            "H100",
            synth(6000, 300, 48, 4),
            load(16, None),
            Bound::Throughput,
        ),
        sc(
            "7B/A10G short",
            "mistralai/Mistral-7B-Instruct-v0.3",
            "A10G",
            synth(256, 128, 96, 5),
            load(48, None),
            Bound::Throughput,
        ),
        sc(
            "8B/H100 chat, p99 TPOT ≤ 1.03× defaults",
            llama8,
            "H100",
            synth(1000, 300, 96, 6),
            load(64, None),
            Bound::Tpot(1.03),
        ),
        sc(
            "7B/A100 rag, p99 TTFT ≤ 1.05× defaults",
            "Qwen/Qwen2.5-7B-Instruct",
            "A100-80GB",
            synth(3000, 200, 64, 7),
            load(32, Some(6.0)),
            Bound::Ttft(1.05),
        ),
        sc(
            "8B/H100 chat, accuracy ≥ 0.996",
            llama8,
            "H100",
            synth(1000, 300, 96, 8),
            load(64, None),
            Bound::Accuracy {
                floor: 0.996,
                answer_noise: 0.0,
            },
        ),
        sc(
            "8B/H100 chat, accuracy ≥ 0.996, answers vary 2 %",
            llama8,
            "H100",
            synth(1000, 300, 96, 9),
            load(64, None),
            Bound::Accuracy {
                floor: 0.996,
                answer_noise: 0.02,
            },
        ),
    ]
}

/// Single-knob moves a tuner would try (values legal for vLLM), with their layer.
fn moves() -> Vec<(Layer, &'static str, Value)> {
    let mut v = Vec::new();
    for s in [16, 32, 64, 128, 256, 512] {
        v.push((Layer::Config, "max_num_seqs", json!(s)));
    }
    for t in [2048, 4096, 8192, 16384] {
        v.push((Layer::Config, "max_num_batched_tokens", json!(t)));
    }
    for g in [0.85, 0.9, 0.95] {
        v.push((Layer::Config, "gpu_memory_utilization", json!(g)));
    }
    v.push((Layer::Config, "enable_prefix_caching", json!(false)));
    for l in [512, 2048] {
        v.push((Layer::Config, "long_prefill_token_threshold", json!(l)));
    }
    v.push((Layer::Quant, "kv_cache_quant", json!("fp8")));
    v.push((Layer::Quant, "method", json!("fp8")));
    v
}

/// Seeds over which the true gain is averaged (the same seeds for both recipes).
const TRUTH_SEEDS: u64 = 16;

/// A scenario made ready: the `forge tune` settings it is scored with, forge's measure
/// (noisy answers where the scenario has them), the truth's measure (deterministic answers),
/// and the accuracy references from the defaults, as a run takes them.
struct Instrument {
    settings: TuneSettings,
    measure: Predicted,
    truth: Predicted,
    exact: Predicted,
    refs: References,
    /// The references of the truth: the defaults' deterministic answers.
    truth_refs: References,
}

fn settings_for(sc: &Scenario) -> anyhow::Result<TuneSettings> {
    let argv = [
        "forge",
        "tune",
        "-m",
        sc.model,
        "-w",
        "w",
        "--dry-run",
        "--sim-gpu",
        sc.gpu,
    ];
    match Cli::parse_from(argv).command {
        Command::Tune(t) => Ok(forge::commands::tune::resolve(&t.args, None)?),
        _ => anyhow::bail!("not a tune command line"),
    }
}

fn instrument(sc: &Scenario, base: &Recipe, noise: f64) -> anyhow::Result<Instrument> {
    let gpu = lookup(sc.gpu).ok_or_else(|| anyhow::anyhow!("unknown GPU {}", sc.gpu))?;
    let new = |seed| Predicted::new(sc.model, gpu, sc.requests.clone(), &sc.load, noise, seed);
    let answer_noise = match sc.bound {
        Bound::Accuracy { answer_noise, .. } => answer_noise,
        _ => 0.0,
    };
    let mut i = Instrument {
        settings: settings_for(sc)?,
        measure: new(0x7ea1)?.with_answer_noise(answer_noise),
        truth: new(0x7ea1)?,
        exact: Predicted::new(sc.model, gpu, sc.requests.clone(), &sc.load, 0.0, 0)?,
        refs: References::default(),
        truth_refs: References::default(),
    };
    let first = run(&mut i.measure, base, "refs")?;
    i.refs = References::new(vec![None; sc.requests.len()], first.answers);
    i.refs
        .calibrate(&run(&mut i.measure, base, "refs-2")?.answers);
    let exact = run(&mut i.exact, base, "refs")?.answers;
    i.truth_refs = References::new(vec![None; sc.requests.len()], exact);
    set_bound(&mut i, sc, base)?;
    Ok(i)
}

/// The SLO or floor of the scenario, set from the defaults' own noise-free run.
fn set_bound(i: &mut Instrument, sc: &Scenario, base: &Recipe) -> anyhow::Result<()> {
    let m = Measurement::from_result(&run(&mut i.exact, base, "bound")?.result);
    match sc.bound {
        Bound::Throughput => {}
        Bound::Ttft(f) => {
            i.settings.slo = Slo {
                ttft_ms: Some(m.p99_ttft_ms * f),
                ..Slo::default()
            }
        }
        Bound::Tpot(f) => {
            i.settings.slo = Slo {
                tpot_ms: Some(m.p99_tpot_ms * f),
                ..Slo::default()
            }
        }
        Bound::Accuracy { floor, .. } => i.settings.accuracy_floor = floor,
    }
    Ok(())
}

fn run(m: &mut Predicted, r: &Recipe, tag: &str) -> anyhow::Result<SampleOutput> {
    futures::executor::block_on(m.sample(r, tag)).map_err(|f| anyhow::anyhow!(f.summary))
}

/// forge's score of one run of `r` on `m`, accuracy against the references.
fn scored(i: &mut Instrument, truth: bool, r: &Recipe, tag: &str) -> Option<Measurement> {
    let m = if truth { &mut i.truth } else { &mut i.measure };
    let out = futures::executor::block_on(m.sample(r, tag)).ok()?;
    let refs = if truth { &i.truth_refs } else { &i.refs };
    let acc = refs.relative(&out.answers);
    (out.result.completed > 0).then(|| score::measure(&out.result, &i.settings, acc))
}

/// The candidate's true gain over the incumbent. Throughput: better on average over the
/// machine's noise (16 runs with common noise), not at one point. SLA- and accuracy-bound:
/// forge's score of the noise-free runs — whether a config meets a bound is a property of
/// its typical p99 and its answers, not of how often noise pushes a run across it.
fn true_gain(i: &mut Instrument, cand: &Recipe, inc: &Recipe, kind: &str) -> Option<f64> {
    let seeds = if kind == "throughput" { TRUTH_SEEDS } else { 1 };
    let mut ratios = Vec::new();
    for k in 0..seeds {
        let tag = format!("truth-{k}");
        let (c, b) = if kind == "throughput" {
            (scored(i, true, cand, &tag)?, scored(i, true, inc, &tag)?)
        } else {
            (exact(i, cand)?, exact(i, inc)?)
        };
        ratios.push(score::comparable(&c, &i.settings) / score::comparable(&b, &i.settings));
    }
    Some(ratios.iter().sum::<f64>() / ratios.len() as f64 - 1.0)
}

/// forge's score of the noise-free run of `r` (deterministic answers).
fn exact(i: &mut Instrument, r: &Recipe) -> Option<Measurement> {
    let out = futures::executor::block_on(i.exact.sample(r, "exact")).ok()?;
    let acc = i.truth_refs.relative(&out.answers);
    (out.result.completed > 0).then(|| score::measure(&out.result, &i.settings, acc))
}

/// Outcome of one decision under both rules.
struct Outcome {
    kind: &'static str,
    true_gain_pct: f64,
    ours_keep: bool,
    ours_runs: usize,
    original_keep: bool,
}

/// One decision, `n`-th of its scenario: the truth over common noise, the original rule on
/// one run each, and forge's own paired comparison (`tune::decide::compare`).
fn decide(
    i: &mut Instrument,
    (inc, cand): (&Recipe, &Recipe),
    n: usize,
    pools: &mut Pools,
    kind: &'static str,
) -> Option<Outcome> {
    let truth = true_gain(i, cand, inc, kind)?;
    // The original: one run each, keep at +1 %.
    let (c, b) = (
        scored(i, false, cand, &format!("d{n}-orig-c"))?,
        scored(i, false, inc, &format!("d{n}-orig-i"))?,
    );
    let original_keep = verdict::original_rule(
        score::comparable(&c, &i.settings),
        score::comparable(&b, &i.settings),
        1.0,
    );
    // What the loop would know of the incumbent's accuracy: its keep's measurement.
    let inc_acc = scored(i, true, inc, "level")
        .and_then(|m| m.accuracy)
        .unwrap_or(1.0);
    let judge = Judge {
        settings: &i.settings,
        pools,
        incumbent_accuracy: inc_acc.min(1.0),
        accuracy_noise: i.refs.self_agreement.map_or(0.0, |a| 1.0 - a),
        numerics_change: cand.quant != inc.quant || cand.kernels != inc.kernels,
        rule: decide::rule(&i.settings, None),
    };
    let o = futures::executor::block_on(decide::compare(
        &mut i.measure,
        cand,
        inc,
        &format!("d{n}"),
        &judge,
        Some(&i.refs),
    ));
    if o.failure.is_some() {
        return None;
    }
    let wrong = (truth >= 0.03 && o.decision != Decision::Keep)
        || (truth <= 0.0 && o.decision == Decision::Keep);
    if std::env::var("DQ_DEBUG").is_ok() && wrong {
        let slacks = |c: bool| -> Vec<String> {
            o.pairs
                .iter()
                .map(|p| {
                    format!(
                        "{:+.3}",
                        if c { &p.0 } else { &p.1 }.sla_slack.unwrap_or(0.0)
                    )
                })
                .collect()
        };
        eprintln!(
            "wrong {:+.1} % (truth acc {:?} vs {:?}): {} {} over {} {} → {:?} {:?} {:?}\n  slack c {:?}\n  slack i {:?}\n  acc {:?}",
            truth * 100.0,
            exact(i, cand).and_then(|m| m.accuracy),
            exact(i, inc).and_then(|m| m.accuracy),
            serde_json::to_string(&cand.config).unwrap_or_default(),
            serde_json::to_string(&cand.quant).unwrap_or_default(),
            serde_json::to_string(&inc.config).unwrap_or_default(),
            serde_json::to_string(&inc.quant).unwrap_or_default(),
            o.decision,
            o.interval
                .map(|iv| (iv.gain_pct, iv.lo_pct, iv.hi_pct, iv.pairs)),
            o.note,
            slacks(true),
            slacks(false),
            o.pairs
                .iter()
                .map(|p| (p.0.accuracy, p.1.accuracy, p.0.failed, p.1.failed))
                .collect::<Vec<_>>()
        );
    }
    pools.absorb(&o.pairs, &o.log_ratios);
    Some(Outcome {
        kind,
        true_gain_pct: truth * 100.0,
        ours_keep: o.decision == Decision::Keep,
        ours_runs: o.samples.len(),
        original_keep,
    })
}

fn rate(outcomes: &[&Outcome], f: impl Fn(&Outcome) -> bool) -> (usize, usize, f64) {
    let n = outcomes.len();
    let k = outcomes.iter().filter(|o| f(o)).count();
    let pct = if n == 0 {
        0.0
    } else {
        k as f64 / n as f64 * 100.0
    };
    (k, n, pct)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let noise: f64 = args.next().map_or(Ok(3.0), |v| v.parse())?;
    let per: usize = args.next().map_or(Ok(50), |v| v.parse())?;
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut all = Vec::new();
    let only = std::env::var("DQ_ONLY").unwrap_or_default();
    for sc in scenarios().into_iter().filter(|s| s.name.contains(&only)) {
        let hw = Hardware {
            vendor: "nvidia".into(),
            gpu_type: sc.gpu.into(),
            count: 1,
            memory_gb_per_gpu: 0.0,
        };
        let mut base = Recipe::baseline(EngineKind::Vllm, sc.model, hw);
        let mut inst = match instrument(&sc, &base, noise) {
            Ok(i) => i,
            // The defaults do not boot on this GPU (vLLM's full context does not fit): the
            // incumbents start from the context a user would pass.
            Err(_) => {
                let ctx = BTreeMap::from([("max_model_len".to_string(), json!(16384))]);
                base = base.mutate(Layer::Config, &ctx);
                instrument(&sc, &base, noise)?
            }
        };
        let mut pools = Pools::default();
        let mv = moves();
        let mut made = 0;
        while made < per {
            // Incumbent: the baseline or one random move away; candidate: one more move.
            let mut inc = base.clone();
            if rng.random_bool(0.5) {
                let (l, k, v) = &mv[rng.random_range(0..mv.len())];
                inc = inc.mutate(*l, &BTreeMap::from([(k.to_string(), v.clone())]));
            }
            let (l, k, v) = &mv[rng.random_range(0..mv.len())];
            let cand = inc.mutate(*l, &BTreeMap::from([(k.to_string(), v.clone())]));
            if cand.id == inc.id {
                continue;
            }
            let kind = sc.bound.kind();
            if let Some(o) = decide(&mut inst, (&inc, &cand), made, &mut pools, kind) {
                all.push(o);
                made += 1;
            }
        }
        eprintln!("{}: {per} decisions", sc.name);
    }
    println!(
        "decisions: {} (noise {noise} % per run, keep threshold 1 %, up to 4 pairs)\n",
        all.len()
    );
    for kind in ["throughput", "SLA-bound", "accuracy-bound"] {
        let set: Vec<&Outcome> = all.iter().filter(|o| o.kind == kind).collect();
        report(kind, &set, &Rule::default());
    }
    Ok(())
}

fn report(kind: &str, all: &[&Outcome], rule: &Rule) {
    let pick = |f: &dyn Fn(&Outcome) -> bool| -> Vec<&Outcome> {
        all.iter().copied().filter(|o| f(o)).collect()
    };
    let not_better = pick(&|o| o.true_gain_pct <= 0.0);
    let below = pick(&|o| o.true_gain_pct < rule.min_improvement_pct);
    let clear = pick(&|o| o.true_gain_pct >= 3.0);
    println!("**{kind}** ({} decisions)\n", all.len());
    println!("| | forge (paired, interval) | original (1 run, +1 %) |");
    println!("|---|---:|---:|");
    let row = |name: &str, set: &[&Outcome]| {
        let (ko, n, ro) = rate(set, |o| o.ours_keep);
        let (kg, _, rg) = rate(set, |o| o.original_keep);
        println!("| {name} (n = {n}) | {ro:.1} % ({ko}) | {rg:.1} % ({kg}) |");
    };
    row("kept, truly not better (gain ≤ 0)", &not_better);
    row("kept, below the threshold (gain < 1 %)", &below);
    row("kept, clearly better (gain ≥ 3 %)", &clear);
    let runs: usize = all.iter().map(|o| o.ours_runs).sum();
    println!(
        "| runs per decision | {:.1} | 2 |\n",
        runs as f64 / all.len().max(1) as f64
    );
}
