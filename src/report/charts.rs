//! The charts of a tune run, as SVG ([`super::svg`]): each verdict's interval over the
//! experiments; measured throughput with the best so far; the measured points over the
//! simulator's predicted throughput–latency frontier, with the SLA drawn; the throughput the
//! SLA's tightness costs; the latency distributions of the baseline and the recommended
//! recipe; the workload's shape. The HTML page embeds them and the run's views write them
//! as files beside `report.md`.

use super::svg::{Bars, Marker, PALETTE, Point, RefLine, Scatter, Series};
use super::{LoadedRun, RunSummary};
use crate::record::{ExperimentRow, LatencyQuantiles, Measurement, Status};

/// Status colours and markers: never colour alone.
fn style(status: Status) -> (&'static str, Marker) {
    match status {
        Status::Baseline => (PALETTE[6], Marker::Circle),
        Status::Kept => (PALETTE[2], Marker::Triangle),
        Status::Reverted => (PALETTE[3], Marker::Cross),
        Status::Inconclusive => (PALETTE[1], Marker::Diamond),
        _ => (PALETTE[0], Marker::Square),
    }
}

/// The rows that measured something, with their experiment number.
fn measured(run: &LoadedRun) -> impl Iterator<Item = (u32, &ExperimentRow, &Measurement)> {
    run.rows
        .iter()
        .filter_map(|r| Some((r.exp?, r, r.measurement.as_ref()?)))
}

/// The charts of a run, as (file stem, SVG); a chart with nothing to show is left out.
pub fn charts(run: &LoadedRun, s: &RunSummary) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let v = verdicts(run);
    if !v.is_empty() {
        out.push(("verdicts", v.render()));
    }
    let t = throughput(run);
    if !t.is_empty() {
        out.push(("throughput", t.render()));
    }
    let p = pareto(run);
    if !p.is_empty() {
        out.push(("pareto", p.render()));
    }
    if let Some(b) = sla_cost(run) {
        out.push(("sla-cost", b.render()));
    }
    match baseline_and_best(run, s) {
        Some((base, best))
            if base.latency.is_some() && best.is_none_or(|b| b.latency.is_some()) =>
        {
            for (stem, chart) in distributions(base, best) {
                out.push((stem, chart.render()));
            }
        }
        Some((base, Some(best))) => out.push(("latency", latency(base, best).render())),
        _ => {}
    }
    if let Some(b) = workload_shape(run) {
        out.push(("workload", b.render()));
    }
    out
}

/// Upper edges of the length histogram's bins, in tokens (the last bin is open).
const LENGTH_BINS: [u32; 8] = [64, 128, 256, 512, 1024, 2048, 4096, 8192];

/// The bin of a length.
fn bin_of(tokens: u32) -> usize {
    LENGTH_BINS
        .iter()
        .position(|edge| tokens <= *edge)
        .unwrap_or(LENGTH_BINS.len())
}

/// The workload the run tuned on: prompt and output lengths as histograms, with its request
/// count, prefix sharing and arrival rate in the title (`None` when the file is not here).
fn workload_shape(run: &LoadedRun) -> Option<Bars> {
    let w = crate::workload::load(&run.settings.as_ref()?.workload).ok()?;
    let stats = crate::workload::stats::compute(&w);
    let mut prompts = vec![0.0; LENGTH_BINS.len() + 1];
    let mut outputs = prompts.clone();
    for r in &w.requests {
        prompts[bin_of(crate::workload::stats::prompt_tokens(r).len() as u32)] += 1.0;
        outputs[bin_of(r.expected_output_tokens)] += 1.0;
    }
    let used = prompts
        .iter()
        .zip(&outputs)
        .rposition(|(p, o)| *p > 0.0 || *o > 0.0)?
        + 1;
    let mut groups: Vec<String> = Vec::new();
    let mut lo = 1;
    for (i, edge) in LENGTH_BINS.iter().enumerate().take(used) {
        groups.push(format!("{lo}–{edge}"));
        lo = edge + 1;
        if i + 1 == LENGTH_BINS.len() && used > LENGTH_BINS.len() {
            groups.push(format!(">{edge}"));
        }
    }
    let rate = stats
        .mean_arrival_rate
        .map_or("all at once".to_string(), |r| format!("{r:.2} req/s"));
    Some(Bars {
        title: format!(
            "Workload: {} requests, {:.0} % shared prefix, arrivals {rate}",
            stats.requests,
            100.0 * stats.prefix_share
        ),
        x_label: "length (tokens)".into(),
        y_label: "requests".into(),
        groups,
        series: vec![
            ("prompt tokens".into(), PALETTE[0], prompts[..used].to_vec()),
            ("output tokens".into(), PALETTE[1], outputs[..used].to_vec()),
        ],
    })
}

/// Each verdict's gain over its incumbent with the interval it was decided on.
fn verdicts(run: &LoadedRun) -> Scatter {
    let statuses = [Status::Kept, Status::Reverted, Status::Inconclusive];
    let series = statuses
        .iter()
        .map(|st| {
            let (color, marker) = style(*st);
            let points = run
                .rows
                .iter()
                .filter(|r| r.status == *st)
                .filter_map(|r| {
                    let iv = r.interval?;
                    Some(Point {
                        x: f64::from(r.exp?),
                        y: iv.gain_pct,
                        interval: Some((iv.lo_pct, iv.hi_pct)),
                        title: format!(
                            "exp {}: {} {:+.1} % [{:+.1}, {:+.1}] — {}",
                            r.exp.unwrap_or_default(),
                            st.as_str(),
                            iv.gain_pct,
                            iv.lo_pct,
                            iv.hi_pct,
                            r.rationale
                        ),
                    })
                })
                .collect();
            Series {
                name: st.as_str().to_string(),
                color,
                marker,
                line: false,
                points,
            }
        })
        .collect();
    let threshold = run.settings.as_ref().map_or(1.0, |s| s.min_improvement_pct);
    Scatter {
        title: "Verdicts: gain over the incumbent, with its 95 % interval".into(),
        x_label: "experiment".into(),
        y_label: "gain over the incumbent (%)".into(),
        series,
        lines: vec![
            RefLine::y(threshold, format!("keep threshold {threshold} %")),
            RefLine::y(0.0, "no change"),
        ],
    }
}

/// Every measured run's throughput by status, and the best so far as a line.
fn throughput(run: &LoadedRun) -> Scatter {
    let mut by_status: Vec<Series> = [
        Status::Baseline,
        Status::Kept,
        Status::Reverted,
        Status::Inconclusive,
    ]
    .iter()
    .map(|st| {
        let (color, marker) = style(*st);
        Series {
            name: st.as_str().to_string(),
            color,
            marker,
            line: false,
            points: measured(run)
                .filter(|(_, r, _)| r.status == *st)
                .map(|(e, r, m)| Point {
                    x: f64::from(e),
                    y: m.output_throughput,
                    interval: None,
                    title: format!(
                        "exp {e}: {:.1} tok/s ({}) — {}",
                        m.output_throughput,
                        r.status.as_str(),
                        r.rationale
                    ),
                })
                .collect(),
        }
    })
    .collect();
    let mut best = f64::NEG_INFINITY;
    let mut line = Vec::new();
    for (e, r, m) in measured(run) {
        if matches!(r.status, Status::Baseline | Status::Kept) {
            best = best.max(m.output_throughput);
        }
        if best.is_finite() {
            line.push(Point {
                x: f64::from(e),
                y: best,
                interval: None,
                title: format!("best so far after exp {e}: {best:.1} tok/s"),
            });
        }
    }
    by_status.push(Series {
        name: "best so far".into(),
        color: PALETTE[0],
        marker: Marker::Square,
        line: true,
        points: line,
    });
    Scatter {
        title: "Measured throughput per experiment".into(),
        x_label: "experiment".into(),
        y_label: "output throughput (tok/s)".into(),
        series: by_status,
        lines: Vec::new(),
    }
}

/// Tokens/s one user sees at a median time per output token (`None` without one).
fn per_user(tpot_ms: f64) -> Option<f64> {
    (tpot_ms > 0.0).then(|| 1000.0 / tpot_ms)
}

/// The statuses whose measurements are drawn as points, each with its series name.
const MEASURED: [Status; 4] = [
    Status::Baseline,
    Status::Kept,
    Status::Reverted,
    Status::Inconclusive,
];

/// Tokens/s per user against tokens/s per GPU: the simulator's predicted curves (the
/// baseline's and the recommended recipe's, the workload at rising concurrency) under the
/// run's measured points, those that missed the SLA marked apart, and the SLA's TPOT bound
/// as the per-user speed it guarantees.
fn pareto(run: &LoadedRun) -> Scatter {
    let mut series = Vec::new();
    for c in run.frontier.iter().flat_map(|f| &f.curves) {
        let (color, marker) = if c.label == "baseline" {
            (PALETTE[5], Marker::Circle)
        } else {
            (PALETTE[4], Marker::Diamond)
        };
        let points = c
            .points
            .iter()
            .filter_map(|p| {
                let x = per_user(p.median_tpot_ms)?;
                let y = p.output_throughput / f64::from(c.gpus.max(1));
                Some(Point {
                    x,
                    y,
                    interval: None,
                    title: format!(
                        "predicted, {} recipe, {} requests in flight: {y:.0} tok/s per GPU, {x:.1} tok/s per user",
                        c.label, p.concurrency
                    ),
                })
            })
            .collect();
        series.push(Series {
            name: format!("predicted: {}", c.label),
            color,
            marker,
            line: true,
            points,
        });
    }
    let point = |e: u32, r: &ExperimentRow, m: &Measurement| {
        let x = per_user(m.median_tpot_ms)?;
        let y = m.output_throughput / f64::from(r.recipe.hardware.count.max(1));
        Some(Point {
            x,
            y,
            interval: None,
            title: format!(
                "exp {e} ({}{}): {y:.0} tok/s per GPU, {x:.1} tok/s per user — {}",
                r.status.as_str(),
                if m.met_sla() { "" } else { ", missed the SLA" },
                r.rationale
            ),
        })
    };
    for st in MEASURED {
        let (color, marker) = style(st);
        series.push(Series {
            name: st.as_str().to_string(),
            color,
            marker,
            line: false,
            points: measured(run)
                .filter(|(_, r, m)| r.status == st && m.met_sla())
                .filter_map(|(e, r, m)| point(e, r, m))
                .collect(),
        });
    }
    series.push(Series {
        name: "missed the SLA".into(),
        color: PALETTE[0],
        marker: Marker::Square,
        line: false,
        points: measured(run)
            .filter(|(_, r, m)| MEASURED.contains(&r.status) && !m.met_sla())
            .filter_map(|(e, r, m)| point(e, r, m))
            .collect(),
    });
    let lines = tpot_bound(run)
        .map(|b| {
            RefLine::x(
                1000.0 / b,
                format!(
                    "SLA: p99 TPOT ≤ {b:.0} ms = {:.0} tok/s per user",
                    1000.0 / b
                ),
            )
        })
        .into_iter()
        .collect();
    let what = if run.frontier.is_some() {
        ", measured and predicted"
    } else {
        ""
    };
    Scatter {
        title: format!("Tokens/s per GPU against tokens/s per user{what}"),
        x_label: "tokens/s per user (1000 ÷ median TPOT)".into(),
        y_label: per_gpu(run).into(),
        series,
        lines,
    }
}

/// The throughput axis: per GPU, or per machine for a run on a CPU.
fn per_gpu(run: &LoadedRun) -> &'static str {
    match run.settings.as_ref().map(|s| s.device) {
        Some(crate::hardware::Device::Cpu) => "output tokens/s (the whole CPU machine)",
        _ => "output tokens/s per GPU",
    }
}

/// The run's p99 TPOT bound, ms, when its SLA has one.
fn tpot_bound(run: &LoadedRun) -> Option<f64> {
    run.settings.as_ref()?.slo.tpot_ms.filter(|b| *b > 0.0)
}

/// What the SLA's tightness costs: at each p99 TPOT bound, the most output tokens/s per GPU
/// a measured run reached within it, and the simulator's predicted best within it. The
/// bounds span the p99 TPOTs measured and predicted (where a bound binds), with the run's
/// own among them.
fn sla_cost(run: &LoadedRun) -> Option<Bars> {
    let own = tpot_bound(run);
    let seen = measured(run)
        .filter(|(_, r, m)| MEASURED.contains(&r.status) && m.completed > 0)
        .map(|(_, _, m)| m.p99_tpot_ms)
        .chain(
            run.frontier
                .iter()
                .flat_map(|f| &f.curves)
                .flat_map(|c| c.points.iter().map(|p| p.p99_tpot_ms)),
        )
        .filter(|t| *t > 0.0);
    let bounds = tpot_bounds(seen, own)?;
    let best_measured = |bound: f64| {
        measured(run)
            .filter(|(_, r, m)| {
                MEASURED.contains(&r.status) && m.p99_tpot_ms <= bound && m.completed > 0
            })
            .map(|(_, r, m)| m.output_throughput / f64::from(r.recipe.hardware.count.max(1)))
            .fold(0.0, f64::max)
    };
    let best_predicted = |bound: f64| {
        run.frontier
            .iter()
            .flat_map(|f| &f.curves)
            .flat_map(|c| {
                c.points
                    .iter()
                    .filter(move |p| p.p99_tpot_ms <= bound)
                    .map(move |p| p.output_throughput / f64::from(c.gpus.max(1)))
            })
            .fold(0.0, f64::max)
    };
    let measured_values: Vec<f64> = bounds.iter().map(|b| best_measured(*b)).collect();
    if measured_values.iter().all(|v| *v <= 0.0) {
        return None;
    }
    let mut series = vec![("measured".to_string(), PALETTE[2], measured_values)];
    if run.frontier.is_some() {
        let predicted = bounds.iter().map(|b| best_predicted(*b)).collect();
        series.push(("predicted".to_string(), PALETTE[5], predicted));
    }
    let groups = bounds
        .iter()
        .map(|b| {
            let mark = if own.is_some_and(|o| (o - b).abs() < 1e-9) {
                " (SLA)"
            } else {
                ""
            };
            format!("≤ {} ms{mark}", super::svg::label(*b))
        })
        .collect();
    Some(Bars {
        title: "Cost of the SLA: the best throughput within each p99 TPOT bound".into(),
        x_label: "p99 time per output token bound".into(),
        y_label: per_gpu(run).into(),
        groups,
        series,
    })
}

/// Five p99 TPOT bounds spread evenly (on a log scale) from the lowest to the highest of
/// `seen`, each rounded up to two significant digits, and `own` (the run's SLA) in its
/// place among them; `None` when nothing was seen.
fn tpot_bounds(seen: impl Iterator<Item = f64>, own: Option<f64>) -> Option<Vec<f64>> {
    let (lo, hi) = seen.fold((f64::INFINITY, 0.0f64), |(lo, hi), t| {
        (lo.min(t), hi.max(t))
    });
    if !lo.is_finite() {
        return None;
    }
    let round_up = |x: f64| {
        let mag = 10f64.powf(x.log10().floor() - 1.0);
        (x / mag).ceil() * mag
    };
    let steps = 4.0;
    let mut bounds: Vec<f64> = (0..=4)
        .map(|i| round_up(lo * (hi / lo).powf(f64::from(i) / steps)))
        .collect();
    bounds.extend(own);
    bounds.sort_by(f64::total_cmp);
    bounds.dedup_by(|a, b| (*a - *b).abs() < 1e-9 * b.abs().max(1.0));
    Some(bounds)
}

/// The baseline's measurement and the recommended recipe's latest one (none when the
/// baseline is what the run recommends).
fn baseline_and_best<'a>(
    run: &'a LoadedRun,
    s: &RunSummary,
) -> Option<(&'a Measurement, Option<&'a Measurement>)> {
    let base = run
        .rows
        .iter()
        .find(|r| r.status == Status::Baseline)?
        .measurement
        .as_ref()?;
    let best = s.recommended_id.as_deref().and_then(|id| {
        run.rows
            .iter()
            .rev()
            .filter(|r| r.id == id && r.status != Status::Baseline)
            .find_map(|r| r.measurement.as_ref())
    });
    Some((base, best))
}

/// One metric's quantiles of a run.
type Quantiles = fn(&LatencyQuantiles) -> &[f64];

/// The latency distributions of the baseline and the recommended recipe, one chart per
/// metric: each quantile the load generator measured, as a line per run.
fn distributions(base: &Measurement, best: Option<&Measurement>) -> Vec<(&'static str, Scatter)> {
    let Some(b) = &base.latency else {
        return Vec::new();
    };
    let r = best.and_then(|m| m.latency.as_ref());
    let metrics: [(&str, &str, Quantiles); 3] = [
        ("latency-ttft", "time to first token", |q| &q.ttft_ms),
        ("latency-tpot", "time per output token", |q| &q.tpot_ms),
        ("latency-e2el", "end-to-end latency", |q| &q.e2el_ms),
    ];
    metrics
        .into_iter()
        .map(|(stem, what, get)| {
            let series = |name: &str, color, marker, q: &LatencyQuantiles| Series {
                name: name.to_string(),
                color,
                marker,
                line: true,
                points: q
                    .levels
                    .iter()
                    .zip(get(q))
                    .map(|(l, v)| Point {
                        x: *l,
                        y: *v,
                        interval: None,
                        title: format!("{name}: p{l} {what} {v:.1} ms"),
                    })
                    .collect(),
            };
            let mut all = vec![series("baseline", PALETTE[6], Marker::Circle, b)];
            all.extend(r.map(|r| series("recommended", PALETTE[0], Marker::Triangle, r)));
            let chart = Scatter {
                title: format!("{}, by percentile of requests", capital(what)),
                x_label: "percentile of requests".into(),
                y_label: "milliseconds".into(),
                series: all,
                lines: Vec::new(),
            };
            (stem, chart)
        })
        .collect()
}

/// `s` with a capital first letter.
fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or(String::new(), |f| f.to_uppercase().chain(c).collect())
}

/// Baseline against the recommended recipe: median and p99 latencies (runs recorded before
/// forge kept the whole distributions).
fn latency(base: &Measurement, best: &Measurement) -> Bars {
    let values = |m: &Measurement| {
        vec![
            m.median_ttft_ms,
            m.p99_ttft_ms,
            m.median_tpot_ms,
            m.p99_tpot_ms,
            m.p99_e2el_ms / 10.0,
        ]
    };
    Bars {
        title: "Latency: baseline against the recommended recipe".into(),
        x_label: String::new(),
        y_label: "milliseconds (E2E p99 ÷ 10)".into(),
        groups: [
            "TTFT p50",
            "TTFT p99",
            "TPOT p50",
            "TPOT p99",
            "E2E p99 ÷10",
        ]
        .map(str::to_string)
        .to_vec(),
        series: vec![
            ("baseline".into(), PALETTE[6], values(base)),
            ("recommended".into(), PALETTE[0], values(best)),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpot_bounds_span_what_was_seen_with_the_sla_among_them() {
        let b = tpot_bounds([12.3, 80.0, 30.0].into_iter(), Some(40.0)).unwrap();
        // 12.3 → 80 in four equal log steps, each rounded up to two digits, and the SLA.
        assert_eq!(b, [13.0, 20.0, 32.0, 40.0, 51.0, 80.0]);
        assert_eq!(tpot_bounds(std::iter::empty(), Some(40.0)), None);
        // One value seen: one bound (and the SLA).
        assert_eq!(tpot_bounds([25.0].into_iter(), None).unwrap(), [25.0]);
    }

    #[test]
    fn lengths_fall_in_power_of_two_bins_with_an_open_last_one() {
        assert_eq!(bin_of(1), 0);
        assert_eq!(bin_of(64), 0);
        assert_eq!(bin_of(65), 1);
        assert_eq!(bin_of(8192), 7);
        assert_eq!(bin_of(8193), 8);
    }
}
