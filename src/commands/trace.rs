//! `forge trace analyze TRACE`: the trace analyzed by [`crate::trace`], printed as
//! Markdown or JSON.

use std::process::ExitCode;

use crate::cli::{TraceCmd, TraceFormat};

/// Run a trace command.
pub fn main(cmd: TraceCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        TraceCmd::Analyze(a) => {
            let analysis = crate::trace::analyze(&a.trace)?;
            let text = match a.format {
                TraceFormat::Md => crate::trace::markdown(&analysis),
                TraceFormat::Json => serde_json::to_string_pretty(&analysis)?,
            };
            crate::term::println(text.trim_end())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
