//! The verdict on a comparison from every pair measured so far. Three measured quantities
//! decide, each with its own run-to-run noise and never on one run:
//!
//! - **the SLA**: each run's slack (ln bound ÷ actual over the p99 bounds and the failed
//!   share, `score::sla_slack`); each side's mean slack gets an interval (Student's t, the
//!   run's pooled slack noise), so a side *meets*, *misses* or is *unsure*;
//! - **accuracy**: the candidate's against the incumbent's in the same pairs (ln of their
//!   ratio, plus the incumbent's own level against the baseline), so the engine's own
//!   run-to-run agreement sets the width and the incumbent is never held to a floor it was
//!   already accepted at; only a candidate confidently below the floor is refused;
//! - **the objective**: the paired log-ratio interval against the keep threshold
//!   (`verdict::decide`), as before.
//!
//! The rule, after each pair:
//! 1. a candidate confidently below the accuracy floor is reverted; none is kept while its
//!    accuracy's point estimate is below the floor, and one that changes numerics by
//!    design (quantization, kernels) only once its accuracy is at the floor with
//!    confidence;
//! 2. when the incumbent confidently misses the SLA and the candidate does not confidently
//!    meet it, the two compare by how far they are from it (`score::comparable`), so
//!    progress toward an SLA the defaults miss counts; otherwise a candidate that
//!    confidently misses the SLA is reverted;
//! 3. a candidate that confidently meets the SLA the incumbent confidently misses is kept
//!    (a real, repeated repair: at least two pairs), whatever its objective costs — the note
//!    says what;
//! 4. otherwise the objective decides; a keep needs the candidate to meet the SLA with
//!    confidence, and a revert waits while the incumbent might be missing it.
//!
//! Anything still undecided when the pairs run out is inconclusive (reverted).

use super::score;
use super::verdict::{self, Decision, Interval, NoisePool, Rule, Standing, standing};
use crate::record::Measurement;
use crate::record::settings::TuneSettings;

/// Prior noise of one run's SLA slack (5 %), worth one run; never below 0.5 %.
const SLA_PRIOR: (f64, f64, f64) = (0.05, 1.0, 0.005);
/// Prior noise of one pair's accuracy log-ratio (1 %), worth one pair; never below 0.2 %.
const ACCURACY_PRIOR: (f64, f64, f64) = (0.01, 1.0, 0.002);
/// Accuracies below this are read as this (a log of zero says nothing more).
const MIN_ACCURACY: f64 = 1e-3;

/// The run's noise estimates, each pooled over its decisions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pools {
    /// Of one pair's objective log ratio.
    pub objective: NoisePool,
    /// Of one run's SLA slack around its side's mean.
    pub sla: NoisePool,
    /// Of one pair's accuracy log ratio.
    pub accuracy: NoisePool,
}

impl Default for Pools {
    fn default() -> Self {
        let p = |(s, df, min): (f64, f64, f64)| NoisePool::with_prior(s, df, min);
        Pools {
            objective: NoisePool::default(),
            sla: p(SLA_PRIOR),
            accuracy: p(ACCURACY_PRIOR),
        }
    }
}

impl Pools {
    /// Fold a finished decision's pairs `(candidate, incumbent)` and its objective log
    /// ratios into the pools.
    pub fn absorb(&mut self, pairs: &[(Measurement, Measurement)], log_ratios: &[f64]) {
        self.objective.absorb(log_ratios);
        let slacks = |f: fn(&(Measurement, Measurement)) -> &Measurement| -> Vec<f64> {
            pairs.iter().filter_map(|p| f(p).sla_slack).collect()
        };
        self.sla.absorb(&slacks(|p| &p.0));
        self.sla.absorb(&slacks(|p| &p.1));
        self.accuracy.absorb(&accuracy_ratios(pairs));
    }
}

/// What a comparison is judged by.
pub struct Judge<'a> {
    /// Run settings (objective, SLA, accuracy floor).
    pub settings: &'a TuneSettings,
    /// The run's pooled noise.
    pub pools: &'a Pools,
    /// The incumbent's accuracy relative to the baseline (1 for the baseline itself).
    pub incumbent_accuracy: f64,
    /// How much the engine's answers vary run to run at the baseline (1 − its agreement
    /// with itself): a prior on the accuracy noise.
    pub accuracy_noise: f64,
    /// The candidate changes numerics by design (its quantization or kernels differ from
    /// the incumbent's): its accuracy must be shown at the floor, not only not shown below.
    pub numerics_change: bool,
    /// The decision rule.
    pub rule: Rule,
}

/// The verdict after the pairs so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Keep, revert, or measure more.
    pub decision: Decision,
    /// The objective's gain interval.
    pub interval: Option<Interval>,
    /// The pairs' log ratios that interval rests on.
    pub log_ratios: Vec<f64>,
    /// Why the SLA or accuracy decided, when they did.
    pub note: Option<String>,
}

/// Judge the pairs `(candidate, incumbent)` measured so far. Undecided at the rule's
/// `max_pairs` is inconclusive — except when the objective is clear and only the SLA or
/// accuracy still straddles its bound: those get up to twice the pairs, since more runs
/// are what settles a quantity near its bound.
pub fn judge(pairs: &[(Measurement, Measurement)], j: &Judge<'_>) -> Verdict {
    let (mut v, gated) = rules(pairs, j);
    let limit = j.rule.max_pairs * if gated { 2 } else { 1 };
    if v.decision == Decision::MeasureMore && pairs.len() >= limit {
        v.decision = Decision::Inconclusive;
    }
    v
}

/// Most pairs a comparison under `rule` may take (see [`judge`]).
pub fn max_pairs(rule: &Rule) -> usize {
    2 * rule.max_pairs
}

/// The rules; also whether a clear objective verdict was held back by the SLA or
/// accuracy gate.
fn rules(pairs: &[(Measurement, Measurement)], j: &Judge<'_>) -> (Verdict, bool) {
    let s = j.settings;
    let raw = log_ratios(pairs, score::ordered_value);
    let (objective, interval) = verdict::decide(&raw, &j.pools.objective, &j.rule);
    let mut v = Verdict {
        decision: objective,
        interval,
        log_ratios: raw,
        note: None,
    };
    if pairs.len() < j.rule.min_pairs {
        v.decision = Decision::MeasureMore;
        return (v, false);
    }
    let accuracy = accuracy_standing(pairs, j);
    if let Some(a) = accuracy
        && a.misses()
    {
        return (refuse(v, accuracy_note(&a, s)), false);
    }
    let objective = v.decision;
    let v = sla_rule(pairs, j, v);
    let clear = matches!(objective, Decision::Keep | Decision::Revert);
    // A keep needs the candidate's accuracy at the floor or above — by its point estimate
    // for a change that should not move numerics, with confidence for one that does (a
    // confident miss was refused above); until then, more pairs.
    let short = |a: &Standing| a.mean < 0.0 || (j.numerics_change && !a.meets());
    match (v.decision, accuracy) {
        (Decision::Keep, Some(a)) if short(&a) => (
            Verdict {
                decision: Decision::MeasureMore,
                ..v
            },
            true,
        ),
        (Decision::MeasureMore, _) => (v, clear),
        _ => (v, false),
    }
}

/// Rules 2–4: the SLA's standing on each side, then the objective.
fn sla_rule(pairs: &[(Measurement, Measurement)], j: &Judge<'_>, mut v: Verdict) -> Verdict {
    let s = j.settings;
    let side = |f: fn(&(Measurement, Measurement)) -> &Measurement| -> Option<Standing> {
        let xs: Vec<f64> = pairs.iter().map(|p| score::sla_slack(f(p), s)).collect();
        standing(&xs, &j.pools.sla, j.rule.confidence)
    };
    let (c, i) = (side(|p| &p.0), side(|p| &p.1));
    let (c_meets, c_misses) = (c.is_some_and(|x| x.meets()), c.is_some_and(|x| x.misses()));
    let (i_meets, i_misses) = (i.is_some_and(|x| x.meets()), i.is_some_and(|x| x.misses()));
    if i_misses && !c_meets {
        return toward_sla(pairs, j, v);
    }
    if c_misses {
        return refuse(v, sla_note("candidate misses the SLA", pairs, |p| &p.0, s));
    }
    if c_meets && i_misses {
        return repair(pairs, j, v);
    }
    v.decision = match (v.decision, c_meets, i_meets) {
        (Decision::Keep, false, _) => Decision::MeasureMore,
        (Decision::Revert, _, false) if c_meets => Decision::MeasureMore,
        (d, _, _) => d,
    };
    v
}

fn refuse(mut v: Verdict, note: String) -> Verdict {
    v.decision = Decision::Revert;
    v.note = Some(note);
    v
}

/// The incumbent confidently misses the SLA and the candidate does not confidently meet
/// it: the one closer to it is better (progress toward an SLA the defaults miss counts).
fn toward_sla(pairs: &[(Measurement, Measurement)], j: &Judge<'_>, v: Verdict) -> Verdict {
    let graded = log_ratios(pairs, |m| score::comparable(m, j.settings));
    let (decision, interval) = verdict::decide(&graded, &j.pools.objective, &j.rule);
    let note = format!(
        "the incumbent misses the SLA ({}); compared by how far each is from it",
        violations(pairs, |p| &p.1, j.settings)
    );
    Verdict {
        decision,
        interval,
        log_ratios: graded,
        note: Some(note)
            .filter(|_| decision != Decision::MeasureMore)
            .or(v.note),
    }
}

/// The candidate confidently meets the SLA the incumbent confidently misses.
fn repair(pairs: &[(Measurement, Measurement)], j: &Judge<'_>, mut v: Verdict) -> Verdict {
    if pairs.len() < 2 {
        v.decision = Decision::MeasureMore;
        return v;
    }
    let cost = v.interval.map_or(String::new(), |iv| {
        format!(
            "; objective {:+.1} % [{:+.1}, {:+.1}]",
            iv.gain_pct, iv.lo_pct, iv.hi_pct
        )
    });
    v.decision = Decision::Keep;
    v.note = Some(format!(
        "candidate meets the SLA the incumbent misses ({}) in {} pairs{cost}",
        violations(pairs, |p| &p.1, j.settings),
        pairs.len()
    ));
    v
}

fn log_ratios(pairs: &[(Measurement, Measurement)], f: impl Fn(&Measurement) -> f64) -> Vec<f64> {
    pairs
        .iter()
        .filter_map(|(c, i)| verdict::log_ratio(f(c), f(i)))
        .collect()
}

/// ln(candidate accuracy ÷ incumbent accuracy) per pair where both were measured.
fn accuracy_ratios(pairs: &[(Measurement, Measurement)]) -> Vec<f64> {
    pairs
        .iter()
        .filter_map(|(c, i)| {
            let (a, b) = (c.accuracy?, i.accuracy?);
            Some((a.max(MIN_ACCURACY) / b.max(MIN_ACCURACY)).ln())
        })
        .collect()
}

/// The candidate's accuracy against the floor: its paired ratio to the incumbent's, times
/// the incumbent's own level, over the floor (> 0 inside).
fn accuracy_standing(pairs: &[(Measurement, Measurement)], j: &Judge<'_>) -> Option<Standing> {
    let floor = j.settings.accuracy_floor;
    if floor <= 0.0 {
        return None;
    }
    let shift = j.incumbent_accuracy.max(MIN_ACCURACY).ln() - floor.ln();
    let xs: Vec<f64> = accuracy_ratios(pairs).iter().map(|r| r + shift).collect();
    let prior = j.accuracy_noise.max(ACCURACY_PRIOR.2);
    let pool = j.pools.accuracy.plus_prior(prior, 1.0);
    standing(&xs, &pool, j.rule.confidence)
}

fn accuracy_note(a: &Standing, s: &TuneSettings) -> String {
    let pct = |x: f64| x.exp() * s.accuracy_floor;
    format!(
        "candidate's accuracy is below the floor {:.3}: {:.3} [{:.3}, {:.3}] of the baseline's, judged against the incumbent's in the same pairs",
        s.accuracy_floor,
        pct(a.mean),
        pct(a.lo),
        pct(a.hi)
    )
}

fn sla_note(
    what: &str,
    pairs: &[(Measurement, Measurement)],
    side: fn(&(Measurement, Measurement)) -> &Measurement,
    s: &TuneSettings,
) -> String {
    format!("{what}: {}", violations(pairs, side, s))
}

/// The bounds one side missed, and in how many of its runs.
fn violations(
    pairs: &[(Measurement, Measurement)],
    side: fn(&(Measurement, Measurement)) -> &Measurement,
    s: &TuneSettings,
) -> String {
    // Accuracy is judged on its own, against the incumbent's.
    let missed: Vec<Vec<String>> = pairs
        .iter()
        .map(|p| {
            let mut v = score::sla_violations(side(p), s);
            v.retain(|x| !x.starts_with("accuracy"));
            v
        })
        .filter(|v| !v.is_empty())
        .collect();
    let worst = missed.first().map(|v| v.join("; ")).unwrap_or_default();
    format!("{worst}; in {} of {} runs", missed.len(), pairs.len())
}

#[cfg(test)]
#[path = "judge_tests.rs"]
mod tests;
