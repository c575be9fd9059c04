//! The loopback server behind `forge loopback-server` (hidden): a fast OpenAI-compatible SSE server with scripted
//! delays, for measuring the load generator itself.
//!
//! It streams exactly what vLLM streams — `data: {json}\n\n` chunks (chat opens with a
//! role-only chunk), `finish_reason: "length"` on the last token, a usage chunk with
//! `"choices": []`, `data: [DONE]` — and serves `/v1/models`, `/health` and `/stats`. Token
//! `i` is emitted at the absolute time `receive + ttft + i·itl`. The first token's text is
//! `[emit_us=N]`: the server's own receive→first-chunk time in µs, so a client's TTFT minus
//! N is what the client (and loopback networking) added. `/stats` reports requests served,
//! chunks emitted and the most streams in flight at once, which proves a client's claimed
//! concurrency from the server's side.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde::Deserialize;

/// Server-side counters, shared by all handlers.
#[derive(Debug, Default)]
struct Stats {
    requests: AtomicU64,
    chunks: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Settings every stream follows.
#[derive(Debug)]
struct Config {
    model: String,
    /// `model` as a JSON string literal (quoted and escaped), spliced into every chunk.
    model_json: String,
    ttft: Duration,
    itl: Duration,
    /// Zero-latency streams yield to the runtime between chunks so each chunk is its own
    /// write (as a real server's are), unless `burst` lets them coalesce.
    burst: bool,
    stats: Stats,
}

/// The server's script: what it serves and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Port on 127.0.0.1 (0 = any free port; the bound address is printed).
    pub port: u16,
    /// Receive → first token.
    pub ttft: Duration,
    /// Between tokens.
    pub itl: Duration,
    /// Model name served by /v1/models and echoed in chunks.
    pub model: String,
    /// With zero delays, let chunks coalesce into one write instead of one write each.
    pub burst: bool,
}

/// Serve `script` until killed. Prints `listening on ADDR` on stdout.
pub async fn run(script: Script) -> anyhow::Result<()> {
    let cfg = Arc::new(Config {
        model_json: serde_json::Value::from(script.model.as_str()).to_string(),
        model: script.model,
        ttft: script.ttft,
        itl: script.itl,
        burst: script.burst,
        stats: Stats::default(),
    });
    serve(cfg, script.port).await
}

async fn serve(cfg: Arc<Config>, port: u16) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .route("/health", get(|| async { StatusCode::OK }))
        .route("/stats", get(stats))
        .with_state(cfg);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot bind {addr}"))?;
    println!("listening on {}", listener.local_addr()?);
    // Without TCP_NODELAY, Nagle holds each chunk until the previous segment is ACKed.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await.context("server failed")
}

async fn models(State(cfg): State<Arc<Config>>) -> Response {
    let body = serde_json::json!({
        "object": "list",
        "data": [{"id": cfg.model, "object": "model", "root": cfg.model, "owned_by": "forge"}]
    });
    json_response(body.to_string())
}

async fn stats(State(cfg): State<Arc<Config>>) -> Response {
    let s = &cfg.stats;
    let body = serde_json::json!({
        "requests": s.requests.load(Ordering::Relaxed),
        "chunks": s.chunks.load(Ordering::Relaxed),
        "in_flight": s.in_flight.load(Ordering::Relaxed),
        "max_in_flight": s.max_in_flight.load(Ordering::Relaxed),
    });
    json_response(body.to_string())
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The fields of a request the server looks at.
#[derive(Debug, Deserialize)]
struct Req {
    #[serde(default)]
    max_tokens: Option<u32>,
    #[serde(default)]
    max_completion_tokens: Option<u32>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Message>>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
    #[serde(default)]
    continuous_usage_stats: bool,
}

#[derive(Debug, Deserialize)]
struct Message {
    #[serde(default)]
    content: String,
}

async fn completions(State(cfg): State<Arc<Config>>, body: Bytes) -> Response {
    respond(cfg, body, false, Instant::now())
}

async fn chat(State(cfg): State<Arc<Config>>, body: Bytes) -> Response {
    respond(cfg, body, true, Instant::now())
}

fn respond(cfg: Arc<Config>, body: Bytes, chat: bool, recv: Instant) -> Response {
    let req: Req = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let msg = serde_json::json!({"error": {"message": e.to_string(), "code": 400}});
            return (StatusCode::BAD_REQUEST, msg.to_string()).into_response();
        }
    };
    cfg.stats.requests.fetch_add(1, Ordering::Relaxed);
    let n = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(16)
        .max(1);
    let prompt = req.prompt_tokens();
    let opts = req.stream_options.as_ref();
    let stream_gen = Gen {
        chat,
        n,
        i: 0,
        prompt,
        usage_each: opts.is_some_and(|o| o.continuous_usage_stats),
        usage_end: opts.is_some_and(|o| o.include_usage),
        recv,
        stage: Stage::Tokens,
        guard: InFlight::new(cfg),
    };
    if !req.stream {
        return json_response(stream_gen.whole());
    }
    sse_response(stream_gen)
}

impl Req {
    fn prompt_tokens(&self) -> u64 {
        let n = match (&self.prompt, &self.messages) {
            (Some(p), _) => crate::tokenize::count(p),
            (None, Some(m)) => m.iter().map(|m| crate::tokenize::count(&m.content)).sum(),
            _ => 0,
        };
        n as u64
    }
}

fn sse_response(stream_gen: Gen) -> Response {
    let stream = futures::stream::unfold(stream_gen, |mut g| async move {
        let item = g.next().await?;
        Some((Ok::<Bytes, Infallible>(item), g))
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Counts a stream in flight for as long as it lives.
struct InFlight(Arc<Config>);

impl InFlight {
    fn new(cfg: Arc<Config>) -> Self {
        let now = cfg.stats.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        cfg.stats.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(cfg)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Tokens,
    Usage,
    Done,
    End,
}

/// One response being generated.
struct Gen {
    chat: bool,
    n: u32,
    i: u32,
    prompt: u64,
    usage_each: bool,
    usage_end: bool,
    recv: Instant,
    stage: Stage,
    guard: InFlight,
}

impl Gen {
    fn cfg(&self) -> &Config {
        &self.guard.0
    }

    /// The next body frame, waiting until it is due.
    async fn next(&mut self) -> Option<Bytes> {
        match self.stage {
            Stage::Tokens => {
                self.wait_for_token().await;
                let frame = self.token_frame();
                self.i += 1;
                if self.i >= self.n {
                    self.stage = if self.usage_end {
                        Stage::Usage
                    } else {
                        Stage::Done
                    };
                }
                self.cfg().stats.chunks.fetch_add(1, Ordering::Relaxed);
                Some(Bytes::from(frame))
            }
            Stage::Usage => {
                self.stage = Stage::Done;
                let mut s = String::with_capacity(256);
                self.open(&mut s);
                s.push_str("\"choices\":[],");
                self.usage(&mut s, self.n);
                s.push_str("}\n\n");
                Some(Bytes::from(s))
            }
            Stage::Done => {
                self.stage = Stage::End;
                Some(Bytes::from_static(b"data: [DONE]\n\n"))
            }
            Stage::End => None,
        }
    }

    async fn wait_for_token(&self) {
        let cfg = self.cfg();
        let due = self.recv + cfg.ttft + cfg.itl * self.i;
        if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
        } else if !cfg.burst && self.i > 0 {
            tokio::task::yield_now().await;
        }
    }

    /// `data: {...}\n\n` for token `i` (chat's first token is preceded by the role chunk).
    fn token_frame(&self) -> String {
        let mut s = String::with_capacity(320);
        let text = if self.i == 0 {
            format!("[emit_us={}]", self.recv.elapsed().as_micros())
        } else {
            " tok".to_string()
        };
        if self.chat && self.i == 0 {
            self.open(&mut s);
            s.push_str(
                "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\
                 \"logprobs\":null,\"finish_reason\":null}]",
            );
            if self.usage_each {
                s.push(',');
                self.usage(&mut s, 0);
            }
            s.push_str("}\n\n");
        }
        let finish = if self.i + 1 >= self.n {
            "\"length\""
        } else {
            "null"
        };
        self.open(&mut s);
        if self.chat {
            let _ = write!(
                s,
                "\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{text}\"}},"
            );
        } else {
            let _ = write!(s, "\"choices\":[{{\"index\":0,\"text\":\"{text}\",");
        }
        let _ = write!(s, "\"logprobs\":null,\"finish_reason\":{finish}}}]");
        if self.usage_each {
            s.push(',');
            self.usage(&mut s, self.i + 1);
        }
        s.push_str("}\n\n");
        s
    }

    fn open(&self, s: &mut String) {
        let (object, id) = if self.chat {
            ("chat.completion.chunk", "chatcmpl")
        } else {
            ("text_completion", "cmpl")
        };
        let model = &self.cfg().model_json;
        let _ = write!(
            s,
            "data: {{\"id\":\"{id}-loopback\",\"object\":\"{object}\",\"created\":0,\"model\":{model},"
        );
    }

    fn usage(&self, s: &mut String, done: u32) {
        let (p, c) = (self.prompt, u64::from(done));
        let _ = write!(
            s,
            "\"usage\":{{\"prompt_tokens\":{p},\"total_tokens\":{},\"completion_tokens\":{c}}}",
            p + c
        );
    }

    /// A non-streamed response with all tokens at once.
    fn whole(&self) -> String {
        let text = " tok".repeat(self.n as usize);
        let choice = if self.chat {
            serde_json::json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"})
        } else {
            serde_json::json!({"index": 0, "text": text, "finish_reason": "length"})
        };
        serde_json::json!({
            "id": "loopback", "model": self.cfg().model, "choices": [choice],
            "usage": {"prompt_tokens": self.prompt, "completion_tokens": self.n,
                      "total_tokens": self.prompt + u64::from(self.n)}
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Endpoint;
    use crate::bench::sse::SseParser;
    use crate::bench::stream::StreamState;

    fn config() -> Arc<Config> {
        Arc::new(Config {
            model: "m\"x".into(),
            model_json: serde_json::Value::from("m\"x").to_string(),
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            burst: true,
            stats: Stats::default(),
        })
    }

    /// Generate a whole stream and read it back with forge's own client-side parsing.
    async fn roundtrip(chat: bool, n: u32, usage_each: bool) -> (StreamState, Vec<String>) {
        let cfg = config();
        let mut g = Gen {
            chat,
            n,
            i: 0,
            prompt: 5,
            usage_each,
            usage_end: true,
            recv: Instant::now(),
            stage: Stage::Tokens,
            guard: InFlight::new(cfg.clone()),
        };
        let endpoint = if chat {
            Endpoint::Chat
        } else {
            Endpoint::Completions
        };
        let mut st = StreamState::new(endpoint, Instant::now(), n);
        let (mut parser, mut frames) = (SseParser::new(), Vec::new());
        while let Some(b) = g.next().await {
            frames.push(String::from_utf8(b.to_vec()).unwrap());
            parser.feed(&b, |e| st.on_data(e.data, Instant::now()));
        }
        assert_eq!(cfg.stats.chunks.load(Ordering::Relaxed), u64::from(n));
        st.close(Some(n));
        (st, frames)
    }

    #[tokio::test]
    async fn completions_stream_reads_back_complete() {
        let (st, frames) = roundtrip(false, 4, true).await;
        assert!(st.failure.is_none(), "{:?}", st.failure);
        assert!(st.done && st.finished);
        assert_eq!(st.output_tokens(), (4, false));
        assert_eq!(st.usage_prompt, Some(5));
        assert_eq!(st.itl_tokens, vec![1, 1, 1]);
        assert!(st.text.starts_with("[emit_us=") && st.text.ends_with("] tok tok tok"));
        // Four token chunks, the usage chunk, [DONE].
        assert_eq!(frames.len(), 6);
        assert!(frames[4].contains("\"choices\":[]"));
        assert_eq!(frames[5], "data: [DONE]\n\n");
    }

    #[tokio::test]
    async fn chat_stream_opens_with_a_role_chunk() {
        let (st, frames) = roundtrip(true, 2, false).await;
        assert!(st.failure.is_none(), "{:?}", st.failure);
        assert!(frames[0].contains("\"role\":\"assistant\""));
        assert!(frames[0].contains("\"model\":\"m\\\"x\""));
        assert_eq!(st.token_chunks, 2);
        assert_eq!(st.output_tokens(), (2, false));
        assert!(
            !frames[1].contains("usage"),
            "no per-chunk usage unless asked"
        );
    }
}
