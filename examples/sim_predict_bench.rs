//! Times `forge::sim::predict::predict` on a workload file (used by `bench/sim_predict.sh`
//! until `forge sim predict` has its CLI): Llama-3.1-8B-Instruct on one H100 with vLLM's
//! defaults, Poisson arrivals at the given rate, output pinned.
//!
//! Usage: `sim_predict_bench WORKLOAD.jsonl [RATE_PER_S]`

use std::path::Path;
use std::time::Instant;

use forge::bench::{LoadSpec, Timing};
use forge::engine::vllm::VllmArgs;
use forge::hardware::gpus::lookup;
use forge::sim::engine::SimSetup;
use forge::sim::model::ModelShape;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: sim_predict_bench WORKLOAD.jsonl [RATE]"))?;
    let rate: f64 = args.next().map_or(Ok(50.0), |r| r.parse())?;
    let workload = forge::workload::load(Path::new(&path))?;
    let model = "meta-llama/Llama-3.1-8B-Instruct";
    let gpu = lookup("H100").ok_or_else(|| anyhow::anyhow!("no H100 in the GPU table"))?;
    let setup = SimSetup {
        model: ModelShape::resolve(model)?,
        gpu,
        config: VllmArgs {
            model: model.into(),
            ..Default::default()
        }
        .resolve(gpu),
        seed: 1,
        noise_pct: 2.0,
    };
    let load = LoadSpec {
        request_rate: Some(rate),
        timing: Timing::Rate,
        ..LoadSpec::default()
    };
    let start = Instant::now();
    let result = forge::sim::predict::predict(setup, &workload.requests, &load, model)?;
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "predict: {} requests in {elapsed:.3} s wall ({} completed, {:.0} output tok/s, median TTFT {:.1} ms, median TPOT {:.2} ms, simulated duration {:.1} s)",
        workload.requests.len(),
        result.completed,
        result.output_throughput,
        result.median_ttft_ms,
        result.median_tpot_ms,
        result.duration
    );
    Ok(())
}
