//! Layer 2 when the model has no pre-quantized checkpoint: `forge tune --engine vllm` (the
//! fake `vllm`, forge's simulator behind vLLM's CLI) on Qwen/Qwen3-0.6B, the Hub recorded
//! with no quantized copy, and a fake engine Python (`tests/fixtures/fake-python/python3`)
//! standing in for llm-compressor: the calibrations are planned as `quant.checkpoint`
//! values, one is made when first tried — recipe, prompts sampled from the workload, the
//! driver, run in that Python — served by its path and measured; a second run on the same
//! store reuses it; an out-of-memory calibration is a `build_failed` row that says so.

mod common;

use std::path::{Path, PathBuf};

use common::hub::qwen3;
use common::run::{fixture, journal, latest_run_dir, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use serde_json::json;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A Hub that knows the base model and no quantized copy of it.
async fn hub_without_copies() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/{MODEL}/resolve/main/config.json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(qwen3(json!({}))))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    server
}

/// A sandbox whose fake engine Python writes a compressed-tensors W4A16 checkpoint.
fn sandbox(hub: &MockServer, fail: Option<&str>) -> Sandbox {
    let mut sb = Sandbox::new();
    let cfg = sb.path().join("calibrated-config.json");
    let w4a16 = json!({"quantization_config": {"quant_method": "compressed-tensors",
        "format": "pack-quantized",
        "config_groups": {"group_0": {"targets": ["Linear"],
            "weights": {"num_bits": 4, "type": "int", "group_size": 128, "symmetric": false}}}}});
    std::fs::write(&cfg, qwen3(w4a16).to_string()).unwrap();
    let argv = sb.path().join("python-argv");
    sb.set("HF_ENDPOINT", &hub.uri())
        .set("FAKE_CALIBRATED_CONFIG", &cfg.display().to_string())
        .set("FAKE_PYTHON_ARGV", &argv.display().to_string())
        .set(
            "FAKE_VLLM_SIM_ARGS",
            "--sim-time-scale 0.01 --sim-boot-time-scale 0.001",
        );
    if let Some(f) = fail {
        sb.set("FAKE_CALIBRATE", f);
    }
    sb
}

/// `forge tune` on layer 2 with the fake Python; stderr.
fn tune(sb: &Sandbox) -> String {
    let wl = sim_small_workload().display().to_string();
    let python = fixture("fake-python/python3").display().to_string();
    let mut args = sb.fake_tune_args(MODEL, &wl);
    args.extend(
        [
            "--start-layer",
            "2",
            "--skip-kernel",
            "--max-experiments",
            "8",
            "--calibration-python",
            &python,
            "--calibration-prompts",
            "4",
        ]
        .map(str::to_string),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.run(&args);
    assert!(out.success(), "{}", out.stderr);
    out.stderr
}

/// The journal row that served a calibrated checkpoint (under the store's `calibrated/`).
fn calibrated_row(run: &Path) -> serde_json::Value {
    journal(run)
        .into_iter()
        .find(|r| {
            r.pointer("/recipe/quant/checkpoint")
                .and_then(|v| v.as_str())
                .is_some_and(|c| c.contains("/calibrated/"))
        })
        .unwrap_or_else(|| panic!("no calibrated checkpoint was tried in {}", run.display()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_without_checkpoints_is_calibrated_on_its_workload_and_reused() {
    let hub = hub_without_copies().await;
    let sb = sandbox(&hub, None);
    let err = tokio::task::block_in_place(|| tune(&sb));
    assert!(
        err.contains("layer 2 candidate: awq-w4a16 calibrated on the workload when first tried"),
        "{err}"
    );
    let run = latest_run_dir(&sb.store());
    let row = calibrated_row(&run);
    assert!(row["measurement"].is_object(), "served and measured: {row}");
    let dir = PathBuf::from(row["recipe"]["quant"]["checkpoint"].as_str().unwrap());
    assert!(
        dir.starts_with(sb.store().join("calibrated")),
        "{}",
        dir.display()
    );
    assert!(dir.join("config.json").is_file());
    let key = dir.parent().unwrap();
    let recipe = std::fs::read_to_string(key.join("recipe.yaml")).unwrap();
    let scheme = dir.file_name().unwrap().to_string_lossy().to_string();
    let modifier = if scheme.ends_with("AWQ-W4A16") {
        "AWQModifier"
    } else if scheme.ends_with("FP8-dynamic") {
        "FP8_DYNAMIC"
    } else {
        "GPTQModifier"
    };
    assert!(recipe.contains(modifier), "{scheme}: {recipe}");
    let prompts = std::fs::read_to_string(key.join("prompts.jsonl")).unwrap();
    assert_eq!(prompts.lines().count(), 4, "{prompts}");
    assert!(
        prompts.lines().all(|l| l.starts_with("{\"text\":")),
        "{prompts}"
    );
    // The engine served the calibrated directory by its path.
    let log = std::fs::read_to_string(run.join(row["engine_log"].as_str().unwrap())).unwrap();
    assert!(log.contains(&scheme), "{log}");
    let argv = std::fs::read_to_string(sb.path().join("python-argv")).unwrap();
    assert!(
        argv.contains("calibrate.py --model Qwen/Qwen3-0.6B --recipe"),
        "{argv}"
    );
    let calls = argv.lines().count();

    // A second run on the same store calibrates nothing it has calibrated before.
    let err = tokio::task::block_in_place(|| tune(&sb));
    let again = latest_run_dir(&sb.store());
    assert_ne!(again, run);
    let row2 = calibrated_row(&again);
    if row2["recipe"]["quant"]["checkpoint"] == row["recipe"]["quant"]["checkpoint"] {
        assert!(err.contains("reusing the calibrated"), "{err}");
    }
    let argv = std::fs::read_to_string(sb.path().join("python-argv")).unwrap();
    let new_calls = argv.lines().count() - calls;
    let reused = err.matches("reusing the calibrated").count();
    assert!(reused >= 1, "{err}");
    assert!(
        !argv.lines().skip(calls).any(|l| l.contains(&scheme)),
        "{scheme} was calibrated twice ({new_calls} new calls): {argv}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_calibration_out_of_gpu_memory_is_a_failed_row_and_the_run_goes_on() {
    let hub = hub_without_copies().await;
    let sb = sandbox(&hub, Some("oom"));
    let _ = tokio::task::block_in_place(|| tune(&sb));
    let run = latest_run_dir(&sb.store());
    let row = calibrated_row(&run);
    assert_eq!(row["status"], "failed", "{row}");
    let failure = &row["failure"];
    assert_eq!(failure["class"], "build_failed", "{row}");
    let summary = failure["summary"].as_str().unwrap();
    assert!(summary.starts_with("calibration failed"), "{summary}");
    assert!(summary.contains("out of GPU memory"), "{summary}");
    let hints = failure["hints"].to_string();
    assert!(
        hints.contains("torch.OutOfMemoryError: CUDA out of memory"),
        "{hints}"
    );
    // Nothing half-made is left where a later run would take it for a checkpoint.
    let dir = PathBuf::from(row["recipe"]["quant"]["checkpoint"].as_str().unwrap());
    assert!(!dir.exists());
    assert!(journal(&run).iter().any(|r| r["status"] == "baseline"));
}
