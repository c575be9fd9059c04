//! Keep or revert, with a confidence interval you can check.
//!
//! A candidate is compared with the incumbent on *paired* runs, interleaved (I, C, I, C …)
//! so slow drift of the machine cancels. Each pair gives a log ratio d = ln(C/I). The
//! interval on the mean log ratio uses Student's t with a noise estimate pooled from every
//! pair measured so far in this run (same machine, same workload) plus a weak prior, so even
//! the first decision has a sane width and later ones get tight quickly. The decision rule:
//!
//! - keep when the whole interval lies above `+min_improvement_pct` (after at least two
//!   pairs);
//! - revert when the whole interval lies below it;
//! - otherwise measure another pair, up to the repeat budget; an interval still straddling
//!   the threshold then is reverted as *inconclusive* (the incumbent is never displaced
//!   without evidence).
//!
//! The original tool kept a candidate on one run each and a 1 % threshold; with 3 % machine
//! noise that keeps a no-better candidate about a third of the time (see `bench/`).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

pub use crate::record::Interval;

/// Prior belief about run-to-run noise of one log ratio (≈ 2 % per run → 3 % per pair).
const PRIOR_SIGMA: f64 = 0.03;
/// Weight of the prior, in degrees of freedom (one pseudo-pair: the data takes over fast).
const PRIOR_DF: f64 = 1.0;
/// Never assume less noise than this per pair (0.5 %), however quiet the run looked.
const MIN_SIGMA: f64 = 0.005;
/// The incumbent is never displaced on one pair: one lucky run pair is the commonest way a
/// no-better candidate gets kept (a revert may still come after one clear pair).
const MIN_PAIRS_TO_KEEP: usize = 2;

/// Running estimate of the noise of a log ratio, pooled over the run's decisions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoisePool {
    /// Σ of squared deviations from each decision's own mean.
    pub sum_sq: f64,
    /// Degrees of freedom those deviations carry.
    pub df: f64,
    /// Never assume less noise than this, however quiet the run looked.
    #[serde(default = "min_sigma")]
    pub min_sigma: f64,
}

fn min_sigma() -> f64 {
    MIN_SIGMA
}

impl Default for NoisePool {
    fn default() -> Self {
        NoisePool::with_prior(PRIOR_SIGMA, PRIOR_DF, MIN_SIGMA)
    }
}

impl NoisePool {
    /// A pool that starts from a prior belief of `sigma` worth `df` degrees of freedom,
    /// and never reports less than `min_sigma`.
    pub fn with_prior(sigma: f64, df: f64, min_sigma: f64) -> NoisePool {
        NoisePool {
            sum_sq: sigma * sigma * df,
            df,
            min_sigma,
        }
    }

    /// Pooled standard deviation of one pair's log ratio.
    pub fn sigma(&self) -> f64 {
        (self.sum_sq / self.df).sqrt().max(self.min_sigma)
    }

    /// Fold a finished decision's pairs into the pool.
    pub fn absorb(&mut self, log_ratios: &[f64]) {
        if log_ratios.len() < 2 {
            return;
        }
        let m = mean(log_ratios);
        self.sum_sq += log_ratios.iter().map(|d| (d - m).powi(2)).sum::<f64>();
        self.df += (log_ratios.len() - 1) as f64;
    }

    /// The pool with one more prior belief: `sigma` worth `df` degrees of freedom.
    pub fn plus_prior(&self, sigma: f64, df: f64) -> NoisePool {
        NoisePool {
            sum_sq: self.sum_sq + sigma * sigma * df,
            df: self.df + df,
            min_sigma: self.min_sigma,
        }
    }

    /// The pool as it would be with `log_ratios` (the decision in progress) included.
    pub fn with(&self, log_ratios: &[f64]) -> NoisePool {
        let mut p = *self;
        p.absorb(log_ratios);
        p
    }
}

/// Where a measured quantity stands against its bound, with confidence: the mean of its
/// log slacks (> 0 inside the bound) and the interval around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing {
    /// Mean log slack.
    pub mean: f64,
    /// Lower end of its interval.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Standing {
    /// Inside the bound with confidence.
    pub fn meets(&self) -> bool {
        self.lo > 0.0
    }

    /// Outside the bound with confidence.
    pub fn misses(&self) -> bool {
        self.hi < 0.0
    }
}

/// The standing of the mean of `slacks` (one per run, log ratios against a bound), its
/// interval from Student's t with the noise of `pool` (this decision's own spread
/// included): one run, or a few close to the bound, stand nowhere yet.
pub fn standing(slacks: &[f64], pool: &NoisePool, confidence: f64) -> Option<Standing> {
    if slacks.is_empty() {
        return None;
    }
    let p = pool.with(slacks);
    let se = p.sigma() / (slacks.len() as f64).sqrt();
    let half = t_quantile(0.5 + confidence / 2.0, p.df) * se;
    let m = mean(slacks);
    Some(Standing {
        mean: m,
        lo: m - half,
        hi: m + half,
    })
}

/// What to do after the pairs measured so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The gain clears the threshold with confidence.
    Keep,
    /// The gain is below the threshold with confidence.
    Revert,
    /// Still straddling and budget left: measure another pair.
    MeasureMore,
    /// Budget spent without a clear answer: revert.
    Inconclusive,
}

/// Parameters of the decision rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// Minimum gain worth keeping, %.
    pub min_improvement_pct: f64,
    /// Two-sided confidence level of the interval.
    pub confidence: f64,
    /// Most pairs measured for one decision.
    pub max_pairs: usize,
    /// Fewest pairs before any verdict (the end-of-run confirmation measures them all).
    pub min_pairs: usize,
}

impl Default for Rule {
    fn default() -> Self {
        Rule {
            min_improvement_pct: 1.0,
            confidence: 0.95,
            max_pairs: 4,
            min_pairs: 1,
        }
    }
}

/// Log ratio of one pair; `None` when either score is not a positive finite number.
pub fn log_ratio(candidate: f64, incumbent: f64) -> Option<f64> {
    (candidate > 0.0 && incumbent > 0.0 && candidate.is_finite() && incumbent.is_finite())
        .then(|| (candidate / incumbent).ln())
}

/// The interval for the pairs so far.
pub fn interval(log_ratios: &[f64], pool: &NoisePool, confidence: f64) -> Option<Interval> {
    if log_ratios.is_empty() {
        return None;
    }
    let n = log_ratios.len() as f64;
    let pooled = pool.with(log_ratios);
    let se = pooled.sigma() / n.sqrt();
    let t = t_quantile(0.5 + confidence / 2.0, pooled.df);
    let m = mean(log_ratios);
    let pct = |x: f64| (x.exp() - 1.0) * 100.0;
    Some(Interval {
        gain_pct: pct(m),
        lo_pct: pct(m - t * se),
        hi_pct: pct(m + t * se),
        confidence,
        pairs: log_ratios.len(),
    })
}

/// Apply the rule to the pairs measured so far.
pub fn decide(log_ratios: &[f64], pool: &NoisePool, rule: &Rule) -> (Decision, Option<Interval>) {
    let Some(iv) = interval(log_ratios, pool, rule.confidence) else {
        return (Decision::MeasureMore, None);
    };
    let n = log_ratios.len();
    let d = if n < rule.min_pairs {
        Decision::MeasureMore
    } else if iv.lo_pct > rule.min_improvement_pct && n >= MIN_PAIRS_TO_KEEP.min(rule.max_pairs) {
        Decision::Keep
    } else if iv.lo_pct > rule.min_improvement_pct {
        Decision::MeasureMore
    } else if iv.hi_pct < rule.min_improvement_pct {
        Decision::Revert
    } else if log_ratios.len() >= rule.max_pairs {
        Decision::Inconclusive
    } else {
        Decision::MeasureMore
    };
    (d, Some(iv))
}

/// The original tool's rule, for comparison: one run each, keep when C > I·(1 + thr).
pub fn original_rule(candidate: f64, incumbent: f64, min_improvement_pct: f64) -> bool {
    candidate > incumbent * (1.0 + min_improvement_pct / 100.0)
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn t_quantile(p: f64, df: f64) -> f64 {
    match StudentsT::new(0.0, 1.0, df.max(1.0)) {
        Ok(t) => t.inverse_cdf(p),
        // Only reachable for a non-finite df; fall back to the normal quantile at 95 %.
        Err(_) => 1.96,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_match_tables() {
        // t(0.975; 1) = 12.706, t(0.975; 10) = 2.228, t(0.975; 1000) ≈ 1.962
        assert!((t_quantile(0.975, 1.0) - 12.706).abs() < 1e-3);
        assert!((t_quantile(0.975, 10.0) - 2.228).abs() < 1e-3);
        assert!((t_quantile(0.975, 1000.0) - 1.962).abs() < 1e-3);
    }

    #[test]
    fn pool_starts_at_prior_and_learns() {
        let mut p = NoisePool::default();
        assert!((p.sigma() - PRIOR_SIGMA).abs() < 1e-12);
        // Quiet machine: pairs agree to 0.1 %.
        for _ in 0..20 {
            p.absorb(&[0.001, -0.001, 0.001, -0.001]);
        }
        assert!(p.sigma() < 0.01, "{}", p.sigma());
        assert!(p.sigma() >= MIN_SIGMA);
    }

    #[test]
    fn interval_by_hand() {
        // Pool with sigma exactly 2 % and huge df: interval ≈ mean ± 1.96·σ/√n.
        let pool = NoisePool {
            sum_sq: 0.02f64.powi(2) * 1e6,
            df: 1e6,
            min_sigma: MIN_SIGMA,
        };
        let d = [
            0.05f64.ln_1p(),
            0.05f64.ln_1p(),
            0.05f64.ln_1p(),
            0.05f64.ln_1p(),
        ];
        let iv = interval(&d, &pool, 0.95).unwrap();
        assert!((iv.gain_pct - 5.0).abs() < 1e-9);
        let half = 1.96 * 0.02 / 2.0;
        let lo = ((0.05f64.ln_1p() - half).exp() - 1.0) * 100.0;
        assert!((iv.lo_pct - lo).abs() < 0.01, "{} vs {lo}", iv.lo_pct);
        assert_eq!(iv.pairs, 4);
    }

    #[test]
    fn decisions() {
        let quiet = NoisePool {
            sum_sq: 0.005f64.powi(2) * 100.0,
            df: 100.0,
            min_sigma: MIN_SIGMA,
        };
        let rule = Rule::default();
        // Clear 10 % gain on a quiet machine: still a second pair before keeping...
        assert_eq!(
            decide(&[0.1f64.ln_1p()], &quiet, &rule).0,
            Decision::MeasureMore
        );
        assert_eq!(
            decide(&[0.1f64.ln_1p(), 0.1f64.ln_1p()], &quiet, &rule).0,
            Decision::Keep
        );
        // ...but a clear 10 % loss is reverted after one.
        assert_eq!(
            decide(&[(-0.1f64).ln_1p()], &quiet, &rule).0,
            Decision::Revert
        );
        // 1 % gain right on the threshold: measure more, then inconclusive at budget.
        let d = [0.01f64.ln_1p()];
        assert_eq!(decide(&d, &quiet, &rule).0, Decision::MeasureMore);
        let d4 = [0.01f64.ln_1p(); 4];
        assert_eq!(decide(&d4, &quiet, &rule).0, Decision::Inconclusive);
        // With the default (noisy) prior a single +5 % pair is not enough.
        let noisy = NoisePool::default();
        assert_eq!(
            decide(&[0.05f64.ln_1p()], &noisy, &rule).0,
            Decision::MeasureMore
        );
    }

    #[test]
    fn original_rule_is_one_sided_threshold() {
        assert!(original_rule(102.0, 100.0, 1.0));
        assert!(!original_rule(100.5, 100.0, 1.0));
        assert_eq!(log_ratio(0.0, 1.0), None);
        assert!((log_ratio(2.0, 1.0).unwrap() - 2f64.ln()).abs() < 1e-12);
    }
}
