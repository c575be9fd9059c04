//! Failure classes of an experiment. A failed boot or a crashed server is an experiment
//! *result*: recorded with its class and the engine's own hint lines, fed to the agent, and
//! the run goes on. Infeasible configs are never retried from the same base; infrastructure
//! failures may be retried once.

use serde::{Deserialize, Serialize};

/// Why an experiment produced no (usable) measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// The config does not fit in memory (weights, KV blocks, or KV below max_model_len).
    InfeasibleOom,
    /// The engine rejected the arguments (argparse exit 2, ValueError).
    InfeasibleConfig,
    /// Not ready within the boot timeout.
    BootTimeout,
    /// The engine exited while booting without saying why (killed, a crash): it never
    /// served a request.
    CrashedDuringBoot,
    /// The server died (or returned 5xx/garbage for everything) while being measured.
    CrashedDuringBench,
    /// The engine cannot find or open the model (a typo, a private or gated repository,
    /// a directory without a config): no recipe of this run can serve it.
    ModelNotFound,
    /// The engine executable (or module) is not installed.
    EngineMissing,
    /// Something else answered on the port; it was not measured.
    ForeignServer,
    /// What the recipe runs could not be made: its patched source (the patch was refused,
    /// did not apply, or did not compile) or its requantized model (llama-quantize or
    /// llama-imatrix failed). A property of the recipe, never retried.
    BuildFailed,
}

impl FailureClass {
    /// Every class, in report order.
    pub const ALL: [FailureClass; 9] = [
        FailureClass::InfeasibleOom,
        FailureClass::InfeasibleConfig,
        FailureClass::BootTimeout,
        FailureClass::CrashedDuringBoot,
        FailureClass::CrashedDuringBench,
        FailureClass::ModelNotFound,
        FailureClass::EngineMissing,
        FailureClass::ForeignServer,
        FailureClass::BuildFailed,
    ];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::InfeasibleOom => "infeasible_oom",
            FailureClass::InfeasibleConfig => "infeasible_config",
            FailureClass::BootTimeout => "boot_timeout",
            FailureClass::CrashedDuringBoot => "crashed_during_boot",
            FailureClass::CrashedDuringBench => "crashed_during_bench",
            FailureClass::ModelNotFound => "model_not_found",
            FailureClass::EngineMissing => "engine_missing",
            FailureClass::ForeignServer => "foreign_server",
            FailureClass::BuildFailed => "build_failed",
        }
    }

    /// A property of the config: never retried, never re-proposed from the same base.
    pub fn is_infeasible(self) -> bool {
        matches!(
            self,
            FailureClass::InfeasibleOom
                | FailureClass::InfeasibleConfig
                | FailureClass::BuildFailed
        )
    }

    /// A property of the machine or the moment: worth one retry.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            FailureClass::BootTimeout
                | FailureClass::CrashedDuringBoot
                | FailureClass::CrashedDuringBench
                | FailureClass::ForeignServer
        )
    }
}

/// A classified failure with the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The class.
    pub class: FailureClass,
    /// Exit code of the engine, if it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Signal that ended it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// One-line summary.
    pub summary: String,
    /// The engine's own lines that explain it (e.g. "estimated maximum model length is
    /// 12345"), for the report and the agent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
}

impl Failure {
    /// A `build_failed` failure: what could not be made, and the tool's own lines.
    pub fn build_failed(summary: String, hints: Vec<String>) -> Failure {
        Failure {
            class: FailureClass::BuildFailed,
            exit_code: None,
            signal: None,
            summary,
            hints,
        }
    }
}

/// How a process ended, in words: `exit code 1`, `killed by signal 9`, `no exit status`.
pub fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        (None, None) => "no exit status".into(),
    }
}

/// Most hint lines a failure carries.
pub const MAX_HINTS: usize = 8;

/// True when any of `patterns` occurs in `log`.
pub fn log_has_any(log: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| log.contains(p))
}

/// An engine's own explanatory lines: the lines `keep` accepts that contain one of
/// `patterns`, cleaned by `strip`, each once (where it last appeared), the last
/// [`MAX_HINTS`] of them.
pub fn collect_hints(
    log: &str,
    patterns: &[&str],
    keep: impl Fn(&str) -> bool,
    strip: impl Fn(&str) -> &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in log.lines().filter(|l| keep(l)) {
        if patterns.iter().any(|p| line.contains(p)) {
            let clean = strip(line).to_string();
            out.retain(|h| *h != clean);
            if !clean.is_empty() {
                out.push(clean);
            }
        }
    }
    let n = out.len();
    out.split_off(n.saturating_sub(MAX_HINTS))
}

/// How one engine's log reads: which lines explain something, and how a line's
/// timestamp/level/component prefix is removed.
#[derive(Debug, Clone, Copy)]
pub struct LogStyle {
    /// True for a line that explains (not a traceback's source line, not access log).
    pub explains: fn(&str) -> bool,
    /// The line without the engine's log prefix.
    pub strip: fn(&str) -> &str,
}

impl LogStyle {
    /// The first explanatory line of `log` containing one of `patterns`, prefix removed.
    pub fn first_line_with(&self, log: &str, patterns: &[&str]) -> Option<String> {
        log.lines()
            .filter(|l| (self.explains)(l))
            .find(|l| log_has_any(l, patterns))
            .map(|l| (self.strip)(l).to_string())
    }

    /// A boot failure of `class`, decided by the first line with one of `patterns` (the
    /// root cause, e.g. the CUDA OOM, not the `initialization failed` that follows it),
    /// else by the last of `hints`, else by how the process ended.
    pub fn failure(
        &self,
        class: FailureClass,
        patterns: &[&str],
        hints: Vec<String>,
        (code, signal, log): (Option<i32>, Option<i32>, &str),
    ) -> Failure {
        let summary = self
            .first_line_with(log, patterns)
            .or_else(|| hints.last().cloned())
            .unwrap_or_else(|| {
                format!(
                    "engine exited during boot ({})",
                    describe_exit(code, signal)
                )
            });
        Failure {
            class,
            exit_code: code,
            signal,
            summary,
            hints,
        }
    }
}

/// True when `text` says the Python package `module` itself cannot be imported — one of
/// `patterns`, or Python's `No module named module` (unquoted, as `python -m` prints it),
/// but not `No module named module_flash_attn` (one of its dependencies).
pub fn mentions_missing_module(text: &str, module: &str, patterns: &[&str]) -> bool {
    let unquoted = format!("No module named {module}");
    log_has_any(text, patterns)
        || text.lines().any(|l| {
            l.split(unquoted.as_str())
                .skip(1)
                .any(|rest| rest.is_empty() || rest.starts_with(['.', ' ']))
        })
}

/// A Python traceback's source lines (`raise X(`, `File "…"`) and uvicorn's access-log
/// lines: never an explanation, in any Python engine's log.
pub fn is_traceback_or_access(line: &str) -> bool {
    line.starts_with("raise ") || line.starts_with("File \"") || line.contains(" HTTP/1.1\" ")
}

/// Last `n` lines of a log, for summaries.
pub fn tail(log: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(FailureClass::InfeasibleOom.is_infeasible());
        assert!(!FailureClass::BootTimeout.is_infeasible());
        assert!(FailureClass::BootTimeout.is_retryable());
        assert!(!FailureClass::EngineMissing.is_retryable());
        assert_eq!(
            serde_json::to_string(&FailureClass::CrashedDuringBench).unwrap(),
            "\"crashed_during_bench\""
        );
        assert_eq!(tail("a\nb\nc", 2), vec!["b", "c"]);
    }
}
