//! The official `openai` Python SDK, for the end-to-end test of the simulator's OpenAI API
//! (`tests/openai_sdk.py`): the interpreter `scripts/test.sh` prepares (a venv under
//! `~/.cache/forge-peers/py`, or `$FORGE_PEERS/py`, with a pinned `openai`, exported as
//! `FORGE_PYTHON`), else that venv if it is there, else `python3`. When the interpreter
//! cannot import `openai` a test skips with a message written straight to stderr (past the
//! test harness's capture), or fails when `FORGE_REQUIRE_OPENAI=1` says it must be there.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn cached_venv() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let root = std::env::var_os("FORGE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/forge-peers"));
    Some(root.join("py/bin/python")).filter(|p| p.is_file())
}

/// The interpreter to use (it may lack `openai`).
fn interpreter() -> PathBuf {
    std::env::var_os("FORGE_PYTHON")
        .map(PathBuf::from)
        .or_else(cached_venv)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The `openai` version `python` imports, or why it cannot.
fn openai_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import openai; print(openai.__version__)"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {python:?}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().unwrap_or("").to_string();
    Err(format!("{python:?} cannot import openai ({last})"))
}

/// A Python with the `openai` package, or `None` after saying loudly why `test` is skipped.
pub fn python(test: &str) -> Option<PathBuf> {
    let python = interpreter();
    match openai_version(&python) {
        Ok(_) => Some(python),
        Err(why) => {
            let why = format!(
                "{why}.\n*** scripts/test.sh installs it (a venv under ~/.cache/forge-peers/py), \
                 or set FORGE_PYTHON to a Python that has it."
            );
            assert!(
                std::env::var("FORGE_REQUIRE_OPENAI").as_deref() != Ok("1"),
                "{test}: FORGE_REQUIRE_OPENAI=1 but {why}"
            );
            let msg = format!("\n*** SKIPPED {test}: {why}\n");
            let _ = std::io::stderr().write_all(msg.as_bytes());
            None
        }
    }
}
