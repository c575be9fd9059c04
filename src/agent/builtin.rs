//! The built-in agent: no LLM, no network. Each step it takes every single-knob move around
//! the incumbent, drops the illegal and the already tried, predicts each with the surrogate
//! (the simulator), corrects the prediction with what this run has measured so far, adds
//! weight to the moves the playbook's rules ask for, and proposes the best one — with a
//! rationale that says which numbers and which rule chose it. When nothing is predicted to
//! clear half the keep threshold and no rule fires, it reports the layer converged.

use std::collections::BTreeMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::Value;

use super::space::{Move, matches_direction, neighbours};
use super::{Agent, AgentContext, Proposal};
use crate::playbook::Rule;
use crate::tune::row::{ExperimentRow, Status};

/// Bonus (in predicted %) for a move a firing playbook rule asks for.
const RULE_BONUS_PCT: f64 = 2.0;
/// Bonus (in %) for trying a knob this run has not measured yet.
const EXPLORE_BONUS_PCT: f64 = 0.5;

/// The built-in agent.
#[derive(Debug, Default)]
pub struct BuiltinAgent;

/// A scored move.
#[derive(Debug, Clone)]
struct Scored {
    mv: Move,
    predicted_pct: Option<f64>,
    calibrated_pct: f64,
    rule: Option<String>,
    total: f64,
}

impl Agent for BuiltinAgent {
    fn name(&self) -> String {
        "builtin".into()
    }

    fn propose<'a>(
        &'a mut self,
        ctx: &'a AgentContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Proposal>> {
        async move { Ok(propose(ctx)) }.boxed()
    }
}

/// Least-squares factor through the origin between predicted and measured gains of this
/// run's experiments (how far to trust the surrogate), clamped to [0.2, 1.5].
pub fn calibration(history: &[ExperimentRow]) -> (f64, usize) {
    let pairs: Vec<(f64, f64)> = history
        .iter()
        .filter(|r| {
            matches!(
                r.status,
                Status::Kept | Status::Reverted | Status::Inconclusive
            )
        })
        .filter_map(|r| Some((r.predicted_gain_pct?, r.interval?.gain_pct)))
        .filter(|(p, _)| p.abs() > 0.05)
        .collect();
    let sxx: f64 = pairs.iter().map(|(p, _)| p * p).sum();
    let sxy: f64 = pairs.iter().map(|(p, m)| p * m).sum();
    if pairs.len() < 2 || sxx <= 0.0 {
        return (1.0, pairs.len());
    }
    ((sxy / sxx).clamp(0.2, 1.5), pairs.len())
}

fn propose(ctx: &AgentContext<'_>) -> Proposal {
    let (k, n_cal) = calibration(ctx.history);
    let base_pred = ctx.surrogate.and_then(|s| s(ctx.incumbent));
    let firing: Vec<&Rule> = ctx
        .playbook
        .rules
        .iter()
        .filter(|r| r.when.holds(&ctx.facts))
        .collect();
    let mut scored: Vec<Scored> = neighbours(ctx.playbook, ctx.layer, &ctx.effective)
        .into_iter()
        .filter_map(|mv| score_move(ctx, mv, base_pred, k, &firing))
        .collect();
    scored.sort_by(|a, b| {
        b.total
            .total_cmp(&a.total)
            .then_with(|| a.mv.knob.cmp(&b.mv.knob))
    });
    let threshold = ctx.settings.min_improvement_pct * 0.5;
    match scored.into_iter().next() {
        Some(best) if best.total >= threshold => proposal(ctx, best, k, n_cal),
        Some(best) => Proposal::converged(
            ctx.layer,
            format!(
                "converged: the best remaining move ({} → {}) is predicted at {:+.1} %, below half the keep threshold ({:.1} %), and no playbook rule asks for it",
                best.mv.knob, best.mv.to, best.calibrated_pct, threshold
            ),
        ),
        None => Proposal::converged(
            ctx.layer,
            "converged: every legal move in this layer has been tried from the current best",
        ),
    }
}

fn score_move(
    ctx: &AgentContext<'_>,
    mv: Move,
    base_pred: Option<f64>,
    k: f64,
    firing: &[&Rule],
) -> Option<Scored> {
    let mut changes = BTreeMap::new();
    changes.insert(mv.knob.clone(), mv.to.clone());
    let cand = ctx.incumbent.mutate(ctx.layer, &changes);
    if cand.id == ctx.incumbent.id || (ctx.is_tried)(&cand) || (ctx.legal)(&cand).is_err() {
        return None;
    }
    let predicted_pct = match (ctx.surrogate, base_pred) {
        (Some(s), Some(b)) if b > 0.0 => s(&cand).map(|c| (c / b - 1.0) * 100.0),
        _ => None,
    };
    let calibrated_pct = predicted_pct.map_or(0.0, |p| p * k);
    let rule = firing
        .iter()
        .find(|r| {
            r.moves.iter().any(|(l, knob, d)| {
                *l == ctx.layer && *knob == mv.knob && matches_direction(&mv, d)
            })
        })
        .map(|r| r.why.clone());
    let explored = ctx.history.iter().any(|r| r.changes.contains_key(&mv.knob));
    // A knob this run already measured without a clear effect gets no rule weight: the
    // evidence beats the heuristic.
    let flat = knob_looks_flat(ctx.history, &mv.knob);
    let rule_bonus = if rule.is_some() && !flat {
        RULE_BONUS_PCT
    } else {
        0.0
    };
    // Exploration is for when there is no surrogate to predict with.
    let explore = if explored || predicted_pct.is_some() {
        0.0
    } else {
        EXPLORE_BONUS_PCT
    };
    let total = calibrated_pct + rule_bonus + explore;
    // Without a surrogate, only rule-backed or unexplored moves are worth a try.
    if predicted_pct.is_none() && rule.is_none() && explored {
        return None;
    }
    Some(Scored {
        mv,
        predicted_pct,
        calibrated_pct,
        rule,
        total,
    })
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

fn proposal(ctx: &AgentContext<'_>, best: Scored, k: f64, n_cal: usize) -> Proposal {
    let mut why = format!(
        "{}: {} → {}.",
        best.mv.knob,
        show(&best.mv.from),
        show(&best.mv.to)
    );
    if let Some(p) = best.predicted_pct {
        why.push_str(&format!(" The simulator predicts {p:+.1} %"));
        if n_cal >= 2 {
            why.push_str(&format!(
                " ({:+.1} % after calibrating ×{k:.2} on {n_cal} measured experiments)",
                best.calibrated_pct
            ));
        }
        why.push('.');
    }
    if let Some(r) = &best.rule {
        why.push_str(&format!(" Playbook: {r}"));
    }
    let mut changes = BTreeMap::new();
    changes.insert(best.mv.knob.clone(), best.mv.to.clone());
    Proposal {
        rationale: why,
        layer: ctx.layer,
        changes,
        expected_throughput_delta_pct: best.predicted_pct.map(|p| p * k),
        expected_accuracy_delta: None,
        cost_usd: 0.0,
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
    use crate::recipe::knobs::Layer;
    use crate::recipe::{EngineKind, Hardware, Recipe};
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
        settings: crate::tune::settings::TuneSettings,
        playbook: Playbook,
        stats: WorkloadStats,
    }

    fn fixture() -> Fixture {
        Fixture {
            settings: crate::tune::settings::test_settings(),
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
        let surrogate: &crate::agent::Surrogate<'_> = &peak;
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
            surrogate: Some(surrogate),
            gpu: None,
            spent_usd: 0.0,
        };
        propose(&ctx)
    }

    #[test]
    fn moves_toward_the_predicted_optimum_with_a_rationale() {
        let f = fixture();
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        // Only max_num_seqs has an effect in this surrogate; everything else is predicted 0.
        let p = run(&f, &inc, &[], BTreeMap::new(), &|_| false);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(512)), "{p:?}");
        assert!(
            p.rationale.contains("max_num_seqs: 1024 → 512"),
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
        let p = run(
            &f,
            &at_peak,
            std::slice::from_ref(&row),
            BTreeMap::new(),
            &|_| false,
        );
        assert!(p.changes.is_empty(), "{p:?}");
        assert!(p.rationale.starts_with("converged"));
        // From 1024, with 512 tried, the next best is 768.
        let tried_512 = |r: &Recipe| r.config.get("max_num_seqs") == Some(&json!(512));
        let p = run(&f, &base, &[], BTreeMap::new(), &tried_512);
        assert_eq!(p.changes.get("max_num_seqs"), Some(&json!(768)), "{p:?}");
    }

    #[test]
    fn firing_rules_add_weight_and_appear_in_the_rationale() {
        let f = fixture();
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut facts = BTreeMap::new();
        facts.insert("preemptions".to_string(), 12.0);
        let p = run(&f, &inc, &[], facts, &|_| false);
        assert!(
            p.rationale.contains("Playbook: Preemptions"),
            "{}",
            p.rationale
        );
    }

    #[test]
    fn calibration_fits_measured_against_predicted() {
        let inc = Recipe::baseline(EngineKind::Vllm, "m", Hardware::default());
        let mut a = crate::tune::state::tests_support::row_with_changes(&inc);
        a.status = Status::Reverted;
        a.predicted_gain_pct = Some(10.0);
        a.interval = Some(crate::tune::verdict::Interval {
            gain_pct: 5.0,
            lo_pct: 0.0,
            hi_pct: 10.0,
            confidence: 0.95,
            pairs: 2,
        });
        let mut b = a.clone();
        b.predicted_gain_pct = Some(4.0);
        b.interval = Some(crate::tune::verdict::Interval {
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
}
