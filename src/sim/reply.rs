//! HTTP replies shared by the simulator's routes: JSON bodies with vLLM's content type, and
//! vLLM's error responses (`{"error": {message, type, param, code}}`, see [`super::sse`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::api_error::BadRequest;
use super::driver::ENGINE_DEAD;
use super::sse;

/// A JSON body.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// vLLM's `ErrorResponse`.
pub fn error(status: StatusCode, message: &str, kind: &str, param: Option<&str>) -> Response {
    let body = sse::error_body(message, kind, param, status.as_u16());
    json_response(status, body)
}

/// A 400 (`BadRequestError`).
pub fn bad_request(e: &BadRequest) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        &e.message,
        "BadRequestError",
        e.param.as_deref(),
    )
}

/// A 400 for a message the engine gave (its context checks name `input_tokens` or
/// `max_tokens`).
pub fn engine_rejected(message: &str) -> Response {
    let param = if message.contains("maximum context length") {
        Some("input_tokens")
    } else if message.contains("'max_tokens'") {
        Some("max_tokens")
    } else {
        None
    };
    error(StatusCode::BAD_REQUEST, message, "BadRequestError", param)
}

/// 404 for a model this server does not serve.
pub fn unknown_model(model: &str) -> Response {
    let msg = format!("The model `{model}` does not exist.");
    error(StatusCode::NOT_FOUND, &msg, "NotFoundError", Some("model"))
}

/// 500 once the engine has died.
pub fn engine_dead() -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ENGINE_DEAD,
        "InternalServerError",
        None,
    )
}
