//! The run store: `.forge/runs/NNN_<UTC>/`, the original tool's layout.
//!
//! Each run directory holds `config.json` (settings, restored on resume),
//! `experiments.jsonl` (append-only journal, one row per experiment, fsync'd),
//! `experiments.tsv` / `experiments.json` / `best_recipe.yaml` (views regenerated from the
//! journal, written atomically), `completed.json` (written last; absent = interrupted) and
//! `logs/` (one engine log per experiment). Every write is append-only or atomic, so a
//! `kill -9` at any moment leaves a store that `tune resume` can continue.

pub mod atomic;
pub mod journal;
pub mod lock;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use atomic::write_atomic;
pub use journal::{Journal, append_line, read_journal, read_rows};
pub use lock::RunLock;

/// Settings of the run, restored by `tune resume`.
pub const CONFIG_FILE: &str = "config.json";
/// Append-only experiment journal.
pub const JOURNAL_FILE: &str = "experiments.jsonl";
/// Human-readable table view.
pub const TSV_FILE: &str = "experiments.tsv";
/// Structured table view.
pub const JSON_FILE: &str = "experiments.json";
/// Best recipe so far.
pub const BEST_RECIPE_FILE: &str = "best_recipe.yaml";
/// Written on a clean finish; absent means interrupted.
pub const COMPLETED_FILE: &str = "completed.json";
/// The baseline's answers (accuracy references), written once the baseline is measured.
pub const REFERENCES_FILE: &str = "references.json";
/// The agent's post-run analysis.
pub const ANALYSIS_FILE: &str = "analysis.json";
/// Engine logs, one per experiment.
pub const LOGS_DIR: &str = "logs";
/// Process groups of engines this run started (so a resume can reap them).
pub const PIDS_FILE: &str = "engines.pids";

/// Errors the store reports; callers branch on `Locked`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Filesystem failure.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the run's lock.
    #[error("{path}: another forge process is working on this run (lock held)")]
    Locked {
        /// The run directory.
        path: PathBuf,
    },
    /// Something in the store is not what forge wrote.
    #[error("{path}: {why}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl StoreError {
    /// Wrap an I/O error with its path.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// A store root (default `.forge`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One run directory in a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRef {
    /// Run number (the `NNN` prefix; may exceed 999).
    pub number: u64,
    /// Directory path.
    pub path: PathBuf,
}

impl RunRef {
    /// True when the run has a `completed.json`.
    pub fn is_completed(&self) -> bool {
        self.path.join(COMPLETED_FILE).exists()
    }

    /// True when the run was started (has its config) but never completed.
    pub fn is_interrupted(&self) -> bool {
        self.path.join(CONFIG_FILE).exists() && !self.is_completed()
    }
}

impl Store {
    /// A store rooted at `root` (nothing is created until a run starts).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Store { root: root.into() }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/runs`.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Every run, sorted by number (numerically: run 1000 sorts after 999).
    pub fn runs(&self) -> Result<Vec<RunRef>, StoreError> {
        let dir = self.runs_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io(&dir, e)),
        };
        let mut runs: Vec<RunRef> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                parse_run_number(&name).map(|number| RunRef {
                    number,
                    path: e.path(),
                })
            })
            .collect();
        runs.sort_by_key(|r| r.number);
        Ok(runs)
    }

    /// The most recent run that started but did not complete.
    pub fn latest_interrupted(&self) -> Result<Option<RunRef>, StoreError> {
        Ok(self.runs()?.into_iter().rev().find(RunRef::is_interrupted))
    }

    /// Create the next run directory `NNN_<UTC>` (numbering continues from the highest).
    /// Creation is atomic (`create_dir` fails if it exists), so two processes never share
    /// a number.
    pub fn create_run(&self, now: DateTime<Utc>) -> Result<RunRef, StoreError> {
        let dir = self.runs_dir();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut number = self.runs()?.last().map_or(1, |r| r.number + 1);
        loop {
            let path = dir.join(run_dir_name(number, now));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    let logs = path.join(LOGS_DIR);
                    std::fs::create_dir_all(&logs).map_err(|e| StoreError::io(&logs, e))?;
                    return Ok(RunRef { number, path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => number += 1,
                Err(e) => return Err(StoreError::io(&path, e)),
            }
        }
    }
}

/// `NNN_YYYY-MM-DDTHH-MM-SS` (colons are not portable in file names).
pub fn run_dir_name(number: u64, now: DateTime<Utc>) -> String {
    format!("{number:03}_{}", now.format("%Y-%m-%dT%H-%M-%S"))
}

/// The run number of a directory name, if it is one.
pub fn parse_run_number(name: &str) -> Option<u64> {
    let (num, _) = name.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    num.parse().ok()
}

/// Resolve what the user pointed `report` at: a run directory, a store root (`.forge`), or
/// a `runs/` directory. A store means its latest run.
pub fn resolve_run_path(path: &Path) -> Result<PathBuf, StoreError> {
    if path.join(JOURNAL_FILE).exists() || path.join(CONFIG_FILE).exists() {
        return Ok(path.to_path_buf());
    }
    let store = if path.file_name().is_some_and(|n| n == "runs") {
        Store::new(path.parent().unwrap_or(path))
    } else {
        Store::new(path)
    };
    store
        .runs()?
        .pop()
        .map(|r| r.path)
        .ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            why: "not a run directory and holds no runs (expected .forge, .forge/runs or \
                  .forge/runs/NNN_<time>)"
                .into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 5, 13, 4, 10, 0).unwrap()
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(run_dir_name(1, t()), "001_2026-05-13T04-10-00");
        assert_eq!(run_dir_name(1234, t()), "1234_2026-05-13T04-10-00");
        assert_eq!(parse_run_number("007_x"), Some(7));
        assert_eq!(parse_run_number("abc_x"), None);
        assert_eq!(parse_run_number("notes"), None);
    }

    #[test]
    fn numbering_sorts_past_999() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        std::fs::create_dir_all(store.runs_dir().join("999_a")).unwrap();
        std::fs::create_dir_all(store.runs_dir().join("998_a")).unwrap();
        let r = store.create_run(t()).unwrap();
        assert_eq!(r.number, 1000);
        let r2 = store.create_run(t()).unwrap();
        assert_eq!(r2.number, 1001);
        let nums: Vec<u64> = store.runs().unwrap().iter().map(|r| r.number).collect();
        assert_eq!(nums, vec![998, 999, 1000, 1001]);
        assert!(r2.path.join(LOGS_DIR).is_dir());
    }

    #[test]
    fn latest_interrupted_and_resolution() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let a = store.create_run(t()).unwrap();
        let b = store.create_run(t()).unwrap();
        std::fs::write(a.path.join(CONFIG_FILE), "{}").unwrap();
        std::fs::write(b.path.join(CONFIG_FILE), "{}").unwrap();
        std::fs::write(b.path.join(COMPLETED_FILE), "{}").unwrap();
        assert_eq!(store.latest_interrupted().unwrap(), Some(a.clone()));
        assert_eq!(resolve_run_path(dir.path()).unwrap(), b.path);
        assert_eq!(resolve_run_path(&store.runs_dir()).unwrap(), b.path);
        assert_eq!(resolve_run_path(&a.path).unwrap(), a.path);
        assert!(resolve_run_path(&dir.path().join("nothing")).is_err());
    }
}
