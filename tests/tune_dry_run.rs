//! End to end: `forge tune --dry-run` through real `forge sim serve` processes, then
//! `forge report` on the run directory.

mod common;

use std::time::Duration;

use common::run::{journal, sample_workload};
use common::sandbox::Sandbox;

#[test]
fn dry_run_finds_a_recipe_that_beats_the_baseline_with_its_interval() {
    let sb = Sandbox::new();
    let workload = sample_workload();
    let out = sb.run(&[
        "tune",
        "--dry-run",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--workload",
        workload.to_str().unwrap(),
        "--max-experiments",
        "12",
    ]);
    let stderr = &out.stderr;
    assert!(out.success(), "{stderr}");
    assert!(stderr.contains("agent: builtin"), "{stderr}");
    let run = sb.run_dir();
    for f in [
        "config.json",
        "experiments.jsonl",
        "experiments.tsv",
        "experiments.json",
        "best_recipe.yaml",
        "completed.json",
    ] {
        assert!(run.join(f).exists(), "{f} missing");
    }
    let rows = journal(&run);
    assert_eq!(rows[0]["status"], "baseline");
    let experiments = rows.iter().filter(|r| !r["exp"].is_null()).count();
    assert!(experiments <= 12, "{experiments}");
    // One engine log per boot, and every measured row points at its candidate's log.
    for r in rows
        .iter()
        .filter(|r| r["status"] == "kept" || r["status"] == "reverted")
    {
        let log = r["engine_log"].as_str().unwrap();
        assert!(run.join(log).exists(), "{log}");
    }

    let report = sb.run(&["report", run.to_str().unwrap()]);
    assert!(report.success());
    let text = &report.stdout;
    let gain_line = text
        .lines()
        .find(|l| l.starts_with("Gain over baseline:"))
        .unwrap();
    assert!(gain_line.contains("measured side by side"), "{text}");
    // "+55.0 % (95 % CI +49.5 % … +60.8 %, ...)": the lower bound is above zero.
    let lo: f64 = gain_line
        .split("CI ")
        .nth(1)
        .and_then(|s| s.split(" %").next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{gain_line}"));
    assert!(lo > 0.0, "{gain_line}");
    // "Objective: baseline 994.7 tok/s (...) → recommended 1757.3 tok/s (...)".
    let objective = text
        .lines()
        .find_map(|l| l.strip_prefix("Objective: baseline "))
        .unwrap_or_else(|| panic!("{text}"));
    let tok_s = |s: &str| -> f64 { s.split(" tok/s").next().unwrap().trim().parse().unwrap() };
    let (base, rec) = objective.split_once("→ recommended ").unwrap();
    assert!(tok_s(rec) > tok_s(base), "{text}");
    let recommended = text
        .lines()
        .find(|l| l.starts_with("Recommended: "))
        .unwrap();
    assert!(!recommended.ends_with("the engine's defaults"), "{text}");
    assert!(
        sb.survivors_after(Duration::from_secs(5)).is_empty(),
        "{:?}",
        sb.survivors()
    );
}
