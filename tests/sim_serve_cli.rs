//! `forge sim serve` / `forge sim predict` command lines: argparse errors exit 2 with
//! vLLM's exact text, configs that cannot boot exit 1 with vLLM's message, help exits 0.

mod common;

use std::time::Duration;

use common::run::sim_small_workload;
use common::sim_proc::{MODEL, spawn};

fn run(args: &[&str]) -> (i32, String, String) {
    let mut p = spawn(args);
    let status = p
        .wait_exit(Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{args:?} did not exit\n{}", p.stdout()));
    (status.code().unwrap_or(-1), p.stdout(), p.stderr())
}

#[test]
fn unknown_flag_is_an_argparse_error() {
    let (code, out, err) = run(&["sim", "serve", MODEL, "--foo", "1"]);
    assert_eq!(code, 2);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "usage: vllm serve [model_tag] [options]\nvllm serve: error: unrecognized arguments: --foo 1\n"
    );
}

#[test]
fn removed_flags_are_unknown() {
    let (code, _, err) = run(&["sim", "serve", MODEL, "--swap-space", "4"]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with("vllm serve: error: unrecognized arguments: --swap-space 4\n"),
        "{err}"
    );
    // (`--disable-log-requests` is not one: 0.33 lists it as the negation of
    // `--enable-log-requests`.)
    let (code, _, err) = run(&["sim", "serve", MODEL, "--max-num-partial-prefills", "2"]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with("unrecognized arguments: --max-num-partial-prefills 2\n"),
        "{err}"
    );
}

#[test]
fn bad_values_are_argparse_errors() {
    let (code, _, err) = run(&["sim", "serve", MODEL, "--kv-cache-dtype", "bf16"]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with(
            "vllm serve: error: argument --kv-cache-dtype: invalid choice: 'bf16' (choose from \
             auto, bfloat16, float16, fp8, fp8_e4m3, fp8_e5m2)\n"
        ),
        "{err}"
    );
    let (code, _, err) = run(&["sim", "serve", MODEL, "--max-num-seqs", "abc"]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with("argument --max-num-seqs: invalid int value: 'abc'\n"),
        "{err}"
    );
}

#[test]
fn bad_sim_flags_exit_2() {
    let (code, _, err) = run(&["sim", "serve", MODEL, "--sim-gpu", "GTX480"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("forge sim serve: error: argument --sim-gpu: unknown GPU 'GTX480'"),
        "{err}"
    );
    let (code, _, err) = run(&["sim", "serve", MODEL, "--sim-fail-startup", "disk"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("invalid choice: 'disk' (choose from oom, config)"),
        "{err}"
    );
}

#[test]
fn help_all_lists_the_flag_table() {
    let (code, out, _) = run(&["sim", "serve", MODEL, "--help=all"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("usage: vllm serve [model_tag] [options]\n"));
    for flag in [
        "--max-num-seqs",
        "--enable-prefix-caching, --disable-prefix-caching",
        "-tp",
    ] {
        assert!(out.contains(flag), "{flag}");
    }
    assert!(!out.contains("--swap-space"));
}

#[test]
fn predict_needs_a_workload() {
    let (code, _, err) = run(&["sim", "predict", MODEL]);
    assert_eq!(code, 2);
    assert!(
        err.ends_with(
            "forge sim predict: error: the following arguments are required: --workload\n"
        ),
        "{err}"
    );
    let (code, _, err) = run(&["sim", "predict", MODEL, "--workload", "x.jsonl", "--bogus"]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized arguments: --bogus"), "{err}");
}

#[test]
fn predict_reports_injected_startup_failures() {
    let fixture = sim_small_workload();
    let fixture = fixture.to_str().unwrap();
    let (code, _, err) = run(&[
        "sim",
        "predict",
        MODEL,
        "--workload",
        fixture,
        "--sim-fail-startup",
        "config",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.lines().last().unwrap().starts_with("ValueError: "),
        "{err}"
    );
}

#[test]
fn invalid_combination_exits_1_with_vllm_text() {
    let (code, out, err) = run(&[
        "sim",
        "serve",
        MODEL,
        "--port",
        "0",
        "--sim-time-scale",
        "0.01",
        "--max-num-batched-tokens",
        "64",
        "--max-num-seqs",
        "128",
    ]);
    assert_eq!(code, 1);
    let last = err.lines().last().unwrap_or_default();
    assert!(last.starts_with("ValueError: "), "{err}");
    assert!(last.contains("64") && last.contains("128"), "{last}");
    assert!(!out.contains("Starting vLLM API server"));
}

#[test]
fn oversized_model_exits_1_with_oom_text() {
    let (code, out, err) = run(&[
        "sim",
        "serve",
        "meta-llama/Llama-3.1-70B-Instruct",
        "--port",
        "0",
        "--sim-gpu",
        "L4",
        "--sim-time-scale",
        "0.01",
    ]);
    assert_eq!(code, 1);
    let all = format!("{out}{err}");
    assert!(
        all.contains("CUDA out of memory")
            || all.contains("No available memory for the cache blocks"),
        "{all}"
    );
    assert!(
        err.contains("RuntimeError: Engine core initialization failed."),
        "{err}"
    );
    assert!(!out.contains("Starting vLLM API server"));
}

#[test]
fn predict_prints_and_writes_the_result() {
    let fixture = sim_small_workload();
    let fixture = fixture.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("result.json");
    let (code, out, err) = run(&[
        "sim",
        "predict",
        MODEL,
        "--sim-gpu",
        "L4",
        "--workload",
        fixture,
        "--output",
        output.to_str().unwrap(),
        "--max-num-seqs",
        "8",
    ]);
    assert_eq!(code, 0, "{err}");
    let printed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&output).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(printed["completed"], 6);
    assert_eq!(printed["failed"], 0);
    // Output lengths are pinned to expected_output_tokens: 4+8+16+4+8+16.
    assert_eq!(printed["total_output_tokens"], 56);
}

#[test]
fn predict_reports_boot_failures_like_serve() {
    let fixture = sim_small_workload();
    let fixture = fixture.to_str().unwrap();
    let (code, _, err) = run(&[
        "sim",
        "predict",
        MODEL,
        "--workload",
        fixture,
        "--max-num-batched-tokens",
        "64",
        "--max-num-seqs",
        "128",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.lines().last().unwrap().starts_with("ValueError: "),
        "{err}"
    );
}

fn predict_json(extra: &[&str]) -> serde_json::Value {
    let fixture = sim_small_workload();
    let fixture = fixture.to_str().unwrap();
    let mut args = vec!["sim", "predict", MODEL, "--workload", fixture];
    args.extend_from_slice(extra);
    let (code, out, err) = run(&args);
    assert_eq!(code, 0, "{err}");
    let mut v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_object_mut().unwrap().remove("date");
    v
}

#[test]
fn predict_is_deterministic_and_noise_is_seeded() {
    assert_eq!(predict_json(&[]), predict_json(&[]));
    let a = predict_json(&["--sim-noise", "5", "--sim-seed", "1"]);
    assert_eq!(a, predict_json(&["--sim-noise", "5", "--sim-seed", "1"]));
    let b = predict_json(&["--sim-noise", "5", "--sim-seed", "2"]);
    assert_ne!(
        a["mean_ttft_ms"], b["mean_ttft_ms"],
        "noise follows the seed"
    );
}

#[test]
fn predict_refuses_load_flags_exactly_as_bench_does() {
    let fixture = sim_small_workload();
    let fixture = fixture.to_str().unwrap();
    let load = ["--timing", "trace", "--request-rate", "5"];
    let mut predict = vec!["sim", "predict", MODEL, "--workload", fixture];
    predict.extend(load);
    let mut bench = vec!["bench", "--base-url", "http://127.0.0.1:9", "-w", fixture];
    bench.extend(load);
    let (pc, pout, perr) = run(&predict);
    let (bc, bout, berr) = run(&bench);
    assert_eq!((pc, bc), (1, 1), "{perr}\n{berr}");
    assert_eq!((pout.as_str(), bout.as_str()), ("", ""));
    assert_eq!(perr, berr);
    assert_eq!(
        perr,
        "error: --request-rate: not used with --timing trace (offsets come from the workload)\n"
    );
    // The same for a bad value, and a value clap rejects is a usage error (2) in both.
    for extra in [["--burstiness", "0"], ["--concurrency", "x"]] {
        let mut p = vec!["sim", "predict", MODEL, "--workload", fixture];
        p.extend(extra);
        let mut b = vec!["bench", "--base-url", "http://127.0.0.1:9", "-w", fixture];
        b.extend(extra);
        let ((pc, _, perr), (bc, _, berr)) = (run(&p), run(&b));
        assert_eq!(pc, bc, "{extra:?}: {perr} / {berr}");
        assert_eq!(perr.lines().next(), berr.lines().next(), "{extra:?}");
    }
}
