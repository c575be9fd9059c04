//! The exact command that deploys a recipe: its argv rendered through the same allowlist
//! and version table forge boots engines with, the environment the engine needs (the
//! attention backend of a vLLM before 0.13, as `NAME=value` words first) and the files it
//! reads (trtllm-serve's YAML); a llama.cpp recipe with `kernels.patch` deploys the patched
//! build its run kept beside it, one with `quant.method` the requantized model. [`display`] only joins it into one line for a person,
//! quoting each word for a POSIX shell. Used by `forge recipe command` and by the gate's
//! `winning-commands.md`.

use crate::engine::llamacpp::flags::{render_deploy, render_deploy_file};
use crate::engine::llamacpp::{quant, source};
use crate::engine::vllm::checked::serve_command;
use crate::engine::vllm::flags::Version;
use crate::recipe::{EngineKind, Recipe};

/// A deployment command: environment to set, then argv (program first). Never a shell
/// string; [`display`] only shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Deploy {
    /// `(name, value)` to set in the engine's environment.
    pub env: Vec<(String, String)>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Files the command reads, `(name, content)`, written first (trtllm-serve's YAML).
    pub files: Vec<(String, String)>,
}

/// The file name trtllm-serve's deploy command reads its YAML from.
const TRTLLM_YAML: &str = "extra_llm_api_options.yaml";

/// Where the deployed server listens and which vLLM release its flags are for.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    /// Host to bind.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// vLLM release to render flags for (`0.33.0`).
    pub vllm_version: &'a str,
    /// What names the recipe in errors (its file).
    pub source: &'a str,
}

/// The command that deploys `recipe`.
pub fn render(recipe: &Recipe, a: &Target<'_>) -> anyhow::Result<Deploy> {
    let at = |e: &dyn std::fmt::Display| anyhow::anyhow!("{}: {e}", a.source);
    match recipe.engine {
        EngineKind::Vllm => {
            let version = Version::parse(a.vllm_version).ok_or_else(|| {
                anyhow::anyhow!("--vllm-version: `{}` is not a version", a.vllm_version)
            })?;
            let mut args = crate::engine::vllm::recipe::to_vllm_args(recipe).map_err(|e| at(&e))?;
            args.host = Some(a.host.to_string());
            args.port = Some(a.port);
            let serve = serve_command(&args, version, None).map_err(|e| at(&e))?;
            let mut argv = vec!["vllm".to_string(), "serve".to_string()];
            argv.extend(serve.args);
            Ok(Deploy {
                env: serve.env,
                argv,
                files: Vec::new(),
            })
        }
        EngineKind::Sglang => Ok(Deploy {
            env: Vec::new(),
            argv: crate::engine::sglang::flags::deploy(recipe, a.host, a.port)
                .map_err(|e| at(&e))?,
            files: Vec::new(),
        }),
        EngineKind::Trtllm => {
            let (argv, yaml) =
                crate::engine::trtllm::flags::deploy(recipe, a.host, a.port).map_err(|e| at(&e))?;
            let files = yaml
                .map(|y| vec![(TRTLLM_YAML.to_string(), y)])
                .unwrap_or_default();
            Ok(Deploy {
                env: Vec::new(),
                argv,
                files,
            })
        }
        EngineKind::Llamacpp => {
            // A patched build, a requantized model: what the run kept beside the recipe.
            let file = std::path::Path::new(a.source);
            let mut argv = match source::patch_of(recipe) {
                Some(p) => source::deploy_launcher(file, p).map_err(|e| at(&e))?,
                None => vec!["llama-server".to_string()],
            };
            let args = match quant::method_of(recipe) {
                Some(ty) => {
                    let model = quant::deployed_model(file, ty).map_err(|e| at(&e))?;
                    render_deploy_file(recipe, &model, a.host, a.port)
                }
                None => render_deploy(recipe, a.host, a.port),
            };
            argv.extend(args.map_err(|e| at(&e))?);
            Ok(Deploy {
                env: Vec::new(),
                argv,
                files: Vec::new(),
            })
        }
    }
}

/// One line for a person to copy: `NAME=value` words, then the argv, each word quoted for
/// a POSIX shell when it needs it (an assignment's value only: a quoted name would make
/// the shell read the word as a command, not an assignment).
pub fn display(d: &Deploy) -> String {
    let env = d.env.iter().map(|(k, v)| format!("{k}={}", quote(v)));
    let command = env
        .chain(d.argv.iter().map(|w| quote(w)))
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    for (name, content) in &d.files {
        let end = if content.ends_with('\n') { "" } else { "\n" };
        out.push_str(&format!(
            "cat > {} <<'EOF'\n{content}{end}EOF\n",
            quote(name)
        ));
    }
    out + &command
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
        let d = Deploy {
            env: vec![
                ("VLLM_ATTENTION_BACKEND".into(), "FLASHINFER".into()),
                ("X".into(), "a b".into()),
            ],
            argv: vec![
                "vllm".into(),
                "serve".into(),
                "a b".into(),
                "{\"k\": 1}".into(),
                "it's".into(),
            ],
            files: Vec::new(),
        };
        assert_eq!(
            display(&d),
            "VLLM_ATTENTION_BACKEND=FLASHINFER X='a b' vllm serve 'a b' '{\"k\": 1}' 'it'\\''s'"
        );
    }

    #[test]
    fn a_file_the_command_reads_is_written_first() {
        let d = Deploy {
            env: Vec::new(),
            argv: vec!["trtllm-serve".into(), "serve".into(), "m".into()],
            files: vec![("x.yaml".into(), "a: 1".into())],
        };
        assert_eq!(
            display(&d),
            "cat > x.yaml <<'EOF'\na: 1\nEOF\ntrtllm-serve serve m"
        );
    }
}
