//! `forge report`: a run's baseline, best, gain with its interval, every experiment, and
//! failures by kind, as a table, TSV, JSON or Markdown.

use std::process::ExitCode;

use crate::cli::ReportArgs;

/// `forge report`.
pub fn main(_args: ReportArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge report is not built yet")
}
