//! `forge sim serve` over HTTP: startup (refused connections, then ready), vLLM's routes,
//! the exact SSE framing of completions and chat, output-length controls, errors and
//! `/metrics`. Every server runs in its own process group and is killed with it.

mod common;

use std::time::{Duration, Instant};

use common::procs::free_port;
use common::sim_proc::{MODEL, blank_text, client, normalize, serve, spawn, sse_events};
use forge::tokenize::{output_piece, tokenize};
use forge::workload::ChatMessage;
use forge::workload::render_chat;
use serde_json::{Value, json};

async fn post(port: u16, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn get(port: u16, path: &str) -> reqwest::Response {
    client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap()
}

fn prompt_len(text: &str) -> u64 {
    tokenize(text).len() as u64
}

#[tokio::test]
async fn refuses_connections_until_started() {
    let port = free_port();
    let port_s = port.to_string();
    let mut p = spawn(&[
        "sim",
        "serve",
        MODEL,
        "--port",
        &port_s,
        "--sim-time-scale",
        "0.01",
        "--sim-slow-start",
        "1.5",
    ]);
    let t0 = Instant::now();
    let mut refused = 0;
    while t0.elapsed() < Duration::from_millis(1000) {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
                refused += 1;
            }
            Ok(_) => panic!("connected during startup"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused > 5);
    assert_eq!(p.ready(), port);
    assert!(t0.elapsed() >= Duration::from_millis(1500));
    let r = get(port, "/health").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "");
}

#[tokio::test]
async fn models_and_version() {
    let mut p = serve(&["--served-model-name", "srv", "alias"]);
    let port = p.ready();
    let max_len_line = p
        .wait_line("Maximum concurrency for ", Duration::from_secs(1))
        .unwrap();
    let max_len: u64 = max_len_line
        .split("Maximum concurrency for ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .replace(',', "")
        .parse()
        .unwrap();
    let text = get(port, "/v1/models").await.text().await.unwrap();
    let card = |id: &str| {
        format!(
            r#"{{"id":"{id}","object":"model","created":0,"owned_by":"vllm","root":"{MODEL}","parent":null,"max_model_len":{max_len},"permission":[{{"id":"<MODELPERM>","object":"model_permission","created":0,"allow_create_engine":false,"allow_sampling":true,"allow_logprobs":true,"allow_search_indices":false,"allow_view":true,"allow_fine_tuning":false,"organization":"*","group":null,"is_blocking":false}}]}}"#
        )
    };
    assert_eq!(
        normalize(&text),
        format!(
            r#"{{"object":"list","data":[{},{}]}}"#,
            card("srv"),
            card("alias")
        )
    );
    let v = get(port, "/version").await.text().await.unwrap();
    assert_eq!(v, r#"{"version":"0.33.0"}"#);
    assert_eq!(get(port, "/nope").await.status(), 404);
}

#[tokio::test]
async fn completions_stream_is_framed_like_vllm() {
    let mut p = serve(&[]);
    let port = p.ready();
    let prompt = "The quick brown fox jumps over the lazy dog.";
    let r = post(
        port,
        "/v1/completions",
        json!({"model": MODEL, "prompt": prompt, "max_tokens": 5, "ignore_eos": true,
               "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/event-stream; charset=utf-8"
    );
    let body = r.text().await.unwrap();
    let events = sse_events(&body);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks = &events[..events.len() - 1];
    let (usage, tokens) = chunks.split_last().unwrap();
    assert!(!tokens.is_empty());
    let id = serde_json::from_str::<Value>(&tokens[0]).unwrap()["id"].clone();
    assert!(id.as_str().unwrap().starts_with("cmpl-"));
    let mut n = 0;
    for (i, c) in tokens.iter().enumerate() {
        let v: Value = serde_json::from_str(c).unwrap();
        assert_eq!(v["id"], id);
        let finish = if i + 1 == tokens.len() {
            r#""length""#
        } else {
            "null"
        };
        assert_eq!(
            blank_text(&normalize(c), "text"),
            format!(
                r#"{{"id":"<CMPL>","object":"text_completion","created":0,"model":"{MODEL}","choices":[{{"index":0,"text":"T","logprobs":null,"finish_reason":{finish},"stop_reason":null,"prompt_token_ids":null,"token_ids":null}}]}}"#
            )
        );
        n += 1;
    }
    assert_eq!(n, 5, "one chunk per generated token");
    let pl = prompt_len(prompt);
    assert_eq!(
        normalize(usage),
        format!(
            r#"{{"id":"<CMPL>","object":"text_completion","created":0,"model":"{MODEL}","choices":[],"usage":{{"prompt_tokens":{pl},"total_tokens":{},"completion_tokens":5}}}}"#,
            pl + 5
        )
    );
}

#[tokio::test]
async fn chat_stream_is_framed_like_vllm() {
    let mut p = serve(&[]);
    let port = p.ready();
    let messages = vec![ChatMessage {
        role: "user".into(),
        content: "Name three prime numbers.".into(),
    }];
    let r = post(
        port,
        "/v1/chat/completions",
        json!({"model": MODEL, "messages": messages, "max_completion_tokens": 4,
               "ignore_eos": true, "stream": true,
               "stream_options": {"include_usage": true, "continuous_usage_stats": true}}),
    )
    .await;
    let body = r.text().await.unwrap();
    let events = sse_events(&body);
    let pl = tokenize(&render_chat(&messages)).len() as u64;
    assert_eq!(events.last().unwrap(), "[DONE]");
    let head = format!(
        r#"{{"id":"<CHATCMPL>","object":"chat.completion.chunk","created":0,"model":"{MODEL}","#
    );
    let usage = |c: u64| {
        format!(
            r#""usage":{{"prompt_tokens":{pl},"total_tokens":{},"completion_tokens":{c}}}"#,
            pl + c
        )
    };
    assert_eq!(
        normalize(&events[0]),
        format!(
            r#"{head}"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}],{},"prompt_token_ids":null}}"#,
            usage(0)
        )
    );
    let tokens = &events[1..events.len() - 2];
    assert_eq!(tokens.len(), 4);
    for (i, c) in tokens.iter().enumerate() {
        let expected = if i == 3 {
            r#""finish_reason":"length","stop_reason":null,"token_ids":null"#
        } else {
            r#""finish_reason":null,"token_ids":null"#
        };
        assert_eq!(
            blank_text(&normalize(c), "content"),
            format!(
                r#"{head}"choices":[{{"index":0,"delta":{{"content":"T"}},"logprobs":null,{expected}}}],{}}}"#,
                usage(i as u64 + 1)
            )
        );
    }
    assert_eq!(
        normalize(&events[events.len() - 2]),
        format!(r#"{head}"choices":[],{}}}"#, usage(4))
    );
}

#[tokio::test]
async fn non_streaming_bodies() {
    let mut p = serve(&[]);
    let port = p.ready();
    let r = post(
        port,
        "/v1/completions",
        json!({"prompt": "Hello", "max_tokens": 3, "ignore_eos": true}),
    )
    .await;
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let text = r.text().await.unwrap();
    let pl = prompt_len("Hello");
    assert_eq!(
        blank_text(&normalize(&text), "text"),
        format!(
            r#"{{"id":"<CMPL>","object":"text_completion","created":0,"model":"{MODEL}","choices":[{{"index":0,"text":"T","logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null,"prompt_logprobs":null,"prompt_token_ids":null}}],"service_tier":null,"system_fingerprint":null,"usage":{{"prompt_tokens":{pl},"total_tokens":{},"completion_tokens":3,"prompt_tokens_details":null}},"kv_transfer_params":null}}"#,
            pl + 3
        )
    );
    let r = post(
        port,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "ignore_eos": true}),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn n_stop_logprobs_and_tokenize_over_http() {
    let mut p = serve(&[]);
    let port = p.ready();
    let prompt = "Stop me when you say the third word again.";
    // The simulator's own text for this prompt (bf16: no perturbation).
    let seed = forge::tokenize::text_seed(&tokenize(prompt));
    let words: Vec<&str> = (0..40).map(|i| output_piece(seed, i)).collect();
    let stop = words[2];
    let (k, cut) = (0..words.len())
        .find_map(|k| {
            let text = words[..=k].concat();
            text.find(stop).map(|at| (k + 1, text[..at].to_string()))
        })
        .unwrap();
    let body = json!({"prompt": prompt, "max_tokens": 40, "ignore_eos": true, "stop": stop});
    let v: Value = post(port, "/v1/completions", body)
        .await
        .json()
        .await
        .unwrap();
    let c = &v["choices"][0];
    assert_eq!(c["text"], cut.as_str());
    assert_eq!(
        (&c["finish_reason"], &c["stop_reason"]),
        (&json!("stop"), &json!(stop))
    );
    assert_eq!(v["usage"]["completion_tokens"], k);

    // n = 2, streamed: one choice per chunk, each index finishes, usage sums both.
    let body = json!({"prompt": prompt, "max_tokens": 3, "ignore_eos": true, "n": 2,
        "logprobs": 2, "stream": true, "stream_options": {"include_usage": true}});
    let text = post(port, "/v1/completions", body)
        .await
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = sse_events(&text)
        .iter()
        .filter(|e| e.as_str() != "[DONE]")
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let mut tokens = [0, 0];
    for ch in chunks.iter().flat_map(|c| c["choices"].as_array().unwrap()) {
        let lp = &ch["logprobs"];
        tokens[ch["index"].as_u64().unwrap() as usize] += lp["tokens"].as_array().unwrap().len();
        assert_eq!(lp["top_logprobs"][0].as_object().unwrap().len(), 2);
    }
    assert_eq!(tokens, [3, 3]);
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 6);

    let r = post(
        port,
        "/v1/completions",
        json!({"prompt": "x", "temperature": -1}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":{"message":"temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)","type":"BadRequestError","param":"temperature","code":400}}"#
    );

    let t: Value = post(port, "/tokenize", json!({"prompt": prompt}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(t["tokens"], json!(tokenize(prompt)));
    assert_eq!(t["count"], tokenize(prompt).len());
    let d: Value = post(port, "/detokenize", json!({"tokens": t["tokens"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(d, json!({"prompt": prompt}));
}

async fn completion_tokens(port: u16, body: Value) -> (u64, String) {
    let v: Value = post(port, "/v1/completions", body)
        .await
        .json()
        .await
        .unwrap();
    let finish = v["choices"][0]["finish_reason"]
        .as_str()
        .unwrap()
        .to_string();
    (v["usage"]["completion_tokens"].as_u64().unwrap(), finish)
}

#[tokio::test]
async fn output_length_controls_are_honoured() {
    let mut p = serve(&[]);
    let port = p.ready();
    let prompt = "Tell me a long story about GPUs.";
    let pinned = json!({"prompt": prompt, "max_tokens": 37, "ignore_eos": true});
    assert_eq!(completion_tokens(port, pinned).await, (37, "length".into()));
    let min = json!({"prompt": prompt, "max_tokens": 23, "min_tokens": 23});
    assert_eq!(completion_tokens(port, min).await, (23, "length".into()));
    for seed in 0..5 {
        let free =
            json!({"prompt": format!("{prompt} {seed}"), "max_tokens": 400, "min_tokens": 3});
        let (n, finish) = completion_tokens(port, free).await;
        assert!((3..=400).contains(&n), "{n}");
        assert_eq!(finish, if n == 400 { "length" } else { "stop" });
    }
    // The completions default is 16 tokens.
    let default = json!({"prompt": prompt, "ignore_eos": true});
    assert_eq!(
        completion_tokens(port, default).await,
        (16, "length".into())
    );
}

#[tokio::test]
async fn errors_use_vllms_shape() {
    let mut p = serve(&[]);
    let port = p.ready();
    let r = post(
        port,
        "/v1/completions",
        json!({"model": "other", "prompt": "x"}),
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":{"message":"The model `other` does not exist.","type":"NotFoundError","param":"model","code":404}}"#
    );
    // vLLM's validator tests the options' truthiness: `{}` passes, anything in it does not.
    let r = post(
        port,
        "/v1/completions",
        json!({"prompt": "x", "max_tokens": 1, "stream_options": {}}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = post(
        port,
        "/v1/completions",
        json!({"prompt": "x", "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"error":{"message":"Stream options can only be defined when `stream=True`. (parameter=stream_options)","type":"BadRequestError","param":"stream_options","code":400}}"#
    );
    let long = "word ".repeat(50_000);
    let r = post(
        port,
        "/v1/completions",
        json!({"prompt": long, "max_tokens": 1}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "BadRequestError");
    assert_eq!(v["error"]["code"], 400);
    let r = client()
        .post(format!("http://127.0.0.1:{port}/v1/completions"))
        .header("content-type", "text/plain")
        .body(r#"{"prompt":"x"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn api_key_guards_v1_routes_only() {
    let mut p = serve(&["--api-key", "s3cret"]);
    let port = p.ready();
    assert!(!p.stdout().contains("s3cret"), "the key is never logged");
    let r = get(port, "/v1/models").await;
    assert_eq!(r.status(), 401);
    assert_eq!(r.text().await.unwrap(), r#"{"error":"Unauthorized"}"#);
    let r = client()
        .get(format!("http://127.0.0.1:{port}/v1/models"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(get(port, "/health").await.status(), 200);
}

fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .unwrap_or_else(|| panic!("{name_and_labels} missing"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_use_vllms_names() {
    let mut p = serve(&[]);
    let port = p.ready();
    let prompts = ["First prompt here.", "A second, different prompt."];
    for (i, prompt) in prompts.iter().enumerate() {
        let body = json!({"prompt": prompt, "max_tokens": 4 + i, "ignore_eos": true});
        post(port, "/v1/completions", body)
            .await
            .text()
            .await
            .unwrap();
    }
    let r = get(port, "/metrics").await;
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    let l = format!("{{engine=\"0\",model_name=\"{MODEL}\"}}");
    let sum_prompt: u64 = prompts.iter().map(|p| prompt_len(p)).sum();
    assert_eq!(
        metric(&text, &format!("vllm:prompt_tokens_total{l}")),
        sum_prompt as f64
    );
    assert_eq!(
        metric(&text, &format!("vllm:generation_tokens_total{l}")),
        9.0
    );
    assert_eq!(metric(&text, &format!("vllm:num_requests_running{l}")), 0.0);
    assert_eq!(metric(&text, &format!("vllm:num_requests_waiting{l}")), 0.0);
    let success = format!(
        "vllm:request_success_total{{engine=\"0\",finished_reason=\"length\",model_name=\"{MODEL}\"}}"
    );
    assert_eq!(metric(&text, &success), 2.0);
    for h in [
        "vllm:time_to_first_token_seconds",
        "vllm:e2e_request_latency_seconds",
    ] {
        assert_eq!(metric(&text, &format!("{h}_count{l}")), 2.0, "{h}");
        assert!(text.contains(&format!("# TYPE {h} histogram\n")));
    }
    assert_eq!(
        metric(&text, &format!("vllm:inter_token_latency_seconds_count{l}")),
        7.0
    );
    for name in [
        "vllm:kv_cache_usage_perc",
        "vllm:prefix_cache_queries_total",
        "vllm:prefix_cache_hits_total",
        "vllm:num_preemptions_total",
        "vllm:iteration_tokens_total_bucket",
    ] {
        assert!(text.contains(name), "{name}");
    }
}

#[test]
fn startup_log_lines() {
    let mut p = serve(&["--max-num-seqs", "64"]);
    p.ready();
    let out = p.stdout();
    let lines: Vec<&str> = out
        .lines()
        .take_while(|l| !l.contains("Application startup complete."))
        .chain(std::iter::once("INFO:     Application startup complete."))
        .collect();
    let text = lines.join("\n");
    insta::with_settings!({filters => vec![
        (r"\d\d-\d\d \d\d:\d\d:\d\d", "MM-DD HH:MM:SS"),
        (r"pid=\d+", "pid=PID"),
        (r"process \[\d+\]", "process [PID]"),
        (r"127\.0\.0\.1:\d+", "127.0.0.1:PORT"),
    ]}, {
        insta::assert_snapshot!(text);
    });
}

#[tokio::test]
async fn client_disconnect_aborts_the_request() {
    let mut p = serve(&["--sim-time-scale", "0.05"]);
    let port = p.ready();
    let body = json!({"prompt": "A very long answer, please.", "max_tokens": 20_000,
                      "ignore_eos": true, "stream": true});
    let mut r = post(port, "/v1/completions", body).await;
    for _ in 0..3 {
        r.chunk().await.unwrap().expect("a chunk");
    }
    drop(r);
    let l = format!("model_name=\"{MODEL}\"}}");
    let aborted = format!("vllm:request_success_total{{engine=\"0\",finished_reason=\"abort\",{l}");
    let running = format!("vllm:num_requests_running{{engine=\"0\",{l}");
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let text = get(port, "/metrics").await.text().await.unwrap();
        if metric(&text, &aborted) == 1.0 && metric(&text, &running) == 0.0 {
            break;
        }
        assert!(Instant::now() < end, "the request was not aborted:\n{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn prompt_tokens_details_report_prefix_cache_hits() {
    let mut p = serve(&["--enable-prompt-tokens-details"]);
    let port = p.ready();
    let prompt = "You are a careful assistant. ".repeat(20);
    let body = json!({"prompt": prompt, "max_tokens": 2, "ignore_eos": true, "stream": true,
                      "stream_options": {"include_usage": true}});
    let mut cached = Vec::new();
    for _ in 0..2 {
        let text = post(port, "/v1/completions", body.clone())
            .await
            .text()
            .await
            .unwrap();
        let events = sse_events(&text);
        let usage: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        cached.push(
            usage["usage"]["prompt_tokens_details"]["cached_tokens"]
                .as_u64()
                .unwrap(),
        );
    }
    let pl = prompt_len(&prompt);
    assert_eq!(cached[0], 0);
    // Whole 16-token blocks of the prompt, never the last token (vLLM's rule).
    assert_eq!(cached[1], (pl - 1) / 16 * 16);
}
