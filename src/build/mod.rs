//! Rebuilding a serving engine from its patched source checkout (`forge campaign`, issue
//! 14): after a patch is applied, the round rebuilds the engine before it checks and
//! measures it. [`Builder`] is the seam, one implementation per engine:
//! [`LlamaCpp`] (an incremental CMake + Ninja build of `llama-server` in a build directory
//! outside the checkout, [`cmake`]) and [`VllmPythonOnly`] (vLLM's Python-only editable
//! reinstall against precompiled kernels, [`vllm`]).
//!
//! Every step's whole output goes to the attempt's log, append-only while it runs
//! ([`run`]); a failure is classified ([`BuildFailure`]) with the first error lines, found
//! while the output streams past ([`scan`]), never by reading the log back whole.

pub mod cmake;
pub mod run;
pub mod scan;
pub mod vllm;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use cmake::{CMakeBuild, LlamaCpp, Tools, keep_server};
pub use vllm::VllmPythonOnly;

/// Rebuilds one engine from a source checkout.
pub trait Builder {
    /// Build `checkout` (already patched), appending all output to `log`, within
    /// `timeout`. The checkout's tree is left as it was (build products live elsewhere).
    fn build(&self, checkout: &Path, log: &Path, timeout: Duration) -> Result<Built, BuildFailure>;
}

/// A successful build: what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The program that serves: the fresh `llama-server` binary, or for a Python engine
    /// the interpreter the checkout was installed into (`python -m vllm.entrypoints…`).
    pub program: PathBuf,
    /// How long the build took.
    pub took: Duration,
}

/// Why a build failed. The patch's fault ([`BuildFailure::is_patch_fault`]: a
/// `build_failed` attempt) or the machine's (the campaign should stop).
#[derive(Debug, thiserror::Error)]
pub enum BuildFailure {
    /// The compile or link step failed; the compiler's first error lines.
    #[error("build failed: {}", shown(.first_errors))]
    Compile {
        /// The first error lines (see [`scan`]).
        first_errors: Vec<String>,
    },
    /// The configure step (CMake) failed; its first error lines.
    #[error("configure failed: {}", shown(.first_errors))]
    Configure {
        /// The first error lines (see [`scan`]).
        first_errors: Vec<String>,
    },
    /// A Python package install (pip, uv) failed; its first error lines.
    #[error("install failed: {}", shown(.first_errors))]
    Install {
        /// The first error lines (see [`scan`]).
        first_errors: Vec<String>,
    },
    /// The build ran past its time limit and was killed.
    #[error("build timed out after {}s", .after.as_secs())]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// A tool the build needs was not found.
    #[error("{tool} not found (looked in {})", .searched.join(", "))]
    Missing {
        /// The tool (`cmake`, `ninja`, `python`).
        tool: String,
        /// Where forge looked.
        searched: Vec<String>,
    },
    /// Reading or writing files, or starting a process, failed.
    #[error("build i/o: {0}")]
    Io(#[from] std::io::Error),
}

impl BuildFailure {
    /// Whether the patch is to blame (compile, configure, install, timeout), so the
    /// attempt is `build_failed` and the campaign goes on; else the machine is.
    pub fn is_patch_fault(&self) -> bool {
        !matches!(self, BuildFailure::Missing { .. } | BuildFailure::Io(_))
    }

    /// The first error lines the failure carries (empty for the others).
    pub fn first_errors(&self) -> &[String] {
        match self {
            BuildFailure::Compile { first_errors }
            | BuildFailure::Configure { first_errors }
            | BuildFailure::Install { first_errors } => first_errors,
            _ => &[],
        }
    }
}

/// Error lines for a one-line message: the first, and how many more.
fn shown(lines: &[String]) -> String {
    match lines {
        [] => "(no error lines found; see the log)".to_string(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{} more lines)", rest.len()),
    }
}
