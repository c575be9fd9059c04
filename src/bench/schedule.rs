//! When each request is due: an absolute, open-loop schedule of intended send offsets.
//!
//! Rate timing follows `vllm bench serve`: gaps ~ Gamma(shape = b, scale = 1/(λ·b)) (b = 1
//! is Poisson), summed, then rescaled so the last arrival lands at N/λ; an infinite rate
//! sends everything at t = 0. Trace timing uses each request's `arrival_offset_s`. The
//! runner sleeps until `start + offset` (never relative sleeps), so lateness never
//! accumulates.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma};

use super::{LoadSpec, Timing};
use crate::workload::WorkloadRequest;

/// Intended send offset (seconds, server clock) of each request, in workload order.
pub fn intended_offsets(requests: &[WorkloadRequest], load: &LoadSpec) -> Vec<f64> {
    match load.timing {
        Timing::Trace => requests
            .iter()
            .map(|r| r.arrival_offset_s.unwrap_or(0.0))
            .collect(),
        Timing::Rate => rate_offsets(
            requests.len(),
            load.request_rate,
            load.burstiness,
            load.seed,
        ),
    }
}

/// Gamma arrivals for `n` requests at `rate` req/s (None or non-finite = all at 0).
pub fn rate_offsets(n: usize, rate: Option<f64>, burstiness: f64, seed: u64) -> Vec<f64> {
    let rate = match rate {
        Some(r) if r.is_finite() && r > 0.0 => r,
        _ => return vec![0.0; n],
    };
    let shape = if burstiness.is_finite() && burstiness > 0.0 {
        burstiness
    } else {
        1.0
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // Shape and scale are positive and finite here, so construction cannot fail.
    let gamma = match Gamma::new(shape, 1.0 / (rate * shape)) {
        Ok(g) => g,
        Err(_) => return vec![0.0; n],
    };
    let mut acc = 0.0;
    let mut out: Vec<f64> = (0..n)
        .map(|_| {
            acc += gamma.sample(&mut rng);
            acc
        })
        .collect();
    if let Some(&last) = out.last()
        && last > 0.0
    {
        let factor = (n as f64 / rate) / last;
        out.iter_mut().for_each(|x| *x *= factor);
    }
    out
}

/// Dispatch order: request indices sorted by intended time (stable for ties).
pub fn dispatch_order(offsets: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..offsets.len()).collect();
    idx.sort_by(|&a, &b| offsets[a].total_cmp(&offsets[b]));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gaps(v: &[f64]) -> Vec<f64> {
        let mut prev = 0.0;
        v.iter()
            .map(|&x| {
                let g = x - prev;
                prev = x;
                g
            })
            .collect()
    }

    fn mean_cv(g: &[f64]) -> (f64, f64) {
        let n = g.len() as f64;
        let m = g.iter().sum::<f64>() / n;
        let var = g.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        (m, var.sqrt() / m)
    }

    #[test]
    fn poisson_last_arrival_at_n_over_rate_and_cv_near_one() {
        let v = rate_offsets(20_000, Some(50.0), 1.0, 7);
        assert!((v.last().unwrap() - 400.0).abs() < 1e-6);
        assert!(v.windows(2).all(|w| w[1] >= w[0]));
        let (m, cv) = mean_cv(&gaps(&v));
        assert!((m - 0.02).abs() < 1e-4, "{m}");
        // Exponential gaps: coefficient of variation 1.
        assert!((cv - 1.0).abs() < 0.03, "{cv}");
    }

    #[test]
    fn burstiness_sets_gap_dispersion() {
        // Gamma(shape b): CV = 1/sqrt(b).
        let (_, cv_bursty) = mean_cv(&gaps(&rate_offsets(20_000, Some(10.0), 0.25, 1)));
        assert!((cv_bursty - 2.0).abs() < 0.1, "{cv_bursty}");
        let (_, cv_smooth) = mean_cv(&gaps(&rate_offsets(20_000, Some(10.0), 4.0, 1)));
        assert!((cv_smooth - 0.5).abs() < 0.02, "{cv_smooth}");
    }

    #[test]
    fn infinite_rate_and_determinism() {
        assert_eq!(rate_offsets(3, None, 1.0, 0), vec![0.0; 3]);
        assert_eq!(rate_offsets(3, Some(f64::INFINITY), 1.0, 0), vec![0.0; 3]);
        assert_eq!(
            rate_offsets(50, Some(3.0), 1.0, 9),
            rate_offsets(50, Some(3.0), 1.0, 9)
        );
        assert_ne!(
            rate_offsets(50, Some(3.0), 1.0, 9),
            rate_offsets(50, Some(3.0), 1.0, 10)
        );
    }

    #[test]
    fn dispatch_order_is_by_time_and_stable() {
        assert_eq!(dispatch_order(&[0.5, 0.0, 0.5, 0.1]), vec![1, 3, 0, 2]);
    }
}
