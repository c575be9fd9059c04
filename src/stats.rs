//! Percentiles and medians, one implementation for every report, metric and decision:
//! numpy's default linear interpolation between closest ranks (rank = p/100·(n−1)), so a
//! forge figure and the same figure computed with numpy from the same samples agree.

/// The `p`-th percentile (0..=100) of `sorted` (ascending), linearly interpolated as numpy
/// does. `None` for an empty sample.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0).clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = rank - lo as f64;
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * frac)
}

/// The median of `values` in any order (NaNs sort last). `None` for an empty sample.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut s = values.to_vec();
    s.sort_by(f64::total_cmp);
    percentile(&s, 50.0)
}

/// The median of whole numbers (token lengths), rounded to the nearest one.
pub fn median_count(values: impl Iterator<Item = u64>) -> Option<u64> {
    let v: Vec<f64> = values.map(|x| x as f64).collect();
    median(&v).map(|m| m.round() as u64)
}

/// Index of the lower median of `n` items once ordered ((n−1)/2): the middle element for
/// odd `n`, the lower of the two middles for even `n`. For picking the *sample* whose value
/// is the median, where interpolating between two samples has no meaning.
pub fn median_index(n: usize) -> Option<usize> {
    (n > 0).then(|| (n - 1) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [0, 25, 50, 90, 100])
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 25.0), Some(1.75));
        assert_eq!(percentile(&v, 50.0), Some(2.5));
        assert!((percentile(&v, 90.0).unwrap() - 3.7).abs() < 1e-12);
        assert_eq!(percentile(&v, 100.0), Some(4.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median_count([100, 201].into_iter()), Some(151));
        assert_eq!(median_count([5, 1, 9].into_iter()), Some(5));
        assert_eq!(median_index(0), None);
        assert_eq!(median_index(3), Some(1));
        assert_eq!(median_index(4), Some(1));
    }
}
