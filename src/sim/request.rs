//! The request side of `/v1/completions` and `/v1/chat/completions`: which body fields
//! the simulator honours (`model`, `prompt`/`messages`, `stream`, `stream_options`,
//! `max_tokens`/`max_completion_tokens`, `min_tokens`, `ignore_eos`) with vLLM's
//! defaults, and the prompt's token ids.

use serde_json::Value;

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
}

/// vLLM's default `max_tokens` for `/v1/completions`.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

impl GenRequest {
    /// Parse a body; errors are vLLM's 400 messages.
    pub fn parse(body: &[u8], chat: bool, force_usage: bool) -> Result<GenRequest, String> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| format!("JSON decode error: {e}"))?;
        if !v.is_object() {
            return Err("Input should be a valid dictionary or object".into());
        }
        let stream = flag(&v, "stream")?;
        let options = v.get("stream_options").filter(|o| !o.is_null());
        if options.is_some() && !stream {
            return Err("Stream options can only be defined when `stream=True`.".into());
        }
        let (include_usage, continuous_usage) = match options {
            Some(o) => {
                let include = o
                    .get("include_usage")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                let include = include || force_usage;
                let continuous = o
                    .get("continuous_usage_stats")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                (include, include && continuous)
            }
            None => (force_usage, false),
        };
        Ok(GenRequest {
            chat,
            model: v.get("model").and_then(Value::as_str).map(String::from),
            stream,
            include_usage,
            continuous_usage,
            max_tokens: max_tokens(&v, chat)?,
            min_tokens: uint(&v, "min_tokens")?.unwrap_or(0),
            ignore_eos: flag(&v, "ignore_eos")?,
            prompt: if chat { messages(&v)? } else { prompt(&v)? },
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
}

fn flag(v: &Value, key: &str) -> Result<bool, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("{key}: Input should be a valid boolean")),
    }
}

fn uint(v: &Value, key: &str) -> Result<Option<u32>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => x
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("{key}: Input should be a valid non-negative integer")),
    }
}

fn max_tokens(v: &Value, chat: bool) -> Result<Option<u32>, String> {
    if chat {
        let mct = uint(v, "max_completion_tokens")?;
        return Ok(mct.or(uint(v, "max_tokens")?));
    }
    match v.get("max_tokens") {
        None => Ok(Some(COMPLETIONS_DEFAULT_MAX_TOKENS)),
        Some(_) => uint(v, "max_tokens"),
    }
}

fn prompt(v: &Value) -> Result<Prompt, String> {
    let empty = || "Either prompt or prompt_embeds must be provided and non-empty.".to_string();
    match v.get("prompt") {
        Some(Value::String(s)) if !s.is_empty() => Ok(Prompt::Text(s.clone())),
        Some(Value::Array(items)) if !items.is_empty() => array_prompt(items),
        _ => Err(empty()),
    }
}

fn array_prompt(items: &[Value]) -> Result<Prompt, String> {
    if let [Value::String(s)] = items {
        return Ok(Prompt::Text(s.clone()));
    }
    let ids: Option<Vec<u32>> = items
        .iter()
        .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect();
    ids.map(Prompt::Tokens).ok_or_else(|| {
        "The simulator serves one prompt per request (a string or token ids).".into()
    })
}

fn messages(v: &Value) -> Result<Prompt, String> {
    let Some(Value::Array(items)) = v.get("messages") else {
        return Err("messages: Field required".into());
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
        .collect::<Result<Vec<_>, String>>()
        .map(Prompt::Chat)
}

/// Message content: a string, or the text parts of a content list.
fn content_text(c: Option<&Value>) -> Result<String, String> {
    match c {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n")),
        Some(_) => Err("messages: content should be a string or a list of parts".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_defaults() {
        let r = GenRequest::parse(br#"{"model":"m","prompt":"hi there"}"#, false, false).unwrap();
        assert_eq!(r.max_tokens, Some(16));
        assert!(!r.stream && !r.include_usage && !r.ignore_eos);
        assert_eq!(r.prompt_tokens(), tokenize("hi there"));
        let r =
            GenRequest::parse(br#"{"prompt":[1,2,3],"max_tokens":null}"#, false, false).unwrap();
        assert_eq!(r.prompt, Prompt::Tokens(vec![1, 2, 3]));
        assert_eq!(r.max_tokens, None);
    }

    #[test]
    fn stream_options() {
        let body =
            br#"{"prompt":"x","stream":true,"stream_options":{"continuous_usage_stats":true}}"#;
        let r = GenRequest::parse(body, false, false).unwrap();
        assert!(r.include_usage && r.continuous_usage);
        let e =
            GenRequest::parse(br#"{"prompt":"x","stream_options":{}}"#, false, false).unwrap_err();
        assert_eq!(e, "Stream options can only be defined when `stream=True`.");
        let r = GenRequest::parse(br#"{"prompt":"x","stream":true}"#, false, true).unwrap();
        assert!(r.include_usage && !r.continuous_usage);
    }

    #[test]
    fn chat_bodies() {
        let body = br#"{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_completion_tokens":5,"max_tokens":9}"#;
        let r = GenRequest::parse(body, true, false).unwrap();
        assert_eq!(r.max_tokens, Some(5));
        let m = vec![ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert_eq!(r.prompt_tokens(), tokenize(&render_chat(&m)));
        assert!(GenRequest::parse(br#"{"prompt":"x"}"#, true, false).is_err());
        assert!(GenRequest::parse(br#"{"prompt":""}"#, false, false).is_err());
        assert!(GenRequest::parse(b"{", false, false).is_err());
    }
}
