//! vLLM's OpenAI-compatible response bodies, byte for byte where clients look.
//!
//! Source: vLLM's `entrypoints/openai/{completion,chat_completion}/serving.py` and
//! `protocol.py`. Stream chunks are pydantic `model_dump_json(exclude_unset=True)`, so a
//! field appears iff vLLM passed it explicitly, in class-definition order:
//!
//! - completions chunk: `id, object:"text_completion", created, model,
//!   choices[{index, text, logprobs, finish_reason, stop_reason, prompt_token_ids,
//!   token_ids}]` (+ `usage` with `continuous_usage_stats`);
//! - chat: a role-only first chunk `delta:{"role":"assistant","content":""}` with
//!   `logprobs, finish_reason` and a top-level `prompt_token_ids:null`; token chunks
//!   `{index, delta:{content}, logprobs, finish_reason:null, token_ids}`; the last token
//!   chunk adds `stop_reason` after `finish_reason`;
//! - the usage chunk (`stream_options.include_usage`) drops every `None`:
//!   `choices:[]`, `usage:{prompt_tokens, total_tokens, completion_tokens
//!   [, prompt_tokens_details:{cached_tokens}]}`;
//! - then `data: [DONE]`. Errors mid-stream are `json.dumps` (with its `", "` / `": "`
//!   separators) of `{"error": {message, type, param, code}}`.
//!
//! Non-streaming bodies are `model_dump()` (every field, `None` as `null`) rendered by
//! Starlette's compact JSON.
//!
//! With `n > 1` every chunk still carries one choice (its `index`), in the order the engine
//! produced them; chat opens with one role chunk per choice. `logprobs` and `stop_reason`
//! are filled when asked for / when a stop string or stop token ended the choice.

use serde::{Serialize, Serializer};

use super::logprobs::{ChatLogprobs, CompletionLogprobs};
use super::stop::StopReason;

/// `data: [DONE]` frame.
pub const DONE: &str = "data: [DONE]\n\n";

/// One SSE frame around a JSON text.
pub fn frame(json: &str) -> String {
    format!("data: {json}\n\n")
}

/// A field vLLM sets to `None` explicitly: serializes as `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Null;

impl Serialize for Null {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_unit()
    }
}

/// `usage` as vLLM's `UsageInfo` serializes (field order: prompt, total, completion).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Prompt + completion.
    pub total_tokens: u32,
    /// Completion tokens so far.
    pub completion_tokens: u32,
    /// `{"cached_tokens": N}` with `--enable-prompt-tokens-details`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<Details>,
}

/// `prompt_tokens_details`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Details {
    /// Prompt tokens served from the prefix cache.
    pub cached_tokens: u32,
}

impl Usage {
    /// Usage for `prompt` and `completion` tokens.
    pub fn new(prompt: u32, completion: u32, cached: Option<u32>) -> Usage {
        Usage {
            prompt_tokens: prompt,
            total_tokens: prompt + completion,
            completion_tokens: completion,
            prompt_tokens_details: cached.map(|c| Details { cached_tokens: c }),
        }
    }
}

/// `model_dump()` of `UsageInfo`: `prompt_tokens_details` present, `null` when unset.
#[derive(Serialize)]
struct FullUsage {
    prompt_tokens: u32,
    total_tokens: u32,
    completion_tokens: u32,
    prompt_tokens_details: Option<Details>,
}

impl From<Usage> for FullUsage {
    fn from(u: Usage) -> Self {
        FullUsage {
            prompt_tokens: u.prompt_tokens,
            total_tokens: u.total_tokens,
            completion_tokens: u.completion_tokens,
            prompt_tokens_details: u.prompt_tokens_details,
        }
    }
}

/// What every chunk of one response shares.
#[derive(Debug, Clone, PartialEq)]
pub struct Ctx {
    /// `cmpl-…` / `chatcmpl-…`.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// Model name as requested.
    pub model: String,
    /// Chat API (else completions).
    pub chat: bool,
}

/// A fresh response id with vLLM's prefix and `uuid4().hex` body.
pub fn new_id(chat: bool) -> String {
    use rand::RngExt;
    let hex: u128 = rand::rng().random();
    let prefix = if chat { "chatcmpl" } else { "cmpl" };
    format!("{prefix}-{hex:032x}")
}

#[derive(Serialize)]
struct Chunk<'a, C: Serialize> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    choices: Vec<C>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_token_ids: Option<Null>,
}

/// A choice's logprobs in its API's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Logprobs {
    /// `/v1/completions`.
    Completion(CompletionLogprobs),
    /// `/v1/chat/completions`.
    Chat(ChatLogprobs),
}

/// What one choice carries in a chunk or a whole response.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChoiceOut<'a> {
    /// `index` (which of the `n` sequences).
    pub index: u32,
    /// Text (chunk: the delta).
    pub text: &'a str,
    /// `logprobs`, when asked for.
    pub logprobs: Option<&'a Logprobs>,
    /// `finish_reason` (a chunk's is `None` until the last).
    pub finish: Option<&'a str>,
    /// `stop_reason`: the stop string or token id that ended the sequence.
    pub stop_reason: Option<&'a StopReason>,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<&'a Logprobs>,
    finish_reason: Option<&'a str>,
    stop_reason: Option<&'a StopReason>,
    prompt_token_ids: Null,
    token_ids: Null,
}

#[derive(Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    content: &'a str,
}

#[derive(Serialize)]
struct ChatChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<&'a Logprobs>,
    finish_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_reason: Option<Option<&'a StopReason>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ids: Option<Null>,
}

#[derive(Serialize)]
struct NoChoice;

impl Ctx {
    fn object(&self, stream: bool) -> &'static str {
        match (self.chat, stream) {
            (true, true) => "chat.completion.chunk",
            (true, false) => "chat.completion",
            (false, _) => "text_completion",
        }
    }

    fn chunk<C: Serialize>(&self, choices: Vec<C>, usage: Option<Usage>) -> Chunk<'_, C> {
        Chunk {
            id: &self.id,
            object: self.object(true),
            created: self.created,
            model: &self.model,
            choices,
            usage,
            prompt_token_ids: None,
        }
    }

    /// Chat's first chunk of choice `index`: role only.
    pub fn role_chunk(&self, index: u32, usage: Option<Usage>) -> String {
        let choice = ChatChoice {
            index,
            delta: Delta {
                role: Some("assistant"),
                content: "",
            },
            logprobs: None,
            finish_reason: None,
            stop_reason: None,
            token_ids: None,
        };
        let mut c = self.chunk(vec![choice], usage);
        c.prompt_token_ids = Some(Null);
        to_json(&c)
    }

    /// Chat's `echo` chunk of choice `index`: the last message's content.
    pub fn echo_chunk(&self, index: u32, content: &str, usage: Option<Usage>) -> String {
        let choice = ChatChoice {
            index,
            delta: Delta {
                role: None,
                content,
            },
            logprobs: None,
            finish_reason: None,
            stop_reason: None,
            token_ids: None,
        };
        to_json(&self.chunk(vec![choice], usage))
    }

    /// A token chunk of one choice; `finish` on its last one.
    pub fn token_chunk(&self, c: ChoiceOut<'_>, usage: Option<Usage>) -> String {
        if self.chat {
            let choice = ChatChoice {
                index: c.index,
                delta: Delta {
                    role: None,
                    content: c.text,
                },
                logprobs: c.logprobs,
                finish_reason: c.finish,
                stop_reason: c.finish.map(|_| c.stop_reason),
                token_ids: Some(Null),
            };
            return to_json(&self.chunk(vec![choice], usage));
        }
        let choice = CompletionChoice {
            index: c.index,
            text: c.text,
            logprobs: c.logprobs,
            finish_reason: c.finish,
            stop_reason: c.stop_reason,
            prompt_token_ids: Null,
            token_ids: Null,
        };
        to_json(&self.chunk(vec![choice], usage))
    }

    /// The final usage chunk (`choices: []`).
    pub fn usage_chunk(&self, usage: Usage) -> String {
        to_json(&self.chunk(Vec::<NoChoice>::new(), Some(usage)))
    }

    /// A whole non-streaming response; each choice's `finish` is set.
    pub fn full_response(&self, choices: &[ChoiceOut<'_>], usage: Usage) -> String {
        if self.chat {
            self.full_chat(choices, usage)
        } else {
            self.full_completion(choices, usage)
        }
    }

    fn full_chat(&self, choices: &[ChoiceOut<'_>], usage: Usage) -> String {
        let choices = choices
            .iter()
            .map(|c| FullChatChoice {
                index: c.index,
                message: Message {
                    role: "assistant",
                    content: c.text,
                    refusal: Null,
                    annotations: Null,
                    audio: Null,
                    function_call: Null,
                    reasoning: Null,
                },
                logprobs: c.logprobs,
                finish_reason: c.finish.unwrap_or("stop"),
                stop_reason: c.stop_reason,
                token_ids: Null,
            })
            .collect();
        to_json(&FullChat {
            id: &self.id,
            object: self.object(false),
            created: self.created,
            model: &self.model,
            choices,
            service_tier: Null,
            system_fingerprint: Null,
            usage: usage.into(),
            prompt_logprobs: Null,
            prompt_token_ids: Null,
            kv_transfer_params: Null,
        })
    }

    fn full_completion(&self, choices: &[ChoiceOut<'_>], usage: Usage) -> String {
        let choices = choices
            .iter()
            .map(|c| FullCompletionChoice {
                index: c.index,
                text: c.text,
                logprobs: c.logprobs,
                finish_reason: c.finish.unwrap_or("length"),
                stop_reason: c.stop_reason,
                token_ids: Null,
                prompt_logprobs: Null,
                prompt_token_ids: Null,
            })
            .collect();
        to_json(&FullCompletion {
            id: &self.id,
            object: self.object(false),
            created: self.created,
            model: &self.model,
            choices,
            service_tier: Null,
            system_fingerprint: Null,
            usage: usage.into(),
            kv_transfer_params: Null,
        })
    }
}

#[derive(Serialize)]
struct FullCompletionChoice<'a> {
    index: u32,
    text: &'a str,
    logprobs: Option<&'a Logprobs>,
    finish_reason: &'a str,
    stop_reason: Option<&'a StopReason>,
    token_ids: Null,
    prompt_logprobs: Null,
    prompt_token_ids: Null,
}

#[derive(Serialize)]
struct FullCompletion<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    choices: Vec<FullCompletionChoice<'a>>,
    service_tier: Null,
    system_fingerprint: Null,
    usage: FullUsage,
    kv_transfer_params: Null,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
    refusal: Null,
    annotations: Null,
    audio: Null,
    function_call: Null,
    reasoning: Null,
}

#[derive(Serialize)]
struct FullChatChoice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<&'a Logprobs>,
    finish_reason: &'a str,
    stop_reason: Option<&'a StopReason>,
    token_ids: Null,
}

#[derive(Serialize)]
struct FullChat<'a> {
    id: &'a str,
    object: &'a str,
    created: i64,
    model: &'a str,
    choices: Vec<FullChatChoice<'a>>,
    service_tier: Null,
    system_fingerprint: Null,
    usage: FullUsage,
    prompt_logprobs: Null,
    prompt_token_ids: Null,
    kv_transfer_params: Null,
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

#[derive(Serialize)]
struct ErrorInfo<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: u16,
}

#[derive(Serialize)]
struct ErrorResponse<'a> {
    error: ErrorInfo<'a>,
}

/// vLLM's `ErrorResponse` as a response body (compact): `{"error": {message, type,
/// param, code}}`.
pub fn error_body(message: &str, kind: &str, param: Option<&str>, code: u16) -> String {
    to_json(&ErrorResponse {
        error: ErrorInfo {
            message,
            kind,
            param,
            code,
        },
    })
}

/// The same object as `json.dumps` writes it into a stream (`", "`, `": "`, ASCII only).
pub fn stream_error(message: &str, kind: &str, param: Option<&str>, code: u16) -> String {
    let param = param.map_or("null".to_string(), py_json_str);
    format!(
        "{{\"error\": {{\"message\": {}, \"type\": {}, \"param\": {param}, \"code\": {code}}}}}",
        py_json_str(message),
        py_json_str(kind)
    )
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii=True`).
pub fn py_json_str(s: &str) -> String {
    let compact = serde_json::Value::String(s.to_string()).to_string();
    let mut out = String::with_capacity(compact.len());
    for c in compact.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(t: &str) -> ChoiceOut<'_> {
        ChoiceOut {
            text: t,
            ..ChoiceOut::default()
        }
    }

    fn ctx(chat: bool) -> Ctx {
        Ctx {
            id: "cmpl-1".into(),
            created: 7,
            model: "m".into(),
            chat,
        }
    }

    #[test]
    fn completion_chunks() {
        assert_eq!(
            ctx(false).token_chunk(text(" the"), None),
            r#"{"id":"cmpl-1","object":"text_completion","created":7,"model":"m","choices":[{"index":0,"text":" the","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]}"#
        );
        assert_eq!(
            ctx(false).usage_chunk(Usage::new(3, 2, None)),
            r#"{"id":"cmpl-1","object":"text_completion","created":7,"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}"#
        );
    }

    #[test]
    fn chat_chunks() {
        assert_eq!(
            ctx(true).role_chunk(0, None),
            r#"{"id":"cmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}"#
        );
        assert_eq!(
            ctx(true).token_chunk(
                ChoiceOut {
                    finish: Some("length"),
                    ..text(".")
                },
                Some(Usage::new(3, 1, None))
            ),
            r#"{"id":"cmpl-1","object":"chat.completion.chunk","created":7,"model":"m","choices":[{"index":0,"delta":{"content":"."},"logprobs":null,"finish_reason":"length","stop_reason":null,"token_ids":null}],"usage":{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1}}"#
        );
        assert!(
            ctx(true)
                .usage_chunk(Usage::new(3, 1, Some(0)))
                .ends_with(r#""usage":{"prompt_tokens":3,"total_tokens":4,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":0}}}"#)
        );
    }

    #[test]
    fn choices_carry_index_and_stop_reason() {
        let r = StopReason::Text(" the".into());
        let c = ChoiceOut {
            index: 1,
            text: "a",
            finish: Some("stop"),
            stop_reason: Some(&r),
            ..ChoiceOut::default()
        };
        assert!(ctx(false).token_chunk(c, None).contains(
            r#"{"index":1,"text":"a","logprobs":null,"finish_reason":"stop","stop_reason":" the","prompt_token_ids":null,"token_ids":null}"#
        ));
        assert!(
            ctx(true)
                .token_chunk(c, None)
                .contains(r#""finish_reason":"stop","stop_reason":" the","token_ids":null}"#)
        );
        let id = StopReason::Token(5);
        let other = ChoiceOut {
            finish: Some("length"),
            ..text("b")
        };
        let full = ctx(false).full_response(
            &[
                ChoiceOut {
                    stop_reason: Some(&id),
                    ..c
                },
                other,
            ],
            Usage::new(1, 2, None),
        );
        assert!(full.contains(
            r#""index":1,"text":"a","logprobs":null,"finish_reason":"stop","stop_reason":5"#
        ));
        assert!(full.contains(
            r#""index":0,"text":"b","logprobs":null,"finish_reason":"length","stop_reason":null"#
        ));
        assert!(ctx(true).echo_chunk(2, "hi", None).contains(
            r#""choices":[{"index":2,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]}"#
        ));
    }

    #[test]
    fn errors() {
        assert_eq!(
            error_body(
                "The model `x` does not exist.",
                "NotFoundError",
                Some("model"),
                404
            ),
            r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","param":"model","code":404}}"#
        );
        assert_eq!(
            stream_error("bad é", "InternalServerError", None, 500),
            r#"{"error": {"message": "bad \u00e9", "type": "InternalServerError", "param": null, "code": 500}}"#
        );
        assert!(new_id(true).starts_with("chatcmpl-"));
        assert_eq!(new_id(false).len(), "cmpl-".len() + 32);
    }
}
