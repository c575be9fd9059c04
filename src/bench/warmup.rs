//! Warm-up requests: synthesized, never taken from the workload.
//!
//! The original tool warmed up on the very requests it then timed, so their prompts sat in
//! the server's prefix cache and the first measured requests were flattered. forge's
//! warm-ups are fresh random text (seeded, so runs repeat) of the workload's median prompt
//! length with short outputs: they warm connections, CUDA graphs and allocators, and share
//! no prefix with any measured prompt.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::stats::median_count;
use crate::workload::{RequestInput, WorkloadRequest};

/// Output tokens a warm-up asks for (at most; less when the workload's median is lower).
pub const WARMUP_OUTPUT_TOKENS: u32 = 16;

/// `n` warm-up requests shaped like `measured` (median prompt length, short output).
pub fn synthesize(measured: &[WorkloadRequest], n: usize, seed: u64) -> Vec<WorkloadRequest> {
    let prompt_tokens = median_count(
        measured
            .iter()
            .map(|r| crate::tokenize::count(&r.input.as_prompt_text()) as u64),
    )
    .unwrap_or(1);
    let output =
        median_count(measured.iter().map(|r| u64::from(r.expected_output_tokens))).unwrap_or(1);
    let output = u32::try_from(output)
        .unwrap_or(u32::MAX)
        .clamp(1, WARMUP_OUTPUT_TOKENS);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7761_726d_7570);
    (0..n)
        .map(|_| WorkloadRequest {
            line: 0,
            input: RequestInput::Prompt(random_text(&mut rng, prompt_tokens.max(1))),
            expected_output_tokens: output,
            arrival_offset_s: None,
            expected_output: None,
        })
        .collect()
}

/// `tokens` random four-letter lowercase words, each with a leading space after the first
/// (one token each by the stand-in tokenizer, about one by real BPE vocabularies).
fn random_text(rng: &mut ChaCha8Rng, tokens: u64) -> String {
    let mut s = String::with_capacity(tokens as usize * 5);
    for i in 0..tokens {
        if i > 0 {
            s.push(' ');
        }
        for _ in 0..4 {
            s.push(char::from(b'a' + rng.random_range(0..26u8)));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(prompts: &[&str], out: u32) -> Vec<WorkloadRequest> {
        prompts
            .iter()
            .map(|p| WorkloadRequest {
                line: 1,
                input: RequestInput::Prompt((*p).into()),
                expected_output_tokens: out,
                arrival_offset_s: None,
                expected_output: None,
            })
            .collect()
    }

    fn text(r: &WorkloadRequest) -> String {
        r.input.as_prompt_text()
    }

    #[test]
    fn median_length_short_output_and_no_shared_text() {
        let m = measured(
            &[
                "one two three",
                "abcd efgh ijkl mnop qrst",
                "a much longer prompt with many words in it for sure",
            ],
            200,
        );
        let w = synthesize(&m, 5, 1);
        assert_eq!(w.len(), 5);
        // Median of 3, 5 and 11 tokens is 5.
        for r in &w {
            assert_eq!(crate::tokenize::count(&text(r)), 5, "{}", text(r));
            assert_eq!(r.expected_output_tokens, WARMUP_OUTPUT_TOKENS);
        }
        // Fresh text for each warm-up, and none starts like a measured prompt.
        let firsts: std::collections::HashSet<String> =
            w.iter().map(|r| text(r)[..9].to_string()).collect();
        assert_eq!(firsts.len(), 5);
        for r in &w {
            for p in &m {
                let (a, b) = (text(r), text(p));
                assert!(!b.contains(&a) && a.get(..4) != b.get(..4), "{a} / {b}");
            }
        }
    }

    #[test]
    fn seeded_and_short_outputs_follow_the_workload() {
        let m = measured(&["x y"], 3);
        assert_eq!(synthesize(&m, 2, 9), synthesize(&m, 2, 9));
        assert_ne!(synthesize(&m, 2, 9), synthesize(&m, 2, 10));
        assert_eq!(synthesize(&m, 1, 0)[0].expected_output_tokens, 3);
        assert!(synthesize(&m, 0, 0).is_empty());
    }
}
