//! The scenarios: (model, GPU, workload, objective) combinations, the swept space, and the
//! playbook whose Search space is exactly that space.

use anyhow::Context as _;
use forge::playbook::{Playbook, VLLM_PLAYBOOK};
use forge::workload::WorkloadRequest;
use forge::workload::synth::{self, SynthSpec};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp};

/// The swept space: the same values for the sweep, the agent's playbook and random search.
/// Every GPU's engine defaults (max_num_seqs 256/1024, max_num_batched_tokens 2048/8192,
/// gpu_memory_utilization 0.92, prefix caching on, no long-prefill cap) are on the grid.
pub const SPACE_YAML: &str = "config:
  max_num_seqs: [16, 32, 64, 128, 256, 512, 1024]
  max_num_batched_tokens: [1024, 2048, 4096, 8192, 16384]
  gpu_memory_utilization: [0.85, 0.90, 0.92, 0.95]
  enable_prefix_caching: [true, false]
  long_prefill_token_threshold: [0, 256, 1024, 4096]
";

/// Share of the sweep's best score that counts as "reached".
pub const REACH: f64 = 0.95;

/// A (model, GPU, workload, objective) combination.
pub struct Scenario {
    pub name: &'static str,
    pub model: &'static str,
    pub gpu: &'static str,
    /// Extra `forge tune` flags: concurrency, objective, SLO.
    pub flags: &'static [&'static str],
    pub requests: Vec<WorkloadRequest>,
}

fn synth(
    input_len: u32,
    output_len: u32,
    n: usize,
    prefix_len: u32,
    seed: u64,
) -> Vec<WorkloadRequest> {
    synth::generate(&SynthSpec {
        input_len,
        output_len,
        num_prompts: n,
        prefix_len,
        range_ratio: 0.3,
        seed,
    })
}

/// Poisson arrivals at `rate` req/s written into the requests (a trace: forge replays it
/// with trace timing).
fn with_arrivals(mut reqs: Vec<WorkloadRequest>, rate: f64, seed: u64) -> Vec<WorkloadRequest> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let gap = Exp::new(rate).ok();
    let mut t = 0.0;
    for r in &mut reqs {
        r.arrival_offset_s = Some(t);
        t += gap.as_ref().map_or(1.0 / rate, |d| d.sample(&mut rng));
    }
    reqs
}

pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "8B/H100 chat, goodput",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "H100",
            flags: &[
                "-c",
                "256",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=1000,tpot_ms=45",
            ],
            requests: synth(1000, 300, 256, 0, 1),
        },
        Scenario {
            name: "8B/H100 c384, p99 TPOT ≤ 40 ms",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "H100",
            flags: &["-c", "384", "--slo", "tpot_ms=40"],
            requests: synth(500, 400, 512, 0, 6),
        },
        Scenario {
            name: "8B/A100 chat, p99 TPOT ≤ 35 ms",
            model: "meta-llama/Llama-3.1-8B-Instruct",
            gpu: "A100-80GB",
            flags: &["-c", "128", "--slo", "tpot_ms=35"],
            requests: synth(1000, 300, 256, 0, 9),
        },
        Scenario {
            name: "14B/A100 RAG trace, latency",
            model: "Qwen/Qwen3-14B",
            gpu: "A100-80GB",
            flags: &["-c", "64", "--objective", "latency"],
            requests: with_arrivals(synth(3000, 250, 120, 1000, 4), 1.5, 4),
        },
        Scenario {
            name: "7B/L40S summarize, goodput",
            model: "Qwen/Qwen2.5-7B-Instruct",
            gpu: "L40S",
            flags: &[
                "-c",
                "32",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=3000,tpot_ms=35",
            ],
            requests: synth(6000, 300, 64, 0, 5),
        },
        Scenario {
            name: "3B/L4 long prompts, latency",
            model: "Qwen/Qwen2.5-3B-Instruct",
            gpu: "L4",
            flags: &["-c", "48", "--objective", "latency"],
            requests: synth(4000, 200, 96, 0, 2),
        },
        Scenario {
            name: "7B/A10G chat, p99 TPOT ≤ 60 ms",
            model: "mistralai/Mistral-7B-Instruct-v0.3",
            gpu: "A10G",
            flags: &["-c", "64", "--slo", "tpot_ms=60"],
            requests: synth(600, 200, 128, 0, 9),
        },
        Scenario {
            name: "7B/A10G RAG, goodput (defaults at 0)",
            model: "mistralai/Mistral-7B-Instruct-v0.3",
            gpu: "A10G",
            flags: &[
                "-c",
                "64",
                "--objective",
                "goodput",
                "--slo",
                "ttft_ms=5000,tpot_ms=100",
            ],
            requests: synth(1500, 200, 128, 0, 3),
        },
    ]
}

/// The text of the bundled vLLM playbook with its Search space replaced by [`SPACE_YAML`] (and rule
/// moves on knobs outside it dropped, as the playbook validator requires).
pub fn bench_playbook() -> anyhow::Result<String> {
    let start = VLLM_PLAYBOOK
        .find("## Search space")
        .context("bundled playbook: no Search space")?;
    let end = VLLM_PLAYBOOK
        .find("## Rules")
        .context("bundled playbook: no Rules")?;
    let text = format!(
        "{}## Search space\n```yaml\n{SPACE_YAML}```\n\n{}",
        &VLLM_PLAYBOOK[..start],
        &VLLM_PLAYBOOK[end..]
    )
    .replace(", kv_cache_quant: fp8}", "}")
    .replace("{kv_cache_quant: fp8, ", "{");
    Playbook::parse("<search-quality bench playbook>", &text)?;
    Ok(text)
}
