//! Unit tests of the git operations on temporary repositories: dirty and non-repository
//! checkouts, option-like names refused, git's own reading of paths, hooks not run.

use super::*;

/// A temporary repository with one commit holding `src/a.c`.
fn repo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &["init", "--quiet", "-b", "main"], None).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/a.c"), "one\ntwo\n").unwrap();
    run(dir.path(), &["add", "-A"], None).unwrap();
    run(dir.path(), &["commit", "--quiet", "-m", "init"], None).unwrap();
    dir
}

#[test]
fn numstat_records() {
    let out = "1\t2\tsrc/a.c\0-\t-\tlogo.png\0";
    assert_eq!(numstat_paths(out), vec!["src/a.c", "logo.png"]);
    assert!(numstat_paths("").is_empty());
}

#[test]
fn first_lines_keeps_a_few() {
    let many = "error: a\n\nerror: b\nc\nd\ne\nf\n";
    assert_eq!(first_lines(many.as_bytes()), "error: a\nerror: b\nc\nd\ne");
    assert_eq!(first_lines(b""), "(git said nothing)");
}

#[test]
fn not_a_repo_and_not_top_level() {
    let plain = tempfile::tempdir().unwrap();
    let e = ensure_repo_and_clean(plain.path()).unwrap_err();
    assert!(matches!(e, GitError::NotARepo { .. }), "{e}");
    assert!(e.to_string().contains("not a git repository"), "{e}");
    let r = repo();
    let e = ensure_repo_and_clean(&r.path().join("src")).unwrap_err();
    assert!(matches!(e, GitError::NotTopLevel { .. }), "{e}");
}

#[test]
fn dirty_paths_are_listed() {
    let r = repo();
    ensure_repo_and_clean(r.path()).unwrap();
    std::fs::write(r.path().join("src/a.c"), "changed\n").unwrap();
    std::fs::write(r.path().join("new file.txt"), "x").unwrap();
    let e = ensure_repo_and_clean(r.path()).unwrap_err();
    let GitError::Dirty { dirty, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(
        dirty,
        &vec!["src/a.c".to_string(), "new file.txt".to_string()]
    );
    assert!(!status_clean(r.path()).unwrap());
}

#[test]
fn option_like_names_are_refused() {
    let r = repo();
    for bad in ["-f", "--orphan", "a..b", ""] {
        let e = start_branch(r.path(), bad).unwrap_err();
        assert!(matches!(e, GitError::Invalid { .. }), "{bad}: {e}");
    }
    assert!(matches!(
        revert_to(r.path(), "--hard").unwrap_err(),
        GitError::Invalid { .. }
    ));
    assert!(matches!(
        revert_to(r.path(), "0123456789abcdef0123456789abcdef01234567").unwrap_err(),
        GitError::Invalid { .. }
    ));
}

#[test]
fn apply_paths_reads_what_git_reads() {
    let r = repo();
    let diff = "diff --git a/src/a.c b/src/b.c\nsimilarity index 100%\nrename from src/a.c\nrename to src/b.c\n";
    assert_eq!(apply_paths(r.path(), diff).unwrap(), vec!["src/b.c"]);
    let e = apply_paths(r.path(), "garbage\n").unwrap_err();
    assert!(!e.reason.is_empty());
}

#[test]
fn hooks_do_not_run_on_commit() {
    let r = repo();
    let hook = r.path().join(".git/hooks/pre-commit");
    std::fs::write(&hook, "#!/bin/sh\ntouch hook-ran\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let diff = "--- a/src/a.c\n+++ b/src/a.c\n@@ -1,2 +1,2 @@\n one\n-two\n+three\n";
    apply(r.path(), diff).unwrap();
    let before = head(r.path()).unwrap();
    let after = commit(r.path(), "forge: keep\n\nevidence").unwrap();
    assert_ne!(before, after);
    assert!(!r.path().join("hook-ran").exists());
    let message = run(r.path(), &["log", "-1", "--format=%an <%ae>%n%B"], None).unwrap();
    assert!(
        message.starts_with("forge <forge@localhost>\nforge: keep\n\nevidence"),
        "{message}"
    );
}
