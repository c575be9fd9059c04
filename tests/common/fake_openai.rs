//! A scriptable OpenAI-compatible fake server for `forge bench`'s integration tests.
//!
//! The fake streams vLLM's framing with scripted delays (token `i` at `receive + ttft +
//! i·itl`, absolute), so the test knows the truth it asserts against. A prompt containing
//! `fail=KIND` makes that request misbehave: `500`, `error_event`, `broken`, `hang`, `short`,
//! `nodone`. Everything the server saw is recorded: hits, bodies, receive times, the most
//! streams in flight.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use futures::SinkExt;
use serde_json::{Value, json};

/// How every stream behaves (per-request `fail=` directives override).
#[derive(Debug, Clone)]
pub struct Script {
    /// Time to the first token, from receipt.
    pub ttft: Duration,
    /// Time between tokens.
    pub itl: Duration,
    /// Tokens carried by each chunk after the first.
    pub tokens_per_chunk: u32,
    /// Send `Connection: close`, put usage in the last content chunk, no usage chunk and no
    /// `[DONE]` (llama.cpp style).
    pub llama_cpp: bool,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttft: Duration::from_millis(10),
            itl: Duration::from_millis(5),
            tokens_per_chunk: 1,
            llama_cpp: false,
        }
    }
}

/// What the fake saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// Every HTTP request, any path.
    pub hits: AtomicUsize,
    /// Streams running now.
    pub in_flight: AtomicUsize,
    /// The most streams that ran at once.
    pub max_in_flight: AtomicUsize,
    /// (receive time since the server started, path, JSON body) per POST.
    pub posts: Mutex<Vec<(Duration, String, Value)>>,
}

struct Shared {
    script: Script,
    seen: Arc<Seen>,
    t0: Instant,
}

/// A running fake; dropped with the test's runtime.
pub struct Fake {
    /// Where it listens.
    pub addr: SocketAddr,
    /// What it saw.
    pub seen: Arc<Seen>,
}

impl Fake {
    /// Listen on a free loopback port, serving `script`.
    pub async fn start(script: Script) -> Fake {
        let seen = Arc::new(Seen::default());
        let shared = Arc::new(Shared {
            script,
            seen: seen.clone(),
            t0: Instant::now(),
        });
        let app = Router::new()
            .route("/v1/models", axum::routing::get(models))
            .route("/v1/completions", axum::routing::post(stream))
            .route("/v1/chat/completions", axum::routing::post(stream))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .layer(axum::middleware::from_fn_with_state(shared.clone(), count))
            .with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listener = listener.tap_io(|t| {
            let _ = t.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Fake { addr, seen }
    }

    /// `http://ADDR`, the `--base-url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// HTTP requests so far, any path.
    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }

    /// The most streams that ran at once.
    pub fn max_in_flight(&self) -> usize {
        self.seen.max_in_flight.load(Ordering::SeqCst)
    }

    /// Every POST so far: (receive time since start, path, JSON body).
    pub fn posts(&self) -> Vec<(Duration, String, Value)> {
        self.seen.posts.lock().unwrap().clone()
    }
}

async fn count(
    State(s): State<Arc<Shared>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    s.seen.hits.fetch_add(1, Ordering::SeqCst);
    next.run(req).await
}

async fn models() -> Response {
    axum::Json(json!({"object": "list", "data": [{"id": "fake-model", "root": "fake-model"}]}))
        .into_response()
}

/// In-flight accounting that ends when the stream's task ends.
struct Flight(Arc<Seen>);

impl Flight {
    fn new(seen: Arc<Seen>) -> Self {
        let n = seen.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        seen.max_in_flight.fetch_max(n, Ordering::SeqCst);
        Flight(seen)
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type Tx = futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>;

async fn stream(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let recv = Instant::now();
    let path = req.uri().path().to_string();
    let bytes = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    s.seen
        .posts
        .lock()
        .unwrap()
        .push((recv - s.t0, path.clone(), body.clone()));
    let chat = path.contains("chat");
    let prompt = if chat {
        body["messages"].to_string()
    } else {
        body["prompt"].as_str().unwrap_or("").to_string()
    };
    let fail = prompt
        .split_whitespace()
        .find_map(|w| w.trim_matches('"').strip_prefix("fail="))
        .map(|f| {
            f.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '_')
                .to_string()
        });
    if fail.as_deref() == Some("500") {
        let err = json!({"object": "error", "message": "scripted 500", "code": 500});
        return (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()).into_response();
    }
    let n = body["max_tokens"]
        .as_u64()
        .or(body["max_completion_tokens"].as_u64())
        .unwrap_or(4) as u32;
    let (tx, rx) = futures::channel::mpsc::channel(64);
    let job = Job {
        script: s.script.clone(),
        chat,
        n,
        recv,
        fail,
        flight: Flight::new(s.seen.clone()),
    };
    tokio::spawn(job.run(tx));
    let mut resp = Response::new(Body::from_stream(rx));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    if s.script.llama_cpp {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

struct Job {
    script: Script,
    chat: bool,
    n: u32,
    recv: Instant,
    fail: Option<String>,
    flight: Flight,
}

fn frame(v: Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

impl Job {
    fn chunk(&self, text: &str, finish: Option<&str>, done: u32, usage: bool) -> Value {
        let choice = if self.chat {
            json!({"index": 0, "delta": {"content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        };
        let mut v = json!({"id": "x", "object": "chunk", "choices": [choice]});
        if usage {
            v["usage"] = json!({"prompt_tokens": 7, "completion_tokens": done});
        }
        v
    }

    async fn run(self, mut tx: Tx) {
        let fail = self.fail.clone().unwrap_or_default();
        let llama = self.script.llama_cpp;
        let per = self.script.tokens_per_chunk.max(1);
        // The number of tokens the stream will really produce.
        let total = if fail == "short" {
            self.n.min(2)
        } else {
            self.n
        };
        if self.chat && !llama {
            let role =
                json!({"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
            tokio::time::sleep_until((self.recv + self.script.ttft).into()).await;
            let _ = tx.send(Ok(frame(role))).await;
        }
        let (mut done, mut k) = (0u32, 0u32);
        while done < total {
            let due = self.recv + self.script.ttft + self.script.itl * k;
            tokio::time::sleep_until(due.into()).await;
            let step = if k == 0 { 1 } else { per.min(total - done) };
            done += step;
            k += 1;
            let last = done >= total;
            let finish = (last && fail != "nodone").then_some(if fail == "short" {
                "stop"
            } else {
                "length"
            });
            let text = vec!["tok"; step as usize].join(" ");
            let v = self.chunk(&format!(" {text}"), finish, done, !llama || last);
            if tx.send(Ok(frame(v))).await.is_err() {
                return;
            }
            if done >= 2 && self.misbehave(&fail, &mut tx).await {
                return;
            }
        }
        drop(self.flight);
        if fail == "nodone" || llama {
            return;
        }
        let usage =
            json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": done}});
        let _ = tx.send(Ok(frame(usage))).await;
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    }

    /// Mid-stream failures after two tokens. True when the stream is over.
    async fn misbehave(&self, fail: &str, tx: &mut Tx) -> bool {
        match fail {
            "error_event" => {
                let e =
                    json!({"error": {"object": "error", "message": "scripted mid-stream error"}});
                let _ = tx.send(Ok(frame(e))).await;
                true
            }
            "broken" => {
                let _ = tx.send(Err(std::io::Error::other("scripted break"))).await;
                true
            }
            "hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                true
            }
            _ => false,
        }
    }
}
