//! Layer 2 on llama.cpp for real: `forge tune --engine llamacpp --start-layer 2` on
//! SmolLM2-135M converts the model to an F16 reference, computes an importance matrix on
//! the workload's prompts with `llama-imatrix`, makes three quantized candidates with
//! `llama-quantize --imatrix` (Q8_0, Q4_K_M, IQ4_XS), serves and measures each on the real
//! `llama-server`, and keeps or rejects each on throughput and on accuracy against the
//! baseline's answers; the deploy command serves the kept file. A second run on the same
//! store reuses the cache: no conversion, no importance matrix, no quantization.
//!
//! Needs the llama.cpp tools and model scripts/llama-server.sh provides; skips loudly
//! without them and fails when FORGE_REQUIRE_LLAMACPP=1.

mod common;

use std::path::Path;
use std::time::Duration;

use common::bin::{forge, session};
use common::run::run_dirs;
use forge::record::{ExperimentRow, Status};

const FLOOR: f64 = 0.5;

fn rows(run: &Path) -> Vec<ExperimentRow> {
    forge::store::read_journal(&run.join("experiments.jsonl"))
        .unwrap()
        .rows
}

/// One tune on `store` trying `types`; its stderr.
fn tune(
    p: &common::llamacpp::Peers,
    store: &Path,
    types: &str,
    budget: &str,
    name: &str,
) -> String {
    let floor = FLOOR.to_string();
    let mut args = common::llamacpp::tune_args(p, store);
    args.extend(
        [
            "--engine-cmd",
            &p.server.display().to_string(),
            "--start-layer",
            "2",
            "--quant-types",
            types,
            "--max-experiments",
            budget,
            "--max-repeats",
            "2",
            // llama.cpp's greedy answers shift with batch composition (~5 % of tokens on
            // this model for an unchanged recipe); the floor is for what quantization
            // does to them.
            "--accuracy-floor",
            &floor,
        ]
        .map(str::to_string),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let tag = format!("tune-quant-{}-{name}", std::process::id());
    let mut t = session(&args, &tag, store.parent().unwrap(), name);
    let status = t.wait(Duration::from_secs(900));
    let err = t.stderr();
    assert!(status.success(), "{status:?}:\n{err}");
    err
}

#[test]
fn quantized_candidates_are_made_from_the_workload_measured_and_cached() {
    let Some(p) = common::llamacpp::peers("tune_quant_llamacpp") else {
        return;
    };
    let bin = p.server.parent().unwrap();
    assert!(
        bin.join("llama-quantize").is_file() && bin.join("llama-imatrix").is_file(),
        "scripts/llama-server.sh builds llama-quantize and llama-imatrix beside llama-server"
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");

    // 1: three candidates made and measured.
    let err = tune(&p, &store, "q8_0,q4_k_m,iq4_xs", "5", "first");
    assert!(err.contains("converting"), "{err}");
    assert!(
        err.contains("computing the importance matrix on 12 calibration prompts"),
        "{err}"
    );
    let run = run_dirs(&store).pop().unwrap();
    let rows = rows(&run);
    let by_type: Vec<(&str, &ExperimentRow)> = rows
        .iter()
        .filter(|r| r.status.is_experiment())
        .filter_map(|r| Some((r.recipe.quant.method.as_deref()?, r)))
        .collect();
    let types: Vec<&str> = by_type.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        types,
        ["q8_0", "q4_k_m", "iq4_xs"],
        "each candidate once, in order"
    );
    for (ty, r) in &by_type {
        assert!(
            matches!(
                r.status,
                Status::Kept | Status::Reverted | Status::Inconclusive
            ),
            "{ty}: {:?} {:?}",
            r.status,
            r.failure
        );
        // Measured for real: its own log says llama-server loaded the candidate file.
        let log = std::fs::read_to_string(run.join(r.engine_log.as_deref().unwrap())).unwrap();
        assert!(log.contains(&format!("quant/{ty}.gguf")), "{ty}: {log}");
        // Judged on throughput and accuracy: the answers were scored, and a candidate the
        // floor turned down is never kept (the judge's note says so on its row).
        let acc = r.measurement.as_ref().and_then(|m| m.accuracy);
        assert!(acc.is_some(), "{ty}: no accuracy");
        let under_floor = r.rationale.contains("accuracy is below the floor");
        assert!(
            !(under_floor && r.status == Status::Kept),
            "{ty}: {}",
            r.rationale
        );
        if r.status == Status::Kept {
            assert!(r.interval.as_ref().unwrap().lo_pct > 0.0);
        }
        assert!(run.join(format!("quant/{ty}.gguf")).is_file());
    }
    // The deploy command serves the recommended recipe's file (the original when it has
    // no GGUF type).
    let best = run.join("best_recipe.yaml");
    let text = std::fs::read_to_string(&best).unwrap();
    let recipe = forge::recipe::Recipe::from_yaml(&best, &text).unwrap();
    let out = common::bin::run(&mut forge(&[
        "recipe",
        "command",
        &best.display().to_string(),
    ]));
    assert!(out.success(), "{}", out.stderr);
    let want = match recipe.quant.method.as_deref() {
        Some(ty) => {
            assert!(types.contains(&ty), "{ty}");
            format!("--model {}/quant/{ty}.gguf ", run.display())
        }
        None => format!("--model {} ", p.model.display()),
    };
    assert!(out.stdout.contains(&want), "{want}\n{}", out.stdout);

    // 2: a second run on the same store reuses the cache.
    let cache: Vec<_> = std::fs::read_dir(store.join("gguf-cache"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(cache.len(), 1, "one model, one cache directory");
    let cached = cache[0].path().join(format!(
        "q4_k_m.{}",
        std::fs::read_dir(cache[0].path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .find(|n| n.starts_with("q4_k_m."))
            .unwrap()
            .trim_start_matches("q4_k_m.")
    ));
    let before = std::fs::metadata(&cached).unwrap().modified().unwrap();
    let err = tune(&p, &store, "q4_k_m", "3", "second");
    assert!(err.contains("reusing the cached q4_k_m model"), "{err}");
    for made in [
        "converting",
        "computing the importance matrix",
        "quantizing the model",
    ] {
        assert!(!err.contains(made), "{made}: {err}");
    }
    assert_eq!(
        std::fs::metadata(&cached).unwrap().modified().unwrap(),
        before
    );
}
