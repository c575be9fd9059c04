//! TensorRT-LLM's adapter end to end: the command line and YAML each release gets
//! (snapshots), the rule that no knob is written both as an option and in the YAML, the
//! refusal of any backend but PyTorch, and `forge tune --engine trtllm` against a fake
//! `trtllm-serve` (tests/fixtures/fake-trtllm) that meets every failure class.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::run::{class, fixture, journal, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use forge::engine::trtllm::flags::{self, Target, config_from_args, render};
use forge::engine::trtllm::help::{ServeHelp, Version};
use forge::engine::trtllm::yaml;
use forge::recipe::{EngineKind, Hardware, Recipe};
use serde_json::{Value, json};

fn recipe(config: Value, kv_quant: Option<&str>) -> Recipe {
    let config: BTreeMap<String, Value> = serde_json::from_value(config).unwrap();
    let mut r = Recipe::baseline_with(EngineKind::Trtllm, MODEL, Hardware::default(), config);
    r.quant.kv_cache_quant = kv_quant.map(str::to_string);
    r.id = r.content_id();
    r
}

fn help(version: &str) -> ServeHelp {
    let text =
        std::fs::read_to_string(fixture(&format!("trtllm/serve-help-{version}.txt"))).unwrap();
    ServeHelp::parse(&text)
}

fn shown(r: &Recipe, version: &str) -> String {
    let v = Version::parse(version).unwrap();
    let h = help(version);
    let target = Target {
        version: &v,
        help: Some(&h),
    };
    let (argv, yaml) = render(
        r,
        "127.0.0.1",
        8123,
        Path::new("logs/e0002-x-c1.extra_llm_api_options.yaml"),
        target,
    )
    .unwrap();
    let yaml = yaml.map_or("(no YAML)".to_string(), |(_, t)| t.replace(&r.id, "<id>"));
    format!("trtllm-serve serve {}\n---\n{yaml}", argv.join(" "))
}

fn tuned() -> Recipe {
    recipe(
        json!({
            "max_batch_size": 256, "max_num_tokens": 16384, "max_seq_len": 8192, "tp_size": 1,
            "kv_cache_free_gpu_memory_fraction": 0.85, "enable_chunked_prefill": true,
            "enable_block_reuse": false, "tokens_per_block": 64,
            "capacity_scheduler_policy": "MAX_UTILIZATION", "cuda_graph_max_batch_size": 256,
            "cuda_graph_padding": true, "disable_overlap_scheduler": false, "stream_interval": 4
        }),
        Some("fp8"),
    )
}

#[test]
fn argv_and_yaml_of_the_newest_release() {
    insta::assert_snapshot!("newest_tuned", shown(&tuned(), "1.2.0"));
    let plain = recipe(
        json!({"max_batch_size": 64, "enable_cuda_graph": false}),
        None,
    );
    insta::assert_snapshot!("newest_no_graphs", shown(&plain, "1.2.0"));
}

#[test]
fn argv_and_yaml_of_the_1_1_release() {
    insta::assert_snapshot!("v1_1_tuned", shown(&tuned(), "1.1.0"));
}

/// Every knob, set alone, lands either on the command line or in the YAML — never both.
#[test]
fn no_knob_is_written_in_both_places() {
    let samples: &[(&str, Value)] = &[
        ("max_batch_size", json!(64)),
        ("max_num_tokens", json!(4096)),
        ("max_seq_len", json!(4096)),
        ("tp_size", json!(1)),
        ("kv_cache_free_gpu_memory_fraction", json!(0.8)),
        ("enable_chunked_prefill", json!(true)),
        ("enable_block_reuse", json!(false)),
        ("tokens_per_block", json!(16)),
        ("capacity_scheduler_policy", json!("MAX_UTILIZATION")),
        ("enable_cuda_graph", json!(false)),
        ("cuda_graph_max_batch_size", json!(64)),
        ("cuda_graph_padding", json!(true)),
        ("disable_overlap_scheduler", json!(true)),
        ("stream_interval", json!(2)),
    ];
    let v = Version::NEWEST;
    let target = Target {
        version: &v,
        help: None,
    };
    for with_kv_section in [false, true] {
        for (knob, value) in samples {
            let mut c = json!({ *knob: value.clone() });
            if with_kv_section && *knob != "enable_block_reuse" {
                c["enable_block_reuse"] = json!(false);
            }
            let r = recipe(c, None);
            let (argv, y) = render(&r, "h", 1, Path::new("y.yaml"), target).unwrap();
            let text = y.map(|(_, t)| t).unwrap_or_default();
            let doc = yaml::parse(&text).unwrap();
            let in_argv = argv.iter().any(|a| a.trim_start_matches('-') == *knob);
            let in_yaml = yaml_mentions(&doc, knob, value);
            assert!(in_argv != in_yaml, "{knob}: argv {argv:?}, yaml {text}");
            let fraction_twice = argv.iter().any(|a| a.contains("fraction"))
                && text.contains("free_gpu_memory_fraction");
            assert!(!fraction_twice, "{argv:?}\n{text}");
        }
    }
}

/// The knob's value under its YAML path (knob names differ from LlmArgs keys for some).
fn yaml_mentions(doc: &Value, knob: &str, value: &Value) -> bool {
    let Some((_, place)) = flags::PLACES.iter().find(|(k, _)| *k == knob) else {
        return false;
    };
    match place {
        flags::Place::Yaml(path) => path.iter().try_fold(doc, |v, k| v.get(*k)) == Some(value),
        flags::Place::CudaGraph => doc.get("cuda_graph_config").is_some_and(Value::is_null),
        flags::Place::Option("--kv_cache_free_gpu_memory_fraction") => {
            doc.pointer("/kv_cache_config/free_gpu_memory_fraction") == Some(value)
        }
        _ => false,
    }
}

#[test]
fn only_the_pytorch_backend_is_driven() {
    let argv: Vec<String> = ["--backend", "tensorrt"].map(String::from).to_vec();
    let e = config_from_args(&argv).unwrap_err();
    assert_eq!(e.knob.as_deref(), Some("backend"));
    assert!(
        e.why.contains("only trtllm-serve's pytorch backend"),
        "{}",
        e.why
    );
    let argv: Vec<String> = ["--backend", "pytorch", "--max_seq_len", "8192"]
        .map(String::from)
        .to_vec();
    assert_eq!(config_from_args(&argv).unwrap()["max_seq_len"], 8192);
    // What forge renders always names the PyTorch backend.
    let (argv, _) = flags::deploy(&tuned(), "0.0.0.0", 8000).unwrap();
    assert!(
        argv.windows(2).any(|w| w == ["--backend", "pytorch"]),
        "{argv:?}"
    );
}

/// The candidates' faults in order; the twin serves the baseline and the last one.
const PLAN: &str = "kvcache oom click yaml_extra executor timeout crash missing ok";

#[test]
fn one_tune_meets_every_failure_class() {
    let mut sb = Sandbox::new();
    let state = sb.path().join("state").display().to_string();
    sb.set("FAKE_TRTLLM_PLAN", PLAN)
        .set("FAKE_TRTLLM_STATE", &state)
        .set("FAKE_TRTLLM_FORGE", env!("CARGO_BIN_EXE_forge"))
        .set(
            "FAKE_TRTLLM_SIM_ARGS",
            "--sim-time-scale 0.01 --sim-boot-time-scale 0.001",
        )
        .set("FORGE_ENGINE_GRACE_S", "0.3");
    let fake = format!("{} serve", fixture("fake-trtllm/trtllm-serve").display());
    let wl = sim_small_workload().display().to_string();
    let mut args = sb.engine_tune_args("trtllm", &fake, MODEL, &wl);
    args.extend(["--max-experiments", "10", "--boot-timeout", "2"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut forge = sb.start(&args);
    let status = forge.wait(Duration::from_secs(180));
    let boots = sb.state_lines("boots");
    assert!(status.success(), "boots {boots:?}\n{}", forge.stderr());
    sb.assert_nothing_survives();

    let run = sb.run_dir();
    let rows = journal(&run);
    let classes: Vec<&str> = rows.iter().filter_map(|r| class(r)).collect();
    for want in [
        "infeasible_oom",
        "infeasible_config",
        "crashed_during_boot",
        "boot_timeout",
        "crashed_during_bench",
        "engine_missing",
    ] {
        assert!(
            classes.contains(&want),
            "{want} missing from {classes:?}\n{}",
            forge.stderr()
        );
    }
    assert_eq!(
        std::fs::read_to_string(run.join("engine-version.txt")).unwrap(),
        "1.2.0\n"
    );
    // Every boot was rendered the same way, with the YAML beside its log.
    for argv in sb.state_lines("argv") {
        assert!(
            argv.contains(" --backend pytorch --host 127.0.0.1 --port "),
            "{argv}"
        );
        assert!(argv.contains(".extra_llm_api_options.yaml"), "{argv}");
    }
    let copied = std::fs::read_dir(sb.path().join("state/yaml"))
        .unwrap()
        .count();
    assert!(copied >= 1);
    // The clean candidate after the failures was measured.
    let last = rows.last().unwrap();
    assert!(
        last.get("measurement").is_some_and(|m| !m.is_null()),
        "{last}"
    );
}
