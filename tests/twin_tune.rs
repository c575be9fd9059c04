//! `forge tune --engine sglang|trtllm --dry-run` end to end: the real adapters render each
//! experiment, real `forge sim serve --engine …` processes serve it with that framework's
//! defaults, readiness, routes and metric names, the surrogate climbs through the twin, and
//! the run directory holds what a vLLM run's does (acceptance 1 of the engines issue).

mod common;

use common::run::{journal, sim_small_workload};
use common::sandbox::Sandbox;

fn dry_run(engine: &str) -> (Sandbox, String) {
    let sb = Sandbox::new();
    let workload = sim_small_workload();
    let out = sb.run(&[
        "tune",
        "--dry-run",
        "--engine",
        engine,
        "--llm",
        "builtin",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--workload",
        workload.to_str().unwrap(),
        "--max-experiments",
        "3",
        "--max-repeats",
        "2",
    ]);
    assert!(out.success(), "{}", out.stderr);
    (sb, out.stderr)
}

fn check_run(sb: &Sandbox, stderr: &str, framework: &str, engine_line: &str) {
    assert!(stderr.contains(engine_line), "{stderr}");
    assert!(
        stderr.contains("agent: builtin (surrogate climb"),
        "the twin is the surrogate: {stderr}"
    );
    let run = sb.run_dir();
    for f in [
        "config.json",
        "experiments.jsonl",
        "best_recipe.yaml",
        "completed.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let config = std::fs::read_to_string(run.join("config.json")).unwrap();
    assert!(
        config.contains(&format!("\"framework\": \"{framework}\"")),
        "{config}"
    );
    let rows = journal(&run);
    assert_eq!(rows[0]["status"], "baseline");
    assert_eq!(rows[0]["recipe"]["engine"], framework);
    let base = rows[0]["samples"][0]["m"]["output_throughput"]
        .as_f64()
        .unwrap();
    assert!(base > 0.0, "{:?}", rows[0]);
    // The engine's metrics were read under its own names.
    assert_eq!(
        rows[0]["samples"][0]["facts"]["available"], true,
        "{:?}",
        rows[0]
    );
    let report = sb.run(&["report", run.to_str().unwrap()]);
    assert!(report.success(), "{}", report.stderr);
    let cmd = sb.run(&[
        "recipe",
        "command",
        run.join("best_recipe.yaml").to_str().unwrap(),
    ]);
    assert!(cmd.success(), "{}", cmd.stderr);
}

#[test]
fn sglang_dry_run_tunes_through_its_twin() {
    let (sb, stderr) = dry_run("sglang");
    check_run(
        &sb,
        &stderr,
        "sglang",
        "engine forge simulator of SGLang 0.5.23 on H100",
    );
    let log_dir = sb.run_dir().join("logs");
    let log = std::fs::read_dir(&log_dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .find(|t| t.contains("max_total_num_tokens="))
        .expect("an SGLang start-up log");
    assert!(
        log.contains("The server is fired up and ready to roll!"),
        "{log}"
    );
}

#[test]
fn trtllm_dry_run_tunes_through_its_twin() {
    let (sb, stderr) = dry_run("trtllm");
    check_run(
        &sb,
        &stderr,
        "trtllm",
        "engine forge simulator of TensorRT-LLM 1.2.0 on H100",
    );
    let yaml = std::fs::read_dir(sb.run_dir().join("logs"))
        .unwrap()
        .filter_map(Result::ok)
        .find(|e| {
            e.path()
                .to_string_lossy()
                .ends_with(".extra_llm_api_options.yaml")
        })
        .expect("the YAML written beside the log");
    let text = std::fs::read_to_string(yaml.path()).unwrap();
    assert!(text.contains("return_perf_metrics: true"), "{text}");
}
