//! Starting a simulated vLLM: resolve the config for the GPU, boot [`SimEngine`], and play
//! vLLM's startup log on the (scaled) clock — or fail the way vLLM fails (exit 1).

use std::process::ExitCode;
use std::time::Duration;

use super::engine::{BootInfo, SimEngine, SimSetup};
use super::faults;
use super::interface::BootError;
use super::model::ModelShape;
use super::options::{SimOptions, StartupFailure};
use super::vlog::{self, Level, Proc};
use crate::engine::vllm::flags::{ParsedArgs, Version};

/// The version the simulator claims to be.
pub const VLLM_VERSION: Version = Version::V0_33;

/// Simulated seconds a failing engine spends loading before it runs out of memory.
const OOM_AFTER_S: f64 = 2.0;

/// Exit status of a vLLM that failed with an exception.
pub fn exit_failure() -> ExitCode {
    ExitCode::from(1)
}

/// The engine's inputs for a parsed command line.
pub fn setup(parsed: &ParsedArgs, sim: &SimOptions) -> anyhow::Result<SimSetup> {
    let model = ModelShape::resolve(&parsed.args.model)?;
    Ok(SimSetup {
        model,
        gpu: sim.gpu,
        config: parsed.args.resolve(sim.gpu),
        seed: sim.seed,
        noise_pct: sim.noise_pct,
        vllm: VLLM_VERSION,
        policy: Default::default(),
    })
}

/// The two lines vLLM prints before anything can fail.
pub fn print_banner(parsed: &ParsedArgs) {
    vlog::info(
        "api_server.py:1885",
        &format!("vLLM API server version {VLLM_VERSION}"),
    );
    vlog::info(
        "utils.py:326",
        &format!("non-default args: {}", parsed.non_default_repr()),
    );
}

/// Sleep `sim_s` simulated seconds.
pub async fn sim_sleep(sim_s: f64, scale: f64) {
    let wall = (sim_s * scale).max(0.0);
    if wall.is_finite() && wall > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(wall)).await;
    }
}

/// Print `err` as vLLM would and return the exit status, after the time vLLM would have
/// taken to get there.
pub async fn fail(err: &BootError, sim: &SimOptions, engine_pid: u32) -> ExitCode {
    if matches!(err, BootError::Oom(_)) {
        sim_sleep(OOM_AFTER_S, sim.boot_scale()).await;
    }
    print_failure(err, engine_pid)
}

/// Print `err` as vLLM would (config errors from the API server, OOM from the engine
/// core) and return the exit status.
pub fn print_failure(err: &BootError, engine_pid: u32) -> ExitCode {
    match err {
        BootError::Config(msg) => faults::print_config_error(msg),
        BootError::Oom(msg) => faults::print_engine_failure(engine_pid, msg),
    }
    exit_failure()
}

/// `--sim-fail-startup`: the failure it names, or `None` to go on.
pub fn injected_failure(sim: &SimOptions) -> Option<BootError> {
    match sim.faults.fail_startup? {
        StartupFailure::Oom => Some(BootError::Oom(faults::fake_oom(sim.gpu.memory_gib()))),
        StartupFailure::Config => Some(BootError::Config(
            "Simulated invalid configuration (--sim-fail-startup config): max_num_batched_tokens \
             must be greater than or equal to max_num_seqs."
                .into(),
        )),
    }
}

/// Boot the engine, playing vLLM's engine-core startup log on the scaled clock.
pub async fn boot(
    setup: SimSetup,
    sim: &SimOptions,
    engine_pid: u32,
) -> Result<(SimEngine, BootInfo), ExitCode> {
    let pid = Proc::Engine(engine_pid);
    let summary = engine_summary(&setup);
    let (engine, info) = match SimEngine::boot(setup) {
        Ok(ok) => ok,
        Err(e) => return Err(fail(&e, sim, engine_pid).await),
    };
    vlog::emit(pid, Level::Info, "core.py:77", &summary);
    sim_sleep(info.load_seconds, sim.boot_scale()).await;
    for (src, line) in kv_lines(&info) {
        vlog::emit(pid, Level::Info, src, &line);
    }
    sim_sleep(info.graph_capture_seconds, sim.boot_scale()).await;
    if !info.cudagraph_capture_sizes.is_empty() {
        let line = format!(
            "Graph capturing finished in {:.0} secs, took {:.2} GiB",
            info.graph_capture_seconds, info.cudagraph_memory_gib
        );
        vlog::emit(pid, Level::Info, "gpu_model_runner.py:3480", &line);
    }
    let rest = info.startup_seconds - info.load_seconds - info.graph_capture_seconds;
    sim_sleep(rest, sim.boot_scale()).await;
    let init = format!(
        "init engine (profile, create kv cache, warmup model) took {:.2} seconds",
        info.startup_seconds - info.load_seconds
    );
    vlog::emit(pid, Level::Info, "core.py:210", &init);
    Ok((engine, info))
}

fn engine_summary(s: &SimSetup) -> String {
    let c = &s.config;
    format!(
        "Initializing a V1 LLM engine (v{VLLM_VERSION}) with config: model='{}', \
         speculative_config={}, tokenizer='{}', dtype={}, max_seq_len={}, \
         tensor_parallel_size={}, pipeline_parallel_size={}, data_parallel_size={}, \
         quantization={}, enforce_eager={}, kv_cache_dtype={}, device_config=cuda, seed={}, \
         served_model_name={}, enable_prefix_caching={}, enable_chunked_prefill={}",
        c.model,
        c.speculative_config
            .as_ref()
            .map_or("None".to_string(), |v| v.to_string()),
        c.model,
        c.dtype,
        c.max_model_len.unwrap_or(s.model.max_position_embeddings),
        c.tensor_parallel_size,
        c.pipeline_parallel_size,
        c.data_parallel_size,
        c.quantization.as_deref().unwrap_or("None"),
        py_bool(c.enforce_eager),
        c.kv_cache_dtype.as_flag(),
        c.seed,
        c.served_model_name,
        py_bool(c.enable_prefix_caching),
        py_bool(c.enable_chunked_prefill),
    )
}

fn py_bool(b: bool) -> &'static str {
    if b { "True" } else { "False" }
}

/// vLLM's memory and KV-cache lines.
fn kv_lines(info: &BootInfo) -> Vec<(&'static str, String)> {
    vec![
        (
            "gpu_model_runner.py:2653",
            format!(
                "Model loading took {:.4} GiB memory and {:.6} seconds",
                info.weights_gib, info.load_seconds
            ),
        ),
        (
            "gpu_worker.py:298",
            format!("Available KV cache memory: {:.2} GiB", info.kv_cache_gib),
        ),
        (
            "kv_cache_utils.py:1087",
            format!(
                "GPU KV cache size: {} tokens",
                thousands(info.kv_cache_tokens)
            ),
        ),
        (
            "kv_cache_utils.py:1091",
            format!(
                "Maximum concurrency for {} tokens per request: {:.2}x",
                thousands(u64::from(info.max_model_len)),
                info.max_concurrency
            ),
        ),
    ]
}

/// Python's `f"{n:,}"`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An unresolvable model, as `forge sim serve` reports it: the error vLLM's config loading
/// raises (`ModelConfig`'s message for a model it cannot find), with its traceback, and the
/// simulator's own reason on the last line.
pub fn print_model_error(model: &str, err: &anyhow::Error) {
    let why = crate::term::error_text(err);
    let msg = if why.starts_with("unknown model `") {
        format!(
            "ValueError: Invalid repository ID or local directory specified: '{model}'.\n\
             Please verify the following requirements:\n\
             1. Provide a valid Hugging Face repository ID.\n\
             2. Specify a local directory that contains a recognized configuration file.\n   \
             - For Hugging Face models: ensure the presence of a 'config.json'.\n   \
             - For Mistral models: ensure the presence of a 'params.json'.\n\
             (forge simulator: {why})"
        )
    } else {
        format!("OSError: {why}")
    };
    let frames = [("/usr/local/bin/vllm", 10, "<module>", "sys.exit(main())")];
    for line in faults::traceback(&frames, &msg) {
        vlog::raw_err(&line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_like_python() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(441872), "441,872");
        assert_eq!(thousands(131072), "131,072");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
