//! `forge trace analyze` on the shared real traces (`tests/fixtures/traces/`, MIT, licences
//! beside them): golden kernel tables, the contract's reference row, JSON output, and a
//! clear error naming the file and the event for a malformed trace.

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
fn kernel_tables_of_the_shared_traces() {
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
    let k = v["kernels"].as_array().unwrap();
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
