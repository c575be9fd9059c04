//! `forge recipe command RECIPE.yaml`: the exact command line a user deploys. The argv is
//! rendered through the same allowlist and version table forge boots engines with; only
//! the display joins it into one line, quoting each word for a POSIX shell.

use std::process::ExitCode;

use crate::cli::{RecipeCmd, RecipeCommandArgs};
use crate::engine::vllm::flags::{self, Version};
use crate::recipe::{EngineKind, Recipe};

/// Run a recipe command.
pub fn main(cmd: RecipeCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        RecipeCmd::Command(a) => command(&a),
    }
}

fn command(a: &RecipeCommandArgs) -> anyhow::Result<ExitCode> {
    let recipe = Recipe::load(&a.recipe)?;
    let argv = render(&recipe, a)?;
    crate::term::println(&display(&argv))?;
    Ok(ExitCode::SUCCESS)
}

/// The argv (program first) that deploys `recipe`.
pub fn render(recipe: &Recipe, a: &RecipeCommandArgs) -> anyhow::Result<Vec<String>> {
    match recipe.engine {
        EngineKind::Vllm => {
            let version = Version::parse(&a.vllm_version).ok_or_else(|| {
                anyhow::anyhow!("--vllm-version: `{}` is not a version", a.vllm_version)
            })?;
            let mut args = crate::engine::vllm::recipe::to_vllm_args(recipe)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.recipe.display()))?;
            args.host = Some(a.host.clone());
            args.port = Some(a.port);
            let rendered = flags::render(&args, version).map_err(|e| {
                anyhow::anyhow!(
                    "{}: {e} (recipe field has no flag in vLLM {version})",
                    a.recipe.display()
                )
            })?;
            let mut argv = vec!["vllm".to_string(), "serve".to_string()];
            argv.extend(rendered);
            Ok(argv)
        }
        EngineKind::Llamacpp => anyhow::bail!(
            "{}: llama.cpp recipes are rendered by the llama.cpp adapter",
            a.recipe.display()
        ),
    }
}

/// One line for a person to copy: each word quoted for a POSIX shell when it needs it.
pub fn display(argv: &[String]) -> String {
    argv.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ")
}

fn quote(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(
            display(&[
                "vllm".into(),
                "serve".into(),
                "a b".into(),
                "{\"k\": 1}".into(),
                "it's".into()
            ]),
            "vllm serve 'a b' '{\"k\": 1}' 'it'\\''s'"
        );
    }
}
