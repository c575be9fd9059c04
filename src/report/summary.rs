//! The headline of a run: the recipe it recommends (`record::recommended`), its gain over
//! the baseline measured side by side with its interval (the one gain figure; the chain of
//! kept steps is secondary), the objective and SLA attainment of both, and failures — of
//! experiments by class, of requests by kind.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::LoadedRun;
use crate::engine::failure::FailureClass;
use crate::record::{Arm, ExperimentRow, Measurement, Status, recommended};

/// Gain of the best recipe over the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gain {
    /// Point estimate, %.
    pub gain_pct: f64,
    /// Lower bound, %.
    pub lo_pct: f64,
    /// Upper bound, %.
    pub hi_pct: f64,
    /// Confidence level.
    pub confidence: f64,
    /// `confirmation` (best and baseline measured side by side at the end of the run) or
    /// `chained` (composed from each kept step's interval; approximate).
    pub source: &'static str,
}

/// One recipe's runs in the run: the objective and what the SLA made of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Runs {
    /// Runs of the recipe.
    pub runs: usize,
    /// Median output throughput, tok/s.
    pub throughput: Option<f64>,
    /// Median objective value (tok/s, req/s within the SLO, or 1/s of p99 E2EL).
    pub objective: Option<f64>,
    /// Median p99 end-to-end latency, ms.
    pub p99_e2el_ms: Option<f64>,
    /// Runs that met the SLA (the p99 bounds and at most 1 % failed requests).
    pub sla_met: usize,
}

/// The run's headline: what it recommends, measured how, against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Rows that counted as experiments.
    pub experiments: usize,
    /// Duplicate and rejected proposals.
    pub refused: usize,
    /// The baseline's runs.
    pub baseline: Runs,
    /// The recipe to deploy (`record::recommended`): id.
    pub recommended_id: Option<String>,
    /// Its generation.
    pub recommended_generation: Option<u32>,
    /// Its runs.
    pub recommended: Runs,
    /// Its settings that differ from the baseline.
    pub recommended_changes: BTreeMap<String, Value>,
    /// Whether it was measured against the baseline side by side and held up.
    pub confirmed: bool,
    /// Recipes the confirmation found worse than the baseline, which the run fell back
    /// from (ids, newest first).
    pub fell_back_from: Vec<String>,
    /// The headline gain over the baseline: the confirmation's, side by side.
    pub gain: Option<Gain>,
    /// The gain composed from each kept step's interval (approximate; secondary).
    pub chained_gain: Option<Gain>,
    /// Failed experiments by class (every class listed).
    pub failures: BTreeMap<String, usize>,
    /// Failed requests by kind, over every measured run.
    pub request_failures: BTreeMap<String, usize>,
    /// `completed`, `interrupted`, or `failed` (completed with nothing measured).
    pub state: &'static str,
    /// Why the run stopped, when it did.
    pub stop_reason: Option<String>,
    /// Cost per million output tokens at the GPU's built-in price (or the one asked for:
    /// [`RunSummary::priced`]).
    pub cost: Option<super::cost::Cost>,
}

impl RunSummary {
    /// Summarise a loaded run.
    pub fn of(run: &LoadedRun) -> RunSummary {
        let rows = &run.rows;
        let baseline = rows.iter().find(|r| r.status == Status::Baseline);
        let rec = recommended(rows);
        let base_id = baseline.map(|r| r.recipe.id.clone()).unwrap_or_default();
        let rec_id = rec.map(|r| r.recipe.id.clone()).unwrap_or_default();
        let confirmed = rec.is_some_and(|r| r.status == Status::Confirmation);
        let mut summary = RunSummary {
            experiments: rows.iter().filter(|r| r.status.is_experiment()).count(),
            refused: rows
                .iter()
                .filter(|r| matches!(r.status, Status::Duplicate | Status::Rejected))
                .count(),
            baseline: runs(&runs_of(rows, &base_id, &base_id)),
            recommended_id: rec.map(|r| r.recipe.id.clone()),
            recommended_generation: rec.map(|r| r.recipe.generation),
            recommended: runs(&runs_of(rows, &rec_id, &base_id)),
            recommended_changes: rec
                .map(|r| changes_vs_baseline(r, baseline))
                .unwrap_or_default(),
            confirmed,
            fell_back_from: rows
                .iter()
                .rev()
                .filter(|r| r.status == Status::Confirmation && r.confirmed == Some(false))
                .map(|r| r.recipe.id.clone())
                .collect(),
            gain: rec
                .filter(|_| confirmed)
                .and_then(|r| r.interval)
                .map(|iv| Gain {
                    gain_pct: iv.gain_pct,
                    lo_pct: iv.lo_pct,
                    hi_pct: iv.hi_pct,
                    confidence: iv.confidence,
                    source: "confirmation",
                }),
            chained_gain: chained(rows),
            failures: failure_classes(rows),
            request_failures: request_failures(rows),
            state: state(run, baseline),
            stop_reason: run
                .completed
                .as_ref()
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_string),
            cost: None,
        };
        summary.cost = super::cost::of(run, &summary, None);
        summary
    }

    /// The same summary with its cost at `usd` per GPU-hour, when given.
    pub fn priced(mut self, run: &LoadedRun, usd: Option<f64>) -> RunSummary {
        if usd.is_some() {
            self.cost = super::cost::of(run, &self, usd);
        }
        self
    }
}

fn state(run: &LoadedRun, baseline: Option<&ExperimentRow>) -> &'static str {
    match (run.completed.is_some(), baseline.is_some()) {
        (true, false) => "failed",
        (true, true) => "completed",
        (false, _) => "interrupted",
    }
}

fn failure_classes(rows: &[ExperimentRow]) -> BTreeMap<String, usize> {
    let mut failures: BTreeMap<String, usize> = FailureClass::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect();
    for f in rows
        .iter()
        .filter(|r| r.status == Status::Failed)
        .filter_map(|r| r.failure.as_ref())
    {
        *failures.entry(f.class.as_str().to_string()).or_default() += 1;
    }
    failures
}

/// Failed requests by kind over every measured run of the run.
fn request_failures(rows: &[ExperimentRow]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for s in rows.iter().flat_map(|r| &r.samples) {
        for (k, n) in &s.m.failures {
            *out.entry(k.clone()).or_default() += n;
        }
    }
    out
}

/// The medians and SLA count of `ms` (one recipe's runs). A run met the SLA when its
/// slack is not negative (runs recorded before forge kept the slack: its SLA flag, which
/// also counted accuracy).
fn runs(ms: &[&Measurement]) -> Runs {
    let med = |f: fn(&Measurement) -> f64| {
        crate::stats::median(&ms.iter().map(|m| f(m)).collect::<Vec<f64>>())
    };
    Runs {
        runs: ms.len(),
        throughput: med(|m| m.output_throughput),
        objective: med(|m| m.value),
        p99_e2el_ms: med(|m| m.p99_e2el_ms),
        sla_met: ms.iter().filter(|m| m.met_sla()).count(),
    }
}

/// Every run of recipe `id`: a candidate arm measured the row's recipe; an incumbent arm
/// measured the row's parent (the baseline itself in the baseline row, and the baseline in
/// an end-of-run confirmation).
fn runs_of<'a>(rows: &'a [ExperimentRow], id: &str, baseline_id: &str) -> Vec<&'a Measurement> {
    let mut out = Vec::new();
    for r in rows {
        for s in &r.samples {
            let measured = match (r.status, s.arm) {
                (Status::Baseline, _) => r.recipe.id.as_str(),
                (Status::Confirmation, Arm::Incumbent) => baseline_id,
                (_, Arm::Candidate) => r.recipe.id.as_str(),
                (_, Arm::Incumbent) => r.parent_id.as_deref().unwrap_or(""),
            };
            if !id.is_empty() && measured == id {
                out.push(&s.m);
            }
        }
    }
    out
}

fn changes_vs_baseline(
    best: &ExperimentRow,
    baseline: Option<&ExperimentRow>,
) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let base = baseline.map(|b| &b.recipe);
    for (k, v) in &best.recipe.config {
        if base.and_then(|b| b.config.get(k)) != Some(v) {
            out.insert(k.clone(), v.clone());
        }
    }
    if let Some(m) = &best.recipe.quant.method {
        out.insert("quant.method".into(), Value::from(m.as_str()));
    }
    if let Some(k) = &best.recipe.quant.kv_cache_quant {
        out.insert("quant.kv_cache_quant".into(), Value::from(k.as_str()));
    }
    for k in &best.recipe.kernels {
        out.insert(format!("kernels.{}", k.name), Value::from(k.value.as_str()));
    }
    out
}

/// Compose kept steps: log gains add; half-widths add in quadrature.
fn chained(rows: &[ExperimentRow]) -> Option<Gain> {
    let kept: Vec<_> = rows
        .iter()
        .filter(|r| r.status == Status::Kept)
        .filter_map(|r| r.interval)
        .collect();
    let confidence = kept.first()?.confidence;
    let ln = |pct: f64| (1.0 + pct / 100.0).max(1e-9).ln();
    let mid: f64 = kept.iter().map(|iv| ln(iv.gain_pct)).sum();
    let half: f64 = kept
        .iter()
        .map(|iv| ((ln(iv.hi_pct) - ln(iv.lo_pct)) / 2.0).powi(2))
        .sum::<f64>()
        .sqrt();
    let pct = |x: f64| (x.exp() - 1.0) * 100.0;
    Some(Gain {
        gain_pct: pct(mid),
        lo_pct: pct(mid - half),
        hi_pct: pct(mid + half),
        confidence,
        source: "chained",
    })
}
