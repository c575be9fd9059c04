//! Every `--sim-*` fault produces the failure it names, and no process a test starts
//! survives it: the `--sim-spawn-child` worker is orphaned by a SIGKILL of the server alone
//! and reaped only by a group kill (or the server's own SIGTERM handling); the
//! `--sim-ignore-sigterm` server shrugs off SIGTERM and dies to SIGKILL.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::procs::{alive, wait_gone};
use common::sim_proc::{client, serve, sse_events};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

async fn stream(port: u16, max_tokens: u32) -> String {
    let body = json!({"prompt": "Stream me something long.", "max_tokens": max_tokens,
                      "ignore_eos": true, "stream": true});
    let r = client()
        .post(format!("http://127.0.0.1:{port}/v1/completions"))
        .json(&body)
        .send()
        .await;
    match r {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

#[test]
fn fail_startup_oom_exits_1_with_cuda_oom() {
    let mut p = serve(&["--sim-fail-startup", "oom"]);
    let status = p.wait_exit(Duration::from_secs(30)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let out = p.stdout();
    assert!(
        out.contains("ERROR") && out.contains("EngineCore failed to start."),
        "{out}"
    );
    assert!(
        out.contains("torch.OutOfMemoryError: CUDA out of memory."),
        "{out}"
    );
    assert!(!out.contains("Starting vLLM API server"));
    let err = p.stderr();
    assert_eq!(
        err.lines().last(),
        Some(
            "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
        )
    );
}

#[test]
fn fail_startup_config_exits_1_with_value_error() {
    let mut p = serve(&["--sim-fail-startup", "config"]);
    let status = p.wait_exit(Duration::from_secs(30)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let err = p.stderr();
    assert!(
        err.starts_with("Traceback (most recent call last):\n"),
        "{err}"
    );
    assert!(
        err.lines().last().unwrap().starts_with("ValueError: "),
        "{err}"
    );
    assert!(p.stdout().contains("vLLM API server version"));
}

#[tokio::test]
async fn crash_after_kills_the_engine_mid_stream() {
    let mut p = serve(&["--sim-crash-after", "2", "--sim-time-scale", "0.05"]);
    let port = p.ready();
    let first = tokio::spawn(stream(port, 20_000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = stream(port, 20_000).await;
    let first = first.await.unwrap();
    let dead = "{\"error\": {\"message\": \"EngineCore encountered an issue. See stack trace \
                (above) for the root cause.\", \"type\": \"InternalServerError\", \"param\": \
                null, \"code\": 500}}";
    for body in [&first, &second] {
        let events = sse_events(body);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{body}");
        assert_eq!(events[events.len() - 2], dead, "{body}");
        assert!(events.len() < 20_002, "the stream ended early");
    }
    let health = client()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits after the crash");
    assert_eq!(status.code(), Some(1));
    let out = p.stdout();
    assert!(out.contains("EngineCore encountered a fatal error."));
    assert!(out.contains("EngineDeadError: EngineCore encountered an issue."));
}

#[tokio::test]
async fn garbage_after_streams_invalid_sse() {
    let mut p = serve(&["--sim-garbage-after", "3"]);
    let port = p.ready();
    let body = stream(port, 50).await;
    let events = sse_events(&body);
    assert_eq!(events.len(), 4, "{body}");
    for e in &events[..3] {
        serde_json::from_str::<Value>(e).expect("valid chunk");
    }
    assert!(serde_json::from_str::<Value>(&events[3]).is_err());
    assert!(!body.contains("[DONE]"));
    // The server itself is fine.
    let health = client()
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[test]
fn slow_start_delays_the_port() {
    let t0 = Instant::now();
    let mut p = serve(&["--sim-slow-start", "1.2"]);
    p.ready();
    assert!(t0.elapsed() >= Duration::from_millis(1200));
}

#[test]
fn ignore_sigterm_needs_sigkill() {
    let mut p = serve(&["--sim-ignore-sigterm"]);
    p.ready();
    p.signal(Signal::SIGTERM);
    p.signal(Signal::SIGINT);
    assert!(
        p.wait_exit(Duration::from_millis(800)).is_none(),
        "SIGTERM was not ignored"
    );
    assert!(alive(p.pid));
    p.signal(Signal::SIGKILL);
    let status = p.wait_exit(Duration::from_secs(5)).expect("SIGKILL works");
    assert_eq!(status.signal(), Some(9));
    assert!(wait_gone(p.pid, Duration::from_secs(2)));
}

#[test]
fn spawned_child_survives_a_sigkill_of_the_server_only() {
    let mut p = serve(&["--sim-spawn-child"]);
    let worker = p.engine_pid();
    p.ready();
    assert_ne!(worker, p.pid);
    assert!(alive(worker));
    p.signal(Signal::SIGKILL);
    p.wait_exit(Duration::from_secs(5)).expect("server killed");
    std::thread::sleep(Duration::from_millis(300));
    assert!(alive(worker), "the worker is orphaned, not killed");
    drop(p); // kills the process group
    assert!(
        wait_gone(worker, Duration::from_secs(5)),
        "a group kill reaches it"
    );
}

#[test]
fn sigterm_stops_gracefully_and_takes_the_child() {
    let mut p = serve(&["--sim-spawn-child"]);
    let worker = p.engine_pid();
    p.ready();
    p.signal(Signal::SIGTERM);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(wait_gone(worker, Duration::from_secs(5)));
    assert!(p.stdout().contains("INFO:     Shutting down"));
}

#[test]
fn sigterm_during_startup_still_takes_the_child() {
    let mut p = serve(&[
        "--sim-spawn-child",
        "--sim-fail-startup",
        "oom",
        "--sim-time-scale",
        "5",
    ]);
    let worker = p.engine_pid();
    p.signal(Signal::SIGTERM);
    let status = p
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert_eq!(status.code(), Some(0));
    assert!(wait_gone(worker, Duration::from_secs(5)));
}
