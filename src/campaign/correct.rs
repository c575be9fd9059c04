//! Is a patched engine still correct? Its answers (temperature 0) are compared with the
//! reference answers of the engine before the patch, request by request (agreement over
//! the first tokens, [`crate::tune::accuracy::agreement`]), and judged against the engine's
//! own run-to-run variation: a second run of the unpatched engine, compared the same way.
//!
//! - A deterministic engine (the second run agrees with the first on every request): any
//!   changed answer is a real change — incorrect.
//! - An engine whose greedy answers move with batching (llama.cpp's do): the per-request
//!   differences (patched agreement − rerun agreement) get a paired 95 % interval;
//!   incorrect when it lies wholly below zero (the patch disagrees with the reference more
//!   than the engine disagrees with itself, beyond noise). A single run of noise can never
//!   decide it: the interval needs at least [`MIN_REQUESTS`] requests to say "incorrect".

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::tune::accuracy::agreement;

/// Fewest requests the interval needs to call a noisy engine's answers incorrect.
pub const MIN_REQUESTS: usize = 4;

/// The verdict on a patched engine's answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Correct within the engine's own variation.
    pub correct: bool,
    /// Mean agreement of the patched engine with the reference.
    pub patched: f64,
    /// Mean agreement of the unpatched rerun with the reference.
    pub own: f64,
    /// The paired interval of (patched − own), when the engine is not deterministic.
    pub interval: Option<(f64, f64)>,
    /// Why, in a sentence (the ledger's reason).
    pub reason: String,
}

/// Judge `patched` answers against `reference`, given the unpatched `rerun`. Requests the
/// reference failed (empty answers) are no reference and are skipped.
pub fn judge(reference: &[String], rerun: &[String], patched: &[String]) -> Verdict {
    let pairs: Vec<(f64, f64)> = reference
        .iter()
        .zip(rerun)
        .zip(patched)
        .filter(|((r, _), _)| !r.is_empty())
        .map(|((r, o), p)| (agreement(p, r), agreement(o, r)))
        .collect();
    let n = pairs.len();
    let mean = |f: fn(&(f64, f64)) -> f64| {
        if n == 0 {
            1.0
        } else {
            pairs.iter().map(f).sum::<f64>() / n as f64
        }
    };
    let (patched_m, own_m) = (mean(|p| p.0), mean(|p| p.1));
    let deterministic = pairs.iter().all(|p| p.1 >= 1.0);
    if deterministic {
        let changed = pairs.iter().filter(|p| p.0 < 1.0).count();
        return Verdict {
            correct: changed == 0,
            patched: patched_m,
            own: own_m,
            interval: None,
            reason: if changed == 0 {
                format!("all {n} answers equal the reference (the engine repeats itself exactly)")
            } else {
                format!(
                    "{changed} of {n} answers differ from the reference, which the unpatched engine repeats exactly (agreement {:.3})",
                    patched_m
                )
            },
        };
    }
    let diffs: Vec<f64> = pairs.iter().map(|p| p.0 - p.1).collect();
    let (lo, hi) = paired_interval(&diffs);
    let correct = n < MIN_REQUESTS || hi >= 0.0;
    Verdict {
        correct,
        patched: patched_m,
        own: own_m,
        interval: Some((lo, hi)),
        reason: format!(
            "agreement with the reference {patched_m:.3} vs the unpatched engine's own {own_m:.3} over {n} requests; difference 95 % interval [{lo:+.3}, {hi:+.3}]{}",
            if hi >= 0.0 {
                ": within its own variation"
            } else if correct {
                ": below it, but too few requests to call it incorrect"
            } else {
                ": below it"
            }
        ),
    }
}

/// 95 % t-interval of the mean of `d`.
fn paired_interval(d: &[f64]) -> (f64, f64) {
    let n = d.len();
    if n < 2 {
        return (f64::NEG_INFINITY, f64::INFINITY);
    }
    let m = d.iter().sum::<f64>() / n as f64;
    let var = d.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1) as f64;
    let se = (var / n as f64).sqrt();
    let t = StudentsT::new(0.0, 1.0, (n - 1) as f64)
        .map(|t| t.inverse_cdf(0.975))
        .unwrap_or(1.96);
    (m - t * se, m + t * se)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_deterministic_engine_must_repeat_every_answer() {
        let r = answers(&[" the cat sat", " on the mat", " a b c", ""]);
        let ok = judge(&r, &r, &r);
        assert!(ok.correct, "{}", ok.reason);
        let one_off = answers(&[" the cat sat", " on the hat", " a b c", " anything"]);
        let v = judge(&r, &r, &one_off);
        assert!(!v.correct);
        assert!(v.reason.contains("1 of 3 answers differ"), "{}", v.reason);
    }

    #[test]
    fn a_noisy_engine_is_judged_against_its_own_variation() {
        let r = answers(&[
            " a b c d", " e f g h", " i j k l", " m n o p", " q r s t", " u v w x",
        ]);
        // The unpatched rerun moves a token here and there…
        let rerun = answers(&[
            " a b c x", " e f g h", " i j x l", " m n o p", " q r s t", " u v x x",
        ]);
        // …a patch moving about as much is correct,
        let same_noise = answers(&[
            " a b c d", " e f x h", " i j k l", " m n x p", " q r s t", " u v w y",
        ]);
        let v = judge(&r, &rerun, &same_noise);
        assert!(v.correct, "{}", v.reason);
        // one that garbles every answer is not.
        let garbled = answers(&[
            " z z z z", " z z z z", " z z z z", " z z z z", " z z z z", " z z z z",
        ]);
        let v = judge(&r, &rerun, &garbled);
        assert!(!v.correct, "{}", v.reason);
        let (lo, hi) = v.interval.unwrap();
        assert!(lo < hi && hi < 0.0);
        // Two requests of a noisy engine cannot tell a garbled patch from noise.
        let v = judge(&r[..2], &rerun[..2], &garbled[..2]);
        assert!(v.correct, "{}", v.reason);
    }
}
