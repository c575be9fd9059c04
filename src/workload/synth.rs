//! Synthetic workloads: `vllm bench serve --dataset-name random` style traces, and the two
//! fixed scenarios of the cross-framework benchmark gate (chat: 1000 in / 1000 out;
//! summarization: 8000 in / 1000 out; 80 prompts each).
//!
//! Prompts are words of one to four letters, each one token for forge's stand-in tokenizer
//! (and close to one for real BPE tokenizers), so lengths land where they are asked.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{RequestInput, WorkloadRequest};

/// The gate's fixed scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum Scenario {
    /// 1000 input / 1000 output tokens, 80 prompts.
    Chat,
    /// 8000 input / 1000 output tokens, 80 prompts.
    Summarization,
}

/// Parameters of a random workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SynthSpec {
    /// Mean input length, tokens.
    pub input_len: u32,
    /// Mean output length, tokens.
    pub output_len: u32,
    /// Requests.
    pub num_prompts: usize,
    /// Tokens of a prefix shared by every prompt (counted in addition to `input_len`,
    /// as vLLM's random dataset does).
    pub prefix_len: u32,
    /// Lengths are uniform in [len·(1−r), len·(1+r)].
    pub range_ratio: f64,
    /// Seed.
    pub seed: u64,
}

impl Scenario {
    /// The spec of a fixed scenario.
    pub fn spec(self, seed: u64) -> SynthSpec {
        let (input_len, output_len) = match self {
            Scenario::Chat => (1000, 1000),
            Scenario::Summarization => (8000, 1000),
        };
        SynthSpec {
            input_len,
            output_len,
            num_prompts: 80,
            prefix_len: 0,
            range_ratio: 0.0,
            seed,
        }
    }
}

const LETTERS: &[u8] = b"abcdefghijklmnopqrstuvwxyz";

fn words(rng: &mut ChaCha8Rng, n: u32) -> String {
    let mut s = String::with_capacity(n as usize * 4);
    for i in 0..n {
        if i > 0 {
            s.push(' ');
        }
        let len = rng.random_range(1..=4);
        for _ in 0..len {
            s.push(LETTERS[rng.random_range(0..LETTERS.len())] as char);
        }
    }
    s
}

fn around(rng: &mut ChaCha8Rng, len: u32, ratio: f64) -> u32 {
    let lo = (f64::from(len) * (1.0 - ratio)).round().max(1.0) as u32;
    let hi = (f64::from(len) * (1.0 + ratio)).round().max(f64::from(lo)) as u32;
    rng.random_range(lo..=hi)
}

/// Generate the requests of a spec (deterministic for a seed).
pub fn generate(spec: &SynthSpec) -> Vec<WorkloadRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let prefix = if spec.prefix_len > 0 {
        format!("{} ", words(&mut rng, spec.prefix_len))
    } else {
        String::new()
    };
    (0..spec.num_prompts)
        .map(|_| {
            let n_in = around(&mut rng, spec.input_len, spec.range_ratio);
            let n_out = around(&mut rng, spec.output_len, spec.range_ratio);
            WorkloadRequest {
                line: 0,
                input: RequestInput::Prompt(format!("{prefix}{}", words(&mut rng, n_in))),
                expected_output_tokens: n_out,
                arrival_offset_s: None,
                expected_output: None,
            }
        })
        .collect()
}

/// JSONL text of requests (the workload file format).
pub fn to_jsonl(requests: &[WorkloadRequest]) -> String {
    let mut out = String::new();
    for r in requests {
        let mut obj = serde_json::Map::new();
        match &r.input {
            RequestInput::Prompt(p) => obj.insert("prompt".into(), p.clone().into()),
            RequestInput::Messages(m) => obj.insert("messages".into(), serde_json::json!(m)),
        };
        obj.insert(
            "expected_output_tokens".into(),
            r.expected_output_tokens.into(),
        );
        if let Some(o) = r.arrival_offset_s {
            obj.insert("arrival_offset_s".into(), o.into());
        }
        if let Some(e) = &r.expected_output {
            obj.insert("expected_output".into(), e.clone().into());
        }
        out.push_str(&serde_json::Value::Object(obj).to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::count;
    use std::path::Path;

    #[test]
    fn lengths_land_where_asked() {
        let spec = SynthSpec {
            input_len: 1000,
            output_len: 50,
            num_prompts: 5,
            prefix_len: 0,
            range_ratio: 0.0,
            seed: 1,
        };
        for r in generate(&spec) {
            assert_eq!(count(&r.input.as_prompt_text()), 1000);
            assert_eq!(r.expected_output_tokens, 50);
        }
    }

    #[test]
    fn prefix_and_ranges() {
        let spec = SynthSpec {
            input_len: 100,
            output_len: 100,
            num_prompts: 50,
            prefix_len: 64,
            range_ratio: 0.5,
            seed: 3,
        };
        let reqs = generate(&spec);
        let texts: Vec<String> = reqs.iter().map(|r| r.input.as_prompt_text()).collect();
        let first64: Vec<&str> = texts[0].split(' ').take(64).collect();
        assert!(
            texts
                .iter()
                .all(|t| t.split(' ').take(64).eq(first64.iter().copied()))
        );
        assert!(
            reqs.iter()
                .all(|r| (50..=150).contains(&r.expected_output_tokens))
        );
        assert!(reqs.iter().any(|r| r.expected_output_tokens != 100));
        // JSONL round-trips through the loader.
        let w = crate::workload::parse(Path::new("s"), &to_jsonl(&reqs)).unwrap();
        assert_eq!(w.requests.len(), 50);
        assert_eq!(generate(&spec), generate(&spec));
    }

    #[test]
    fn scenarios_are_the_gates() {
        let s = Scenario::Summarization.spec(0);
        assert_eq!((s.input_len, s.output_len, s.num_prompts), (8000, 1000, 80));
        let c = Scenario::Chat.spec(0);
        assert_eq!((c.input_len, c.output_len, c.num_prompts), (1000, 1000, 80));
    }
}
