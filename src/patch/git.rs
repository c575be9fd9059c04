//! The target checkout's git operations, through the `git` binary with argv only (never a
//! shell) and a controlled environment: no system config, no prompts, no pager, messages
//! in English (`LC_ALL=C`, so an `apply_failed` reason reads the same everywhere), no
//! inherited `GIT_DIR`/`GIT_WORK_TREE`/`GIT_INDEX_FILE`, forge's own identity, and the
//! checkout's hooks and commit signing off (a patch's commit must not run the target's
//! code). Diffs and messages reach git on stdin or as single arguments.
//!
//! [`revert_to`] is `git reset --hard` then `git clean -fd`: tracked files return to the
//! commit and untracked files (ones a patch or a build created) are removed, but files the
//! checkout's `.gitignore` ignores — build directories — stay, which is what an
//! incremental build wants.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How many lines of git's stderr an [`ApplyError`] keeps.
const REASON_LINES: usize = 5;

/// A git operation that failed (not a patch that does not apply: that is [`ApplyError`]).
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// The checkout is not a git repository.
    #[error("{path}: not a git repository ({detail})")]
    NotARepo {
        /// The checkout given.
        path: PathBuf,
        /// What git said.
        detail: String,
    },
    /// The checkout is a subdirectory of a repository; patches are relative to the top.
    #[error("{path}: not the top of its git repository (that is {top})")]
    NotTopLevel {
        /// The checkout given.
        path: PathBuf,
        /// The repository's top level.
        top: PathBuf,
    },
    /// The tree has uncommitted changes or untracked files.
    #[error("{path}: the tree is not clean ({})", .dirty.join(", "))]
    Dirty {
        /// The checkout.
        path: PathBuf,
        /// The paths `git status` lists.
        dirty: Vec<String>,
    },
    /// A branch name or revision forge will not pass to git.
    #[error("invalid {what} `{value}`")]
    Invalid {
        /// `branch name` or `revision`.
        what: &'static str,
        /// The value.
        value: String,
    },
    /// `git` could not be run.
    #[error("cannot run git: {0}")]
    Spawn(#[from] std::io::Error),
    /// A git command exited non-zero.
    #[error("`git {args}` failed: {stderr}")]
    Failed {
        /// Its arguments.
        args: String,
        /// The first lines of its stderr.
        stderr: String,
    },
}

/// A diff git will not apply; `reason` is git's first lines, the attempt's
/// `apply_failed` reason.
#[derive(Debug, thiserror::Error)]
#[error("{reason}")]
pub struct ApplyError {
    /// What git said (its first lines).
    pub reason: String,
}

/// A `git` command in `checkout` with forge's environment and settings.
fn git(checkout: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(checkout);
    for setting in [
        "user.name=forge",
        "user.email=forge@localhost",
        "core.pager=cat",
        "core.hooksPath=/dev/null",
        "commit.gpgSign=false",
        "core.quotePath=false",
        "advice.detachedHead=false",
    ] {
        cmd.args(["-c", setting]);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_PAGER", "cat")
        .env("PAGER", "cat")
        .env("LC_ALL", "C")
        .env("LANGUAGE", "C")
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_CEILING_DIRECTORIES")
        .stdin(Stdio::null());
    cmd
}

/// Run git with `args`, feeding `input` on stdin; the output whatever the exit status.
fn output(checkout: &Path, args: &[&str], input: Option<&[u8]>) -> Result<Output, GitError> {
    let mut cmd = git(checkout);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let Some(input) = input else {
        return Ok(cmd.output()?);
    };
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take();
    // A writer thread: git may fill its output pipes before it has read all its input.
    std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut stdin) = stdin {
                // A write error means git exited early; its status says why.
                let _ = stdin.write_all(input);
            }
        });
        child.wait_with_output()
    })
    .map_err(GitError::Spawn)
}

/// Run git; its stdout when it succeeds, else [`GitError::Failed`].
fn run(checkout: &Path, args: &[&str], input: Option<&[u8]>) -> Result<String, GitError> {
    let out = output(checkout, args, input)?;
    if !out.status.success() {
        return Err(GitError::Failed {
            args: args.join(" "),
            stderr: first_lines(&out.stderr),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first lines of git's stderr, trimmed.
fn first_lines(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(REASON_LINES)
        .collect();
    if lines.is_empty() {
        "(git said nothing)".to_string()
    } else {
        lines.join("\n")
    }
}

/// `Ok` when `checkout` is the top of a git repository with a clean tree (no changes,
/// no untracked files); else which it is not, listing the dirty paths.
pub fn ensure_repo_and_clean(checkout: &Path) -> Result<(), GitError> {
    let top = match run(checkout, &["rev-parse", "--show-toplevel"], None) {
        Ok(top) => PathBuf::from(top.trim_end_matches('\n')),
        Err(GitError::Failed { stderr, .. }) => {
            return Err(GitError::NotARepo {
                path: checkout.to_path_buf(),
                detail: stderr,
            });
        }
        Err(e) => return Err(e),
    };
    let here = std::fs::canonicalize(checkout)?;
    if std::fs::canonicalize(&top)? != here {
        return Err(GitError::NotTopLevel {
            path: checkout.to_path_buf(),
            top,
        });
    }
    let dirty = dirty_paths(checkout)?;
    if dirty.is_empty() {
        Ok(())
    } else {
        Err(GitError::Dirty {
            path: checkout.to_path_buf(),
            dirty,
        })
    }
}

/// The paths `git status` lists (changed, staged, untracked; not ignored).
fn dirty_paths(checkout: &Path) -> Result<Vec<String>, GitError> {
    let args = ["status", "--porcelain=v1", "-z", "--untracked-files=all"];
    let out = run(checkout, &args, None)?;
    let mut paths = Vec::new();
    let mut entries = out.split('\0').filter(|e| !e.is_empty());
    while let Some(entry) = entries.next() {
        let status = entry.get(..2).unwrap_or("");
        paths.push(entry.get(3..).unwrap_or(entry).to_string());
        if status.contains('R') || status.contains('C') {
            // A rename's entry is followed by its source path.
            entries.next();
        }
    }
    Ok(paths)
}

/// Whether the tree is clean (nothing `git status` would list).
pub fn status_clean(checkout: &Path) -> Result<bool, GitError> {
    Ok(dirty_paths(checkout)?.is_empty())
}

/// Switch to branch `name`, creating it from HEAD when it does not exist (so a resumed
/// campaign lands on its branch again).
pub fn start_branch(checkout: &Path, name: &str) -> Result<(), GitError> {
    let valid = !name.starts_with('-')
        && run(checkout, &["check-ref-format", "--branch", name], None).is_ok();
    if !valid {
        return Err(GitError::Invalid {
            what: "branch name",
            value: name.to_string(),
        });
    }
    let reference = format!("refs/heads/{name}");
    let exists = output(
        checkout,
        &["rev-parse", "--verify", "--quiet", &reference],
        None,
    )?
    .status
    .success();
    if exists {
        run(checkout, &["switch", "--quiet", name], None)?;
    } else {
        run(checkout, &["switch", "--quiet", "-c", name], None)?;
    }
    Ok(())
}

/// The commit branch `name` points at, if the branch exists.
pub fn branch_commit(checkout: &Path, name: &str) -> Result<Option<String>, GitError> {
    if name.starts_with('-') {
        return Err(GitError::Invalid {
            what: "branch name",
            value: name.to_string(),
        });
    }
    match resolve(checkout, &format!("refs/heads/{name}")) {
        Ok(sha) => Ok(Some(sha)),
        Err(GitError::Invalid { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The commit HEAD points at (full sha).
pub fn head(checkout: &Path) -> Result<String, GitError> {
    resolve(checkout, "HEAD")
}

/// The checkout's git directory (`.git`, or where a worktree's `.git` file points): the
/// place a lock on the checkout lives (one patching process per checkout).
pub fn git_dir(checkout: &Path) -> Result<PathBuf, GitError> {
    let dir = run(checkout, &["rev-parse", "--absolute-git-dir"], None)?;
    Ok(PathBuf::from(dir.trim_end_matches(['\n', '\r'])))
}

/// A commit as people read it: its first ten hex digits.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(10)]
}

/// `rev` as a full commit sha; revisions that look like options are refused.
fn resolve(checkout: &Path, rev: &str) -> Result<String, GitError> {
    if rev.is_empty() || rev.starts_with('-') {
        return Err(GitError::Invalid {
            what: "revision",
            value: rev.to_string(),
        });
    }
    let spec = format!("{rev}^{{commit}}");
    match run(checkout, &["rev-parse", "--verify", "--quiet", &spec], None) {
        Ok(sha) => Ok(sha.trim().to_string()),
        Err(GitError::Failed { .. }) => Err(GitError::Invalid {
            what: "revision",
            value: rev.to_string(),
        }),
        Err(e) => Err(e),
    }
}

/// Apply `diff_text` to the tree and the index: `git apply --check` first, so a diff that
/// does not apply changes nothing. Names are read with `-p1`, as [`super::diff`] does.
pub fn apply(checkout: &Path, diff_text: &str) -> Result<(), ApplyError> {
    let common = ["apply", "-p1", "--index", "--whitespace=nowarn"];
    let attempt = |extra: &[&str]| -> Result<(), ApplyError> {
        let args: Vec<&str> = common.iter().chain(extra).copied().collect();
        let out = output(checkout, &args, Some(diff_text.as_bytes())).map_err(|e| ApplyError {
            reason: e.to_string(),
        })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(ApplyError {
                reason: first_lines(&out.stderr),
            })
        }
    };
    attempt(&["--check", "-"])?;
    attempt(&["-"])
}

/// The path git itself reads for each file of `diff_text` (`git apply --numstat`:
/// nothing is applied; the new name, or the old one of a deletion), to cross-check
/// [`super::diff`].
pub fn apply_paths(checkout: &Path, diff_text: &str) -> Result<Vec<String>, ApplyError> {
    let args = ["apply", "-p1", "--numstat", "-z", "-"];
    let out = output(checkout, &args, Some(diff_text.as_bytes())).map_err(|e| ApplyError {
        reason: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ApplyError {
            reason: first_lines(&out.stderr),
        });
    }
    Ok(numstat_paths(&String::from_utf8_lossy(&out.stdout)))
}

/// `ADDED\tDELETED\tPATH\0` records (`-\t-\t` for binary) → the paths.
fn numstat_paths(out: &str) -> Vec<String> {
    out.split('\0')
        .filter(|record| !record.is_empty())
        .map(|record| record.splitn(3, '\t').nth(2).unwrap_or("").to_string())
        .collect()
}

/// Commit what is staged (what [`apply`] staged) with `message`; the new commit's sha.
/// The checkout's hooks do not run.
pub fn commit(checkout: &Path, message: &str) -> Result<String, GitError> {
    let args = ["commit", "--quiet", "--no-verify", "--file=-"];
    run(checkout, &args, Some(message.as_bytes()))?;
    head(checkout)
}

/// Put the checkout back to commit `sha`: `git reset --hard`, then `git clean -fd`.
/// Ignored files (build directories) stay; see the module docs.
pub fn revert_to(checkout: &Path, sha: &str) -> Result<(), GitError> {
    let sha = resolve(checkout, sha)?;
    run(checkout, &["reset", "--quiet", "--hard", &sha], None)?;
    run(checkout, &["clean", "--quiet", "-f", "-d"], None)?;
    Ok(())
}

/// The paths that differ between commits `from` and `to` (renames as a deletion and an
/// addition, so both names are listed).
pub fn changed_files(checkout: &Path, from: &str, to: &str) -> Result<Vec<String>, GitError> {
    let (from, to) = (resolve(checkout, from)?, resolve(checkout, to)?);
    let args = [
        "diff",
        "--name-only",
        "-z",
        "--no-renames",
        "--no-ext-diff",
        &from,
        &to,
        "--",
    ];
    let out = run(checkout, &args, None)?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

#[cfg(test)]
#[path = "git_tests.rs"]
mod tests;
