//! The campaign's page, `report.html`, rewritten with `checkpoint.md` after every attempt
//! and with `final_report.md` at the end: one self-contained file (inline CSS and SVG, no
//! script, nothing fetched). Where the campaign stands; the gap to the leader over the
//! rounds, each with the interval it was decided on and the tie band; every measured
//! attempt's gain with its interval, by outcome; the GPU time by kernel category of target
//! and leader side by side per profiled stage; the attempt and idea ledgers. The charts are
//! also written as `charts/NAME.svg`.

use std::fmt::Write as _;
use std::path::Path;

use super::analysis::{StageCategories, read_categories};
use super::ledger::{Event, Ledger, Outcome};
use super::settings::Settings;
use crate::compare::gap::Gap;
use crate::record::Interval;
use crate::report::svg::{Bars, Marker, PALETTE, Point, RefLine, Scatter, Series, esc};
use crate::store::write_atomic;

/// The page.
pub const HTML_FILE: &str = "report.html";
/// Where the charts' SVG files are.
pub const CHARTS_DIR: &str = "charts";

/// Write the page and its charts into `dir`; the charts' file stems.
pub fn write(dir: &Path, s: &Settings, ledger: &Ledger) -> anyhow::Result<Vec<String>> {
    let charts = charts(dir, s, ledger);
    if !charts.is_empty() {
        std::fs::create_dir_all(dir.join(CHARTS_DIR))?;
    }
    for (stem, svg) in &charts {
        write_atomic(
            &dir.join(CHARTS_DIR).join(format!("{stem}.svg")),
            svg.as_bytes(),
        )?;
    }
    write_atomic(
        &dir.join(HTML_FILE),
        page(dir, s, ledger, &charts).as_bytes(),
    )?;
    Ok(charts.into_iter().map(|(stem, _)| stem).collect())
}

/// The charts, as (file stem, SVG); one with nothing to show is left out.
pub fn charts(dir: &Path, s: &Settings, ledger: &Ledger) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let g = gap_over_rounds(s, ledger);
    if !g.is_empty() {
        out.push(("gap".to_string(), g.render()));
    }
    let a = attempts(ledger);
    if !a.is_empty() {
        out.push(("attempts".to_string(), a.render()));
    }
    for c in read_categories(dir) {
        if let Some(b) = kernels(&c) {
            out.push((format!("kernels-{}", c.stage), b.render()));
        }
    }
    out
}

/// The interval a gap was decided on, when it was decided by measuring.
fn interval_of(g: &Gap) -> Option<Interval> {
    match g {
        Gap::Ahead { interval }
        | Gap::Tied { interval }
        | Gap::Behind { interval }
        | Gap::Unresolved { interval } => Some(*interval),
        _ => None,
    }
}

/// The target's gap to the leader at the start of each round, with its interval and the
/// tie band.
fn gap_over_rounds(s: &Settings, ledger: &Ledger) -> Scatter {
    let points = ledger
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RoundStarted {
                round,
                decision: Some(d),
                ..
            } => {
                let iv = interval_of(&d.gap)?;
                Some(Point {
                    x: f64::from(*round),
                    y: iv.gain_pct,
                    interval: Some((iv.lo_pct, iv.hi_pct)),
                    title: format!("round {round}: {}", d.describe()),
                })
            }
            _ => None,
        })
        .collect();
    let t = s.tie_threshold_pct;
    Scatter {
        title: format!("Gap to {} at the start of each round", s.leader_name),
        x_label: "round".into(),
        y_label: format!("{} against the leader (%)", s.target.name()),
        series: vec![Series {
            name: "gap, with its 95 % interval".into(),
            color: PALETTE[0],
            marker: Marker::Circle,
            line: true,
            points,
        }],
        lines: vec![
            RefLine::y(t, format!("tied within ±{t} %")),
            RefLine::y(-t, format!("−{t} %")),
        ],
    }
}

/// Every measured attempt's gain over the code it was applied on, by outcome.
fn attempts(ledger: &Ledger) -> Scatter {
    let outcomes = [
        ("kept", PALETTE[2], Marker::Triangle),
        ("regressed", PALETTE[3], Marker::Cross),
        ("inconclusive", PALETTE[1], Marker::Diamond),
    ];
    let all: Vec<_> = ledger.attempts().collect();
    let series = outcomes
        .iter()
        .map(|(code, color, marker)| Series {
            name: (*code).to_string(),
            color,
            marker: *marker,
            line: false,
            points: all
                .iter()
                .enumerate()
                .filter(|(_, a)| a.outcome.code() == *code)
                .filter_map(|(i, a)| {
                    let g = a.gain?;
                    Some(Point {
                        x: (i + 1) as f64,
                        y: g.pct,
                        interval: Some((g.lo, g.hi)),
                        title: format!(
                            "{} ({}): {code} {:+.1} % [{:+.1}, {:+.1}] — {}",
                            a.id,
                            a.source.describe(),
                            g.pct,
                            g.lo,
                            g.hi,
                            a.reason
                        ),
                    })
                })
                .collect(),
        })
        .collect();
    Scatter {
        title: "Attempts: each patch's measured gain, with its 95 % interval".into(),
        x_label: "attempt".into(),
        y_label: "gain over the code it was applied on (%)".into(),
        series,
        lines: vec![RefLine::y(0.0, "no change")],
    }
}

/// Most categories a breakdown shows (the biggest differences).
const MAX_CATEGORIES: usize = 8;

/// One stage's GPU time by kernel category, target beside leader, in ms.
fn kernels(c: &StageCategories) -> Option<Bars> {
    let rows: Vec<&(String, f64, f64)> = c.categories.iter().take(MAX_CATEGORIES).collect();
    if rows.is_empty() {
        return None;
    }
    Some(Bars {
        title: format!("{}: GPU time by kernel category", c.stage),
        x_label: "kernel category (the biggest differences first)".into(),
        y_label: "GPU time (ms)".into(),
        groups: rows.iter().map(|r| r.0.clone()).collect(),
        series: vec![
            (
                format!("{} (target)", c.target),
                PALETTE[0],
                rows.iter().map(|r| r.1 / 1000.0).collect(),
            ),
            (
                format!("{} (leader)", c.leader),
                PALETTE[1],
                rows.iter().map(|r| r.2 / 1000.0).collect(),
            ),
        ],
    })
}

/// The whole page of the campaign in `dir` around `charts` ([`charts`]).
pub fn page(dir: &Path, s: &Settings, ledger: &Ledger, charts: &[(String, String)]) -> String {
    let mut out = crate::report::html::open(&format!(
        "forge campaign — {} against {}",
        s.target.name(),
        s.leader_name
    ));
    let _ = write!(
        out,
        "<h1>{} against {} on {}</h1><section><ul>",
        esc(s.target.name()),
        esc(&s.leader_name),
        esc(&s.model)
    );
    let mut head = vec![format!(
        "Round {}; campaign time {:.1} min; LLM spend ${:.2}",
        ledger.round(),
        ledger.secs() / 60.0,
        ledger.spent_usd()
    )];
    if let Some(d) = ledger.decision(None) {
        head.push(format!("Current gap: {}", d.describe()));
    }
    let kept = ledger
        .attempts()
        .filter(|a| a.outcome == Outcome::Kept)
        .count();
    head.push(format!(
        "Attempts: {} ({kept} kept)",
        ledger.attempts().count()
    ));
    head.push(match ledger.stopped() {
        Some(why) => format!("Stopped: {why}"),
        None => format!(
            "Running, or interrupted: forge campaign resume {}",
            dir.display()
        ),
    });
    if s.flow_check {
        head.push(
            "Flow check: a check that the campaign's machinery works end to end, not a benchmark of serving frameworks"
                .into(),
        );
    }
    for l in head {
        let _ = write!(out, "<li>{}</li>", esc(&l));
    }
    out.push_str("</ul></section>");
    for (stem, svg) in charts {
        let _ = write!(
            out,
            "<section class=\"chart-{}\">{svg}</section>",
            esc(stem)
        );
    }
    attempt_table(&mut out, ledger);
    idea_list(&mut out, ledger);
    out.push_str("<section><h2>Files</h2><p>The ledgers as written: ledgers/attempt-ledger.md, ledgers/optimization-ledger.md, ledgers/source-idea-ledger.md, ledgers/lineage.jsonl; checkpoint.md; final_report.md; analysis/.</p></section>");
    out.push_str("</main></body></html>\n");
    out
}

fn attempt_table(out: &mut String, ledger: &Ledger) {
    if ledger.attempts().next().is_none() {
        return;
    }
    out.push_str("<section><h2>Attempt ledger</h2><div class=\"table-wrap\"><table><thead><tr><th>attempt</th><th>source</th><th>files</th><th>outcome</th><th>gain [95 % CI]</th><th>why</th></tr></thead><tbody>");
    for a in ledger.attempts() {
        let class = match a.outcome {
            Outcome::Kept => "kept",
            Outcome::Inconclusive => "inconclusive",
            _ => "reverted",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td class=\"num\">{}</td><td class=\"why\">{}</td></tr>",
            esc(&a.id),
            esc(&a.source.describe()),
            esc(&a.files.join(", ")),
            esc(a.outcome.code()),
            a.gain.map_or("—".to_string(), |g| format!(
                "{:+.1} % [{:+.1}, {:+.1}]",
                g.pct, g.lo, g.hi
            )),
            esc(&a.reason)
        );
    }
    out.push_str("</tbody></table></div></section>");
}

fn idea_list(out: &mut String, ledger: &Ledger) {
    let ideas: Vec<_> = ledger.ideas().collect();
    if ideas.is_empty() {
        return;
    }
    out.push_str("<section><h2>Source ideas</h2><ul>");
    for i in ideas {
        let _ = write!(
            out,
            "<li><b>{}</b> (round {}): {}</li>",
            esc(&i.id),
            i.round,
            esc(&i.title)
        );
    }
    out.push_str("</ul></section>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_breakdown_sets_target_beside_leader_in_ms_biggest_differences_first() {
        let c = StageCategories {
            stage: "decode".into(),
            target: "llamacpp".into(),
            leader: "vllm".into(),
            categories: (0..10)
                .map(|i| (format!("cat{i}"), 1000.0 * f64::from(10 - i), 500.0))
                .collect(),
        };
        let b = kernels(&c).unwrap();
        assert_eq!(b.groups.len(), MAX_CATEGORIES);
        assert_eq!(b.groups[0], "cat0");
        assert_eq!(b.series[0].0, "llamacpp (target)");
        assert_eq!(b.series[0].2[..2], [10.0, 9.0]);
        assert_eq!(b.series[1].2[0], 0.5);
        let svg = b.render();
        assert!(svg.contains("aria-label=\"decode: GPU time by kernel category\""));
        let empty = StageCategories {
            categories: Vec::new(),
            ..c
        };
        assert!(kernels(&empty).is_none());
    }
}
