//! `forge tune` / `forge tune resume`: the command line resolved into [`TuneSettings`]
//! (every input validated before a run directory exists), then handed to
//! [`crate::tune::launch`], which owns the run from there.

use std::path::PathBuf;
use std::process::ExitCode;

use super::runtime;
use crate::bench::{LoadSpec, Slo, parse_slo};
use crate::cli::{EngineArg, TuneAction, TuneArgs, TuneCli};
use crate::engine::gates;
use crate::engine::knobs::is_patch_name;
use crate::engine::llamacpp::quant::{DEFAULT_TYPES, GGUF_TYPES};
use crate::hardware::{GpuSpec, gpus};
use crate::patch::{git, series};
use crate::recipe::{EngineKind, Layer};
use crate::record::settings::{CONFIG_VERSION, DEFAULT_SIM_GPU, auto_warmups};
use crate::record::settings::{QuantSettings, SourceSettings};
use crate::record::{EngineChoice, Objective, TuneSettings};
use crate::tune::launch;
use crate::workload::{self, Workload};

/// Run `forge tune`.
pub fn main(cli: TuneCli) -> anyhow::Result<ExitCode> {
    runtime(None)?.block_on(async move {
        match cli.action {
            Some(TuneAction::Resume(a)) => launch::resume(a.run, &a.run_dir).await,
            None => start(cli.args).await,
        }
    })
}

/// Start a new run from parsed arguments (also how `forge compare` runs each
/// framework's search).
pub async fn start(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let simulated = args.dry_run || args.engine == EngineArg::Sim;
    let report = if simulated && args.sim_gpu.is_some() {
        None
    } else {
        Some(launch::detect(args.device).await?)
    };
    for w in report.iter().flat_map(|r| r.warnings.iter()) {
        eprintln!("forge: warning: {w}");
    }
    let detected = report.as_ref().and_then(|r| r.gpu_type());
    let path = args
        .workload
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--workload is required"))?;
    // Bad input fails here, before a run directory exists.
    let workload = workload::load(&path)?;
    let mut settings = resolve(&args, detected)?;
    settings.load = Some(resolve_load(&args, &workload)?);
    if !simulated {
        // A model the engine cannot load is refused before anything asks the Hub about it.
        launch::check_model(&settings)?;
        let gpu = detected.and_then(crate::hardware::gpus::lookup);
        settings.checkpoints = find_checkpoints(&settings, gpu).await;
        if settings.checkpoints.is_empty() {
            plan_calibration(&args, &mut settings, gpu, &workload);
        }
    } else {
        settings.checkpoints = published_checkpoints(&settings);
    }
    if simulated && args.sim_gpu.is_none() && detected.is_none() {
        eprintln!(
            "forge: no GPU detected; the simulator models an {DEFAULT_SIM_GPU} (choose with --sim-gpu)"
        );
    }
    if args.sim_time_scale.is_none()
        && let Some(why) = choose_clock(&mut settings, &workload)
    {
        eprintln!("forge: {why}");
    }
    if !simulated {
        let r = report
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("hardware detection did not run"))?;
        launch::require_gpu(args.device, r)?;
        settings.hardware = Some(r.recipe_hardware());
    }
    launch::start(settings).await
}

/// Resolve and validate the command line. `detected_gpu` is the GPU hardware detection
/// found (used by `--dry-run` when `--sim-gpu` is absent). The load is resolved against the
/// workload by [`resolve_load`]; until then `load` is `None`.
pub fn resolve(a: &TuneArgs, detected_gpu: Option<&str>) -> anyhow::Result<TuneSettings> {
    let model = a
        .model
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--model is required (or use `forge tune resume`)"))?;
    let path = a
        .workload
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--workload is required"))?;
    check_numbers(a)?;
    anyhow::ensure!(
        a.load.concurrency != Some(0),
        "--concurrency: must be at least 1"
    );
    let slo = match &a.load.slo {
        Some(s) => parse_slo(s).map_err(anyhow::Error::msg)?,
        None => Slo::default(),
    };
    anyhow::ensure!(
        a.objective != Objective::Goodput || !slo.is_empty(),
        "--objective goodput needs --slo (e.g. --slo ttft_ms=500,tpot_ms=50)"
    );
    Ok(TuneSettings {
        version: CONFIG_VERSION,
        model,
        device: a.device,
        workload: absolute(path),
        playbook: a.playbook.clone().map(absolute),
        llm: a.llm.clone(),
        llm_base_url: a.llm_base_url.clone(),
        llm_prices: a.llm_prices.clone().map(absolute),
        concurrency: a.load.concurrency.unwrap_or(DEFAULT_CONCURRENCY),
        max_experiments: a.max_experiments,
        max_config_experiments: a.max_config_experiments,
        max_quant_experiments: a.max_quant_experiments,
        max_hours: a.max_hours,
        max_dollars: a.max_dollars,
        accuracy_floor: a.accuracy_floor,
        min_improvement_pct: a.min_improvement_pct,
        run_dir: a.run_dir.clone(),
        layers: layers(a)?,
        engine: engine_choice(a, detected_gpu)?,
        boot_timeout_s: a.boot_timeout,
        heartbeat_s: a.heartbeat,
        objective: a.objective,
        slo,
        max_repeats: a.max_repeats,
        seed: a.seed,
        dry_run: a.dry_run,
        hardware: None,
        load: None,
        engine_args: engine_args(a)?,
        source: source_settings(a, &layers(a)?)?,
        quantize: quant_settings(a, &layers(a)?)?,
        checkpoints: Vec::new(),
        calibration: None,
    })
}

/// Layer 2 on a GPU engine: the model's pre-quantized checkpoints, from the local Hugging
/// Face cache and the Hub, each said on stderr with where it came from or why it was
/// refused (the hardware gates refuse what `gpu` cannot run as made); none means the model
/// would have to be calibrated.
async fn find_checkpoints(s: &TuneSettings, gpu: Option<&GpuSpec>) -> Vec<String> {
    let gpu_engine = matches!(
        s.engine,
        EngineChoice::Vllm { .. } | EngineChoice::Sglang { .. } | EngineChoice::Trtllm { .. }
    );
    let repo_id = !std::path::Path::new(&s.model).exists() && s.model.contains('/');
    if !gpu_engine || !repo_id || !s.layers.contains(&Layer::Quant) {
        return Vec::new();
    }
    let cache = crate::sim::hf_cache::hub_dir();
    // `HF_HUB_OFFLINE=1` (as huggingface_hub reads it): the local cache only.
    let online = std::env::var("HF_HUB_OFFLINE").map_or(true, |v| v != "1" && v != "true");
    let hub = online.then(crate::hub::Hub::from_env);
    let mut r = crate::hub::resolve(&s.model, cache.as_deref(), hub.as_ref()).await;
    if let Some(g) = gpu {
        gate_checkpoints(&mut r, s.engine.recipe_engine(), g);
    }
    say_checkpoints(s, r)
}

/// Layer 2 of a dry run: the model's published quantized copies the simulator can shape
/// (a real run asks the Hub), through the same hardware gates.
fn published_checkpoints(s: &TuneSettings) -> Vec<String> {
    if !s.layers.contains(&Layer::Quant) {
        return Vec::new();
    }
    let repos = crate::sim::catalog::published_quantized(&s.model);
    if repos.is_empty() {
        return Vec::new();
    }
    let mut r = crate::hub::Resolution {
        candidates: repos
            .iter()
            .filter_map(|c| crate::hub::published(c))
            .collect(),
        ..Default::default()
    };
    if let Some(g) = crate::tune::assemble::gpu_of(s) {
        gate_checkpoints(&mut r, s.engine.recipe_engine(), g);
    }
    say_checkpoints(s, r)
}

/// Say each candidate, refusal and note on stderr; the candidates' names.
fn say_checkpoints(s: &TuneSettings, r: crate::hub::Resolution) -> Vec<String> {
    for n in &r.notes {
        eprintln!("forge: layer 2: {n}");
    }
    for (repo, why) in &r.refused {
        eprintln!("forge: layer 2: not a candidate: {repo}: {why}");
    }
    for c in &r.candidates {
        eprintln!(
            "forge: layer 2 candidate: {} ({}, {})",
            c.repo,
            c.describe(),
            c.found.describe()
        );
    }
    if r.needs_calibration() {
        eprintln!(
            "forge: layer 2: no pre-quantized checkpoint of {}: it would have to be calibrated (layer 2 tries FP8 on the fly and the KV cache)",
            s.model
        );
    }
    r.candidates.into_iter().map(|c| c.repo).collect()
}

/// Layer 2 on vLLM or SGLang with no pre-quantized checkpoint: plan the calibrations the
/// GPU runs natively, in the engine's Python, each a value of `quant.checkpoint`; say what
/// is planned and what is not, and why.
fn plan_calibration(a: &TuneArgs, s: &mut TuneSettings, gpu: Option<&GpuSpec>, w: &Workload) {
    let launcher = match &s.engine {
        EngineChoice::Vllm { launcher } | EngineChoice::Sglang { launcher } => launcher,
        _ => return,
    };
    if !s.layers.contains(&Layer::Quant) {
        return;
    }
    let python = a
        .calibration_python
        .clone()
        .map(absolute)
        .or_else(|| crate::tune::calibrate::engine_python(launcher));
    let Some(python) = python else {
        eprintln!(
            "forge: layer 2: no Python environment found for llm-compressor beside the engine's launcher; nothing is calibrated (pass --calibration-python)"
        );
        return;
    };
    let store = absolute(s.run_dir.clone());
    let (planned, notes) = crate::tune::calibrate::plan(
        &s.model,
        s.engine.recipe_engine(),
        gpu,
        &store,
        w,
        a.calibration_prompts,
    );
    for n in notes {
        eprintln!("forge: layer 2: {n}");
    }
    for p in &planned {
        eprintln!(
            "forge: layer 2 candidate: {} calibrated on the workload when first tried ({}, with {})",
            p.scheme,
            p.dir.display(),
            python.display()
        );
    }
    s.checkpoints = planned
        .iter()
        .map(|p| p.dir.display().to_string())
        .collect();
    s.calibration = Some(crate::record::settings::CalibrationSettings {
        python,
        planned,
        prompts: a.calibration_prompts,
    });
}

/// Move the checkpoints `gpu` cannot run as made (the hardware gates) to the refused.
fn gate_checkpoints(r: &mut crate::hub::Resolution, engine: EngineKind, gpu: &GpuSpec) {
    for c in std::mem::take(&mut r.candidates) {
        let gate = c
            .scheme()
            .map_or(Ok(()), |sc| gates::check_checkpoint(engine, sc, gpu));
        match gate {
            Ok(()) => r.candidates.push(c),
            Err(why) => r.refused.push((c.repo, why)),
        }
    }
}

/// Layer 2 on llama.cpp: the types to try and the tools that make them, found before a run
/// exists. Without the tools the layer tries KV cache types only (said once); naming types
/// without tools is an error.
fn quant_settings(a: &TuneArgs, layers: &[Layer]) -> anyhow::Result<Option<QuantSettings>> {
    let llamacpp = a.engine == EngineArg::Llamacpp && !a.dry_run;
    if !llamacpp || !layers.contains(&Layer::Quant) {
        anyhow::ensure!(
            a.quant_types.is_none() && a.quant_tools.is_none(),
            "--quant-types/--quant-tools: GGUF requantization is layer 2 of a llama.cpp run (--engine llamacpp, layer 2 not skipped)"
        );
        return Ok(None);
    }
    let types = match &a.quant_types {
        Some(t) => t.iter().map(|x| x.trim().to_ascii_lowercase()).collect(),
        None => DEFAULT_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>(),
    };
    for t in &types {
        anyhow::ensure!(
            GGUF_TYPES.contains(&t.as_str()),
            "--quant-types: `{t}` is not a GGUF type forge asks llama-quantize for ({})",
            GGUF_TYPES.join(", ")
        );
    }
    let Some((quantize, imatrix)) = quant_tools(a) else {
        anyhow::ensure!(
            a.quant_types.is_none() && a.quant_tools.is_none(),
            "--quant-types: no llama-quantize and llama-imatrix {}",
            quant_tools_where(a)
        );
        eprintln!(
            "forge: warning: layer 2 tries KV cache types only: no llama-quantize and llama-imatrix {} (--quant-tools DIR)",
            quant_tools_where(a)
        );
        return Ok(None);
    };
    Ok(Some(QuantSettings {
        quantize,
        imatrix,
        types,
        cache: absolute(a.run_dir.join("gguf-cache")),
        calibration_prompts: a.calibration_prompts,
    }))
}

/// Where the quantization tools were looked for, in words.
fn quant_tools_where(a: &TuneArgs) -> String {
    match &a.quant_tools {
        Some(d) => format!("in {}", d.display()),
        None => "beside llama-server or on PATH".into(),
    }
}

/// `llama-quantize` and `llama-imatrix`: in `--quant-tools`, else beside the llama-server
/// the run launches, else on PATH.
fn quant_tools(a: &TuneArgs) -> Option<(PathBuf, PathBuf)> {
    let find = |dir: &std::path::Path| {
        let (q, i) = (dir.join("llama-quantize"), dir.join("llama-imatrix"));
        (q.is_file() && i.is_file()).then(|| (absolute(q), absolute(i)))
    };
    if let Some(d) = &a.quant_tools {
        return find(d);
    }
    let server = a
        .engine_cmd
        .as_deref()
        .and_then(|c| c.split_whitespace().next())
        .unwrap_or("llama-server");
    let beside = std::path::Path::new(server)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .and_then(find);
    beside.or_else(|| {
        std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).find_map(|d| find(&d)))
    })
}

/// `--source`, `--patches`, `--build-dir`: a clean git checkout of llama.cpp and a series
/// whose every file name can name a build, for a real llama.cpp run that reaches layer 3.
fn source_settings(a: &TuneArgs, layers: &[Layer]) -> anyhow::Result<Option<SourceSettings>> {
    let (Some(checkout), Some(patches)) = (&a.source, &a.patches) else {
        return Ok(None);
    };
    anyhow::ensure!(
        a.engine == EngineArg::Llamacpp && !a.dry_run,
        "--source: layer 3 from source builds llama.cpp (--engine llamacpp); a vLLM checkout is patched by `forge campaign --target vllm`"
    );
    anyhow::ensure!(
        a.engine_cmd.is_none(),
        "--source: the run serves llama-server built from the checkout; --engine-cmd would name another one"
    );
    anyhow::ensure!(
        layers.contains(&Layer::Kernel),
        "--source: its patches are layer-3 candidates, and this run leaves layer 3 out (--skip-kernel)"
    );
    let checkout = absolute(checkout.clone());
    git::ensure_repo_and_clean(&checkout).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
    let base_commit = git::head(&checkout).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
    for c in series::list(patches)? {
        anyhow::ensure!(
            is_patch_name(&c.name),
            "--patches {}: `{}`: a patch's file name may hold letters, digits and -_.+ only (it names the patch's build)",
            patches.display(),
            c.name
        );
    }
    let build_dir = absolute(match &a.build_dir {
        Some(b) => b.clone(),
        None => a.run_dir.join(default_build_dir(&checkout)),
    });
    anyhow::ensure!(
        !build_dir.starts_with(&checkout),
        "--build-dir {}: must be outside the checkout (a build inside it would dirty its tree)",
        build_dir.display()
    );
    Ok(Some(SourceSettings {
        checkout,
        patches: absolute(patches.clone()),
        build_dir,
        base_commit,
    }))
}

/// `build-llama.cpp-HASH`: one CMake build directory per checkout in the store, kept
/// between runs (a CMake build directory belongs to one source tree).
fn default_build_dir(checkout: &std::path::Path) -> String {
    let hash = crate::text::content_hash(checkout.as_os_str().as_encoded_bytes());
    format!("build-llama.cpp-{}", &hash[8..])
}

/// The replay of every measurement: the load flags against the workload, with `forge
/// tune`'s default concurrency and warm-ups where none were typed.
pub fn resolve_load(a: &TuneArgs, workload: &Workload) -> anyhow::Result<LoadSpec> {
    let mut load = LoadSpec::resolve(&a.load, workload, a.seed)?;
    load.concurrency = Some(a.load.concurrency.unwrap_or(DEFAULT_CONCURRENCY));
    if a.load.num_warmups.is_none() {
        load.num_warmups = auto_warmups(workload.requests.len());
    }
    Ok(load)
}

/// The simulator's clock when `--sim-time-scale` is not given: ten times faster than real
/// time, unless an engine step would then be too short to time.
pub const DEFAULT_SIM_TIME_SCALE: f64 = 0.1;

/// Wall time of one engine step (ms) below which the client cannot time tokens one by one:
/// a loopback read, a task wake-up and an SSE parse cost tens of microseconds, and a
/// request's fixed overhead (~0.4 ms measured) is multiplied by 1 / scale in its TTFT.
const MIN_WALL_STEP_MS: f64 = 0.5;

/// For a dry run on the default clock: slow the clock down so that the baseline's
/// predicted engine step (median ITL) lasts at least [`MIN_WALL_STEP_MS`] of wall time.
/// Says what it chose, when it changed anything.
fn choose_clock(s: &mut TuneSettings, workload: &Workload) -> Option<String> {
    let EngineChoice::Sim { gpu, framework, .. } = &s.engine else {
        return None;
    };
    let spec = gpus::lookup(gpu)?;
    let load = s.load.clone()?;
    let base = crate::engine::base_config(*framework, &s.engine_args).ok()?;
    let hw = crate::recipe::Hardware::default();
    let recipe = crate::recipe::Recipe::baseline_with(*framework, &s.model, hw, base);
    let model = crate::tune::surrogate::SimModel::new(s, spec, &workload.requests, &load)?;
    let itl = model.predicted_itl_ms(&recipe)?;
    let scale = clock_for(itl);
    if let EngineChoice::Sim { time_scale, .. } = &mut s.engine
        && scale > *time_scale
    {
        *time_scale = scale;
        return Some(format!(
            "simulator clock ×{scale:.2} (not ×{DEFAULT_SIM_TIME_SCALE}): a predicted engine step of {itl:.2} ms would last under {MIN_WALL_STEP_MS} ms of wall time, too short to time tokens one by one"
        ));
    }
    None
}

/// The clock for a predicted step of `itl_ms`: [`DEFAULT_SIM_TIME_SCALE`], or slower (up to
/// real time) so the step lasts [`MIN_WALL_STEP_MS`]; two significant digits.
fn clock_for(itl_ms: f64) -> f64 {
    if itl_ms.is_nan() || itl_ms <= 0.0 {
        return DEFAULT_SIM_TIME_SCALE;
    }
    let want = (MIN_WALL_STEP_MS / itl_ms).clamp(DEFAULT_SIM_TIME_SCALE, 1.0);
    ((want * 100.0).ceil() / 100.0).min(1.0)
}

/// `--concurrency` of `forge tune` when none is given (the original's default).
pub const DEFAULT_CONCURRENCY: usize = 8;

fn check_numbers(a: &TuneArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.max_hours > 0.0, "--max-hours must be positive");
    anyhow::ensure!(
        a.max_experiments >= 1,
        "--max-experiments must be at least 1 (the baseline is experiment 0 and counts)"
    );
    anyhow::ensure!(
        (0.0..=1.0).contains(&a.accuracy_floor),
        "--accuracy-floor must be in 0..1"
    );
    anyhow::ensure!(
        a.min_improvement_pct >= 0.0,
        "--min-improvement-pct must be >= 0"
    );
    anyhow::ensure!(a.max_repeats >= 1, "--max-repeats must be at least 1");
    anyhow::ensure!(a.boot_timeout > 0.0, "--boot-timeout must be positive");
    Ok(())
}

/// `--engine-args`, split as a POSIX shell would split it (quotes group words; nothing is
/// run) and checked against the engine's allowlist now, before a run directory exists.
fn engine_args(a: &TuneArgs) -> anyhow::Result<Vec<String>> {
    let Some(text) = &a.engine_args else {
        return Ok(Vec::new());
    };
    let words = shlex::split(text)
        .ok_or_else(|| anyhow::anyhow!("--engine-args: unbalanced quotes in `{text}`"))?;
    anyhow::ensure!(!words.is_empty(), "--engine-args is empty");
    let kind = a.engine.framework(a.dry_run);
    crate::engine::base_config(kind, &words)
        .map_err(|e| anyhow::anyhow!("--engine-args: {}", e.why))?;
    Ok(words)
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

fn launcher(a: &TuneArgs, default: &str) -> anyhow::Result<Vec<String>> {
    launcher_or(a, &[default])
}

fn launcher_or(a: &TuneArgs, default: &[&str]) -> anyhow::Result<Vec<String>> {
    let Some(c) = &a.engine_cmd else {
        return Ok(default.iter().map(|w| w.to_string()).collect());
    };
    let v: Vec<String> = c.split_whitespace().map(str::to_string).collect();
    anyhow::ensure!(!v.is_empty(), "--engine-cmd is empty");
    Ok(v)
}

fn engine_choice(a: &TuneArgs, detected_gpu: Option<&str>) -> anyhow::Result<EngineChoice> {
    if a.dry_run || a.engine == EngineArg::Sim {
        return sim_choice(a, detected_gpu);
    }
    Ok(match a.engine {
        EngineArg::Llamacpp => EngineChoice::Llamacpp {
            launcher: launcher(a, "llama-server")?,
        },
        EngineArg::Vllm | EngineArg::Sim => EngineChoice::Vllm {
            launcher: launcher(a, "vllm")?,
        },
        EngineArg::Sglang => EngineChoice::Sglang {
            launcher: launcher_or(a, &["sglang", "serve"])?,
        },
        EngineArg::Trtllm => EngineChoice::Trtllm {
            launcher: launcher_or(a, &["trtllm-serve", "serve"])?,
        },
    })
}

fn sim_choice(a: &TuneArgs, detected_gpu: Option<&str>) -> anyhow::Result<EngineChoice> {
    let gpu = a
        .sim_gpu
        .clone()
        .or_else(|| detected_gpu.map(str::to_string))
        .unwrap_or_else(|| DEFAULT_SIM_GPU.to_string());
    anyhow::ensure!(
        gpus::lookup(&gpu).is_some(),
        "--sim-gpu: unknown GPU `{gpu}` (known: {})",
        gpus::names().join(", ")
    );
    let time_scale = a.sim_time_scale.unwrap_or(DEFAULT_SIM_TIME_SCALE);
    anyhow::ensure!(time_scale > 0.0, "--sim-time-scale must be positive");
    anyhow::ensure!(
        a.sim_boot_time_scale > 0.0,
        "--sim-boot-time-scale must be positive"
    );
    anyhow::ensure!(
        (0.0..=50.0).contains(&a.sim_noise),
        "--sim-noise must be in 0..50"
    );
    Ok(EngineChoice::Sim {
        framework: a.engine.framework(true),
        gpu,
        time_scale,
        boot_time_scale: a.sim_boot_time_scale,
        noise_pct: a.sim_noise,
    })
}

fn layers(a: &TuneArgs) -> anyhow::Result<Vec<Layer>> {
    let start = a
        .start_layer
        .and_then(Layer::from_number)
        .unwrap_or(Layer::Config);
    let out: Vec<Layer> = [Layer::Config, Layer::Quant, Layer::Kernel]
        .into_iter()
        .filter(|l| *l >= start)
        .filter(|l| match l {
            Layer::Config => !a.skip_config,
            Layer::Quant => !a.skip_quant,
            Layer::Kernel => !a.skip_kernel,
        })
        .collect();
    anyhow::ensure!(!out.is_empty(), "every layer is skipped: nothing to tune");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Timing;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> TuneArgs {
        let mut v = vec!["forge", "tune", "--model", "m", "--workload", "w"];
        v.extend_from_slice(extra);
        match Cli::try_parse_from(v).unwrap().command {
            Command::Tune(t) => t.args,
            _ => unreachable!(),
        }
    }

    fn workload(offsets: bool) -> Workload {
        let line = if offsets {
            r#"{"prompt":"hi","expected_output_tokens":4,"arrival_offset_s":0.5}"#
        } else {
            r#"{"prompt":"hi","expected_output_tokens":4}"#
        };
        workload::parse(std::path::Path::new("w"), line).unwrap()
    }

    fn resolve_with(extra: &[&str], gpu: Option<&str>) -> anyhow::Result<TuneSettings> {
        let a = args(extra);
        let mut s = resolve(&a, gpu)?;
        s.load = Some(resolve_load(&a, &workload(false))?);
        Ok(s)
    }

    #[test]
    fn defaults_match_the_original_and_the_test_settings() {
        let mut s = resolve_with(&[], None).unwrap();
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.max_experiments, 50);
        assert_eq!(s.max_hours, 12.0);
        assert_eq!(s.accuracy_floor, 0.99);
        assert_eq!(s.min_improvement_pct, 1.0);
        assert_eq!(s.llm, "anthropic/claude-sonnet-4-6");
        assert_eq!(s.layers, vec![Layer::Config, Layer::Quant, Layer::Kernel]);
        assert!(s.workload.is_absolute());
        let load = s.load.take().unwrap();
        assert_eq!(load.concurrency, Some(8));
        assert_eq!(load.num_warmups, 1);
        assert_eq!(s, crate::record::settings::test_settings());
    }

    #[test]
    fn the_persisted_load_is_the_one_an_old_run_rebuilds() {
        // A run started before config.json kept its load replays the same way.
        for offsets in [false, true] {
            let w = workload(offsets);
            let a = args(&["--slo", "ttft_ms=500", "--seed", "3"]);
            let s = resolve(&a, None).unwrap();
            let kept = resolve_load(&a, &w).unwrap();
            let mut rebuilt = s.load_spec(offsets, w.requests.len());
            rebuilt.percentiles = kept.percentiles.clone();
            assert_eq!(rebuilt, kept);
        }
        let l = resolve_load(&args(&[]), &workload(true)).unwrap();
        assert_eq!(l.timing, Timing::Trace);
    }

    #[test]
    fn dry_run_uses_detected_then_default_gpu() {
        let s = resolve_with(&["--dry-run"], Some("A100-80GB")).unwrap();
        assert!(matches!(s.engine, EngineChoice::Sim { ref gpu, .. } if gpu == "A100-80GB"));
        let s = resolve_with(&["--dry-run"], None).unwrap();
        assert!(matches!(s.engine, EngineChoice::Sim { ref gpu, .. } if gpu == "H100"));
        let e = resolve_with(&["--dry-run", "--sim-gpu", "GTX1080"], None).unwrap_err();
        assert!(e.to_string().contains("unknown GPU"));
    }

    #[test]
    fn layers_and_validation() {
        let s = resolve_with(&["--skip-quant", "--start-layer", "1"], None).unwrap();
        assert_eq!(s.layers, vec![Layer::Config, Layer::Kernel]);
        let s = resolve_with(&["--start-layer", "2"], None).unwrap();
        assert_eq!(s.layers, vec![Layer::Quant, Layer::Kernel]);
        assert!(resolve_with(&["--skip-config", "--skip-quant", "--skip-kernel"], None).is_err());
        let e = resolve_with(&["--objective", "goodput"], None).unwrap_err();
        assert!(e.to_string().contains("needs --slo"), "{e}");
        let e = Cli::try_parse_from(["forge", "tune", "-c", "0"]).unwrap_err();
        assert!(e.to_string().contains("--concurrency"), "{e}");
        assert!(
            Cli::try_parse_from(["forge", "tune", "--device", "tpu"]).is_err(),
            "--device is a value enum"
        );
        assert!(Cli::try_parse_from(["forge", "tune", "--engine", "tgi"]).is_err());
        let s = resolve_with(
            &["--engine-cmd", "python -m vllm.entrypoints.cli.main"],
            None,
        )
        .unwrap();
        assert_eq!(
            s.engine,
            EngineChoice::Vllm {
                launcher: vec![
                    "python".into(),
                    "-m".into(),
                    "vllm.entrypoints.cli.main".into()
                ]
            }
        );
        let s = resolve_with(&["--engine", "llamacpp", "--device", "cpu"], None).unwrap();
        assert_eq!(
            s.engine,
            EngineChoice::Llamacpp {
                launcher: vec!["llama-server".into()]
            }
        );
    }

    #[test]
    fn the_clock_slows_down_for_steps_too_short_to_time() {
        assert_eq!(clock_for(6.5), DEFAULT_SIM_TIME_SCALE);
        assert_eq!(clock_for(5.0), DEFAULT_SIM_TIME_SCALE);
        assert_eq!(clock_for(2.4), 0.21);
        assert_eq!(clock_for(0.1), 1.0);
        assert_eq!(clock_for(0.0), DEFAULT_SIM_TIME_SCALE);
        assert_eq!(clock_for(f64::NAN), DEFAULT_SIM_TIME_SCALE);
    }

    #[test]
    fn round_trips_through_json() {
        let s = resolve_with(
            &["--dry-run", "--max-dollars", "2.5", "--slo", "ttft_ms=500"],
            None,
        )
        .unwrap();
        let back: TuneSettings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    /// A one-commit git repository with `files`.
    fn repo(dir: &std::path::Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        for args in [
            &["init", "-q"][..],
            &["add", "-A"],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "x",
            ],
        ] {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(dir)
                .status()
                .unwrap();
            assert!(ok.success());
        }
    }

    #[test]
    fn layer_three_from_source_is_checked_before_a_run_exists() {
        let tmp = tempfile::tempdir().unwrap();
        let (co, series) = (tmp.path().join("co"), tmp.path().join("series"));
        repo(&co, &[("a.c", "int a;\n")]);
        std::fs::create_dir_all(&series).unwrap();
        std::fs::write(series.join("01-x.diff"), "").unwrap();
        let (co_s, series_s) = (co.display().to_string(), series.display().to_string());
        let src = ["--source", co_s.as_str(), "--patches", series_s.as_str()];
        let with = |extra: &[&str]| {
            let mut v = vec!["--engine", "llamacpp"];
            v.extend_from_slice(&src);
            v.extend_from_slice(extra);
            resolve_with(&v, None)
        };
        let s = with(&[]).unwrap().source.unwrap();
        assert_eq!(s.checkout, co);
        assert_eq!(s.base_commit.len(), 40);
        assert!(s.build_dir.ends_with(default_build_dir(&co)), "{s:?}");
        let err = |r: anyhow::Result<TuneSettings>| r.unwrap_err().to_string();
        let e = err(resolve_with(&src, None));
        assert!(
            e.contains("--engine llamacpp") && e.contains("forge campaign"),
            "{e}"
        );
        let e = err(with(&["--engine-cmd", "llama-server"]));
        assert!(e.contains("--engine-cmd"), "{e}");
        let e = err(with(&["--skip-kernel"]));
        assert!(e.contains("--skip-kernel"), "{e}");
        let inside = co.join("build").display().to_string();
        let e = err(with(&["--build-dir", &inside]));
        assert!(e.contains("outside the checkout"), "{e}");
        std::fs::write(series.join("02 bad name.diff"), "").unwrap();
        let e = err(with(&[]));
        assert!(e.contains("`02 bad name.diff`"), "{e}");
        std::fs::remove_file(series.join("02 bad name.diff")).unwrap();
        std::fs::write(co.join("a.c"), "int b;\n").unwrap();
        let e = err(with(&[]));
        assert!(e.contains("--source") && e.contains("not clean"), "{e}");
        // clap: one without the other is refused before resolution.
        let v = [
            "forge",
            "tune",
            "--model",
            "m",
            "--workload",
            "w",
            "--source",
            "x",
        ];
        assert!(Cli::try_parse_from(v).is_err());
    }
}
