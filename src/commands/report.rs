//! `forge report RUN_OR_STORE [--format …] [-o FILE]`: read a run (or a store's latest
//! run) and print it, or write it to a file.

use std::process::ExitCode;

use crate::cli::ReportArgs;
use crate::{record, report, store};

/// `forge report`.
pub fn main(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let dir = store::resolve_run_path(&args.path)?;
    let run = record::load(&dir)?;
    let text = report::render(&run, args.format)?;
    match &args.output {
        Some(file) => {
            store::write_atomic(file, text.as_bytes())
                .map_err(|e| anyhow::anyhow!("-o {}: {e}", file.display()))?;
            eprintln!("forge: wrote {}", file.display());
        }
        None => crate::term::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
