//! vLLM: the performance flags of `vllm serve`, their defaults as vLLM resolves them for a
//! GPU, and (in [`flags`]) their argv parsing and rendering.

pub mod adapter;
pub mod checked;
pub mod config;
pub mod flags;
pub mod help;
pub mod knobs;
pub mod logs;
pub mod probe;
pub mod recipe;
pub mod version;

pub use config::{KvCacheDtype, PerformanceMode, SchedulingPolicy, VllmArgs, VllmConfig};
pub use recipe::effective;

/// Check a `--model` for vLLM before a run directory exists: a local path must be a
/// directory holding `config.json` (or Mistral's `params.json`) or a GGUF file; anything
/// else must be a well-formed Hugging Face repository id (`name` or `org/name`: letters,
/// digits, `-`, `_`, `.`; at most 96 characters; no `--` or `..`). Whether the repository
/// exists is for vLLM to find out (offline hosts, private mirrors): a typo it reports
/// becomes a `model_not_found` baseline.
pub fn check_model(model: &str) -> anyhow::Result<()> {
    let path = std::path::Path::new(model);
    let path_like = model.starts_with(['/', '.', '~']) || path.exists();
    if path_like {
        let ok = (path.is_dir()
            && (path.join("config.json").is_file() || path.join("params.json").is_file()))
            || (path.is_file() && model.ends_with(".gguf"));
        anyhow::ensure!(
            ok,
            "--model {model}: not a directory with a config.json (or params.json) nor a .gguf file"
        );
        return Ok(());
    }
    anyhow::ensure!(
        is_repo_id(model),
        "--model {model}: not a Hugging Face repository id (`org/name`) nor a local path"
    );
    Ok(())
}

fn is_repo_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    let part_ok = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !p.starts_with(['-', '.'])
            && !p.ends_with(['-', '.'])
    };
    (1..=2).contains(&parts.len())
        && parts.iter().all(part_ok)
        && id.len() <= 96
        && !id.contains("--")
        && !id.contains("..")
}

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn repo_ids_and_paths() {
        for ok in [
            "Qwen/Qwen2.5-7B-Instruct",
            "gpt2",
            "meta-llama/Llama-3.1-8B",
        ] {
            assert!(check_model(ok).is_ok(), "{ok}");
        }
        for bad in [
            "Qwen//x",
            "a/b/c",
            "org/name with space",
            "org/-x",
            "x--y/z",
            "/nonexistent/dir",
            "./nope",
        ] {
            let e = check_model(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--model {bad}: ")), "{e}");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        assert!(check_model(d).is_err(), "a directory without config.json");
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(check_model(d).is_ok());
    }
}
