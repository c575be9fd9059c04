//! Asking an installed engine what it is before a run boots it: running one of its
//! questions (`--version`, `serve --help`) with a deadline, telling an absent engine (the
//! shell's 127, Python's `No module named …`) from one that answered badly, and storing the
//! answers in the run directory (`engine-version.txt`, `engine-help.txt`) so a report can
//! say which surface the experiments were rendered for, and a resumed run can warn when the
//! installed release changed. What each engine asks and how it reads the answers is its
//! own (`vllm::probe`, `sglang::help`, `trtllm::help`); this is what they share.

use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

use crate::hardware::command::{self, CaptureError, Captured};

/// The detected version, as printed.
pub const VERSION_FILE: &str = "engine-version.txt";
/// The help listing the run's flags were checked against.
pub const HELP_FILE: &str = "engine-help.txt";

/// What an installed engine said about itself: its version `V` and its parsed help `H`.
#[derive(Debug, Clone)]
pub struct Probe<V, H> {
    /// The version, if the engine told it.
    pub version: Option<V>,
    /// The version as stored (`engine-version.txt`).
    pub version_text: Option<String>,
    /// The help listing, parsed, when it listed flags.
    pub help: Option<H>,
    /// Its text, and the command that printed it.
    pub help_text: Option<(String, String)>,
    /// What went wrong or was worked around, for the user.
    pub notes: Vec<String>,
}

impl<V, H> Default for Probe<V, H> {
    fn default() -> Self {
        Probe {
            version: None,
            version_text: None,
            help: None,
            help_text: None,
            notes: Vec::new(),
        }
    }
}

impl<V, H> Probe<V, H> {
    /// Store the answers in the run directory (atomically). Returns the version a
    /// previous session of this run recorded, when it differs from this one.
    pub fn save(&self, dir: &Path) -> std::io::Result<Option<String>> {
        let path = dir.join(VERSION_FILE);
        let before = std::fs::read_to_string(&path)
            .ok()
            .map(|t| t.trim().to_string());
        let now = self
            .version_text
            .clone()
            .unwrap_or_else(|| "unknown".into());
        crate::store::write_atomic(&path, format!("{now}\n").as_bytes())
            .map_err(std::io::Error::other)?;
        if let Some((text, _)) = &self.help_text {
            crate::store::write_atomic(&dir.join(HELP_FILE), text.as_bytes())
                .map_err(std::io::Error::other)?;
        }
        Ok(before.filter(|b| *b != now))
    }

    /// Say the probe's notes on stderr and store it in `run_dir`, warning when an earlier
    /// session of the run saw another release of `framework`.
    pub fn record(&self, framework: &str, run_dir: &Path) {
        for n in &self.notes {
            eprintln!("forge: warning: {n}");
        }
        match self.save(run_dir) {
            Ok(Some(before)) => eprintln!(
                "forge: warning: this run was started with {framework} {before}; the installed \
                 one is {}: measurements across versions are not comparable",
                self.version_text.as_deref().unwrap_or("unknown")
            ),
            Ok(None) => {}
            Err(e) => eprintln!("forge: warning: cannot store the engine's help: {e}"),
        }
    }
}

/// The launcher does not lead to the engine at all.
#[derive(Debug, thiserror::Error)]
#[error("engine_missing: `{command}`: {why}")]
pub struct EngineMissing {
    /// The command that was tried.
    pub command: String,
    /// What it said.
    pub why: String,
}

/// `launcher` and `args` as one line, for messages.
pub fn shown(launcher: &[String], args: &[&str]) -> String {
    let mut v: Vec<&str> = launcher.iter().map(String::as_str).collect();
    v.extend_from_slice(args);
    v.join(" ")
}

/// The last non-empty line of `text`.
pub fn last_line(text: &str) -> Option<&str> {
    text.lines().map(str::trim).rfind(|l| !l.is_empty())
}

/// Run one question: `launcher` followed by `args`, within `timeout`. `Err` is an absent
/// engine (not found, exit 127, or output `missing` recognises); `Ok(Err(note))` a question
/// that failed (a timeout, a signal) with the note to give the user.
pub fn ask(
    launcher: &[String],
    args: &[&str],
    timeout: Duration,
    missing: fn(&str) -> bool,
) -> Result<Result<Captured, String>, EngineMissing> {
    let cmd = shown(launcher, args);
    let absent = |why: String| EngineMissing {
        command: cmd.clone(),
        why,
    };
    let Some((program, rest)) = launcher.split_first() else {
        return Err(absent("the engine launcher is empty".into()));
    };
    let mut argv: Vec<&str> = rest.iter().map(String::as_str).collect();
    argv.extend_from_slice(args);
    match command::capture(OsStr::new(program), &argv, timeout) {
        Ok(out) if out.code == Some(127) || missing(&out.all_text()) => {
            let text = out.all_text();
            Err(absent(
                last_line(&text).unwrap_or("exit status 127").to_string(),
            ))
        }
        Ok(out) => Ok(Ok(out)),
        Err(e @ CaptureError::NotFound { .. }) => Err(absent(e.to_string())),
        Err(e) => Ok(Err(format!("`{cmd}`: {e}"))),
    }
}

/// The note for a version question `cmd` whose answer `out` named no version.
pub fn no_version(cmd: &str, out: &Captured) -> String {
    format!(
        "`{cmd}` printed no version (exit {}): {}",
        out.code.map_or("by signal".into(), |c| c.to_string()),
        last_line(&out.all_text()).unwrap_or("exit status 127")
    )
}
