//! `forge tune` / `forge tune resume`.

use std::process::ExitCode;

use crate::cli::TuneCli;

/// Run `forge tune`.
pub fn main(_cli: TuneCli) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge tune is not built yet")
}
