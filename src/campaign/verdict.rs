//! Keep, regressed or inconclusive: a patched build against the build it was applied on,
//! from paired, interleaved measurements (each pair: one run of each, back to back, in
//! alternating order), decided by the same interval rule as `forge tune`'s verdicts
//! ([`crate::tune::verdict::decide`], noise pooled over the campaign): kept when the
//! interval's low end clears the 1 % bar (the campaign's noise threshold), regressed when
//! its high end is below zero, inconclusive when it straddles after the pair budget or
//! lies between (better than nothing, not by the bar).

use super::ledger::{Event, Gain, Ledger, Outcome};
use crate::tune::verdict::{Decision, NoisePool, Rule, decide, log_ratio};

/// The campaign's rule: 1 % bar, 95 %, 2 to 6 pairs.
pub fn rule() -> Rule {
    Rule {
        min_improvement_pct: 1.0,
        confidence: 0.95,
        max_pairs: 6,
        min_pairs: 2,
    }
}

/// What the pairs so far say.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Measure another pair.
    MeasureMore,
    /// Decided.
    Done {
        /// `kept`, `regressed` or `inconclusive`.
        outcome: Outcome,
        /// The gain and its interval.
        gain: Gain,
        /// Why, for the ledger.
        reason: String,
    },
}

/// The log ratios of `pairs` of (patched, current) throughputs (a failed side is no pair).
pub fn ratios(pairs: &[(f64, f64)]) -> Vec<f64> {
    pairs
        .iter()
        .filter_map(|(p, c)| log_ratio(*p, *c))
        .collect()
}

/// Judge `pairs` of (patched, current) throughputs (higher is better).
pub fn judge(pairs: &[(f64, f64)], pool: &NoisePool, rule: &Rule) -> Next {
    let (d, iv) = decide(&ratios(pairs), pool, rule);
    let Some(iv) = iv else {
        return Next::MeasureMore;
    };
    let gain = Gain {
        pct: iv.gain_pct,
        lo: iv.lo_pct,
        hi: iv.hi_pct,
    };
    let said = format!(
        "{:+.1}% [{:+.1}, {:+.1}] over {} interleaved pairs",
        iv.gain_pct, iv.lo_pct, iv.hi_pct, iv.pairs
    );
    let (outcome, why) = match d {
        Decision::MeasureMore => return Next::MeasureMore,
        Decision::Keep => (Outcome::Kept, format!("faster: {said}")),
        Decision::Revert if iv.hi_pct < 0.0 => (Outcome::Regressed, format!("slower: {said}")),
        Decision::Revert => (
            Outcome::Inconclusive,
            format!("not faster by the 1 % bar: {said}"),
        ),
        Decision::Inconclusive => (
            Outcome::Inconclusive,
            format!("undecided after the pair budget: {said}"),
        ),
    };
    Next::Done {
        outcome,
        gain,
        reason: why,
    }
}

/// The noise of this machine's paired measurements so far (every gap decision and every
/// attempt), as a resumed campaign must go on judging with it.
pub fn noise_pool(ledger: &Ledger) -> NoisePool {
    let mut pool = NoisePool::default();
    for e in &ledger.events {
        match e {
            Event::RoundStarted {
                decision: Some(d), ..
            } => pool.absorb(&ratios(&d.pairs)),
            Event::Attempt(a) => pool.absorb(&ratios(&a.pairs)),
            _ => {}
        }
    }
    pool
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ratio: f64, jitter: f64) -> Next {
        let pool = NoisePool::default();
        let mut pairs = Vec::new();
        for k in 0..rule().max_pairs {
            let wobble = if k % 2 == 0 {
                1.0 + jitter
            } else {
                1.0 - jitter
            };
            pairs.push((100.0 * ratio * wobble, 100.0));
            if let Next::Done { .. } = judge(&pairs, &pool, &rule()) {
                break;
            }
        }
        judge(&pairs, &pool, &rule())
    }

    #[test]
    fn clear_gains_are_kept_clear_losses_regressed_noise_inconclusive() {
        let Next::Done { outcome, gain, .. } = run(1.30, 0.01) else {
            panic!("undecided")
        };
        assert_eq!(outcome, Outcome::Kept);
        assert!(gain.lo > 1.0 && gain.pct > 25.0, "{gain:?}");
        let Next::Done { outcome, .. } = run(0.80, 0.01) else {
            panic!("undecided")
        };
        assert_eq!(outcome, Outcome::Regressed);
        let Next::Done {
            outcome, reason, ..
        } = run(1.0, 0.04)
        else {
            panic!("undecided")
        };
        assert_eq!(outcome, Outcome::Inconclusive, "{reason}");
        // One pair is never a verdict.
        assert_eq!(
            judge(&[(200.0, 100.0)], &NoisePool::default(), &rule()),
            Next::MeasureMore
        );
    }
}
