//! Report renderers: table (for people), TSV and JSON (for tools), Markdown (for notes and
//! pull requests). The TSV and JSON renderers also write the run's own views.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Table};
use serde_json::json;

use super::{LoadedRun, RunSummary};
use crate::record::{ExperimentRow, Status};

/// Columns of the experiment listing (the original's, plus status, layer and interval).
const COLUMNS: [&str; 12] = [
    "exp",
    "id",
    "gen",
    "layer",
    "status",
    "score",
    "throughput",
    "p99_ms",
    "accuracy",
    "kept",
    "gain_ci",
    "rationale",
];

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "—".into(), |x| format!("{x:.digits$}"))
}

pub(crate) fn gain_ci(r: &ExperimentRow) -> String {
    match r.interval {
        Some(iv) => format!(
            "{:+.1}% [{:+.1}, {:+.1}]",
            iv.gain_pct, iv.lo_pct, iv.hi_pct
        ),
        None => "—".into(),
    }
}

fn kept_mark(r: &ExperimentRow) -> &'static str {
    match r.status {
        Status::Baseline | Status::Kept => "✓",
        Status::Reverted | Status::Inconclusive | Status::Failed => "✗",
        _ => "–",
    }
}

pub(crate) fn rationale(r: &ExperimentRow) -> String {
    match (&r.failure, r.status) {
        (Some(f), Status::Failed) => {
            format!("[{}] {} — {}", f.class.as_str(), f.summary, r.rationale)
        }
        (Some(f), _) => format!("{} — {}", f.summary, r.rationale),
        _ => r.rationale.clone(),
    }
}

fn cells(r: &ExperimentRow) -> [String; 12] {
    let m = r.measurement.as_ref();
    [
        r.exp.map_or_else(|| "—".into(), |e| e.to_string()),
        r.id.clone(),
        r.generation.to_string(),
        r.layer.as_str().to_string(),
        r.status.as_str().to_string(),
        fmt_opt(r.score, 4),
        fmt_opt(m.map(|m| m.output_throughput), 1),
        fmt_opt(m.map(|m| m.p99_e2el_ms), 0),
        fmt_opt(m.and_then(|m| m.accuracy), 3),
        kept_mark(r).to_string(),
        gain_ci(r),
        rationale(r),
    ]
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

pub(crate) fn headline(run: &LoadedRun, s: &RunSummary) -> Vec<String> {
    let mut out = vec![format!("=== Forge Report: {} ===", run.dir.display())];
    if let Some(st) = &run.settings {
        let agent = run.rows.last().map_or("—", |r| r.agent.as_str());
        out.push(format!(
            "Model: {} · objective: {} · agent: {agent}",
            st.model,
            objective_name(st)
        ));
    }
    out.push(format!("State: {}", state_line(run, s)));
    out.push(format!(
        "Total experiments: {} ({} refused proposals)",
        s.experiments, s.refused
    ));
    out.extend(recommendation_lines(s));
    out.push(gain_line(s));
    out.extend(s.cost.as_ref().map(|c| cost_line(c, s)));
    if let Some(st) = run.settings.as_ref().filter(|_| s.baseline.runs > 0) {
        out.push(objective_line(st, s));
        out.push(sla_line(st, s));
    }
    if let Some(a) = &run.analysis {
        out.push(format!("Analysis: {a}"));
    }
    out.push(format!("Failures by kind: {}", failures_line(s)));
    out.push(format!(
        "Failed requests by kind: {}",
        counts(s.request_failures.iter().map(|(k, n)| (k.as_str(), *n)))
    ));
    out
}

fn state_line(run: &LoadedRun, s: &RunSummary) -> String {
    match (&s.stop_reason, s.state) {
        (Some(r), "failed") => format!("failed, nothing measured: {r}"),
        (Some(r), _) => format!("{} ({r})", s.state),
        (None, "interrupted") => format!(
            "interrupted (continue it with: forge tune resume {})",
            run.dir.display()
        ),
        (None, other) => other.to_string(),
    }
}

/// What the objective is, in words and units.
fn objective_name(st: &crate::record::TuneSettings) -> &'static str {
    match st.objective {
        crate::record::Objective::Throughput => "throughput (output tok/s)",
        crate::record::Objective::Goodput => "goodput (req/s within the SLO)",
        crate::record::Objective::Latency => "latency (p99 E2EL)",
    }
}

fn recommendation_lines(s: &RunSummary) -> Vec<String> {
    let Some(id) = &s.recommended_id else {
        return vec!["Recommended: nothing (the baseline was never measured)".into()];
    };
    let changes: Vec<String> = s
        .recommended_changes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let what = if changes.is_empty() {
        "the engine's defaults".to_string()
    } else {
        changes.join(", ")
    };
    let mut out = vec![format!(
        "Recommended: {id} (generation {}): {what}",
        s.recommended_generation.unwrap_or(0)
    )];
    if !s.fell_back_from.is_empty() {
        out.push(format!(
            "Fell back: {} measured worse than the baseline side by side, so not recommended",
            s.fell_back_from.join(", ")
        ));
    }
    out
}

fn gain_line(s: &RunSummary) -> String {
    let iv = |g: &super::summary::Gain| {
        format!(
            "{:+.1} % ({:.0} % CI {:+.1} % … {:+.1} %",
            g.gain_pct,
            g.confidence * 100.0,
            g.lo_pct,
            g.hi_pct
        )
    };
    match (&s.gain, &s.chained_gain) {
        (Some(g), _) => format!(
            "Gain over baseline: {}, recommended and baseline measured side by side)",
            iv(g)
        ),
        _ if s.baseline.runs == 0 => {
            "Gain over baseline: none (the baseline was never measured)".into()
        }
        _ if s.recommended_changes.is_empty() => {
            "Gain over baseline: none (no recipe beat the baseline with confidence)".into()
        }
        (None, Some(c)) => format!(
            "Gain over baseline: not confirmed side by side; chained from kept steps, approximate: {})",
            iv(c)
        ),
        (None, None) => "Gain over baseline: not measured".into(),
    }
}

/// What a million output tokens cost, baseline and recommended, and at what price.
fn cost_line(c: &super::cost::Cost, s: &RunSummary) -> String {
    let dollars = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("${v:.3}"));
    let mut line = format!(
        "Cost per million output tokens: baseline {}",
        dollars(c.baseline_usd_per_mtok)
    );
    if !s.recommended_changes.is_empty()
        && let (Some(b), Some(r)) = (c.baseline_usd_per_mtok, c.recommended_usd_per_mtok)
    {
        line += &format!(", recommended ${r:.3} ({:+.1} %)", 100.0 * (r / b - 1.0));
    }
    let source = if c.price_source == "--gpu-hour-usd" {
        "--gpu-hour-usd".to_string()
    } else {
        format!("{}; --gpu-hour-usd overrides", c.price_source)
    };
    line + &format!(" — at ${:.2} per GPU-hour ({source})", c.usd_per_gpu_hour)
}

fn objective_line(st: &crate::record::TuneSettings, s: &RunSummary) -> String {
    let v = |r: &super::summary::Runs| -> String {
        let x = match st.objective {
            crate::record::Objective::Throughput => r.objective.map(|x| format!("{x:.1} tok/s")),
            crate::record::Objective::Goodput => r.objective.map(|x| format!("{x:.2} req/s")),
            crate::record::Objective::Latency => {
                r.p99_e2el_ms.map(|x| format!("p99 E2EL {x:.0} ms"))
            }
        };
        let tput = match st.objective {
            crate::record::Objective::Throughput => String::new(),
            _ => format!("; {} tok/s", fmt_opt(r.throughput, 1)),
        };
        format!(
            "{} (median of {} runs{tput})",
            x.unwrap_or_else(|| "—".into()),
            r.runs
        )
    };
    format!(
        "Objective: baseline {} → recommended {}",
        v(&s.baseline),
        v(&s.recommended)
    )
}

fn sla_line(st: &crate::record::TuneSettings, s: &RunSummary) -> String {
    let mut bounds = Vec::new();
    if st.objective != crate::record::Objective::Goodput {
        for (n, b) in [
            ("p99 TTFT", st.slo.ttft_ms),
            ("p99 TPOT", st.slo.tpot_ms),
            ("p99 E2EL", st.slo.e2el_ms),
        ] {
            if let Some(b) = b {
                bounds.push(format!("{n} ≤ {b} ms"));
            }
        }
    }
    bounds.push("≤ 1 % failed requests".into());
    format!(
        "SLA ({}): baseline met it in {} of {} runs, recommended in {} of {}",
        bounds.join(", "),
        s.baseline.sla_met,
        s.baseline.runs,
        s.recommended.sla_met,
        s.recommended.runs
    )
}

fn failures_line(s: &RunSummary) -> String {
    counts(
        crate::engine::failure::FailureClass::ALL
            .iter()
            .filter_map(|c| s.failures.get(c.as_str()).map(|n| (c.as_str(), *n))),
    )
}

/// `kind n, kind n` over the non-zero counts, or `none`.
fn counts<'a>(it: impl Iterator<Item = (&'a str, usize)>) -> String {
    let v: Vec<String> = it
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Human-readable report.
pub fn table(run: &LoadedRun, s: &RunSummary) -> String {
    let mut t = Table::new();
    t.load_style(NOTHING);
    t.set_header(COLUMNS.iter().map(Cell::new));
    for r in &run.rows {
        let mut c = cells(r);
        c[11] = truncate(&c[11], 60);
        t.add_row(c.into_iter().enumerate().map(|(i, v)| {
            let cell = Cell::new(v);
            if (5..=8).contains(&i) {
                cell.set_alignment(CellAlignment::Right)
            } else {
                cell
            }
        }));
    }
    let mut out = headline(run, s).join("\n");
    out.push_str("\n\n");
    let body = t.to_string();
    for line in body.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let answers = answer_lines(&run.rows);
    if !answers.is_empty() {
        out.push_str("\nAnswers against the baseline's (exact / token prefix / similarity; accuracy is what the floor judged):\n");
        for line in answers {
            out.push_str(&format!("  {line}\n"));
        }
    }
    let failed = failure_details(&run.rows);
    if !failed.is_empty() {
        out.push_str("\nFailed and refused experiments, with the engine's own lines:\n");
        for line in failed {
            out.push_str(&format!("{line}\n"));
        }
    }
    out
}

/// One line per measured experiment with per-request answer agreement: exact, token
/// prefix and similarity beside the accuracy the floor judged and the throughput.
pub(crate) fn answer_lines(rows: &[ExperimentRow]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.exp.is_some())
        .filter_map(|r| {
            let m = r.measurement.as_ref()?;
            let a = m.answers?;
            Some(format!(
                "exp {:>3} {:<13} exact {:.2}  prefix {:.2}  similarity {:.2}  accuracy {}  {:.1} tok/s",
                r.exp.unwrap_or_default(),
                r.status.as_str(),
                a.exact,
                a.prefix,
                a.similarity,
                fmt_opt(m.accuracy, 3),
                m.output_throughput
            ))
        })
        .collect()
}

/// One block per failed or rejected row: what failed and the engine's hint lines.
pub(crate) fn failure_details(rows: &[ExperimentRow]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let Some(f) = &r.failure else { continue };
        let exp = r.exp.map_or_else(|| "—".to_string(), |e| e.to_string());
        out.push(format!(
            "  exp {exp} {} [{}]: {}",
            r.id,
            f.class.as_str(),
            f.summary
        ));
        for h in f.hints.iter().filter(|h| **h != f.summary) {
            out.push(format!("      {h}"));
        }
    }
    out
}

/// Tab-separated rows (one header line), full rationales, tabs and newlines flattened.
pub fn tsv(rows: &[ExperimentRow]) -> String {
    let mut out = COLUMNS.join("\t");
    out.push('\n');
    for r in rows {
        let c = cells(r).map(|v| v.replace(['\t', '\n'], " "));
        out.push_str(&c.join("\t"));
        out.push('\n');
    }
    out
}

/// JSON: summary, settings and every row.
pub fn json(run: &LoadedRun, s: &RunSummary) -> anyhow::Result<String> {
    let v = json!({
        "run": run.dir.display().to_string(),
        "summary": s,
        "analysis": run.analysis,
        "settings": run.settings,
        "experiments": run.rows,
    });
    Ok(format!("{}\n", serde_json::to_string_pretty(&v)?))
}

/// Markdown: headline as a list, experiments as a table.
pub fn markdown(run: &LoadedRun, s: &RunSummary) -> String {
    let mut h = headline(run, s);
    let title = h.remove(0).replace("=== ", "").replace(" ===", "");
    let mut out = format!("# {title}\n\n");
    for line in h {
        out.push_str(&format!("- {line}\n"));
    }
    out.push_str(&format!(
        "\n| {} |\n|{}|\n",
        COLUMNS.join(" | "),
        COLUMNS.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    ));
    for r in &run.rows {
        let c = cells(r).map(|v| v.replace('|', "\\|").replace('\n', " "));
        out.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    let answers = answer_lines(&run.rows);
    if !answers.is_empty() {
        out.push_str("\n## Answers against the baseline's\n\nExact / token prefix / similarity per measured experiment; accuracy is what the floor judged.\n\n```\n");
        for line in answers {
            out.push_str(&format!("{line}\n"));
        }
        out.push_str("```\n");
    }
    let failed = failure_details(&run.rows);
    if !failed.is_empty() {
        out.push_str("\n## Failures\n\n```\n");
        for line in failed {
            out.push_str(&format!("{}\n", line.trim_start()));
        }
        out.push_str("```\n");
    }
    out
}
