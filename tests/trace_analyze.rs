//! `forge trace analyze` on the shared real traces (`tests/fixtures/traces/`, MIT, licences
//! beside them): golden kernel, overlap and fuse tables and layer pipelines, the contract's
//! reference row, the SGLang decode trace's 36-layer pipeline, `--config`, `--stage`,
//! `--compare`, directory input, JSON and text output, and clear errors naming the file
//! and the event (or field) for malformed input.

mod common;

use common::bin::forge;

const TRACES: &[&str] = &[
    "vllm-b200-gptoss-prefill.json.gz",
    "vllm-mi300-gptoss-decode-cudagraph.json.gz",
    "sglang-mi300x-qwen3-8b-decode.json.gz",
    "hta-triton-example.json.gz",
];

fn analyze(args: &[&str]) -> std::process::Output {
    forge(&["trace", "analyze"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

#[test]
fn all_tables_of_the_shared_traces() {
    for t in TRACES {
        let path = format!("tests/fixtures/traces/{t}");
        let out = analyze(&[&path]);
        assert!(
            out.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let md = String::from_utf8(out.stdout).unwrap();
        insta::assert_snapshot!(t.trim_end_matches(".json.gz"), md);
    }
}

#[test]
fn the_contracts_reference_row() {
    let out = analyze(&["tests/fixtures/traces/vllm-b200-gptoss-prefill.json.gz"]);
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(
        md.contains("| multimem_all_reduce_kernel | communication | 2.12 ms | 18.2% | 73 | vllm/distributed/device_communicators/symm_mem.py:127 all_reduce (100%) | symm_mem::multimem_all_reduce_ |"),
        "{md}"
    );
}

#[test]
fn json_output_keeps_whole_names() {
    let out = analyze(&[
        "tests/fixtures/traces/sglang-mi300x-qwen3-8b-decode.json.gz",
        "--format",
        "json",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let k = v["stages"][0]["kernels"].as_array().unwrap();
    assert!(k.iter().any(|r| r["category"] == "attention"));
    assert!(
        k.iter()
            .all(|r| r["canonical"].as_str().unwrap().len() >= r["kernel"].as_str().unwrap().len())
    );
}

#[test]
fn a_torn_trace_is_refused_with_the_file_and_event() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("torn.json");
    std::fs::write(&p, r#"{"traceEvents":[{"ph":"X","cat":"kernel","name":"k","pid":0,"tid":1,"ts":0,"dur":1},{"ph":"X","na"#).unwrap();
    let out = analyze(&[p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("torn.json") && err.contains("event 1"),
        "{err}"
    );
    let q = dir.path().join("cpu.json");
    std::fs::write(
        &q,
        r#"[{"ph":"X","cat":"cpu_op","name":"aten::mm","pid":0,"tid":1,"ts":0,"dur":5}]"#,
    )
    .unwrap();
    let out = analyze(&[q.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no GPU kernel among its 1 events"), "{err}");
}

fn json(args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let out = analyze(&all);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_sglang_decode_trace_is_a_36_layer_pipeline_with_a_steady_pass() {
    let v = json(&["tests/fixtures/traces/sglang-mi300x-qwen3-8b-decode.json.gz"]);
    assert_eq!(v["framework"], "sglang");
    let s = &v["stages"][0];
    assert_eq!(s["stage"], "decode");
    let p = &s["pipeline"];
    assert_eq!(p["layers"], 36, "{p}");
    assert_eq!(p["anchor"], "paged_attention_ll4mi_QKV_mfma16_kernel");
    let passes = p["passes"].as_array().unwrap();
    assert!(passes.iter().any(|x| x["state"] == "steady"), "{p}");
    assert_eq!(p["layer_table"].as_array().unwrap().len(), 36);
    // Every layer of a decode step under CUDA-graph replay runs the same 15 kernels (layer
    // 5 adds one), the LM head stays out of the last layer.
    let counts: Vec<u64> = p["layer_table"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kernels"].as_u64().unwrap())
        .collect();
    assert!(counts.iter().all(|c| (15..=16).contains(c)), "{counts:?}");
    // The same count from the model's config.json.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(
        &cfg,
        r#"{"architectures":["Qwen3ForCausalLM"],"num_hidden_layers":36}"#,
    )
    .unwrap();
    let v = json(&[
        "tests/fixtures/traces/sglang-mi300x-qwen3-8b-decode.json.gz",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(v["stages"][0]["pipeline"]["layers_from"], "config.json");
    assert_eq!(v["stages"][0]["pipeline"]["layers"], 36);
}

#[test]
fn a_config_without_a_layer_count_names_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.json");
    std::fs::write(&cfg, r#"{"hidden_size":4096}"#).unwrap();
    let out = analyze(&[
        "tests/fixtures/traces/hta-triton-example.json.gz",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.json") && err.contains("num_hidden_layers"),
        "{err}"
    );
}

#[test]
fn stages_are_read_from_step_annotations_and_filtered() {
    // vLLM's own decode step name (`execute_32_context_0(…)_generation_32(…)`) is decode.
    let v = json(&["tests/fixtures/traces/vllm-mi300-gptoss-decode-cudagraph.json.gz"]);
    assert_eq!(v["stages"][0]["stage"], "decode");
    let v = json(&[
        "tests/fixtures/traces/vllm-mi300-gptoss-decode-cudagraph.json.gz",
        "--stage",
        "all",
    ]);
    assert!(v["stages"][0]["stage"].is_null());
    let out = analyze(&[
        "tests/fixtures/traces/vllm-mi300-gptoss-decode-cudagraph.json.gz",
        "--stage",
        "prefill",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no prefill kernels (stages found: decode)"),
        "{err}"
    );
}

#[test]
fn a_profile_directory_gives_one_trace_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let put = |from: &str, to: &str| {
        let dst = dir.path().join(to);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        std::fs::copy(format!("{root}/tests/fixtures/traces/{from}"), dst).unwrap();
    };
    put(
        "vllm-b200-gptoss-prefill.json.gz",
        "prefill/host_1.TP-0.trace.json.gz",
    );
    put(
        "hta-triton-example.json.gz",
        "prefill/host_1.TP-1.trace.json.gz",
    );
    put(
        "vllm-mi300-gptoss-decode-cudagraph.json.gz",
        "decode/host_2.trace.json.gz",
    );
    let v = json(&[dir.path().to_str().unwrap()]);
    let all = v.as_array().unwrap();
    assert_eq!(all.len(), 2, "{v}");
    assert!(
        all[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("prefill/host_1.TP-0.trace.json.gz")
    );
    assert_eq!(all[0]["stages"][0]["stage"], "prefill");
    assert_eq!(all[1]["stages"][0]["stage"], "decode");
}

#[test]
fn compare_sets_two_traces_side_by_side() {
    let out = analyze(&[
        "tests/fixtures/traces/vllm-mi300-gptoss-decode-cudagraph.json.gz",
        "--compare",
        "tests/fixtures/traces/sglang-mi300x-qwen3-8b-decode.json.gz",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let md = String::from_utf8(out.stdout).unwrap();
    insta::assert_snapshot!("compare-vllm-vs-sglang-decode", md);
    // A trace against itself: every difference is zero.
    let v = json(&[
        "tests/fixtures/traces/vllm-b200-gptoss-prefill.json.gz",
        "--compare",
        "tests/fixtures/traces/vllm-b200-gptoss-prefill.json.gz",
    ]);
    let c = &v[0];
    assert!(c["only_a"].as_array().unwrap().is_empty());
    for row in c["matched"].as_array().unwrap() {
        assert_eq!(row["a_us"], row["b_us"]);
    }
}

#[test]
fn text_output_is_aligned_tables() {
    let out = analyze(&[
        "tests/fixtures/traces/sglang-mi300x-qwen3-8b-decode.json.gz",
        "--format",
        "text",
    ]);
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout).unwrap();
    assert!(
        t.contains("Overlap opportunities\n---------------------"),
        "{t}"
    );
    assert!(!t.contains("| --- |"));
}
