//! `--compare`: two analyses side by side — two frameworks on one workload, or one engine
//! before and after a patch — per stage found in both: GPU time by category, then by
//! matched kernel (same short name), then the biggest kernels only one side runs.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use super::render::{Block, Tab, clip, time, to_markdown, to_text};
use super::{Analysis, StageAnalysis, framework_name};

/// Unmatched kernels listed per side.
const ONLY: usize = 6;

/// One stage of two traces.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The first trace.
    pub a: PathBuf,
    /// Its framework.
    pub a_framework: &'static str,
    /// The second trace.
    pub b: PathBuf,
    /// Its framework.
    pub b_framework: &'static str,
    /// The stage (`None`: all).
    pub stage: Option<super::Stage>,
    /// Kernel time of each, µs.
    pub a_us: f64,
    /// Kernel time of each, µs.
    pub b_us: f64,
    /// By category, biggest difference first.
    pub by_category: Vec<Side>,
    /// By kernel present in both, biggest difference first.
    pub matched: Vec<Side>,
    /// Kernels only the first runs, longest first.
    pub only_a: Vec<Side>,
    /// Kernels only the second runs, longest first.
    pub only_b: Vec<Side>,
}

/// One line of a comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// Category or kernel.
    pub name: String,
    /// Category (for kernels).
    pub category: &'static str,
    /// GPU time in the first, µs.
    pub a_us: f64,
    /// GPU time in the second, µs.
    pub b_us: f64,
    /// Launches in the first.
    pub a_launches: u64,
    /// Launches in the second.
    pub b_launches: u64,
}

/// Compare `a` and `b` per stage they share (their first sections when none is shared).
pub fn compare(a: &Analysis, b: &Analysis) -> Vec<Comparison> {
    let mut out: Vec<Comparison> = a
        .stages
        .iter()
        .filter_map(|sa| {
            let sb = b.stages.iter().find(|sb| sb.stage == sa.stage)?;
            Some(stage(a, sa, b, sb))
        })
        .collect();
    if out.is_empty()
        && let (Some(sa), Some(sb)) = (a.stages.first(), b.stages.first())
    {
        out.push(stage(a, sa, b, sb));
    }
    out
}

fn stage(a: &Analysis, sa: &StageAnalysis, b: &Analysis, sb: &StageAnalysis) -> Comparison {
    let mut cats: HashMap<&'static str, Side> = HashMap::new();
    for (r, first) in sa
        .kernels
        .iter()
        .map(|r| (r, true))
        .chain(sb.kernels.iter().map(|r| (r, false)))
    {
        let s = cats
            .entry(r.category)
            .or_insert_with(|| side(r.category, r.category));
        add(s, r.gpu_us, r.launches, first);
    }
    let mut kernels: HashMap<&str, Side> = HashMap::new();
    for (r, first) in sa
        .kernels
        .iter()
        .map(|r| (r, true))
        .chain(sb.kernels.iter().map(|r| (r, false)))
    {
        let s = kernels
            .entry(r.kernel.as_str())
            .or_insert_with(|| side(&r.kernel, r.category));
        add(s, r.gpu_us, r.launches, first);
    }
    let by_delta = |v: &mut Vec<Side>| {
        v.sort_by(|x, y| {
            (y.b_us - y.a_us)
                .abs()
                .total_cmp(&(x.b_us - x.a_us).abs())
                .then(x.name.cmp(&y.name))
        });
    };
    let mut by_category: Vec<Side> = cats.into_values().collect();
    by_delta(&mut by_category);
    let (mut matched, rest): (Vec<Side>, Vec<Side>) = kernels
        .into_values()
        .partition(|s| s.a_launches > 0 && s.b_launches > 0);
    by_delta(&mut matched);
    let mut only_a: Vec<Side> = rest.iter().filter(|s| s.b_launches == 0).cloned().collect();
    let mut only_b: Vec<Side> = rest.into_iter().filter(|s| s.a_launches == 0).collect();
    only_a.sort_by(|x, y| y.a_us.total_cmp(&x.a_us).then(x.name.cmp(&y.name)));
    only_b.sort_by(|x, y| y.b_us.total_cmp(&x.b_us).then(x.name.cmp(&y.name)));
    only_a.truncate(ONLY);
    only_b.truncate(ONLY);
    Comparison {
        a: a.path.clone(),
        a_framework: framework_name(a.framework),
        b: b.path.clone(),
        b_framework: framework_name(b.framework),
        stage: sa.stage,
        a_us: sa.kernel_us,
        b_us: sb.kernel_us,
        by_category,
        matched,
        only_a,
        only_b,
    }
}

fn side(name: &str, category: &'static str) -> Side {
    Side {
        name: name.to_string(),
        category,
        a_us: 0.0,
        b_us: 0.0,
        a_launches: 0,
        b_launches: 0,
    }
}

fn add(s: &mut Side, us: f64, launches: u64, first: bool) {
    if first {
        s.a_us += us;
        s.a_launches += launches;
    } else {
        s.b_us += us;
        s.b_launches += launches;
    }
}

/// Comparisons as Markdown.
pub fn markdown(cs: &[Comparison]) -> String {
    to_markdown(&document(cs))
}

/// Comparisons as plain text.
pub fn text(cs: &[Comparison]) -> String {
    to_text(&document(cs))
}

/// The comparisons as a document.
pub fn document(cs: &[Comparison]) -> Vec<Block> {
    let mut doc = vec![Block::Heading(1, "Trace comparison".into())];
    for c in cs {
        doc.push(Block::Heading(
            2,
            match c.stage {
                Some(s) => format!("Stage: {s}"),
                None => "All stages".into(),
            },
        ));
        doc.push(Block::Para(format!(
            "A = `{}` ({}): {}. B = `{}` ({}): {}. B − A: {} ({:+.1}%).",
            c.a.display(),
            c.a_framework,
            time(c.a_us),
            c.b.display(),
            c.b_framework,
            time(c.b_us),
            time(c.b_us - c.a_us),
            if c.a_us > 0.0 {
                (c.b_us / c.a_us - 1.0) * 100.0
            } else {
                0.0
            }
        )));
        doc.push(Block::Heading(3, "By category".into()));
        doc.push(Block::Table(table(&c.by_category, c, false)));
        doc.push(Block::Heading(3, "By matched kernel".into()));
        if c.matched.is_empty() {
            doc.push(Block::Para("No kernel name appears in both traces.".into()));
        } else {
            doc.push(Block::Table(table(&c.matched, c, true)));
        }
        for (label, rows) in [("Only in A", &c.only_a), ("Only in B", &c.only_b)] {
            if !rows.is_empty() {
                doc.push(Block::Heading(3, label.into()));
                doc.push(Block::Table(table(rows, c, true)));
            }
        }
    }
    doc
}

fn table(rows: &[Side], c: &Comparison, kernels: bool) -> Tab {
    let mut t = Tab::new(if kernels {
        &[
            "Kernel",
            "Category",
            ">A",
            ">A launches",
            ">B",
            ">B launches",
            ">B − A",
        ]
    } else {
        &["Category", ">A", ">A share", ">B", ">B share", ">B − A"]
    });
    let share = |us: f64, of: f64| {
        if of > 0.0 {
            format!("{:.1}%", us / of * 100.0)
        } else {
            "—".into()
        }
    };
    for s in rows {
        t.row(if kernels {
            vec![
                clip(&s.name),
                s.category.to_string(),
                time(s.a_us),
                s.a_launches.to_string(),
                time(s.b_us),
                s.b_launches.to_string(),
                time(s.b_us - s.a_us),
            ]
        } else {
            vec![
                s.name.clone(),
                time(s.a_us),
                share(s.a_us, c.a_us),
                time(s.b_us),
                share(s.b_us, c.b_us),
                time(s.b_us - s.a_us),
            ]
        });
    }
    t
}
