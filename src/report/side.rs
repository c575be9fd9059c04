//! `forge report --compare RUN_A RUN_B`: two runs side by side — what each tuned (model,
//! engine, GPU, workload, objective, SLA), what each recommends, its gain over its own
//! baseline with the interval it was confirmed on, latencies, accuracy and cost — and what
//! differs between their set-ups. It decides nothing between the two: their figures come
//! from different runs, never paired, so the page says so rather than ranking them.

use std::fmt::Write as _;

use super::cost::gpu_of;
use super::svg::esc;
use super::{LoadedRun, ReportFormat, RunSummary};

/// One line of the comparison: what, and its value in each run.
struct Line {
    what: &'static str,
    a: String,
    b: String,
}

/// The two runs as `format` (table, Markdown, HTML; TSV and JSON are one run's views),
/// costs at `usd` per GPU-hour when given.
pub fn render(
    a: &LoadedRun,
    b: &LoadedRun,
    format: ReportFormat,
    usd: Option<f64>,
) -> anyhow::Result<String> {
    let sa = RunSummary::of(a).priced(a, usd);
    let sb = RunSummary::of(b).priced(b, usd);
    let lines = lines((a, &sa), (b, &sb));
    let notes = notes(a, b);
    let names = [name(a), name(b)];
    Ok(match format {
        ReportFormat::Table => table(&names, &lines, &notes),
        ReportFormat::Md => markdown(&names, &lines, &notes),
        ReportFormat::Html => html(&names, &lines, &notes),
        ReportFormat::Tsv | ReportFormat::Json => anyhow::bail!(
            "--compare prints a table, Markdown or HTML (--format table|md|html); TSV and JSON are each run's own: forge report RUN --format json"
        ),
    })
}

fn name(run: &LoadedRun) -> String {
    run.dir.file_name().map_or_else(
        || run.dir.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

/// How one line's value is read from a run.
type Cell = fn(&LoadedRun, &RunSummary) -> String;

fn lines(a: (&LoadedRun, &RunSummary), b: (&LoadedRun, &RunSummary)) -> Vec<Line> {
    let rows: [(&'static str, Cell); 14] = [
        ("model", |r, _| setting(r, |s| s.model.clone())),
        ("engine", |r, _| {
            setting(r, |s| s.engine.recipe_engine().as_str().to_string())
        }),
        ("GPU", |r, _| gpu_of(r).unwrap_or_else(|| "—".into())),
        ("workload", |r, _| {
            setting(r, |s| s.workload.display().to_string())
        }),
        ("objective", |r, _| {
            setting(r, |s| format!("{:?}", s.objective).to_lowercase())
        }),
        ("SLA (p99 bounds)", |r, _| setting(r, |s| slo(&s.slo))),
        ("state", |_, s| s.state.to_string()),
        ("experiments", |_, s| s.experiments.to_string()),
        ("recommended changes", |_, s| changes(s)),
        ("baseline tok/s", |_, s| tok_s(s.baseline.throughput)),
        ("recommended tok/s", |_, s| tok_s(s.recommended.throughput)),
        ("gain over its own baseline", |_, s| gain(s)),
        ("recommended p99 TTFT / TPOT", latencies),
        ("cost per million output tokens", |_, s| cost(s)),
    ];
    rows.iter()
        .map(|(what, f)| Line {
            what,
            a: f(a.0, a.1),
            b: f(b.0, b.1),
        })
        .collect()
}

fn setting(run: &LoadedRun, f: impl Fn(&crate::record::TuneSettings) -> String) -> String {
    run.settings.as_ref().map_or_else(|| "—".into(), f)
}

fn slo(s: &crate::bench::Slo) -> String {
    let parts: Vec<String> = [
        ("TTFT", s.ttft_ms),
        ("TPOT", s.tpot_ms),
        ("E2EL", s.e2el_ms),
    ]
    .iter()
    .filter_map(|(n, b)| b.map(|b| format!("{n} ≤ {b} ms")))
    .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn changes(s: &RunSummary) -> String {
    if s.recommended_id.is_none() {
        return "—".into();
    }
    if s.recommended_changes.is_empty() {
        return "none (the engine's defaults)".into();
    }
    s.recommended_changes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn tok_s(v: Option<f64>) -> String {
    v.map_or_else(|| "—".into(), |v| format!("{v:.1}"))
}

fn gain(s: &RunSummary) -> String {
    match (&s.gain, &s.chained_gain) {
        (Some(g), _) => format!(
            "{:+.1} % [{:+.1}, {:+.1}] (confirmed side by side)",
            g.gain_pct, g.lo_pct, g.hi_pct
        ),
        _ if s.baseline.runs == 0 => "— (the baseline was never measured)".into(),
        _ if s.recommended_changes.is_empty() => "none".into(),
        (None, Some(g)) => format!("{:+.1} % (chained, approximate)", g.gain_pct),
        (None, None) => "not measured".into(),
    }
}

fn latencies(run: &LoadedRun, s: &RunSummary) -> String {
    let id = s.recommended_id.as_deref();
    run.rows
        .iter()
        .rev()
        .filter(|r| Some(r.recipe.id.as_str()) == id)
        .find_map(|r| r.measurement.as_ref())
        .map_or_else(
            || "—".into(),
            |m| format!("{:.0} / {:.1} ms", m.p99_ttft_ms, m.p99_tpot_ms),
        )
}

fn cost(s: &RunSummary) -> String {
    if s.baseline.throughput.is_none() {
        return "—".into();
    }
    s.cost.as_ref().map_or_else(
        || "— (no price for this GPU: --gpu-hour-usd)".into(),
        |c| {
            let v = c.recommended_usd_per_mtok.or(c.baseline_usd_per_mtok);
            v.map_or_else(
                || "—".into(),
                |v| format!("${v:.3} at ${:.2}/GPU-hour", c.usd_per_gpu_hour),
            )
        },
    )
}

/// What the reader must know before reading across: the runs are not paired, and which
/// set-up differs.
fn notes(a: &LoadedRun, b: &LoadedRun) -> Vec<String> {
    let mut out = vec![
        "Each gain is against that run's own baseline, measured side by side within it. The two runs were measured apart, never paired: forge decides nothing between them, and a difference inside either run's noise means nothing. To decide between the two recommendations, measure them in one run (forge compare)."
            .to_string(),
    ];
    let differ = |what: &str, f: fn(&LoadedRun) -> Option<String>| {
        let (x, y) = (f(a), f(b));
        (x != y).then(|| {
            format!(
                "Different {what}: {} against {}.",
                x.unwrap_or_else(|| "—".into()),
                y.unwrap_or_else(|| "—".into())
            )
        })
    };
    out.extend(differ("models", |r| {
        r.settings.as_ref().map(|s| s.model.clone())
    }));
    out.extend(differ("GPUs", gpu_of));
    out.extend(differ("workloads", |r| {
        r.settings
            .as_ref()
            .map(|s| s.workload.display().to_string())
    }));
    out.extend(differ("SLAs", |r| r.settings.as_ref().map(|s| slo(&s.slo))));
    out
}

fn table(names: &[String; 2], lines: &[Line], notes: &[String]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_style(comfy_table::presets::NOTHING);
    t.set_header(["", &format!("A: {}", names[0]), &format!("B: {}", names[1])]);
    for l in lines {
        t.add_row([l.what, &l.a, &l.b]);
    }
    let mut out = String::from("=== forge: two runs side by side ===\n");
    for l in t.lines() {
        out += l.trim_end();
        out.push('\n');
    }
    for n in notes {
        out += &format!("\n{n}\n");
    }
    out
}

fn markdown(names: &[String; 2], lines: &[Line], notes: &[String]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = format!(
        "# Two runs side by side\n\n| | A: {} | B: {} |\n|---|---|---|\n",
        cell(&names[0]),
        cell(&names[1])
    );
    for l in lines {
        out += &format!("| {} | {} | {} |\n", l.what, cell(&l.a), cell(&l.b));
    }
    for n in notes {
        out += &format!("\n> {n}\n");
    }
    out
}

fn html(names: &[String; 2], lines: &[Line], notes: &[String]) -> String {
    let mut out = super::html::open("forge — two runs side by side");
    let _ = write!(
        out,
        "<h1>Two runs side by side</h1><section><div class=\"table-wrap\"><table><thead><tr><th></th><th>A: {}</th><th>B: {}</th></tr></thead><tbody>",
        esc(&names[0]),
        esc(&names[1])
    );
    for l in lines {
        let _ = write!(
            out,
            "<tr><th>{}</th><td>{}</td><td>{}</td></tr>",
            esc(l.what),
            esc(&l.a),
            esc(&l.b)
        );
    }
    out.push_str("</tbody></table></div></section><section><ul>");
    for n in notes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    out.push_str("</ul></section></main></body></html>\n");
    out
}
