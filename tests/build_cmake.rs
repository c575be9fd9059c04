//! The CMake + Ninja build path `forge campaign` rebuilds llama.cpp through
//! (`forge::build::CMakeBuild`, which `LlamaCpp` wraps with llama.cpp's flags), on a tiny
//! C project in a git checkout: configure + build, a no-op rebuild, an incremental rebuild
//! after an edit, a rebuild after `git reset --hard` (a revert), a syntax error
//! (`Compile` with the compiler's first error line), a broken `CMakeLists.txt`
//! (`Configure`), a timeout, and the log each writes.
//!
//! Needs cmake and ninja (on PATH or in ~/.cache/forge-peers/build-tools/bin, made by
//! scripts/llama-server.sh); without them the test skips loudly, and fails when
//! FORGE_REQUIRE_LLAMACPP=1 (CI).

mod common;

use common::git::git;
use forge::build::{BuildFailure, Builder, Built, CMakeBuild, LlamaCpp, Tools};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn tools_or_skip() -> Option<Tools> {
    match Tools::find() {
        Ok(tools) => Some(tools),
        Err(e) if std::env::var("FORGE_REQUIRE_LLAMACPP").as_deref() == Ok("1") => {
            panic!("FORGE_REQUIRE_LLAMACPP=1 but the build tools are missing: {e}")
        }
        Err(e) => {
            // Past the harness's capture, so a skip is seen.
            let msg =
                format!("\n*** SKIPPED build_cmake: {e} (scripts/llama-server.sh makes them)\n");
            let _ = std::io::stderr().write_all(msg.as_bytes());
            None
        }
    }
}

fn project(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    let files = [
        (
            "CMakeLists.txt",
            "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello main.c util.c)\n",
        ),
        (
            "main.c",
            "#include <stdio.h>\nint util(void);\nint main(void) { printf(\"hello %d\\n\", util()); return 0; }\n",
        ),
        ("util.c", "int util(void) {\n    return 1;\n}\n"),
    ];
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
    }
    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "hello"]);
}

fn says(built: &Built) -> String {
    let out = Command::new(&built.program).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The log's text after its last `$ ` header line (the last step's output).
fn last_step(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap();
    let at = text.rfind("\n$ ").map_or(0, |i| i + 1);
    text[at..].to_string()
}

#[test]
fn tiny_cmake_project_builds_incrementally_and_classifies_failures() {
    let Some(tools) = tools_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("checkout");
    let build_dir = tmp.path().join("build");
    let log = tmp.path().join("attempt.log");
    project(&src);
    let mut builder = CMakeBuild::new(&build_dir, "hello", Path::new("hello"));
    builder.tools = Some(tools);

    let built = builder.build(&src, &log, LIMIT).unwrap();
    assert_eq!(says(&built), "hello 1");
    assert!(builder.is_configured());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("-G Ninja") && text.contains("--target hello"),
        "{text}"
    );
    assert!(
        forge::patch::git::status_clean(&src).unwrap(),
        "the checkout stays clean"
    );

    builder.build(&src, &log, LIMIT).unwrap();
    assert!(
        last_step(&log).contains("ninja: no work to do"),
        "{}",
        last_step(&log)
    );

    // An edit rebuilds the one object and relinks.
    std::fs::write(src.join("util.c"), "int util(void) {\n    return 2;\n}\n").unwrap();
    let built = builder.build(&src, &log, LIMIT).unwrap();
    assert_eq!(says(&built), "hello 2");
    let step = last_step(&log);
    assert!(
        step.contains("util.c.o") && !step.contains("main.c.o"),
        "{step}"
    );

    // A revert (`git reset --hard`) gives the file a new mtime: ninja rebuilds it.
    let head = forge::patch::git::head(&src).unwrap();
    forge::patch::git::revert_to(&src, &head).unwrap();
    assert_eq!(says(&builder.build(&src, &log, LIMIT).unwrap()), "hello 1");

    // A syntax error: Compile, with gcc's first error line and the source line.
    std::fs::write(src.join("util.c"), "int util(void) {\n    return 0\n}\n").unwrap();
    let err = builder.build(&src, &log, LIMIT).unwrap_err();
    let BuildFailure::Compile { first_errors } = &err else {
        panic!("{err:?}")
    };
    let want = "util.c:2:13: error: expected ';' before '}' token";
    assert!(first_errors[0].ends_with(want), "{first_errors:?}");
    assert_eq!(first_errors[1], "    2 |     return 0");
    assert!(err.is_patch_fault());
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("ninja: build stopped")
    );
    forge::patch::git::revert_to(&src, &head).unwrap();

    // A broken CMakeLists.txt: ninja re-runs CMake, which fails: Configure.
    std::fs::write(src.join("CMakeLists.txt"), "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nadd_executable(hello main.c util.c gone.c)\n").unwrap();
    let err = builder.build(&src, &log, LIMIT).unwrap_err();
    let BuildFailure::Configure { first_errors } = &err else {
        panic!("{err:?}")
    };
    assert!(
        first_errors[0].starts_with("CMake Error"),
        "{first_errors:?}"
    );
    forge::patch::git::revert_to(&src, &head).unwrap();

    // Out of time.
    let err = builder.build(&src, &log, Duration::ZERO).unwrap_err();
    assert!(matches!(err, BuildFailure::Timeout { .. }), "{err:?}");
    assert_eq!(says(&builder.build(&src, &log, LIMIT).unwrap()), "hello 1");
}

#[test]
fn a_fresh_build_dir_that_fails_to_configure_is_configure() {
    let Some(tools) = tools_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("checkout");
    project(&src);
    std::fs::write(src.join("CMakeLists.txt"), "cmake_minimum_required(VERSION 3.10)\nproject(hello C)\nfind_package(NoSuchPackage REQUIRED)\n").unwrap();
    let mut builder = CMakeBuild::new(&tmp.path().join("build"), "hello", Path::new("hello"));
    builder.tools = Some(tools);
    let err = builder
        .build(&src, &tmp.path().join("log"), LIMIT)
        .unwrap_err();
    let BuildFailure::Configure { first_errors } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        first_errors[0],
        "CMake Error at CMakeLists.txt:3 (find_package):"
    );
    assert!(!builder.is_configured());
}

#[test]
fn llama_cpp_uses_the_flags_of_the_ci_build_script() {
    let builder = LlamaCpp::new(Path::new("/tmp/b"));
    let script = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/llama-server.sh"
    ))
    .unwrap();
    for (name, value) in &builder.cmake.defines {
        let flag = format!("-D{name}={value}");
        assert!(
            script.contains(&flag),
            "{flag} is not in scripts/llama-server.sh"
        );
    }
    assert_eq!(builder.cmake.defines.len(), script.matches(" -D").count());
    assert_eq!(builder.cmake.target, "llama-server");
    assert_eq!(builder.cmake.output, Path::new("bin/llama-server"));
}
