//! vLLM's `/tokenize` and `/detokenize` over the simulator's stand-in tokenizer
//! ([`crate::tokenize`]), with vLLM's request and response shapes
//! (`vllm/entrypoints/serve/tokenize/protocol.py`):
//!
//! - `POST /tokenize` `{"prompt": "…"}` or `{"messages": [...]}` (rendered by the stand-in
//!   chat template), optional `return_token_strs` → `{"count", "max_model_len", "tokens",
//!   "token_strs"}`;
//! - `POST /detokenize` `{"tokens": [...]}` → `{"prompt": "…"}`.
//!
//! Token ids are hashes of text pieces and cannot be reversed, so the server keeps a
//! [`Vocab`]: the ids of the output words it generates, and of every piece `/tokenize` has
//! returned (up to [`MAX_REMEMBERED`] of them). Detokenizing any other id answers 400.
//! Two pieces whose hashes collide detokenize as the one seen first.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::Value;

use super::api_error::BadRequest;
use super::body;
use super::request::chat_messages;
use crate::tokenize::{OUTPUT_WORDS, piece_id, pieces};
use crate::workload::render_chat;

/// Pieces the server remembers at most (beyond, new pieces are not remembered).
pub const MAX_REMEMBERED: usize = 1 << 20;

/// The ids this server can turn back into text.
#[derive(Debug)]
pub struct Vocab {
    known: Mutex<HashMap<u32, String>>,
}

impl Default for Vocab {
    fn default() -> Self {
        let known = OUTPUT_WORDS
            .iter()
            .map(|w| (piece_id(w), (*w).to_string()))
            .collect();
        Vocab {
            known: Mutex::new(known),
        }
    }
}

impl Vocab {
    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<u32, String>> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Token ids and pieces of `text`, remembered for [`Vocab::detokenize`].
    pub fn tokenize(&self, text: &str) -> (Vec<u32>, Vec<String>) {
        let mut known = self.known();
        pieces(text)
            .map(|p| {
                let id = piece_id(p);
                if known.len() < MAX_REMEMBERED {
                    known.entry(id).or_insert_with(|| p.to_string());
                }
                (id, p.to_string())
            })
            .unzip()
    }

    /// The pieces of `ids`, or the first id this server never produced.
    pub fn pieces(&self, ids: &[u32]) -> Result<Vec<String>, u32> {
        let known = self.known();
        ids.iter()
            .map(|id| known.get(id).cloned().ok_or(*id))
            .collect()
    }

    /// The text of `ids` (400 for an id this server never produced).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, BadRequest> {
        self.pieces(ids).map(|p| p.concat()).map_err(unknown_id)
    }
}

/// The 400 for an id the stand-in tokenizer cannot reverse.
pub fn unknown_id(id: u32) -> BadRequest {
    BadRequest {
        message: format!(
            "Token id {id} is unknown to the simulator's stand-in tokenizer: it detokenizes \
             the ids /tokenize returned and the ids of the words it generates."
        ),
        param: Some("tokens".into()),
    }
}

/// A `/tokenize` body.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenizeRequest {
    /// `model`.
    pub model: Option<String>,
    text: String,
    return_token_strs: bool,
}

#[derive(Serialize)]
struct TokenizeResponse<'a> {
    count: usize,
    max_model_len: u32,
    tokens: &'a [u32],
    token_strs: Option<&'a [String]>,
}

impl TokenizeRequest {
    /// Parse a body (`prompt`, or `messages` rendered by the stand-in chat template).
    pub fn parse(bytes: &[u8]) -> Result<TokenizeRequest, BadRequest> {
        let v = json_object(bytes)?;
        let text = if v.get("messages").is_some() {
            refuse_template_options(&v)?;
            render_chat(&chat_messages(&v)?)
        } else {
            match v.get("prompt") {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(body::type_error("prompt", "a valid string")),
            }
        };
        Ok(TokenizeRequest {
            model: model(&v),
            text,
            return_token_strs: body::boolean(&v, "return_token_strs")?.unwrap_or(false),
        })
    }

    /// The response body.
    pub fn answer(&self, vocab: &Vocab, max_model_len: u32) -> String {
        let (tokens, strs) = vocab.tokenize(&self.text);
        let body = TokenizeResponse {
            count: tokens.len(),
            max_model_len,
            tokens: &tokens,
            token_strs: self.return_token_strs.then_some(strs.as_slice()),
        };
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// The stand-in chat template renders messages only: options that change what it renders
/// are refused.
fn refuse_template_options(v: &Value) -> Result<(), BadRequest> {
    if body::boolean(v, "add_generation_prompt")? == Some(false) {
        return Err(BadRequest::unsupported("add_generation_prompt"));
    }
    for field in ["continue_final_message", "chat_template", "tools"] {
        let set = body::field(v, field).is_some_and(|x| x.as_bool() != Some(false));
        if set {
            return Err(BadRequest::unsupported(field));
        }
    }
    Ok(())
}

/// A `/detokenize` body.
#[derive(Debug, Clone, PartialEq)]
pub struct DetokenizeRequest {
    /// `model`.
    pub model: Option<String>,
    tokens: Vec<u32>,
}

impl DetokenizeRequest {
    /// Parse a body (`tokens`: a list of ids).
    pub fn parse(bytes: &[u8]) -> Result<DetokenizeRequest, BadRequest> {
        let v = json_object(bytes)?;
        let Some(Value::Array(items)) = v.get("tokens") else {
            return Err(body::type_error("tokens", "a valid list"));
        };
        let tokens = items
            .iter()
            .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| body::type_error("tokens", "a valid list of token ids"))?;
        Ok(DetokenizeRequest {
            model: model(&v),
            tokens,
        })
    }

    /// The response body (`{"prompt": …}`), or 400 for an unknown id.
    pub fn answer(&self, vocab: &Vocab) -> Result<String, BadRequest> {
        let prompt = vocab.detokenize(&self.tokens)?;
        Ok(serde_json::json!({ "prompt": prompt }).to_string())
    }
}

fn json_object(bytes: &[u8]) -> Result<Value, BadRequest> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| BadRequest::new(format!("JSON decode error: {e}")))?;
    if !v.is_object() {
        return Err(BadRequest::new(
            "Input should be a valid dictionary or object",
        ));
    }
    Ok(v)
}

fn model(v: &Value) -> Option<String> {
    v.get("model").and_then(Value::as_str).map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::tokenize;

    #[test]
    fn tokenize_then_detokenize_round_trips() {
        let vocab = Vocab::default();
        let t = TokenizeRequest::parse(br#"{"prompt": "Hello, simulated world!"}"#).unwrap();
        let v: Value = serde_json::from_str(&t.answer(&vocab, 4096)).unwrap();
        let ids = tokenize("Hello, simulated world!");
        assert_eq!(v["count"], ids.len());
        assert_eq!(v["max_model_len"], 4096);
        assert_eq!(v["tokens"], serde_json::json!(ids));
        assert!(v["token_strs"].is_null());
        let d = DetokenizeRequest::parse(format!(r#"{{"tokens": {}}}"#, v["tokens"]).as_bytes())
            .unwrap();
        assert_eq!(
            d.answer(&vocab).unwrap(),
            r#"{"prompt":"Hello, simulated world!"}"#
        );
    }

    #[test]
    fn output_words_are_known_and_others_are_not() {
        let vocab = Vocab::default();
        let ids: Vec<u32> = [" the", " model", "."]
            .iter()
            .map(|w| piece_id(w))
            .collect();
        assert_eq!(vocab.detokenize(&ids).unwrap(), " the model.");
        let unknown = piece_id("zebra");
        let e = vocab.detokenize(&[unknown]).unwrap_err();
        assert!(
            e.message
                .contains(&format!("Token id {unknown} is unknown"))
        );
        assert_eq!(e.param.as_deref(), Some("tokens"));
    }

    #[test]
    fn chat_and_token_strs() {
        let vocab = Vocab::default();
        let body =
            br#"{"messages": [{"role": "user", "content": "Hi"}], "return_token_strs": true}"#;
        let t = TokenizeRequest::parse(body).unwrap();
        let v: Value = serde_json::from_str(&t.answer(&vocab, 10)).unwrap();
        let strs: Vec<String> = serde_json::from_value(v["token_strs"].clone()).unwrap();
        let m = vec![crate::workload::ChatMessage {
            role: "user".into(),
            content: "Hi".into(),
        }];
        assert_eq!(strs.concat(), render_chat(&m));
        assert!(TokenizeRequest::parse(br#"{"prompt": 5}"#).is_err());
        assert!(DetokenizeRequest::parse(br#"{"tokens": [-1]}"#).is_err());
        let e = TokenizeRequest::parse(br#"{"messages": [], "tools": [{}]}"#).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("tools"));
    }
}
