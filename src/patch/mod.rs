//! Candidate patches to a serving engine's source (`forge campaign`'s patch rounds, and the
//! `kernels.patch` candidates of `forge tune --source`): a patch series is listed
//! ([`series`]), a unified diff is read ([`diff`]), judged ([`safety`]: the `rej-*` refusals) and applied
//! to the engine's git checkout ([`git`]); a kept patch becomes a commit, a rejected one is
//! reverted and leaves no trace in the tree. The security rule: a patch never writes
//! outside its checkout (nor into its `.git/`).
//!
//! [`try_apply`] is the one entry: the checkout must be the top of a git repository with
//! a clean tree; the diff is refused before parsing when it is over the byte limit, then
//! parsed, judged, read a second time by git itself (`git apply --numstat`: the files
//! git would touch must be the files forge judged), and applied to the tree and index.
//! Any failure after the clean check reverts to the commit it started from, so the tree
//! is clean again; what `try_apply` leaves staged is committed with [`git::commit`] or
//! dropped with [`Applied::revert`].

pub mod diff;
pub mod git;
pub mod safety;
pub mod series;

use std::collections::BTreeSet;
use std::path::Path;

pub use diff::{Diff, ParseError};
pub use git::{ApplyError, GitError};
pub use safety::{Limits, Refusal};

/// A diff applied to the checkout's tree and index, not yet committed.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The commit it was applied on (HEAD before).
    pub base: String,
    /// The diff, read.
    pub diff: Diff,
    /// Every path it touches (old and new names), sorted.
    pub files: Vec<String>,
}

impl Applied {
    /// Drop the change: back to [`Applied::base`], untracked files removed.
    pub fn revert(&self, checkout: &Path) -> Result<(), GitError> {
        git::revert_to(checkout, &self.base)
    }
}

/// Why a diff was not applied.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    /// Refused for safety; [`Refusal::code`] is the `rej-*` status.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// Not a diff forge can read (an `apply_failed` attempt).
    #[error("malformed diff: {0}")]
    Malformed(#[from] ParseError),
    /// Git would not apply it (an `apply_failed` attempt; git's first lines).
    #[error("{0}")]
    ApplyFailed(#[from] ApplyError),
    /// The checkout itself is unusable (not a repository, dirty, git failing, a revert
    /// that failed): not the patch's fault, so the campaign should stop.
    #[error("{0}")]
    Checkout(#[from] GitError),
}

impl Rejected {
    /// The attempt status: a `rej-*` code, `apply_failed`, or `checkout_error`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejected::Refused(r) => r.code(),
            Rejected::Malformed(_) | Rejected::ApplyFailed(_) => "apply_failed",
            Rejected::Checkout(_) => "checkout_error",
        }
    }
}

/// Read, judge and apply `diff_text` to `checkout` (see the module docs); on any
/// rejection after the clean check the checkout is back at its HEAD, clean.
pub fn try_apply(checkout: &Path, diff_text: &str, limits: &Limits) -> Result<Applied, Rejected> {
    git::ensure_repo_and_clean(checkout)?;
    let base = git::head(checkout)?;
    match judge_and_apply(checkout, diff_text, limits) {
        Ok(diff) => {
            let files = paths_of(&diff).into_iter().map(str::to_string).collect();
            Ok(Applied { base, diff, files })
        }
        Err(rejected) => {
            git::revert_to(checkout, &base)?;
            Err(rejected)
        }
    }
}

fn judge_and_apply(checkout: &Path, diff_text: &str, limits: &Limits) -> Result<Diff, Rejected> {
    let unread = Diff {
        files: Vec::new(),
        bytes: diff_text.len(),
    };
    safety::check_size(&unread, limits)?;
    let diff = diff::parse(diff_text)?;
    safety::check(&diff, checkout, limits)?;
    let git_paths = git::apply_paths(checkout, diff_text)?;
    same_files(&diff, &git_paths)?;
    git::apply(checkout, diff_text)?;
    Ok(diff)
}

fn paths_of(diff: &Diff) -> BTreeSet<&str> {
    diff.files.iter().flat_map(|f| f.paths()).collect()
}

/// `rej-path` unless git reads the same files as forge did (one per file patch, each a
/// path forge judged): a diff the two read differently could slip a path past the check.
fn same_files(diff: &Diff, git_paths: &[String]) -> Result<(), Refusal> {
    let judged = paths_of(diff);
    if let Some(stray) = git_paths.iter().find(|p| !judged.contains(p.as_str())) {
        return Err(Refusal::Path {
            file: diff::shown(stray),
            why: "git reads this path from the diff, forge did not".to_string(),
        });
    }
    if git_paths.len() != diff.files.len() {
        return Err(Refusal::Path {
            file: "(diff)".to_string(),
            why: format!(
                "git reads {} file patches from the diff, forge {}",
                git_paths.len(),
                diff.files.len()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let refused = Rejected::Refused(Refusal::Binary { file: "x".into() });
        assert_eq!(refused.code(), "rej-binary");
        let malformed = Rejected::Malformed(ParseError {
            line: 3,
            message: "bad".into(),
        });
        assert_eq!(malformed.code(), "apply_failed");
        assert_eq!(malformed.to_string(), "malformed diff: line 3: bad");
        let failed = Rejected::ApplyFailed(ApplyError {
            reason: "error: patch failed".into(),
        });
        assert_eq!(failed.code(), "apply_failed");
    }

    #[test]
    fn git_must_read_the_files_forge_judged() {
        let d = diff::parse("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n").unwrap();
        assert!(same_files(&d, &["x".to_string()]).is_ok());
        let stray = same_files(&d, &["y".to_string()]).unwrap_err();
        assert_eq!(stray.code(), "rej-path");
        assert!(stray.to_string().starts_with("y:"), "{stray}");
        assert!(same_files(&d, &["x".to_string(), "x".to_string()]).is_err());
        assert!(same_files(&d, &[]).is_err());
    }
}
