//! STUB: the open-loop driver and the `forge bench` command, to be written by the bench work.

use std::process::ExitCode;

use crate::cli::BenchArgs;

/// `forge bench`.
pub fn main(_args: BenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge bench is not built yet")
}
