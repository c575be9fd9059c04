//! One conversation turn against a provider, with bounded retries. HTTP 429, 408/409, 5xx
//! (and 529) and network errors are retried with exponential backoff and jitter, honouring
//! `Retry-After` (or `retry-after-ms`) up to a cap; a longer wait gives the turn up. Other
//! 4xx fail fast: 401/403 as [`LlmError::Auth`], out-of-credit 429s as
//! [`LlmError::Quota`]. Every attempt first passes the step's [`Meter`], so no retry loop
//! can outrun the call bound or the dollar cap.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::LlmError;
use super::cost::{Meter, Price, Usage, estimate_tokens};
use super::providers::{Api, ApiKey, LlmSpec};

/// Anthropic API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// How hard to try one turn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per turn, first try included (at most [`MAX_TRIES_PER_TURN`]).
    pub tries_per_turn: u32,
    /// First backoff delay; doubles each retry.
    pub base_delay: Duration,
    /// Largest backoff delay.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a server asking for more gives the turn up.
    pub retry_after_cap: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
}

/// Hard ceiling on attempts per turn, whatever a policy says.
pub const MAX_TRIES_PER_TURN: u32 = 3;

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            tries_per_turn: MAX_TRIES_PER_TURN,
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(20),
            retry_after_cap: Duration::from_secs(60),
            request_timeout: Duration::from_secs(180),
        }
    }
}

impl RetryPolicy {
    /// Backoff before retry number `retry` (1-based): exponential, capped, with equal
    /// jitter (half fixed, half random) so parallel clients spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16));
        let d = exp.min(self.max_delay);
        d / 2 + d.mul_f64(rand::random_range(0.0..0.5))
    }
}

/// Who said what in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// forge.
    User,
    /// The LLM.
    Assistant,
}

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Speaker.
    pub role: Role,
    /// Text.
    pub content: String,
}

/// What one turn sends.
#[derive(Debug, Clone)]
pub struct Turn<'a> {
    /// System prompt.
    pub system: &'a str,
    /// The conversation so far, ending with a user message.
    pub messages: &'a [Message],
    /// Output allowance, tokens.
    pub max_tokens: u32,
}

impl Turn<'_> {
    /// Input tokens, estimated generously.
    pub fn estimated_input_tokens(&self) -> u64 {
        estimate_tokens(self.system)
            + self
                .messages
                .iter()
                .map(|m| estimate_tokens(&m.content))
                .sum::<u64>()
    }

    /// Cost if the prompt is as long as estimated and the whole allowance is used.
    pub fn projected_cost(&self, price: &Price) -> f64 {
        price.cost(&Usage {
            input_tokens: self.estimated_input_tokens(),
            output_tokens: u64::from(self.max_tokens),
        })
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The text the model produced.
    pub text: String,
    /// Tokens as reported (`None` when the server reported none).
    pub usage: Option<Usage>,
    /// The model stopped at the output allowance.
    pub truncated: bool,
    /// What it cost, USD (the projection when the server reported no usage).
    pub cost_usd: f64,
}

/// One attempt's failure.
enum Attempt {
    /// Worth another try; `wait` is what the server asked for; `maybe_billed` when the
    /// request reached the provider and no answer came back (a timeout), so it may have
    /// been charged.
    Retry {
        why: String,
        wait: Option<Duration>,
        maybe_billed: bool,
    },
    /// Not worth another try.
    Fatal(LlmError),
}

/// A provider client.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    spec: LlmSpec,
    key: Option<ApiKey>,
    price: Price,
    policy: RetryPolicy,
}

impl Client {
    /// A client for `spec`.
    pub fn new(
        spec: LlmSpec,
        key: Option<ApiKey>,
        price: Price,
        policy: RetryPolicy,
    ) -> Result<Client, LlmError> {
        let http = reqwest::Client::builder()
            .timeout(policy.request_timeout)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            spec,
            key,
            price,
            policy,
        })
    }

    /// The provider and model.
    pub fn spec(&self) -> &LlmSpec {
        &self.spec
    }

    /// The price in force.
    pub fn price(&self) -> Price {
        self.price
    }

    /// Run one turn: up to `tries_per_turn` attempts, each admitted by `meter` first.
    pub async fn complete(
        &self,
        turn: &Turn<'_>,
        meter: &mut Meter,
    ) -> Result<Completion, LlmError> {
        let projected = turn.projected_cost(&self.price);
        let tries = self.policy.tries_per_turn.clamp(1, MAX_TRIES_PER_TURN);
        let mut last = String::new();
        for attempt in 1..=tries {
            meter.admit(projected)?;
            match self.attempt(turn).await {
                Ok(mut c) => {
                    c.cost_usd = c.usage.map_or(projected, |u| self.price.cost(&u));
                    meter.charge(c.cost_usd);
                    return Ok(c);
                }
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry {
                    why,
                    wait,
                    maybe_billed,
                }) => {
                    if maybe_billed {
                        meter.charge(projected);
                    }
                    last = why;
                    if attempt == tries {
                        break;
                    }
                    let delay = self.delay(attempt, wait, &last)?;
                    tracing::warn!(
                        "{}: {last}; retrying in {:.1} s (attempt {}/{tries})",
                        self.spec.label(),
                        delay.as_secs_f64(),
                        attempt + 1
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
        Err(LlmError::Exhausted { tries, last })
    }

    fn delay(
        &self,
        attempt: u32,
        wait: Option<Duration>,
        last: &str,
    ) -> Result<Duration, LlmError> {
        match wait {
            Some(w) if w > self.policy.retry_after_cap => Err(LlmError::Exhausted {
                tries: attempt,
                last: format!(
                    "{last}; the server asked to wait {:.0} s, more than the {:.0} s cap",
                    w.as_secs_f64(),
                    self.policy.retry_after_cap.as_secs_f64()
                ),
            }),
            Some(w) => Ok(w),
            None => Ok(self.policy.backoff(attempt)),
        }
    }

    async fn attempt(&self, turn: &Turn<'_>) -> Result<Completion, Attempt> {
        let resp = self
            .http
            .post(self.spec.endpoint())
            .headers(self.headers().map_err(Attempt::Fatal)?)
            .json(&self.body(turn))
            .send()
            .await
            .map_err(|e| Attempt::Retry {
                maybe_billed: e.is_timeout(),
                why: format!("request failed: {}", describe(e)),
                wait: None,
            })?;
        let status = resp.status().as_u16();
        let ok = (200..300).contains(&status);
        let wait = retry_after(resp.headers());
        let text = resp.text().await.map_err(|e| Attempt::Retry {
            why: format!("reading the response failed: {}", describe(e)),
            wait: None,
            maybe_billed: ok,
        })?;
        if ok {
            // A 2xx whose body is not a completion may still have been generated and billed.
            return parse_completion(self.spec.api, &text).map_err(|why| Attempt::Retry {
                why,
                wait: None,
                maybe_billed: true,
            });
        }
        Err(self.classify(status, &text, wait))
    }

    fn headers(&self) -> Result<HeaderMap, LlmError> {
        let mut h = HeaderMap::new();
        if let Some(k) = &self.key {
            let (name, value) = match self.spec.api {
                Api::Anthropic => ("x-api-key", k.expose().to_string()),
                Api::OpenAi => ("authorization", format!("Bearer {}", k.expose())),
            };
            let mut v = HeaderValue::from_str(&value).map_err(|_| {
                LlmError::Config("the API key contains characters not allowed in a header".into())
            })?;
            v.set_sensitive(true);
            h.insert(name, v);
        }
        if self.spec.api == Api::Anthropic {
            h.insert(
                "anthropic-version",
                HeaderValue::from_static(ANTHROPIC_VERSION),
            );
        }
        Ok(h)
    }

    fn body(&self, turn: &Turn<'_>) -> Value {
        let msgs = turn.messages.iter().map(|m| {
            let role = match m.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            json!({"role": role, "content": m.content})
        });
        match self.spec.api {
            Api::Anthropic => json!({
                "model": self.spec.model,
                "max_tokens": turn.max_tokens,
                "system": turn.system,
                "messages": msgs.collect::<Vec<_>>(),
            }),
            Api::OpenAi => {
                let mut all = vec![json!({"role": "system", "content": turn.system})];
                all.extend(msgs);
                // OpenAI's own API wants `max_completion_tokens` (reasoning models refuse
                // `max_tokens`); compatible servers know `max_tokens`.
                let limit_field = if self.spec.provider == "openai" && !self.spec.custom_base_url {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                json!({"model": self.spec.model, "messages": all, limit_field: turn.max_tokens})
            }
        }
    }

    fn classify(&self, status: u16, body: &str, wait: Option<Duration>) -> Attempt {
        let (kind, message) = error_detail(body);
        let message = match &self.key {
            Some(k) => k.scrub(&message),
            None => message,
        };
        let provider = self.spec.provider.clone();
        match status {
            401 | 403 => Attempt::Fatal(LlmError::Auth {
                provider,
                status,
                env: self.spec.key_env.clone().unwrap_or_default(),
            }),
            429 if is_out_of_credit(&kind, &message) => {
                Attempt::Fatal(LlmError::Quota { provider, message })
            }
            408 | 409 | 429 | 500..=599 => Attempt::Retry {
                why: format!("HTTP {status}{}", brief(&message)),
                wait,
                maybe_billed: false,
            },
            _ => Attempt::Fatal(LlmError::Refused {
                provider,
                status,
                message,
            }),
        }
    }
}

fn brief(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(" ({message})")
    }
}

/// A transport error in words, without the URL's query (none is ever sent) or the key
/// (never in the URL).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        e.without_url().to_string()
    }
}

/// 429s that mean the money ran out, not the rate: retrying cannot help.
fn is_out_of_credit(kind: &str, message: &str) -> bool {
    let m = format!("{kind} {message}").to_lowercase();
    [
        "insufficient_quota",
        "spend_limit",
        "spend limit",
        "credit balance",
        "billing",
    ]
    .iter()
    .any(|s| m.contains(s))
}

/// `error.type`/`error.code` and `error.message` of a provider error body (both shapes use
/// `{"error": {...}}`), or the start of the body when it is not JSON.
fn error_detail(body: &str) -> (String, String) {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = v.get("error").unwrap_or(&Value::Null);
    let kind = ["code", "type"]
        .iter()
        .filter_map(|k| e.get(*k).and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let message = e
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| e.as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    (kind, clean(&message, 300))
}

/// Single-line, control and format characters (bidi overrides) removed, at most `max`
/// characters.
pub fn clean(s: &str, max: usize) -> String {
    let one_line: String = s
        .chars()
        .filter(|c| !crate::text::is_format_char(*c))
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let t = one_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if t.chars().count() > max {
        let mut cut: String = t.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        t
    }
}

/// The longest wait a header is read as (a day): any longer is past every cap anyway, and
/// `1e300` must not overflow a `Duration`.
const RETRY_AFTER_CEILING_S: f64 = 86_400.0;

/// The wait a response asks for: `retry-after-ms`, else `Retry-After` in seconds or as an
/// HTTP date.
pub fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let get = |k: &str| h.get(k).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(
            (ms / 1000.0).min(RETRY_AFTER_CEILING_S),
        ));
    }
    let v = get("retry-after")?;
    if let Ok(s) = v.parse::<f64>() {
        return (s.is_finite() && s >= 0.0)
            .then(|| Duration::from_secs_f64(s.min(RETRY_AFTER_CEILING_S)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds();
    Some(Duration::from_millis(secs.max(0) as u64))
}

/// Text and usage of a 2xx body.
pub fn parse_completion(api: Api, body: &str) -> Result<Completion, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|_| format!("the provider's response is not JSON: {}", clean(body, 120)))?;
    let (text, usage, truncated) = match api {
        Api::Anthropic => anthropic_reply(&v)?,
        Api::OpenAi => openai_reply(&v)?,
    };
    Ok(Completion {
        text,
        usage,
        truncated,
        cost_usd: 0.0,
    })
}

type Reply = (String, Option<Usage>, bool);

fn anthropic_reply(v: &Value) -> Result<Reply, String> {
    let blocks = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or("the response has no `content` array")?;
    let text: String = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect();
    let u = v.get("usage");
    let usage = usage_of(u, "input_tokens", "output_tokens");
    let truncated = v.get("stop_reason").and_then(Value::as_str) == Some("max_tokens");
    Ok((text, usage, truncated))
}

fn openai_reply(v: &Value) -> Result<Reply, String> {
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or("the response has no `choices`")?;
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let usage = usage_of(v.get("usage"), "prompt_tokens", "completion_tokens");
    let truncated = choice.get("finish_reason").and_then(Value::as_str) == Some("length");
    Ok((text, usage, truncated))
}

fn usage_of(u: Option<&Value>, input: &str, output: &str) -> Option<Usage> {
    let u = u?;
    Some(Usage {
        input_tokens: u.get(input)?.as_u64()?,
        output_tokens: u.get(output)?.as_u64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let p = RetryPolicy {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(20),
            ..RetryPolicy::default()
        };
        for (retry, full) in [(1u32, 2.0), (2, 4.0), (3, 8.0), (5, 20.0), (40, 20.0)] {
            let d = p.backoff(retry).as_secs_f64();
            assert!(d >= full / 2.0 && d <= full, "retry {retry}: {d}");
        }
    }

    #[test]
    fn retry_after_forms() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&h), Some(Duration::ZERO));
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn absurd_waits_are_capped_not_a_panic() {
        // Regression: `retry-after-ms: 1e300` panicked converting to a Duration.
        for (k, v) in [("retry-after-ms", "1e300"), ("retry-after", "1e300")] {
            let mut h = HeaderMap::new();
            h.insert(k, HeaderValue::from_static(v));
            assert_eq!(retry_after(&h), Some(Duration::from_secs(86_400)));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn any_retry_header_is_read_without_a_panic(
            ms in "[-+0-9eE.a-zA-Z ,:]{0,24}",
            secs in "[-+0-9eE.a-zA-Z ,:]{0,40}",
            bodies in proptest::collection::vec(proptest::num::f64::ANY, 0..4),
        ) {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&ms) { h.insert("retry-after-ms", v); }
            if let Ok(v) = HeaderValue::from_str(&secs) { h.insert("retry-after", v); }
            let _ = retry_after(&h);
            for b in bodies {
                let mut h = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&b.to_string()) { h.insert("retry-after-ms", v); }
                let _ = retry_after(&h);
            }
        }
    }

    #[test]
    fn parses_both_shapes() {
        let a = r#"{"content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}],
                    "stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":3}}"#;
        let c = parse_completion(Api::Anthropic, a).unwrap();
        assert_eq!(c.text, "hi there");
        assert_eq!(c.usage.unwrap().output_tokens, 3);
        let o = r#"{"choices":[{"message":{"content":"x"},"finish_reason":"length"}],
                    "usage":{"prompt_tokens":5,"completion_tokens":7}}"#;
        let c = parse_completion(Api::OpenAi, o).unwrap();
        assert!(c.truncated);
        assert_eq!(c.usage.unwrap().input_tokens, 5);
        assert!(parse_completion(Api::OpenAi, "<html>").is_err());
        let no_usage =
            parse_completion(Api::OpenAi, r#"{"choices":[{"message":{"content":"x"}}]}"#);
        assert_eq!(no_usage.unwrap().usage, None);
    }

    #[test]
    fn error_bodies_and_credit() {
        let (k, m) = error_detail(
            r#"{"error":{"type":"insufficient_quota","message":"You exceeded\nyour quota"}}"#,
        );
        assert!(is_out_of_credit(&k, &m));
        assert_eq!(m, "You exceeded your quota");
        let (k, m) = error_detail(
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
        );
        assert!(!is_out_of_credit(&k, &m));
        assert_eq!(error_detail("Bad Gateway").1, "Bad Gateway");
    }

    fn body_for(llm: &str, base: Option<&str>) -> Value {
        let spec = LlmSpec::parse(llm, base).unwrap();
        let c = Client::new(spec, None, Price::FREE, RetryPolicy::default()).unwrap();
        let msgs = [Message {
            role: Role::User,
            content: "hi".into(),
        }];
        c.body(&Turn {
            system: "sys",
            messages: &msgs,
            max_tokens: 77,
        })
    }

    #[test]
    fn request_bodies_per_shape() {
        let a = body_for("anthropic/claude-sonnet-4-6", None);
        assert_eq!(a["system"], "sys");
        assert_eq!(a["max_tokens"], 77);
        assert_eq!(a["messages"][0]["role"], "user");
        let o = body_for("openai/gpt-5", None);
        assert_eq!(o["max_completion_tokens"], 77);
        assert!(o.get("max_tokens").is_none());
        assert_eq!(o["messages"][0]["role"], "system");
        let v = body_for("vllm/llama", Some("http://127.0.0.1:8000/v1"));
        assert_eq!(v["max_tokens"], 77);
    }

    #[test]
    fn clean_strips_controls_and_caps() {
        assert_eq!(clean("a\u{1b}[31mb\n c", 100), "a [31mb c");
        assert_eq!(clean("abcdef", 3), "abc…");
    }
}
