//! How an analysis prints: one document of headings, paragraphs and tables, rendered as
//! Markdown (reports, the campaign's `analysis/`) or as aligned plain text (a terminal).
//! The JSON form is the analysis itself, serialized.

use std::fmt::Write as _;

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, CellAlignment, Table};

use super::pipeline::Pipeline;
use super::{Analysis, HIDE_BELOW, StageAnalysis};

/// A piece of a document.
pub enum Block {
    /// A heading of a level (1 = title).
    Heading(usize, String),
    /// A paragraph.
    Para(String),
    /// A table: header, rows, which columns are numbers (right-aligned).
    Table(Tab),
}

/// A table.
pub struct Tab {
    head: Vec<&'static str>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Tab {
    /// A table with these columns; a column named with a leading `>` is numeric.
    pub fn new(cols: &[&'static str]) -> Tab {
        Tab {
            head: cols.iter().map(|c| c.trim_start_matches('>')).collect(),
            numeric: cols.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }
}

/// The analysis as Markdown.
pub fn markdown(a: &Analysis) -> String {
    to_markdown(&document(a))
}

/// The analysis as plain text.
pub fn text(a: &Analysis) -> String {
    to_text(&document(a))
}

/// Markdown of a document.
pub fn to_markdown(doc: &[Block]) -> String {
    let mut out = String::new();
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let _ = writeln!(out, "{} {t}\n", "#".repeat(*level));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "{t}\n");
            }
            Block::Table(t) => {
                let _ = writeln!(out, "| {} |", t.head.join(" | "));
                let rule: Vec<&str> = t
                    .numeric
                    .iter()
                    .map(|n| if *n { "---:" } else { "---" })
                    .collect();
                let _ = writeln!(out, "| {} |", rule.join(" | "));
                for r in &t.rows {
                    let cells: Vec<String> = r.iter().map(|c| c.replace('|', "\\|")).collect();
                    let _ = writeln!(out, "| {} |", cells.join(" | "));
                }
                out.push('\n');
            }
        }
    }
    out.trim_end().to_string() + "\n"
}

/// Plain text of a document.
pub fn to_text(doc: &[Block]) -> String {
    let mut out = String::new();
    for b in doc {
        match b {
            Block::Heading(level, t) => {
                let rule = if *level <= 2 { '=' } else { '-' };
                let _ = writeln!(out, "{t}\n{}\n", rule.to_string().repeat(t.chars().count()));
            }
            Block::Para(t) => {
                let _ = writeln!(out, "{}\n", t.replace('`', ""));
            }
            Block::Table(t) => {
                let mut table = Table::new();
                table.load_style(NOTHING);
                table.set_header(t.head.iter().map(Cell::new));
                for r in &t.rows {
                    table.add_row(r.iter().zip(&t.numeric).map(|(c, n)| {
                        let cell = Cell::new(c);
                        if *n {
                            cell.set_alignment(CellAlignment::Right)
                        } else {
                            cell
                        }
                    }));
                }
                let _ = writeln!(out, "{table}\n");
            }
        }
    }
    out.trim_end().to_string() + "\n"
}

fn document(a: &Analysis) -> Vec<Block> {
    let mut doc = vec![
        Block::Heading(1, "Trace analysis".into()),
        Block::Para(format!(
            "`{}`: {} events; process {}; framework {}.",
            a.path.display(),
            a.events,
            a.pid,
            super::framework_name(a.framework)
        )),
    ];
    for s in &a.stages {
        stage(&mut doc, s);
    }
    doc
}

fn stage(doc: &mut Vec<Block>, s: &StageAnalysis) {
    let title = match s.stage {
        Some(st) => format!("Stage: {st}"),
        None => "All stages".to_string(),
    };
    doc.push(Block::Heading(2, title));
    doc.push(Block::Para(format!(
        "{} of GPU kernel time in {} kernels.",
        time(s.kernel_us),
        s.kernels.iter().map(|k| k.launches).sum::<u64>()
    )));
    kernel_table(doc, s);
    overlap_table(doc, s);
    fuse_table(doc, s);
    doc.push(Block::Heading(3, "Layer pipeline".into()));
    match (&s.pipeline, &s.no_pipeline) {
        (Some(p), _) => pipeline(doc, p),
        (None, Some(why)) => doc.push(Block::Para(format!("No layer pipeline: {why}."))),
        (None, None) => {}
    }
}

fn kernel_table(doc: &mut Vec<Block>, s: &StageAnalysis) {
    doc.push(Block::Heading(3, "Kernels".into()));
    let mut t = Tab::new(&[
        "Kernel",
        "Category",
        ">GPU time",
        ">Share",
        ">Launches",
        "Python location (site share)",
        "CPU op",
    ]);
    let (shown, hidden): (Vec<_>, Vec<_>) = s.kernels.iter().partition(|r| r.share >= HIDE_BELOW);
    let names = distinct_clips(shown.iter().map(|r| r.kernel.as_str()));
    for (r, name) in shown.into_iter().zip(names) {
        let site = match (&r.python_location, r.site_share) {
            (Some(p), Some(sh)) => format!("{p} ({:.0}%)", sh * 100.0),
            _ => String::new(),
        };
        t.row(vec![
            name,
            r.category.to_string(),
            time(r.gpu_us),
            format!("{:.1}%", r.share * 100.0),
            r.launches.to_string(),
            site,
            r.cpu_op.clone().unwrap_or_default(),
        ]);
    }
    doc.push(Block::Table(t));
    if !hidden.is_empty() {
        let us: f64 = hidden.iter().map(|r| r.gpu_us).sum();
        doc.push(Block::Para(format!(
            "{} kernels under 1 % of GPU time each are not listed ({} together).",
            hidden.len(),
            time(us)
        )));
    }
}

fn overlap_table(doc: &mut Vec<Block>, s: &StageAnalysis) {
    doc.push(Block::Heading(3, "Overlap opportunities".into()));
    if s.overlap.is_empty() {
        doc.push(Block::Para(
            "No kernel of 1 % or more of GPU time is exclusive for 45 % of its time, and no elementwise or memory kernel is 65 % hidden.".into(),
        ));
        return;
    }
    let mut t = Tab::new(&[
        "Priority",
        "Verdict",
        "Kernel",
        "Python scope",
        "Formal signal",
        "Dep risk",
        "Recommendation",
    ]);
    for r in &s.overlap {
        let excl = if r.gpu_us > 0.0 {
            r.exclusive_us / r.gpu_us
        } else {
            0.0
        };
        t.row(vec![
            r.priority.to_string(),
            r.verdict.to_string(),
            clip(&r.kernel),
            r.python_scope.clone().unwrap_or_default(),
            format!(
                "{} {}: exclusive {} ({:.0}%), hidden {}",
                r.category,
                time(r.gpu_us),
                time(r.exclusive_us),
                excl * 100.0,
                time(r.hidden_us)
            ),
            if r.neighbour_gap_us.is_finite() {
                format!("{} (gap {})", r.dep_risk, time(r.neighbour_gap_us))
            } else {
                r.dep_risk.to_string()
            },
            r.recommendation.to_string(),
        ]);
    }
    doc.push(Block::Table(t));
}

fn fuse_table(doc: &mut Vec<Block>, s: &StageAnalysis) {
    doc.push(Block::Heading(3, "Fuse opportunities".into()));
    if s.fusions.is_empty() {
        doc.push(Block::Para("No known fusion pattern matched.".into()));
        return;
    }
    let mut t = Tab::new(&[
        "Pattern",
        "Confidence",
        ">Related GPU time",
        ">Share",
        "Evidence kernels",
        "Current kernel Python location",
        "Candidate fused Python path",
        "Rationale",
    ]);
    for r in &s.fusions {
        let evidence: Vec<String> = r.evidence.iter().take(4).map(|k| clip(k)).collect();
        t.row(vec![
            r.pattern.to_string(),
            r.confidence.to_string(),
            time(r.related_us),
            format!("{:.1}%", r.share * 100.0),
            evidence.join(", "),
            r.locations
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            r.fused_path.clone(),
            r.rationale.clone(),
        ]);
    }
    doc.push(Block::Table(t));
}

fn pipeline(doc: &mut Vec<Block>, p: &Pipeline) {
    doc.push(Block::Para(format!(
        "Anchor `{}` ({} launches); {} layers per pass (from {}); {} forward pass{}.",
        p.anchor,
        p.anchor_launches,
        p.layers,
        p.layers_from,
        p.passes.len(),
        if p.passes.len() == 1 { "" } else { "es" }
    )));
    let mut t = Tab::new(&[
        ">Pass",
        ">Start (ms)",
        ">End (ms)",
        ">Duration",
        ">Avg layer",
        ">First layer",
        "State",
    ]);
    for x in &p.passes {
        t.row(vec![
            x.index.to_string(),
            format!("{:.3}", (x.start_us - p.origin_us) / 1000.0),
            format!("{:.3}", (x.end_us - p.origin_us) / 1000.0),
            time(x.end_us - x.start_us),
            time(x.avg_layer_us),
            time(x.first_layer_us),
            x.state.to_string(),
        ]);
    }
    doc.push(Block::Table(t));
    layers(doc, p);
    doc.push(Block::Para(format!(
        "Hottest kernels of layer {} (the median layer of pass {}):",
        p.representative_layer, p.representative_pass
    )));
    let mut h = Tab::new(&[
        "Kernel",
        "Category",
        ">GPU time",
        ">Share of layer",
        ">Launches",
    ]);
    for k in &p.hottest {
        h.row(vec![
            clip(&k.kernel),
            k.category.to_string(),
            time(k.gpu_us),
            format!("{:.1}%", k.share * 100.0),
            k.launches.to_string(),
        ]);
    }
    doc.push(Block::Table(h));
    let ranges: Vec<String> = p
        .perfetto
        .iter()
        .map(|(label, s, e)| format!("{label}: {s:.3}–{e:.3} ms"))
        .collect();
    doc.push(Block::Para(format!(
        "Perfetto ranges (ms from the trace's first event): {}.",
        ranges.join("; ")
    )));
}

/// The per-layer table of the representative pass, with the pass's five biggest
/// categories as columns.
fn layers(doc: &mut Vec<Block>, p: &Pipeline) {
    let mut totals: Vec<(&'static str, f64)> = Vec::new();
    for l in &p.layer_table {
        for (c, us) in &l.by_category {
            match totals.iter_mut().find(|x| x.0 == *c) {
                Some(x) => x.1 += us,
                None => totals.push((c, *us)),
            }
        }
    }
    totals.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let cats: Vec<&'static str> = totals.iter().take(5).map(|x| x.0).collect();
    let rest = totals.len() > cats.len();
    let mut head: Vec<&'static str> = vec![">Layer", ">Wall", ">Kernel time"];
    head.extend(cats.iter().map(|c| category_column(c)));
    if rest {
        head.push(">rest");
    }
    head.push(">Kernels");
    let mut t = Tab::new(&head);
    for l in &p.layer_table {
        let mut row = vec![l.index.to_string(), time(l.wall_us), time(l.kernel_us)];
        let of = |c: &str| l.by_category.iter().find(|x| x.0 == c).map_or(0.0, |x| x.1);
        row.extend(cats.iter().map(|c| time(of(c))));
        if rest {
            let shown: f64 = cats.iter().map(|c| of(c)).sum();
            row.push(time(l.kernel_us - shown));
        }
        row.push(l.kernels.to_string());
        t.row(row);
    }
    doc.push(Block::Para(format!(
        "Layers of pass {}:",
        p.representative_pass
    )));
    doc.push(Block::Table(t));
}

/// A numeric column named after a category.
fn category_column(c: &str) -> &'static str {
    match c {
        "communication" => ">communication",
        "memory" => ">memory",
        "hybrid_linear" => ">hybrid_linear",
        "attention" => ">attention",
        "moe" => ">moe",
        "gemm" => ">gemm",
        "norm" => ">norm",
        "rope" => ">rope",
        "softmax" => ">softmax",
        "activation" => ">activation",
        "quantize" => ">quantize",
        "reduce_topk" => ">reduce_topk",
        "elementwise" => ">elementwise",
        _ => ">other",
    }
}

/// Longest kernel name shown in a table (the JSON keeps every name whole).
const NAME_CHARS: usize = 96;

/// A long name keeps its head and its tail (kernels of one family differ at either end).
pub fn clip(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= NAME_CHARS {
        return name.to_string();
    }
    let head = NAME_CHARS * 3 / 5;
    let tail = NAME_CHARS - head - 1;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[chars.len() - tail..]);
    s
}

/// Clipped names, except where two clip alike (kernels of one family often differ only
/// in the middle of a long name): those are shown whole.
pub fn distinct_clips<'a>(names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    let clips: Vec<String> = names.iter().map(|n| clip(n)).collect();
    clips
        .iter()
        .zip(&names)
        .map(|(c, n)| {
            if clips.iter().filter(|x| *x == c).count() > 1 {
                (*n).to_string()
            } else {
                c.clone()
            }
        })
        .collect()
}

/// A duration for a table: ms with two decimals, µs below 10 µs.
pub fn time(us: f64) -> String {
    if us.abs() >= 10.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}
