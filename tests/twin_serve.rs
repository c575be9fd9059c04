//! `forge sim serve --engine sglang|trtllm` as a process: each framework's command-line
//! errors and exit codes, its start-up and ready lines, and only its own routes and metric
//! names over HTTP.

mod common;

use common::bin::{forge, run};
use common::sim_proc::{client, start_twin as start};

const MODEL: &str = "Qwen/Qwen3-0.6B";

async fn status(port: u16, method: &str, path: &str) -> (u16, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let req = match method {
        "POST" => client().post(url),
        _ => client().get(url),
    };
    let r = req.send().await.unwrap();
    let code = r.status().as_u16();
    (code, r.text().await.unwrap())
}

#[test]
fn each_parser_refuses_with_its_own_words_and_exit_2() {
    let o = run(&mut forge(&[
        "sim",
        "serve",
        "--engine",
        "sglang",
        "--model-path",
        MODEL,
        "--bogus-flag",
        "1",
    ]));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("sglang serve: error: unrecognized arguments: --bogus-flag 1"),
        "{}",
        o.stderr
    );
    let o = run(&mut forge(&[
        "sim",
        "serve",
        "--engine",
        "trtllm",
        MODEL,
        "--backend",
        "foo",
    ]));
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(
        o.stderr.contains("Error: Invalid value for '--backend': 'foo' is not one of 'pytorch', 'tensorrt', '_autodeploy'."),
        "{}",
        o.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sglang_twin_speaks_sglang() {
    let (p, port) = start(&[
        "--engine",
        "sglang",
        "--model-path",
        MODEL,
        "--enable-metrics",
    ]);
    let err = p.stderr();
    assert!(err.contains("max_total_num_tokens="), "{err}");
    assert!(
        err.contains("The server is fired up and ready to roll!"),
        "{err}"
    );
    assert_eq!(status(port, "POST", "/flush_cache").await.0, 200);
    assert_eq!(status(port, "GET", "/ready").await.0, 200);
    assert_eq!(status(port, "POST", "/reset_prefix_cache").await.0, 404);
    let (code, metrics) = status(port, "GET", "/metrics").await;
    assert_eq!(code, 200);
    assert!(metrics.contains("sglang:num_running_reqs{"), "{metrics}");
    assert!(!metrics.contains("vllm:"), "{metrics}");
    let (_, models) = status(port, "GET", "/v1/models").await;
    assert!(models.contains("\"owned_by\":\"sglang\""), "{models}");
}

#[tokio::test(flavor = "multi_thread")]
async fn trtllm_twin_speaks_trtllm() {
    let (p, port) = start(&["--engine", "trtllm", MODEL, "--backend", "pytorch"]);
    // trtllm-serve binds localhost unless told otherwise (forge always passes --host).
    assert!(
        p.stderr().contains("Uvicorn running on http://localhost:"),
        "{}",
        p.stderr()
    );
    let (code, body) = status(port, "GET", "/metrics").await;
    assert_eq!((code, body.as_str()), (200, "[]"), "JSON iteration stats");
    let (code, metrics) = status(port, "GET", "/prometheus/metrics").await;
    assert_eq!(code, 200);
    assert!(
        metrics.contains("trtllm_kv_cache_utilization{"),
        "{metrics}"
    );
    assert_eq!(status(port, "POST", "/flush_cache").await.0, 404);
    let (_, models) = status(port, "GET", "/v1/models").await;
    assert!(models.contains(&format!("\"id\":\"{MODEL}\"")), "{models}");
    assert!(models.contains("\"owned_by\":\"tensorrt_llm\""), "{models}");
}
