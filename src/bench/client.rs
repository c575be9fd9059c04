//! One request on the wire: builds the JSON body exactly as `vllm bench serve` does, POSTs
//! it, reads the SSE stream as it arrives and stamps every read with the time it came in.
//!
//! The HTTP client has no connection cap (the original tool's client pooled at most 100
//! connections, silently queueing the rest): every request in flight has its own HTTP/1.1
//! connection, reused when the server keeps it alive and reopened when it does not. A
//! server that closes after each stream while advertising keep-alive (llama.cpp's) makes
//! reuse race its close — "connection closed before message completed" on a request it
//! never saw — so for it the pool is off and every request opens its own connection.
//! Proxies are ignored: a proxy in the path would be measured as server latency.

use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde::Serialize;

use super::Endpoint;
use super::record::FailureKind;
use super::sse::SseParser;
use super::stream::{StreamState, excerpt};
use crate::workload::{ChatMessage, WorkloadRequest};

/// How long to wait for the end of a body after `[DONE]`, so the connection can be reused.
const DRAIN_GRACE: Duration = Duration::from_millis(50);
/// Bytes of an error response kept for the failure message.
const ERROR_BODY_BYTES: usize = 1024;

/// `stream_options`: usage at the end, and per chunk (for tokens per chunk).
#[derive(Debug, Serialize)]
struct StreamOptions {
    include_usage: bool,
    continuous_usage_stats: bool,
}

/// The request body. Field order and presence follow vLLM's client.
#[derive(Debug, Serialize)]
struct Body<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<&'a [ChatMessage]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    stream: bool,
    stream_options: StreamOptions,
    temperature: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    ignore_eos: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_tokens: Option<u32>,
}

/// A request ready to send: its body serialized once, before the clock starts.
#[derive(Debug, Clone)]
pub struct Job {
    /// JSON body.
    pub body: Bytes,
    /// `max_tokens` asked for.
    pub max_tokens: u32,
    /// Output length pinned with `ignore_eos`/`min_tokens` (checked on completion).
    pub pinned: Option<u32>,
    /// Prompt tokens by the local tokenizer, used when the server reports no usage.
    pub prompt_estimate: u64,
}

impl Job {
    /// Serialize a workload request for `endpoint`. With `pin`, the output length is forced
    /// to `expected_output_tokens` (`ignore_eos`, `min_tokens` = `max_tokens`).
    pub fn new(endpoint: Endpoint, model: &str, req: &WorkloadRequest, pin: bool) -> Self {
        let n = req.expected_output_tokens;
        let (prompt, messages) = match endpoint {
            Endpoint::Completions => (Some(req.input.as_prompt_text()), None),
            Endpoint::Chat => (None, Some(req.input.as_messages())),
        };
        let body = Body {
            model,
            prompt: prompt.as_deref(),
            messages: messages.as_deref(),
            max_tokens: (endpoint == Endpoint::Completions).then_some(n),
            max_completion_tokens: (endpoint == Endpoint::Chat).then_some(n),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
                continuous_usage_stats: true,
            },
            temperature: 0,
            ignore_eos: pin.then_some(true),
            min_tokens: pin.then_some(n),
        };
        let text = match (&prompt, &messages) {
            (Some(p), _) => crate::tokenize::count(p),
            (None, Some(m)) => crate::tokenize::count(&crate::workload::render_chat(m)),
            (None, None) => 0,
        };
        Job {
            // Serializing plain strings and numbers cannot fail.
            body: Bytes::from(serde_json::to_vec(&body).unwrap_or_default()),
            max_tokens: n,
            pinned: pin.then_some(n),
            prompt_estimate: text as u64,
        }
    }
}

/// The HTTP side of the load generator: one pooled client and the target URL.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    url: String,
    endpoint: Endpoint,
}

impl Client {
    /// A client for `base_url` (server root, e.g. `http://127.0.0.1:8000`). Sends
    /// `Authorization: Bearer $OPENAI_API_KEY` when that variable is set, as vLLM does.
    pub fn new(base_url: &str, endpoint: Endpoint) -> anyhow::Result<Self> {
        Client::with_pooling(base_url, endpoint, true)
    }

    /// [`Client::new`], choosing whether idle connections are kept for reuse (`false`: a new
    /// connection per request, for servers that close after each streamed response).
    pub fn with_pooling(base_url: &str, endpoint: Endpoint, pool: bool) -> anyhow::Result<Self> {
        let base = base_url.trim_end_matches('/').to_string();
        let mut headers = HeaderMap::new();
        if let Ok(key) = std::env::var("OPENAI_API_KEY")
            && !key.is_empty()
        {
            let mut v = HeaderValue::from_str(&format!("Bearer {key}"))
                .context("OPENAI_API_KEY is not a valid header value")?;
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let http = reqwest::Client::builder()
            .no_proxy()
            .http1_only()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(if pool { usize::MAX } else { 0 })
            .pool_idle_timeout(Duration::from_secs(90))
            .default_headers(headers)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Client {
            url: format!("{base}{}", endpoint.path()),
            base_url: base,
            http,
            endpoint,
        })
    }

    /// The server root requests go to.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The first model the server lists (`/v1/models` → `data[0].id`).
    pub async fn first_model(&self) -> anyhow::Result<String> {
        let url = format!("{}/v1/models", self.base_url);
        let resp = self
            .http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GET {url}: {}", chain(Some(&e))))?;
        let status = resp.status();
        let text = resp.text().await.with_context(|| format!("GET {url}"))?;
        anyhow::ensure!(
            status.is_success(),
            "GET {url}: HTTP {status}: {}",
            excerpt(&text)
        );
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("GET {url}: not JSON"))?;
        v.pointer("/data/0/id")
            .and_then(|id| id.as_str())
            .map(str::to_string)
            .with_context(|| format!("GET {url}: no data[0].id in {}", excerpt(&text)))
    }

    /// Send one job and measure it. Never fails: errors become the state's failure. The
    /// whole exchange must finish within `timeout` (wall time).
    pub async fn send(&self, job: &Job, timeout: Duration) -> StreamState {
        let t0 = Instant::now();
        let mut st = StreamState::new(self.endpoint, t0, job.max_tokens);
        let deadline = tokio::time::Instant::from_std(t0) + timeout;
        let res = tokio::time::timeout_at(deadline, self.exchange(job, &mut st)).await;
        if res.is_err() && !st.done {
            let msg = format!("no complete response within {:.3} s", timeout.as_secs_f64());
            st.fail(FailureKind::Timeout, msg);
        }
        st.close(job.pinned);
        st
    }

    async fn exchange(&self, job: &Job, st: &mut StreamState) {
        let req = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .body(job.body.clone());
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return st.fail(FailureKind::Connect, chain(Some(&e))),
        };
        let status = resp.status();
        if !status.is_success() {
            let body = error_body(&mut resp).await;
            let msg = format!("HTTP {status}: {}", excerpt(body.trim()));
            return st.fail(FailureKind::HttpStatus, msg);
        }
        if let Err(e) = read_stream(&mut resp, st).await
            && !(st.done || st.finished)
        {
            let msg = format!("connection broken mid-stream: {}", chain(Some(&e)));
            st.fail(FailureKind::MidStream, msg);
        }
    }
}

/// Read the SSE body, feeding every event to `st` with the time its read arrived.
async fn read_stream(resp: &mut reqwest::Response, st: &mut StreamState) -> reqwest::Result<()> {
    let mut parser = SseParser::new();
    while let Some(bytes) = resp.chunk().await? {
        let now = Instant::now();
        parser.feed(&bytes, |e| st.on_data(e.data, now));
        if st.is_over() {
            if st.failure.is_none() {
                drain(resp).await;
            }
            return Ok(());
        }
    }
    let now = Instant::now();
    parser.finish(|e| st.on_data(e.data, now));
    Ok(())
}

/// After `[DONE]`: read to the end of the body (briefly) so the connection goes back to the
/// pool; a server that keeps the body open is cut off instead.
async fn drain(resp: &mut reqwest::Response) {
    let rest = async { while let Ok(Some(_)) = resp.chunk().await {} };
    let _ = tokio::time::timeout(DRAIN_GRACE, rest).await;
}

/// The first [`ERROR_BODY_BYTES`] of an error response.
async fn error_body(resp: &mut reqwest::Response) -> String {
    let mut buf = Vec::new();
    while buf.len() < ERROR_BODY_BYTES {
        match resp.chunk().await {
            Ok(Some(b)) => buf.extend_from_slice(&b),
            _ => break,
        }
    }
    buf.truncate(ERROR_BODY_BYTES);
    String::from_utf8_lossy(&buf).into_owned()
}

/// An error and its sources on one line (`a: b: c`).
fn chain(e: Option<&(dyn std::error::Error + 'static)>) -> String {
    let Some(e) = e else {
        return "request failed".into();
    };
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::workload::RequestInput;

    fn req(input: RequestInput, n: u32) -> WorkloadRequest {
        WorkloadRequest {
            line: 1,
            input,
            expected_output_tokens: n,
            arrival_offset_s: None,
            expected_output: None,
        }
    }

    fn body(job: &Job) -> Value {
        serde_json::from_slice(&job.body).unwrap()
    }

    #[test]
    fn completions_body_matches_vllm_client_and_pins_length() {
        let r = req(RequestInput::Prompt("Hello there".into()), 32);
        let job = Job::new(Endpoint::Completions, "m", &r, true);
        assert_eq!(
            body(&job),
            json!({
                "model": "m", "prompt": "Hello there", "max_tokens": 32, "stream": true,
                "stream_options": {"include_usage": true, "continuous_usage_stats": true},
                "temperature": 0, "ignore_eos": true, "min_tokens": 32
            })
        );
        assert_eq!(job.pinned, Some(32));
        // "Hell" "o" " ther" "e" by the stand-in tokenizer.
        assert_eq!(job.prompt_estimate, 4);
        // Field order as vLLM sends it: model first.
        assert!(job.body.starts_with(b"{\"model\":\"m\",\"prompt\""));
    }

    #[test]
    fn chat_body_uses_messages_and_max_completion_tokens() {
        let r = req(RequestInput::Prompt("Hi".into()), 8);
        let job = Job::new(Endpoint::Chat, "m", &r, false);
        assert_eq!(
            body(&job),
            json!({
                "model": "m", "messages": [{"role": "user", "content": "Hi"}],
                "max_completion_tokens": 8, "stream": true,
                "stream_options": {"include_usage": true, "continuous_usage_stats": true},
                "temperature": 0
            })
        );
        assert_eq!(job.pinned, None);
    }

    #[test]
    fn chat_workload_on_completions_is_rendered_to_a_prompt() {
        let m = vec![ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        }];
        let r = req(RequestInput::Messages(m.clone()), 4);
        let v = body(&Job::new(Endpoint::Completions, "m", &r, true));
        assert_eq!(v["prompt"], json!(crate::workload::render_chat(&m)));
        assert!(v.get("messages").is_none());
    }

    #[test]
    fn error_chains_join_sources_once() {
        let inner = std::io::Error::other("refused");
        let outer = std::io::Error::other(inner);
        assert_eq!(chain(Some(&outer)), "refused");
        assert_eq!(chain(None), "request failed");
    }
}
