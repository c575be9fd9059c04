//! The headline of a run: baseline, best, the best's gain over the baseline with its
//! confidence interval, and failures by kind.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::LoadedRun;
use crate::engine::failure::FailureClass;
use crate::record::{Arm, ExperimentRow, Status};

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

/// The run's headline numbers.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Rows that counted as experiments.
    pub experiments: usize,
    /// Duplicate and rejected proposals.
    pub refused: usize,
    /// Baseline objective value.
    pub baseline_value: Option<f64>,
    /// Baseline output throughput: the median over every run of the baseline recipe.
    pub baseline_throughput: Option<f64>,
    /// Runs of the baseline recipe behind that median.
    pub baseline_runs: usize,
    /// Best recipe id.
    pub best_id: Option<String>,
    /// Best recipe generation.
    pub best_generation: Option<u32>,
    /// Best score (baseline = 1.0).
    pub best_score: Option<f64>,
    /// Best objective value.
    pub best_value: Option<f64>,
    /// Best recipe's output throughput: the median over every run of it.
    pub best_throughput: Option<f64>,
    /// Runs of the best recipe behind that median.
    pub best_runs: usize,
    /// Best p99 end-to-end latency, ms.
    pub best_p99_ms: Option<f64>,
    /// Best recipe's settings that differ from the baseline.
    pub best_changes: BTreeMap<String, Value>,
    /// Gain over the baseline.
    pub gain: Option<Gain>,
    /// Failed experiments by class (every class listed).
    pub failures: BTreeMap<String, usize>,
    /// `completed` or `interrupted`.
    pub state: &'static str,
    /// Why the run stopped, when it did.
    pub stop_reason: Option<String>,
}

impl RunSummary {
    /// Summarise a loaded run.
    pub fn of(run: &LoadedRun) -> RunSummary {
        let rows = &run.rows;
        let baseline = rows.iter().find(|r| r.status == Status::Baseline);
        let best = rows
            .iter()
            .rev()
            .find(|r| matches!(r.status, Status::Kept | Status::Baseline));
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
        let base_id = baseline.map(|r| r.recipe.id.clone()).unwrap_or_default();
        let best_id = best.map(|r| r.recipe.id.clone()).unwrap_or_default();
        let base_runs = runs_of(rows, &base_id, &base_id);
        let best_runs = runs_of(rows, &best_id, &base_id);
        RunSummary {
            baseline_throughput: crate::stats::median(&base_runs),
            baseline_runs: base_runs.len(),
            best_throughput: crate::stats::median(&best_runs),
            best_runs: best_runs.len(),
            experiments: rows.iter().filter(|r| r.status.is_experiment()).count(),
            refused: rows
                .iter()
                .filter(|r| matches!(r.status, Status::Duplicate | Status::Rejected))
                .count(),
            baseline_value: baseline
                .and_then(|r| r.measurement.as_ref())
                .map(|m| m.value),
            best_id: best.map(|r| r.recipe.id.clone()),
            best_generation: best.map(|r| r.recipe.generation),
            best_score: best.and_then(|r| r.score),
            best_value: best.and_then(|r| r.measurement.as_ref()).map(|m| m.value),
            best_p99_ms: best
                .and_then(|r| r.measurement.as_ref())
                .map(|m| m.p99_e2el_ms),
            best_changes: best
                .map(|r| changes_vs_baseline(r, baseline))
                .unwrap_or_default(),
            gain: gain(rows),
            failures,
            state: if run.completed.is_some() {
                "completed"
            } else {
                "interrupted"
            },
            stop_reason: run
                .completed
                .as_ref()
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// Output throughput of every run of recipe `id`: a candidate arm measured the row's
/// recipe; an incumbent arm measured the row's parent (the baseline itself in the baseline
/// row, and the baseline in the end-of-run confirmation).
fn runs_of(rows: &[ExperimentRow], id: &str, baseline_id: &str) -> Vec<f64> {
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
                out.push(s.m.output_throughput);
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

fn gain(rows: &[ExperimentRow]) -> Option<Gain> {
    if let Some(c) = rows.iter().rev().find(|r| r.status == Status::Confirmation)
        && let Some(iv) = c.interval
    {
        return Some(Gain {
            gain_pct: iv.gain_pct,
            lo_pct: iv.lo_pct,
            hi_pct: iv.hi_pct,
            confidence: iv.confidence,
            source: "confirmation",
        });
    }
    chained(rows)
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
