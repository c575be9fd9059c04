//! `benchmark/report.html`: the gate's result as one self-contained page (inline CSS and
//! SVG, no script, nothing fetched), rewritten with `summary.md`. Per scenario, every
//! candidate as a point — output tokens/s per GPU against the p50 time per output token a
//! user sees — one colour and marker per framework, the SLA-failing and failed ones marked
//! apart; then each framework's best with its command and where its rate search bracketed
//! its capacity, the decisions about close winners with their intervals, and the summary's
//! tables as written.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::candidate::{Candidate, Status, best_per_framework};
use super::summary::Note;
use crate::report::svg::{Marker, PALETTE, Point, Scatter, Series, esc};

/// `benchmark/report.html`.
pub const HTML_FILE: &str = "benchmark/report.html";

const MARKERS: [Marker; 4] = [
    Marker::Circle,
    Marker::Triangle,
    Marker::Square,
    Marker::Diamond,
];

/// The candidates of one scenario as a chart: per framework its SLA-passing candidates,
/// and the SLA-failing ones of every framework as crosses.
pub fn scenario_chart(scenario: &str, rows: &[&Candidate]) -> Scatter {
    let mut frameworks: Vec<&str> = rows.iter().map(|c| c.framework.as_str()).collect();
    frameworks.sort_unstable();
    frameworks.dedup();
    let point = |c: &Candidate| {
        let m = &c.metrics;
        let per_gpu = m.output_token_throughput? / f64::from(c.hardware.gpu_count.max(1));
        Some(Point {
            x: m.p50_tpot_ms?,
            y: per_gpu,
            interval: None,
            title: format!(
                "{} {}: {:.1} tok/s per GPU, p50 TPOT {:.1} ms, SLA {}",
                c.framework,
                c.candidate_id,
                per_gpu,
                m.p50_tpot_ms.unwrap_or_default(),
                if c.sla.passed { "passed" } else { "failed" }
            ),
        })
    };
    let mut series: Vec<Series> = frameworks
        .iter()
        .enumerate()
        .map(|(i, fw)| Series {
            name: (*fw).to_string(),
            color: PALETTE[i % 6],
            marker: MARKERS[i % MARKERS.len()],
            line: false,
            points: rows
                .iter()
                .filter(|c| c.framework == *fw && c.eligible())
                .filter_map(|c| point(c))
                .collect(),
        })
        .collect();
    series.push(Series {
        name: "SLA failed".into(),
        color: PALETTE[3],
        marker: Marker::Cross,
        line: false,
        points: rows
            .iter()
            .filter(|c| c.status == Status::Ok && !c.sla.passed)
            .filter_map(|c| point(c))
            .collect(),
    });
    Scatter {
        title: format!("{scenario}: every candidate"),
        x_label: "p50 time per output token (ms) — lower is faster per user".into(),
        y_label: "output tokens/s per GPU".into(),
        series,
        lines: Vec::new(),
    }
}

/// Where a framework's best stands, as its rate search bracketed it: the rate it met the SLA
/// at and the lowest above it that missed (its capacity lies between), or everything at once
/// within the SLA (its capacity measured directly).
fn bracket(dir: &Path, c: &Candidate) -> String {
    match (
        c.workload.request_rate,
        super::rank::missed_above(dir, c).ok().flatten(),
    ) {
        (None, _) => "everything at once within the SLA: this is its capacity".into(),
        (Some(p), Some(f)) => {
            format!("SLA met at {p:.2} req/s offered, missed at {f:.2}: its capacity lies between")
        }
        (Some(p), None) => format!("SLA met at {p:.2} req/s offered; nothing above it missed"),
    }
}

/// The whole page of the compare campaign in `dir`.
pub fn page(dir: &Path, candidates: &[Candidate], notes: &[Note], summary_md: &str) -> String {
    let model = candidates
        .first()
        .map_or("no candidates", |c| c.model.as_str());
    let mut out = crate::report::html::open(&format!("forge compare — {model}"));
    let _ = write!(out, "<h1>forge compare: {}</h1>", esc(model));
    let mut by_scenario: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in candidates {
        by_scenario
            .entry(c.workload.scenario.as_str())
            .or_default()
            .push(c);
    }
    for (scenario, rows) in &by_scenario {
        let _ = write!(out, "<section><h2>{}</h2>", esc(scenario));
        let chart = scenario_chart(scenario, rows);
        if !chart.is_empty() {
            out.push_str(&chart.render());
        }
        out.push_str("<ul>");
        for best in best_per_framework(candidates, scenario, false) {
            let m = &best.metrics;
            let _ = write!(
                out,
                "<li><b>{}</b> {}: {} req/s, {} output tok/s, SLA {} ({})<pre>{}</pre></li>",
                esc(&best.framework),
                esc(&best.candidate_id),
                m.request_throughput
                    .map_or("—".into(), |v| format!("{v:.2}")),
                m.output_token_throughput
                    .map_or("—".into(), |v| format!("{v:.1}")),
                if best.sla.passed { "passed" } else { "failed" },
                esc(&bracket(dir, best)),
                esc(&best.server_command)
            );
        }
        out.push_str("</ul>");
        for n in notes.iter().filter(|n| n.scenario == *scenario) {
            let _ = write!(out, "<p>{}</p>", esc(&n.text));
        }
        out.push_str("</section>");
    }
    let _ = writeln!(
        out,
        "<section><h2>The summary, as written to benchmark/summary.md</h2><pre>{}</pre></section></main></body></html>",
        esc(summary_md)
    );
    out
}
