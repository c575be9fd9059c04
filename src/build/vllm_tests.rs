use super::*;
use crate::build::BuildFailure;
use std::os::unix::fs::PermissionsExt;

/// A fake `python` that records its argv and `VLLM_USE_PRECOMPILED` and its cwd, then
/// succeeds, or fails the way pip does when `fail` is set.
fn fake_python(dir: &Path, fail: bool) -> PathBuf {
    let record = dir.join("record.txt");
    let tail = if fail {
        "echo 'Obtaining file:///x'\necho 'ERROR: Could not find a version that satisfies the requirement torch==9.9 (from vllm)' >&2\nexit 1\n"
    } else {
        "echo 'Successfully installed vllm-0.0.0'\nexit 0\n"
    };
    let script = format!(
        "#!/bin/sh\nfor a in \"$@\"; do echo \"arg=$a\"; done > '{}'\necho \"env=$VLLM_USE_PRECOMPILED $VLLM_PRECOMPILED_WHEEL_COMMIT\" >> '{}'\necho \"cwd=$(pwd)\" >> '{}'\n{tail}",
        record.display(),
        record.display(),
        record.display()
    );
    let path = dir.join("python");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn pip_editable_install_with_precompiled_kernels() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path().join("vllm");
    std::fs::create_dir(&checkout).unwrap();
    let python = fake_python(tmp.path(), false);
    let mut builder = VllmPythonOnly::pip(&python);
    builder
        .env
        .push(("VLLM_PRECOMPILED_WHEEL_COMMIT".into(), "nightly".into()));
    let log = tmp.path().join("build.log");
    let built = builder
        .build(&checkout, &log, Duration::from_secs(30))
        .unwrap();
    assert_eq!(built.program, python);
    let record = std::fs::read_to_string(tmp.path().join("record.txt")).unwrap();
    let want = format!(
        "arg=-m\narg=pip\narg=install\narg=--editable\narg={}\nenv=1 nightly\ncwd={}\n",
        checkout.display(),
        checkout.display()
    );
    assert_eq!(record, want);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.starts_with("$ VLLM_USE_PRECOMPILED=1 VLLM_PRECOMPILED_WHEEL_COMMIT=nightly "),
        "{logged}"
    );
    assert!(logged.contains("Successfully installed"), "{logged}");
}

#[test]
fn uv_install_names_the_interpreter() {
    let tmp = tempfile::tempdir().unwrap();
    let checkout = tmp.path().join("vllm");
    std::fs::create_dir(&checkout).unwrap();
    // The fake "uv" is the same recording script.
    let uv = fake_python(tmp.path(), false);
    let python = tmp.path().join("venv-python");
    std::fs::copy(&uv, &python).unwrap();
    let log = tmp.path().join("build.log");
    let built = VllmPythonOnly::uv(&python, &uv)
        .build(&checkout, &log, Duration::from_secs(30))
        .unwrap();
    assert_eq!(built.program, python);
    let record = std::fs::read_to_string(tmp.path().join("record.txt")).unwrap();
    let args: Vec<&str> = record
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    let (p, c) = (python.display().to_string(), checkout.display().to_string());
    assert_eq!(
        args,
        [
            "pip",
            "install",
            "--python",
            &p,
            "--editable",
            &c,
            "--torch-backend=auto"
        ]
    );
}

#[test]
fn a_pip_error_is_an_install_failure_with_its_error_line() {
    let tmp = tempfile::tempdir().unwrap();
    let python = fake_python(tmp.path(), true);
    let log = tmp.path().join("build.log");
    let err = VllmPythonOnly::pip(&python)
        .build(tmp.path(), &log, Duration::from_secs(30))
        .unwrap_err();
    match &err {
        BuildFailure::Install { first_errors } => assert_eq!(
            first_errors,
            &[
                "ERROR: Could not find a version that satisfies the requirement torch==9.9 (from vllm)"
            ]
        ),
        other => panic!("{other:?}"),
    }
    assert!(err.is_patch_fault());
    assert!(std::fs::read_to_string(&log).unwrap().contains("Obtaining"));
}

#[test]
fn a_missing_interpreter_is_missing_not_the_patch() {
    let tmp = tempfile::tempdir().unwrap();
    let err = VllmPythonOnly::pip(&tmp.path().join("no-python"))
        .build(tmp.path(), &tmp.path().join("log"), Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(&err, BuildFailure::Missing { tool, .. } if tool == "python"),
        "{err:?}"
    );
    assert!(!err.is_patch_fault());
}
