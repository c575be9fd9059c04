//! The HTTP side of `forge sim serve`: vLLM's routes (`/health`, `/v1/models`,
//! `/version`, `/metrics`, `/v1/completions`, `/v1/chat/completions`, `/tokenize`,
//! `/detokenize`) over the engine thread, with vLLM's status codes and bodies, and
//! uvicorn's access log. Bodies are read by [`super::request`] and
//! [`super::tokenize_api`]; a generation request becomes `n` engine sequences here and its
//! response is assembled by [`super::flow`].

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tokio::sync::mpsc::unbounded_channel;

use super::api_error::BadRequest;
use super::driver::{Driver, Event};
use super::flow::{AbortGuard, Echo, Flow, Sequence, Setup};
use super::interface::SimRequest;
use super::reply::{bad_request, engine_dead, engine_rejected, json_response, unknown_model};
use super::request::{GenRequest, ParseOptions, Prompt};
use super::sampling::LogprobLimits;
use super::sse::{self, Ctx};
use super::stop::StopRule;
use super::tokenize_api::{DetokenizeRequest, TokenizeRequest, Vocab, unknown_id};
use super::vlog;
use crate::engine::vllm::flags::ServerOptions;
use crate::recipe::EngineKind;
use crate::tokenize::{choice_seed, perturbed_piece, pieces, text_seed};

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
    /// `--max-logprobs` and the model's vocabulary size.
    pub logprob_limits: LogprobLimits,
    /// The ids `/detokenize` can reverse.
    pub vocab: Vocab,
    /// The framework this server stands in for (its routes and metric names).
    pub framework: crate::recipe::EngineKind,
    /// `/metrics` is served (SGLang needs `--enable-metrics`).
    pub metrics: bool,
    /// How `/start_profile` is enabled (`None`: the routes answer 404).
    pub profiling: Option<super::profile::Enabling>,
}

impl AppState {
    /// True when `model` is one of the served names.
    pub fn serves(&self, model: &str) -> bool {
        self.served.iter().any(|n| n == model)
    }

    fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            force_usage: self.options.force_include_usage,
            logprobs: self.logprob_limits,
        }
    }
}

/// The router.
pub fn router(state: Arc<AppState>) -> Router {
    let common = Router::new()
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/version", get(version))
        .route("/metrics", get(metrics));
    // The routes only one framework has: vLLM's dev-mode prefix-cache reset, SGLang's
    // cache flush (GET or POST) and generation-free readiness, trtllm-serve's Prometheus.
    // Profiling: SGLang always mounts it (GET or POST); vLLM only with
    // `--profiler-config` (POST); trtllm-serve has none.
    let own = match state.framework {
        EngineKind::Sglang => common
            .route("/flush_cache", get(flush_cache).post(flush_cache))
            .route("/ready", get(health))
            .route("/health_generate", get(health))
            .route("/start_profile", get(start_profile).post(start_profile))
            .route("/stop_profile", get(stop_profile).post(stop_profile)),
        EngineKind::Trtllm => common.route("/prometheus/metrics", get(prometheus_metrics)),
        _ if state.profiling.is_some() => common
            .route("/reset_prefix_cache", post(reset_prefix_cache))
            .route("/start_profile", post(start_profile))
            .route("/stop_profile", post(stop_profile)),
        _ => common.route("/reset_prefix_cache", post(reset_prefix_cache)),
    };
    own.route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/tokenize", post(tokenize))
        .route("/detokenize", post(detokenize))
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

async fn not_found() -> Response {
    json_response(StatusCode::NOT_FOUND, r#"{"detail":"Not Found"}"#.into())
}

/// `/start_profile`: vLLM (`api_router.py` `start_profile`) answers an empty 200; SGLang
/// (`http_server.py` `start_profile_async`) reads `ProfileReqInput` and answers
/// `Start profiling.`, or 500 when a capture already runs.
async fn start_profile(State(s): State<Arc<AppState>>, body: Bytes) -> Response {
    let Some(how) = s.profiling.clone() else {
        return not_found().await;
    };
    let sglang = s.framework == EngineKind::Sglang;
    let req = if sglang && !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<super::profile::StartRequest>(&body) {
            Ok(r) => r,
            Err(e) => {
                let detail = serde_json::json!({"detail": [{"msg": e.to_string()}]});
                return json_response(StatusCode::UNPROCESSABLE_ENTITY, detail.to_string());
            }
        }
    } else {
        super::profile::StartRequest::default()
    };
    if !sglang {
        vlog::info("api_router.py:27", "Starting profiler...");
    }
    match s.driver.start_profile(how, req).await {
        Ok(()) if sglang => text(StatusCode::OK, "Start profiling.\n"),
        Ok(()) => {
            vlog::info("api_router.py:29", "Profiler started.");
            StatusCode::OK.into_response()
        }
        Err(e) => profile_failed(&e),
    }
}

/// `/stop_profile`: writes the trace; vLLM answers an empty 200, SGLang `Stop profiling.
/// This will take some time.`, or 500 when no capture runs.
async fn stop_profile(State(s): State<Arc<AppState>>) -> Response {
    if s.profiling.is_none() {
        return not_found().await;
    }
    let sglang = s.framework == EngineKind::Sglang;
    if !sglang {
        vlog::info("api_router.py:35", "Stopping profiler...");
    }
    match s.driver.stop_profile().await {
        Ok(_) if sglang => text(
            StatusCode::OK,
            "Stop profiling. This will take some time.\n",
        ),
        Ok(_) => {
            vlog::info("api_router.py:37", "Profiler stopped.");
            StatusCode::OK.into_response()
        }
        Err(e) => profile_failed(&e),
    }
}

fn profile_failed(e: &super::profile::ProfileError) -> Response {
    vlog::emit(
        vlog::Proc::Api,
        vlog::Level::Error,
        "http_server.py:1",
        &format!("RuntimeError: {e}"),
    );
    text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
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

/// SGLang's `/flush_cache`: drops the radix cache.
async fn flush_cache(State(s): State<Arc<AppState>>) -> Response {
    s.driver.reset_prefix_cache();
    "Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n".into_response()
}

/// trtllm-serve's Prometheus text (`/metrics` there is JSON iteration statistics).
async fn prometheus_metrics(State(s): State<Arc<AppState>>) -> Response {
    prometheus_text(&s)
}

async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    match s.framework {
        EngineKind::Trtllm => return json_response(StatusCode::OK, "[]".into()),
        EngineKind::Sglang if !s.metrics => return StatusCode::NOT_FOUND.into_response(),
        _ => {}
    }
    prometheus_text(&s)
}

fn prometheus_text(s: &AppState) -> Response {
    let text = {
        let m = s.driver.shared.metrics();
        match s.framework {
            EngineKind::Vllm | EngineKind::Llamacpp => super::prom::render(&m, &s.served[0]),
            other => super::twin::prom::render(other, &m, &s.served[0]),
        }
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
            // Each framework's `ModelCard` default (SGLang's and TensorRT-LLM's protocols
            // are ports of vLLM's with their own name).
            owned_by: match s.framework {
                EngineKind::Sglang => "sglang",
                EngineKind::Trtllm => "tensorrt_llm",
                _ => "vllm",
            },
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

/// `POST /tokenize`.
async fn tokenize(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    let req = match TokenizeRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if let Some(m) = req.model.as_deref().filter(|m| !s.serves(m)) {
        return unknown_model(m);
    }
    json_response(StatusCode::OK, req.answer(&s.vocab, s.max_model_len))
}

/// `POST /detokenize`.
async fn detokenize(State(s): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    if !is_json(&headers) {
        return not_json();
    }
    let req = match DetokenizeRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if let Some(m) = req.model.as_deref().filter(|m| !s.serves(m)) {
        return unknown_model(m);
    }
    match req.answer(&s.vocab) {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => bad_request(&e),
    }
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
    bad_request(&BadRequest::new(
        "Unsupported Media Type: Only 'application/json' is allowed",
    ))
}

async fn generate(s: Arc<AppState>, body: Bytes, chat: bool) -> Response {
    let req = match GenRequest::parse(&body, chat, s.parse_options()) {
        Ok(r) => r,
        Err(e) => return bad_request(&e),
    };
    if let Some(m) = req.model.as_deref().filter(|m| !s.serves(m)) {
        return unknown_model(m);
    }
    if s.driver.shared.is_dead() {
        return engine_dead();
    }
    let echo = match echo_of(&s, &req) {
        Ok(e) => e,
        Err(e) => return bad_request(&e),
    };
    let stream = req.stream;
    let mut flow = match submit(&s, req, echo).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    if stream {
        flow.stream()
    } else {
        flow.collect().await
    }
}

/// What `echo` returns: the completions prompt (token-id prompts through the vocabulary
/// this server knows), or chat's last message when it is the assistant's.
fn echo_of(s: &AppState, req: &GenRequest) -> Result<Option<Echo>, BadRequest> {
    if !req.sampling.echo {
        return Ok(None);
    }
    let salt = text_seed(&req.prompt_tokens());
    let echo = match &req.prompt {
        Prompt::Text(t) => Some(Echo {
            text: t.clone(),
            pieces: pieces(t).map(String::from).collect(),
            salt,
        }),
        Prompt::Tokens(ids) => {
            let p = s.vocab.pieces(ids).map_err(unknown_id)?;
            Some(Echo {
                text: p.concat(),
                pieces: p,
                salt,
            })
        }
        Prompt::Chat(m) => m.last().filter(|m| m.role == "assistant").map(|m| Echo {
            text: m.content.clone(),
            pieces: Vec::new(),
            salt,
        }),
    };
    Ok(echo)
}

/// Hand the request's `n` sequences to the engine and wait for its verdict.
async fn submit(s: &AppState, req: GenRequest, echo: Option<Echo>) -> Result<Flow, Response> {
    let (sims, sequences) = sequences(s, &req);
    let prompt_len = sims.first().map_or(0, |r| r.prompt.len() as u32);
    let ids: Vec<u64> = sims.iter().map(|r| r.id).collect();
    let hold = stop_rule(&req).hold_back();
    let (tx, mut rx) = unbounded_channel();
    if !s.driver.submit(sims, tx) {
        return Err(engine_dead());
    }
    // Armed until the response ends: a refusal aborts the sequences already taken.
    let guard = AbortGuard::new(s.driver.clone(), ids.clone());
    for _ in &ids {
        match rx.recv().await {
            Some(Event::Accepted) => {}
            Some(Event::Rejected(msg)) => return Err(engine_rejected(&msg)),
            _ => return Err(engine_dead()),
        }
    }
    let setup = Setup {
        ctx: Ctx {
            id: sse::new_id(req.chat),
            created: chrono::Utc::now().timestamp(),
            model: s.served[0].clone(),
            chat: req.chat,
        },
        prompt_len,
        perturb_rate: s.perturb_rate,
        cached: s.options.prompt_tokens_details.then_some(0),
        echo,
        hold,
        garbage_after: s.garbage_after,
        req,
    };
    Ok(Flow::new(rx, guard, setup, sequences))
}

fn stop_rule(req: &GenRequest) -> StopRule<'_> {
    StopRule {
        strings: &req.sampling.stop,
        token_ids: &req.sampling.stop_token_ids,
        include: req.sampling.include_stop_str,
        min_tokens: req.min_tokens,
    }
}

/// The engine's view of the request's `n` sequences: without a limit, generation may run
/// to the context limit (vLLM's `get_max_tokens`); each sequence's stop is found in its
/// own text.
fn sequences(s: &AppState, req: &GenRequest) -> (Vec<SimRequest>, Vec<Sequence>) {
    let prompt = req.prompt_tokens();
    let seed = text_seed(&prompt);
    let max_tokens = if req.echo_only() {
        1
    } else {
        req.max_tokens
            .unwrap_or_else(|| s.max_model_len.saturating_sub(prompt.len() as u32))
    };
    let rule = stop_rule(req);
    (0..req.sampling.n)
        .map(|choice| {
            let id = s.driver.next_id();
            let seed = choice_seed(seed, choice);
            let stop = if req.echo_only() {
                None
            } else {
                rule.find(max_tokens, |i| perturbed_piece(seed, i, s.perturb_rate))
            };
            let sim = SimRequest {
                id,
                prompt: prompt.clone(),
                max_tokens,
                min_tokens: req.min_tokens,
                ignore_eos: req.ignore_eos,
                choice,
                stop_at: stop.as_ref().map(|h| h.tokens),
            };
            (sim, Sequence { id, seed, stop })
        })
        .unzip()
}
