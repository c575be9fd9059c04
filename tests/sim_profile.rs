//! The simulator's `/start_profile` and `/stop_profile` end to end: the real `forge sim
//! serve` (vLLM with `--profiler-config`, the SGLang twin with a request body) writes a
//! gzip Chrome trace named as the framework names it, and `forge trace analyze` reads it;
//! `forge profile --base-url` captures both stages from each and analyzes them.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::bin::{forge, run};
use common::procs::wait_until;
use common::sim_proc::{MODEL, Proc, client, serve, start_twin};

async fn post(port: u16, path: &str, body: Option<serde_json::Value>) -> (u16, String) {
    let mut req = client().post(format!("http://127.0.0.1:{port}{path}"));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.text().await.unwrap())
}

async fn completions(port: u16, n: usize) {
    for i in 0..n {
        let body = serde_json::json!({
            "model": MODEL,
            "prompt": format!("Request {i}: tell me about the weather in a few words"),
            "max_tokens": 6,
        });
        let (code, text) = post(port, "/v1/completions", Some(body)).await;
        assert_eq!(code, 200, "{text}");
    }
}

fn traces(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Valid gzip JSON with kernels, launches and step annotations.
fn check_trace(path: &Path, annotation: &str) {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    let count = |cat: &str| events.iter().filter(|e| e["cat"] == cat).count();
    assert!(count("kernel") > 100, "kernels: {}", count("kernel"));
    assert!(count("cuda_runtime") > 0);
    assert!(count("python_function") > 0);
    assert!(events.iter().any(|e| e["ph"] == "M"));
    let named = events.iter().any(|e| {
        e["cat"] == "user_annotation" && e["name"].as_str().unwrap_or("").starts_with(annotation)
    });
    assert!(named, "no `{annotation}` step annotation");
}

fn analyze(path: &Path, categories: &[&str]) -> String {
    let o = run(&mut forge(&["trace", "analyze", path.to_str().unwrap()]));
    assert_eq!(o.code, 0, "{}", o.stderr);
    for cat in categories {
        assert!(
            o.stdout.contains(&format!("| {cat} |")),
            "{cat}:\n{}",
            o.stdout
        );
    }
    o.stdout
}

#[tokio::test(flavor = "multi_thread")]
async fn vllm_with_profiler_config_writes_an_analyzable_trace() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({"profiler": "torch", "torch_profiler_dir": dir.path()});
    let mut p = serve(&["--profiler-config", &config.to_string()]);
    let port = p.ready();
    assert!(
        p.stdout().contains("Route: /start_profile, Methods: POST"),
        "{}",
        p.stdout()
    );
    assert_eq!(
        post(port, "/start_profile", None).await,
        (200, String::new())
    );
    completions(port, 3).await;
    assert_eq!(
        post(port, "/stop_profile", None).await,
        (200, String::new())
    );
    let files = traces(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    let stamp = name
        .strip_prefix("dp0_pp0_tp0_dcp0_ep0_rank0.")
        .and_then(|r| r.strip_suffix(".pt.trace.json.gz"))
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        stamp.len() >= 19 && stamp.bytes().all(|b| b.is_ascii_digit()),
        "{name}"
    );
    check_trace(&files[0], "execute_context_");
    let table = analyze(
        &files[0],
        &["gemm", "attention", "norm", "activation", "rope"],
    );
    assert!(table.contains("rms_norm_kernel"), "{table}");
}

#[tokio::test(flavor = "multi_thread")]
async fn vllm_without_profiler_config_has_no_profile_routes() {
    let mut p = serve(&[]);
    let port = p.ready();
    assert_eq!(post(port, "/start_profile", None).await.0, 404);
    assert_eq!(post(port, "/stop_profile", None).await.0, 404);
}

#[test]
fn vllm_refuses_a_torch_profiler_without_a_directory() {
    let o = run(&mut forge(&[
        "sim",
        "serve",
        MODEL,
        "--profiler-config",
        r#"{"profiler":"torch"}"#,
    ]));
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("torch_profiler_dir must be set when profiler is 'torch'"),
        "{}",
        o.stderr
    );
}

fn twin(engine: &str, args: &[&str]) -> (Proc, u16) {
    let mut all = vec!["--engine", engine];
    all.extend_from_slice(args);
    start_twin(&all)
}

#[tokio::test(flavor = "multi_thread")]
async fn sglang_twin_profiles_by_request_and_stops_after_num_steps() {
    let (_p, port) = twin("sglang", &["--model-path", MODEL]);
    let dir = tempfile::tempdir().unwrap();
    // Stop without a start: SGLang's RuntimeError.
    assert_eq!(post(port, "/stop_profile", None).await.0, 500);
    let body = serde_json::json!({"output_dir": dir.path()});
    let (code, text) = post(port, "/start_profile", Some(body.clone())).await;
    assert_eq!((code, text.as_str()), (200, "Start profiling.\n"));
    assert_eq!(post(port, "/start_profile", Some(body)).await.0, 500);
    completions(port, 2).await;
    let (code, text) = post(port, "/stop_profile", None).await;
    assert_eq!(
        (code, text.as_str()),
        (200, "Stop profiling. This will take some time.\n")
    );
    let files = traces(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(name.ends_with("-TP-0.trace.json.gz"), "{name}");
    let id = name.trim_end_matches("-TP-0.trace.json.gz");
    assert!(id.parse::<f64>().is_ok(), "{name}");
    check_trace(&files[0], "step[");
    // FlashInfer's norm, activation and RoPE kernels (`flashinfer::norm::…`) are not
    // attention.
    let table = analyze(
        &files[0],
        &["gemm", "attention", "norm", "activation", "rope"],
    );
    assert!(
        table.contains("BatchDecodeWithPagedKVCacheKernel"),
        "{table}"
    );

    // num_steps: the trace is written without /stop_profile.
    let dir = tempfile::tempdir().unwrap();
    let body = serde_json::json!({"output_dir": dir.path(), "num_steps": 3});
    assert_eq!(post(port, "/start_profile", Some(body)).await.0, 200);
    completions(port, 2).await;
    assert!(
        wait_until(Duration::from_secs(10), || traces(dir.path()).len() == 1),
        "{:?}",
        traces(dir.path())
    );
    // The capture ended by itself.
    assert_eq!(post(port, "/stop_profile", None).await.0, 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn trtllm_twin_has_no_profile_route() {
    let (_p, port) = twin("trtllm", &[MODEL, "--backend", "pytorch"]);
    assert_eq!(post(port, "/start_profile", None).await.0, 404);
}

/// `forge profile --base-url` against a running simulator: both stages captured, filed and
/// analyzed.
fn profile_server(port: u16, framework: &str, trace_dir: &Path) -> (common::bin::Outcome, PathBuf) {
    let out = trace_dir.parent().unwrap().join(format!("out-{framework}"));
    let o = run(&mut forge(&[
        "profile",
        "--base-url",
        &format!("http://127.0.0.1:{port}"),
        "--framework",
        framework,
        "--trace-dir",
        trace_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--input-len",
        "128",
        "--output-len",
        "24",
        "--batch",
        "3",
        "--wait-s",
        "20",
    ]));
    (o, out)
}

fn assert_profiled(out: &Path, layers: u64) {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("profile.json")).unwrap()).unwrap();
    let stages = m["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 2, "{m}");
    for (s, name) in stages.iter().zip(["prefill", "decode"]) {
        assert_eq!(s["stage"], name);
        assert!(s["error"].is_null(), "{m}");
        let trace = out.join(s["traces"][0].as_str().unwrap());
        assert!(trace.starts_with(out.join(name)), "{}", trace.display());
        let md = std::fs::read_to_string(out.join(name).join("analysis.md")).unwrap();
        assert!(md.contains(&format!("## Stage: {name}")), "{md}");
        let a: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join(name).join("analysis.json")).unwrap())
                .unwrap();
        let p = &a["stages"][0]["pipeline"];
        assert_eq!(p["layers"], layers, "{name}: {p}");
    }
    let decode = &stages[1];
    assert_eq!(
        (decode["input_len"].as_u64(), decode["output_len"].as_u64()),
        (Some(1), Some(24))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forge_profile_captures_both_stages_of_the_vllm_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let config = serde_json::json!({"profiler": "torch", "torch_profiler_dir": raw});
    let mut p = serve(&["--profiler-config", &config.to_string()]);
    let port = p.ready();
    let (o, out) = profile_server(port, "vllm", &raw);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stdout.contains("prefill") && o.stdout.contains("decode"),
        "{}",
        o.stdout
    );
    // Qwen3-0.6B: 28 layers, found from the trace alone.
    assert_profiled(&out, 28);
    // Filed: nothing left where the server wrote.
    assert!(traces(&raw).is_empty(), "{:?}", traces(&raw));
}

#[tokio::test(flavor = "multi_thread")]
async fn forge_profile_captures_both_stages_of_the_sglang_twin() {
    let (_p, port) = twin("sglang", &["--model-path", MODEL]);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let (o, out) = profile_server(port, "sglang", &raw);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    assert_profiled(&out, 28);
    let md = std::fs::read_to_string(out.join("decode/analysis.md")).unwrap();
    assert!(md.contains("framework SGLang"), "{md}");
}

#[tokio::test(flavor = "multi_thread")]
async fn forge_profile_of_a_server_without_a_profiler_fails_per_stage() {
    let (_p, port) = twin("trtllm", &[MODEL, "--backend", "pytorch"]);
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("raw");
    let (o, out) = profile_server(port, "trtllm", &raw);
    assert_eq!(o.code, 1, "{}{}", o.stdout, o.stderr);
    assert!(
        o.stderr.contains("/start_profile answered 404"),
        "{}",
        o.stderr
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("profile.json")).unwrap()).unwrap();
    assert!(
        m["stages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["error"].is_null())
    );
}
