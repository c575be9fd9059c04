//! The request side of `/v1/completions` and `/v1/chat/completions`: the body fields the
//! simulator honours (`model`, `prompt`/`messages`, `stream`, `stream_options`,
//! `max_tokens`/`max_completion_tokens`, `min_tokens`, `ignore_eos`, and the sampling
//! options of [`super::sampling`]) with vLLM's defaults and checks, the refusal of what it
//! cannot model ([`super::unsupported`]), and the prompt's token ids.

use serde_json::Value;

use super::api_error::BadRequest;
use super::body;
use super::sampling::{self, LogprobLimits, Sampling};
use super::unsupported;
use crate::tokenize::tokenize;
use crate::workload::ChatMessage;
use crate::workload::render_chat;

/// What the engine is asked to continue.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A completion prompt.
    Text(String),
    /// A completion prompt given as token ids.
    Tokens(Vec<u32>),
    /// A chat conversation.
    Chat(Vec<ChatMessage>),
}

/// A generation request as the simulator reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequest {
    /// Chat API.
    pub chat: bool,
    /// `model` (`None`: the served model).
    pub model: Option<String>,
    /// `stream`.
    pub stream: bool,
    /// Final usage chunk (`stream_options.include_usage`, or `--enable-force-include-usage`).
    pub include_usage: bool,
    /// Usage in every chunk (`stream_options.continuous_usage_stats`).
    pub continuous_usage: bool,
    /// `max_tokens` / `max_completion_tokens` (`None`: up to the context limit).
    pub max_tokens: Option<u32>,
    /// `min_tokens`.
    pub min_tokens: u32,
    /// `ignore_eos`.
    pub ignore_eos: bool,
    /// The prompt.
    pub prompt: Prompt,
    /// `n`, stop conditions, logprobs, echo.
    pub sampling: Sampling,
}

/// vLLM's default `max_tokens` for `/v1/completions`.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// Server settings a body is read against.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// `--enable-force-include-usage`.
    pub force_usage: bool,
    /// `--max-logprobs` and the vocabulary.
    pub logprobs: LogprobLimits,
}

impl GenRequest {
    /// Parse a body; errors are vLLM's 400s (or the simulator's refusals).
    pub fn parse(body: &[u8], chat: bool, opts: ParseOptions) -> Result<GenRequest, BadRequest> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| BadRequest::new(format!("JSON decode error: {e}")))?;
        if !v.is_object() {
            return Err(BadRequest::new(
                "Input should be a valid dictionary or object",
            ));
        }
        let stream = body::boolean(&v, "stream")?.unwrap_or(false);
        let (include_usage, continuous_usage) = stream_options(&v, stream, opts.force_usage)?;
        let sampling = sampling::parse(&v, chat, opts.logprobs)?;
        unsupported::check(&v, chat, sampling.n)?;
        Ok(GenRequest {
            chat,
            model: v.get("model").and_then(Value::as_str).map(String::from),
            stream,
            include_usage,
            continuous_usage,
            max_tokens: max_tokens(&v, chat)?,
            min_tokens: body::uint(&v, "min_tokens")?.unwrap_or(0),
            ignore_eos: body::boolean(&v, "ignore_eos")?.unwrap_or(false),
            prompt: if chat { messages(&v)? } else { prompt(&v)? },
            sampling,
        })
    }

    /// Prompt token ids (chat: the rendered template).
    pub fn prompt_tokens(&self) -> Vec<u32> {
        match &self.prompt {
            Prompt::Text(t) => tokenize(t),
            Prompt::Tokens(t) => t.clone(),
            Prompt::Chat(m) => tokenize(&render_chat(m)),
        }
    }

    /// Completions with `echo` and `max_tokens: 0`: only the prompt comes back (vLLM then
    /// generates one token and drops it).
    pub fn echo_only(&self) -> bool {
        !self.chat && self.sampling.echo && self.max_tokens == Some(0)
    }
}

/// `(include_usage, continuous_usage_stats)`. vLLM refuses stream options that are
/// truthy in Python (`{}` is not) on a request that does not stream.
fn stream_options(v: &Value, stream: bool, force: bool) -> Result<(bool, bool), BadRequest> {
    let Some(o) = body::field(v, "stream_options") else {
        return Ok((force, false));
    };
    if !stream {
        if o.as_object().is_some_and(|m| m.is_empty()) {
            return Ok((force, false));
        }
        return Err(BadRequest::vllm(
            "Stream options can only be defined when `stream=True`.",
            "stream_options",
            None,
        ));
    }
    let include = o
        .get("include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(true)
        || force;
    let continuous = o
        .get("continuous_usage_stats")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok((include, include && continuous))
}

fn max_tokens(v: &Value, chat: bool) -> Result<Option<u32>, BadRequest> {
    if chat {
        let mct = body::uint(v, "max_completion_tokens")?;
        return Ok(mct.or(body::uint(v, "max_tokens")?));
    }
    match v.get("max_tokens") {
        None => Ok(Some(COMPLETIONS_DEFAULT_MAX_TOKENS)),
        Some(_) => body::uint(v, "max_tokens"),
    }
}

fn prompt(v: &Value) -> Result<Prompt, BadRequest> {
    let empty = || {
        BadRequest::vllm(
            "Either prompt or prompt_embeds must be provided and non-empty.",
            "prompt",
            None,
        )
    };
    match v.get("prompt") {
        Some(Value::String(s)) if !s.is_empty() => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(items)) if !items.is_empty() => array_prompt(items),
        _ => Err(empty()),
    }
}

fn array_prompt(items: &[Value]) -> Result<Prompt, BadRequest> {
    if let [Value::String(s)] = items {
        return Ok(Prompt::Text(s.clone()));
    }
    let ids: Option<Vec<u32>> = items
        .iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect();
    ids.map(Prompt::Tokens).ok_or_else(|| {
        BadRequest::new("The simulator serves one prompt per request (a string or token ids).")
    })
}

fn messages(v: &Value) -> Result<Prompt, BadRequest> {
    chat_messages(v).map(Prompt::Chat)
}

/// A body's `messages` (roles and text content).
pub fn chat_messages(v: &Value) -> Result<Vec<ChatMessage>, BadRequest> {
    let Some(Value::Array(items)) = v.get("messages") else {
        return Err(BadRequest {
            message: "messages: Field required".into(),
            param: Some("messages".into()),
        });
    };
    items
        .iter()
        .map(|m| {
            let role = m.get("role").and_then(Value::as_str).unwrap_or("user");
            Ok(ChatMessage {
                role: role.to_string(),
                content: content_text(m.get("content"))?,
            })
        })
        .collect()
}

/// Message content: a string, or the text parts of a content list.
fn content_text(c: Option<&Value>) -> Result<String, BadRequest> {
    match c {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(_) => Err(BadRequest::new(
            "messages: content should be a string or a list of parts",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(body: &[u8], chat: bool, force_usage: bool) -> Result<GenRequest, BadRequest> {
        let opts = ParseOptions {
            force_usage,
            ..ParseOptions::default()
        };
        GenRequest::parse(body, chat, opts)
    }

    #[test]
    fn completions_defaults() {
        let r = p(br#"{"model":"m","prompt":"hi there"}"#, false, false).unwrap();
        assert_eq!(r.max_tokens, Some(16));
        assert!(!r.stream && !r.include_usage && !r.ignore_eos);
        assert_eq!(r.prompt_tokens(), tokenize("hi there"));
        let r = p(br#"{"prompt":[1,2,3],"max_tokens":null}"#, false, false).unwrap();
        assert_eq!(r.prompt, Prompt::Tokens(vec![1, 2, 3]));
        assert_eq!(r.max_tokens, None);
    }

    #[test]
    fn stream_options() {
        let body =
            br#"{"prompt":"x","stream":true,"stream_options":{"continuous_usage_stats":true}}"#;
        let r = p(body, false, false).unwrap();
        assert!(r.include_usage && r.continuous_usage);
        assert!(p(br#"{"prompt":"x","stream_options":{}}"#, false, false).is_ok());
        let body = br#"{"prompt":"x","stream_options":{"include_usage":true}}"#;
        let e = p(body, false, false).unwrap_err();
        assert_eq!(
            e.message,
            "Stream options can only be defined when `stream=True`. (parameter=stream_options)"
        );
        assert_eq!(e.param.as_deref(), Some("stream_options"));
        let r = p(br#"{"prompt":"x","stream":true}"#, false, true).unwrap();
        assert!(r.include_usage && !r.continuous_usage);
    }

    #[test]
    fn chat_bodies() {
        let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":5,"max_tokens":9}"#;
        let r = p(body, true, false).unwrap();
        assert_eq!(r.max_tokens, Some(5));
        let m = vec![ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert_eq!(r.prompt_tokens(), tokenize(&render_chat(&m)));
        assert!(p(br#"{"prompt":"x"}"#, true, false).is_err());
        assert!(p(br#"{"prompt":""}"#, false, false).is_err());
        assert!(p(b"{", false, false).is_err());
    }
}
