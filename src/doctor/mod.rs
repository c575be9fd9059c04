//! `forge doctor`: is this machine ready for a tuning run? Checks the engine (found, and
//! its version), the GPUs (detection, mixed models, spec-table match), NVML, the agent
//! LLM's API key (set or not — never its value), and free space for the run directory.
//! Each check prints `ok`, `warn` or `fail` with one line of detail and, unless ok, a
//! `hint:` saying how to fix it. Exit status 1 when any check fails.

pub mod checks;

use std::path::PathBuf;

use crate::hardware::{DetectOptions, Device, detect};
use crate::recipe::EngineKind;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Ready.
    Ok,
    /// Works, but something is worth fixing.
    Warn,
    /// A tuning run would not work.
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`engine`, `gpu`, ...).
    pub name: &'static str,
    /// Verdict.
    pub status: Status,
    /// One line of detail.
    pub detail: String,
    /// Further facts, one line each (warnings from detection).
    pub notes: Vec<String>,
    /// How to fix it (for anything not ok).
    pub hint: Option<String>,
}

impl Check {
    /// An ok check.
    pub fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            status: Status::Ok,
            detail: detail.into(),
            notes: Vec::new(),
            hint: None,
        }
    }

    /// A warning with its hint.
    pub fn warn(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Check {
            status: Status::Warn,
            hint: Some(hint.into()),
            ..Check::ok(name, detail)
        }
    }

    /// A failure with its hint.
    pub fn fail(name: &'static str, detail: impl Into<String>, hint: impl Into<String>) -> Self {
        Check {
            status: Status::Fail,
            hint: Some(hint.into()),
            ..Check::ok(name, detail)
        }
    }

    /// The same check with notes attached.
    pub fn with_notes(mut self, notes: Vec<String>) -> Self {
        self.notes = notes;
        self
    }
}

/// What `forge doctor` checks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Engine to check.
    pub engine: EngineKind,
    /// Launcher for the engine, as for `forge tune` (split on whitespace, never a shell).
    pub engine_cmd: Option<String>,
    /// Store directory whose disk to check.
    pub run_dir: PathBuf,
    /// Agent LLM as provider/model: whose API key to look for.
    pub llm: String,
    /// GPU backend.
    pub device: Device,
    /// Warn below this much free disk, GiB.
    pub min_free_gib: f64,
}

/// Every check for `o`, on this machine and environment.
pub fn run(o: &Options) -> Vec<Check> {
    let opts = DetectOptions::from_env(o.device);
    let report = detect(&opts);
    let env = |k: &str| std::env::var(k).ok();
    checks::all(o, &report, &env)
}

/// The checks as text: one line each, notes and hints indented under it, then a tally.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!(
            "{:<5} {:<8} {}\n",
            c.status.label(),
            c.name,
            c.detail
        ));
        for n in &c.notes {
            out.push_str(&format!("{:14}note: {n}\n", ""));
        }
        if let Some(h) = &c.hint {
            out.push_str(&format!("{:14}hint: {h}\n", ""));
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    out.push_str(&format!(
        "{} ok, {} warn, {} fail\n",
        count(Status::Ok),
        count(Status::Warn),
        count(Status::Fail)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lines_notes_hints_and_tally() {
        let checks = vec![
            Check::ok("engine", "vllm 0.10.2"),
            Check::warn("api key", "X is not set", "export X").with_notes(vec!["n".into()]),
            Check::fail("disk", "full", "free space"),
        ];
        assert_eq!(
            render(&checks),
            "ok    engine   vllm 0.10.2\n\
             warn  api key  X is not set\n\
             \x20             note: n\n\
             \x20             hint: export X\n\
             fail  disk     full\n\
             \x20             hint: free space\n\
             1 ok, 1 warn, 1 fail\n"
        );
    }
}
