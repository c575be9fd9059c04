//! `forge workload synth|stats`: random workloads and the gate's fixed scenarios; a
//! trace's statistics.

use std::process::ExitCode;

use crate::cli::{SynthArgs, WorkloadCmd, WorkloadStatsArgs};
use crate::workload::synth::{self, SynthSpec};

/// Run a workload command.
pub fn main(cmd: WorkloadCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        WorkloadCmd::Synth(a) => synth_main(&a),
        WorkloadCmd::Stats(a) => stats_main(&a),
    }
}

/// Most prompt tokens one synthesized file holds (about 1 GB of text).
const MAX_SYNTH_TOKENS: u64 = 200_000_000;

fn spec(a: &SynthArgs) -> anyhow::Result<SynthSpec> {
    let base = a.scenario.map(|s| s.spec(a.seed));
    let pick = |v: Option<u32>, d: Option<u32>, name: &str| {
        v.or(d)
            .ok_or_else(|| anyhow::anyhow!("--{name} is required without --scenario"))
    };
    let spec = SynthSpec {
        input_len: pick(a.input_len, base.as_ref().map(|b| b.input_len), "input-len")?,
        output_len: pick(
            a.output_len,
            base.as_ref().map(|b| b.output_len),
            "output-len",
        )?,
        num_prompts: a
            .num_prompts
            .or(base.as_ref().map(|b| b.num_prompts))
            .ok_or_else(|| anyhow::anyhow!("--num-prompts is required without --scenario"))?,
        prefix_len: a.prefix_len,
        range_ratio: a.range_ratio,
        seed: a.seed,
    };
    anyhow::ensure!(
        spec.input_len > 0 && spec.output_len > 0,
        "--input-len and --output-len must be at least 1"
    );
    anyhow::ensure!(spec.num_prompts > 0, "--num-prompts must be at least 1");
    anyhow::ensure!(
        (0.0..1.0).contains(&spec.range_ratio),
        "--range-ratio must be in [0, 1)"
    );
    let longest_output = f64::from(spec.output_len) * (1.0 + spec.range_ratio);
    anyhow::ensure!(
        longest_output <= crate::workload::MAX_OUTPUT_TOKENS as f64,
        "--output-len: {} × (1 + --range-ratio {}) reaches {longest_output:.0} tokens, above the \
         workload limit of {} a request",
        spec.output_len,
        spec.range_ratio,
        crate::workload::MAX_OUTPUT_TOKENS
    );
    let total = (u64::from(spec.input_len) + u64::from(spec.prefix_len))
        .saturating_mul(spec.num_prompts as u64);
    anyhow::ensure!(
        total as f64 * (1.0 + spec.range_ratio) <= MAX_SYNTH_TOKENS as f64,
        "--num-prompts × (--input-len + --prefix-len) is {total} prompt tokens, above the limit \
         of {MAX_SYNTH_TOKENS} for one file"
    );
    Ok(spec)
}

fn synth_main(a: &SynthArgs) -> anyhow::Result<ExitCode> {
    let text = synth::to_jsonl(&synth::generate(&spec(a)?));
    match &a.output {
        Some(p) => crate::store::write_atomic(p, text.as_bytes())?,
        None => crate::term::print(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn stats_main(a: &WorkloadStatsArgs) -> anyhow::Result<ExitCode> {
    let w = crate::workload::load(&a.workload)?;
    let s = crate::workload::stats::compute(&w);
    crate::term::println(&serde_json::to_string_pretty(&s)?)?;
    Ok(ExitCode::SUCCESS)
}
