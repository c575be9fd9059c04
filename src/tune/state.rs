//! The run's state, rebuilt from the journal: the incumbent, budgets spent, layers done,
//! what was tried from which base, and the pooled noise estimate. `tune resume` calls
//! [`RunState::from_rows`] on the repaired journal, so state is never stored twice.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::judge::Pools;
use crate::engine::failure::FailureClass;
use crate::recipe::Layer;
use crate::recipe::Recipe;
use crate::record::settings::TuneSettings;
use crate::record::{ExperimentRow, Measurement, Status};

/// After this many refused proposals in a row, the layer counts as converged (an agent
/// that only repeats itself has nothing left to offer).
pub const MAX_CONSECUTIVE_REFUSALS: u32 = 5;

/// Why a run stopped (written into `completed.json` as its sentence).
#[derive(Debug, Clone, PartialEq)]
pub enum StopReason {
    /// `--max-experiments` spent.
    ExperimentBudget(u32),
    /// `--max-hours` of experiment time spent.
    TimeBudget(f64),
    /// `--max-dollars` of LLM spend reached.
    SpendCap(f64),
    /// The agent cannot afford its next step under the spend cap (its words).
    AgentBudget(String),
    /// Every layer converged, was skipped or hit its cap.
    Converged,
    /// The baseline could not be measured: nothing to tune against.
    BaselineFailed {
        /// How it failed.
        class: FailureClass,
        /// The failure in one line.
        summary: String,
    },
}

impl StopReason {
    /// Whether the end-of-run confirmation (best against baseline, paired) still runs: not
    /// when the time budget is spent, nor when there is no baseline.
    pub fn confirms(&self) -> bool {
        !matches!(
            self,
            StopReason::TimeBudget(_) | StopReason::BaselineFailed { .. }
        )
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::ExperimentBudget(n) => write!(f, "experiment budget reached ({n})"),
            StopReason::TimeBudget(h) => write!(f, "time budget reached ({h} h)"),
            StopReason::SpendCap(cap) => write!(f, "spend cap reached (${cap:.2})"),
            StopReason::AgentBudget(why) => f.write_str(why),
            StopReason::Converged => f.write_str("every layer converged"),
            StopReason::BaselineFailed { class, summary } => write!(
                f,
                "the baseline could not be measured ({}: {summary}); nothing to tune against",
                class.as_str()
            ),
        }
    }
}

/// The incumbent a baseline or kept row makes, at `accuracy` relative to the baseline.
fn incumbent_of(r: &ExperimentRow, accuracy: f64) -> Incumbent {
    Incumbent {
        recipe: r.recipe.clone(),
        score: r.score.unwrap_or(1.0),
        measurement: r.measurement.clone(),
        accuracy: accuracy.min(1.0),
    }
}

/// The geometric mean of a kept row's paired accuracy ratios (1 when none was measured).
fn accuracy_ratio(r: &ExperimentRow) -> f64 {
    let ratios: Vec<f64> = r
        .pairs()
        .iter()
        .filter_map(|(c, i)| Some((c.accuracy?.max(1e-3) / i.accuracy?.max(1e-3)).ln()))
        .collect();
    if ratios.is_empty() {
        return 1.0;
    }
    (ratios.iter().sum::<f64>() / ratios.len() as f64).exp()
}

/// The current best configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Incumbent {
    /// Its recipe.
    pub recipe: Recipe,
    /// Score relative to the baseline.
    pub score: f64,
    /// Its latest measurement.
    pub measurement: Option<Measurement>,
    /// Its accuracy relative to the baseline, as its keep measured it against the incumbent
    /// before it (1 for the baseline; never above 1).
    pub accuracy: f64,
}

/// Everything the loop needs to continue.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Rows so far.
    pub rows: Vec<ExperimentRow>,
    /// Current best (None before the baseline).
    pub incumbent: Option<Incumbent>,
    /// Rows that counted as experiments.
    pub experiments_used: u32,
    /// Experiments per layer.
    pub per_layer: BTreeMap<Layer, u32>,
    /// Layers that converged or were skipped.
    pub done_layers: BTreeSet<Layer>,
    /// The run's pooled noise (objective, SLA slack, accuracy).
    pub pools: Pools,
    /// LLM spend, USD.
    pub spent_usd: f64,
    /// Experiment wall time spent, s (summed across resumes).
    pub elapsed_s: f64,
    /// (base id, candidate id) pairs already tried and not kept.
    pub tried: HashSet<(String, String)>,
    /// Candidate ids that were infeasible from any base.
    pub infeasible: HashSet<String>,
    /// Refused proposals since the last real experiment.
    pub consecutive_refusals: u32,
}

impl RunState {
    /// Rebuild from journal rows.
    pub fn from_rows(rows: Vec<ExperimentRow>) -> RunState {
        let mut s = RunState::default();
        for r in rows {
            s.apply(r);
        }
        s
    }

    /// Fold one row in (used both when rebuilding and after each new row).
    pub fn apply(&mut self, r: ExperimentRow) {
        self.spent_usd += r.cost_usd;
        self.elapsed_s += r.wall_s;
        // The baseline is experiment 0 however many boots it took (defaults that did not
        // boot, then the baseline derived from the engine's hint).
        let repeat_baseline = r.exp == Some(0) && self.rows.iter().any(|x| x.exp == Some(0));
        if r.status.is_experiment() && !repeat_baseline {
            self.experiments_used += 1;
            *self.per_layer.entry(r.layer).or_default() += 1;
            self.consecutive_refusals = 0;
        }
        // The confirmation's pairs are not a decision: they stay out of the pools.
        if r.status != Status::Confirmation {
            self.pools.absorb(&r.pairs(), &r.log_ratios);
        }
        match r.status {
            Status::Baseline => self.incumbent = Some(incumbent_of(&r, 1.0)),
            Status::Kept => {
                let before = self.incumbent.as_ref().map_or(1.0, |i| i.accuracy);
                self.incumbent = Some(incumbent_of(&r, before * accuracy_ratio(&r)));
            }
            Status::Reverted | Status::Inconclusive | Status::Failed | Status::Duplicate => {
                if let Some(p) = &r.parent_id {
                    self.tried.insert((p.clone(), r.recipe.id.clone()));
                }
                if r.failure.as_ref().is_some_and(|f| f.class.is_infeasible()) {
                    self.infeasible.insert(r.recipe.id.clone());
                }
            }
            Status::Rejected | Status::Confirmation => {}
            Status::Converged | Status::Skipped => {
                self.done_layers.insert(r.layer);
            }
        }
        if matches!(r.status, Status::Duplicate | Status::Rejected) {
            self.consecutive_refusals += 1;
            if self.consecutive_refusals >= MAX_CONSECUTIVE_REFUSALS {
                self.done_layers.insert(r.layer);
            }
        }
        self.rows.push(r);
    }

    /// Sequence number of the next row.
    pub fn next_seq(&self) -> u32 {
        self.rows.len() as u32
    }

    /// The layer to work on: the first of the run's layers that is neither done nor at its
    /// cap. `None` when every layer is finished.
    pub fn current_layer(&self, s: &TuneSettings) -> Option<Layer> {
        s.layers.iter().copied().find(|l| {
            let used = self.per_layer.get(l).copied().unwrap_or(0);
            let cap = match l {
                Layer::Config => s.max_config_experiments,
                Layer::Quant => s.max_quant_experiments,
                Layer::Kernel => None,
            };
            !self.done_layers.contains(l) && cap.is_none_or(|c| used < c)
        })
    }

    /// True when `candidate` was already tried (and not kept) from `base`, or is known to
    /// be infeasible.
    pub fn was_tried(&self, base: &str, candidate: &str) -> bool {
        self.tried
            .contains(&(base.to_string(), candidate.to_string()))
            || self.infeasible.contains(candidate)
    }

    /// Why the run must stop now, if it must.
    pub fn budget_exhausted(&self, s: &TuneSettings) -> Option<StopReason> {
        if self.experiments_used >= s.max_experiments {
            return Some(StopReason::ExperimentBudget(s.max_experiments));
        }
        if self.elapsed_s >= s.max_hours * 3600.0 {
            return Some(StopReason::TimeBudget(s.max_hours));
        }
        if let Some(cap) = s.max_dollars
            && self.spent_usd >= cap
        {
            return Some(StopReason::SpendCap(cap));
        }
        None
    }
}

/// Row builders for other modules' tests.
#[cfg(test)]
pub mod tests_support {
    use super::*;

    /// A minimal measured row for `recipe`.
    pub fn row_with_changes(recipe: &Recipe) -> ExperimentRow {
        ExperimentRow {
            seq: 0,
            exp: Some(0),
            id: recipe.id.clone(),
            parent_id: recipe.parent_id.clone(),
            generation: recipe.generation,
            layer: Layer::Config,
            changes: Default::default(),
            rationale: String::new(),
            agent: "builtin".into(),
            status: Status::Kept,
            failure: None,
            score: Some(1.0),
            measurement: None,
            interval: None,
            log_ratios: vec![],
            samples: vec![],
            predicted_gain_pct: None,
            recipe: recipe.clone(),
            cost_usd: 0.0,
            wall_s: 0.0,
            finished_at: String::new(),
            engine_log: None,
            confirmed: None,
            notes: vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{EngineKind, Hardware};

    pub(crate) fn row(
        seq: u32,
        status: Status,
        layer: Layer,
        recipe: &Recipe,
        parent: Option<&str>,
    ) -> ExperimentRow {
        ExperimentRow {
            seq,
            exp: status.is_experiment().then_some(seq),
            id: recipe.id.clone(),
            parent_id: parent.map(str::to_string),
            generation: recipe.generation,
            layer,
            changes: Default::default(),
            rationale: String::new(),
            agent: "builtin".into(),
            status,
            failure: None,
            score: Some(1.0),
            measurement: None,
            interval: None,
            log_ratios: vec![0.01, -0.01],
            samples: vec![],
            predicted_gain_pct: None,
            recipe: recipe.clone(),
            cost_usd: 0.5,
            wall_s: 10.0,
            finished_at: String::new(),
            engine_log: None,
            confirmed: None,
            notes: vec![],
        }
    }

    fn settings() -> TuneSettings {
        crate::record::settings::test_settings()
    }

    #[test]
    fn rebuilds_incumbent_budgets_and_tried_set() {
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut ch = BTreeMap::new();
        ch.insert("max_num_seqs".to_string(), serde_json::json!(64));
        let c1 = base.mutate(Layer::Config, &ch);
        ch.insert("max_num_seqs".to_string(), serde_json::json!(128));
        let c2 = base.mutate(Layer::Config, &ch);
        let rows = vec![
            row(0, Status::Baseline, Layer::Config, &base, None),
            row(1, Status::Reverted, Layer::Config, &c1, Some(&base.id)),
            row(2, Status::Duplicate, Layer::Config, &c1, Some(&base.id)),
            row(3, Status::Kept, Layer::Config, &c2, Some(&base.id)),
        ];
        let s = RunState::from_rows(rows);
        assert_eq!(s.incumbent.as_ref().unwrap().recipe.id, c2.id);
        assert_eq!(s.experiments_used, 3);
        assert_eq!(s.next_seq(), 4);
        assert!(s.was_tried(&base.id, &c1.id));
        assert!(!s.was_tried(&c2.id, &c1.id));
        assert!((s.spent_usd - 2.0).abs() < 1e-12);
        assert!((s.elapsed_s - 40.0).abs() < 1e-12);
        assert!(s.pools.objective.df > crate::tune::verdict::NoisePool::default().df);
        assert_eq!(s.consecutive_refusals, 0);
    }

    #[test]
    fn layers_escalate_on_convergence_and_caps() {
        let mut st = settings();
        st.max_config_experiments = Some(2);
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut s = RunState::from_rows(vec![row(0, Status::Baseline, Layer::Config, &base, None)]);
        assert_eq!(s.current_layer(&st), Some(Layer::Config));
        s.apply(row(1, Status::Reverted, Layer::Config, &base, Some("x")));
        assert_eq!(s.current_layer(&st), Some(Layer::Quant));
        s.apply(row(2, Status::Converged, Layer::Quant, &base, None));
        assert_eq!(s.current_layer(&st), Some(Layer::Kernel));
        s.apply(row(3, Status::Skipped, Layer::Kernel, &base, None));
        assert_eq!(s.current_layer(&st), None);
    }

    #[test]
    fn repeated_refusals_converge_the_layer_and_budgets_stop() {
        let mut st = settings();
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut s = RunState::default();
        for i in 0..MAX_CONSECUTIVE_REFUSALS {
            s.apply(row(i, Status::Rejected, Layer::Config, &base, None));
        }
        assert!(s.done_layers.contains(&Layer::Config));
        st.max_dollars = Some(1.0);
        assert_eq!(s.budget_exhausted(&st), Some(StopReason::SpendCap(1.0)));
        assert_eq!(
            StopReason::SpendCap(1.0).to_string(),
            "spend cap reached ($1.00)"
        );
        st.max_dollars = None;
        st.max_experiments = 0;
        assert_eq!(
            s.budget_exhausted(&st).map(|r| r.to_string()),
            Some("experiment budget reached (0)".to_string())
        );
    }
}
