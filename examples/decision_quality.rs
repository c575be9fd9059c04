//! Decision quality of forge's keep/revert rule against the original tool's, on the same
//! decisions (run by `bench/decisions.sh`).
//!
//! Each decision compares a candidate recipe with an incumbent, measured through forge's
//! in-process `Measure` (the simulator's prediction with `--sim-noise`: a run-level speed
//! factor ~ N(1, noise) per run, as on a real machine); the *truth* is the mean ratio over
//! 16 runs with common noise. forge's rule is forge's own code, `tune::decide::compare`:
//! interleaved pairs until the interval on the gain clears the threshold either way (up to
//! `max_pairs`), with a noise estimate pooled over the run's earlier decisions; the original
//! rule runs each once and keeps when the candidate is 1 % better.
//!
//! Usage: `decision_quality [NOISE_PCT] [DECISIONS_PER_SCENARIO]` (defaults 3, 50).

use std::collections::BTreeMap;

use clap::Parser;
use forge::bench::{LoadSpec, Timing};
use forge::cli::{Cli, Command};
use forge::hardware::gpus::lookup;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Recipe};
use forge::record::TuneSettings;
use forge::tune::decide;
use forge::tune::measure::{Measure, Predicted};
use forge::tune::verdict::{self, Decision, NoisePool, Rule};
use forge::workload::WorkloadRequest;
use forge::workload::synth::{self, SynthSpec};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// A (model, GPU, workload, load) combination.
struct Scenario {
    name: &'static str,
    model: &'static str,
    gpu: &'static str,
    requests: Vec<WorkloadRequest>,
    load: LoadSpec,
}

fn scenarios() -> Vec<Scenario> {
    let synth = |i, o, n, seed| {
        synth::generate(&SynthSpec {
            input_len: i,
            output_len: o,
            num_prompts: n,
            prefix_len: 0,
            range_ratio: 0.3,
            seed,
        })
    };
    let load = |c: usize, rate: Option<f64>| LoadSpec {
        concurrency: Some(c),
        request_rate: rate,
        timing: Timing::Rate,
        seed: 1,
        ..LoadSpec::default()
    };
    vec![
        Scenario {
            name: "8B/H100 chat",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "H100",
            requests: synth(1000, 300, 96, 1),
            load: load(64, None),
        },
        Scenario {
            name: "7B/A100 rag",
            model: "Qwen/Qwen2.5-7B-Instruct",
            gpu: "A100-80GB",
            requests: synth(3000, 200, 64, 2),
            load: load(32, Some(6.0)),
        },
        Scenario {
            name: "3B/L4 chat",
            model: "meta-llama/Llama-3.2-3B-Instruct",
            gpu: "L4",
            requests: synth(800, 200, 64, 3),
            load: load(32, None),
        },
        Scenario {
            name: "14B/H100 summarize",
            model: "Qwen/Qwen3-14B",
            gpu: "H100",
            requests: synth(6000, 300, 48, 4),
            load: load(16, None),
        },
        Scenario {
            name: "7B/A10G short",
            model: "mistralai/Mistral-7B-Instruct-v0.3",
            gpu: "A10G",
            requests: synth(256, 128, 96, 5),
            load: load(48, None),
        },
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

/// A scenario's instrument: forge's in-process measure with `noise` % run-to-run noise, and
/// the `forge tune` settings it is scored with (throughput, no SLO).
struct Instrument {
    measure: Predicted,
    settings: TuneSettings,
}

fn instrument(sc: &Scenario, noise: f64) -> anyhow::Result<Instrument> {
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
    let settings = match Cli::parse_from(argv).command {
        Command::Tune(t) => forge::commands::tune::resolve(&t.args, None)?,
        _ => anyhow::bail!("not a tune command line"),
    };
    let gpu = lookup(sc.gpu).ok_or_else(|| anyhow::anyhow!("unknown GPU {}", sc.gpu))?;
    let measure = Predicted::new(sc.model, gpu, sc.requests.clone(), &sc.load, noise, 0x7ea1)?;
    Ok(Instrument { measure, settings })
}

/// One run of `r` named `tag` (the same tag draws the same noise): its output throughput.
fn measure(i: &mut Instrument, r: &Recipe, tag: &str) -> Option<f64> {
    let out = futures::executor::block_on(i.measure.sample(r, tag)).ok()?;
    (out.result.completed > 0).then_some(out.result.output_throughput)
}

/// Outcome of one decision under both rules.
struct Outcome {
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
    pool: &mut NoisePool,
) -> Option<Outcome> {
    // "Truly better" means better on average over the machine's noise, not at one point.
    let mut ratios = Vec::new();
    for k in 0..TRUTH_SEEDS {
        let tag = format!("truth-{k}");
        ratios.push(measure(i, cand, &tag)? / measure(i, inc, &tag)?);
    }
    let truth = ratios.iter().sum::<f64>() / ratios.len() as f64 - 1.0;
    // The original: one run each, keep at +1 %.
    let original_keep = verdict::original_rule(
        measure(i, cand, &format!("d{n}-orig-c"))?,
        measure(i, inc, &format!("d{n}-orig-i"))?,
        1.0,
    );
    let judge = decide::Judge {
        settings: &i.settings,
        refs: None,
        pool,
        rule: decide::rule(&i.settings, None),
    };
    let o = futures::executor::block_on(decide::compare(
        &mut i.measure,
        cand,
        inc,
        &format!("d{n}"),
        &judge,
    ));
    if o.failure.is_some() {
        return None;
    }
    pool.absorb(&o.log_ratios);
    Some(Outcome {
        true_gain_pct: truth * 100.0,
        ours_keep: o.decision == Decision::Keep,
        ours_runs: o.samples.len(),
        original_keep,
    })
}

fn rate(outcomes: &[&Outcome], f: impl Fn(&Outcome) -> bool) -> (usize, usize, f64) {
    let n = outcomes.len();
    let k = outcomes.iter().filter(|o| f(o)).count();
    (
        k,
        n,
        if n == 0 {
            0.0
        } else {
            k as f64 / n as f64 * 100.0
        },
    )
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let noise: f64 = args.next().map_or(Ok(3.0), |v| v.parse())?;
    let per: usize = args.next().map_or(Ok(50), |v| v.parse())?;
    let rule = Rule::default();
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    let mut all = Vec::new();
    for sc in scenarios() {
        let hw = Hardware {
            vendor: "nvidia".into(),
            gpu_type: sc.gpu.into(),
            count: 1,
            memory_gb_per_gpu: 0.0,
        };
        let base = Recipe::baseline(EngineKind::Vllm, sc.model, hw);
        let mut inst = instrument(&sc, noise)?;
        let mut pool = NoisePool::default();
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
            if let Some(o) = decide(&mut inst, (&inc, &cand), made, &mut pool) {
                all.push(o);
                made += 1;
            }
        }
        eprintln!("{}: {per} decisions", sc.name);
    }
    report(&all, noise, &rule);
    Ok(())
}

fn report(all: &[Outcome], noise: f64, rule: &Rule) {
    let refs: Vec<&Outcome> = all.iter().collect();
    let not_better: Vec<&Outcome> = refs
        .iter()
        .copied()
        .filter(|o| o.true_gain_pct <= 0.0)
        .collect();
    let below: Vec<&Outcome> = refs
        .iter()
        .copied()
        .filter(|o| o.true_gain_pct < rule.min_improvement_pct)
        .collect();
    let clear: Vec<&Outcome> = refs
        .iter()
        .copied()
        .filter(|o| o.true_gain_pct >= 3.0)
        .collect();
    println!(
        "decisions: {} (noise {noise} % per run, keep threshold {} %, up to {} pairs)",
        all.len(),
        rule.min_improvement_pct,
        rule.max_pairs
    );
    println!();
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
        "| runs per decision | {:.1} | 2 |",
        runs as f64 / all.len() as f64
    );
}
