//! What a streamed response means: turns SSE data payloads, stamped with their arrival
//! time, into one request's measurements and its failure class.
//!
//! The rules follow `vllm bench serve` (0.33) so numbers compare 1:1:
//! - a *token chunk* is an SSE message whose `choices` is non-empty; for chat it must also
//!   carry output (`delta.content`, reasoning or tool calls), so the opening role-only chunk
//!   (`{"role":"assistant","content":""}`) is not one;
//! - TTFT is the first token chunk; one ITL sample per later token chunk (gap to the
//!   previous one); E2EL is the last token chunk (not the usage chunk, not `[DONE]`);
//! - output tokens come from `usage.completion_tokens` (the final usage chunk, or usage
//!   inside the last content chunk as llama.cpp sends it), else they are estimated.
//!
//! Additions: the first chunk with non-empty text is kept apart from TTFT; each ITL sample
//! carries how many tokens its chunk held (deltas of `continuous_usage_stats`), for the
//! token-correct ITL; and a stream that ends early is classified instead of trusted.

use std::borrow::Cow;
use std::time::Instant;

use serde::Deserialize;

use super::Endpoint;
use super::record::{Failure, FailureKind};

/// Longest excerpt of a server's payload kept in a failure message.
const EXCERPT: usize = 200;

/// One streamed chunk, borrowing its strings from the payload where it can.
#[derive(Debug, Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Choice<'a> {
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    content: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<serde_json::Value>,
    #[serde(default)]
    function_call: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct Usage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl Delta<'_> {
    /// vLLM's `_choice_has_streamed_output`: content, reasoning or tool calls, or an empty
    /// content without a role (a token that decodes to nothing).
    fn has_output(&self) -> bool {
        let nonempty = |s: &Option<Cow<'_, str>>| s.as_deref().is_some_and(|t| !t.is_empty());
        let truthy = |v: &Option<serde_json::Value>| match v {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::Array(a)) => !a.is_empty(),
            Some(serde_json::Value::Object(o)) => !o.is_empty(),
            Some(_) => true,
        };
        nonempty(&self.content)
            || nonempty(&self.reasoning)
            || nonempty(&self.reasoning_content)
            || truthy(&self.tool_calls)
            || truthy(&self.function_call)
            || (self.content.as_deref() == Some("") && self.role.is_none())
    }
}

impl Chunk<'_> {
    /// The error a payload reports: `{"error": ...}` or `{"object": "error", ...}`.
    fn error_message(&self) -> Option<String> {
        match &self.error {
            Some(serde_json::Value::Null) | None => {}
            Some(serde_json::Value::Object(o)) => {
                let msg = o.get("message").and_then(|m| m.as_str());
                return Some(msg.map_or_else(|| excerpt(&o_to_string(o)), excerpt));
            }
            Some(v) => return Some(excerpt(&v.to_string())),
        }
        (self.object.as_deref() == Some("error"))
            .then(|| excerpt(self.message.as_deref().unwrap_or("error object")))
    }
}

fn o_to_string(o: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::Value::Object(o.clone()).to_string()
}

/// At most [`EXCERPT`] characters of `s`.
pub fn excerpt(s: &str) -> String {
    match s.char_indices().nth(EXCERPT) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// One request's stream as measured so far. Times are seconds since the POST started, on
/// the client's clock (not yet rescaled).
#[derive(Debug, Clone)]
pub struct StreamState {
    endpoint: Endpoint,
    t0: Instant,
    /// First token chunk.
    pub ttft: Option<f64>,
    /// First chunk with non-empty text.
    pub first_content: Option<f64>,
    /// Last token chunk so far (E2EL once the stream is over).
    pub last_token: Option<f64>,
    /// Gaps between token chunks.
    pub itl: Vec<f64>,
    /// Tokens per chunk for each gap.
    pub itl_tokens: Vec<u32>,
    /// Concatenated text.
    pub text: String,
    /// Token chunks seen.
    pub token_chunks: u64,
    /// Largest `usage.completion_tokens` seen.
    pub usage_completion: Option<u64>,
    /// Last `usage.prompt_tokens` seen.
    pub usage_prompt: Option<u64>,
    /// `[DONE]` arrived.
    pub done: bool,
    /// A `finish_reason` arrived.
    pub finished: bool,
    /// Set by the first error; later payloads are ignored.
    pub failure: Option<Failure>,
}

impl StreamState {
    /// A stream whose POST started at `t0`; `expected_tokens` sizes the ITL buffers.
    pub fn new(endpoint: Endpoint, t0: Instant, expected_tokens: u32) -> Self {
        let cap = expected_tokens.min(8192) as usize;
        StreamState {
            endpoint,
            t0,
            ttft: None,
            first_content: None,
            last_token: None,
            itl: Vec::with_capacity(cap),
            itl_tokens: Vec::with_capacity(cap),
            text: String::new(),
            token_chunks: 0,
            usage_completion: None,
            usage_prompt: None,
            done: false,
            finished: false,
            failure: None,
        }
    }

    /// When the POST started.
    pub fn t0(&self) -> Instant {
        self.t0
    }

    /// True once the stream said it is complete (`[DONE]`) or failed: stop reading.
    pub fn is_over(&self) -> bool {
        self.done || self.failure.is_some()
    }

    /// Record a failure unless one is already recorded (the first cause wins).
    pub fn fail(&mut self, kind: FailureKind, message: String) {
        if self.failure.is_none() {
            self.failure = Some(Failure { kind, message });
        }
    }

    /// Handle one SSE data payload that arrived at `now`.
    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        if self.failure.is_some() || self.done {
            return;
        }
        if data.trim_ascii() == b"[DONE]" {
            self.done = true;
            return;
        }
        let chunk: Chunk<'_> = match serde_json::from_slice(data) {
            Ok(c) => c,
            Err(e) => {
                let text = String::from_utf8_lossy(data);
                let msg = format!("invalid JSON in stream ({e}): {}", excerpt(&text));
                return self.fail(FailureKind::MidStream, msg);
            }
        };
        if let Some(msg) = chunk.error_message() {
            return self.fail(FailureKind::MidStream, format!("error event: {msg}"));
        }
        self.on_chunk(&chunk, now);
    }

    fn on_chunk(&mut self, chunk: &Chunk<'_>, now: Instant) {
        let before = self.usage_completion;
        if let Some(u) = &chunk.usage {
            if let Some(c) = u.completion_tokens {
                self.usage_completion = Some(before.map_or(c, |b| b.max(c)));
            }
            if u.prompt_tokens.is_some() {
                self.usage_prompt = u.prompt_tokens;
            }
        }
        let Some(choice) = chunk.choices.as_deref().and_then(<[Choice<'_>]>::first) else {
            return;
        };
        if choice.finish_reason.is_some() {
            self.finished = true;
        }
        let (is_token, text) = match self.endpoint {
            Endpoint::Completions => (true, choice.text.as_deref()),
            Endpoint::Chat => match &choice.delta {
                Some(d) => (d.has_output(), d.content.as_deref()),
                None => (false, None),
            },
        };
        if is_token {
            let reported = chunk.usage.as_ref().and_then(|u| u.completion_tokens);
            let tokens = match reported {
                Some(c) => c.saturating_sub(before.unwrap_or(0)).max(1),
                None => 1,
            };
            self.on_token(text.unwrap_or(""), tokens, now);
        }
    }

    fn on_token(&mut self, text: &str, tokens: u64, now: Instant) {
        let t = now.saturating_duration_since(self.t0).as_secs_f64();
        match self.last_token {
            None => self.ttft = Some(t),
            Some(prev) => {
                self.itl.push(t - prev);
                self.itl_tokens
                    .push(u32::try_from(tokens).unwrap_or(u32::MAX));
            }
        }
        if self.first_content.is_none() && !text.is_empty() {
            self.first_content = Some(t);
        }
        self.last_token = Some(t);
        self.token_chunks += 1;
        self.text.push_str(text);
    }

    /// Output tokens and whether they had to be estimated: the server's count, else the
    /// larger of the token chunks seen and the local tokenizer's count of the text.
    pub fn output_tokens(&self) -> (u64, bool) {
        match self.usage_completion {
            Some(n) => (n, false),
            None => {
                let by_text = crate::tokenize::count(&self.text) as u64;
                (self.token_chunks.max(by_text), true)
            }
        }
    }

    /// The stream ended (EOF or `[DONE]`): decide whether it is complete. `pinned` is the
    /// output length forced with `ignore_eos`/`min_tokens`, if any.
    pub fn close(&mut self, pinned: Option<u32>) {
        if self.failure.is_some() {
            return;
        }
        if self.ttft.is_none() {
            let why = "stream ended without any token chunk";
            return self.fail(FailureKind::Truncated, why.into());
        }
        if !self.done && !self.finished {
            let why = "stream ended without [DONE] or a finish_reason";
            return self.fail(FailureKind::Truncated, why.into());
        }
        if let (Some(want), Some(got)) = (pinned, self.usage_completion)
            && got < u64::from(want)
        {
            let why = format!("{got} output tokens, {want} were pinned");
            self.fail(FailureKind::Truncated, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Feed `(ms, payload)` pairs to a fresh state.
    fn run(endpoint: Endpoint, events: &[(u64, &str)]) -> StreamState {
        let t0 = Instant::now();
        let mut st = StreamState::new(endpoint, t0, 16);
        for (ms, data) in events {
            st.on_data(data.as_bytes(), t0 + Duration::from_millis(*ms));
        }
        st
    }

    fn close(mut st: StreamState, pinned: Option<u32>) -> StreamState {
        st.close(pinned);
        st
    }

    fn approx(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// vLLM's completions framing with continuous usage stats.
    fn vllm_completions() -> Vec<(u64, &'static str)> {
        vec![
            (
                100,
                r#"{"choices":[{"index":0,"text":" a","finish_reason":null}],"usage":{"prompt_tokens":7,"completion_tokens":1}}"#,
            ),
            (
                120,
                r#"{"choices":[{"index":0,"text":" b c","finish_reason":null}],"usage":{"prompt_tokens":7,"completion_tokens":3}}"#,
            ),
            (
                150,
                r#"{"choices":[{"index":0,"text":" d","finish_reason":"length"}],"usage":{"prompt_tokens":7,"completion_tokens":4}}"#,
            ),
            (
                151,
                r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}"#,
            ),
            (152, "[DONE]"),
        ]
    }

    #[test]
    fn completions_timings_tokens_and_token_itl() {
        let st = close(run(Endpoint::Completions, &vllm_completions()), Some(4));
        assert!(st.failure.is_none(), "{:?}", st.failure);
        assert!(approx(st.ttft.unwrap(), 0.100));
        assert!(approx(st.first_content.unwrap(), 0.100));
        // E2EL is the last token chunk, not the usage chunk or [DONE].
        assert!(approx(st.last_token.unwrap(), 0.150));
        assert_eq!(st.itl.len(), 2);
        assert!(approx(st.itl[0], 0.020) && approx(st.itl[1], 0.030));
        // The second chunk carried two tokens (1 -> 3), the third one (3 -> 4).
        assert_eq!(st.itl_tokens, vec![2, 1]);
        assert_eq!(st.output_tokens(), (4, false));
        assert_eq!(st.usage_prompt, Some(7));
        assert_eq!(st.text, " a b c d");
    }

    #[test]
    fn chat_role_chunk_is_not_the_first_token() {
        let st = close(
            run(
                Endpoint::Chat,
                &[
                    (
                        50,
                        r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
                    ),
                    (
                        80,
                        r#"{"choices":[{"index":0,"delta":{"content":""},"finish_reason":null}]}"#,
                    ),
                    (
                        90,
                        r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
                    ),
                    (
                        95,
                        r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
                    ),
                    (
                        96,
                        r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
                    ),
                    (97, "[DONE]"),
                ],
            ),
            None,
        );
        assert!(st.failure.is_none(), "{:?}", st.failure);
        // An empty-content chunk without a role is a token (vLLM's rule); the role chunk
        // and the bare finish chunk are not.
        assert!(approx(st.ttft.unwrap(), 0.080));
        assert!(approx(st.first_content.unwrap(), 0.090));
        assert!(approx(st.last_token.unwrap(), 0.090));
        assert_eq!(st.itl_tokens, vec![1]);
        assert!(st.finished && st.done);
        assert_eq!(st.output_tokens(), (2, false));
    }

    #[test]
    fn llama_cpp_usage_in_last_content_chunk_without_done() {
        let st = close(
            run(
                Endpoint::Chat,
                &[
                    (10, r#"{"choices":[{"index":0,"delta":{"content":"x"}}]}"#),
                    (
                        20,
                        r#"{"choices":[{"index":0,"delta":{"content":"y"},"finish_reason":"length"}],"usage":{"completion_tokens":2,"prompt_tokens":5}}"#,
                    ),
                ],
            ),
            Some(2),
        );
        assert!(st.failure.is_none(), "{:?}", st.failure);
        assert_eq!(st.output_tokens(), (2, false));
        assert_eq!(st.usage_prompt, Some(5));
    }

    #[test]
    fn missing_usage_is_estimated_and_flagged() {
        let st = close(
            run(
                Endpoint::Completions,
                &[
                    (10, r#"{"choices":[{"text":" one"}]}"#),
                    (20, r#"{"choices":[{"text":" two"}]}"#),
                    (
                        30,
                        r#"{"choices":[{"text":" six","finish_reason":"length"}]}"#,
                    ),
                    (31, "[DONE]"),
                ],
            ),
            Some(3),
        );
        assert!(st.failure.is_none());
        assert_eq!(st.output_tokens(), (3, true));
        assert_eq!(st.itl_tokens, vec![1, 1]);
    }

    fn kind(st: &StreamState) -> Option<FailureKind> {
        st.failure.as_ref().map(|f| f.kind)
    }

    #[test]
    fn error_events_after_200_are_mid_stream_failures() {
        let st = run(
            Endpoint::Completions,
            &[
                (10, r#"{"choices":[{"text":"a"}]}"#),
                (
                    20,
                    r#"{"error":{"object":"error","message":"engine dead","code":500}}"#,
                ),
                (30, r#"{"choices":[{"text":"b"}]}"#),
            ],
        );
        assert_eq!(kind(&st), Some(FailureKind::MidStream));
        assert!(st.failure.as_ref().unwrap().message.contains("engine dead"));
        assert!(st.is_over());
        // Nothing after the error is counted.
        assert_eq!(st.token_chunks, 1);
        let st = run(
            Endpoint::Chat,
            &[(
                5,
                r#"{"object":"error","message":"bad","type":"BadRequestError"}"#,
            )],
        );
        assert_eq!(kind(&st), Some(FailureKind::MidStream));
        let st = run(Endpoint::Chat, &[(5, "{not json")]);
        assert_eq!(kind(&st), Some(FailureKind::MidStream));
        assert!(st.failure.unwrap().message.contains("invalid JSON"));
    }

    #[test]
    fn truncation_is_classified() {
        // No [DONE] and no finish_reason.
        let st = close(
            run(
                Endpoint::Completions,
                &[(10, r#"{"choices":[{"text":"a"}]}"#)],
            ),
            None,
        );
        assert_eq!(kind(&st), Some(FailureKind::Truncated));
        // Fewer tokens than pinned.
        let mut events = vllm_completions();
        events.truncate(2);
        events.push((
            160,
            r#"{"choices":[{"text":"","finish_reason":"stop"}],"usage":{"completion_tokens":3}}"#,
        ));
        events.push((161, "[DONE]"));
        let st = close(run(Endpoint::Completions, &events), Some(4));
        assert_eq!(kind(&st), Some(FailureKind::Truncated));
        assert!(st.failure.unwrap().message.contains("3 output tokens, 4"));
        // Not pinned: the same stream is fine.
        assert_eq!(
            kind(&close(run(Endpoint::Completions, &events), None)),
            None
        );
        // [DONE] without any token chunk.
        let st = close(run(Endpoint::Chat, &[(1, "[DONE]")]), None);
        assert_eq!(kind(&st), Some(FailureKind::Truncated));
    }

    #[test]
    fn excerpt_cuts_long_messages_on_char_boundaries() {
        let long = "é".repeat(500);
        let e = excerpt(&long);
        assert_eq!(e.chars().count(), EXCERPT + 1);
        assert_eq!(excerpt("short"), "short");
    }
}
