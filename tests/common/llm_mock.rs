//! A scripted LLM provider on loopback for tests: serves recorded replies in order, in the
//! Anthropic Messages or OpenAI chat-completions shape, and counts what it received.
//!
//! Scripts come from code or from a recorded conversation file
//! (`tests/fixtures/llm/conversation.json`): `{"replies": [{"text", "input_tokens",
//! "output_tokens"} | {"status", "body", "retry_after_ms"}]}`. Past the end of the script
//! every request gets HTTP 500 `script exhausted`, so a test can tell an extra call apart.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Which API the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `POST /v1/messages`.
    Anthropic,
    /// `POST /v1/chat/completions`.
    OpenAi,
}

impl Shape {
    /// The `--llm` value a test uses with this shape.
    pub fn llm(self) -> &'static str {
        match self {
            Shape::Anthropic => "anthropic/claude-sonnet-4-6",
            Shape::OpenAi => "openai/gpt-4o",
        }
    }

    /// The key variable of that provider.
    pub fn key_env(self) -> &'static str {
        match self {
            Shape::Anthropic => "ANTHROPIC_API_KEY",
            Shape::OpenAi => "OPENAI_API_KEY",
        }
    }
}

/// One scripted answer.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Scripted {
    /// A 200 with this text and usage.
    Reply {
        /// The model's text.
        text: String,
        /// Reported prompt tokens.
        #[serde(default)]
        input_tokens: u64,
        /// Reported completion tokens.
        #[serde(default)]
        output_tokens: u64,
    },
    /// An error status.
    Status {
        /// HTTP status.
        status: u16,
        /// Body (JSON text or anything).
        #[serde(default)]
        body: String,
        /// `retry-after-ms` header, if any.
        #[serde(default)]
        retry_after_ms: Option<u64>,
    },
}

/// A successful reply.
pub fn reply(text: &str, input_tokens: u64, output_tokens: u64) -> Scripted {
    Scripted::Reply {
        text: text.to_string(),
        input_tokens,
        output_tokens,
    }
}

/// An error status with a body.
pub fn status(status: u16, body: &str) -> Scripted {
    Scripted::Status {
        status,
        body: body.to_string(),
        retry_after_ms: None,
    }
}

/// A recorded conversation file.
#[derive(Debug, Clone, Deserialize)]
pub struct Conversation {
    /// What it records.
    #[serde(default)]
    pub description: String,
    /// The replies, in order.
    pub replies: Vec<Scripted>,
}

/// Load a recorded conversation.
pub fn load_conversation(p: &Path) -> Conversation {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The provider's response body for a reply.
pub fn envelope(shape: Shape, text: &str, input_tokens: u64, output_tokens: u64) -> Value {
    match shape {
        Shape::Anthropic => json!({
            "id": "msg_test", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}
        }),
        Shape::OpenAi => json!({
            "id": "chatcmpl-test", "object": "chat.completion", "model": "gpt-4o",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens}
        }),
    }
}

struct Script {
    shape: Shape,
    steps: Vec<Scripted>,
    next: Arc<AtomicUsize>,
}

impl Respond for Script {
    fn respond(&self, _req: &Request) -> ResponseTemplate {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        match self.steps.get(i) {
            Some(Scripted::Reply {
                text,
                input_tokens,
                output_tokens,
            }) => ResponseTemplate::new(200).set_body_json(envelope(
                self.shape,
                text,
                *input_tokens,
                *output_tokens,
            )),
            Some(Scripted::Status {
                status,
                body,
                retry_after_ms,
            }) => {
                let mut t = ResponseTemplate::new(*status).set_body_string(body.clone());
                if let Some(ms) = retry_after_ms {
                    t = t.insert_header("retry-after-ms", ms.to_string().as_str());
                }
                t
            }
            None => ResponseTemplate::new(500).set_body_string("script exhausted"),
        }
    }
}

/// A running scripted provider.
pub struct ScriptedLlm {
    /// The server (dropped with this value).
    pub server: MockServer,
    /// Shape it speaks.
    pub shape: Shape,
    served: Arc<AtomicUsize>,
}

impl ScriptedLlm {
    /// Start a provider that answers `steps` in order.
    pub async fn start(shape: Shape, steps: Vec<Scripted>) -> ScriptedLlm {
        let server = MockServer::start().await;
        let served = Arc::new(AtomicUsize::new(0));
        let route = match shape {
            Shape::Anthropic => "/v1/messages",
            Shape::OpenAi => "/v1/chat/completions",
        };
        Mock::given(method("POST"))
            .and(path(route))
            .respond_with(Script {
                shape,
                steps,
                next: served.clone(),
            })
            .mount(&server)
            .await;
        ScriptedLlm {
            server,
            shape,
            served,
        }
    }

    /// `--llm-base-url` for this server.
    pub fn base_url(&self) -> String {
        match self.shape {
            Shape::Anthropic => self.server.uri(),
            Shape::OpenAi => format!("{}/v1", self.server.uri()),
        }
    }

    /// Requests answered from the script route so far.
    pub fn calls(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }

    /// Every request received (any route), in order.
    pub async fn requests(&self) -> Vec<Request> {
        self.server.received_requests().await.unwrap_or_default()
    }

    /// JSON bodies of every request received.
    pub async fn bodies(&self) -> Vec<Value> {
        self.requests()
            .await
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }
}
