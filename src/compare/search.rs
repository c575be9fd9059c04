//! Each framework's own bounded search: a real `forge tune` run of that framework (the
//! built-in agent over its knobs, paired keep/revert decisions, classified failures), in
//! the campaign under `search/FRAMEWORK/`, with the sequence-length flag pinned at the
//! scenarios' longest request — never defaults against a tuned rival. The gate then takes
//! the run's baseline and its kept recipes as that framework's candidates.
//!
//! The search replays a sample of every scenario's requests together at a closed-loop
//! concurrency and maximises goodput with the SLA's latency bounds as per-request bounds (stricter than the
//! gate's medians): a proxy that steers the search toward configurations that serve many
//! requests within the SLA; the gate's rate search then measures what each candidate
//! really sustains. A search interrupted with the campaign resumes with it; a finished one
//! is reused.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::settings::CompareSettings;
use crate::engine::failure::Failure;
use crate::recipe::{EngineKind, Recipe};
use crate::record::{ExperimentRow, Status, TuneSettings};
use crate::store::{self, CONFIG_FILE, JOURNAL_FILE, Store};

/// Concurrency of the search's closed loop.
pub const SEARCH_CONCURRENCY: usize = 16;

/// One candidate the search hands to the gate.
#[derive(Debug, Clone)]
pub struct Pick {
    /// `FRAMEWORK-eNNN` (the experiment it comes from).
    pub id: String,
    /// The recipe.
    pub recipe: Recipe,
    /// Why it could not be measured (a failed baseline), if so.
    pub failure: Option<Failure>,
}

/// What a framework's search left.
#[derive(Debug, Clone)]
pub struct Searched {
    /// The tune run's directory.
    pub run: PathBuf,
    /// Its settings (the gate boots the same engine the same way).
    pub settings: TuneSettings,
    /// The candidates, baseline first.
    pub picks: Vec<Pick>,
    /// The command that ran (or would rerun) the search.
    pub command: Vec<String>,
}

/// Starts a new `forge tune` run from its command line (the caller owns command-line
/// parsing: `commands::compare` parses it as `forge tune` would).
pub trait Starter: Sync {
    /// Run `argv` (`forge tune …`) to its end; its exit status.
    fn start(&self, argv: Vec<String>) -> futures::future::BoxFuture<'_, anyhow::Result<ExitCode>>;
}

/// Why the campaign stops now.
#[derive(Debug)]
pub enum Stop {
    /// Interrupted (SIGINT/SIGTERM): resume later.
    Interrupted(ExitCode),
}

/// Run (or resume, or reuse) `fw`'s search.
pub async fn run(
    s: &CompareSettings,
    dir: &Path,
    fw: EngineKind,
    starter: &dyn Starter,
) -> anyhow::Result<Result<Searched, Stop>> {
    let root = s.search_root(dir, fw);
    let command = tune_command(s, dir, fw, &root)?;
    let store = Store::new(&root);
    let existing = store.runs()?.into_iter().last();
    let code = match &existing {
        Some(r) if r.is_completed() => None,
        Some(r) if r.is_interrupted() => {
            eprintln!("forge compare: resuming {}'s search", fw.display_name());
            Some(crate::tune::launch::resume(Some(r.path.clone()), &root).await?)
        }
        _ => {
            eprintln!(
                "forge compare: {}'s search: {}",
                fw.display_name(),
                command.join(" ")
            );
            Some(starter.start(command.clone()).await?)
        }
    };
    if let Some(code) = code
        && (code == ExitCode::from(130) || code == ExitCode::from(143))
    {
        return Ok(Err(Stop::Interrupted(code)));
    }
    Ok(Ok(load(s, dir, fw)?))
}

/// Read `fw`'s finished search back (for `forge gap`; nothing is run).
pub fn load(s: &CompareSettings, dir: &Path, fw: EngineKind) -> anyhow::Result<Searched> {
    let root = s.search_root(dir, fw);
    let command = tune_command(s, dir, fw, &root)?;
    let store = Store::new(&root);
    let run = store
        .runs()?
        .into_iter()
        .last()
        .ok_or_else(|| anyhow::anyhow!("{}: the search left no run", root.display()))?;
    let text = std::fs::read_to_string(run.path.join(CONFIG_FILE))
        .map_err(|e| anyhow::anyhow!("{}: {e}", run.path.join(CONFIG_FILE).display()))?;
    let settings: TuneSettings = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", run.path.join(CONFIG_FILE).display()))?;
    let rows: Vec<ExperimentRow> = store::read_rows(&run.path.join(JOURNAL_FILE))?;
    Ok(Searched {
        picks: picks(fw, &rows, s.candidates_per_framework),
        run: run.path,
        settings,
        command,
    })
}

/// The baseline and the newest kept recipes (the last kept is the search's best), at
/// most `n` in all.
pub fn picks(fw: EngineKind, rows: &[ExperimentRow], n: usize) -> Vec<Pick> {
    let pick = |r: &ExperimentRow| Pick {
        id: format!("{}-e{:03}", fw.as_str(), r.exp.unwrap_or(0)),
        recipe: r.recipe.clone(),
        failure: r.failure.clone(),
    };
    let mut out: Vec<Pick> = rows
        .iter()
        .filter(|r| r.exp == Some(0) && matches!(r.status, Status::Baseline | Status::Failed))
        .take(1)
        .map(pick)
        .collect();
    let kept: Vec<&ExperimentRow> = rows.iter().filter(|r| r.status == Status::Kept).collect();
    let room = n.saturating_sub(out.len());
    out.extend(kept.iter().rev().take(room).map(|r| pick(r)));
    out
}

/// `forge tune …` for `fw`'s search, as argv.
pub fn tune_command(
    s: &CompareSettings,
    dir: &Path,
    fw: EngineKind,
    root: &Path,
) -> anyhow::Result<Vec<String>> {
    let workload = search_workload(s, dir)?;
    let mut v: Vec<String> = [
        "forge",
        "tune",
        "--model",
        &s.model,
        "--engine",
        fw.as_str(),
    ]
    .iter()
    .map(|w| w.to_string())
    .collect();
    let mut push = |a: &str, b: String| {
        v.push(a.to_string());
        v.push(b);
    };
    push("--workload", workload.display().to_string());
    push("--run-dir", root.display().to_string());
    push("--max-experiments", s.budget.to_string());
    push("--concurrency", SEARCH_CONCURRENCY.to_string());
    push("--seed", s.seed.to_string());
    push("--device", s.device.as_str().to_string());
    push("--boot-timeout", s.boot_timeout_s.to_string());
    push("--llm", "builtin".into());
    push("--accuracy-floor", s.accuracy_floor.to_string());
    push("--max-repeats", s.max_repeats.to_string());
    if let Some(slo) = slo(s) {
        push("--objective", "goodput".into());
        push("--slo", slo);
    }
    if let Some(flag) = floor_flag(fw, s.floor(dir)?) {
        push("--engine-args", flag);
    }
    if let Some(cmd) = s.engine_cmds.get(fw.as_str()) {
        push("--engine-cmd", cmd.clone());
    }
    if s.dry_run {
        v.push("--dry-run".into());
        if let Some(g) = &s.sim_gpu {
            v.extend(["--sim-gpu".into(), g.clone()]);
        }
        v.extend(["--sim-noise".into(), s.sim_noise.to_string()]);
    }
    // Precision and quantization stay as the model ships: the gate compares frameworks on
    // the same weights, so the search tunes serving flags and kernels only.
    v.push("--skip-quant".into());
    Ok(v)
}

/// The SLA's latency bounds as the search's per-request SLO.
fn slo(s: &CompareSettings) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(t) = s.sla.max_p50_ttft_ms {
        parts.push(format!("ttft_ms={t}"));
    }
    if let Some(t) = s.sla.max_p50_tpot_ms {
        parts.push(format!("tpot_ms={t}"));
    }
    if let Some(t) = s.sla.max_p50_e2e_ms {
        parts.push(format!("e2el_ms={t}"));
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// The flag that pins `fw`'s sequence length at `floor` tokens (llama.cpp's context is
/// shared by its slots and sized by the search itself).
pub fn floor_flag(fw: EngineKind, floor: u64) -> Option<String> {
    match fw {
        EngineKind::Vllm => Some(format!("--max-model-len {floor}")),
        EngineKind::Sglang => Some(format!("--context-length {floor}")),
        EngineKind::Trtllm => Some(format!("--max_seq_len {floor}")),
        EngineKind::Llamacpp => None,
    }
}

/// Every scenario's requests in one file (`workloads/search.jsonl`), written once.
fn search_workload(s: &CompareSettings, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("workloads").join("search.jsonl");
    if !path.exists() {
        let mut text = String::new();
        for sc in &s.scenarios {
            let t = std::fs::read_to_string(dir.join(&sc.path))
                .map_err(|e| anyhow::anyhow!("{}: {e}", sc.path.display()))?;
            let lines: Vec<&str> = t.lines().filter(|l| !l.trim().is_empty()).collect();
            for l in sample_evenly(&lines, SEARCH_PER_SCENARIO) {
                text.push_str(l);
                text.push('\n');
            }
        }
        store::write_atomic(&path, text.as_bytes())?;
    }
    Ok(std::path::absolute(&path).unwrap_or(path))
}

/// Requests per scenario the search replays: its decisions compare configurations with
/// each other, which a sample spread evenly over each scenario does at a fraction of the
/// GPU time of replaying everything (`bench/gate_cost.sh`); the gate then measures every
/// candidate on the full scenarios.
pub const SEARCH_PER_SCENARIO: usize = 16;

/// At most `n` items spread evenly over `items` (all of them when there are fewer).
pub fn sample_evenly<T: Clone>(items: &[T], n: usize) -> Vec<T> {
    if items.len() <= n || n == 0 {
        return items.to_vec();
    }
    (0..n).map(|i| items[i * items.len() / n].clone()).collect()
}
