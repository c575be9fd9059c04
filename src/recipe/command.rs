//! `forge recipe command RECIPE.yaml`: the exact command line a user deploys.

use std::process::ExitCode;

use crate::cli::RecipeCmd;

/// Run a recipe command.
pub fn main(_cmd: RecipeCmd) -> anyhow::Result<ExitCode> {
    anyhow::bail!("forge recipe command is not built yet")
}
