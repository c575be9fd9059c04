//! Every numeric flag of every command has a range (`src/bounds.rs`): values that would
//! overflow a clock, a `Duration` or an allocation are usage errors, never a panic. The
//! walk finds new flags by itself, so a flag added without a range fails here. The values
//! the hardening review found (`--boot-timeout 1e300`, `--concurrency 4294967296`, …) are
//! also run through the real binary.

mod common;

use std::ffi::OsStr;

use clap::CommandFactory;
use forge::cli::Cli;

/// Flags whose whole type range is legal (a seed is any u64; a port any u16).
const FULL_RANGE: &[&str] = &["seed", "port"];
/// Values no bounded numeric flag may accept.
const ABSURD: &[&str] = &[
    "1e300",
    "-1e300",
    "nan",
    "inf",
    "-1",
    "4294967296",
    "18446744073709551615",
];

/// Whether `arg`'s own value parser accepts `v` (the arg alone in a command of its own, as
/// an optional `--x=V`, so other args' requirements do not interfere).
fn accepts(arg: &clap::Arg, v: &str) -> bool {
    let alone = arg
        .clone()
        .long("x")
        .short(None)
        .index(None)
        .required(false)
        .required_unless_present(clap::builder::Resettable::<clap::Id>::Reset)
        .requires(clap::builder::Resettable::<clap::Id>::Reset)
        .conflicts_with(clap::builder::Resettable::<clap::Id>::Reset)
        .global(false)
        .last(false)
        .trailing_var_arg(false)
        .allow_hyphen_values(true)
        .num_args(1)
        .action(clap::ArgAction::Set);
    clap::Command::new("t")
        .disable_help_flag(true)
        .disable_version_flag(true)
        .arg(alone)
        .try_get_matches_from([OsStr::new("t"), OsStr::new(&format!("--x={v}"))])
        .is_ok()
}

/// (command path, flag id) of every numeric flag that accepts an absurd value.
fn unbounded(cmd: &clap::Command, path: &str, out: &mut Vec<String>, numeric: &mut usize) {
    for arg in cmd.get_arguments() {
        if !arg.get_action().takes_values() || FULL_RANGE.contains(&arg.get_id().as_str()) {
            continue;
        }
        let is_numeric = accepts(arg, "1") && !accepts(arg, "one");
        if !is_numeric {
            continue;
        }
        *numeric += 1;
        for v in ABSURD {
            if accepts(arg, v) {
                out.push(format!("{path} --{}: accepts {v}", arg.get_id()));
            }
        }
    }
    for sub in cmd.get_subcommands() {
        unbounded(sub, &format!("{path} {}", sub.get_name()), out, numeric);
    }
}

/// A model the simulator's catalogue knows.
const MODEL: &str = "Qwen/Qwen2.5-0.5B-Instruct";

/// A temporary directory holding `w.jsonl` with one request, and that file's path.
fn one_request() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.jsonl");
    std::fs::write(&w, "{\"prompt\":\"hi\",\"expected_output_tokens\":4}\n").unwrap();
    let w = w.to_str().unwrap().to_string();
    (dir, w)
}

#[test]
fn every_numeric_flag_has_a_range() {
    let cmd = Cli::command();
    let (mut bad, mut numeric) = (Vec::new(), 0);
    unbounded(&cmd, "forge", &mut bad, &mut numeric);
    eprintln!("numeric flags: {numeric}");
    assert!(
        bad.is_empty(),
        "unbounded numeric flags:\n{}",
        bad.join("\n")
    );
    assert!(
        (25..1000).contains(&numeric),
        "the walk found only {numeric} numeric flags"
    );
}

#[test]
fn the_reviewed_values_are_usage_errors_not_panics() {
    let (_dir, w) = one_request();
    let w = w.as_str();
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "tune",
            "--dry-run",
            "-m",
            MODEL,
            "-w",
            w,
            "--boot-timeout",
            "1e300",
        ],
        vec![
            "tune",
            "--dry-run",
            "-m",
            MODEL,
            "-w",
            w,
            "--sim-time-scale",
            "1e300",
        ],
        vec![
            "tune",
            "--dry-run",
            "-m",
            MODEL,
            "-w",
            w,
            "--sim-boot-time-scale",
            "1e19",
        ],
        vec![
            "sim",
            "predict",
            MODEL,
            "--workload",
            w,
            "-c",
            "18446744073709551615",
        ],
        vec!["sim", "predict", MODEL, "--workload", w, "-c", "4294967296"],
        vec![
            "sim",
            "predict",
            MODEL,
            "--workload",
            w,
            "--num-warmups",
            "4294967295",
        ],
        vec![
            "bench",
            "--base-url",
            "http://127.0.0.1:9",
            "-w",
            w,
            "--request-timeout",
            "1e300",
        ],
        vec![
            "bench",
            "--base-url",
            "http://127.0.0.1:9",
            "-w",
            w,
            "--time-scale",
            "1e300",
        ],
        vec![
            "workload",
            "synth",
            "--input-len",
            "4",
            "--output-len",
            "4",
            "--num-prompts",
            "1e11",
        ],
    ];
    for args in cases {
        let o = common::bin::forge(&[]).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("invalid value"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn a_rate_or_an_offset_past_a_week_is_refused_by_name() {
    let (dir, w) = one_request();
    let far = dir.path().join("far.jsonl");
    std::fs::write(
        &far,
        "{\"prompt\":\"hi\",\"expected_output_tokens\":4,\"arrival_offset_s\":1e300}\n",
    )
    .unwrap();
    let o = common::bin::forge(&[])
        .args(["sim", "predict", MODEL, "--workload"])
        .arg(&w)
        .args(["--request-rate", "1e-300"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--request-rate: 1 requests at 1e-300 req/s"),
        "{err}"
    );
    let o = common::bin::forge(&[])
        .args(["sim", "predict", MODEL, "--workload"])
        .arg(&far)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("far.jsonl:1: arrival_offset_s: 1e300 s is past the limit"),
        "{err}"
    );
}

#[test]
fn zero_counts_and_files_the_loader_would_refuse_are_refused_up_front() {
    let (_dir, w) = one_request();
    let w = w.as_str();
    // The simulator refuses what vLLM's config validation refuses (it never answered).
    for (flag, field) in [
        ("--max-num-seqs", "max_num_seqs"),
        ("-tp", "tensor_parallel_size"),
        ("-pp", "pipeline_parallel_size"),
    ] {
        let o = common::bin::forge(&["sim", "predict", MODEL, "--workload", w, flag, "0"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{field}\n  Input should be greater than or equal to 1"
            )),
            "{flag}: {err}"
        );
    }
    // `workload synth` never writes a file its own loader rejects.
    let o = common::bin::forge(&[
        "workload",
        "synth",
        "--input-len",
        "1",
        "--num-prompts",
        "1",
        "--output-len",
        "1048576",
        "--range-ratio",
        "0.5",
    ])
    .output()
    .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("above the workload limit of 1048576"), "{err}");
}
