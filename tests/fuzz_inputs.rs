//! Property tests over the untrusted inputs forge reads overnight — workload lines, SSE
//! frames from a server it did not write, LLM replies — each for a bounded number of cases
//! (run by `.ci/run` through the test suite).
//! The rest live beside their parsers: recipe YAML (`recipe`), playbooks (`playbook`),
//! `config.json` (`sim::model`), LLM headers (`agent::llm::http`), engine logs
//! (`tests/log_classifiers.rs`), numeric flags (`tests/cli_bounds.rs`), candidate diffs
//! (`patch::diff`, `patch::safety`). 0 panics, 0 aborts.

mod common;

use std::path::Path;
use std::time::Instant;

use common::llm_ctx::{Fixture, settings};
use forge::agent::llm::parse;
use forge::bench::Endpoint;
use forge::bench::sse::SseParser;
use forge::bench::stream::StreamState;
use forge::recipe::Layer;
use proptest::prelude::*;

/// JSON-ish lines: real workload fields with hostile values, or raw bytes.
fn workload_line() -> impl Strategy<Value = String> {
    let number = prop_oneof![
        Just("1e300".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e-300".to_string()),
        Just("18446744073709551616".to_string()),
        Just("NaN".to_string()),
        (0u64..5000).prop_map(|n| n.to_string()),
        "[0-9.eE+-]{1,12}",
    ];
    let text = "[\\PC]{0,12}";
    prop_oneof![
        (text, number.clone(), number).prop_map(|(p, n, o)| format!(
            "{{\"prompt\": {p:?}, \"expected_output_tokens\": {n}, \"arrival_offset_s\": {o}}}"
        )),
        ("[a-z]{0,6}", "[\\PC]{0,10}").prop_map(|(role, c)| format!(
            "{{\"messages\": [{{\"role\": {role:?}, \"content\": {c:?}}}], \"expected_output_tokens\": 4}}"
        )),
        "[\\PC]{0,40}",
        "\u{feff}\\{[\"a-z:, 0-9]{0,30}\\}",
    ]
}

/// A stream a server might send: SSE frames with any data, CR/LF variants, junk.
fn sse_stream() -> impl Strategy<Value = Vec<u8>> {
    let frame = prop_oneof![
        "[\\PC]{0,30}".prop_map(|d| format!("data: {d}\n\n")),
        "[ -~]{0,30}".prop_map(|d| format!("data:{d}\r\n\r\n")),
        Just("data: [DONE]\n\n".to_string()),
        Just("data: {\"choices\":[{\"text\":\"x\",\"finish_reason\":null}]}\n\n".to_string()),
        Just("data: {\"choices\":[]}\n\n".to_string()),
        Just(": keep-alive\n\n".to_string()),
        "(event|id|retry): [ -~]{0,10}\r?\n".prop_map(|s| s),
        "[\\PC\r\n]{0,20}",
    ];
    proptest::collection::vec(frame, 0..12).prop_map(|v| v.concat().into_bytes())
}

/// Every event of `bytes` fed in reads split at `cuts`, as owned strings.
fn events(bytes: &[u8], cuts: &[usize]) -> Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let mut p = SseParser::new();
    let mut out = Vec::new();
    let mut at = 0;
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.push(bytes.len());
    for end in points {
        if end < at {
            continue;
        }
        p.feed(&bytes[at..end], |e| {
            out.push((e.event.to_vec(), e.id.to_vec(), e.data.to_vec()))
        });
        at = end;
    }
    p.finish(|e| out.push((e.event.to_vec(), e.id.to_vec(), e.data.to_vec())));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A workload is parsed or refused with `FILE:LINE: field: why`, never a panic.
    #[test]
    fn workload_lines_parse_or_name_their_line(lines in proptest::collection::vec(workload_line(), 1..6)) {
        let text = lines.join("\n");
        match forge::workload::parse(Path::new("w.jsonl"), &text) {
            Ok(w) => {
                for r in &w.requests {
                    prop_assert!(r.expected_output_tokens >= 1);
                    prop_assert!(r.arrival_offset_s.is_none_or(|o| o.is_finite() && o >= 0.0));
                }
            }
            Err(e) => prop_assert!(e.to_string().starts_with("w.jsonl"), "{e}"),
        }
    }

    /// SSE: the events do not depend on where the reads were split, and any stream feeds
    /// the stream state machine without a panic.
    #[test]
    fn sse_frames_parse_the_same_whatever_the_read_boundaries(
        bytes in sse_stream(),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole = events(&bytes, &[]);
        prop_assert_eq!(&whole, &events(&bytes, &cuts));
        for endpoint in [Endpoint::Completions, Endpoint::Chat] {
            let mut s = StreamState::new(endpoint, Instant::now(), 16);
            for chunk in bytes.chunks(7) {
                s.on_data(chunk, Instant::now());
            }
            let _ = s.output_tokens();
        }
    }

    /// An LLM reply of any shape is a proposal or an error sent back to the LLM, never a
    /// panic; a salvaged refusal is bounded.
    #[test]
    fn llm_replies_parse_or_are_refused(reply in prop_oneof![
        "[\\PC\n]{0,80}",
        ("[\\PC]{0,20}", "[a-z_]{1,24}", "[\\PC0-9.eE+-]{0,12}", "[0-9.eE+-]{1,8}").prop_map(|(r, k, v, g)| format!(
            "```json\n{{\"rationale\": {r:?}, \"mutation\": {{\"layer\": \"config\", \"changes\": {{{k:?}: {v}}}}}, \"expected_throughput_delta_pct\": {g}}}\n```"
        )),
        "\\{(\"[a-z]{1,5}\": [\\[\\]{}0-9\", ]{0,10}, ){0,4}\\}",
    ]) {
        let f = Fixture::new(settings("openai/gpt-4o", None, None));
        let ctx = f.ctx(Layer::Config, 0.0);
        match parse::parse_reply(&reply, &ctx) {
            Ok(p) => {
                prop_assert!(p.changes.len() <= parse::MAX_CHANGES);
                prop_assert!(p.expected_throughput_delta_pct.is_none_or(|g| g <= parse::MAX_CLAIMED_GAIN_PCT));
                prop_assert!(!p.from_surrogate);
            }
            Err(why) => prop_assert!(!why.is_empty()),
        }
        let (changes, rationale) = parse::salvage(&reply);
        prop_assert!(changes.len() <= parse::MAX_CHANGES * 4);
        prop_assert!(rationale.chars().count() <= parse::MAX_RATIONALE_CHARS + 1);
    }
}
