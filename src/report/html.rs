//! `forge report RUN --format html`: one self-contained page per tune run — inline CSS and
//! inline SVG charts ([`super::svg`]), no script, no font or request to any network — that
//! reads the same with JavaScript off, on a phone and on paper. It leads with the headline
//! (the gain with its interval, what to deploy as the exact command, the accuracy the
//! floor judged), then the charts (each verdict's interval over the experiments; measured
//! throughput with the best so far; baseline against recommended latencies), the answers
//! against the baseline's, every experiment with the agent's rationale, and the failures
//! with the engine's own lines. [`charts`] are also written as SVG files beside the run's
//! `report.md`.

use std::fmt::Write as _;

use super::render::{answer_lines, failure_details, gain_ci, headline, rationale};
use super::svg::{Bars, Marker, PALETTE, Point, RefLine, Scatter, Series, esc};
use super::{LoadedRun, RunSummary};
use crate::record::{ExperimentRow, Measurement, Status, recommended};

/// The style every forge page shares (the tune report, the compare page).
pub const CSS: &str = "body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1a1a1a;background:#fafafa}\
main{max-width:980px;margin:0 auto;padding:16px}\
h1{font-size:1.45em;margin:.4em 0;overflow-wrap:anywhere}h2{font-size:1.15em;margin:1.6em 0 .5em}\
section{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:12px 16px;margin:12px 0}\
ul{padding-left:1.1em;margin:.3em 0}li{overflow-wrap:anywhere}\
pre{background:#f3f3f3;padding:8px 10px;border-radius:4px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:13px}\
svg.chart{width:100%;height:auto;display:block;margin:8px 0}\
.table-wrap{overflow-x:auto}table{border-collapse:collapse;font-size:13px;width:100%}\
th,td{border-bottom:1px solid #e6e6e6;padding:4px 6px;text-align:left;vertical-align:top}\
td.num{text-align:right;white-space:nowrap}td.why{min-width:16em;overflow-wrap:anywhere}\
.kept{color:#007a55;font-weight:600}.reverted,.failed{color:#b34700}.inconclusive{color:#8a6100}\
@media print{body{background:#fff}section{border:none;break-inside:avoid}}";

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
    if let Some(b) = latency(run, s) {
        out.push(("latency", b.render()));
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
            RefLine {
                y: threshold,
                label: format!("keep threshold {threshold} %"),
            },
            RefLine {
                y: 0.0,
                label: "no change".into(),
            },
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

/// Baseline against the recommended recipe: median and p99 latencies.
fn latency(run: &LoadedRun, s: &RunSummary) -> Option<Bars> {
    let base = run
        .rows
        .iter()
        .find(|r| r.status == Status::Baseline)?
        .measurement
        .as_ref()?;
    let id = s.recommended_id.as_deref()?;
    let best = run
        .rows
        .iter()
        .rev()
        .filter(|r| r.id == id && r.status != Status::Baseline)
        .find_map(|r| r.measurement.as_ref())?;
    let values = |m: &Measurement| {
        vec![
            m.median_ttft_ms,
            m.p99_ttft_ms,
            m.median_tpot_ms,
            m.p99_tpot_ms,
            m.p99_e2el_ms / 10.0,
        ]
    };
    Some(Bars {
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
    })
}

/// The command that deploys the recommended recipe, as `forge recipe command` prints it.
fn deploy_command(run: &LoadedRun) -> Option<String> {
    let best = recommended(&run.rows)?;
    let source = run.dir.join(crate::store::BEST_RECIPE_FILE);
    let source = source.display().to_string();
    let version = crate::engine::vllm::flags::Version::CURRENT.to_string();
    let target = crate::engine::deploy::Target {
        host: "127.0.0.1",
        port: 8000,
        vllm_version: &version,
        source: &source,
    };
    let d = crate::engine::deploy::render(&best.recipe, &target).ok()?;
    Some(crate::engine::deploy::display(&d))
}

/// A page's opening, up to `<main>`: the document head with `title` and [`CSS`].
pub fn open(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{}</title><style>{CSS}</style></head><body><main>",
        esc(title)
    )
}

/// The whole page.
pub fn page(run: &LoadedRun, s: &RunSummary) -> String {
    page_with(run, s, &charts(run, s))
}

/// The whole page around `charts` (already rendered: the run's views also write them as
/// files).
pub fn page_with(run: &LoadedRun, s: &RunSummary, charts: &[(&str, String)]) -> String {
    let model = run.settings.as_ref().map_or("run", |st| st.model.as_str());
    let mut out = open(&format!("forge report — {model}"));
    let mut lines = headline(run, s);
    let title = lines.remove(0).replace("=== ", "").replace(" ===", "");
    let _ = write!(
        out,
        "<h1>{}</h1><section class=\"headline\"><ul>",
        esc(&title)
    );
    for l in lines {
        let _ = write!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul>");
    if let Some(cmd) = deploy_command(run) {
        let _ = write!(
            out,
            "<h2>Deploy</h2><pre class=\"deploy\"><code>{}</code></pre>",
            esc(&cmd)
        );
    }
    out.push_str("</section>");
    for (stem, svg) in charts {
        let _ = write!(out, "<section class=\"chart-{stem}\">{svg}</section>");
    }
    pre_section(
        &mut out,
        "Answers against the baseline's",
        &answer_lines(&run.rows),
    );
    experiments(&mut out, run);
    pre_section(
        &mut out,
        "Failures, with the engine's own lines",
        &failure_details(&run.rows),
    );
    out.push_str("</main></body></html>\n");
    out
}

/// A section of preformatted `lines` under `title`; nothing when there are none.
fn pre_section(out: &mut String, title: &str, lines: &[String]) {
    if !lines.is_empty() {
        let _ = write!(
            out,
            "<section><h2>{}</h2><pre>{}</pre></section>",
            esc(title),
            esc(&lines.join("\n"))
        );
    }
}

fn experiments(out: &mut String, run: &LoadedRun) {
    out.push_str("<section><h2>Experiments</h2><div class=\"table-wrap\"><table><thead><tr><th>exp</th><th>layer</th><th>status</th><th>tok/s</th><th>accuracy</th><th>gain [95 % CI]</th><th>rationale</th></tr></thead><tbody>");
    for r in &run.rows {
        let m = r.measurement.as_ref();
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"{st}\">{st}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"why\">{}</td></tr>",
            r.exp.map_or("—".to_string(), |e| e.to_string()),
            r.layer.as_str(),
            m.map_or("—".to_string(), |m| format!("{:.1}", m.output_throughput)),
            m.and_then(|m| m.accuracy)
                .map_or("—".to_string(), |a| format!("{a:.3}")),
            esc(&gain_ci(r)),
            esc(&rationale(r)),
            st = r.status.as_str(),
        );
    }
    out.push_str("</tbody></table></div></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_fall_in_power_of_two_bins_with_an_open_last_one() {
        assert_eq!(bin_of(1), 0);
        assert_eq!(bin_of(64), 0);
        assert_eq!(bin_of(65), 1);
        assert_eq!(bin_of(8192), 7);
        assert_eq!(bin_of(8193), 8);
    }
}
