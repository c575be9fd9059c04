//! Request fields vLLM honours that the simulator cannot produce meaningfully: each is
//! refused with HTTP 400 "`<field>` is not supported by the simulator" (`BadRequestError`,
//! `param` = the field), never silently ignored. vLLM's own checks on these fields come
//! first, with vLLM's messages (`response_format` without its schema, `tools` /
//! `tool_choice` misuse, `continue_final_message` with `add_generation_prompt`, `suffix`).
//!
//! What the simulator does with every field of vLLM's `CompletionRequest` (C) and
//! `ChatCompletionRequest` (chat), field by field:
//!
//! | field | API | simulator |
//! | --- | --- | --- |
//! | `model`, `prompt`, `messages`, `stream`, `stream_options` | both | honoured |
//! | `max_tokens`, `max_completion_tokens`, `min_tokens`, `ignore_eos` | both | honoured |
//! | `n` | both | honoured: n sequences in the engine ([`super::sampling`]) |
//! | `stop`, `stop_token_ids`, `include_stop_str_in_output` | both | honoured ([`super::stop`]) |
//! | `logprobs`, `top_logprobs` | both | honoured, simulated values ([`super::logprobs`]) |
//! | `echo` | both | honoured (chat: the last message if it is the assistant's) |
//! | `temperature`, `top_p`, `top_k`, `min_p`, penalties, `seed` | both | validated as vLLM does; no effect on the stand-in text |
//! | `user`, `request_id`, `session_id`, `vllm_xargs`, `length_penalty` | both | accepted, no effect (as in vLLM without beam search or extensions) |
//! | `skip_special_tokens`, `spaces_between_special_tokens`, `add_special_tokens` | both | accepted, no effect: the stand-in tokenizer has no special tokens |
//! | `chat_template_kwargs`, `reasoning_effort`, `include_reasoning`, `parallel_tool_calls` | chat | accepted, no effect: the stand-in chat template has no variables, no reasoning parser runs |
//! | `mm_processor_kwargs`, `media_io_kwargs` | chat | accepted, no effect (text-only) |
//! | `tools` with `tool_choice: "none"` | chat | accepted; the stand-in template does not render tool definitions |
//! | `tools` / `tool_choice` otherwise | chat | 400: no tool-call parser is simulated |
//! | `response_format` other than `{"type": "text"}` | both | 400: structured output is not simulated |
//! | `structured_outputs`, `guided_*` | both | 400 |
//! | `logit_bias`, `allowed_token_ids`, `bad_words` (non-empty) | both | 400: the stand-in text cannot be steered |
//! | `use_beam_search`, `best_of` > `n` | both | 400 |
//! | `prompt_logprobs`, `logprob_token_ids` | both | 400 (after vLLM's own checks) |
//! | `return_tokens_as_token_ids`, `return_token_ids`, `return_prompt_text` (true) | both | 400 |
//! | `truncate_prompt_tokens`, `cache_salt`, `priority` ≠ 0 | both | 400: they would change the prompt or the schedule |
//! | `kv_transfer_params`, `ec_transfer_params` | both | 400: disaggregated serving is not simulated |
//! | `repetition_detection`, `thinking_token_budget`, `stream_interval`, `watermarking` | both | 400 |
//! | `suffix` | C | 400 with vLLM's own "suffix is not currently supported" |
//! | `prompt_embeds` | C | 400 |
//! | `chat_template`, `documents`, `continue_final_message`, `add_generation_prompt: false` | chat | 400: the stand-in template is fixed |
//! | any field vLLM does not know | both | ignored, as vLLM ignores it |

use serde_json::Value;

use super::api_error::BadRequest;
use super::body;

/// Which API a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Both,
    Chat,
    Completions,
}

/// When a present field is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// Any value but `null`.
    Set,
    /// `true`.
    True,
    /// A non-empty list, object or string.
    NonEmpty,
    /// A number other than 0.
    NonZero,
}

/// The refused fields (the table in the module docs), checked in this order.
const REFUSED: &[(&str, Api, When)] = &[
    ("structured_outputs", Api::Both, When::Set),
    ("guided_json", Api::Both, When::Set),
    ("guided_regex", Api::Both, When::Set),
    ("guided_choice", Api::Both, When::Set),
    ("guided_grammar", Api::Both, When::Set),
    ("guided_json_object", Api::Both, When::Set),
    ("guided_decoding_backend", Api::Both, When::Set),
    ("guided_whitespace_pattern", Api::Both, When::Set),
    ("logit_bias", Api::Both, When::NonEmpty),
    ("allowed_token_ids", Api::Both, When::Set),
    ("bad_words", Api::Both, When::NonEmpty),
    ("use_beam_search", Api::Both, When::True),
    ("prompt_logprobs", Api::Both, When::Set),
    ("logprob_token_ids", Api::Both, When::Set),
    ("return_tokens_as_token_ids", Api::Both, When::True),
    ("return_token_ids", Api::Both, When::True),
    ("return_prompt_text", Api::Chat, When::True),
    ("truncate_prompt_tokens", Api::Both, When::Set),
    ("cache_salt", Api::Both, When::Set),
    ("priority", Api::Both, When::NonZero),
    ("kv_transfer_params", Api::Both, When::Set),
    ("ec_transfer_params", Api::Both, When::Set),
    ("repetition_detection", Api::Both, When::Set),
    ("thinking_token_budget", Api::Both, When::Set),
    ("stream_interval", Api::Both, When::Set),
    ("watermarking", Api::Both, When::True),
    ("prompt_embeds", Api::Completions, When::Set),
    ("chat_template", Api::Chat, When::Set),
    ("documents", Api::Chat, When::Set),
    ("continue_final_message", Api::Chat, When::True),
];

/// Refuse what the simulator cannot model (vLLM's checks on those fields first); `n` is
/// the request's `n` (for `best_of`).
pub fn check(v: &Value, chat: bool, n: u32) -> Result<(), BadRequest> {
    check_response_format(v)?;
    if chat {
        check_tool_usage(v)?;
        check_generation_prompt(v)?;
    } else if body::field(v, "suffix").is_some() {
        return Err(BadRequest::new("suffix is not currently supported"));
    }
    for &(field, api, when) in REFUSED {
        let applies = api == Api::Both || (api == Api::Chat) == chat;
        if applies && body::field(v, field).is_some_and(|x| refused(x, when)) {
            return Err(BadRequest::unsupported(field));
        }
    }
    let best_of = body::integer(v, "best_of")?;
    if best_of.is_some_and(|b| b > i64::from(n)) {
        return Err(BadRequest::unsupported("best_of"));
    }
    Ok(())
}

fn refused(x: &Value, when: When) -> bool {
    match when {
        When::Set => true,
        When::True => x.as_bool() == Some(true),
        When::NonEmpty => match x {
            Value::Array(a) => !a.is_empty(),
            Value::Object(o) => !o.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        },
        When::NonZero => x.as_f64() != Some(0.0),
    }
}

/// vLLM's `validate_response_format`, then anything but plain text is refused.
fn check_response_format(v: &Value) -> Result<(), BadRequest> {
    let Some(rf) = body::field(v, "response_format") else {
        return Ok(());
    };
    let kind = rf.get("type").and_then(Value::as_str);
    if kind == Some("json_schema") && body::field(rf, "json_schema").is_none() {
        return Err(BadRequest::vllm(
            "When response_format type is 'json_schema', the 'json_schema' field must be \
             provided.",
            "response_format",
            None,
        ));
    }
    if kind == Some("text") {
        return Ok(());
    }
    Err(BadRequest::unsupported("response_format"))
}

/// vLLM's `check_tool_usage`; tools the model may call are then refused.
fn check_tool_usage(v: &Value) -> Result<(), BadRequest> {
    let tools = body::field(v, "tools");
    if tools.and_then(Value::as_array).is_some_and(Vec::is_empty) {
        return Err(BadRequest::vllm(
            "`tools` must not be an empty array. Either provide at least one tool or omit \
             the field entirely.",
            "tools",
            None,
        ));
    }
    let choice = match v.get("tool_choice") {
        None if tools.is_some() => Some(Value::String("auto".into())),
        other => other.filter(|c| !c.is_null()).cloned(),
    };
    let Some(choice) = choice else {
        return Ok(());
    };
    if choice.as_str() == Some("none") {
        return Ok(());
    }
    if tools.is_none() {
        return Err(BadRequest::vllm(
            "When using `tool_choice`, `tools` must be set.",
            "tool_choice",
            None,
        ));
    }
    match &choice {
        Value::String(s) if s == "auto" || s == "required" => {}
        Value::Object(_) => {}
        other => {
            let shown = other
                .as_str()
                .map_or_else(|| other.to_string(), String::from);
            return Err(BadRequest::vllm(
                &format!(
                    "Invalid value for `tool_choice`: {shown}! Only named tools, \"none\", \
                     \"auto\" or \"required\" are supported."
                ),
                "tool_choice",
                None,
            ));
        }
    }
    Err(BadRequest::unsupported("tools"))
}

/// vLLM's `check_generation_prompt` (`add_generation_prompt` defaults to true), then a
/// template without the generation prompt is refused.
fn check_generation_prompt(v: &Value) -> Result<(), BadRequest> {
    let add = body::boolean(v, "add_generation_prompt")?.unwrap_or(true);
    let cont = body::boolean(v, "continue_final_message")?.unwrap_or(false);
    if cont && add {
        return Err(BadRequest::new(
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True.",
        ));
    }
    if !add && !cont {
        return Err(BadRequest::unsupported("add_generation_prompt"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn err(v: Value, chat: bool) -> BadRequest {
        check(&v, chat, 1).unwrap_err()
    }

    #[test]
    fn plain_requests_pass() {
        let ok = json!({"messages": [], "response_format": {"type": "text"}, "logit_bias": {},
            "tool_choice": "none", "tools": [{"type": "function", "function": {"name": "f"}}],
            "priority": 0, "use_beam_search": false, "best_of": 1, "chat_template_kwargs": {}});
        check(&ok, true, 1).unwrap();
        check(&json!({"prompt": "x", "seed": 3, "user": "u"}), false, 1).unwrap();
        check(&json!({"prompt": "x", "best_of": 2}), false, 2).unwrap();
    }

    #[test]
    fn refused_fields_name_themselves() {
        let e = err(json!({"response_format": {"type": "json_object"}}), true);
        assert_eq!(
            e.message,
            "response_format is not supported by the simulator"
        );
        assert_eq!(e.param.as_deref(), Some("response_format"));
        let tools = json!([{"type": "function", "function": {"name": "f"}}]);
        let e = err(json!({"tools": tools}), true);
        assert_eq!(e.message, "tools is not supported by the simulator");
        let e = err(json!({"tools": tools, "tool_choice": "required"}), true);
        assert_eq!(e.param.as_deref(), Some("tools"));
        for (field, value) in [
            ("logit_bias", json!({"5": 1.0})),
            ("guided_json", json!({})),
            ("use_beam_search", json!(true)),
            ("prompt_logprobs", json!(1)),
            ("priority", json!(3)),
            ("cache_salt", json!("s")),
        ] {
            let e = err(json!({ field: value }), false);
            assert_eq!(
                e.message,
                format!("{field} is not supported by the simulator")
            );
        }
        assert_eq!(
            err(json!({"best_of": 3}), false).param.as_deref(),
            Some("best_of")
        );
        assert_eq!(
            err(json!({"add_generation_prompt": false}), true)
                .param
                .as_deref(),
            Some("add_generation_prompt")
        );
    }

    #[test]
    fn vllms_own_checks_come_first() {
        assert_eq!(
            err(json!({"suffix": "x"}), false).message,
            "suffix is not currently supported"
        );
        assert_eq!(
            err(json!({"response_format": {"type": "json_schema"}}), false).message,
            "When response_format type is 'json_schema', the 'json_schema' field must be \
             provided. (parameter=response_format)"
        );
        assert_eq!(
            err(json!({"tools": []}), true).param.as_deref(),
            Some("tools")
        );
        assert_eq!(
            err(json!({"tool_choice": "auto"}), true).message,
            "When using `tool_choice`, `tools` must be set. (parameter=tool_choice)"
        );
        assert_eq!(
            err(json!({"continue_final_message": true}), true).message,
            "Cannot set both `continue_final_message` and `add_generation_prompt` to True."
        );
        // suffix is a completions field; chat ignores it as vLLM does.
        check(&json!({"suffix": "x"}), true, 1).unwrap();
    }
}
