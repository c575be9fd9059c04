//! git for tests, by argv: a throwaway identity, no system config, no signing; panics with
//! git's stderr when it fails.

use std::path::Path;
use std::process::Command;

/// `git args…` in `dir`; its stdout as written.
pub fn raw(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(["-c", "commit.gpgSign=false"])
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `git args…` in `dir`; its stdout trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    raw(dir, args).trim().to_string()
}
