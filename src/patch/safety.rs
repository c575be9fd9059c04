//! What a candidate patch may not do, judged on the read diff before git sees it: write
//! outside its checkout or into `.git/` (`rej-path`), create or change a symlink
//! (`rej-symlink`), carry binary content (`rej-binary`), exceed the size limits
//! (`rej-size`), add a secret-looking line (`rej-secret`), or make a build or install
//! script fetch from a network or add a submodule (`rej-download`). [`check`] returns the first [`Refusal`];
//! its message names the file (and line) but never repeats a secret.
//!
//! Paths are judged lexically (no absolute path, no `..`, `.` or empty component, no
//! `.git` component in any letter case, no control characters) and then against the
//! checkout on disk: each component that already exists is inspected with
//! `symlink_metadata`, and a symlink on the way is followed only to check that it lands
//! inside the checkout and outside `.git` (canonicalize is used on existing paths only,
//! never trusted for a path that does not exist yet). A path whose last component is an
//! existing symlink is a symlink change (`rej-symlink`).

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;

use super::diff::{Diff, FilePatch, shown};

/// Mode of a symlink in git.
const SYMLINK_MODE: u32 = 0o120000;
/// Mode of a submodule (gitlink) in git.
const GITLINK_MODE: u32 = 0o160000;

/// How big a candidate patch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Files touched.
    pub max_files: usize,
    /// Added plus removed lines.
    pub max_changed_lines: usize,
    /// Bytes of diff text.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_files: 50,
            max_changed_lines: 5_000,
            max_bytes: 1_000_000,
        }
    }
}

/// Why a patch is refused; [`Refusal::code`] is the attempt's `rej-*` status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// A path outside the checkout, into `.git/`, or otherwise not a plain relative path.
    #[error("{file}: {why}")]
    Path {
        /// The path as the diff names it (control characters escaped).
        file: String,
        /// What is wrong with it.
        why: String,
    },
    /// Creates or changes a symlink.
    #[error("{file}: {why}")]
    Symlink {
        /// The path.
        file: String,
        /// How it touches a symlink.
        why: String,
    },
    /// A binary patch.
    #[error("{file}: binary patch (only text diffs are applied)")]
    Binary {
        /// The path.
        file: String,
    },
    /// Over a size limit.
    #[error("patch too big: {what}")]
    Size {
        /// Which limit and by how much.
        what: String,
    },
    /// An added line looks like a secret (the value is never repeated).
    #[error("{file}:{line}: added line looks like {kind} (value not shown)")]
    Secret {
        /// The path.
        file: String,
        /// The line in the new file.
        line: u64,
        /// What kind of secret it looks like.
        kind: &'static str,
    },
    /// A build or install script gains a network fetch.
    #[error("{file}:{line}: build/install script gains a network fetch ({what})")]
    Download {
        /// The path.
        file: String,
        /// The line in the new file.
        line: u64,
        /// What fetches.
        what: &'static str,
    },
    /// Creates or moves a submodule pointer (fetched from a network when updated).
    #[error("{file}: submodule pointer (mode 160000): fetched from a network when updated")]
    Submodule {
        /// The path.
        file: String,
    },
}

impl Refusal {
    /// The attempt status: `rej-path`, `rej-symlink`, `rej-binary`, `rej-size`,
    /// `rej-secret` or `rej-download`.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Path { .. } => "rej-path",
            Refusal::Symlink { .. } => "rej-symlink",
            Refusal::Binary { .. } => "rej-binary",
            Refusal::Size { .. } => "rej-size",
            Refusal::Secret { .. } => "rej-secret",
            Refusal::Download { .. } | Refusal::Submodule { .. } => "rej-download",
        }
    }
}

/// Judge `diff` as a patch to `checkout`: `Ok` when nothing forbids applying it.
pub fn check(diff: &Diff, checkout: &Path, limits: &Limits) -> Result<(), Refusal> {
    check_size(diff, limits)?;
    let root = fs::canonicalize(checkout).map_err(|e| Refusal::Path {
        file: shown(&checkout.display().to_string()),
        why: format!("the checkout cannot be resolved: {e}"),
    })?;
    for file in &diff.files {
        for path in file.paths() {
            check_path(&root, path)?;
        }
    }
    diff.files.iter().try_for_each(check_modes)?;
    diff.files.iter().try_for_each(check_binary)?;
    diff.files.iter().try_for_each(check_secrets)?;
    diff.files.iter().try_for_each(check_downloads)
}

/// `rej-size`: files, changed lines, bytes.
pub fn check_size(diff: &Diff, limits: &Limits) -> Result<(), Refusal> {
    let over = |what: &str, n: usize, max: usize| Refusal::Size {
        what: format!("{n} {what}, the limit is {max}"),
    };
    if diff.bytes > limits.max_bytes {
        return Err(over("bytes", diff.bytes, limits.max_bytes));
    }
    if diff.files.len() > limits.max_files {
        return Err(over("files", diff.files.len(), limits.max_files));
    }
    let lines = diff.changed_lines();
    if lines > limits.max_changed_lines {
        return Err(over("changed lines", lines, limits.max_changed_lines));
    }
    Ok(())
}

/// `rej-path` (or `rej-symlink` for an existing symlink as the last component): the
/// path, lexically and then as it resolves in the checkout `root` (canonical).
pub fn check_path(root: &Path, path: &str) -> Result<(), Refusal> {
    let refuse = |why: &str| Refusal::Path {
        file: shown(path),
        why: why.to_string(),
    };
    lexical(path).map_err(refuse)?;
    resolve(root, path)
}

/// The path's own shape, before looking at the disk.
fn lexical(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("empty path");
    }
    if path.starts_with('/') {
        return Err("absolute path");
    }
    if path.chars().any(char::is_control) {
        return Err("control character in the path");
    }
    for component in path.split('/') {
        match component {
            ".." => return Err("`..` component: leaves the checkout"),
            "." | "" => return Err("`.` or empty component (not a plain relative path)"),
            c if c.eq_ignore_ascii_case(".git") => return Err("path through `.git/`"),
            _ => {}
        }
    }
    Ok(())
}

/// Walk the path component by component on disk; stop at the first that does not exist
/// (the rest will be created by the patch, and is lexically plain).
fn resolve(root: &Path, path: &str) -> Result<(), Refusal> {
    let components: Vec<&str> = path.split('/').collect();
    let mut here = root.to_path_buf();
    for (k, component) in components.iter().enumerate() {
        let next = here.join(component);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                return Ok(());
            }
            Err(e) => return Err(path_refusal(path, format!("cannot inspect it: {e}"))),
        };
        if !meta.file_type().is_symlink() {
            here = next;
            continue;
        }
        let prefix = components[..=k].join("/");
        if k + 1 == components.len() {
            return Err(Refusal::Symlink {
                file: shown(path),
                why: "is a symlink in the checkout; the patch would change it".to_string(),
            });
        }
        here = follow(root, &next, &prefix, path)?;
    }
    Ok(())
}

/// Where the existing symlink `link` (the path's `prefix`) lands: inside `root` and
/// outside `.git`, or a refusal.
fn follow(root: &Path, link: &Path, prefix: &str, path: &str) -> Result<PathBuf, Refusal> {
    let Ok(real) = fs::canonicalize(link) else {
        let why = format!("goes through `{}`, a symlink to nothing", shown(prefix));
        return Err(path_refusal(path, why));
    };
    let Ok(inside) = real.strip_prefix(root) else {
        let why = format!(
            "goes through `{}`, a symlink to outside the checkout",
            shown(prefix)
        );
        return Err(path_refusal(path, why));
    };
    let into_git = inside
        .components()
        .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"));
    if into_git {
        let why = format!("goes through `{}`, a symlink into `.git/`", shown(prefix));
        return Err(path_refusal(path, why));
    }
    Ok(real)
}

fn path_refusal(path: &str, why: String) -> Refusal {
    Refusal::Path {
        file: shown(path),
        why,
    }
}

/// `rej-symlink` for a symlink mode on either side; a submodule pointer is a fetch.
fn check_modes(file: &FilePatch) -> Result<(), Refusal> {
    let modes = [file.old_mode, file.new_mode];
    if modes.contains(&Some(SYMLINK_MODE)) {
        return Err(Refusal::Symlink {
            file: shown(file.name()),
            why: "creates or changes a symlink (mode 120000)".to_string(),
        });
    }
    if modes.contains(&Some(GITLINK_MODE)) {
        return Err(Refusal::Submodule {
            file: shown(file.name()),
        });
    }
    Ok(())
}

fn check_binary(file: &FilePatch) -> Result<(), Refusal> {
    if file.binary {
        return Err(Refusal::Binary {
            file: shown(file.name()),
        });
    }
    Ok(())
}

/// Secret-looking patterns: (what it looks like, pattern).
static SECRETS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    compile(&[
        (
            "a private key block",
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----",
        ),
        ("an AWS access key id", r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
        ("a GitHub token", r"\bgh[pousr]_[A-Za-z0-9]{20,}"),
        ("a GitHub token", r"\bgithub_pat_[A-Za-z0-9_]{20,}"),
        ("a Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
        (
            "an OpenAI/Anthropic API key",
            r"\bsk-(ant-|proj-)?[A-Za-z0-9_\-]{20,}",
        ),
    ])
});

/// `api_key = "…"`-style assignments; the literal (group 1) is judged by
/// [`random_looking`] so that `token = "<|im_start|>assistant"` passes.
static ASSIGNED: LazyLock<Option<Regex>> = LazyLock::new(|| {
    let pattern = r#"(?i)(api[_-]?key|token|secret|passw(or)?d)[a-z0-9_]*["']?\s*[:=]\s*["']([^"'\s]{16,})["']"#;
    Regex::new(pattern).ok()
});

/// The patterns of a table that compile (all of them: a test checks).
fn compile(table: &[(&'static str, &str)]) -> Vec<(&'static str, Regex)> {
    table
        .iter()
        .filter_map(|(kind, pattern)| Some((*kind, Regex::new(pattern).ok()?)))
        .collect()
}

/// A literal that looks generated: printable ASCII with no template or format
/// characters (`<|im_start|>`, `{name}`, `%s`), letters and digits both.
fn random_looking(literal: &str) -> bool {
    literal
        .chars()
        .all(|c| c.is_ascii_graphic() && !"<>|{}%$\\()[]".contains(c))
        && literal.chars().any(|c| c.is_ascii_alphabetic())
        && literal.chars().any(|c| c.is_ascii_digit())
}

/// What secret an added line looks like, if any.
pub fn secret_kind(text: &str) -> Option<&'static str> {
    if let Some((kind, _)) = SECRETS.iter().find(|(_, re)| re.is_match(text)) {
        return Some(kind);
    }
    let assigned = ASSIGNED.as_ref()?;
    assigned
        .captures_iter(text)
        .filter_map(|c| c.get(3))
        .any(|m| random_looking(m.as_str()))
        .then_some("a credential assigned to a literal")
}

fn check_secrets(file: &FilePatch) -> Result<(), Refusal> {
    for added in &file.added {
        if let Some(kind) = secret_kind(&added.text) {
            return Err(Refusal::Secret {
                file: shown(file.name()),
                line: added.new_line,
                kind,
            });
        }
    }
    Ok(())
}

/// Network fetches in build scripts: (what, pattern).
static FETCHES: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
    compile(&[
        (
            "FetchContent_Declare",
            r"(?i)\bFetchContent_(Declare|Populate|MakeAvailable)\b",
        ),
        ("ExternalProject_Add", r"(?i)\bExternalProject_Add\b"),
        ("file(DOWNLOAD)", r"(?i)\bfile\s*\(\s*DOWNLOAD\b"),
        ("curl", r"\bcurl\b"),
        ("wget", r"\bwget\b"),
        ("pip install", r"\bpip[0-9.]*\s+(.*\s)?install\b"),
        ("git clone", r"\bgit\s+(.*\s)?clone\b"),
        ("git submodule", r"\bgit\s+(.*\s)?submodule\b"),
        ("an http(s) URL", r"(?i)\bhttps?://"),
    ])
});

/// Whether `file` is a build or install script (its fetches run at build time): by name
/// (either side of a rename), or a new first line that is a `#!` line.
fn is_script(file: &FilePatch) -> bool {
    file.paths().iter().any(|p| is_build_script(p))
        || file
            .added
            .first()
            .is_some_and(|a| a.new_line == 1 && a.text.starts_with("#!"))
}

/// Whether `path` names a build or install script.
pub fn is_build_script(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let lower = name.to_ascii_lowercase();
    matches!(
        lower.as_str(),
        "cmakelists.txt"
            | "makefile"
            | "gnumakefile"
            | "setup.py"
            | "setup.cfg"
            | "pyproject.toml"
            | "build.rs"
            | "dockerfile"
            | "containerfile"
    ) || [".cmake", ".mk", ".sh", ".bash", ".dockerfile"]
        .iter()
        .any(|ext| lower.ends_with(ext))
        || lower.starts_with("dockerfile.")
        || (lower.starts_with("requirements") && lower.ends_with(".txt"))
}

fn check_downloads(file: &FilePatch) -> Result<(), Refusal> {
    if !is_script(file) {
        return Ok(());
    }
    for added in &file.added {
        if let Some((what, _)) = FETCHES.iter().find(|(_, re)| re.is_match(&added.text)) {
            return Err(Refusal::Download {
                file: shown(file.name()),
                line: added.new_line,
                what,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "safety_tests.rs"]
mod tests;
