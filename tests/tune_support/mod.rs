//! Shared harness for `forge tune` integration tests: run the real binary in a temporary
//! store, tag every process it starts (an environment variable children inherit) so the
//! test can prove none survives, and read the run's journal.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Environment variable carrying the test's tag into every descendant.
pub const TAG_VAR: &str = "FORGE_TEST_TAG";

/// A temporary store plus a unique tag.
pub struct Sandbox {
    /// Temporary directory (the store is `<dir>/.forge`).
    pub dir: tempfile::TempDir,
    /// Unique tag.
    pub tag: String,
}

impl Sandbox {
    /// A fresh sandbox.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "t{}-{}",
            std::process::id(),
            dir.path().display().to_string().replace('/', "_")
        );
        Sandbox { dir, tag }
    }

    /// `forge args...` run inside the sandbox (cwd), tagged, in its own process group.
    pub fn forge(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_forge"));
        c.args(args)
            .current_dir(self.dir.path())
            .env(TAG_VAR, &self.tag)
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("OPENAI_API_KEY")
            .stdin(Stdio::null())
            .process_group(0);
        c
    }

    /// Run to completion, capturing output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.forge(args).output().unwrap()
    }

    /// The store root.
    pub fn store(&self) -> PathBuf {
        self.dir.path().join(".forge")
    }

    /// The only run directory in the store.
    pub fn run_dir(&self) -> PathBuf {
        let runs: Vec<PathBuf> = std::fs::read_dir(self.store().join("runs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1, "{runs:?}");
        runs[0].clone()
    }

    /// Pids of live (non-zombie) processes carrying this sandbox's tag.
    pub fn tagged_processes(&self) -> Vec<(i32, String)> {
        tagged(&self.tag)
    }

    /// Wait up to `limit` for every tagged process to be gone; return the survivors.
    pub fn survivors_after(&self, limit: Duration) -> Vec<(i32, String)> {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.tagged_processes();
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Whatever a failed test left behind must not outlive it.
        for (pid, _) in tagged(&self.tag) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn tagged(tag: &str) -> Vec<(i32, String)> {
    let needle = format!("{TAG_VAR}={tag}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(env) = std::fs::read(e.path().join("environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            continue;
        }
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z'));
        if !zombie {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            out.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    out
}

/// Every complete row of a journal.
pub fn journal(run_dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(run_dir.join("experiments.jsonl")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Complete lines of a journal, as text (for byte-exact comparisons across crashes).
pub fn journal_lines(run_dir: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(run_dir.join("experiments.jsonl")).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(str::to_string).collect()
}

/// A small workload (short prompts, short outputs) for fast tuning tests.
pub fn small_workload(dir: &Path, n: usize) -> PathBuf {
    let mut text = String::new();
    for i in 0..n {
        let prompt = format!(
            "Request {i}: explain why the sky looks blue in about {} words.",
            20 + 5 * i
        );
        text.push_str(
            &serde_json::json!({"prompt": prompt, "expected_output_tokens": 24 + 8 * (i % 4)})
                .to_string(),
        );
        text.push('\n');
    }
    let p = dir.join("small.jsonl");
    std::fs::write(&p, text).unwrap();
    p
}

/// The repository's sample workload.
pub fn sample_workload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample_workload.jsonl")
}
