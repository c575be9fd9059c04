//! Simulated log probabilities in vLLM's two response shapes.
//!
//! Values are deterministic: a hash of (sequence seed, position, token) sets the chosen
//! token's logprob in [-1.5, -0.01]; the alternatives are other words of the output
//! vocabulary ([`crate::tokenize::OUTPUT_WORDS`]), ordered by the same hash, each below
//! the one before. The chosen token is always the most likely (as with greedy decoding),
//! so at most `OUTPUT_WORDS.len()` tokens can be reported per position.
//!
//! Shapes (vLLM's `_create_completion_logprobs` / `_create_chat_logprobs`):
//! - completions: `{text_offset, token_logprobs, tokens, top_logprobs}`, where a
//!   position's `top_logprobs` maps the sampled token and the top `logprobs` tokens to
//!   their logprobs (the sampled token is the top one here, so `max(logprobs, 1)`
//!   entries); an echoed prompt's first token has `null` logprob and top logprobs;
//! - chat: `{content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}]}`
//!   with `top_logprobs` entries per token.

use std::hash::Hasher;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use twox_hash::XxHash64;

use crate::tokenize::OUTPUT_WORDS;

/// One position's logprobs.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// The token's text.
    pub token: String,
    /// Its logprob (`None` for a prompt's first token, which has no context).
    pub logprob: Option<f64>,
    /// The most likely tokens, the chosen one first.
    pub top: Vec<(String, f64)>,
}

fn hash(salt: u64, position: u32, token: &str) -> u64 {
    let mut h = XxHash64::with_seed(salt);
    h.write_u32(position);
    h.write(token.as_bytes());
    h.finish()
}

/// `x` in [lo, hi] from the low bits of `h`, rounded to 4 decimals.
fn spread(h: u64, lo: f64, hi: f64) -> f64 {
    let unit = (h % 10_000) as f64 / 10_000.0;
    ((lo + unit * (hi - lo)) * 1e4).round() / 1e4
}

/// Position `position` of a sequence seeded `salt` chose `token`; report the `k` most
/// likely tokens (at least the chosen one).
pub fn score(token: &str, salt: u64, position: u32, k: u32) -> Scored {
    let chosen = -spread(hash(salt, position, token), 0.01, 1.5);
    let mut alternatives: Vec<(&str, u64)> = OUTPUT_WORDS
        .iter()
        .filter(|w| **w != token)
        .map(|w| (*w, hash(salt ^ 0xa17e, position, w)))
        .collect();
    alternatives.sort_by_key(|&(w, h)| (h, w));
    let mut top = vec![(token.to_string(), chosen)];
    let mut last = chosen;
    for (w, h) in alternatives.into_iter().take(k.saturating_sub(1) as usize) {
        last -= spread(h >> 20, 0.05, 1.2);
        top.push((w.to_string(), (last * 1e4).round() / 1e4));
    }
    Scored {
        token: token.to_string(),
        logprob: Some(chosen),
        top,
    }
}

/// A prompt's first token: no logprob.
pub fn unscored(token: &str) -> Scored {
    Scored {
        token: token.to_string(),
        logprob: None,
        top: Vec::new(),
    }
}

/// An ordered `{token: logprob}` map (Python dict order).
#[derive(Debug, Clone, PartialEq)]
pub struct TopMap(Vec<(String, f64)>);

impl Serialize for TopMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// vLLM's `CompletionLogProbs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompletionLogprobs {
    text_offset: Vec<usize>,
    token_logprobs: Vec<Option<f64>>,
    tokens: Vec<String>,
    top_logprobs: Vec<Option<TopMap>>,
}

/// The completions shape of `tokens`; offsets count characters from `initial_offset`.
pub fn completion(tokens: &[Scored], initial_offset: usize) -> CompletionLogprobs {
    let mut out = CompletionLogprobs {
        text_offset: Vec::with_capacity(tokens.len()),
        token_logprobs: Vec::with_capacity(tokens.len()),
        tokens: Vec::with_capacity(tokens.len()),
        top_logprobs: Vec::with_capacity(tokens.len()),
    };
    let mut offset = initial_offset;
    for t in tokens {
        out.text_offset.push(offset);
        offset += t.token.chars().count();
        out.tokens.push(t.token.clone());
        out.token_logprobs.push(t.logprob);
        let top = t.logprob.map(|_| TopMap(t.top.clone()));
        out.top_logprobs.push(top);
    }
    out
}

/// vLLM's `ChatCompletionLogProb`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatTop {
    token: String,
    logprob: f64,
    bytes: Vec<u8>,
}

/// vLLM's `ChatCompletionLogProbsContent`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatToken {
    token: String,
    logprob: f64,
    bytes: Vec<u8>,
    top_logprobs: Vec<ChatTop>,
}

/// vLLM's `ChatCompletionLogProbs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatLogprobs {
    content: Vec<ChatToken>,
}

/// The chat shape of `tokens`, with `k` top logprobs per token.
pub fn chat(tokens: &[Scored], k: u32) -> ChatLogprobs {
    let top = |(token, logprob): &(String, f64)| ChatTop {
        token: token.clone(),
        logprob: *logprob,
        bytes: token.as_bytes().to_vec(),
    };
    let content = tokens
        .iter()
        .map(|t| ChatToken {
            token: t.token.clone(),
            logprob: t.logprob.unwrap_or(-9999.0),
            bytes: t.token.as_bytes().to_vec(),
            top_logprobs: t.top.iter().take(k as usize).map(top).collect(),
        })
        .collect();
    ChatLogprobs { content }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chosen_token_is_most_likely_and_values_are_stable() {
        let s = score(" the", 7, 3, 5);
        assert_eq!(s, score(" the", 7, 3, 5));
        assert_eq!(s.top.len(), 5);
        assert_eq!(s.top[0].0, " the");
        assert_eq!(Some(s.top[0].1), s.logprob);
        let lp = s.logprob.unwrap();
        assert!((-1.5..=-0.01).contains(&lp), "{lp}");
        for w in s.top.windows(2) {
            assert!(w[1].1 < w[0].1, "{:?}", s.top);
            assert_ne!(w[1].0, " the");
        }
        assert_eq!(score(" the", 7, 3, 0).top.len(), 1);
        assert_ne!(score(" the", 8, 3, 1).logprob, s.logprob);
        assert_eq!(score(" x", 1, 0, 99).top.len(), OUTPUT_WORDS.len() + 1);
    }

    #[test]
    fn completion_shape() {
        let toks = [unscored("Hi"), score(" the", 1, 0, 2)];
        let v = serde_json::to_value(completion(&toks, 5)).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["text_offset", "token_logprobs", "tokens", "top_logprobs"]
        );
        assert_eq!(v["text_offset"], serde_json::json!([5, 7]));
        assert_eq!(v["tokens"], serde_json::json!(["Hi", " the"]));
        assert!(v["token_logprobs"][0].is_null() && v["top_logprobs"][0].is_null());
        let top = v["top_logprobs"][1].as_object().unwrap();
        assert_eq!(top.len(), 2);
        assert_eq!(top.keys().next().unwrap(), " the");
    }

    #[test]
    fn chat_shape() {
        let toks = [score(" GPU", 1, 0, 3)];
        let v = serde_json::to_value(chat(&toks, 3)).unwrap();
        let c = &v["content"][0];
        assert_eq!(c["token"], " GPU");
        assert_eq!(c["bytes"], serde_json::json!([32, 71, 80, 85]));
        assert_eq!(c["top_logprobs"].as_array().unwrap().len(), 3);
        assert_eq!(c["top_logprobs"][0]["token"], " GPU");
        let v = serde_json::to_value(chat(&toks, 0)).unwrap();
        assert_eq!(v["content"][0]["top_logprobs"], serde_json::json!([]));
    }
}
