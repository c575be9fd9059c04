//! `forge bench` end to end: the real binary against scripted fake servers on loopback.
//! Timing assertions are generous sanity bounds around the scripted truth (CI has 2 cores).

mod common;

use std::time::Duration;

use common::bin::{Outcome, forge_async, run_async};
use common::fake_openai::{Fake, Script};
use common::procs::free_port;
use common::run::{prompts, read_json, write_workload};
use serde_json::{Value, json};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Run `forge bench` against `url` with `lines`, plus `extra` args; returns the run and the
/// result JSON (Null when none was written).
async fn bench(url: &str, lines: &[Value], extra: &[&str]) -> (Outcome, Value) {
    let dir = tempfile::tempdir().unwrap();
    let w = write_workload(dir.path(), "w.jsonl", lines);
    let out = dir.path().join("result.json");
    let mut args = vec![
        "bench",
        "--base-url",
        url,
        "--workload",
        w.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--no-progress",
    ];
    args.extend_from_slice(extra);
    let run = run_async(&args).await;
    let json = if out.exists() {
        read_json(&out)
    } else {
        Value::Null
    };
    (run, json)
}

fn f(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v:#}"))
}

fn within(v: f64, lo: f64, hi: f64, what: &str) {
    assert!((lo..=hi).contains(&v), "{what} = {v}, expected {lo}..={hi}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latencies_match_the_scripted_truth() {
    let fake = Fake::start(Script {
        ttft: ms(80),
        itl: ms(20),
        ..Default::default()
    })
    .await;
    let (run, r) = bench(
        &fake.url(),
        &prompts(6, 6),
        &["--model", "m", "--save-detailed"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["completed"], 6);
    assert_eq!(r["failed"], 0);
    // Usage from the server: 7 prompt tokens each, 6 output tokens each.
    assert_eq!(r["total_input_tokens"], 42);
    assert_eq!(r["total_output_tokens"], 36);
    assert_eq!(r["estimated_output_tokens"], 0);
    // TTFT 80 ms, 5 gaps of 20 ms: TPOT = ITL = 20 ms, E2EL = 180 ms.
    within(f(&r, "median_ttft_ms"), 80.0, 130.0, "median TTFT");
    within(f(&r, "median_tpot_ms"), 17.0, 30.0, "median TPOT");
    within(f(&r, "median_itl_ms"), 12.0, 30.0, "median ITL");
    within(f(&r, "median_e2el_ms"), 180.0, 250.0, "median E2EL");
    let d = &r;
    for key in [
        "ttfts",
        "itls",
        "input_lens",
        "output_lens",
        "generated_texts",
        "errors",
    ] {
        assert_eq!(d[key].as_array().map(Vec::len), Some(6), "{key}");
    }
    assert_eq!(d["itls"][0].as_array().unwrap().len(), 5);
    assert_eq!(d["generated_texts"][0], " tok tok tok tok tok tok");
    // The body is vLLM's, with the output length pinned.
    let (_, path, body) = &fake.posts()[0];
    assert_eq!(path, "/v1/completions");
    assert_eq!(body["max_tokens"], 6);
    assert_eq!(body["min_tokens"], 6);
    assert_eq!(body["ignore_eos"], true);
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["model"], "m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn result_json_has_vllm_keys() {
    let fake = Fake::start(Script::default()).await;
    // A base URL ending in /v1 (as OpenAI SDKs take it) means the same server root.
    let url = format!("{}/v1/", fake.url());
    let (run, r) = bench(&url, &prompts(2, 3), &["--slo", "ttft_ms=5000"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    for key in [
        "duration",
        "completed",
        "failed",
        "total_input_tokens",
        "total_output_tokens",
        "request_throughput",
        "request_goodput",
        "output_throughput",
        "total_token_throughput",
        "max_concurrent_requests",
        "mean_ttft_ms",
        "median_ttft_ms",
        "std_ttft_ms",
        "p99_ttft_ms",
        "mean_tpot_ms",
        "median_tpot_ms",
        "std_tpot_ms",
        "p99_tpot_ms",
        "mean_itl_ms",
        "median_itl_ms",
        "std_itl_ms",
        "p99_itl_ms",
        "mean_e2el_ms",
        "median_e2el_ms",
        "std_e2el_ms",
        "p99_e2el_ms",
        "p90_ttft_ms",
        "p95_e2el_ms",
        "itl_per_token",
        "failures",
        "schedule",
        "model_id",
        "date",
    ] {
        assert!(r.get(key).is_some(), "{key} missing");
    }
    // Model from /v1/models; every request met the SLO.
    assert_eq!(r["model_id"], "fake-model");
    assert_eq!(r["request_goodput"], r["request_throughput"]);
    // Without --save-detailed, no per-request lists.
    assert!(r.get("ttfts").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_skips_the_role_chunk_and_sends_chat_body() {
    let fake = Fake::start(Script {
        ttft: ms(60),
        itl: ms(10),
        ..Default::default()
    })
    .await;
    let (run, r) = bench(
        &fake.url(),
        &prompts(3, 4),
        &["--endpoint", "chat", "--save-detailed"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["completed"], 3);
    assert_eq!(r["endpoint"], "chat");
    within(f(&r, "median_ttft_ms"), 60.0, 110.0, "median TTFT");
    // The role-only chunk is not a token: 4 tokens give 3 ITL samples of about 10 ms.
    assert_eq!(r["itls"][0].as_array().unwrap().len(), 3);
    within(f(&r, "median_itl_ms"), 6.0, 25.0, "median ITL");
    assert_eq!(r["generated_texts"][0], " tok tok tok tok");
    let (_, path, body) = &fake.posts()[0];
    assert_eq!(path, "/v1/chat/completions");
    assert_eq!(body["messages"][0]["role"], "user");
    assert_eq!(body["max_completion_tokens"], 4);
    assert!(body.get("max_tokens").is_none());
    assert_eq!(body["model"], "fake-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_token_chunks_give_token_correct_itl() {
    let fake = Fake::start(Script {
        ttft: ms(20),
        itl: ms(30),
        tokens_per_chunk: 2,
        ..Default::default()
    })
    .await;
    // 7 tokens: chunks of 1, 2, 2, 2 -> three gaps of 30 ms carrying two tokens each.
    let (run, r) = bench(&fake.url(), &prompts(3, 7), &["--model", "m"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["total_output_tokens"], 21);
    let itl = f(&r, "mean_itl_ms");
    let per_token = r["itl_per_token"]["mean"].as_f64().unwrap();
    within(itl, 25.0, 45.0, "chunk ITL");
    within(per_token / itl, 0.49, 0.51, "token ITL / chunk ITL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_timing_follows_arrival_offsets() {
    let fake = Fake::start(Script::default()).await;
    let lines: Vec<Value> = [0.0, 0.15, 0.3, 0.45]
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"prompt": format!("p{i}"), "expected_output_tokens": 2, "arrival_offset_s": t}))
        .collect();
    let (run, r) = bench(&fake.url(), &lines, &["--model", "m"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["request_rate"], "trace");
    // On an absolute schedule: each arrival at its offset after the first, never early.
    let t: Vec<f64> = fake.posts().iter().map(|p| p.0.as_secs_f64()).collect();
    for (i, off) in [0.0, 0.15, 0.3, 0.45].iter().enumerate() {
        within(t[i] - t[0], off - 0.06, off + 0.1, "trace arrival");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_timing_rescales_arrivals_to_n_over_rate() {
    let fake = Fake::start(Script::default()).await;
    let (run, r) = bench(
        &fake.url(),
        &prompts(10, 2),
        &["--model", "m", "--request-rate", "40", "--save-detailed"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["request_rate"], 40.0);
    let intended: Vec<f64> = serde_json::from_value(r["intended_s"].clone()).unwrap();
    let sent: Vec<f64> = serde_json::from_value(r["dispatched_s"].clone()).unwrap();
    // vLLM's rescaling: the last arrival is exactly at N / rate.
    let last = intended.iter().cloned().fold(0.0, f64::max);
    assert!((last - 0.25).abs() < 1e-9, "{last}");
    for (i, s) in intended.iter().zip(&sent) {
        within(s - i, -0.001, 0.1, "send delay");
    }
    let t: Vec<f64> = fake.posts().iter().map(|p| p.0.as_secs_f64()).collect();
    let first = intended.iter().cloned().fold(f64::MAX, f64::min);
    within(
        t[9] - t[0],
        last - first - 0.1,
        last - first + 0.1,
        "server-side span",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_cap_is_honoured_and_queueing_recorded() {
    let fake = Fake::start(Script {
        ttft: ms(40),
        itl: ms(10),
        ..Default::default()
    })
    .await;
    let (run, r) = bench(&fake.url(), &prompts(12, 3), &["--model", "m", "-c", "3"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fake.max_in_flight(), 3);
    assert_eq!(r["max_concurrent_requests"], 3);
    assert_eq!(r["max_concurrency"], 3);
    // 12 requests due at t=0 through 3 slots: most waited client-side.
    assert!(r["schedule"]["delay_ms"]["mean"].as_f64().unwrap() > 20.0);
    assert!(f(&r, "mean_ttft_ms") < r["ttft_from_schedule"]["mean"].as_f64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hidden_connection_cap() {
    let fake = Fake::start(Script {
        ttft: ms(1500),
        itl: ms(5),
        ..Default::default()
    })
    .await;
    // The original tool's client pooled at most 100 connections.
    let (run, r) = bench(&fake.url(), &prompts(300, 2), &["--model", "m"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["completed"], 300);
    assert_eq!(fake.max_in_flight(), 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_counted_by_kind_and_do_not_abort() {
    // 6 of 8 failed: the replay finishes and writes its JSON, then exits 4 (over the default
    // --max-failed-pct 1); with a threshold above 75 % it passes.
    let fake = Fake::start(Script::default()).await;
    let mut lines = prompts(2, 4);
    for kind in ["500", "error_event", "broken", "hang", "short", "nodone"] {
        lines.push(
            json!({"prompt": format!("please fail={kind} now"), "expected_output_tokens": 4}),
        );
    }
    let (run, r) = bench(
        &fake.url(),
        &lines,
        &["--model", "m", "--request-timeout", "1", "--save-detailed"],
    )
    .await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: 6 of 8 requests failed (75.0 %), more than --max-failed-pct 1"),
        "{}",
        run.stderr
    );
    assert_eq!(r["completed"], 2);
    assert_eq!(r["failed"], 6);
    let fails = &r["failures"];
    assert_eq!(fails["http_status"], 1, "{fails}");
    assert_eq!(fails["mid_stream"], 2, "{fails}");
    assert_eq!(fails["timeout"], 1, "{fails}");
    assert_eq!(fails["truncated"], 2, "{fails}");
    assert_eq!(fails["connect"], 0, "{fails}");
    let errors: Vec<String> = serde_json::from_value(r["errors"].clone()).unwrap();
    assert!(errors[2].contains("HTTP 500") && errors[2].contains("scripted 500"));
    assert!(
        errors[3].contains("scripted mid-stream error"),
        "{}",
        errors[3]
    );
    assert!(
        errors[6].contains("2 output tokens, 4 were pinned"),
        "{}",
        errors[6]
    );
    assert!(errors[7].contains("without [DONE]"), "{}", errors[7]);
    assert!(!r["failure_examples"].as_array().unwrap().is_empty());
    assert!(run.stderr.contains("failure 0:"));
    let (run, _) = bench(
        &fake.url(),
        &lines,
        &[
            "--model",
            "m",
            "--request-timeout",
            "1",
            "--max-failed-pct",
            "80",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_connections_are_connect_failures() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (run, r) = bench(&url, &prompts(3, 2), &["--model", "m"]).await;
    // Nothing completed: exit 3, whatever --max-failed-pct says.
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("error: no request completed (3 failed): nothing was measured"),
        "{}",
        run.stderr
    );
    assert_eq!(r["failed"], 3);
    assert_eq!(r["failures"]["connect"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_models_endpoint_is_an_error() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let (run, r) = bench(&url, &prompts(1, 2), &[]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--model"), "{}", run.stderr);
    assert!(r.is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_workload_fails_before_any_request() {
    let fake = Fake::start(Script::default()).await;
    let lines = vec![
        json!({"prompt": "ok", "expected_output_tokens": 3}),
        json!({"prompt": "bad", "expected_output_tokens": "many"}),
    ];
    let (run, r) = bench(&fake.url(), &lines, &["--num-warmups", "2"]).await;
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("w.jsonl:2: expected_output_tokens:"),
        "{}",
        run.stderr
    );
    assert_eq!(fake.hits(), 0);
    assert!(r.is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_bad_values_exit_1() {
    let run = run_async(&["bench", "--workload", "w.jsonl"]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    let fake = Fake::start(Script::default()).await;
    let (run, _) = bench(&fake.url(), &prompts(1, 1), &["--request-rate", "fast"]).await;
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--request-rate"), "{}", run.stderr);
    assert_eq!(fake.hits(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmups_are_fresh_text_and_come_first() {
    let fake = Fake::start(Script::default()).await;
    let lines = prompts(4, 40);
    let (run, r) = bench(&fake.url(), &lines, &["--model", "m", "--num-warmups", "3"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["completed"], 4);
    let posts = fake.posts();
    assert_eq!(posts.len(), 7);
    let measured: Vec<&str> = lines
        .iter()
        .map(|l| l["prompt"].as_str().unwrap())
        .collect();
    for (_, _, body) in &posts[..3] {
        let p = body["prompt"].as_str().unwrap();
        assert!(measured.iter().all(|m| !m.contains(p) && !p.contains(m)));
        assert!(body["max_tokens"].as_u64().unwrap() <= 16);
    }
    for (_, _, body) in &posts[3..] {
        assert!(measured.contains(&body["prompt"].as_str().unwrap()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_style_connection_close_is_not_a_failure() {
    let fake = Fake::start(Script {
        llama_cpp: true,
        ..Default::default()
    })
    .await;
    let (run, r) = bench(&fake.url(), &prompts(10, 3), &["--model", "m", "-c", "2"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(r["completed"], 10, "{r:#}");
    // Usage came inside the last content chunk.
    assert_eq!(r["total_output_tokens"], 30);
    assert_eq!(r["estimated_output_tokens"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_scale_compresses_the_schedule_and_rescales_durations() {
    let fake = Fake::start(Script {
        ttft: ms(60),
        itl: ms(10),
        ..Default::default()
    })
    .await;
    let lines = vec![
        json!({"prompt": "a", "expected_output_tokens": 3, "arrival_offset_s": 0.0}),
        json!({"prompt": "b", "expected_output_tokens": 3, "arrival_offset_s": 0.6}),
    ];
    // Half a wall second per server second: offsets shrink by 2, durations double.
    let (run, r) = bench(
        &fake.url(),
        &lines,
        &["--model", "m", "--time-scale", "0.5"],
    )
    .await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    within(f(&r, "median_ttft_ms"), 120.0, 200.0, "TTFT in server ms");
    let t: Vec<f64> = fake.posts().iter().map(|p| p.0.as_secs_f64()).collect();
    within(t[1] - t[0], 0.27, 0.4, "wall gap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summary_table_snapshot() {
    let fake = Fake::start(Script::default()).await;
    let (run, _) = bench(&fake.url(), &prompts(4, 3), &["--model", "m", "-c", "2"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::with_settings!({filters => vec![(r"\| -?\d+\.\d+ +\|", "| [f] |")]}, {
        insta::assert_snapshot!(run.stdout);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_reports_what_finished_and_exits_130() {
    let fake = Fake::start(Script::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut lines = prompts(2, 3);
    lines.push(json!({"prompt": "fail=hang", "expected_output_tokens": 3}));
    let w = write_workload(dir.path(), "w.jsonl", &lines);
    let out = dir.path().join("r.json");
    let child = forge_async(&[
        "bench",
        "--base-url",
        &fake.url(),
        "--model",
        "m",
        "--no-progress",
    ])
    .arg("--workload")
    .arg(&w)
    .arg("--output")
    .arg(&out)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until the hanging request is on the server, then interrupt.
    for _ in 0..200 {
        if fake.posts().len() == 3 {
            break;
        }
        tokio::time::sleep(ms(10)).await;
    }
    tokio::time::sleep(ms(200)).await;
    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let done = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.status.code(), Some(130));
    let r = read_json(&out);
    assert_eq!(r["interrupted"], true);
    assert_eq!(r["completed"], 2);
    assert_eq!(r["num_prompts"], 2);
    assert!(String::from_utf8_lossy(&done.stderr).contains("interrupted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_help_snapshot() {
    let run = run_async(&["bench", "--help"]).await;
    assert_eq!(run.code, 0);
    insta::assert_snapshot!(run.stdout);
}
