//! One row of `experiments.jsonl`: everything an experiment decided and why — the audit
//! trail a person reads in the morning and a resumed run rebuilds its state from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bench::metrics::BenchResult;
use crate::engine::failure::Failure;
use crate::recipe::Layer;
use crate::recipe::Recipe;

/// Confidence interval of the candidate's gain over the incumbent, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Point estimate of the gain, % (geometric mean of the ratios − 1).
    pub gain_pct: f64,
    /// Lower bound, %.
    pub lo_pct: f64,
    /// Upper bound, %.
    pub hi_pct: f64,
    /// Confidence level (e.g. 0.95).
    pub confidence: f64,
    /// Pairs measured.
    pub pairs: usize,
}

/// What became of an experiment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Experiment 0: the engine's defaults.
    Baseline,
    /// Better by more than the threshold, with confidence: the new incumbent.
    Kept,
    /// Not better by the threshold, with confidence.
    Reverted,
    /// Repeat budget spent without a clear answer: reverted.
    Inconclusive,
    /// No measurement: the failure says why.
    Failed,
    /// The proposal repeated a configuration already tried from this base (`dup-*`).
    Duplicate,
    /// The proposal was illegal (`rej-*`): outside the allowlist or infeasible by rule.
    Rejected,
    /// The agent found nothing left to try in this layer.
    Converged,
    /// A layer that was not run, with the reason.
    Skipped,
    /// End of run: the best recipe measured against the baseline, paired, for the gain's
    /// confidence interval.
    Confirmation,
}

impl Status {
    /// Rows that count against `--max-experiments` (something was booted and measured, or
    /// tried to be).
    pub fn is_experiment(self) -> bool {
        matches!(
            self,
            Status::Baseline
                | Status::Kept
                | Status::Reverted
                | Status::Inconclusive
                | Status::Failed
        )
    }

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Baseline => "baseline",
            Status::Kept => "kept",
            Status::Reverted => "reverted",
            Status::Inconclusive => "inconclusive",
            Status::Failed => "failed",
            Status::Duplicate => "duplicate",
            Status::Rejected => "rejected",
            Status::Converged => "converged",
            Status::Skipped => "skipped",
            Status::Confirmation => "confirmation",
        }
    }
}

/// The figures of one measured run, kept per sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// The objective's raw value (tok/s, req/s, or 1/s for latency).
    pub value: f64,
    /// SLA met (and failures under 1 %).
    pub sla_ok: bool,
    /// Accuracy relative to the baseline's reference (1.0 = same), when measured.
    pub accuracy: Option<f64>,
    /// Output tokens/s.
    pub output_throughput: f64,
    /// Completed requests/s.
    pub request_throughput: f64,
    /// Requests/s meeting the SLO, when an SLO is set.
    pub goodput: Option<f64>,
    /// Median TTFT, ms.
    pub median_ttft_ms: f64,
    /// p99 TTFT, ms.
    pub p99_ttft_ms: f64,
    /// Median TPOT, ms.
    pub median_tpot_ms: f64,
    /// p99 TPOT, ms.
    pub p99_tpot_ms: f64,
    /// p99 end-to-end latency, ms.
    pub p99_e2el_ms: f64,
    /// Failed requests.
    pub failed: usize,
    /// Completed requests.
    pub completed: usize,
    /// Failed requests by kind (only kinds that occurred).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failures: BTreeMap<String, usize>,
    /// How far inside the SLA the run was, as a log ratio: the smallest ln(bound ÷ actual)
    /// over the p99 bounds and the failed-request share (> 0 inside, < 0 outside). `None`
    /// for runs recorded before forge kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_slack: Option<f64>,
    /// How the answers compare with the baseline's, request by request (what `accuracy`
    /// summarises): `None` without references or for rows recorded before forge kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<AnswerAgreement>,
    /// The latency distributions (TTFT, TPOT, E2E) at [`LatencyQuantiles::LEVELS`]: `None`
    /// for runs recorded before forge kept them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyQuantiles>,
}

/// One run's latency distributions as quantiles, ms, at the same percentile levels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyQuantiles {
    /// The percentile levels, ascending.
    pub levels: Vec<f64>,
    /// Time to first token at each level.
    pub ttft_ms: Vec<f64>,
    /// Time per output token at each level.
    pub tpot_ms: Vec<f64>,
    /// End-to-end latency at each level.
    pub e2el_ms: Vec<f64>,
}

impl LatencyQuantiles {
    /// The levels forge's tune asks its load generator for.
    pub const LEVELS: [f64; 9] = [5.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 99.0, 99.9];

    /// The quantiles a bench result holds at every level it reports for all three metrics
    /// (`None` when it holds fewer than three levels: no distribution to draw).
    pub fn from_result(r: &BenchResult) -> Option<LatencyQuantiles> {
        let key = |level: f64, metric: &str| {
            let label = crate::bench::metrics::percentile_label(level);
            r.percentile_keys
                .get(&format!("p{label}_{metric}_ms"))
                .copied()
        };
        let mut q = LatencyQuantiles::default();
        for level in Self::LEVELS {
            if let (Some(t), Some(p), Some(e)) =
                (key(level, "ttft"), key(level, "tpot"), key(level, "e2el"))
            {
                q.levels.push(level);
                q.ttft_ms.push(t);
                q.tpot_ms.push(p);
                q.e2el_ms.push(e);
            }
        }
        (q.levels.len() >= 3).then_some(q)
    }
}

/// Per-request agreement of a run's answers with the baseline's, averaged over requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerAgreement {
    /// Share of answers identical to the baseline's.
    pub exact: f64,
    /// Mean share of the first 32 tokens before the answers first differ.
    pub prefix: f64,
    /// Mean token F1 of the whole answers (a similarity for free text).
    pub similarity: f64,
}

impl Measurement {
    /// Whether the run met the SLA — its p99 bounds and at most 1 % failed requests — by its
    /// slack (runs recorded before forge kept the slack: its SLA flag, which also counted
    /// accuracy).
    pub fn met_sla(&self) -> bool {
        self.sla_slack.map_or(self.sla_ok, |s| s >= 0.0)
    }

    /// Pull the figures out of a bench result.
    pub fn from_result(r: &BenchResult) -> Measurement {
        let p = |k: &str| r.percentile_keys.get(k).copied().unwrap_or(0.0);
        Measurement {
            value: 0.0,
            sla_ok: true,
            accuracy: None,
            output_throughput: r.output_throughput,
            request_throughput: r.request_throughput,
            goodput: r.request_goodput,
            median_ttft_ms: r.median_ttft_ms,
            p99_ttft_ms: p("p99_ttft_ms"),
            median_tpot_ms: r.median_tpot_ms,
            p99_tpot_ms: p("p99_tpot_ms"),
            p99_e2el_ms: p("p99_e2el_ms"),
            failed: r.failed,
            completed: r.completed,
            failures: r
                .failures
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(k, n)| (k.clone(), *n))
                .collect(),
            sla_slack: None,
            answers: None,
            latency: LatencyQuantiles::from_result(r),
        }
    }
}

/// Which configuration a sample measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arm {
    /// The proposal.
    Candidate,
    /// The current best.
    Incumbent,
}

/// One measured run inside an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Which configuration.
    pub arm: Arm,
    /// What it measured.
    pub m: Measurement,
    /// What the server reported about itself (preemptions, peaks, prefix hits).
    #[serde(default)]
    pub facts: crate::engine::metrics::ServerFacts,
    /// Which pair of the comparison it belongs to (0-based; `None` in rows recorded before
    /// forge kept it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<usize>,
}

/// A row of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRow {
    /// Row sequence number (every row, from 0).
    pub seq: u32,
    /// Experiment number (rows that count against the budget), `None` for dup/rej/converged/skipped.
    pub exp: Option<u32>,
    /// Recipe id; `dup-<id>` / `rej-<n>` for refused proposals.
    pub id: String,
    /// Parent recipe id.
    pub parent_id: Option<String>,
    /// Generation of the candidate.
    pub generation: u32,
    /// Layer the mutation belongs to.
    pub layer: Layer,
    /// The mutation (`field: value`; `null` = back to the engine default).
    pub changes: BTreeMap<String, Value>,
    /// Why the agent proposed it.
    pub rationale: String,
    /// Which agent proposed it (`builtin`, `anthropic/claude-…`).
    pub agent: String,
    /// What became of it.
    pub status: Status,
    /// Why it has no measurement (failed rows) or why it was refused (rej rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// Score relative to the baseline (baseline = 1.0).
    pub score: Option<f64>,
    /// Median of the candidate's measurements.
    pub measurement: Option<Measurement>,
    /// Gain over the incumbent with its confidence interval.
    pub interval: Option<Interval>,
    /// Log ratios of the pairs (feeds the run's pooled noise estimate on resume).
    #[serde(default)]
    pub log_ratios: Vec<f64>,
    /// Every measured run, in order.
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// The agent's predicted gain, % (the surrogate's, for the built-in agent).
    pub predicted_gain_pct: Option<f64>,
    /// The candidate recipe (the baseline's for row 0).
    pub recipe: Recipe,
    /// LLM spend for this row, USD.
    #[serde(default)]
    pub cost_usd: f64,
    /// Wall seconds this row took.
    pub wall_s: f64,
    /// When it finished (UTC, RFC 3339).
    pub finished_at: String,
    /// Engine log of the candidate, relative to the run directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_log: Option<String>,
    /// For a confirmation: whether the recipe held up against the baseline side by side
    /// (not worse: gain ≥ 0, or it meets an SLA the baseline misses). A recipe that did not
    /// is not recommended; `None` in rows recorded before forge decided this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed: Option<bool>,
    /// Things that happened on the machine while this row ran (e.g. GPU memory that did
    /// not return to idle before a boot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl ExperimentRow {
    /// The measured pairs (candidate, incumbent), in order: by each sample's pair index, or
    /// for rows recorded before forge kept it, the k-th candidate with the k-th incumbent.
    pub fn pairs(&self) -> Vec<(Measurement, Measurement)> {
        let side =
            |arm: Arm| -> Vec<&Sample> { self.samples.iter().filter(|s| s.arm == arm).collect() };
        let (cands, incs) = (side(Arm::Candidate), side(Arm::Incumbent));
        if self.samples.iter().all(|s| s.pair.is_some()) {
            return cands
                .iter()
                .filter_map(|c| {
                    let i = incs.iter().find(|i| i.pair == c.pair)?;
                    Some((c.m.clone(), i.m.clone()))
                })
                .collect();
        }
        cands
            .iter()
            .zip(&incs)
            .map(|(c, i)| (c.m.clone(), i.m.clone()))
            .collect()
    }

    /// A row with nothing measured yet, on recipe `on` (the incumbent for converged,
    /// skipped and refused rows), finished now.
    pub fn bare(
        seq: u32,
        layer: Layer,
        status: Status,
        on: &Recipe,
        rationale: &str,
        agent: String,
    ) -> ExperimentRow {
        ExperimentRow {
            seq,
            exp: None,
            id: on.id.clone(),
            parent_id: on.parent_id.clone(),
            generation: on.generation,
            layer,
            changes: BTreeMap::new(),
            rationale: rationale.to_string(),
            agent,
            status,
            failure: None,
            score: None,
            measurement: None,
            interval: None,
            log_ratios: vec![],
            samples: vec![],
            predicted_gain_pct: None,
            recipe: on.clone(),
            cost_usd: 0.0,
            wall_s: 0.0,
            finished_at: chrono::Utc::now().to_rfc3339(),
            engine_log: None,
            confirmed: None,
            notes: vec![],
        }
    }
}

/// The row whose recipe a run recommends deploying: the last confirmation that held up
/// against the baseline side by side; when every confirmation found its recipe worse than
/// the baseline, the baseline; before any confirmation, the incumbent (the last kept
/// recipe, or the baseline) — not yet confirmed.
pub fn recommended(rows: &[ExperimentRow]) -> Option<&ExperimentRow> {
    let confirmations = || rows.iter().filter(|r| r.status == Status::Confirmation);
    if let Some(r) = confirmations().rev().find(|r| r.confirmed != Some(false)) {
        return Some(r);
    }
    let incumbent = || {
        rows.iter()
            .rev()
            .find(|r| matches!(r.status, Status::Kept | Status::Baseline))
    };
    if confirmations().next().is_some() {
        return rows
            .iter()
            .find(|r| r.status == Status::Baseline)
            .or_else(incumbent);
    }
    incumbent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_are_read_at_every_level_the_result_reports() {
        let mut r = BenchResult::default();
        for (level, v) in [("5", 1.0), ("50", 5.0), ("99", 9.0), ("99.9", 9.9)] {
            for metric in ["ttft", "tpot", "e2el"] {
                r.percentile_keys.insert(format!("p{level}_{metric}_ms"), v);
            }
        }
        // TPOT lacks p99.9: that level is left out of all three.
        r.percentile_keys.remove("p99.9_tpot_ms");
        let q = LatencyQuantiles::from_result(&r).unwrap();
        assert_eq!(q.levels, [5.0, 50.0, 99.0]);
        assert_eq!(q.tpot_ms, [1.0, 5.0, 9.0]);
        // Fewer than three levels: no distribution to draw.
        r.percentile_keys.retain(|k, _| !k.starts_with("p5_"));
        assert_eq!(LatencyQuantiles::from_result(&r), None);
    }

    use crate::recipe::{EngineKind, Hardware, Layer, Recipe};

    fn row(status: Status, recipe: &Recipe, confirmed: Option<bool>) -> ExperimentRow {
        let mut r = ExperimentRow::bare(0, Layer::Config, status, recipe, "", "builtin".into());
        r.confirmed = confirmed;
        r
    }

    #[test]
    fn the_recommendation_is_the_last_recipe_that_held_up_side_by_side() {
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let a = base.mutate(Layer::Config, &[("max_num_seqs".into(), 64.into())].into());
        let b = a.mutate(Layer::Config, &[("max_num_seqs".into(), 32.into())].into());
        let mut rows = vec![
            row(Status::Baseline, &base, None),
            row(Status::Kept, &a, None),
            row(Status::Kept, &b, None),
        ];
        // Not confirmed yet: the incumbent.
        assert_eq!(recommended(&rows).unwrap().recipe.id, b.id);
        // b is worse than the baseline side by side; a holds up.
        rows.push(row(Status::Confirmation, &b, Some(false)));
        assert_eq!(recommended(&rows).unwrap().recipe.id, base.id);
        rows.push(row(Status::Confirmation, &a, Some(true)));
        assert_eq!(recommended(&rows).unwrap().recipe.id, a.id);
        // A confirmation from before forge recorded the verdict counts as held.
        let old = vec![
            row(Status::Baseline, &base, None),
            row(Status::Confirmation, &b, None),
        ];
        assert_eq!(recommended(&old).unwrap().recipe.id, b.id);
    }
}
