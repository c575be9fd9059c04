//! `forge report RUN_OR_STORE [--format …]`: read a run (or a store's latest run) and print
//! it.

use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::{record, report, store};

/// `forge report`.
pub fn main(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let dir = store::resolve_run_path(&args.path)?;
    let run = record::load(&dir)?;
    crate::term::print(&report::render(&run, args.format)?)?;
    Ok(ExitCode::SUCCESS)
}
