//! `forge recipe command RECIPE.yaml`: the exact command line a user deploys. The argv is
//! rendered through the same allowlist and version table forge boots engines with; only
//! the display joins it into one line, quoting each word for a POSIX shell. Environment
//! variables the engine needs (the attention backend of a vLLM before 0.13) come first, as
//! `NAME=value` words.

use std::process::ExitCode;

use crate::cli::{RecipeCmd, RecipeCommandArgs};
use crate::engine::deploy::{Target, display, render};
use crate::recipe::Recipe;

/// Run a recipe command.
pub fn main(cmd: RecipeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RecipeCmd::Command(a) => command(&a),
    }
}

fn command(a: &RecipeCommandArgs) -> anyhow::Result<ExitCode> {
    let recipe = Recipe::load(&a.recipe)?;
    let source = a.recipe.display().to_string();
    let target = Target {
        host: &a.host,
        port: a.port,
        vllm_version: &a.vllm_version,
        source: &source,
    };
    let deploy = render(&recipe, &target)?;
    crate::term::println(&display(&deploy))?;
    Ok(ExitCode::SUCCESS)
}
