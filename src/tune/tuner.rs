//! The loop: baseline, then propose → validate → measure (paired) → decide → record, layer
//! by layer, until a budget is spent or every layer has converged; then a confirmation of
//! the best against the baseline. Every row is journaled (fsync'd) before the next
//! experiment starts, and the views are rewritten atomically after it.
//!
//! The loop knows two seams and nothing behind them: the [`Engine`] says which recipes may
//! run and what its defaults are; the [`Measure`] produces one measured run of a recipe (a
//! spawned server, or the simulator in process).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::accuracy::References;
use super::context;
use super::decide::{self, Outcome};
use super::judge::Judge;
use super::measure::Measure;
use super::state::{RunState, StopReason};
use super::surrogate::SimModel;
use super::verdict::{Decision, Rule};
use super::views;
use crate::agent::{Agent, AgentContext, AgentError, Proposal, RejectedReply};
use crate::engine::adapter::Engine;
use crate::engine::allowlist as knobs;
use crate::engine::failure::{Failure, FailureClass};
use crate::hardware::GpuSpec;
use crate::playbook::Playbook;
use crate::recipe::{Illegal, Layer, Recipe};
use crate::record::settings::TuneSettings;
use crate::record::{Arm, ExperimentRow, Sample, Status};
use crate::store::{self, ANALYSIS_FILE, COMPLETED_FILE, JOURNAL_FILE, REFERENCES_FILE};
use crate::workload::Workload;
use crate::workload::stats::WorkloadStats;

/// Everything one run works with.
pub struct Tuner<M: Measure> {
    /// Settings (from `config.json`).
    pub settings: TuneSettings,
    /// Run directory.
    pub dir: PathBuf,
    /// State rebuilt from the journal.
    pub state: RunState,
    /// How a recipe is measured.
    pub measure: M,
    /// The engine tuned: legality and defaults.
    pub engine: Arc<dyn Engine>,
    /// The agent.
    pub agent: Box<dyn Agent>,
    /// The playbook.
    pub playbook: Playbook,
    /// The workload.
    pub workload: Workload,
    /// Its statistics.
    pub stats: WorkloadStats,
    /// GPU spec (None on CPU).
    pub gpu: Option<&'static GpuSpec>,
    /// Memory model and surrogate (vLLM recipes on a model the simulator knows).
    pub sim: Option<SimModel>,
    /// The baseline recipe (engine defaults).
    pub baseline: Recipe,
    /// Accuracy references once the baseline is measured.
    pub refs: Option<References>,
    /// Print one line per row to stderr (a person watching); off for the benches.
    pub echo: bool,
}

impl<M: Measure> Tuner<M> {
    fn rule(&self) -> Rule {
        decide::rule(&self.settings, None)
    }

    fn record(&mut self, mut row: ExperimentRow) -> anyhow::Result<()> {
        row.notes.extend(self.measure.take_notes());
        store::append_line(&self.dir.join(JOURNAL_FILE), &row)?;
        if self.echo {
            super::progress::row(&row, &self.settings);
        }
        self.state.apply(row);
        views::write_all(&self.dir, &self.state.rows)?;
        Ok(())
    }

    /// The recipe the next candidate is mutated from.
    fn incumbent(&self) -> Recipe {
        self.state
            .incumbent
            .as_ref()
            .map_or_else(|| self.baseline.clone(), |i| i.recipe.clone())
    }

    /// Run until done; returns why it stopped.
    pub async fn run(&mut self) -> anyhow::Result<StopReason> {
        if self.state.incumbent.is_none()
            && let Some(reason) = self.run_baseline().await?
        {
            return Ok(reason);
        }
        self.load_references();
        loop {
            if let Some(reason) = self.state.budget_exhausted(&self.settings) {
                return Ok(reason);
            }
            let Some(layer) = self.state.current_layer(&self.settings) else {
                return Ok(StopReason::Converged);
            };
            if let Some(why) = self.layer_unavailable(layer) {
                let row = self.bare_row(layer, Status::Skipped, &why);
                self.record(row)?;
                continue;
            }
            let started = Instant::now();
            let proposal = match self.propose(layer).await {
                Ok(p) => p,
                Err(AgentError::Budget(why)) => return Ok(StopReason::AgentBudget(why)),
                Err(AgentError::Failed(e)) => return Err(e),
            };
            self.handle(proposal, started).await?;
        }
    }

    fn layer_unavailable(&self, layer: Layer) -> Option<String> {
        let space_empty = self.playbook.space.get(&layer).is_none_or(|k| k.is_empty());
        space_empty.then(|| {
            format!(
                "the playbook has no {} search space for this engine",
                layer.as_str()
            )
        })
    }

    /// Measure the baseline. When the engine's defaults cannot boot here and the engine
    /// knows the smallest change that lets them serve this workload (vLLM: a context from
    /// its own hint), that failure is recorded, the change is made to the baseline — said
    /// on stderr and in the row — and the baseline is measured again.
    async fn run_baseline(&mut self) -> anyhow::Result<Option<StopReason>> {
        let text = "baseline: the engine's own defaults on this hardware";
        let started = Instant::now();
        let Err(f) = self.try_baseline(text).await? else {
            return Ok(None);
        };
        let need = (self.stats.prompt_tokens.max + self.stats.output_tokens.max).ceil() as u64;
        let Some(fix) = self.engine.bootable(&f, need) else {
            return self.baseline_failed(f, text, started);
        };
        eprintln!("forge: {}", fix.why);
        self.baseline_failed(f, text, started)?;
        let mut config = self.baseline.config.clone();
        config.extend(fix.config);
        self.baseline = Recipe::baseline_with(
            self.baseline.engine,
            &self.baseline.model,
            self.baseline.hardware.clone(),
            config,
        );
        let derived = format!(
            "baseline: the engine's own defaults, with {}",
            changes(&self.baseline)
        );
        let started = Instant::now();
        match self.try_baseline(&derived).await? {
            Ok(()) => Ok(None),
            Err(f) => self.baseline_failed(f, &derived, started),
        }
    }

    /// Measure the baseline recipe and record its row; `Err` is the failure, not recorded.
    async fn try_baseline(&mut self, rationale: &str) -> anyhow::Result<Result<(), Failure>> {
        let started = Instant::now();
        let recipe = self.baseline.clone();
        let tag = format!("e{:04}-baseline", self.state.next_seq());
        let (mut m, out) =
            match decide::sample(&mut self.measure, &recipe, &tag, &self.settings, None).await {
                Ok(x) => x,
                Err(f) => return Ok(Err(f)),
            };
        let mut row = self.baseline_row(Status::Baseline, rationale);
        let refs = self.references(&recipe, &tag, &out.answers).await?;
        m.accuracy = refs.relative(&out.answers);
        self.refs = Some(refs);
        row.score = Some(1.0);
        row.samples.push(Sample {
            arm: Arm::Incumbent,
            m: m.clone(),
            facts: out.facts,
            pair: None,
        });
        row.measurement = Some(m);
        row.engine_log = Some(out.log);
        row.wall_s = started.elapsed().as_secs_f64();
        self.record(row)?;
        Ok(Ok(()))
    }

    /// Record the baseline's failure `f`; the run stops.
    fn baseline_failed(
        &mut self,
        f: Failure,
        rationale: &str,
        started: Instant,
    ) -> anyhow::Result<Option<StopReason>> {
        let reason = StopReason::BaselineFailed {
            class: f.class,
            summary: f.summary.clone(),
        };
        let mut row = self.baseline_row(Status::Failed, rationale);
        row.failure = Some(f);
        row.wall_s = started.elapsed().as_secs_f64();
        self.record(row)?;
        Ok(Some(reason))
    }

    fn baseline_row(&self, status: Status, rationale: &str) -> ExperimentRow {
        let mut row = self.bare_row(Layer::Config, status, rationale);
        row.recipe = self.baseline.clone();
        row.id = self.baseline.id.clone();
        row.exp = Some(0);
        row
    }

    /// The accuracy references: the workload's expected outputs and the baseline's
    /// `answers`, calibrated by a second run of the same config (how much the engine's own
    /// answers vary, e.g. batch-dependent numerics), and saved.
    async fn references(
        &mut self,
        recipe: &Recipe,
        tag: &str,
        answers: &[String],
    ) -> anyhow::Result<References> {
        let expected = self
            .workload
            .requests
            .iter()
            .map(|r| r.expected_output.clone())
            .collect();
        let mut refs = References::new(expected, answers.to_vec());
        let tag2 = format!("{tag}-2");
        if let Ok((_, again)) =
            decide::sample(&mut self.measure, recipe, &tag2, &self.settings, None).await
        {
            refs.calibrate(&again.answers);
        }
        store::write_atomic(
            &self.dir.join(REFERENCES_FILE),
            serde_json::to_string(&refs)?.as_bytes(),
        )?;
        Ok(refs)
    }

    fn load_references(&mut self) {
        if self.refs.is_none()
            && let Ok(t) = std::fs::read_to_string(self.dir.join(REFERENCES_FILE))
        {
            self.refs = serde_json::from_str(&t).ok();
        }
    }

    fn bare_row(&self, layer: Layer, status: Status, rationale: &str) -> ExperimentRow {
        let inc = self
            .state
            .incumbent
            .as_ref()
            .map_or(&self.baseline, |i| &i.recipe);
        let seq = self.state.next_seq();
        ExperimentRow::bare(seq, layer, status, inc, rationale, self.agent.name())
    }

    async fn propose(&mut self, layer: Layer) -> Result<Proposal, AgentError> {
        let inc = self.incumbent();
        let effective = self.engine.effective(&inc, self.gpu);
        let facts = context::facts(
            &self.state.rows,
            &effective,
            self.engine.host_facts(),
            &self.stats,
            &self.settings,
        );
        let base = inc.id.clone();
        let state = &self.state;
        let is_tried = |r: &Recipe| state.was_tried(&base, &r.id);
        let sim = self.sim.as_ref();
        let engine = self.engine.as_ref();
        let legal = |r: &Recipe| legal(engine, sim, r);
        let surrogate_fn = |r: &Recipe| sim.and_then(|s| s.predict(r));
        let ctx = AgentContext {
            settings: &self.settings,
            playbook: &self.playbook,
            layer,
            incumbent: &inc,
            effective,
            facts,
            workload: &self.stats,
            history: &self.state.rows,
            is_tried: &is_tried,
            legal: &legal,
            surrogate: sim.map(|_| &surrogate_fn as &crate::agent::Surrogate<'_>),
            gpu: self.gpu,
            spent_usd: self.state.spent_usd,
        };
        self.agent.propose(&ctx).await
    }

    async fn handle(&mut self, p: Proposal, started: Instant) -> anyhow::Result<()> {
        for r in &p.rejected {
            self.record(self.refused_reply_row(p.layer, r))?;
        }
        let layer = p.layer;
        if p.changes.is_empty() {
            let mut row = self.bare_row(layer, Status::Converged, &p.rationale);
            row.cost_usd = p.cost_usd;
            return self.record(row);
        }
        let inc = self.incumbent();
        if let Err(why) = self.illegal(&inc, &p) {
            return self.record(self.rejected_row(&p, why));
        }
        let cand = inc.mutate(layer, &p.changes);
        if cand.id == inc.id || self.state.was_tried(&inc.id, &cand.id) {
            let mut row = self.candidate_row(&p, &cand, Status::Duplicate);
            row.id = format!("dup-{}", cand.id);
            return self.record(row);
        }
        let tag = format!("e{:04}-{}", self.state.next_seq(), cand.id);
        let outcome = {
            // Only the simulator's prediction buys more pairs, never an LLM's claim.
            let predicted = p.expected_throughput_delta_pct.filter(|_| p.from_surrogate);
            let rule = decide::rule(&self.settings, predicted);
            let pair = (&cand, &inc);
            let judge = judge_for(&self.settings, &self.state, self.refs.as_ref(), pair, rule);
            decide::compare(
                &mut self.measure,
                &cand,
                &inc,
                &tag,
                &judge,
                self.refs.as_ref(),
            )
            .await
        };
        let mut row = self.candidate_row(&p, &cand, Status::Failed);
        self.fill_outcome(&mut row, outcome);
        row.wall_s = started.elapsed().as_secs_f64();
        self.record(row)
    }

    /// Every change on the engine's allowlist for the proposal's layer, then the candidate
    /// as a whole, then what this engine version can express.
    fn illegal(&self, inc: &Recipe, p: &Proposal) -> Result<(), Illegal> {
        for (k, v) in &p.changes {
            knobs::check(inc.engine, p.layer, k, v)?;
        }
        let cand = inc.mutate(p.layer, &p.changes);
        legal(self.engine.as_ref(), self.sim.as_ref(), &cand)?;
        self.engine.renders(&cand)
    }

    fn rejected_row(&self, p: &Proposal, why: Illegal) -> ExperimentRow {
        let mut row = self.bare_row(p.layer, Status::Rejected, &p.rationale);
        row.id = format!("rej-{:04}", row.seq);
        row.changes = p.changes.clone();
        row.cost_usd = p.cost_usd;
        row.failure = Some(Failure {
            class: FailureClass::InfeasibleConfig,
            exit_code: None,
            signal: None,
            summary: why.to_string(),
            hints: vec![],
        });
        row
    }

    /// A `rej-*` row for an agent's refused reply (nothing measured, no budget spent).
    fn refused_reply_row(&self, layer: Layer, r: &RejectedReply) -> ExperimentRow {
        let rationale = if r.rationale.is_empty() {
            "(the reply had no readable rationale)"
        } else {
            &r.rationale
        };
        let mut row = self.bare_row(layer, Status::Rejected, rationale);
        row.id = format!("rej-{:04}", row.seq);
        row.changes = r.changes.clone();
        row.failure = Some(Failure {
            class: FailureClass::InfeasibleConfig,
            exit_code: None,
            signal: None,
            summary: format!("agent reply refused: {}", r.why),
            hints: vec![],
        });
        row
    }

    fn candidate_row(&self, p: &Proposal, cand: &Recipe, status: Status) -> ExperimentRow {
        let mut row = self.bare_row(p.layer, status, &p.rationale);
        row.id = cand.id.clone();
        row.parent_id = cand.parent_id.clone();
        row.generation = cand.generation;
        row.changes = p.changes.clone();
        row.recipe = cand.clone();
        row.cost_usd = p.cost_usd;
        row.predicted_gain_pct = p.expected_throughput_delta_pct;
        row
    }

    fn fill_outcome(&self, row: &mut ExperimentRow, o: Outcome) {
        let inc_score = self.state.incumbent.as_ref().map_or(1.0, |i| i.score);
        o.fill(row, self.state.experiments_used, inc_score);
    }

    /// Measure the best recipe against the baseline, paired, for the final interval. When
    /// the side-by-side comparison finds it worse than the baseline, the run falls back to
    /// the recipe kept before it (up to [`MAX_CONFIRMATIONS`] in all), and when none holds up,
    /// to the baseline: the run never ends recommending a recipe found worse than the
    /// defaults. Each confirmation is a row; resuming skips those already recorded.
    pub async fn confirm(&mut self) -> anyhow::Result<()> {
        for best in self.kept_lineage().into_iter().take(MAX_CONFIRMATIONS) {
            let done = self
                .state
                .rows
                .iter()
                .find(|r| r.status == Status::Confirmation && r.recipe.id == best.id)
                .map(|r| r.confirmed != Some(false));
            let holds = match done {
                Some(h) => h,
                None => self.confirm_one(&best).await?,
            };
            if holds {
                return Ok(());
            }
        }
        Ok(())
    }

    /// The recipes kept in this run, the newest first (each once).
    fn kept_lineage(&self) -> Vec<Recipe> {
        let mut out: Vec<Recipe> = Vec::new();
        for r in self.state.rows.iter().rev() {
            if r.status == Status::Kept
                && r.recipe.id != self.baseline.id
                && out.iter().all(|x| x.id != r.recipe.id)
            {
                out.push(r.recipe.clone());
            }
        }
        out
    }

    /// Measure `best` against the baseline side by side; true when it holds up (not worse
    /// than the baseline: gain ≥ 0, or it meets the SLA the baseline misses).
    async fn confirm_one(&mut self, best: &Recipe) -> anyhow::Result<bool> {
        let started = Instant::now();
        let tag = format!("e{:04}-confirm", self.state.next_seq());
        let rule = Rule {
            min_improvement_pct: 0.0,
            min_pairs: self.settings.max_repeats,
            ..self.rule()
        };
        let baseline = self.baseline.clone();
        let o = {
            let pair = (best, &baseline);
            let judge = judge_for(&self.settings, &self.state, self.refs.as_ref(), pair, rule);
            decide::compare(
                &mut self.measure,
                best,
                &baseline,
                &tag,
                &judge,
                self.refs.as_ref(),
            )
            .await
        };
        let holds = o.failure.is_none()
            && (o.decision == Decision::Keep
                || (o.decision != Decision::Revert
                    && o.interval.is_some_and(|iv| iv.gain_pct >= 0.0)));
        let mut row = self.bare_row(
            Layer::Config,
            Status::Confirmation,
            &confirmation_text(holds),
        );
        if let Some(note) = &o.note {
            row.rationale = format!("{} [{note}]", row.rationale);
        }
        row.id = best.id.clone();
        row.parent_id = best.parent_id.clone();
        row.generation = best.generation;
        row.recipe = best.clone();
        row.samples = o.samples;
        row.interval = o.interval;
        row.measurement = o.candidate;
        row.failure = o.failure;
        row.confirmed = Some(holds);
        row.score = o.interval.map(|iv| 1.0 + iv.gain_pct / 100.0);
        row.wall_s = started.elapsed().as_secs_f64();
        self.record(row)?;
        Ok(holds)
    }

    /// Ask the agent for its post-run analysis and store it as `analysis.json`.
    pub async fn analyze(&mut self) {
        let ctx = crate::agent::AnalysisContext {
            settings: &self.settings,
            history: &self.state.rows,
            workload: &self.stats,
            spent_usd: self.state.spent_usd,
        };
        match self.agent.analyze(&ctx).await {
            Ok(Some(a)) => {
                self.state.spent_usd += a.cost_usd;
                let body = serde_json::to_string_pretty(&a).unwrap_or_default();
                if let Err(e) = store::write_atomic(&self.dir.join(ANALYSIS_FILE), body.as_bytes())
                {
                    eprintln!("forge: warning: cannot save the analysis: {e}");
                }
            }
            Ok(None) => {}
            Err(e) => eprintln!(
                "forge: warning: no post-run analysis: {}",
                crate::term::error_text(&e)
            ),
        }
    }

    /// Finish a run that stopped for `reason`: the confirmation (when the reason leaves
    /// time for it), the agent's analysis, `completed.json`.
    pub async fn finish(&mut self, reason: &StopReason) -> anyhow::Result<()> {
        if reason.confirms() {
            self.confirm().await?;
        }
        self.analyze().await;
        self.complete(reason)
    }

    /// Write `completed.json` (the run is finished and will not be resumed).
    pub fn complete(&self, reason: &StopReason) -> anyhow::Result<()> {
        let v = json!({
            "completed_at": chrono::Utc::now().to_rfc3339(),
            "reason": reason.to_string(),
            "experiments": self.state.experiments_used,
            "best_recipe_id": self.state.incumbent.as_ref().map(|i| i.recipe.id.clone()),
            "best_score": self.state.incumbent.as_ref().map(|i| i.score),
            "spent_usd": self.state.spent_usd,
        });
        store::write_atomic(
            &self.dir.join(COMPLETED_FILE),
            serde_json::to_string_pretty(&v)?.as_bytes(),
        )?;
        // The views were last written with the last row, when the run still read as
        // interrupted: rewrite them so `experiments.json` says how the run ended.
        views::write_all(&self.dir, &self.state.rows)?;
        Ok(())
    }
}

/// How a comparison in a run with `settings`, `state` and accuracy references `refs` is
/// judged, under `rule`.
/// The judge of `cand` against `inc`: `inc`'s accuracy relative to the baseline is the
/// run's incumbent's when `inc` is that incumbent, and 1 when it is the baseline (the
/// confirmation).
fn judge_for<'a>(
    settings: &'a TuneSettings,
    state: &'a RunState,
    refs: Option<&References>,
    (cand, inc): (&Recipe, &Recipe),
    rule: Rule,
) -> Judge<'a> {
    let incumbent_accuracy = state
        .incumbent
        .as_ref()
        .filter(|i| i.recipe.id == inc.id)
        .map_or(1.0, |i| i.accuracy);
    Judge {
        settings,
        pools: &state.pools,
        incumbent_accuracy,
        accuracy_noise: refs.and_then(|r| r.self_agreement).map_or(0.0, |a| 1.0 - a),
        numerics_change: cand.quant != inc.quant || cand.kernels != inc.kernels,
        rule,
    }
}

/// A recipe's config, `knob value` pairs.
fn changes(r: &Recipe) -> String {
    r.config
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Most recipes measured against the baseline at the end of a run: the best, then up to two
/// it falls back to when the one before it does not hold up side by side.
pub const MAX_CONFIRMATIONS: usize = 3;

fn confirmation_text(holds: bool) -> String {
    if holds {
        "confirmation: the recommended recipe against the baseline, measured side by side".into()
    } else {
        "confirmation: measured side by side, this recipe is worse than the baseline; the run falls back to the recipe kept before it, or to the baseline".into()
    }
}

/// Whether `r` may run: the engine's check (allowlist, combinations, what its version can
/// express), then the simulator's memory model where there is one.
pub fn legal(engine: &dyn Engine, sim: Option<&SimModel>, r: &Recipe) -> Result<(), Illegal> {
    engine.check(r)?;
    sim.map_or(Ok(()), |s| s.legal(r))
}

#[cfg(test)]
#[path = "tuner_tests.rs"]
mod tests;
