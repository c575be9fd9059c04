//! The built-in agent: no LLM, no network. Each step it gathers candidates around the
//! incumbent — every single-knob move, plus every configuration a climb of the surrogate
//! (the simulator) visits when it moves one knob at a time to its best value, repeatedly —
//! drops the illegal, the already tried and the ones that add nothing over a subset of their
//! changes, predicts each with the surrogate, recalibrates the prediction on what this run
//! has measured, adds the benefit of the doubt of how far the surrogate has been off in
//! this run (its measured model error), adds weight to single moves a playbook rule asks
//! for, and proposes the best: often a multi-knob jump to the surrogate's optimum first,
//! then the runners-up and local moves as measurements correct the model. The rationale
//! says which numbers and which rule chose it. A layer has converged when nothing is
//! predicted to clear half the keep threshold (after at least a few of its candidates were
//! measured to check the simulator), or when its last few measured candidates were all
//! turned down.

use std::collections::{BTreeMap, HashSet};

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::space::{matches_direction, neighbours};
use super::{Agent, AgentContext, AgentError, Proposal};
use crate::playbook::Rule;
use crate::recipe::Layer;
use crate::recipe::Recipe;
use crate::record::{ExperimentRow, Status};

/// Bonus (in predicted %) for a move a firing playbook rule asks for.
const RULE_BONUS_PCT: f64 = 2.0;
/// Bonus (in %) for trying a knob this run has not measured yet (no surrogate only).
const EXPLORE_BONUS_PCT: f64 = 0.5;
/// Passes of the surrogate climb (each moves every knob once, to its best value).
const CLIMB_PASSES: usize = 3;
/// Prior on the surrogate's error, in keep thresholds: the simulator is not validated on
/// this engine and hardware until this run measures it, so before that a move it rates a
/// little below the incumbent is still worth a look.
const PRIOR_ERROR_X: f64 = 2.0;
/// Weight, in experiments, of that prior.
const PRIOR_WEIGHT: f64 = 1.0;
/// After this many measured candidates in a row in one layer without a keep, the layer has
/// converged (the original's definition: no experiment improves the score by more than the
/// keep threshold) and the budget moves on to the next layer.
pub const LAYER_PATIENCE: u32 = 4;
/// A layer is not called converged on the simulator's word alone before this many of its
/// candidates were measured: until then the best remaining candidate is measured anyway...
const MIN_MEASURED_PER_LAYER: u32 = 3;
/// ...when its calibrated prediction is within this many model errors (at least the prior's)
/// below the incumbent.
const CHECK_WITHIN_SIGMAS: f64 = 3.0;
/// Smallest predicted gain, %, that takes part in calibrating the surrogate.
const MIN_CALIBRATION_PRED_PCT: f64 = 1.0;

/// The built-in agent.
#[derive(Debug, Default)]
pub struct BuiltinAgent;

/// A candidate change of the incumbent, scored.
#[derive(Debug, Clone)]
struct Scored {
    changes: BTreeMap<String, Value>,
    predicted_pct: Option<f64>,
    calibrated_pct: f64,
    rule: Option<String>,
    total: f64,
    /// Already tried from this incumbent (kept only to dominate its supersets).
    tried: bool,
}

impl Agent for BuiltinAgent {
    fn name(&self) -> String {
        "builtin".into()
    }

    fn propose<'a>(
        &'a mut self,
        ctx: &'a AgentContext<'a>,
    ) -> BoxFuture<'a, Result<Proposal, AgentError>> {
        async move { Ok(propose(ctx)) }.boxed()
    }
}

/// A candidate this run measured to a verdict (kept, reverted or inconclusive).
fn is_measured(r: &ExperimentRow) -> bool {
    matches!(
        r.status,
        Status::Kept | Status::Reverted | Status::Inconclusive
    )
}

/// Least-squares factor through the origin between predicted and measured gains of this
/// run's experiments (how far to trust the surrogate), clamped to [0.2, 1.5]. Predictions
/// under [`MIN_CALIBRATION_PRED_PCT`] are left out: their measured gain is mostly noise,
/// and a fit through them scales the model by chance.
pub fn calibration(history: &[ExperimentRow]) -> (f64, usize) {
    let pairs: Vec<(f64, f64)> = history
        .iter()
        .filter(|r| is_measured(r))
        .filter_map(|r| Some((r.predicted_gain_pct?, r.interval?.gain_pct)))
        .filter(|(p, _)| p.abs() >= MIN_CALIBRATION_PRED_PCT)
        .collect();
    let sxx: f64 = pairs.iter().map(|(p, _)| p * p).sum();
    let sxy: f64 = pairs.iter().map(|(p, m)| p * m).sum();
    if pairs.len() < 2 || sxx <= 0.0 {
        return (1.0, pairs.len());
    }
    ((sxy / sxx).clamp(0.2, 1.5), pairs.len())
}

/// How far the calibrated surrogate may be off in this run, %: a prior of `prior_pct`
/// worth one experiment (the simulator is not validated on this engine and hardware until
/// this run measures it), pooled with each measured experiment's squared miss less what its
/// own measurement noise explains (never below zero). Misses are taken on log ratios, so a
/// large gain's multiplicative error counts as much as a small one's, and each experiment
/// is weighted by how much it can say about an error of the prior's size: an interval much
/// wider than that (a large gain confirmed in two pairs) moves the estimate little.
pub fn model_error(history: &[ExperimentRow], k: f64, prior_pct: f64) -> f64 {
    let ln = |pct: f64| (1.0 + pct / 100.0).max(1e-6).ln() * 100.0;
    let prior = prior_pct.max(1e-6);
    let (mut num, mut den) = (PRIOR_WEIGHT * prior * prior, PRIOR_WEIGHT);
    for r in history.iter().filter(|r| is_measured(r)) {
        let (Some(iv), Some(p)) = (r.interval, r.predicted_gain_pct) else {
            continue;
        };
        let miss = ln(iv.gain_pct) - ln(k * p);
        let se = (ln(iv.hi_pct) - ln(iv.lo_pct)) / (2.0 * 1.96);
        let w = 1.0 / (1.0 + (se / prior).powi(2));
        num += w * (miss * miss - se * se).max(0.0);
        den += w;
    }
    (num / den).max(0.0).sqrt()
}

fn propose(ctx: &AgentContext<'_>) -> Proposal {
    let streak = unkept_streak(ctx.history, ctx.layer);
    if streak >= LAYER_PATIENCE {
        return Proposal::converged(
            ctx.layer,
            format!(
                "converged: the last {streak} measured candidates in the {} layer were not kept (none beat the incumbent by the keep threshold with confidence); the budget moves on",
                ctx.layer.as_str()
            ),
        );
    }
    let (k, n_cal) = calibration(ctx.history);
    let prior = ctx.settings.min_improvement_pct * PRIOR_ERROR_X;
    let sigma = model_error(ctx.history, k, prior);
    let base_pred = ctx.surrogate.and_then(|s| s(ctx.incumbent));
    let firing: Vec<&Rule> = ctx
        .playbook
        .rules
        .iter()
        .filter(|r| r.when.holds(&ctx.facts))
        .collect();
    let all: Vec<Scored> = candidates(ctx)
        .into_iter()
        .filter_map(|ch| score(ctx, ch, base_pred, (k, sigma), &firing))
        .collect();
    let mut scored = undominated(all, ctx.settings.min_improvement_pct / 4.0);
    scored.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then_with(|| a.changes.len().cmp(&b.changes.len()))
            .then_with(|| a.changes.keys().cmp(b.changes.keys()))
    });
    let threshold = ctx.settings.min_improvement_pct * 0.5;
    let measured_here = measured_in_layer(ctx.history, ctx.layer);
    let checking = |b: &Scored| {
        measured_here < MIN_MEASURED_PER_LAYER
            && b.predicted_pct.is_some()
            && b.calibrated_pct >= -CHECK_WITHIN_SIGMAS * sigma.max(prior)
    };
    match scored.into_iter().next() {
        Some(best) if best.total >= threshold => proposal(ctx, best, k, n_cal),
        Some(best) if checking(&best) => {
            let mut p = proposal(ctx, best, k, n_cal);
            p.rationale.push_str(&format!(
                " Measured to check the simulator before calling the layer converged: {measured_here} of this layer's candidates measured so far (the simulator has been off by up to {sigma:.1} % here)."
            ));
            p
        }
        Some(best) => Proposal::converged(
            ctx.layer,
            format!(
                "converged: the best remaining change ({}) is predicted at {:+.1} % (allowing {sigma:.1} % for the simulator's error in this run), below half the keep threshold ({:.1} %), and no playbook rule asks for it",
                describe(&best.changes),
                best.calibrated_pct,
                threshold
            ),
        ),
        None => Proposal::converged(
            ctx.layer,
            "converged: every legal move in this layer has been tried from the current best",
        ),
    }
}

/// Measured candidates (kept, reverted or inconclusive) in `layer`.
fn measured_in_layer(history: &[ExperimentRow], layer: Layer) -> u32 {
    history
        .iter()
        .filter(|r| r.layer == layer)
        .filter(|r| is_measured(r))
        .count() as u32
}

/// Measured candidates (reverted or inconclusive) in `layer` since its last keep. Failures
/// do not count: they say nothing about whether the layer has more to give.
pub fn unkept_streak(history: &[ExperimentRow], layer: Layer) -> u32 {
    history
        .iter()
        .rev()
        .filter(|r| r.layer == layer)
        .take_while(|r| !matches!(r.status, Status::Kept | Status::Baseline))
        .filter(|r| matches!(r.status, Status::Reverted | Status::Inconclusive))
        .count() as u32
}

/// Drop the tried candidates, and every multi-knob candidate that some candidate (tried or
/// not) with a subset of its changes is predicted within `margin` of: a knob that rides
/// along without a predicted gain of its own would only spend experiments on the same
/// effect (the climb visits many such neighbours).
fn undominated(all: Vec<Scored>, margin: f64) -> Vec<Scored> {
    let dominated = |c: &Scored| {
        c.changes.len() > 1
            && all.iter().any(|o| {
                o.changes.len() < c.changes.len()
                    && o.changes.iter().all(|(k, v)| c.changes.get(k) == Some(v))
                    && o.calibrated_pct >= c.calibrated_pct - margin
            })
    };
    let keep: Vec<bool> = all.iter().map(|c| !c.tried && !dominated(c)).collect();
    all.into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
}

/// Candidate changes: every single-knob move, and every configuration the surrogate climb
/// visits (deduplicated).
fn candidates(ctx: &AgentContext<'_>) -> Vec<BTreeMap<String, Value>> {
    let mut out: Vec<BTreeMap<String, Value>> = neighbours(ctx.playbook, ctx.layer, &ctx.effective)
        .into_iter()
        .map(|m| BTreeMap::from([(m.knob, m.to)]))
        .collect();
    // A climb may move a knob away and back: a change to the value the engine already runs
    // with is no change, and would only make a new recipe id for the same configuration.
    out.extend(climb(ctx).into_iter().map(|mut ch| {
        ch.retain(|k, v| ctx.effective.get(k) != Some(v));
        ch
    }));
    let mut seen = HashSet::new();
    out.retain(|ch| !ch.is_empty() && seen.insert(serde_json::to_string(ch).unwrap_or_default()));
    out
}

/// Coordinate ascent on the surrogate from the incumbent: each pass moves every knob to the
/// value the surrogate likes best given the others; returns every legal configuration the
/// ascent looked at, as changes of the incumbent.
fn climb(ctx: &AgentContext<'_>) -> Vec<BTreeMap<String, Value>> {
    let (Some(s), Some(knobs)) = (ctx.surrogate, ctx.playbook.space.get(&ctx.layer)) else {
        return Vec::new();
    };
    let Some(mut cur) = s(ctx.incumbent) else {
        return Vec::new();
    };
    // A knob joins the climb only for a gain worth a quarter of the keep threshold, so the
    // jump carries no changes that only move the model's noise.
    let step = 1.0 + ctx.settings.min_improvement_pct / 4.0 / 100.0;
    let mut changes: BTreeMap<String, Value> = BTreeMap::new();
    let mut visited = Vec::new();
    for _ in 0..CLIMB_PASSES {
        let mut moved = false;
        for (knob, values) in knobs {
            let mut best: Option<(f64, Value)> = None;
            for v in values {
                if changes
                    .get(knob)
                    .unwrap_or_else(|| ctx.effective.get(knob).unwrap_or(&Value::Null))
                    == v
                {
                    continue;
                }
                let mut ch = changes.clone();
                ch.insert(knob.clone(), v.clone());
                let cand = ctx.incumbent.mutate(ctx.layer, &ch);
                if cand.id == ctx.incumbent.id || (ctx.legal)(&cand).is_err() {
                    continue;
                }
                let Some(p) = s(&cand) else { continue };
                visited.push(ch);
                if p > cur * step && best.as_ref().is_none_or(|(b, _)| p > *b) {
                    best = Some((p, v.clone()));
                }
            }
            if let Some((p, v)) = best {
                changes.insert(knob.clone(), v);
                cur = p;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    visited
}

/// Score a candidate: the calibrated prediction, plus the surrogate's measured error (a
/// configuration the model rates just below the incumbent may still be better when the
/// model has been off by more than that), plus rule and exploration weight.
fn score(
    ctx: &AgentContext<'_>,
    changes: BTreeMap<String, Value>,
    base_pred: Option<f64>,
    (k, sigma): (f64, f64),
    firing: &[&Rule],
) -> Option<Scored> {
    let cand = ctx.incumbent.mutate(ctx.layer, &changes);
    if cand.id == ctx.incumbent.id || (ctx.legal)(&cand).is_err() {
        return None;
    }
    let tried = (ctx.is_tried)(&cand);
    let predicted_pct = predicted(ctx, &cand, base_pred);
    let calibrated_pct = predicted_pct.map_or(0.0, |p| p * k);
    let rule = single_move_rule(ctx, &changes, firing);
    let knob = changes.keys().next().cloned().unwrap_or_default();
    let explored = explored(ctx, &knob, changes.get(&knob));
    // A knob this run already measured without a clear effect gets no rule weight, and
    // with a surrogate a rule only breaks ties among moves it predicts to help: the
    // evidence and the model beat the heuristic.
    let rule_counts = rule.is_some()
        && !knob_looks_flat(ctx.history, &knob)
        && predicted_pct.is_none_or(|p| p > 0.0);
    let rule_bonus = if rule_counts { RULE_BONUS_PCT } else { 0.0 };
    let explore = if explored || predicted_pct.is_some() || changes.len() > 1 {
        0.0
    } else {
        EXPLORE_BONUS_PCT
    };
    // Without a surrogate, only rule-backed or unexplored moves are worth a try.
    if predicted_pct.is_none() && rule.is_none() && explored {
        return None;
    }
    // The model error is doubt about what this run has not measured: a candidate that only
    // moves knobs already measured without an effect gets none (try another knob instead).
    let measured_flat = changes.keys().all(|k| knob_looks_flat(ctx.history, k));
    let doubt = if predicted_pct.is_some() && !measured_flat {
        sigma
    } else {
        0.0
    };
    Some(Scored {
        total: calibrated_pct + doubt + rule_bonus + explore,
        changes,
        predicted_pct,
        calibrated_pct,
        rule: rule.filter(|_| rule_counts),
        tried,
    })
}

/// True when this run already measured a move of `knob`; for a knob whose values are
/// alternatives rather than settings (a patch of layer 3 from source, a GGUF weight type),
/// a move to `to`: one patch's verdict says nothing about another's.
fn explored(ctx: &AgentContext<'_>, knob: &str, to: Option<&Value>) -> bool {
    let alternatives = crate::engine::allowlist::find(ctx.incumbent.engine, ctx.layer, knob)
        .is_some_and(|k| k.alternatives);
    ctx.history.iter().any(|r| match r.changes.get(knob) {
        Some(v) if alternatives => Some(v) == to,
        Some(_) => true,
        None => false,
    })
}

/// The surrogate's gain for `cand` over the incumbent, %. When the incumbent scores zero
/// (nothing meets the SLA) any positive prediction counts as a large gain.
fn predicted(ctx: &AgentContext<'_>, cand: &Recipe, base_pred: Option<f64>) -> Option<f64> {
    let s = ctx.surrogate?;
    let c = s(cand)?;
    match base_pred {
        Some(b) if b > 0.0 => Some((c / b - 1.0) * 100.0),
        Some(_) if c > 0.0 => Some(100.0),
        Some(_) => Some(0.0),
        None => None,
    }
}

/// The `why` of a firing rule that asks for this single-knob move.
fn single_move_rule(
    ctx: &AgentContext<'_>,
    changes: &BTreeMap<String, Value>,
    firing: &[&Rule],
) -> Option<String> {
    let [(knob, to)] = changes.iter().collect::<Vec<_>>()[..] else {
        return None;
    };
    let mv = neighbours(ctx.playbook, ctx.layer, &ctx.effective)
        .into_iter()
        .find(|m| &m.knob == knob && &m.to == to)?;
    firing
        .iter()
        .find(|r| {
            r.moves
                .iter()
                .any(|(l, k, d)| *l == ctx.layer && k == knob && matches_direction(&mv, d))
        })
        .map(|r| r.why.clone())
}

/// True when every measured experiment on `knob` so far showed no measurable effect: an
/// interval that contains zero (whatever its width).
fn knob_looks_flat(history: &[ExperimentRow], knob: &str) -> bool {
    let measured: Vec<_> = history
        .iter()
        .filter(|r| r.changes.contains_key(knob))
        .filter_map(|r| r.interval)
        .collect();
    !measured.is_empty()
        && measured
            .iter()
            .all(|iv| iv.lo_pct <= 0.0 && iv.hi_pct >= 0.0)
}

/// `knob: from → to` for each change.
fn describe_from(ctx: &AgentContext<'_>, changes: &BTreeMap<String, Value>) -> String {
    changes
        .iter()
        .map(|(k, v)| {
            let from = ctx.effective.get(k).cloned().unwrap_or(Value::Null);
            format!("{k}: {} → {}", show(&from), show(v))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe(changes: &BTreeMap<String, Value>) -> String {
    changes
        .iter()
        .map(|(k, v)| format!("{k} → {}", show(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn proposal(ctx: &AgentContext<'_>, best: Scored, k: f64, n_cal: usize) -> Proposal {
    let mut why = format!("{}.", describe_from(ctx, &best.changes));
    if best.changes.len() > 1 {
        why.push_str(
            " The simulator's best reachable configuration from here (a climb over every knob).",
        );
    }
    if let Some(p) = best.predicted_pct {
        why.push_str(&format!(" The simulator predicts {p:+.1} %"));
        if n_cal >= 2 {
            why.push_str(&format!(
                " ({:+.1} % after calibrating ×{k:.2} on {n_cal} measured experiments)",
                best.calibrated_pct
            ));
        }
        why.push('.');
        if best.calibrated_pct < ctx.settings.min_improvement_pct {
            why.push_str(
                " Tried because the simulator's error in this run may be larger than that.",
            );
        }
    }
    if let Some(r) = &best.rule {
        why.push_str(&format!(" Playbook: {r}"));
    }
    Proposal {
        rationale: why,
        layer: ctx.layer,
        changes: best.changes,
        expected_throughput_delta_pct: best.predicted_pct.map(|p| p * k),
        expected_accuracy_delta: None,
        cost_usd: 0.0,
        from_surrogate: best.predicted_pct.is_some(),
        rejected: Vec::new(),
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Null => "default".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playbook::Playbook;
    use crate::recipe::{EngineKind, Hardware};
    use crate::workload::stats::WorkloadStats;
    use serde_json::json;

    fn seqs(r: &Recipe) -> f64 {
        r.config
            .get("max_num_seqs")
            .and_then(Value::as_f64)
            .unwrap_or(1024.0)
    }

    /// A surrogate whose optimum is max_num_seqs = 256 (10 % better than 1024).
    fn peak(r: &Recipe) -> Option<f64> {
        Some(1000.0 * (1.0 + 0.1 * (-((seqs(r) / 256.0).ln()).powi(2)).exp()))
    }

    struct Fixture {
        settings: crate::record::settings::TuneSettings,
        playbook: Playbook,
        stats: WorkloadStats,
    }

    fn fixture() -> Fixture {
        Fixture {
            settings: crate::record::settings::test_settings(),
            playbook: Playbook::bundled(EngineKind::Vllm).unwrap(),
            stats: WorkloadStats::default(),
        }
    }

    fn run(
        f: &Fixture,
        inc: &Recipe,
        history: &[ExperimentRow],
        facts: BTreeMap<String, f64>,
        tried: &(dyn Fn(&Recipe) -> bool + Send + Sync),
    ) -> Proposal {
        run_with(f, inc, history, facts, tried, Some(&peak))
    }

    fn run_with(
        f: &Fixture,
        inc: &Recipe,
        history: &[ExperimentRow],
        facts: BTreeMap<String, f64>,
        tried: &(dyn Fn(&Recipe) -> bool + Send + Sync),
        surrogate: Option<&crate::agent::Surrogate<'_>>,
    ) -> Proposal {
        let mut effective = BTreeMap::new();
        effective.insert("max_num_seqs".to_string(), json!(seqs(inc) as i64));
        let ctx = AgentContext {
            settings: &f.settings,
            playbook: &f.playbook,
            layer: Layer::Config,
            incumbent: inc,
            effective,
            facts,
            workload: &f.stats,
            history,
            is_tried: tried,
            legal: &|_| Ok(()),
            surrogate,
            gpu: None,
            spent_usd: 0.0,
        };
        propose(&ctx)
    }

    #[test]
    fn jumps_to_the_predicted_optimum_with_a_rationale() {
        let f = fixture();
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        // Only max_num_seqs has an effect in this surrogate; everything else is predicted 0.
        // The climb reaches the optimum (256) in one proposal, not one step at a time.
        let p = run(&f, &inc, &[], BTreeMap::new(), &|_| false);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(256)), "{p:?}");
        assert_eq!(p.changes.len(), 1, "{p:?}");
        assert!(
            p.rationale.contains("max_num_seqs: 1024 → 256"),
            "{}",
            p.rationale
        );
        assert!(
            p.rationale.contains("simulator predicts +"),
            "{}",
            p.rationale
        );
    }

    #[test]
    fn skips_tried_moves_and_converges_at_the_optimum() {
        let f = fixture();
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut ch = BTreeMap::new();
        ch.insert("max_num_seqs".to_string(), json!(256));
        let at_peak = base.mutate(Layer::Config, &ch);
        // Every knob already explored (no exploration bonus): pretend history touched them.
        let mut row = crate::tune::state::tests_support::row_with_changes(&at_peak);
        for k in f.playbook.space[&Layer::Config].keys() {
            row.changes.insert(k.clone(), json!(null));
        }
        // Before this run has measured anything, the simulator is not trusted to the last
        // percent: a move it rates flat is still worth a look.
        let p = run(
            &f,
            &at_peak,
            std::slice::from_ref(&row),
            BTreeMap::new(),
            &|_| false,
        );
        assert!(!p.changes.is_empty(), "{p:?}");
        assert!(
            p.rationale.contains("error in this run may be larger"),
            "{}",
            p.rationale
        );
        // Once four experiments measured what the simulator predicted, it has converged.
        let confirmed: Vec<ExperimentRow> = (0..4)
            .map(|i| {
                let mut r = row.clone();
                r.status = Status::Reverted;
                r.predicted_gain_pct = Some(-2.0 - i as f64);
                r.interval = Some(crate::record::Interval {
                    gain_pct: -2.0 - i as f64,
                    lo_pct: -2.5 - i as f64,
                    hi_pct: -1.5 - i as f64,
                    confidence: 0.95,
                    pairs: 2,
                });
                r
            })
            .collect();
        let p = run(&f, &at_peak, &confirmed, BTreeMap::new(), &|_| false);
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(p.rationale.starts_with("converged"), "{}", p.rationale);
        // From 1024, with the optimum tried (and not kept), the runner-up is next: 192
        // (the surrogate rates it above 384).
        let tried_256 = |r: &Recipe| r.config.get("max_num_seqs") == Some(&json!(256));
        let p = run(&f, &base, &[], BTreeMap::new(), &tried_256);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(192)), "{p:?}");
    }

    #[test]
    fn a_layer_converges_after_patience_measured_candidates_without_a_keep() {
        let f = fixture();
        let base = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mk = |status, layer| {
            let mut r = crate::tune::state::tests_support::row_with_changes(&base);
            r.status = status;
            r.layer = layer;
            r
        };
        let mut h = vec![mk(Status::Baseline, Layer::Config)];
        for st in [Status::Reverted, Status::Inconclusive, Status::Reverted] {
            h.push(mk(st, Layer::Config));
        }
        // Failures, refusals and other layers' rows do not count.
        h.push(mk(Status::Failed, Layer::Config));
        h.push(mk(Status::Duplicate, Layer::Config));
        h.push(mk(Status::Reverted, Layer::Quant));
        assert_eq!(unkept_streak(&h, Layer::Config), LAYER_PATIENCE - 1);
        let p = run(&f, &base, &h, BTreeMap::new(), &|_| false);
        assert!(!p.changes.is_empty(), "{p:?}");
        h.push(mk(Status::Inconclusive, Layer::Config));
        let p = run(&f, &base, &h, BTreeMap::new(), &|_| false);
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(
            p.rationale
                .starts_with("converged: the last 4 measured candidates in the config layer"),
            "{}",
            p.rationale
        );
        // A keep starts the count again.
        h.push(mk(Status::Kept, Layer::Config));
        assert_eq!(unkept_streak(&h, Layer::Config), 0);
    }

    #[test]
    fn firing_rules_add_weight_and_appear_in_the_rationale() {
        let f = fixture();
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut facts = BTreeMap::new();
        facts.insert("preemptions".to_string(), 12.0);
        // Without a surrogate the rules lead.
        let p = run_with(&f, &inc, &[], facts.clone(), &|_| false, None);
        assert!(
            p.rationale.contains("Playbook: Preemptions"),
            "{}",
            p.rationale
        );
        // With one, a rule only adds weight to moves the model predicts to help: here the
        // rule's max_num_seqs step down (predicted positive) carries it, its
        // gpu_memory_utilization step (predicted 0) does not.
        let flat_except_seqs = |r: &Recipe| peak(r);
        let p = run_with(&f, &inc, &[], facts, &|_| false, Some(&flat_except_seqs));
        assert!(p.changes.contains_key("max_num_seqs"), "{p:?}");
        assert!(!p.changes.contains_key("gpu_memory_utilization"), "{p:?}");
    }

    #[test]
    fn calibration_fits_measured_against_predicted() {
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut a = crate::tune::state::tests_support::row_with_changes(&inc);
        a.status = Status::Reverted;
        a.predicted_gain_pct = Some(10.0);
        a.interval = Some(crate::record::Interval {
            gain_pct: 5.0,
            lo_pct: 0.0,
            hi_pct: 10.0,
            confidence: 0.95,
            pairs: 2,
        });
        let mut b = a.clone();
        b.predicted_gain_pct = Some(4.0);
        b.interval = Some(crate::record::Interval {
            gain_pct: 2.0,
            lo_pct: 0.0,
            hi_pct: 4.0,
            confidence: 0.95,
            pairs: 2,
        });
        let (k, n) = calibration(&[a, b]);
        assert_eq!(n, 2);
        assert!((k - 0.5).abs() < 1e-12);
    }

    /// A measured row: predicted `p` %, measured `m` % with a 95 % interval of ± `half` %.
    fn measured(p: f64, m: f64, half: f64) -> ExperimentRow {
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut r = crate::tune::state::tests_support::row_with_changes(&inc);
        r.status = Status::Inconclusive;
        r.predicted_gain_pct = Some(p);
        r.interval = Some(crate::record::Interval {
            gain_pct: m,
            lo_pct: m - half,
            hi_pct: m + half,
            confidence: 0.95,
            pairs: 4,
        });
        r
    }

    #[test]
    fn model_error_starts_at_the_prior_and_follows_the_evidence() {
        // Nothing measured: the prior.
        assert!((model_error(&[], 1.0, 2.0) - 2.0).abs() < 1e-12);
        // Tight measurements that agree with the model shrink it.
        let agree: Vec<_> = (0..4)
            .map(|i| measured(f64::from(i), f64::from(i), 0.4))
            .collect();
        let e = model_error(&agree, 1.0, 2.0);
        assert!(e < 1.0, "{e}");
        // Tight measurements 8 % off raise it well above the prior.
        let off: Vec<_> = (0..3).map(|_| measured(10.0, 2.0, 0.4)).collect();
        let e = model_error(&off, 1.0, 2.0);
        assert!(e > 6.0, "{e}");
        // A large gain confirmed with a wide interval says little either way.
        let wide = [measured(100.0, 95.0, 20.0)];
        let e = model_error(&wide, 1.0, 2.0);
        assert!((1.8..=2.2).contains(&e), "{e}");
    }
}
