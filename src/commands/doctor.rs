//! `forge doctor`: print every readiness check; exit 1 when any failed.

use std::process::ExitCode;

use crate::cli::DoctorArgs;
use crate::doctor::{self, Options, Status};

/// Run `forge doctor`.
pub fn main(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let checks = doctor::run(&Options {
        engine: args.engine,
        engine_cmd: args.engine_cmd,
        run_dir: args.run_dir,
        llm: args.llm,
        device: args.device,
        min_free_gib: args.min_free_gib,
    });
    crate::term::print(&doctor::render(&checks))?;
    let failed = checks.iter().any(|c| c.status == Status::Fail);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
