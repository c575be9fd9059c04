//! Unit tests of the safety check: each `rej-*` code on its trigger (paths lexically and
//! through symlinks made in a temporary directory), ordinary code that must pass, and the
//! property that a `..` component or an absolute path never passes.

use super::*;
use crate::patch::diff::parse;
use proptest::prelude::*;
use std::os::unix::fs::symlink;

fn add(path: &str, lines: &[&str]) -> String {
    let mut text = format!(
        "diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{} @@\n",
        lines.len()
    );
    for l in lines {
        text.push('+');
        text.push_str(l);
        text.push('\n');
    }
    text
}

fn judge(text: &str, root: &Path) -> Result<(), Refusal> {
    check(&parse(text).unwrap(), root, &Limits::default())
}

fn code(text: &str, root: &Path) -> &'static str {
    judge(text, root).map_or_else(|r| r.code(), |()| "ok")
}

#[test]
fn every_pattern_compiles() {
    assert_eq!(SECRETS.len(), 6);
    assert_eq!(FETCHES.len(), 9);
    assert!(ASSIGNED.is_some());
}

#[test]
fn lexical_paths() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(code(&add("src/ok.c", &["x"]), root), "ok");
    for bad in [
        "../../etc/passwd",
        "src/../../x",
        "a/./b",
        "a//b",
        ".git/hooks/pre-commit",
        "sub/.GIT/config",
    ] {
        assert_eq!(code(&add(bad, &["x"]), root), "rej-path", "{bad}");
    }
    // `+++ b//etc/x` strips to `/etc/x`.
    assert_eq!(code(&add("/etc/x", &["x"]), root), "rej-path");
    let r = judge(&add("../../etc/passwd", &["x"]), root).unwrap_err();
    assert!(r.to_string().contains("../../etc/passwd"), "{r}");
}

#[test]
fn quoted_control_characters_are_refused_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let text = "--- /dev/null\n+++ \"b/a\\033[2Jb\"\n@@ -0,0 +1 @@\n+x\n";
    let r = judge(text, dir.path()).unwrap_err();
    assert_eq!(r.code(), "rej-path");
    assert!(!r.to_string().contains('\u{1b}'), "{r}");
}

#[test]
fn symlinks_already_in_the_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.join("src")).unwrap();
    symlink(outside.path(), root.join("evil")).unwrap();
    symlink("src", root.join("inner")).unwrap();
    symlink(".git", root.join("dotgit")).unwrap();
    std::fs::create_dir(root.join(".git")).unwrap();
    symlink("missing", root.join("dangling")).unwrap();
    std::fs::write(root.join("src/f.c"), "x").unwrap();
    symlink("f.c", root.join("src/alias.c")).unwrap();
    let r = judge(&add("evil/x", &["x"]), root).unwrap_err();
    assert_eq!(r.code(), "rej-path");
    assert!(r.to_string().contains("outside the checkout"), "{r}");
    assert_eq!(code(&add("inner/new.c", &["x"]), root), "ok");
    assert_eq!(
        code(&add("dotgit/hooks/pre-commit", &["x"]), root),
        "rej-path"
    );
    assert_eq!(code(&add("dangling/x", &["x"]), root), "rej-path");
    assert_eq!(code(&add("src/alias.c", &["x"]), root), "rej-symlink");
    assert_eq!(code(&add("src/f.c/x", &["x"]), root), "ok");
}

#[test]
fn symlink_modes_and_binary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let link =
        "diff --git a/l b/l\nnew file mode 120000\n--- /dev/null\n+++ b/l\n@@ -0,0 +1 @@\n+/etc\n";
    assert_eq!(code(link, root), "rej-symlink");
    let typechange = "diff --git a/l b/l\nold mode 100644\nnew mode 120000\n";
    assert_eq!(code(typechange, root), "rej-symlink");
    let sub = "diff --git a/m b/m\nnew file mode 160000\n--- /dev/null\n+++ b/m\n@@ -0,0 +1 @@\n+Subproject commit 1234\n";
    assert_eq!(code(sub, root), "rej-download");
    let bin = "diff --git a/x.png b/x.png\nindex 1..2 100644\nGIT binary patch\nliteral 1\nIcmZ?d00001\n\n";
    assert_eq!(code(bin, root), "rej-binary");
}

#[test]
fn size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let small = Limits {
        max_files: 2,
        max_changed_lines: 3,
        max_bytes: 10_000,
    };
    let three: String = ["a", "b", "c"].iter().map(|p| add(p, &["x"])).collect();
    let d = parse(&three).unwrap();
    let r = check(&d, root, &small).unwrap_err();
    assert_eq!(r.code(), "rej-size");
    assert!(r.to_string().contains("3 files, the limit is 2"), "{r}");
    let d = parse(&add("a", &["1", "2", "3", "4"])).unwrap();
    assert_eq!(check(&d, root, &small).unwrap_err().code(), "rej-size");
    let d = parse(&add("a", &[&"x".repeat(20_000)])).unwrap();
    assert_eq!(check(&d, root, &small).unwrap_err().code(), "rej-size");
}

const SECRET_LINES: &[(&str, &str)] = &[
    ("-----BEGIN RSA PRIVATE KEY-----", "private key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----", "private key"),
    ("aws = \"AKIAIOSFODNN7EXAMPLE\"", "AWS"),
    ("t = ghp_abcdefghijklmnopqrstuvwxyz0123456789", "GitHub"),
    ("github_pat_11ABCDEFG0123456789_abcdefghijklmnop", "GitHub"),
    ("HF=hf_abcdefghijklmnopqrstuvwxyzABCDEFGH", "Hugging Face"),
    ("key: sk-abcdefghijklmnopqrstuvwxyz012345", "OpenAI"),
    (
        "sk-ant-api03-abcdefghijklmnopqrstuvwxyz",
        "OpenAI/Anthropic",
    ),
    (
        "api_key = \"a8f5f167f44f4964e6c998dee827110c\"",
        "credential",
    ),
    ("PASSWORD: 'Tr0ub4dor&3xyzzy12'", "credential"),
    (
        "const char *auth_token = \"0123456789abcdefXYZ\";",
        "credential",
    ),
];

#[test]
fn secrets_are_refused_without_echo() {
    let dir = tempfile::tempdir().unwrap();
    for (line, kind) in SECRET_LINES {
        let text = add("src/config.py", &["ok = 1", line]);
        let r = judge(&text, dir.path()).unwrap_err();
        assert_eq!(r.code(), "rej-secret", "{line}");
        let msg = r.to_string();
        assert!(msg.contains("src/config.py:2"), "{msg}");
        assert!(msg.contains(kind), "{msg} for {line}");
        let value = line
            .rsplit(['=', ' ', ':'])
            .next()
            .unwrap()
            .trim_matches(['"', '\'', ';']);
        assert!(!msg.contains(value), "{msg} echoes {value}");
    }
}

#[test]
fn ordinary_code_is_not_a_secret() {
    for line in [
        "const char * token = \"<|im_start|>assistant\";",
        "int max_tokens = 4096;",
        "password = getenv(\"PASSWORD\")",
        "if (tok == \"sk-\") return;",
        "// see hf_hub_download for the files",
        "secret = \"not-random-enough-words\"",
        "task-ask-for-help",
    ] {
        assert_eq!(secret_kind(line), None, "{line}");
    }
}

#[test]
fn downloads_in_build_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, line) in [
        (
            "CMakeLists.txt",
            "FetchContent_Declare(json URL https://x/y.tar.gz)",
        ),
        ("cmake/deps.cmake", "ExternalProject_Add(foo)"),
        ("ggml/CMakeLists.txt", "file(DOWNLOAD ${U} ${F})"),
        ("Makefile", "\tcurl -L -o model.bin $(URL)"),
        ("scripts/get.sh", "wget -q x"),
        (
            "requirements-dev.txt",
            "torch @ https://download.pytorch.org/x.whl",
        ),
        ("Dockerfile", "RUN pip install -r requirements.txt"),
        ("setup.py", "os.system('git clone x')"),
        (
            "build.rs",
            "Command::new(\"git\").args([\"submodule\"]); // git submodule update",
        ),
        (
            "pyproject.toml",
            "dep = { git = \"https://github.com/x/y\" }",
        ),
        ("common.mk", "python -m pip install foo"),
    ] {
        let r = judge(&add(path, &[line]), root).unwrap_err();
        assert_eq!(r.code(), "rej-download", "{path}: {line}");
        assert!(r.to_string().contains(&format!("{path}:1")), "{r}");
    }
    let sub = "diff --git a/m b/m\nnew file mode 160000\n--- /dev/null\n+++ b/m\n@@ -0,0 +1 @@\n+Subproject commit 1234\n";
    let r = judge(sub, root).unwrap_err();
    assert_eq!(r.code(), "rej-download");
    assert!(r.to_string().starts_with("m: submodule"), "{r}");
    let shebang = add("tools/fetch", &["#!/usr/bin/env bash", "wget -q x"]);
    assert_eq!(code(&shebang, root), "rej-download");
    assert_eq!(
        code(&add("src/net.cpp", &["// https://example.com/x"]), root),
        "ok"
    );
    assert_eq!(
        code(&add("CMakeLists.txt", &["find_package(CURL)"]), root),
        "ok"
    );
    assert_eq!(
        code(
            &add("CMakeLists.txt", &["option(LLAMA_CURL \"libcurl\" ON)"]),
            root
        ),
        "ok"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn dotdot_or_absolute_never_pass(
        before in proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 0..4),
        after in proptest::collection::vec("[a-zA-Z0-9_.-]{1,8}", 0..4),
        absolute in proptest::bool::ANY,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let mut parts = before.clone();
        if !absolute {
            parts.push("..".to_string());
        }
        parts.extend(after);
        let mut path = parts.join("/");
        if absolute {
            path.insert(0, '/');
        }
        prop_assert_eq!(check_path(&root, &path).unwrap_err().code(), "rej-path");
        let text = add(&path, &["x"]);
        if let Ok(d) = parse(&text) {
            prop_assert!(check(&d, &root, &Limits::default()).is_err());
        }
    }
}
