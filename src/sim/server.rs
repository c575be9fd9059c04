//! The HTTP side of `forge sim serve`: vLLM's routes (`/health`, `/v1/models`,
//! `/version`, `/metrics`, `/v1/completions`, `/v1/chat/completions`) over the engine
//! thread, with vLLM's status codes and bodies ([`super::sse`]) and uvicorn's access log.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use super::driver::{Driver, ENGINE_DEAD, Event};
use super::interface::{FinishReason, SimRequest, TokenOutput};
use super::request::GenRequest;
use super::sse::{self, Ctx, Usage};
use super::vlog;
use crate::engine::vllm::flags::ServerOptions;
use crate::tokenize::perturbed_piece;

/// What every handler needs.
#[derive(Debug)]
pub struct AppState {
    /// The engine thread.
    pub driver: Driver,
    /// Served model names (the first is reported in responses and metrics).
    pub served: Vec<String>,
    /// The model tag (`root` in `/v1/models`).
    pub root: String,
    /// Context limit in force.
    pub max_model_len: u32,
    /// Server flags (`--api-key`, usage details, access log).
    pub options: ServerOptions,
    /// Seed for generated text.
    pub seed: u64,
    /// Share of generated tokens the configured quantization changes
    /// ([`crate::sim::quant::text_perturbation`]).
    pub perturb_rate: f64,
    /// `--sim-garbage-after N`.
    pub garbage_after: Option<u32>,
    /// Unix seconds the server started (`created` in `/v1/models`).
    pub created: i64,
    /// The version `/version` reports.
    pub version: String,
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .route("/reset_prefix_cache", post(reset_prefix_cache))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), gate))
        .with_state(state)
}

/// `--api-key` on `/v1/*` (vLLM's `AuthenticationMiddleware`) and uvicorn's access log.
async fn gate(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_else(|| "-".into());
    let line = format!(
        "{peer} - \"{} {} HTTP/1.1\"",
        req.method(),
        req.uri().path()
    );
    let response = if authorized(&s, &req) {
        next.run(req).await
    } else {
        let body = serde_json::json!({"error": "Unauthorized"}).to_string();
        json_response(StatusCode::UNAUTHORIZED, body)
    };
    if !s.options.disable_access_log {
        let status = response.status();
        let reason = status.canonical_reason().unwrap_or_default();
        vlog::uvicorn(&format!("{line} {} {reason}", status.as_u16()));
    }
    response
}

fn authorized(s: &AppState, req: &Request) -> bool {
    let Some(key) = &s.options.api_key else {
        return true;
    };
    if !req.uri().path().starts_with("/v1") {
        return true;
    }
    let want = format!("Bearer {key}");
    req.headers()
        .get(header::AUTHORIZATION)
        .is_some_and(|h| h.as_bytes() == want.as_bytes())
}

fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, r#"{"detail":"Not Found"}"#.into())
}

/// `POST /reset_prefix_cache`: vLLM mounts it only with `VLLM_SERVER_DEV_MODE=1`.
async fn reset_prefix_cache(State(s): State<Arc<AppState>>) -> StatusCode {
    if std::env::var("VLLM_SERVER_DEV_MODE").as_deref() != Ok("1") {
        return StatusCode::NOT_FOUND;
    }
    s.driver.reset_prefix_cache();
    StatusCode::OK
}

async fn health(State(s): State<Arc<AppState>>) -> StatusCode {
    if s.driver.shared.is_dead() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn version(State(s): State<Arc<AppState>>) -> Response {
    let body = serde_json::json!({"version": s.version}).to_string();
    json_response(StatusCode::OK, body)
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    let text = {
        let m = s.driver.shared.metrics();
        super::prom::render(&m, &s.served[0])
    };
    let mut r = text.into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

#[derive(Serialize)]
struct Permission {
    id: String,
    object: &'static str,
    created: i64,
    allow_create_engine: bool,
    allow_sampling: bool,
    allow_logprobs: bool,
    allow_search_indices: bool,
    allow_view: bool,
    allow_fine_tuning: bool,
    organization: &'static str,
    group: Option<String>,
    is_blocking: bool,
}

#[derive(Serialize)]
struct ModelCard<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    owned_by: &'static str,
    root: &'a str,
    parent: Option<String>,
    max_model_len: u32,
    permission: Vec<Permission>,
}

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelCard<'a>>,
}

async fn models(State(s): State<Arc<AppState>>) -> Response {
    let data = s
        .served
        .iter()
        .map(|name| ModelCard {
            id: name,
            object: "model",
            created: s.created,
            owned_by: "vllm",
            root: &s.root,
            parent: None,
            max_model_len: s.max_model_len,
            permission: vec![Permission {
                id: format!("modelperm-{}", &sse::new_id(false)[5..]),
                object: "model_permission",
                created: s.created,
                allow_create_engine: false,
                allow_sampling: true,
                allow_logprobs: true,
                allow_search_indices: false,
                allow_view: true,
                allow_fine_tuning: false,
                organization: "*",
                group: None,
                is_blocking: false,
            }],
        })
        .collect();
    let list = ModelList {
        object: "list",
        data,
    };
    json_response(
        StatusCode::OK,
        serde_json::to_string(&list).unwrap_or_default(),
    )
}

async fn completions(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    generate(s, body, false).await
}

async fn chat_completions(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    generate(s, body, true).await
}

/// vLLM's `validate_json_request`: the body must be declared `application/json`.
fn is_json(headers: &HeaderMap) -> bool {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    media.as_deref() == Some("application/json")
}

fn not_json() -> Response {
    bad_request("Unsupported Media Type: Only 'application/json' is allowed")
}

fn error(status: StatusCode, message: &str, kind: &str, param: Option<&str>) -> Response {
    let body = sse::error_body(message, kind, param, status.as_u16());
    json_response(status, body)
}

fn bad_request(message: &str) -> Response {
    let param = if message.contains("maximum context length") {
        Some("input_tokens")
    } else if message.contains("'max_tokens'") {
        Some("max_tokens")
    } else {
        None
    };
    error(StatusCode::BAD_REQUEST, message, "BadRequestError", param)
}

fn engine_dead() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ENGINE_DEAD,
        "InternalServerError",
        None,
    )
}

/// Aborts the engine request when the response is dropped before it finished (the
/// client disconnected).
struct AbortGuard {
    driver: Driver,
    id: u64,
    armed: bool,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            self.driver.abort(self.id);
        }
    }
}

/// One accepted request on its way out.
struct Flow {
    rx: UnboundedReceiver<Event>,
    guard: AbortGuard,
    ctx: Ctx,
    req: GenRequest,
    prompt_len: u32,
    seed: u64,
    perturb_rate: f64,
    emitted: u32,
    cached: Option<u32>,
}

async fn generate(s: Arc<AppState>, body: Bytes, chat: bool) -> Response {
    let req = match GenRequest::parse(&body, chat, s.options.force_include_usage) {
        Ok(r) => r,
        Err(msg) => return bad_request(&msg),
    };
    if let Some(m) = &req.model
        && !s.served.iter().any(|n| n == m)
    {
        let msg = format!("The model `{m}` does not exist.");
        return error(StatusCode::NOT_FOUND, &msg, "NotFoundError", Some("model"));
    }
    if s.driver.shared.is_dead() {
        return engine_dead();
    }
    let mut flow = match submit(&s, req).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if flow.req.stream {
        stream_response(flow, s.garbage_after)
    } else {
        flow.collect().await
    }
}

/// Hand the request to the engine and wait for its verdict.
async fn submit(s: &AppState, req: GenRequest) -> Result<Flow, Response> {
    let sim = sim_request(s, &req);
    let (id, prompt_len) = (sim.id, sim.prompt.len() as u32);
    let seed = crate::tokenize::text_seed(&sim.prompt);
    let (tx, mut rx) = unbounded_channel();
    if !s.driver.submit(sim, tx) {
        return Err(engine_dead());
    }
    let mut guard = AbortGuard {
        driver: s.driver.clone(),
        id,
        armed: true,
    };
    match rx.recv().await {
        Some(Event::Accepted) => {}
        Some(Event::Rejected(msg)) => {
            guard.armed = false;
            return Err(bad_request(&msg));
        }
        _ => return Err(engine_dead()),
    }
    Ok(Flow {
        rx,
        guard,
        ctx: Ctx {
            id: sse::new_id(req.chat),
            created: chrono::Utc::now().timestamp(),
            model: s.served[0].clone(),
            chat: req.chat,
        },
        req,
        prompt_len,
        seed,
        perturb_rate: s.perturb_rate,
        emitted: 0,
        cached: s.options.prompt_tokens_details.then_some(0),
    })
}

/// The engine's view of a request; without a limit, generation may run to the context
/// limit (vLLM's `get_max_tokens`).
fn sim_request(s: &AppState, req: &GenRequest) -> SimRequest {
    let prompt = req.prompt_tokens();
    let max_tokens = req
        .max_tokens
        .unwrap_or_else(|| s.max_model_len.saturating_sub(prompt.len() as u32));
    SimRequest {
        id: s.driver.next_id(),
        prompt,
        max_tokens,
        min_tokens: req.min_tokens,
        ignore_eos: req.ignore_eos,
    }
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::Stop => "stop",
    }
}

impl Flow {
    /// Text of the next `out.new_tokens` generated tokens.
    fn text(&mut self, out: &TokenOutput) -> String {
        if self.emitted == 0 && self.cached.is_some() {
            self.cached = Some(out.cached_tokens);
        }
        let text: String = (self.emitted..self.emitted + out.new_tokens)
            .map(|i| perturbed_piece(self.seed, i, self.perturb_rate))
            .collect();
        self.emitted += out.new_tokens;
        text
    }

    fn usage(&self) -> Usage {
        Usage::new(self.prompt_len, self.emitted, self.cached)
    }

    /// Non-streaming: wait for the end, answer once.
    async fn collect(&mut self) -> Response {
        let mut text = String::new();
        while let Some(ev) = self.rx.recv().await {
            match ev {
                Event::Tokens(out) => {
                    text.push_str(&self.text(&out));
                    if let Some(f) = out.finish {
                        self.guard.armed = false;
                        let body = self.ctx.full_response(&text, finish_str(f), self.usage());
                        return json_response(StatusCode::OK, body);
                    }
                }
                Event::Died(_) => break,
                Event::Accepted | Event::Rejected(_) => {}
            }
        }
        self.guard.armed = false;
        engine_dead()
    }

    /// Frames for every engine event ready now (waiting for the first), so outputs that
    /// piled up go out in one write; `true` when the stream is over.
    async fn next_frames(&mut self, garbage_after: Option<u32>) -> (String, bool) {
        let first = self.rx.recv().await;
        let (mut frames, mut over) = self.frames_for(first, garbage_after);
        while !over {
            let Ok(ev) = self.rx.try_recv() else { break };
            let (more, end) = self.frames_for(Some(ev), garbage_after);
            frames.push_str(&more);
            over = end;
        }
        (frames, over)
    }

    fn frames_for(&mut self, ev: Option<Event>, garbage_after: Option<u32>) -> (String, bool) {
        match ev {
            Some(Event::Tokens(out)) => self.token_frames(&out, garbage_after),
            Some(Event::Died(msg)) => (self.error_frames(&msg), true),
            Some(_) => (String::new(), false),
            None => (self.error_frames(ENGINE_DEAD), true),
        }
    }

    fn token_frames(&mut self, out: &TokenOutput, garbage_after: Option<u32>) -> (String, bool) {
        let text = self.text(out);
        let finish = out.finish.map(finish_str);
        let usage = self.req.continuous_usage.then(|| self.usage());
        let chunk = self.ctx.token_chunk(&text, finish, usage);
        if garbage_after.is_some_and(|n| self.emitted > n) {
            // Half a chunk, then the connection ends: no valid JSON, no [DONE].
            return (sse::frame(&chunk[..chunk.len() / 2]), true);
        }
        let mut frames = sse::frame(&chunk);
        if finish.is_some() {
            self.guard.armed = false;
            if self.req.include_usage {
                frames.push_str(&sse::frame(&self.ctx.usage_chunk(self.usage())));
            }
            frames.push_str(sse::DONE);
        }
        (frames, finish.is_some())
    }

    fn error_frames(&mut self, msg: &str) -> String {
        self.guard.armed = false;
        let err = sse::stream_error(msg, "InternalServerError", None, 500);
        format!("{}{}", sse::frame(&err), sse::DONE)
    }
}

enum Phase {
    Start,
    Tokens,
    Over,
}

/// The SSE response: chat's role chunk, one chunk per engine output, the usage chunk,
/// `[DONE]`. Dropping the body (client gone) aborts the request.
fn stream_response(flow: Flow, garbage_after: Option<u32>) -> Response {
    let state = (flow, Phase::Start);
    let stream = futures::stream::unfold(state, move |(mut flow, phase)| async move {
        let (frames, over) = match phase {
            Phase::Over => return None,
            Phase::Start if flow.req.chat => {
                let usage = flow.req.continuous_usage.then(|| flow.usage());
                (sse::frame(&flow.ctx.role_chunk(usage)), false)
            }
            _ => flow.next_frames(garbage_after).await,
        };
        let next = if over { Phase::Over } else { Phase::Tokens };
        Some((Ok::<Bytes, Infallible>(Bytes::from(frames)), (flow, next)))
    });
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    r
}
