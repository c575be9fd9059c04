//! The gap decision (`forge gap`, and the campaign's stop rule): the target framework's
//! best against the best SLA-passing rival, per scenario, from paired interleaved
//! measurements of the two winners — never from one run each.
//!
//! Each pair gives d = ln(target / leader) of the gate's score; the interval on the mean is
//! the keep/revert verdict's ([`crate::tune::verdict::interval`], noise pooled over the
//! pairs with the same weak prior). 1 % is the contract's noise threshold:
//! - the whole interval above +1 % → **ahead**; below −1 % → **behind by X %**;
//! - the whole interval inside ±1 % → **tied within 1 %**;
//! - otherwise measure another pair, up to the repeat budget, and then say so: the
//!   interval straddles the threshold (**unresolved**), which is not a tie.
//!
//! Where only one side meets the SLA there is nothing to measure: the other **fails the
//! SLA**.

use serde::{Deserialize, Serialize};

use crate::record::Interval;
use crate::tune::verdict::{NoisePool, interval};

/// The contract's noise threshold, %.
pub const THRESHOLD_PCT: f64 = 1.0;

/// Where the target stands against the best rival in one scenario.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Gap {
    /// Ahead by more than the threshold, with confidence.
    Ahead {
        /// The target/leader ratio's interval (gain = how far ahead).
        interval: Interval,
    },
    /// Both inside ±threshold, with confidence.
    Tied {
        /// The interval, inside ±1 %.
        interval: Interval,
    },
    /// Behind by more than the threshold, with confidence.
    Behind {
        /// The interval (gain < 0: how far behind).
        interval: Interval,
    },
    /// The repeat budget ended with the interval straddling ±threshold.
    Unresolved {
        /// The interval after the last pair.
        interval: Interval,
    },
    /// The target has no SLA-passing candidate; a rival has.
    TargetFailsSla,
    /// The target meets the SLA and no rival does.
    OnlyTargetPasses,
    /// Neither the target nor any rival meets the SLA.
    NobodyPasses,
}

impl Gap {
    /// The process exit status `forge gap` ends with: 0 ahead or tied (nothing to do),
    /// 10 behind, 11 the target fails the SLA where a rival passes, 12 unresolved, 13
    /// nobody meets the SLA.
    pub fn exit_code(&self) -> u8 {
        match self {
            Gap::Ahead { .. } | Gap::Tied { .. } | Gap::OnlyTargetPasses => 0,
            Gap::Behind { .. } => 10,
            Gap::TargetFailsSla => 11,
            Gap::Unresolved { .. } => 12,
            Gap::NobodyPasses => 13,
        }
    }

    /// One line for a person: "behind by 4.2 % [2.9, 5.4] (95 %, 6 pairs)".
    pub fn describe(&self) -> String {
        self.describe_within(THRESHOLD_PCT)
    }

    /// [`Gap::describe`] for a decision made with another tie threshold.
    pub fn describe_within(&self, threshold_pct: f64) -> String {
        let t = threshold_pct;
        let iv = |i: &Interval| {
            format!(
                "[{:+.1}, {:+.1}] % ({:.0} % confidence, {} pairs)",
                i.lo_pct,
                i.hi_pct,
                i.confidence * 100.0,
                i.pairs
            )
        };
        match self {
            Gap::Ahead { interval: i } => format!("ahead by {:.1} % {}", i.gain_pct, iv(i)),
            Gap::Tied { interval: i } => format!("tied within {t} % {}", iv(i)),
            Gap::Behind { interval: i } => format!("behind by {:.1} % {}", -i.gain_pct, iv(i)),
            Gap::Unresolved { interval: i } => format!(
                "unresolved: {:+.1} % {} straddles ±{t} % after the repeat budget",
                i.gain_pct,
                iv(i)
            ),
            Gap::TargetFailsSla => "fails the SLA where another framework passes".into(),
            Gap::OnlyTargetPasses => "ahead: the only framework that meets the SLA".into(),
            Gap::NobodyPasses => "no framework meets the SLA".into(),
        }
    }
}

/// What to do after the pairs measured so far.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// The gap is decided.
    Done(Gap),
    /// The interval straddles a threshold and budget is left: measure another pair.
    MeasureMore(Option<Interval>),
}

/// Decide from the pairs' log ratios (d = ln(target/leader)), at `confidence`, with at
/// most `max_pairs` pairs. Never decides on fewer than two pairs.
pub fn decide(log_ratios: &[f64], pool: &NoisePool, confidence: f64, max_pairs: usize) -> Step {
    decide_within(log_ratios, pool, confidence, max_pairs, THRESHOLD_PCT)
}

/// [`decide`] with another tie threshold than the contract's 1 % (`forge campaign
/// --tie-threshold`, for a machine whose own noise cannot resolve 1 %).
pub fn decide_within(
    log_ratios: &[f64],
    pool: &NoisePool,
    confidence: f64,
    max_pairs: usize,
    threshold_pct: f64,
) -> Step {
    let Some(iv) = interval(log_ratios, pool, confidence) else {
        return Step::MeasureMore(None);
    };
    let t = threshold_pct;
    let enough = log_ratios.len() >= 2;
    let decided = if !enough {
        None
    } else if iv.lo_pct > t {
        Some(Gap::Ahead { interval: iv })
    } else if iv.hi_pct < -t {
        Some(Gap::Behind { interval: iv })
    } else if iv.lo_pct >= -t && iv.hi_pct <= t {
        Some(Gap::Tied { interval: iv })
    } else {
        None
    };
    match decided {
        Some(g) => Step::Done(g),
        None if log_ratios.len() >= max_pairs => Step::Done(Gap::Unresolved { interval: iv }),
        None => Step::MeasureMore(Some(iv)),
    }
}

/// The gap when at most one side meets the SLA (nothing to measure in pairs); `None` when
/// both do and pairs must decide.
pub fn by_sla(target_passes: bool, rival_passes: bool) -> Option<Gap> {
    match (target_passes, rival_passes) {
        (true, true) => None,
        (true, false) => Some(Gap::OnlyTargetPasses),
        (false, true) => Some(Gap::TargetFailsSla),
        (false, false) => Some(Gap::NobodyPasses),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pairs of a true ratio with ±`noise` spread (deterministic).
    fn pairs(ratio: f64, noise: f64, n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| ratio.ln() + noise * if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect()
    }

    /// Measure pairs until the decision is made.
    fn settle(ratio: f64, noise: f64, max_pairs: usize) -> Gap {
        let pool = NoisePool::with_prior(0.005, 1.0, 0.001);
        for n in 1..=max_pairs {
            if let Step::Done(g) = decide(&pairs(ratio, noise, n), &pool, 0.95, max_pairs) {
                return g;
            }
        }
        panic!("no decision within the budget");
    }

    #[test]
    fn ahead_behind_and_tied_with_their_intervals() {
        let Gap::Ahead { interval } = settle(1.08, 0.005, 8) else {
            panic!()
        };
        assert!(interval.lo_pct > 1.0 && (interval.gain_pct - 8.0).abs() < 0.5);
        let g = settle(0.95, 0.005, 8);
        let Gap::Behind { interval } = g else {
            panic!("{g:?}")
        };
        assert!(interval.hi_pct < -1.0);
        assert!(
            g.describe().starts_with("behind by 5.0 %"),
            "{}",
            g.describe()
        );
        assert_eq!(g.exit_code(), 10);
        let g = settle(1.002, 0.001, 8);
        assert!(matches!(g, Gap::Tied { .. }), "{g:?}");
        assert_eq!(g.exit_code(), 0);
    }

    #[test]
    fn noise_alone_rarely_declares_a_winner() {
        // Equal frameworks, 3 % noise per pair (uniform, σ ≈ 3 %): sequential looks at
        // 95 % must still call "ahead" or "behind" in at most 5 % of 400 gap decisions.
        let mut wrong = 0;
        for seed in 0..400u64 {
            let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut d = Vec::new();
            let pool = NoisePool::default();
            let g = loop {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d.push(((x % 10_001) as f64 / 5_000.0 - 1.0) * 0.052);
                if let Step::Done(g) = decide(&d, &pool, 0.95, 8) {
                    break g;
                }
            };
            wrong += matches!(g, Gap::Ahead { .. } | Gap::Behind { .. }) as usize;
        }
        assert!(wrong <= 20, "{wrong} of 400 decided by noise");
    }

    #[test]
    fn a_straddling_interval_is_unresolved_not_tied() {
        // 1.5 % ahead with 2 % noise per pair: the interval keeps straddling +1 %.
        let g = settle(1.015, 0.02, 4);
        assert!(matches!(g, Gap::Unresolved { .. }), "{g:?}");
        assert_eq!(g.exit_code(), 12);
        assert!(g.describe().contains("straddles"));
    }

    #[test]
    fn one_pair_never_decides() {
        let pool = NoisePool::with_prior(0.005, 1.0, 0.001);
        assert!(matches!(
            decide(&[0.5f64.ln()], &pool, 0.95, 8),
            Step::MeasureMore(Some(_))
        ));
    }

    #[test]
    fn sla_failures_need_no_pairs() {
        assert_eq!(by_sla(false, true), Some(Gap::TargetFailsSla));
        assert_eq!(by_sla(true, false), Some(Gap::OnlyTargetPasses));
        assert_eq!(by_sla(false, false), Some(Gap::NobodyPasses));
        assert_eq!(by_sla(true, true), None);
        assert_eq!(Gap::TargetFailsSla.exit_code(), 11);
        assert_eq!(Gap::NobodyPasses.exit_code(), 13);
    }

    #[test]
    fn the_verdict_round_trips_as_json() {
        let g = settle(0.95, 0.005, 8);
        let s = serde_json::to_string(&g).unwrap();
        assert!(s.starts_with("{\"verdict\":\"behind\""), "{s}");
        assert_eq!(serde_json::from_str::<Gap>(&s).unwrap(), g);
    }
}
