//! `forge trace analyze TRACE|DIR`: the arguments resolved into [`crate::trace::Options`]
//! (the layer count read from `--config`), the traces picked ([`crate::trace::input`]),
//! analyzed, optionally compared with `--compare`, and printed as Markdown, text or JSON.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::cli::{TraceAnalyzeArgs, TraceCmd, TraceFormat, TraceStage};
use crate::trace::{self, Analysis, Options, Stage, Stages, compare, render};

/// Run a trace command.
pub fn main(cmd: TraceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCmd::Analyze(a) => analyze(&a),
    }
}

fn analyze(a: &TraceAnalyzeArgs) -> anyhow::Result<ExitCode> {
    let opts = options(a)?;
    let first = analyze_all(&a.trace, &opts)?;
    let text = match &a.compare {
        Some(other) => {
            let second = analyze_all(other, &opts)?;
            let cs: Vec<compare::Comparison> = first
                .iter()
                .flat_map(|x| second.iter().flat_map(move |y| compare::compare(x, y)))
                .filter(|c| {
                    // One comparison per stage: a directory on each side pairs its traces
                    // stage by stage.
                    c.stage.is_some() || first.len() == 1
                })
                .collect();
            match a.format {
                TraceFormat::Md => compare::markdown(&cs),
                TraceFormat::Text => compare::text(&cs),
                TraceFormat::Json => serde_json::to_string_pretty(&cs)?,
            }
        }
        None => match a.format {
            TraceFormat::Md => first
                .iter()
                .map(render::markdown)
                .collect::<Vec<_>>()
                .join("\n"),
            TraceFormat::Text => first
                .iter()
                .map(render::text)
                .collect::<Vec<_>>()
                .join("\n"),
            TraceFormat::Json => {
                if first.len() == 1 {
                    serde_json::to_string_pretty(&first[0])?
                } else {
                    serde_json::to_string_pretty(&first)?
                }
            }
        },
    };
    crate::term::println(text.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// The analysis options the arguments ask for.
fn options(a: &TraceAnalyzeArgs) -> anyhow::Result<Options> {
    Ok(Options {
        framework: Some(a.framework),
        stages: match a.stage {
            None => Stages::Each,
            Some(TraceStage::All) => Stages::All,
            Some(TraceStage::Prefill) => Stages::Only(Stage::Prefill),
            Some(TraceStage::Decode) => Stages::Only(Stage::Decode),
            Some(TraceStage::Mixed) => Stages::Only(Stage::Mixed),
        },
        layers: a
            .config
            .as_deref()
            .map(trace::layers_in_config)
            .transpose()?,
        anchor: a.anchor.clone(),
    })
}

/// Every trace `path` stands for, analyzed.
fn analyze_all(path: &Path, opts: &Options) -> anyhow::Result<Vec<Analysis>> {
    trace::input::traces(path)?
        .into_iter()
        .map(|p| {
            trace::analyze(&p.path, opts).with_context(|| format!("analyzing {}", p.path.display()))
        })
        .collect()
}
