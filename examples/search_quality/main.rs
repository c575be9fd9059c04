//! Search quality of the built-in agent against random search (run by
//! `bench/search_quality.sh`).
//!
//! For each (model, GPU, workload, objective) scenario ([`scenarios`]):
//!
//! - **Sweep.** Every combination of the bench search space is predicted noise-free with
//!   `forge::sim::predict` and scored as forge scores (`forge::tune::score::measure` with
//!   the scenario's settings). A configuration that misses the SLA scores 0 (forge never
//!   prefers it to one that meets the SLA); one the loop's legality check refuses is
//!   infeasible. The best score is the target; "reached" means an incumbent whose *true*
//!   score is at least 95 % of it.
//! - **Agent.** forge's own loop: `forge::tune::tuner::Tuner`, put together by
//!   `tune::assemble::in_process` from the scenario's `forge tune` command line (the
//!   built-in agent, a playbook whose Search space is exactly the swept space, the simulator
//!   as surrogate and legality check), measuring through the in-process `Measure`
//!   (predictions with run-to-run noise, a fresh seed per run). It writes a real run
//!   directory; this bench reads the journal afterwards to score each step against the
//!   truth. One experiment = one measured candidate.
//! - **Random search.** Uniform draws without replacement from the feasible space, each one
//!   experiment, best so far by *true* score (no noise, no decision rule: generous).
//!
//! The surrogate and the truth share the simulator here (noise-free, same seed), so this
//! measures the search strategy given a good model; on real hardware the agent corrects its
//! surrogate with its calibration. `SQ_SURROGATE_ERR=σ` (%) makes the surrogate wrong by a
//! fixed per-configuration factor exp(σ·z) (`SimModel::with_error`).
//!
//! Usage: `search_quality [NOISE_PCT] [AGENT_SEEDS] [RANDOM_SEEDS] [CAP]`
//! (defaults 2, 10, 200, 40). Environment: `SQ_PATH=N|all` prints the agent's path
//! on scenario N (0-based, first seed), `SQ_ONLY=N` runs scenario N alone, `SQ_TOP=K`
//! prints the K best configurations of each sweep, `SQ_SURROGATE_ERR=σ` (above),
//! `SQ_SURROGATE_SEED=N` draws another wrong model (default 0).

mod bench;
mod report;
mod scenarios;

use std::time::Instant;

use forge::record::{ExperimentRow, Status};
use forge::tune::assemble::in_process;
use forge::tune::state::{RunState, StopReason};
use serde_json::Value;

use bench::{Bench, Sweep, random_search, sweep};
use report::{Summary, print_path, print_table, report_sweep, setup_line, summarize};
use scenarios::{bench_playbook, scenarios};

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
        let b = Bench::new(sc, o.noise, o.surrogate_err, &playbook)?;
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

/// What one agent run did.
#[derive(Default)]
pub struct AgentRun {
    /// Experiments until the incumbent's true score reached the target.
    pub reached: Option<u32>,
    pub experiments: u32,
    /// Measured runs (two per pair), baseline included.
    pub runs: u32,
    /// Runs until the target was reached.
    pub runs_to_reach: Option<u32>,
    /// The final incumbent's true score / the best.
    pub final_ratio: f64,
    /// Experiments a playbook rule pushed although the surrogate predicted less than half
    /// the keep threshold.
    pub rule_pushed: u32,
    /// Experiments whose candidate was truly better by 3 % or more (or met the SLA the
    /// incumbent missed) and was not kept.
    pub lost: u32,
    pub stop: String,
    pub path: Vec<String>,
}

/// One agent run: forge's loop on the scenario, measuring in process with noise seed
/// `seed`, then its journal read back step by step against the truth.
fn run_agent(b: &Bench, sw: &Sweep, o: &Options, seed: u64) -> anyhow::Result<AgentRun> {
    let dir = b.dir.path().join(format!("run-{seed:x}"));
    let mut settings = b.settings.clone();
    // The baseline counts as one experiment; the cap counts candidates.
    settings.max_experiments = o.cap + 1;
    let mut t = in_process(settings, &dir, seed)?;
    t.echo = false;
    t.sim = t
        .sim
        .take()
        .map(|s| s.with_error(b.surrogate_err, o.error_seed));
    let stop = futures::executor::block_on(t.run())?;
    let run = replay(b, sw, &t.state.rows, &stop, o.cap);
    std::fs::remove_dir_all(&dir).ok();
    Ok(run)
}

/// The run's rows scored against the truth, in order.
fn replay(b: &Bench, sw: &Sweep, rows: &[ExperimentRow], stop: &StopReason, cap: u32) -> AgentRun {
    let mut run = AgentRun::default();
    let mut state = RunState::default();
    for row in rows {
        if row.status == Status::Baseline {
            // Its sample, and the second run that calibrates the accuracy reference.
            run.runs += row.samples.len() as u32 + 1;
            state.apply(row.clone());
            if sw.reached(sw.baseline) {
                run.reached = Some(0);
                run.runs_to_reach = Some(run.runs);
            }
            continue;
        }
        tally(b, sw, &state, row, &mut run);
        state.apply(row.clone());
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
    }
    run.stop = match stop {
        StopReason::ExperimentBudget(_) => format!("cap ({cap})"),
        StopReason::Converged => "converged".into(),
        other => other.to_string(),
    };
    let inc = state.incumbent.as_ref().map_or(&b.baseline, |i| &i.recipe);
    run.final_ratio = sw.score(b, inc) / sw.best;
    run
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
    let eff = forge::engine::vllm::effective(inc, Some(b.gpu));
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

/// Command-line and environment options.
pub struct Options {
    pub noise: f64,
    pub agent_seeds: u64,
    pub random_seeds: u64,
    pub cap: u32,
    pub only: Option<usize>,
    pub path: String,
    pub top: usize,
    pub surrogate_err: f64,
    pub error_seed: u64,
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
            error_seed: env("SQ_SURROGATE_SEED").parse().unwrap_or(0),
        })
    }

    fn show_path(&self, i: usize) -> bool {
        self.path == "all" || self.path.parse() == Ok(i)
    }
}
