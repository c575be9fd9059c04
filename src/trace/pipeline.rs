//! The layer pipeline of a stage: the kernels in time order, split into blocks at an
//! anchor kernel that runs once per layer, grouped into forward passes of `layers` blocks;
//! then per pass (start, end, duration, average and first layer, cold or steady), per layer
//! of a representative pass (wall time, summed kernel time, time per category, kernel
//! count), the hottest kernels of a representative layer, and the Perfetto time ranges to
//! look at.
//!
//! - Anchor: `--anchor` (a substring of the kernel name), else the kernel that runs once per
//!   layer — its launch count is a multiple of the layer count (from `config.json`), or the
//!   most common launch count in the stage — preferring attention, then RoPE, the
//!   all-reduce, norms.
//! - Layers: `num_hidden_layers` from `config.json`; else the period of the blocks: the
//!   block that closes a pass also holds the LM head, sampling and the next pass's
//!   embedding, so its kernel count (or, when counts agree, its duration) stands out once
//!   per pass; with no such block the trace holds one pass of every anchor.
//! - A layer starts where its kernels ahead of the anchor start (found by matching the run
//!   before the first anchor with the run before the second); the last layer of a pass
//!   keeps as many kernels as the layer before it, and the rest up to the next pass (LM
//!   head, sampling, the next embedding) is the pass's tail.
//! - Cold or steady: a pass is steady when its first layer's wall time is within 5 % of the
//!   previous pass's; the first pass is compared with the next one, and a trace of one pass
//!   with the median layer of its own pass (cold beyond [`ALONE_COLD`]×). The
//!   seed's script calls pass 0 cold whatever it measured and finds no pass at all in a
//!   one-pass trace (it needs one anchor past the last layer); forge measures instead.

use std::collections::HashMap;

use serde::Serialize;

use super::collect::{Collected, Kernel};
use super::kernels::{category, short};

/// Within this relative difference, two first layers make a steady pass.
pub const STEADY: f64 = 0.05;

/// A pass alone is cold when its first layer takes this many times the median layer:
/// warm-up (lazy initialization, autotuning, first-touch of the weights) costs multiples,
/// while a warm first layer is routinely 10–15 % slower than the median (measured on the
/// SGLang MI300X decode trace under CUDA-graph replay).
pub const ALONE_COLD: f64 = 1.5;

/// Anchor preference by category, best first.
const ANCHOR_ORDER: &[&str] = &[
    "attention",
    "rope",
    "communication",
    "norm",
    "activation",
    "moe",
    "gemm",
    "quantize",
];

/// A stage's layer pipeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pipeline {
    /// The anchor kernel (short name, or the `--anchor` substring).
    pub anchor: String,
    /// Its launches in the stage.
    pub anchor_launches: usize,
    /// Layers per forward pass.
    pub layers: usize,
    /// Where the layer count came from.
    pub layers_from: &'static str,
    /// The forward passes.
    pub passes: Vec<Pass>,
    /// The pass the per-layer table describes.
    pub representative_pass: usize,
    /// Its layers.
    pub layer_table: Vec<Layer>,
    /// The layer with the median wall time in that pass.
    pub representative_layer: usize,
    /// Its hottest kernels.
    pub hottest: Vec<Hot>,
    /// Perfetto ranges (label, start and end in ms from the trace's first event).
    pub perfetto: Vec<(String, f64, f64)>,
    /// The trace's first timestamp, µs (Perfetto's zero).
    pub origin_us: f64,
}

/// One forward pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pass {
    /// 0-based.
    pub index: usize,
    /// First anchor, µs (trace clock).
    pub start_us: f64,
    /// Last kernel of its last layer ends, µs.
    pub end_us: f64,
    /// Mean layer wall time, µs.
    pub avg_layer_us: f64,
    /// First layer's wall time, µs.
    pub first_layer_us: f64,
    /// `cold`, `steady` or `varying`.
    pub state: &'static str,
}

/// One layer of a pass.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// 0-based.
    pub index: usize,
    /// Start, µs (trace clock).
    pub start_us: f64,
    /// Wall time, µs.
    pub wall_us: f64,
    /// Summed kernel time, µs.
    pub kernel_us: f64,
    /// Kernel time per category, µs, largest first.
    pub by_category: Vec<(&'static str, f64)>,
    /// Kernels launched.
    pub kernels: usize,
}

/// A hot kernel of the representative layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hot {
    /// Short name.
    pub kernel: String,
    /// Category.
    pub category: &'static str,
    /// GPU time in the layer, µs.
    pub gpu_us: f64,
    /// Share of the layer's kernel time.
    pub share: f64,
    /// Launches in the layer.
    pub launches: usize,
}

/// Why no pipeline could be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoPipeline {
    /// No kernel repeats often enough to mark layers.
    #[error("no kernel runs once per layer (no launch count repeats {0} times or more)")]
    NoAnchor(usize),
    /// The `--anchor` matched nothing.
    #[error("no kernel name contains the anchor `{0}`")]
    AnchorNotFound(String),
    /// Fewer anchors than layers.
    #[error(
        "the anchor `{anchor}` runs {launches} times, fewer than the {layers} layers of one pass"
    )]
    TooFewAnchors {
        /// The anchor.
        anchor: String,
        /// Its launches.
        launches: usize,
        /// Layers per pass.
        layers: usize,
    },
}

/// The least number of anchors a pipeline needs.
const MIN_ANCHORS: usize = 4;

/// The layer pipeline of `kernels` (one process, one stage). `start` is the trace's first
/// timestamp (Perfetto's zero).
pub fn build(
    c: &Collected,
    kernels: &[Kernel],
    layers: Option<usize>,
    anchor: Option<&str>,
    start: f64,
) -> Result<Pipeline, NoPipeline> {
    let mut seq = kernels.to_vec();
    seq.sort_by(|a, b| a.ts.total_cmp(&b.ts));
    let names: Vec<&str> = seq.iter().map(|k| c.names.get(k.name)).collect();
    let (label, is_anchor) = pick_anchor(&names, layers, anchor)?;
    let anchors: Vec<usize> = (0..seq.len()).filter(|i| is_anchor(names[*i])).collect();
    let (layers, layers_from) = match layers {
        Some(l) => (l, "config.json"),
        None => period(&seq, &anchors),
    };
    if anchors.len() < layers || layers == 0 {
        return Err(NoPipeline::TooFewAnchors {
            anchor: label,
            launches: anchors.len(),
            layers,
        });
    }
    let blocks = blocks(&names, &anchors, layers);
    let passes = passes(&seq, &blocks, layers);
    let rep = passes
        .iter()
        .position(|p| p.state == "steady")
        .unwrap_or(passes.len() - 1);
    let layer_table: Vec<Layer> = blocks[rep * layers..(rep + 1) * layers]
        .iter()
        .enumerate()
        .map(|(i, b)| layer(&seq, &names, i, b.clone()))
        .collect();
    let representative_layer = median_index(&layer_table);
    let hot_range = blocks[rep * layers + representative_layer].clone();
    let hottest = hottest(
        &seq[hot_range],
        &names[blocks[rep * layers + representative_layer].clone()],
    );
    let rl = &layer_table[representative_layer];
    let ms = |t: f64| (t - start) / 1000.0;
    let mut perfetto: Vec<(String, f64, f64)> = passes
        .iter()
        .map(|p| (format!("pass {}", p.index), ms(p.start_us), ms(p.end_us)))
        .collect();
    perfetto.push((
        format!("pass {rep} layer {representative_layer}"),
        ms(rl.start_us),
        ms(rl.start_us + rl.wall_us),
    ));
    Ok(Pipeline {
        anchor: label,
        anchor_launches: anchors.len(),
        layers,
        layers_from,
        passes,
        representative_pass: rep,
        layer_table,
        representative_layer,
        hottest,
        perfetto,
        origin_us: start,
    })
}

type Matcher = Box<dyn Fn(&str) -> bool>;

/// The anchor's label and a test for its launches.
fn pick_anchor(
    names: &[&str],
    layers: Option<usize>,
    given: Option<&str>,
) -> Result<(String, Matcher), NoPipeline> {
    if let Some(sub) = given {
        let s = sub.to_lowercase();
        if !names.iter().any(|n| n.to_lowercase().contains(&s)) {
            return Err(NoPipeline::AnchorNotFound(sub.to_string()));
        }
        return Ok((
            sub.to_string(),
            Box::new(move |n: &str| n.to_lowercase().contains(&s)),
        ));
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for n in names {
        *counts.entry(n).or_default() += 1;
    }
    let fits = |n: usize| match layers {
        Some(l) => l > 0 && n >= l && n.is_multiple_of(l),
        None => n >= MIN_ANCHORS,
    };
    // The most common fitting launch count: per-layer kernels share it.
    let mut by_count: HashMap<usize, usize> = HashMap::new();
    for n in counts.values().filter(|n| fits(**n)) {
        *by_count.entry(*n).or_default() += 1;
    }
    let count = by_count
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(n, _)| n)
        .ok_or(NoPipeline::NoAnchor(layers.unwrap_or(MIN_ANCHORS)))?;
    let rank = |n: &str| {
        ANCHOR_ORDER
            .iter()
            .position(|c| *c == category(n))
            .unwrap_or(ANCHOR_ORDER.len())
    };
    let first = |n: &str| names.iter().position(|m| *m == n).unwrap_or(usize::MAX);
    let best = counts
        .iter()
        .filter(|(_, k)| **k == count)
        .map(|(n, _)| *n)
        .min_by_key(|n| (rank(n), first(n)))
        .ok_or(NoPipeline::NoAnchor(count))?
        .to_string();
    let label = short(&best);
    Ok((label, Box::new(move |n: &str| n == best)))
}

/// Layers per pass from the blocks between anchors: the spacing of the blocks that stand
/// out (another kernel count and a quarter longer than the median, else twice the median
/// duration), when regular; else one pass.
fn period(seq: &[Kernel], anchors: &[usize]) -> (usize, &'static str) {
    let n = anchors.len();
    if n < 3 {
        return (n, "anchor launches (one pass)");
    }
    let counts: Vec<usize> = anchors.windows(2).map(|w| w[1] - w[0]).collect();
    let walls: Vec<f64> = anchors
        .windows(2)
        .map(|w| seq[w[1]].ts - seq[w[0]].ts)
        .collect();
    let mut sorted = walls.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    // A pass's last block also runs the LM head, sampling and the next embedding: other
    // kernels and a longer wall. Other kernels alone may be another layer type
    // (gpt-oss alternates sliding and full attention kernels every other layer).
    let mode = mode(&counts);
    let by_count: Vec<usize> = (0..counts.len())
        .filter(|i| counts[*i] != mode && walls[*i] >= 1.25 * median)
        .collect();
    if let Some(p) = regular(&by_count, n) {
        return (p, "period of the blocks' kernel counts");
    }
    let by_wall: Vec<usize> = (0..walls.len())
        .filter(|i| walls[*i] > 2.0 * median)
        .collect();
    if let Some(p) = regular(&by_wall, n) {
        return (p, "period of the blocks' durations");
    }
    (n, "anchor launches (one pass)")
}

/// The pass length `p` when the outstanding blocks are exactly the last block of each
/// pass but the final one (`p-1`, `2p-1`, …) and `p` divides the anchors.
fn regular(outstanding: &[usize], anchors: usize) -> Option<usize> {
    let p = outstanding.first()? + 1;
    let ok = p >= 2
        && anchors.is_multiple_of(p)
        && outstanding.len() == anchors / p - 1
        && outstanding
            .iter()
            .enumerate()
            .all(|(j, b)| *b == (j + 1) * p - 1);
    ok.then_some(p)
}

fn mode(v: &[usize]) -> usize {
    let mut m: HashMap<usize, usize> = HashMap::new();
    for x in v {
        *m.entry(*x).or_default() += 1;
    }
    m.into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map_or(0, |(x, _)| x)
}

/// Kernel index ranges of every layer of every whole pass.
///
/// A layer starts `lead` kernels before its anchor: the longest run of kernels before the
/// first anchor that repeats before the second (the layer's own kernels ahead of the
/// anchor — norm, QKV projection, RoPE — as opposed to the embedding before them).
fn blocks(names: &[&str], anchors: &[usize], layers: usize) -> Vec<std::ops::Range<usize>> {
    let passes = anchors.len() / layers;
    let lead = lead(names, anchors);
    let start = |bi: usize| anchors[bi] - lead;
    let mut out: Vec<std::ops::Range<usize>> = Vec::with_capacity(passes * layers);
    for p in 0..passes {
        let next_pass = if (p + 1) * layers < anchors.len() {
            start((p + 1) * layers)
        } else {
            names.len()
        };
        for l in 0..layers {
            let bi = p * layers + l;
            let s = start(bi);
            let e = if l + 1 < layers {
                start(bi + 1)
            } else if let Some(prev) = out.last().filter(|_| l > 0) {
                (s + prev.len()).min(next_pass)
            } else {
                next_pass
            };
            out.push(s..e);
        }
    }
    out
}

/// How many kernels of a layer run before its anchor.
fn lead(names: &[&str], anchors: &[usize]) -> usize {
    let (Some(&a0), Some(&a1)) = (anchors.first(), anchors.get(1)) else {
        return 0;
    };
    let mut m = 0;
    while m < a0 && m + 1 < a1 - a0 && names[a0 - 1 - m] == names[a1 - 1 - m] {
        m += 1;
    }
    m
}

fn span(seq: &[Kernel], r: std::ops::Range<usize>) -> (f64, f64) {
    let ks = &seq[r];
    let s = ks.first().map_or(0.0, |k| k.ts);
    let e = ks.iter().map(Kernel::end).fold(s, f64::max);
    (s, e)
}

fn passes(seq: &[Kernel], blocks: &[std::ops::Range<usize>], layers: usize) -> Vec<Pass> {
    let n = blocks.len() / layers;
    let walls: Vec<Vec<f64>> = (0..n)
        .map(|p| {
            blocks[p * layers..(p + 1) * layers]
                .iter()
                .map(|b| {
                    let (s, e) = span(seq, b.clone());
                    e - s
                })
                .collect()
        })
        .collect();
    (0..n)
        .map(|p| {
            let (start, _) = span(seq, blocks[p * layers].clone());
            let (_, end) = span(seq, blocks[(p + 1) * layers - 1].clone());
            let first = walls[p][0];
            let near = |other: f64| other > 0.0 && (first / other - 1.0).abs() <= STEADY;
            let state = match (p, n) {
                (0, 1) => {
                    let mut w = walls[0].clone();
                    w.sort_by(f64::total_cmp);
                    if first <= ALONE_COLD * w[w.len() / 2] {
                        "steady"
                    } else {
                        "cold"
                    }
                }
                (0, _) => {
                    if near(walls[1][0]) {
                        "steady"
                    } else {
                        "cold"
                    }
                }
                _ if near(walls[p - 1][0]) => "steady",
                _ => "varying",
            };
            Pass {
                index: p,
                start_us: start,
                end_us: end,
                avg_layer_us: walls[p].iter().sum::<f64>() / layers as f64,
                first_layer_us: first,
                state,
            }
        })
        .collect()
}

fn layer(seq: &[Kernel], names: &[&str], index: usize, r: std::ops::Range<usize>) -> Layer {
    let (s, e) = span(seq, r.clone());
    let mut by: HashMap<&'static str, f64> = HashMap::new();
    for i in r.clone() {
        *by.entry(category(names[i])).or_default() += seq[i].dur;
    }
    let mut by_category: Vec<(&'static str, f64)> = by.into_iter().collect();
    by_category.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    Layer {
        index,
        start_us: s,
        wall_us: e - s,
        kernel_us: seq[r.clone()].iter().map(|k| k.dur).sum(),
        by_category,
        kernels: r.len(),
    }
}

fn median_index(layers: &[Layer]) -> usize {
    let mut idx: Vec<usize> = (0..layers.len()).collect();
    idx.sort_by(|a, b| {
        layers[*a]
            .wall_us
            .total_cmp(&layers[*b].wall_us)
            .then(a.cmp(b))
    });
    idx[idx.len() / 2]
}

/// The eight longest kernels of a layer.
fn hottest(ks: &[Kernel], names: &[&str]) -> Vec<Hot> {
    let total: f64 = ks.iter().map(|k| k.dur).sum();
    let mut by: HashMap<&str, (f64, usize)> = HashMap::new();
    for (k, n) in ks.iter().zip(names) {
        let slot = by.entry(n).or_default();
        slot.0 += k.dur;
        slot.1 += 1;
    }
    let mut hot: Vec<Hot> = by
        .into_iter()
        .map(|(n, (us, launches))| Hot {
            kernel: short(n),
            category: category(n),
            gpu_us: us,
            share: if total > 0.0 { us / total } else { 0.0 },
            launches,
        })
        .collect();
    hot.sort_by(|a, b| b.gpu_us.total_cmp(&a.gpu_us).then(a.kernel.cmp(&b.kernel)));
    hot.truncate(8);
    hot
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic trace: `passes` forward passes of `layers` layers (norm, gemm,
    /// attention, gemm), an LM head and sampling after each, the first layer of pass 0
    /// `cold`× slower.
    fn synthetic(passes: usize, layers: usize, cold: f64) -> (Collected, Vec<Kernel>) {
        let mut c = Collected::default();
        let mut ks = Vec::new();
        let mut t = 0.0;
        let mut push = |c: &mut Collected, name: &str, dur: f64, t: &mut f64| {
            let id = c.names.id(name);
            ks.push(Kernel {
                pid: 0,
                stream: 0,
                name: id,
                ts: *t,
                dur,
                external: None,
                correlation: None,
            });
            *t += dur + 1.0;
        };
        for p in 0..passes {
            push(&mut c, "embedding_kernel", 5.0, &mut t);
            for l in 0..layers {
                let slow = if p == 0 && l == 0 { cold } else { 1.0 };
                push(&mut c, "vllm::rms_norm_kernel", 3.0 * slow, &mut t);
                push(&mut c, "gemm_qkv", 20.0 * slow, &mut t);
                push(&mut c, "flash_fwd_kernel", 30.0 * slow, &mut t);
                push(&mut c, "gemm_out", 10.0 * slow, &mut t);
            }
            push(&mut c, "vllm::rms_norm_kernel", 3.0, &mut t);
            push(&mut c, "gemm_lm_head", 50.0, &mut t);
            push(&mut c, "argmax_sampling", 4.0, &mut t);
        }
        (c, ks)
    }

    #[test]
    fn layers_and_passes_are_found_without_a_config() {
        let (c, ks) = synthetic(3, 6, 1.5);
        let p = build(&c, &ks, None, None, 0.0).unwrap();
        assert_eq!(p.anchor, "flash_fwd_kernel");
        assert_eq!((p.layers, p.passes.len()), (6, 3));
        assert_eq!(p.layers_from, "period of the blocks' kernel counts");
        let states: Vec<_> = p.passes.iter().map(|x| x.state).collect();
        assert_eq!(states, ["cold", "varying", "steady"]);
        assert_eq!(p.representative_pass, 2);
        assert_eq!(p.layer_table.len(), 6);
        // The last layer keeps the kernels of a layer, not the LM head.
        assert!(
            p.layer_table.iter().all(|l| l.kernels == 4),
            "{:?}",
            p.layer_table
        );
        assert_eq!(p.hottest[0].kernel, "flash_fwd_kernel");
    }

    #[test]
    fn a_config_sets_the_layer_count_and_one_warm_pass_is_steady() {
        let (c, ks) = synthetic(1, 8, 1.0);
        let p = build(&c, &ks, Some(8), None, 0.0).unwrap();
        assert_eq!((p.layers, p.passes.len()), (8, 1));
        assert_eq!(p.passes[0].state, "steady");
        let (c, ks) = synthetic(1, 8, 2.0);
        let p = build(&c, &ks, Some(8), None, 0.0).unwrap();
        assert_eq!(p.passes[0].state, "cold");
        assert_eq!(
            build(&c, &ks, Some(5), None, 0.0).unwrap_err(),
            NoPipeline::NoAnchor(5)
        );
        assert!(matches!(
            build(&c, &ks, None, Some("nope"), 0.0),
            Err(NoPipeline::AnchorNotFound(_))
        ));
        let p = build(&c, &ks, None, Some("GEMM_QKV"), 0.0).unwrap();
        assert_eq!((p.anchor.as_str(), p.layers), ("GEMM_QKV", 8));
    }
}
