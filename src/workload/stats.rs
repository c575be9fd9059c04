//! Workload statistics: the facts about a trace that decide which knobs matter — length
//! percentiles, how much of the prompt text is a prefix shared with an earlier request
//! (what prefix caching can reuse), and the arrival process.

use std::collections::HashSet;
use std::hash::Hasher;

use serde::{Deserialize, Serialize};
use twox_hash::XxHash64;

use super::{Workload, WorkloadRequest};
use crate::stats::percentile;
use crate::tokenize;

/// Block size used to measure shared prefixes (vLLM's default KV block).
const BLOCK: usize = 16;

/// Percentiles of a length distribution, tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LengthStats {
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// What a workload looks like.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadStats {
    /// Requests.
    pub requests: usize,
    /// Prompt lengths (stand-in tokenizer; chat rendered with its template).
    pub prompt_tokens: LengthStats,
    /// Expected output lengths.
    pub output_tokens: LengthStats,
    /// Fraction of all prompt tokens that sit in whole 16-token blocks already seen as a
    /// prefix of an earlier prompt (an upper bound on prefix-cache hits).
    pub prefix_share: f64,
    /// Requests carrying an `arrival_offset_s`.
    pub with_arrival_offsets: usize,
    /// Last arrival offset, s.
    pub arrival_span_s: f64,
    /// Requests ÷ span, when the trace has a span.
    pub mean_arrival_rate: Option<f64>,
    /// Chat (messages) requests.
    pub chat_requests: usize,
    /// Requests with a reference output.
    pub with_expected_output: usize,
}

/// Compute the statistics of a workload.
pub fn compute(w: &Workload) -> WorkloadStats {
    let prompts: Vec<Vec<u32>> = w.requests.iter().map(prompt_tokens).collect();
    let lens: Vec<f64> = prompts.iter().map(|p| p.len() as f64).collect();
    let outs: Vec<f64> = w
        .requests
        .iter()
        .map(|r| f64::from(r.expected_output_tokens))
        .collect();
    let offsets: Vec<f64> = w
        .requests
        .iter()
        .filter_map(|r| r.arrival_offset_s)
        .collect();
    let span = offsets.iter().copied().fold(0.0, f64::max);
    WorkloadStats {
        requests: w.requests.len(),
        prompt_tokens: length_stats(&lens),
        output_tokens: length_stats(&outs),
        prefix_share: prefix_share(&prompts),
        with_arrival_offsets: offsets.len(),
        arrival_span_s: span,
        mean_arrival_rate: (span > 0.0).then(|| w.requests.len() as f64 / span),
        chat_requests: w
            .requests
            .iter()
            .filter(|r| matches!(r.input, super::RequestInput::Messages(_)))
            .count(),
        with_expected_output: w
            .requests
            .iter()
            .filter(|r| r.expected_output.is_some())
            .count(),
    }
}

/// Token ids of a request's prompt as the simulator sees it.
pub fn prompt_tokens(r: &WorkloadRequest) -> Vec<u32> {
    tokenize::tokenize(&r.input.as_prompt_text())
}

fn length_stats(v: &[f64]) -> LengthStats {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let p = |q| percentile(&s, q).unwrap_or(0.0);
    LengthStats {
        mean: if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<f64>() / s.len() as f64
        },
        p50: p(50.0),
        p90: p(90.0),
        p99: p(99.0),
        max: s.last().copied().unwrap_or(0.0),
    }
}

/// Share of prompt tokens in full blocks whose chained hash was seen before.
fn prefix_share(prompts: &[Vec<u32>]) -> f64 {
    let mut seen: HashSet<u64> = HashSet::new();
    let (mut shared, mut total) = (0usize, 0usize);
    for p in prompts {
        total += p.len();
        let mut h = 0u64;
        let mut still_shared = true;
        for block in p.chunks_exact(BLOCK) {
            let mut hasher = XxHash64::with_seed(h);
            for t in block {
                hasher.write_u32(*t);
            }
            h = hasher.finish();
            if still_shared && seen.contains(&h) {
                shared += BLOCK;
            } else {
                still_shared = false;
            }
            seen.insert(h);
        }
    }
    if total == 0 {
        0.0
    } else {
        shared as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn shared_prefixes_are_measured() {
        let system = "You are a careful assistant who answers briefly. ".repeat(20);
        let mut text = String::new();
        for q in ["What is two plus two?", "Name a colour.", "Spell cat."] {
            text.push_str(
                &serde_json::json!({"prompt": format!("{system}{q}"), "expected_output_tokens": 8})
                    .to_string(),
            );
            text.push('\n');
        }
        text.push_str("{\"prompt\":\"unrelated words here\",\"expected_output_tokens\":4,\"arrival_offset_s\":2.0}\n");
        let w = super::super::parse(Path::new("w"), &text).unwrap();
        let s = compute(&w);
        assert_eq!(s.requests, 4);
        // Two of the three system-prompt requests reuse almost all of their prompt.
        assert!(
            s.prefix_share > 0.5 && s.prefix_share < 0.7,
            "{}",
            s.prefix_share
        );
        assert_eq!(s.with_arrival_offsets, 1);
        assert_eq!(s.mean_arrival_rate, Some(2.0));
        assert_eq!(s.output_tokens.max, 8.0);
    }

    #[test]
    fn no_sharing_is_zero() {
        let w = super::super::parse(
            Path::new("w"),
            "{\"prompt\":\"alpha beta gamma\",\"expected_output_tokens\":1}\n",
        )
        .unwrap();
        assert_eq!(compute(&w).prefix_share, 0.0);
    }
}
