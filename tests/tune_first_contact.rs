//! A new user's first `forge tune`: a model that does not fit with the engine's defaults
//! boots a derived baseline (or the user's base engine arguments), a typo in the model
//! stops before a run directory exists, and a run that measured nothing says so and exits
//! non-zero.

mod common;

use common::run::{class, journal, only_run_dir, prompts, read_json, write_workload};
use common::sandbox::Sandbox;
use serde_json::json;

const LLAMA_8B: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// A tiny workload whose longest request needs 2,600 tokens of context (2,500 in, 100 out)
/// and a few short ones.
fn workload(sb: &Sandbox) -> String {
    let mut lines = prompts(3, 16);
    lines.push(json!({"prompt": "word ".repeat(2500), "expected_output_tokens": 100}));
    write_workload(sb.path(), "w.jsonl", &lines)
        .display()
        .to_string()
}

fn dry_run(sb: &Sandbox, model: &str, extra: &[&str]) -> common::bin::Outcome {
    let w = workload(sb);
    let mut args = vec![
        "tune",
        "--dry-run",
        "--sim-gpu",
        "L4",
        "--model",
        model,
        "--workload",
        &w,
        "--max-experiments",
        "1",
        "--max-repeats",
        "1",
        "--sim-time-scale",
        "0.02",
    ];
    args.extend_from_slice(extra);
    sb.run(&args)
}

#[test]
fn an_8b_model_on_an_l4_boots_a_baseline_derived_from_vllms_hint() {
    let sb = Sandbox::new();
    let out = dry_run(&sb, LLAMA_8B, &[]);
    assert!(out.success(), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "forge: the engine's defaults do not boot on this GPU (the model's full context does not fit; vLLM estimates at most"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("the baseline serves the workload's longest request"),
        "{}",
        out.stderr
    );
    let rows = journal(&sb.run_dir());
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(class(&rows[0]), Some("infeasible_oom"));
    assert_eq!(rows[1]["status"], "baseline");
    // The longest request's context rounded up to a multiple of 1,024.
    let len = rows[1]["recipe"]["config"]["max_model_len"]
        .as_u64()
        .unwrap();
    assert!((3072..=4096).contains(&len), "{len}");
    assert_eq!(rows[0]["exp"], 0);
    assert_eq!(rows[1]["exp"], 0);
    assert!(
        rows[1]["rationale"]
            .as_str()
            .unwrap()
            .contains(&format!("max_model_len {len}")),
        "{}",
        rows[1]
    );
    let report = sb.run(&["report", sb.run_dir().to_str().unwrap()]);
    assert!(report.success(), "{}", report.stderr);
    assert!(
        !report.stdout.contains("nothing measured"),
        "{}",
        report.stdout
    );
}

#[test]
fn base_engine_arguments_set_the_baseline_and_are_recorded() {
    let sb = Sandbox::new();
    let out = dry_run(
        &sb,
        LLAMA_8B,
        &["--engine-args", "--max-model-len 8192 --max-num-seqs 64"],
    );
    assert!(out.success(), "{}", out.stderr);
    let run = sb.run_dir();
    let config = read_json(&run.join("config.json"));
    assert_eq!(
        config["engine_args"],
        json!(["--max-model-len", "8192", "--max-num-seqs", "64"])
    );
    let rows = journal(&run);
    assert_eq!(rows[0]["status"], "baseline", "{}", rows[0]);
    assert_eq!(
        rows[0]["recipe"]["config"],
        json!({"max_model_len": 8192, "max_num_seqs": 64})
    );
}

#[test]
fn engine_arguments_outside_the_allowlist_fail_before_a_run() {
    for (args, says) in [
        ("--quantization fp8", "--engine-args: "),
        ("--max-num-seqs 0", "--engine-args: "),
        ("--no-such-flag 3", "--engine-args: "),
        ("--max-model-len '8192", "unbalanced quotes"),
    ] {
        let sb = Sandbox::new();
        let out = dry_run(&sb, LLAMA_8B, &["--engine-args", args]);
        assert_eq!(out.code, 1, "{args}: {}", out.stderr);
        assert!(out.stderr.contains(says), "{args}: {}", out.stderr);
        assert_eq!(out.stderr.matches("error:").count(), 1, "{}", out.stderr);
        assert!(!sb.store().exists(), "{args}: a bad input started a run");
    }
}

#[test]
fn an_unknown_model_exits_non_zero_before_a_run_exists() {
    let sb = Sandbox::new();
    let out = dry_run(&sb, "meta-llama/Llama-3.1-8B-Instrct", &[]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .starts_with("error: --model: unknown model `meta-llama/Llama-3.1-8B-Instrct`"),
        "{}",
        out.stderr
    );
    assert!(!sb.store().exists(), "a typo started a run");
    // For vLLM a malformed id or a missing local path is caught the same way.
    for model in ["Qwen//Qwen2.5-7B", "./no-such-model"] {
        let w = workload(&sb);
        let out = sb.run(&[
            "tune",
            "--engine",
            "vllm",
            "--device",
            "cpu",
            "--model",
            model,
            "--workload",
            &w,
        ]);
        assert_eq!(out.code, 1, "{model}: {}", out.stderr);
        assert!(
            out.stderr.starts_with(&format!("error: --model {model}: ")),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn a_baseline_vllm_cannot_find_is_model_not_found_and_exits_3() {
    let sb = Sandbox::new();
    let w = workload(&sb);
    let args = sb.fake_tune_args("Qwen/Qwen2.5-7B-Instrct", &w);
    let out = sb.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(
        out.stderr.contains("forge: nothing measured"),
        "{}",
        out.stderr
    );
    // No simulator for this model (or this machine): said loudly, once, up front.
    assert_eq!(
        out.stderr.matches("NO SURROGATE").count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("agent: builtin (no surrogate: playbook rules"),
        "{}",
        out.stderr
    );
    let run = only_run_dir(&sb.store());
    let rows = journal(&run);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(class(&rows[0]), Some("model_not_found"));
    assert!(
        rows[0]["failure"]["summary"].as_str().unwrap().contains(
            "Invalid repository ID or local directory specified: 'Qwen/Qwen2.5-7B-Instrct'"
        ),
        "{}",
        rows[0]
    );
    let report = sb.run(&["report", run.to_str().unwrap()]);
    assert!(
        report.stdout.contains("failed, nothing measured"),
        "{}",
        report.stdout
    );
}
