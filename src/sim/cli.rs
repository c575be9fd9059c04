//! `forge sim serve` / `forge sim predict`: their argv (vLLM flags + --sim-* flags).
//!
//! INTERFACE STUB: to be completed by the sim-server work.

/// Extra help for `forge sim serve`.
pub const SERVE_HELP: &str = "";
/// Extra help for `forge sim predict`.
pub const PREDICT_HELP: &str = "";

use std::process::ExitCode;

use crate::cli::SimRawArgs;

/// `forge sim serve`.
pub fn serve_main(_args: SimRawArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge sim serve is not built yet")
}

/// `forge sim predict`.
pub fn predict_main(_args: SimRawArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge sim predict is not built yet")
}
