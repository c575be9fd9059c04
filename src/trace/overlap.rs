//! The overlap-opportunity table, from one trace: a sweep line over the kernel intervals
//! of every stream splits each kernel's time into *hidden* (another stream runs a kernel
//! meanwhile) and *exclusive* (nothing else on the GPU: it is on the critical path).
//!
//! Rows, as the contract defines them: "headroom" — a kernel exclusive for ≥ 45 % of its
//! time (communication and memory first: those are the ones a side stream can hide);
//! "low-ROI hidden" — elementwise or memory kernels already ≥ 65 % hidden (speeding them
//! up gains little wall time). The dependency risk of moving a kernel off its stream reads
//! the gap to its same-stream neighbours: back to back (median gap under 2 µs) its
//! neighbours are queued on its output, so overlapping it needs explicit events; a wide gap
//! leaves room. The seed's script prints no rows from a single trace; forge computes them.

use std::collections::HashMap;

use serde::Serialize;

use super::collect::{Collected, Kernel};
use super::kernels::{category, short};
use super::sites::Site;

/// Exclusive share at and above which a kernel has headroom.
pub const HEADROOM: f64 = 0.45;
/// Hidden share at and above which an elementwise or memory kernel is low-ROI.
pub const LOW_ROI: f64 = 0.65;
/// At most this many headroom rows.
const MAX_HEADROOM_ROWS: usize = 12;

/// One row of the overlap-opportunity table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverlapRow {
    /// `P1` (exclusive ≥ 5 % of the stage's kernel time), `P2` (≥ 1 %), `P3`.
    pub priority: &'static str,
    /// `headroom` or `low-ROI hidden`.
    pub verdict: &'static str,
    /// Short kernel name.
    pub kernel: String,
    /// Canonical name.
    pub canonical: String,
    /// Category.
    pub category: &'static str,
    /// Where it is launched from.
    pub python_scope: Option<String>,
    /// GPU time, µs.
    pub gpu_us: f64,
    /// Exclusive time, µs.
    pub exclusive_us: f64,
    /// Hidden time, µs.
    pub hidden_us: f64,
    /// `low`, `medium` or `high`.
    pub dep_risk: &'static str,
    /// Median gap to the nearer same-stream neighbour, µs.
    pub neighbour_gap_us: f64,
    /// What to try.
    pub recommendation: &'static str,
}

/// Per kernel of `spans` (stream, start, end), in order: the time another stream is busy
/// while it runs. A sweep over the sorted interval ends: O(n log n).
pub fn hidden(spans: &[(u32, f64, f64)]) -> Vec<f64> {
    let mut edges: Vec<(f64, bool, u32)> = Vec::with_capacity(spans.len() * 2);
    for &(stream, s, e) in spans {
        edges.push((s, true, stream));
        edges.push((e, false, stream));
    }
    edges.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Cumulative time with ≥ 2 streams busy, at each edge.
    let mut times = Vec::with_capacity(edges.len());
    let mut cum = Vec::with_capacity(edges.len());
    let mut multi = Vec::with_capacity(edges.len());
    let mut active: HashMap<u32, u32> = HashMap::new();
    let mut total = 0.0;
    for (i, &(t, open, stream)) in edges.iter().enumerate() {
        if i > 0 && multi[i - 1] {
            total += t - times[i - 1];
        }
        let n = active.entry(stream).or_default();
        if open {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
        times.push(t);
        cum.push(total);
        multi.push(active.values().filter(|n| **n > 0).count() >= 2);
    }
    let upto = |x: f64| -> f64 {
        let i = times.partition_point(|t| *t <= x);
        if i == 0 {
            return 0.0;
        }
        cum[i - 1] + if multi[i - 1] { x - times[i - 1] } else { 0.0 }
    };
    spans
        .iter()
        .map(|&(_, s, e)| (upto(e) - upto(s)).clamp(0.0, e - s))
        .collect()
}

/// Per kernel, in order: the gap to its nearer neighbour on the same stream, µs (∞ alone).
fn neighbour_gaps(kernels: &[Kernel]) -> Vec<f64> {
    let mut by_stream: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, k) in kernels.iter().enumerate() {
        by_stream.entry(k.stream).or_default().push(i);
    }
    let mut gaps = vec![f64::INFINITY; kernels.len()];
    for idx in by_stream.values_mut() {
        idx.sort_by(|a, b| kernels[*a].ts.total_cmp(&kernels[*b].ts));
        for w in idx.windows(2) {
            let gap = (kernels[w[1]].ts - kernels[w[0]].end()).max(0.0);
            gaps[w[0]] = gaps[w[0]].min(gap);
            gaps[w[1]] = gaps[w[1]].min(gap);
        }
    }
    gaps
}

/// The overlap-opportunity table of `kernels` (one process, one stage).
pub fn table(c: &Collected, kernels: &[Kernel], sites: &HashMap<String, Site>) -> Vec<OverlapRow> {
    let spans: Vec<(u32, f64, f64)> = kernels.iter().map(|k| (k.stream, k.ts, k.end())).collect();
    let hid = hidden(&spans);
    let gaps = neighbour_gaps(kernels);
    let total: f64 = kernels.iter().map(|k| k.dur).sum();
    // Per name: time, hidden, gaps.
    let mut by: HashMap<u32, (f64, f64, Vec<f64>)> = HashMap::new();
    for (i, k) in kernels.iter().enumerate() {
        let slot = by.entry(k.name).or_default();
        slot.0 += k.dur;
        slot.1 += hid[i];
        if gaps[i].is_finite() {
            slot.2.push(gaps[i]);
        }
    }
    let mut rows: Vec<OverlapRow> = by
        .into_iter()
        .filter_map(|(name, (us, hidden_us, gaps))| {
            let canonical = c.names.get(name);
            row(canonical, us, hidden_us, median(gaps), total, sites)
        })
        .collect();
    let first = |r: &OverlapRow| {
        (
            r.verdict != "headroom",
            !matches!(r.category, "communication" | "memory"),
        )
    };
    rows.sort_by(|a, b| {
        first(a)
            .cmp(&first(b))
            .then(b.exclusive_us.total_cmp(&a.exclusive_us))
            .then(b.hidden_us.total_cmp(&a.hidden_us))
            .then(a.canonical.cmp(&b.canonical))
    });
    let mut headroom = 0;
    rows.retain(|r| {
        headroom += usize::from(r.verdict == "headroom");
        r.verdict != "headroom" || headroom <= MAX_HEADROOM_ROWS
    });
    rows
}

fn row(
    canonical: &str,
    us: f64,
    hidden_us: f64,
    gap: f64,
    total: f64,
    sites: &HashMap<String, Site>,
) -> Option<OverlapRow> {
    let cat = category(canonical);
    let exclusive_us = (us - hidden_us).max(0.0);
    let share = if total > 0.0 { us / total } else { 0.0 };
    let headroom = exclusive_us >= HEADROOM * us && share >= super::HIDE_BELOW;
    let low_roi =
        matches!(cat, "elementwise" | "memory") && hidden_us >= LOW_ROI * us && hidden_us > 0.0;
    if !headroom && !low_roi {
        return None;
    }
    let excl_share = if total > 0.0 {
        exclusive_us / total
    } else {
        0.0
    };
    Some(OverlapRow {
        priority: if low_roi {
            "P3"
        } else if excl_share >= 0.05 {
            "P1"
        } else if excl_share >= 0.01 {
            "P2"
        } else {
            "P3"
        },
        verdict: if low_roi {
            "low-ROI hidden"
        } else {
            "headroom"
        },
        kernel: short(canonical),
        canonical: canonical.to_string(),
        category: cat,
        python_scope: sites.get(canonical).and_then(|s| s.python.clone()),
        gpu_us: us,
        exclusive_us,
        hidden_us,
        dep_risk: if !gap.is_finite() || gap >= 20.0 {
            "low"
        } else if gap >= 2.0 {
            "medium"
        } else {
            "high"
        },
        neighbour_gap_us: gap,
        recommendation: recommend(cat, low_roi),
    })
}

fn recommend(cat: &str, low_roi: bool) -> &'static str {
    if low_roi {
        return "already hidden behind other streams: speeding it up gains little wall time";
    }
    match cat {
        "communication" => {
            "overlap it with independent compute (a side stream, two-batch overlap) or fuse it with the next norm (all-reduce + RMSNorm)"
        }
        "memory" => {
            "take the copy off the critical path: pinned memory and non_blocking on a copy stream, preallocate, or remove it"
        }
        "moe" => "run routing or the shared expert on a side stream beside the experts",
        _ => {
            "exposed compute: make the kernel faster (tiles, fusion); overlap only with independent work"
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::INFINITY;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The hidden time of each span by brute force: the measure of the union of the other
    /// streams' spans inside it.
    fn brute(spans: &[(u32, f64, f64)]) -> Vec<f64> {
        spans
            .iter()
            .map(|&(st, s, e)| {
                let mut others: Vec<(f64, f64)> = spans
                    .iter()
                    .filter(|o| o.0 != st)
                    .map(|o| (o.1.max(s), o.2.min(e)))
                    .filter(|o| o.1 > o.0)
                    .collect();
                others.sort_by(|a, b| a.0.total_cmp(&b.0));
                let (mut sum, mut cur): (f64, Option<(f64, f64)>) = (0.0, None);
                for (a, b) in others {
                    cur = match cur {
                        Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
                        Some((ca, cb)) => {
                            sum += cb - ca;
                            Some((a, b))
                        }
                        None => Some((a, b)),
                    };
                }
                sum + cur.map_or(0.0, |(a, b)| b - a)
            })
            .collect()
    }

    fn spans() -> impl Strategy<Value = Vec<(u32, f64, f64)>> {
        prop::collection::vec((0u32..3, 0u32..200, 1u32..60), 0..40).prop_map(|v| {
            // Kernels on one stream run one after another, as a GPU stream does.
            let mut next = [0.0f64; 3];
            v.into_iter()
                .map(|(st, gap, dur)| {
                    let s = next[st as usize] + f64::from(gap);
                    next[st as usize] = s + f64::from(dur);
                    (st, s, s + f64::from(dur))
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn the_sweep_agrees_with_brute_force(sp in spans()) {
            let fast = hidden(&sp);
            let slow = brute(&sp);
            for (i, (f, s)) in fast.iter().zip(&slow).enumerate() {
                prop_assert!((f - s).abs() < 1e-6, "span {i} {:?}: sweep {f}, brute {s}", sp[i]);
                prop_assert!(*f >= 0.0 && *f <= sp[i].2 - sp[i].1 + 1e-9);
            }
        }

        #[test]
        fn one_stream_hides_nothing(v in prop::collection::vec((0u32..100, 1u32..50), 0..30)) {
            let mut t = 0.0;
            let sp: Vec<_> = v.into_iter().map(|(g, d)| {
                let s = t + f64::from(g);
                t = s + f64::from(d);
                (7u32, s, t)
            }).collect();
            prop_assert!(hidden(&sp).iter().all(|h| *h == 0.0));
        }

        #[test]
        fn hidden_time_is_symmetric_for_two_spans(a in 0u32..100, da in 1u32..100, b in 0u32..100, db in 1u32..100) {
            let sp = [(0, f64::from(a), f64::from(a + da)), (1, f64::from(b), f64::from(b + db))];
            let h = hidden(&sp);
            // Two spans hide each other by exactly their intersection.
            prop_assert!((h[0] - h[1]).abs() < 1e-9);
        }
    }

    #[test]
    fn a_copy_under_a_gemm_is_hidden_and_a_lone_all_reduce_is_headroom() {
        let sp = [(0, 0.0, 100.0), (1, 10.0, 30.0), (0, 100.0, 150.0)];
        assert_eq!(hidden(&sp), vec![20.0, 20.0, 0.0]);
        let mut c = Collected::default();
        let mut k = |name: &str, stream: &str, ts: f64, dur: f64| Kernel {
            pid: 0,
            stream: c.names.id(stream),
            name: c.names.id(name),
            ts,
            dur,
            external: None,
            correlation: None,
        };
        let ks = vec![
            k("gemm_big", "7", 0.0, 100.0),
            k("Memcpy DtoD (Device -> Device)", "9", 10.0, 20.0),
            k("ncclDevKernel_AllReduce_Sum_bf16", "7", 100.5, 49.5),
        ];
        let rows = table(&c, &ks, &HashMap::new());
        let names: Vec<(&str, &str, &str)> = rows
            .iter()
            .map(|r| (r.verdict, r.category, r.dep_risk))
            .collect();
        // The all-reduce (communication) leads, the GEMM follows, the hidden copy is
        // low-ROI; the all-reduce starts 0.5 µs after the GEMM: a tight dependency.
        assert_eq!(
            names,
            [
                ("headroom", "communication", "high"),
                ("headroom", "gemm", "high"),
                ("low-ROI hidden", "memory", "low"),
            ]
        );
        assert_eq!(rows[0].priority, "P1");
    }
}
