//! The measurement core agrees with itself: `forge bench` against a real, time-scaled
//! `forge sim serve` process measures what `forge sim predict` computes for the same config
//! and workload (the simulator's truth) — within 5 % on output throughput, median TTFT and
//! median TPOT.

mod common;

use std::path::Path;

use common::bin::forge;
use common::run::read_json;
use common::sim_proc::spawn;
use forge::workload::synth::{self, SynthSpec};

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// Half speed: a debug build's HTTP overhead (a millisecond or two per request on a busy
/// two-core machine) shrinks to half that in simulated time.
const SCALE: &str = "2.0";

/// A retrieval-style workload: ~3,000-token prompts, 200-token answers, Poisson at 8 req/s.
fn workload(dir: &Path) -> std::path::PathBuf {
    let spec = SynthSpec {
        input_len: 3000,
        output_len: 200,
        num_prompts: 40,
        prefix_len: 0,
        range_ratio: 0.3,
        seed: 5,
    };
    let p = dir.join("rag.jsonl");
    std::fs::write(&p, synth::to_jsonl(&synth::generate(&spec))).unwrap();
    p
}

fn load_args() -> [&'static str; 4] {
    ["--concurrency", "16", "--request-rate", "8"]
}

fn within(name: &str, measured: f64, truth: f64, tol: f64) {
    let err = (measured / truth - 1.0).abs();
    assert!(
        err <= tol,
        "{name}: bench {measured:.3} vs predict {truth:.3} ({:+.1} %)",
        (measured / truth - 1.0) * 100.0
    );
}

#[test]
fn bench_against_sim_serve_agrees_with_sim_predict() {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload(dir.path());
    let bench_out = dir.path().join("bench.json");
    let pred_out = dir.path().join("predict.json");

    let mut server = spawn(&[
        "sim",
        "serve",
        MODEL,
        "--port",
        "0",
        "--sim-time-scale",
        SCALE,
        "--sim-boot-time-scale",
        "0.01",
    ]);
    let port = server.ready();
    let url = format!("http://127.0.0.1:{port}");
    let out = forge(&[
        "bench",
        "--base-url",
        &url,
        "--workload",
        wl.to_str().unwrap(),
        "--time-scale",
        SCALE,
        "--no-progress",
        "--output",
        bench_out.to_str().unwrap(),
    ])
    .args(load_args())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(server);

    let out = forge(&[
        "sim",
        "predict",
        MODEL,
        "--workload",
        wl.to_str().unwrap(),
        "--output",
        pred_out.to_str().unwrap(),
    ])
    .args(load_args())
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (b, p) = (read_json(&bench_out), read_json(&pred_out));
    assert_eq!(b["completed"], 40);
    assert_eq!(b["failed"], 0);
    assert_eq!(b["total_output_tokens"], p["total_output_tokens"]);
    assert_eq!(b["total_input_tokens"], p["total_input_tokens"]);
    for key in ["output_throughput", "median_ttft_ms", "median_tpot_ms"] {
        within(
            key,
            b[key].as_f64().unwrap(),
            p[key].as_f64().unwrap(),
            0.05,
        );
    }
}
