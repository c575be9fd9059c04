//! A round's gap decision, as recorded: the target's current build against the
//! competitor, measured in interleaved pairs by [`super::rounds`] (which side goes first
//! alternates, so drift falls on both) and decided by `forge gap`'s rule ([`crate::compare::gap::decide_within`]: the contract's
//! 1 % threshold unless the campaign set another, 95 %, at least two pairs, rerun while the
//! interval straddles the threshold) — and stopped as soon as the target is shown not more
//! than the threshold behind, which is all the campaign acts on.

use serde::{Deserialize, Serialize};

use crate::compare::gap::{self, Gap};

/// The confidence of the decision.
pub const CONFIDENCE: f64 = 0.95;

/// A decided gap and the measurements behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The verdict.
    pub gap: Gap,
    /// (target, leader) per pair, in order.
    pub pairs: Vec<(f64, f64)>,
    /// The tie threshold it was decided with, %.
    #[serde(default = "contract_threshold")]
    pub threshold_pct: f64,
}

/// The contract's tie threshold, % (the default of a record written before thresholds).
pub(crate) fn contract_threshold() -> f64 {
    gap::THRESHOLD_PCT
}

impl Decision {
    /// Mean of each side over the pairs (target, leader).
    pub fn means(&self) -> (f64, f64) {
        let n = self.pairs.len().max(1) as f64;
        let t: f64 = self.pairs.iter().map(|p| p.0).sum();
        let l: f64 = self.pairs.iter().map(|p| p.1).sum();
        (t / n, l / n)
    }

    /// The verdict in words, with its threshold.
    pub fn describe(&self) -> String {
        match self.gap {
            Gap::Unresolved { interval: i } => format!(
                "{:+.1} % [{:+.1}, {:+.1}] % ({:.0} % confidence, {} pairs): neither inside \
                 ±{} % nor beyond it",
                i.gain_pct,
                i.lo_pct,
                i.hi_pct,
                i.confidence * 100.0,
                i.pairs,
                self.threshold_pct
            ),
            g => g.describe_within(self.threshold_pct),
        }
    }

    /// Whether the target has nothing left to close (ahead, or tied).
    pub fn closed(&self) -> bool {
        matches!(self.gap, Gap::Ahead { .. } | Gap::Tied { .. })
    }
}
