//! Workload traces: the JSONL format forge replays, its loading and its validation.
//!
//! One request a line: `prompt` (string) or `messages` (chat array), `expected_output_tokens`
//! (integer), optional `arrival_offset_s` (seconds from the start), optional
//! `expected_output` (reference text for accuracy checks). A bad line is reported as
//! `FILE:LINE: field: why`; loading reports every bad line and returns no requests, so
//! nothing is sent from a half-valid file.

pub mod stats;
pub mod synth;

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Largest `expected_output_tokens` accepted (a typo guard, far above any real model).
pub const MAX_OUTPUT_TOKENS: u64 = 1 << 20;
/// Latest `arrival_offset_s` a trace may ask for: a week of traffic (a replay longer than
/// that is a mistake, and `1e300` would overflow every clock).
pub const MAX_ARRIVAL_OFFSET_S: f64 = 7.0 * 86_400.0;
/// How many bad lines one error lists before it says how many more there were.
const MAX_LISTED_ERRORS: usize = 20;

/// A chat message (`{"role": ..., "content": ...}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The message text.
    pub content: String,
}

/// Render chat messages the way a Llama-3-style chat template does, ending with the
/// assistant header so generation starts right after it (the text forge's stand-in
/// tokenizer counts for a chat request).
pub fn render_chat(messages: &[ChatMessage]) -> String {
    let mut s = String::from("<|begin_of_text|>");
    for m in messages {
        s.push_str("<|start_header_id|>");
        s.push_str(&m.role);
        s.push_str("<|end_header_id|>\n\n");
        s.push_str(&m.content);
        s.push_str("<|eot_id|>");
    }
    s.push_str("<|start_header_id|>assistant<|end_header_id|>\n\n");
    s
}

/// What a request sends: a completion prompt or a chat conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestInput {
    /// `/v1/completions` style text prompt.
    Prompt(String),
    /// `/v1/chat/completions` style message list.
    Messages(Vec<ChatMessage>),
}

impl RequestInput {
    /// The text a completions endpoint receives: the prompt, or the messages flattened with
    /// a simple role-tagged template (used when a chat workload targets `/v1/completions`).
    pub fn as_prompt_text(&self) -> String {
        match self {
            RequestInput::Prompt(p) => p.clone(),
            RequestInput::Messages(m) => render_chat(m),
        }
    }

    /// The messages a chat endpoint receives: the messages, or the prompt as one user turn.
    pub fn as_messages(&self) -> Vec<ChatMessage> {
        match self {
            RequestInput::Prompt(p) => vec![ChatMessage {
                role: "user".into(),
                content: p.clone(),
            }],
            RequestInput::Messages(m) => m.clone(),
        }
    }
}

/// One request of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadRequest {
    /// 1-based line in the source file (0 for synthesized requests).
    pub line: usize,
    /// What to send.
    pub input: RequestInput,
    /// Output length the request should produce (pinned with `ignore_eos`/`min_tokens`).
    pub expected_output_tokens: u32,
    /// Seconds after the start of the replay at which the request arrives (trace timing).
    pub arrival_offset_s: Option<f64>,
    /// Reference answer, for accuracy scoring.
    pub expected_output: Option<String>,
}

/// A loaded, validated workload.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// Where it came from (for messages and the run record).
    pub source: PathBuf,
    /// The requests in file order.
    pub requests: Vec<WorkloadRequest>,
}

impl Workload {
    /// True when at least one request carries an `arrival_offset_s`.
    pub fn has_arrival_offsets(&self) -> bool {
        self.requests.iter().any(|r| r.arrival_offset_s.is_some())
    }
}

/// One problem on one line.
#[derive(Debug, Clone, PartialEq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// The offending field (`json` when the line does not parse at all).
    pub field: String,
    /// What is wrong with it.
    pub why: String,
}

/// Why a workload could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// The file could not be read.
    #[error("{path}: cannot read workload: {error}")]
    Io {
        /// The workload path.
        path: PathBuf,
        /// The I/O error (in the message, not a `source`: said once).
        error: std::io::Error,
    },
    /// One or more lines are invalid; nothing is sent.
    #[error("{}", render_line_errors(path, errors, *more))]
    Invalid {
        /// The workload path.
        path: PathBuf,
        /// The first bad lines.
        errors: Vec<LineError>,
        /// How many further bad lines were not listed.
        more: usize,
    },
    /// The file holds no requests.
    #[error("{path}: workload is empty (expected one JSON request per line)")]
    Empty {
        /// The workload path.
        path: PathBuf,
    },
}

fn render_line_errors(path: &Path, errors: &[LineError], more: usize) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}:{}: {}: {}",
            path.display(),
            e.line,
            e.field,
            e.why
        ));
    }
    if more > 0 {
        out.push_str(&format!("\n... and {more} more invalid lines"));
    }
    out
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.field, self.why)
    }
}

/// Load and validate a JSONL workload. Blank lines and lines starting with `#` are skipped.
/// A line that is not UTF-8 is a bad line like any other (`FILE:LINE: json: not valid
/// UTF-8 ...`).
pub fn load(path: &Path) -> Result<Workload, WorkloadError> {
    let bytes = std::fs::read(path).map_err(|error| WorkloadError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    match crate::text::decode(&bytes) {
        Ok(text) => parse(path, text),
        Err(_) => parse_lines(path, bytes.split(|b| *b == b'\n').map(crate::text::decode)),
    }
}

/// Parse workload text (the body of [`load`], separate so tests need no files).
pub fn parse(path: &Path, text: &str) -> Result<Workload, WorkloadError> {
    parse_lines(path, text.lines().map(Ok))
}

/// Parse lines, each already decoded or the place of its first byte that is not UTF-8.
fn parse_lines<'a>(
    path: &Path,
    lines: impl Iterator<Item = Result<&'a str, crate::text::BadUtf8>>,
) -> Result<Workload, WorkloadError> {
    let mut requests = Vec::new();
    let mut errors = Vec::new();
    for (idx, raw) in lines.enumerate() {
        let line = idx + 1;
        let raw = match raw {
            Ok(raw) => raw,
            Err(bad) => {
                errors.push(err(line, "json", bad.why()));
                continue;
            }
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        match parse_line(line, trimmed) {
            Ok(req) => requests.push(req),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        let more = errors.len().saturating_sub(MAX_LISTED_ERRORS);
        errors.truncate(MAX_LISTED_ERRORS);
        return Err(WorkloadError::Invalid {
            path: path.to_path_buf(),
            errors,
            more,
        });
    }
    if requests.is_empty() {
        return Err(WorkloadError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(Workload {
        source: path.to_path_buf(),
        requests,
    })
}

fn err(line: usize, field: &str, why: impl Into<String>) -> LineError {
    LineError {
        line,
        field: field.to_string(),
        why: why.into(),
    }
}

/// serde_json's message with the column instead of its `line 1 column C` (the line is
/// the file's, in front).
fn json_why(e: &serde_json::Error) -> String {
    let msg = crate::text::without_location(&e.to_string());
    match e.column() {
        0 => msg,
        c => format!("{msg} at column {c}"),
    }
}

fn parse_line(line: usize, text: &str) -> Result<WorkloadRequest, LineError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| err(line, "json", format!("not valid JSON ({})", json_why(&e))))?;
    let obj = value
        .as_object()
        .ok_or_else(|| err(line, "json", "expected a JSON object"))?;
    let input = parse_input(line, obj)?;
    let expected_output_tokens = parse_output_tokens(line, obj.get("expected_output_tokens"))?;
    let arrival_offset_s = parse_offset(line, obj.get("arrival_offset_s"))?;
    let expected_output = match obj.get("expected_output") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(err(line, "expected_output", "must be a string")),
    };
    Ok(WorkloadRequest {
        line,
        input,
        expected_output_tokens,
        arrival_offset_s,
        expected_output,
    })
}

fn parse_input(
    line: usize,
    obj: &serde_json::Map<String, Value>,
) -> Result<RequestInput, LineError> {
    match (obj.get("prompt"), obj.get("messages")) {
        (Some(_), Some(_)) => Err(err(
            line,
            "prompt",
            "give either `prompt` or `messages`, not both",
        )),
        (None, None) => Err(err(
            line,
            "prompt",
            "missing: each line needs `prompt` (string) or `messages` (chat array)",
        )),
        (Some(Value::String(p)), None) if p.is_empty() => {
            Err(err(line, "prompt", "must not be empty"))
        }
        (Some(Value::String(p)), None) => Ok(RequestInput::Prompt(p.clone())),
        (Some(_), None) => Err(err(line, "prompt", "must be a string")),
        (None, Some(m)) => parse_messages(line, m).map(RequestInput::Messages),
    }
}

fn parse_messages(line: usize, value: &Value) -> Result<Vec<ChatMessage>, LineError> {
    let arr = value.as_array().ok_or_else(|| {
        err(
            line,
            "messages",
            "must be an array of {role, content} objects",
        )
    })?;
    if arr.is_empty() {
        return Err(err(line, "messages", "must not be empty"));
    }
    let mut out = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| err(line, &format!("{field}.role"), "missing or not a string"))?;
        if !matches!(role, "system" | "user" | "assistant" | "tool" | "developer") {
            return Err(err(
                line,
                &format!("{field}.role"),
                format!("unknown role {role:?} (system, user, assistant, tool, developer)"),
            ));
        }
        let content = m
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| err(line, &format!("{field}.content"), "missing or not a string"))?;
        out.push(ChatMessage {
            role: role.to_string(),
            content: content.to_string(),
        });
    }
    Ok(out)
}

fn parse_output_tokens(line: usize, value: Option<&Value>) -> Result<u32, LineError> {
    const FIELD: &str = "expected_output_tokens";
    let v = value.ok_or_else(|| err(line, FIELD, "missing (a positive integer)"))?;
    let n = v
        .as_u64()
        .ok_or_else(|| err(line, FIELD, format!("must be a positive integer, got {v}")))?;
    if n == 0 {
        return Err(err(line, FIELD, "must be at least 1"));
    }
    if n > MAX_OUTPUT_TOKENS {
        return Err(err(
            line,
            FIELD,
            format!("{n} is above the limit of {MAX_OUTPUT_TOKENS}"),
        ));
    }
    Ok(n as u32)
}

fn parse_offset(line: usize, value: Option<&Value>) -> Result<Option<f64>, LineError> {
    const FIELD: &str = "arrival_offset_s";
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(v) => {
            let x = v
                .as_f64()
                .ok_or_else(|| err(line, FIELD, format!("must be a number of seconds, got {v}")))?;
            if !x.is_finite() || x < 0.0 {
                return Err(err(line, FIELD, format!("must be >= 0, got {x}")));
            }
            if x > MAX_ARRIVAL_OFFSET_S {
                return Err(err(
                    line,
                    FIELD,
                    format!("{x:e} s is past the limit of {MAX_ARRIVAL_OFFSET_S} s (7 days)"),
                ));
            }
            Ok(Some(x))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chat_rendering_ends_with_assistant_header() {
        let m = vec![super::ChatMessage {
            role: "user".into(),
            content: "hi".into(),
        }];
        assert!(
            super::render_chat(&m).ends_with("<|start_header_id|>assistant<|end_header_id|>\n\n")
        );
    }

    use super::*;

    fn p(text: &str) -> Result<Workload, WorkloadError> {
        parse(Path::new("w.jsonl"), text)
    }

    #[test]
    fn bytes_that_are_not_utf8_are_a_bad_line_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.jsonl");
        std::fs::write(
            &path,
            b"{\"prompt\":\"hi\",\"expected_output_tokens\":5}\n{\"prompt\":\"a\xff\xfeb\",\"expected_output_tokens\":5}\n{\"prompt\":\"ok\",\"expected_output_tokens\":0}\r\n",
        )
        .unwrap();
        let e = load(&path).unwrap_err().to_string();
        let shown = path.display();
        assert_eq!(
            e,
            format!(
                "{shown}:2: json: not valid UTF-8 (byte 0xff at column 13); save the file as UTF-8\n\
                 {shown}:3: expected_output_tokens: must be at least 1"
            )
        );
        let missing = load(&dir.path().join("none.jsonl")).unwrap_err();
        assert!(std::error::Error::source(&missing).is_none(), "{missing}");
        assert_eq!(missing.to_string().matches("No such file").count(), 1);
    }

    #[test]
    fn json_errors_give_the_column_not_a_second_line() {
        let e = p("{\"prompt\": }\n").unwrap_err().to_string();
        assert_eq!(
            e,
            "w.jsonl:1: json: not valid JSON (expected value at column 12)"
        );
    }

    #[test]
    fn parses_prompt_and_messages() {
        let w = p(concat!(
            "{\"prompt\":\"hi\",\"expected_output_tokens\":5}\n",
            "\n# comment\n",
            "{\"messages\":[{\"role\":\"user\",\"content\":\"yo\"}],\"expected_output_tokens\":3,\"arrival_offset_s\":0.5,\"expected_output\":\"x\"}\n"
        ))
        .unwrap();
        assert_eq!(w.requests.len(), 2);
        assert_eq!(w.requests[0].line, 1);
        assert_eq!(w.requests[1].line, 4);
        assert_eq!(w.requests[1].arrival_offset_s, Some(0.5));
        assert_eq!(w.requests[1].expected_output.as_deref(), Some("x"));
        assert!(w.has_arrival_offsets());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = p(concat!(
            "{\"prompt\":\"ok\",\"expected_output_tokens\":5}\n",
            "{\"prompt\":\"ok\",\"expected_output_tokens\":-1}\n",
            "not json\n",
            "{\"prompt\":\"ok\",\"expected_output_tokens\":5,\"arrival_offset_s\":\"soon\"}\n",
            "{\"expected_output_tokens\":5}\n",
            "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}],\"expected_output_tokens\":5}\n",
            "{\"prompt\":\"a\",\"messages\":[],\"expected_output_tokens\":5}\n",
            "{\"prompt\":\"a\"}\n",
            "[1,2]\n",
        ))
        .unwrap_err()
        .to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(lines.len(), 8, "{e}");
        assert!(
            lines[0].starts_with("w.jsonl:2: expected_output_tokens: must be a positive integer")
        );
        assert!(lines[1].starts_with("w.jsonl:3: json: not valid JSON"));
        assert!(lines[2].starts_with("w.jsonl:4: arrival_offset_s: must be a number"));
        assert!(lines[3].starts_with("w.jsonl:5: prompt: missing"));
        assert!(lines[4].starts_with("w.jsonl:6: messages[0].role: unknown role"));
        assert!(lines[5].starts_with("w.jsonl:7: prompt: give either"));
        assert!(lines[6].starts_with("w.jsonl:8: expected_output_tokens: missing"));
        assert!(lines[7].starts_with("w.jsonl:9: json: expected a JSON object"));
    }

    #[test]
    fn zero_tokens_negative_offset_and_empty_file() {
        let e = p("{\"prompt\":\"a\",\"expected_output_tokens\":0,\"arrival_offset_s\":1}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "w.jsonl:1: expected_output_tokens: must be at least 1");
        let e = p("{\"prompt\":\"a\",\"expected_output_tokens\":2,\"arrival_offset_s\":-1}\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "w.jsonl:1: arrival_offset_s: must be >= 0, got -1");
        let e = p("{\"prompt\":\"a\",\"expected_output_tokens\":2,\"arrival_offset_s\":1e300}\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("w.jsonl:1: arrival_offset_s: 1e300 s is past the limit"),
            "{e}"
        );
        assert!(matches!(p("\n\n"), Err(WorkloadError::Empty { .. })));
    }

    #[test]
    fn long_error_lists_are_capped() {
        let text = "x\n".repeat(25);
        let e = p(&text).unwrap_err().to_string();
        assert_eq!(e.lines().count(), 21);
        assert!(e.ends_with("... and 5 more invalid lines"));
    }
}
