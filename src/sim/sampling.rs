//! vLLM's sampling parameters as the simulator reads them from a completions or chat body:
//! what it honours (`n`, `stop`, `stop_token_ids`, `include_stop_str_in_output`,
//! `logprobs`/`top_logprobs`, `echo`) and the checks vLLM makes on every sampling knob,
//! with vLLM's messages.
//!
//! Source: vLLM main (the 0.2x series the simulator reports), read at
//! `vllm/sampling_params.py` (`_verify_args`, `_verify_num_sequences`,
//! `_verify_greedy_sampling`, `_validate_logprobs`) and the `check_logprobs` validators of
//! `vllm/entrypoints/openai/{completion,chat_completion}/protocol.py`. Those raise
//! `VLLMValidationError`; vLLM's HTTP answer is its `str()`, which appends
//! `(parameter=…, value=…)` when the error names them ([`BadRequest::vllm`]).
//!
//! The knobs that shape a real sampler (`temperature`, `top_p`, `top_k`, `min_p`, the
//! penalties, `seed`) are validated exactly as vLLM does and otherwise have no effect: the
//! simulator's text is a deterministic stand-in ([`crate::tokenize::output_piece`]), the
//! same whatever the sampler's settings, as greedy decoding would be.

use serde_json::Value;

use super::api_error::{BadRequest, py_float};
use super::body;

/// vLLM's `_SAMPLING_EPS`: a temperature below it is greedy sampling.
const SAMPLING_EPS: f64 = 1e-5;
/// vLLM's default `VLLM_MAX_N_SEQUENCES`.
const DEFAULT_MAX_N: i64 = 16384;

/// The sampling options the simulator honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    /// `n`: sequences sampled from the prompt (choices in the response).
    pub n: u32,
    /// `stop` strings.
    pub stop: Vec<String>,
    /// `stop_token_ids`.
    pub stop_token_ids: Vec<u32>,
    /// `include_stop_str_in_output`.
    pub include_stop_str: bool,
    /// Alternatives reported per token when logprobs are asked for (completions'
    /// `logprobs`, chat's `top_logprobs` with `logprobs: true`); `None`: no logprobs.
    pub logprobs: Option<u32>,
    /// `echo`.
    pub echo: bool,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            n: 1,
            stop: Vec::new(),
            stop_token_ids: Vec::new(),
            include_stop_str: false,
            logprobs: None,
            echo: false,
        }
    }
}

/// Server-side limits on logprobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogprobLimits {
    /// `--max-logprobs` (vLLM's default 20; -1: the vocabulary).
    pub max_logprobs: i64,
    /// The model's vocabulary size (what `-1` asks for).
    pub vocab_size: u64,
}

impl Default for LogprobLimits {
    fn default() -> Self {
        LogprobLimits {
            max_logprobs: 20,
            vocab_size: u64::from(crate::tokenize::VOCAB),
        }
    }
}

/// Read and check the sampling fields of a body, in vLLM's order: the request model's
/// `check_logprobs` validator, then `SamplingParams._verify_args`, the greedy check, and
/// the engine's logprobs limit.
pub fn parse(v: &Value, chat: bool, limits: LogprobLimits) -> Result<Sampling, BadRequest> {
    let stream = body::boolean(v, "stream")?.unwrap_or(false);
    let requested = requested_logprobs(v, chat, stream)?;
    let n = verify_args(v)?;
    let temperature = body::number(v, "temperature")?.unwrap_or(1.0);
    if temperature < SAMPLING_EPS && n > 1 {
        return Err(BadRequest::new(format!(
            "n must be 1 when using greedy sampling, got {n}."
        )));
    }
    let logprobs = check_logprob_limit(requested, limits)?;
    Ok(Sampling {
        n: u32::try_from(n).unwrap_or(u32::MAX),
        stop: body::str_or_list(v, "stop")?,
        stop_token_ids: stop_token_ids(v)?,
        include_stop_str: body::boolean(v, "include_stop_str_in_output")?.unwrap_or(false),
        logprobs,
        echo: body::boolean(v, "echo")?.unwrap_or(false),
    })
}

/// The protocol's `check_logprobs`: the number of logprobs asked for (`-1`: all).
fn requested_logprobs(v: &Value, chat: bool, stream: bool) -> Result<Option<i64>, BadRequest> {
    check_prompt_logprobs(v, stream)?;
    if !chat {
        let n = logprob_int(v, "logprobs")?;
        return positive_or_all(n, "logprobs");
    }
    let top = positive_or_all(logprob_int(v, "top_logprobs")?, "top_logprobs")?;
    let on = body::boolean(v, "logprobs")?.unwrap_or(false);
    if top.is_some_and(|t| t == -1 || t > 0) && !on {
        return Err(BadRequest::vllm(
            "when using `top_logprobs`, `logprobs` must be set to true.",
            "top_logprobs",
            None,
        ));
    }
    Ok(on.then(|| top.unwrap_or(0)))
}

/// `prompt_logprobs` is checked as vLLM does (the simulator then refuses it, see
/// [`super::unsupported`]).
fn check_prompt_logprobs(v: &Value, stream: bool) -> Result<(), BadRequest> {
    let Some(p) = logprob_int(v, "prompt_logprobs")? else {
        return Ok(());
    };
    if stream && (p > 0 || p == -1) {
        return Err(BadRequest::vllm(
            "`prompt_logprobs` are not available when `stream=True`.",
            "prompt_logprobs",
            None,
        ));
    }
    positive_or_all(Some(p), "prompt_logprobs").map(|_| ())
}

/// `logprobs`-like fields must be numbers ("`X` must be an integer.").
fn logprob_int(v: &Value, key: &str) -> Result<Option<i64>, BadRequest> {
    match body::field(v, key) {
        None => Ok(None),
        Some(x) if x.is_number() => body::as_int(x)
            .map(Some)
            .ok_or_else(|| body::type_error(key, "a valid integer")),
        Some(x) => Err(BadRequest::vllm(
            &format!("`{key}` must be an integer."),
            key,
            Some(py_str(x)),
        )),
    }
}

fn positive_or_all(n: Option<i64>, key: &str) -> Result<Option<i64>, BadRequest> {
    match n {
        Some(x) if x < 0 && x != -1 => Err(BadRequest::vllm(
            &format!("`{key}` must be a positive value or -1."),
            key,
            Some(x.to_string()),
        )),
        _ => Ok(n),
    }
}

/// `SamplingParams._verify_args` on the knobs the simulator validates; returns `n`.
fn verify_args(v: &Value) -> Result<i64, BadRequest> {
    let n = body::integer(v, "n")?.unwrap_or(1);
    verify_n(n)?;
    for key in ["presence_penalty", "frequency_penalty"] {
        let x = body::number(v, key)?.unwrap_or(0.0);
        if !(-2.0..=2.0).contains(&x) {
            let got = py_float(x);
            return Err(BadRequest::new(format!(
                "{key} must be in [-2, 2], got {got}."
            )));
        }
    }
    verify_repetition(body::number(v, "repetition_penalty")?.unwrap_or(1.0))?;
    verify_temperature(body::number(v, "temperature")?.unwrap_or(1.0))?;
    verify_top(v)?;
    verify_max_tokens(v)?;
    verify_stop(&body::str_or_list(v, "stop")?)?;
    Ok(n)
}

/// `_verify_num_sequences(n, "n")`.
fn verify_n(n: i64) -> Result<(), BadRequest> {
    if n < 1 {
        return Err(BadRequest::new(format!("n must be at least 1, got {n}.")));
    }
    let max_n = std::env::var("VLLM_MAX_N_SEQUENCES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(DEFAULT_MAX_N);
    if n > max_n {
        return Err(BadRequest::new(format!(
            "n must be at most {max_n}, got {n}. To increase this limit, set the \
             VLLM_MAX_N_SEQUENCES environment variable."
        )));
    }
    Ok(())
}

fn verify_repetition(x: f64) -> Result<(), BadRequest> {
    if x <= 0.0 {
        let got = py_float(x);
        return Err(BadRequest::new(format!(
            "repetition_penalty must be greater than zero, got {got}."
        )));
    }
    Ok(())
}

fn verify_temperature(t: f64) -> Result<(), BadRequest> {
    let got = py_float(t);
    let sentence = if t < 0.0 {
        format!("temperature must be non-negative, got {got}.")
    } else if t > 2.0 {
        format!("temperature must be in [0, 2], got {got}.")
    } else {
        return Ok(());
    };
    Err(BadRequest::vllm(&sentence, "temperature", Some(got)))
}

/// `top_p`, `top_k`, `min_p`.
fn verify_top(v: &Value) -> Result<(), BadRequest> {
    let top_p = body::number(v, "top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        let got = py_float(top_p);
        let sentence = format!("top_p must be in (0, 1], got {got}.");
        return Err(BadRequest::vllm(&sentence, "top_p", Some(got)));
    }
    let top_k = body::integer(v, "top_k")?.unwrap_or(0);
    if top_k < -1 {
        return Err(BadRequest::new(format!(
            "top_k must be 0 (disable), or at least 1, got {top_k}."
        )));
    }
    let min_p = body::number(v, "min_p")?.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_p) {
        let got = py_float(min_p);
        return Err(BadRequest::new(format!(
            "min_p must be in [0, 1], got {got}."
        )));
    }
    Ok(())
}

/// `max_tokens` / `max_completion_tokens` of 0 (completions with `echo` may ask for 0:
/// vLLM then generates one token and returns only the prompt).
fn verify_max_tokens(v: &Value) -> Result<(), BadRequest> {
    let echo = body::boolean(v, "echo")?.unwrap_or(false);
    for key in ["max_completion_tokens", "max_tokens"] {
        if body::integer(v, key)? == Some(0) && !(echo && key == "max_tokens") {
            return Err(BadRequest::vllm(
                "max_tokens must be at least 1, got 0.",
                "max_tokens",
                Some("0".into()),
            ));
        }
    }
    Ok(())
}

fn verify_stop(stop: &[String]) -> Result<(), BadRequest> {
    if stop.iter().any(String::is_empty) {
        return Err(BadRequest::new("stop cannot contain an empty string."));
    }
    Ok(())
}

fn stop_token_ids(v: &Value) -> Result<Vec<u32>, BadRequest> {
    let ids = body::int_list(v, "stop_token_ids")?;
    ids.iter()
        .map(|&i| u32::try_from(i).ok())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| body::type_error("stop_token_ids", "a valid list of token ids"))
}

/// The engine's `_validate_logprobs`: `-1` means the whole vocabulary, and no more than
/// `--max-logprobs` may be asked for.
fn check_logprob_limit(
    requested: Option<i64>,
    limits: LogprobLimits,
) -> Result<Option<u32>, BadRequest> {
    let Some(k) = requested else {
        return Ok(None);
    };
    let vocab = i64::try_from(limits.vocab_size).unwrap_or(i64::MAX);
    let max = if limits.max_logprobs == -1 {
        vocab
    } else {
        limits.max_logprobs
    };
    let k = if k == -1 { vocab } else { k };
    if k > max {
        let sentence =
            format!("Requested sample logprobs of {k}, which is greater than max allowed: {max}");
        return Err(BadRequest::vllm(&sentence, "logprobs", Some(k.to_string())));
    }
    Ok(Some(u32::try_from(k).unwrap_or(u32::MAX)))
}

/// Python's `str()` of a JSON value as vLLM's message prints it.
fn py_str(x: &Value) -> String {
    match x {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn p(v: Value, chat: bool) -> Result<Sampling, BadRequest> {
        parse(&v, chat, LogprobLimits::default())
    }

    fn msg(v: Value, chat: bool) -> String {
        p(v, chat).unwrap_err().message
    }

    #[test]
    fn defaults() {
        assert_eq!(p(json!({}), false).unwrap(), Sampling::default());
        assert_eq!(
            p(json!({"n": null, "stop": null}), true).unwrap(),
            Sampling::default()
        );
    }

    #[test]
    fn verify_args_messages_are_vllms() {
        assert_eq!(msg(json!({"n": 0}), false), "n must be at least 1, got 0.");
        assert_eq!(
            msg(json!({"temperature": -1}), true),
            "temperature must be non-negative, got -1.0. (parameter=temperature, value=-1.0)"
        );
        let e = p(json!({"temperature": 2.5}), false).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
        assert_eq!(
            msg(json!({"top_p": 0}), false),
            "top_p must be in (0, 1], got 0.0. (parameter=top_p, value=0.0)"
        );
        assert_eq!(
            msg(json!({"top_k": -2}), false),
            "top_k must be 0 (disable), or at least 1, got -2."
        );
        assert_eq!(
            msg(json!({"presence_penalty": 3}), false),
            "presence_penalty must be in [-2, 2], got 3.0."
        );
        assert_eq!(
            msg(json!({"min_p": 1.5}), false),
            "min_p must be in [0, 1], got 1.5."
        );
        assert_eq!(
            msg(json!({"repetition_penalty": 0}), false),
            "repetition_penalty must be greater than zero, got 0.0."
        );
        assert_eq!(
            msg(json!({"stop": ["a", ""]}), false),
            "stop cannot contain an empty string."
        );
        assert_eq!(
            msg(json!({"n": 2, "temperature": 0}), false),
            "n must be 1 when using greedy sampling, got 2."
        );
        assert_eq!(
            msg(json!({"max_tokens": 0}), false),
            "max_tokens must be at least 1, got 0. (parameter=max_tokens, value=0)"
        );
        assert!(p(json!({"max_tokens": 0, "echo": true}), false).is_ok());
    }

    #[test]
    fn completion_logprobs() {
        assert_eq!(p(json!({"logprobs": 3}), false).unwrap().logprobs, Some(3));
        assert_eq!(p(json!({"logprobs": 0}), false).unwrap().logprobs, Some(0));
        assert_eq!(
            msg(json!({"logprobs": -2}), false),
            "`logprobs` must be a positive value or -1. (parameter=logprobs, value=-2)"
        );
        assert_eq!(
            msg(json!({"logprobs": "x"}), false),
            "`logprobs` must be an integer. (parameter=logprobs, value=x)"
        );
        assert_eq!(
            msg(json!({"logprobs": 21}), false),
            "Requested sample logprobs of 21, which is greater than max allowed: 20 \
             (parameter=logprobs, value=21)"
        );
        assert_eq!(
            msg(json!({"logprobs": -1}), false),
            "Requested sample logprobs of 128000, which is greater than max allowed: 20 \
             (parameter=logprobs, value=128000)"
        );
        let all = LogprobLimits {
            max_logprobs: -1,
            vocab_size: 50,
        };
        let s = parse(&json!({"logprobs": -1}), false, all).unwrap();
        assert_eq!(s.logprobs, Some(50));
    }

    #[test]
    fn chat_logprobs() {
        let s = p(json!({"logprobs": true, "top_logprobs": 2}), true).unwrap();
        assert_eq!(s.logprobs, Some(2));
        assert_eq!(
            p(json!({"logprobs": true}), true).unwrap().logprobs,
            Some(0)
        );
        assert_eq!(p(json!({"top_logprobs": 0}), true).unwrap().logprobs, None);
        assert_eq!(
            msg(json!({"top_logprobs": 2}), true),
            "when using `top_logprobs`, `logprobs` must be set to true. \
             (parameter=top_logprobs)"
        );
        assert_eq!(
            msg(json!({"logprobs": true, "top_logprobs": -5}), true),
            "`top_logprobs` must be a positive value or -1. (parameter=top_logprobs, value=-5)"
        );
        assert_eq!(
            msg(json!({"prompt_logprobs": 1, "stream": true}), true),
            "`prompt_logprobs` are not available when `stream=True`. \
             (parameter=prompt_logprobs)"
        );
    }

    #[test]
    fn stop_fields() {
        let s = p(
            json!({"stop": " the", "stop_token_ids": [5, 7], "include_stop_str_in_output": true}),
            false,
        )
        .unwrap();
        assert_eq!(s.stop, vec![" the".to_string()]);
        assert_eq!(s.stop_token_ids, vec![5, 7]);
        assert!(s.include_stop_str);
        let s = p(json!({"stop": ["a", "b"], "n": 3, "echo": true}), false).unwrap();
        assert_eq!(s.stop.len(), 2);
        assert_eq!(s.n, 3);
        assert!(s.echo);
        assert!(p(json!({"stop": 5}), false).is_err());
    }
}
