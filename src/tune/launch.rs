//! Starting and resuming a run from its settings (resolved from the command line by
//! `commands::tune`, or read back from `config.json` on resume): take the run's lock,
//! build the engine and the spawning [`Spawned`] measure, run the loop, and on Ctrl-C or
//! SIGTERM stop every engine process group and leave the run resumable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::assemble::{assemble, sim_launch};
use super::calibrate::Calibrations;
use super::measure::Measure;
use super::measure::spawned::{LiveGroups, Spawned};
use super::quantize::QuantBuilds;
use super::source::SourceBuilds;
use super::state::{RunState, StopReason};
use super::tuner::Tuner;
use crate::engine::adapter::Engine;
use crate::engine::llamacpp::adapter::LlamacppEngine;
use crate::engine::llamacpp::quant::QuantFiles;
use crate::engine::llamacpp::source::Builds;
use crate::engine::sglang::adapter::SglangEngine;
use crate::engine::trtllm::adapter::TrtllmEngine;
use crate::engine::vllm::adapter::VllmEngine;
use crate::hardware::detect::DetectOptions;
use crate::hardware::memory::MemoryProbe;
use crate::hardware::{self, Device, HardwareReport};
use crate::playbook;
use crate::recipe::EngineKind;
use crate::record::settings::{EngineChoice, TuneSettings};
use crate::store::{self, CONFIG_FILE, JOURNAL_FILE, PIDS_FILE, RunLock, Store};
use crate::workload;

/// Detect the machine's GPUs (blocking work off the runtime's threads).
pub async fn detect(device: Device) -> anyhow::Result<HardwareReport> {
    Ok(tokio::task::spawn_blocking(move || {
        hardware::detect::detect(&DetectOptions::from_env(device))
    })
    .await?)
}

/// No GPU where one is needed: say why, and what to do instead.
pub fn require_gpu(device: Device, r: &HardwareReport) -> anyhow::Result<()> {
    anyhow::ensure!(
        device == Device::Cpu || !r.gpus.is_empty(),
        "no GPU detected for --device {} ({}).\nhint: run `forge doctor` to see why; use --device cpu for llama.cpp on CPU, or --dry-run to use the simulator",
        device.as_str(),
        r.failures
            .iter()
            .map(|f| format!("{:?}: {}", f.source, f.reason))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(())
}

/// Start a new run with resolved `settings`: check what only the engine and playbook can
/// check, create the run directory, write `config.json`, run.
pub async fn start(settings: TuneSettings) -> anyhow::Result<ExitCode> {
    check_model(&settings)?;
    playbook::resolve(settings.playbook.as_ref(), settings.engine.recipe_engine())?;
    let store = Store::new(&settings.run_dir);
    let run = store.create_run(chrono::Utc::now())?;
    let lock = RunLock::acquire(&run.path)?;
    store::write_atomic(
        &run.path.join(CONFIG_FILE),
        serde_json::to_string_pretty(&settings)?.as_bytes(),
    )?;
    eprintln!("forge: new run {}", run.path.display());
    execute(settings, run.path, lock, RunState::default()).await
}

/// The model must be one the engine can load, checked before a run directory exists: the
/// simulator knows its shape; llama.cpp's is a readable GGUF file; vLLM's a local model
/// directory or a well-formed repository id.
pub fn check_model(s: &TuneSettings) -> anyhow::Result<()> {
    match s.engine {
        EngineChoice::Sim { .. } => {
            crate::sim::model::ModelShape::resolve(&s.model)
                .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
            Ok(())
        }
        EngineChoice::Llamacpp { .. } => crate::engine::llamacpp::check_model(&s.model),
        EngineChoice::Vllm { .. } => crate::engine::vllm::check_model(&s.model),
        EngineChoice::Sglang { .. } => crate::engine::sglang::check_model(&s.model),
        EngineChoice::Trtllm { .. } => crate::engine::trtllm::check_model(&s.model),
    }
}

/// `forge tune`'s exit status when the baseline could not be measured: the run recorded
/// why, but tuned nothing.
pub const EXIT_NOTHING_MEASURED: u8 = 3;

/// Continue run `run` (default: the latest interrupted run under `run_dir`) with the
/// settings and budgets it started with.
pub async fn resume(run: Option<PathBuf>, run_dir: &Path) -> anyhow::Result<ExitCode> {
    let dir = match run {
        Some(d) => d,
        None => Store::new(run_dir)
            .latest_interrupted()?
            .map(|r| r.path)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no interrupted run under {} (a run with config.json and no completed.json)",
                    run_dir.display()
                )
            })?,
    };
    anyhow::ensure!(
        !dir.join(store::COMPLETED_FILE).exists(),
        "{}: this run already completed",
        dir.display()
    );
    let lock = RunLock::acquire(&dir)?;
    let text = std::fs::read_to_string(dir.join(CONFIG_FILE))
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(CONFIG_FILE).display()))?;
    let settings: TuneSettings = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(CONFIG_FILE).display()))?;
    let reaped = crate::engine::process::reap_recorded(&dir.join(PIDS_FILE));
    if !reaped.is_empty() {
        eprintln!(
            "forge: stopped {} engine process group(s) left by the interrupted run",
            reaped.len()
        );
    }
    let journal = store::read_journal(&dir.join(JOURNAL_FILE))?;
    if journal.repaired_bytes > 0 {
        eprintln!(
            "forge: cut a torn last journal line ({} bytes); that experiment is redone",
            journal.repaired_bytes
        );
    }
    eprintln!(
        "forge: resuming {} after {} rows",
        dir.display(),
        journal.rows.len()
    );
    execute(settings, dir, lock, RunState::from_rows(journal.rows)).await
}

/// The engine a run's settings name, its files (help, version) kept under `dir`.
pub fn engine_of(s: &TuneSettings, dir: &Path) -> anyhow::Result<Arc<dyn Engine>> {
    Ok(match &s.engine {
        EngineChoice::Sim { framework, .. } => {
            let sim = sim_launch(s, std::env::current_exe()?);
            match framework {
                EngineKind::Sglang => Arc::new(SglangEngine::simulated(sim)),
                EngineKind::Trtllm => {
                    Arc::new(TrtllmEngine::simulated(sim).with_longest_prompt(longest_prompt(s)))
                }
                _ => Arc::new(VllmEngine::simulated(sim)),
            }
        }
        EngineChoice::Sglang { launcher } => Arc::new(tokio::task::block_in_place(|| {
            SglangEngine::installed(launcher.clone(), dir)
        })?),
        EngineChoice::Trtllm { launcher } => Arc::new(
            tokio::task::block_in_place(|| TrtllmEngine::installed(launcher.clone(), dir))?
                .with_longest_prompt(longest_prompt(s)),
        ),
        EngineChoice::Vllm { launcher } => Arc::new(tokio::task::block_in_place(|| {
            VllmEngine::installed(launcher.clone(), dir)
        })?),
        EngineChoice::Llamacpp { launcher } => Arc::new(llamacpp_engine(s, launcher, dir)?),
    })
}

/// llama.cpp serving `launcher`, or, for a run with `--source`, the builds of the
/// checkout kept under `dir` (the base build serves; `kernels.patch` picks another); with
/// layer 2's requantized models when the run makes them (`quant.method` picks one).
fn llamacpp_engine(
    s: &TuneSettings,
    launcher: &[String],
    dir: &Path,
) -> anyhow::Result<LlamacppEngine> {
    let mut engine = match &s.source {
        None => LlamacppEngine::for_run(launcher.to_vec(), &s.model, &s.workload, dir)?,
        Some(src) => {
            let names = crate::patch::series::list(&src.patches)?
                .into_iter()
                .map(|c| c.name)
                .collect();
            let builds = Builds::of_run(dir, names);
            let base = crate::engine::llamacpp::source::launcher(&builds.dir_of(None));
            LlamacppEngine::for_run(base, &s.model, &s.workload, dir)?.with_builds(builds)
        }
    };
    if let Some(q) = &s.quantize {
        engine = engine.with_quant(QuantFiles::of_run(dir, q.types.clone()));
    }
    Ok(engine)
}

/// For a run with `--source`: the checkout's builds, the base one made (or found) now.
fn open_source(s: &TuneSettings, dir: &Path) -> anyhow::Result<Option<Arc<SourceBuilds>>> {
    let Some(src) = &s.source else {
        return Ok(None);
    };
    let builds = tokio::task::block_in_place(|| {
        let b = SourceBuilds::open(src, dir)?;
        b.ensure_base()?;
        anyhow::Ok(b)
    })?;
    Ok(Some(Arc::new(builds)))
}

/// The workload's longest prompt in tokens (`None` when the workload cannot be read: the
/// run reports that itself).
fn longest_prompt(s: &TuneSettings) -> Option<u64> {
    let w = workload::load(&s.workload).ok()?;
    Some(workload::stats::compute(&w).prompt_tokens.max.ceil() as u64)
}

/// For real engines on GPUs: the probe and the idle memory reading taken now, before this
/// process boots anything.
async fn memory_probe(s: &TuneSettings) -> Option<(MemoryProbe, Vec<u64>)> {
    if matches!(s.engine, EngineChoice::Sim { .. }) {
        return None;
    }
    let device = s.device;
    if device == Device::Cpu {
        return None;
    }
    let opts = DetectOptions::from_env(device);
    let report = detect(device).await.ok()?;
    let probe = MemoryProbe::for_report(&report, &opts);
    let p = probe.clone();
    let idle = tokio::task::spawn_blocking(move || p.used_mib())
        .await
        .ok()?
        .ok()?;
    Some((probe, idle))
}

async fn execute(
    settings: TuneSettings,
    dir: PathBuf,
    _lock: RunLock,
    state: RunState,
) -> anyhow::Result<ExitCode> {
    let source = open_source(&settings, &dir)?;
    let engine = engine_of(&settings, &dir)?;
    let w = workload::load(&settings.workload)?;
    let quant = QuantBuilds::open(&settings, &w, &dir)?;
    let calibrations = Calibrations::open(settings.calibration.as_ref(), &settings.model, &w, &dir);
    let load = settings.load_spec(w.has_arrival_offsets(), w.requests.len());
    let mut measure = Spawned::new(
        engine.clone(),
        &dir,
        w,
        load,
        Duration::from_secs_f64(settings.boot_timeout_s),
        crate::engine::process::launches_recorded(&dir.join(PIDS_FILE)),
    );
    measure.set_heartbeat(settings.heartbeat_s);
    if let Some((probe, idle)) = memory_probe(&settings).await {
        measure.set_memory_probe(probe, idle);
    }
    if let Some(s) = source {
        measure.add_preparer(s);
    }
    if let Some(q) = quant {
        measure.add_preparer(Arc::new(q));
    }
    if let Some(c) = calibrations {
        measure.add_preparer(Arc::new(c));
    }
    let live = measure.live_groups();
    let (mut tuner, agent_banner) = assemble(settings, &dir, state, measure, engine.clone())?;
    banner(&tuner.settings, engine.as_ref(), &agent_banner, &dir);
    if let (Some(sim), Some(gpu)) = (&tuner.sim, tuner.gpu) {
        super::frontier::baseline(&dir, sim, gpu, &tuner.baseline);
    }
    let outcome = tokio::select! {
        r = drive(&mut tuner) => r,
        code = interrupted() => {
            teardown(&live, engine.grace()).await;
            // A build of a patch in progress (`--source`) is recorded there too.
            crate::engine::process::reap_recorded(&dir.join(PIDS_FILE));
            eprintln!("forge: interrupted; every engine process was stopped. Resume with: forge tune resume {}", dir.display());
            return Ok(ExitCode::from(code));
        }
    };
    tuner.measure.shutdown().await;
    let reason = outcome?;
    if let StopReason::BaselineFailed { .. } = reason {
        eprintln!(
            "forge: nothing measured: {reason}. The engine's log and the report say why: forge report {}",
            dir.display()
        );
        return Ok(ExitCode::from(EXIT_NOTHING_MEASURED));
    }
    eprintln!(
        "forge: done ({reason}). Report: forge report {}",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

async fn drive<M: Measure>(t: &mut Tuner<M>) -> anyhow::Result<StopReason> {
    let reason = t.run().await?;
    let best = t.state.incumbent.as_ref().map(|i| i.recipe.clone());
    if let (Some(sim), Some(gpu), Some(best)) = (&t.sim, t.gpu, best)
        && best.id != t.baseline.id
    {
        super::frontier::record(&t.dir, sim, gpu, "recommended", &best);
    }
    t.finish(&reason).await?;
    Ok(reason)
}

/// Resolves on SIGINT (130) or SIGTERM (143).
pub async fn interrupted() -> u8 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 130,
        _ = term.recv() => 143,
    }
}

/// Stop every engine process group in `live`: SIGTERM, `grace` to exit, then SIGKILL.
pub async fn teardown(live: &LiveGroups, grace: Duration) {
    let groups: Vec<i32> = live.lock().map(|v| v.clone()).unwrap_or_default();
    for g in &groups {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(*g),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline
        && groups
            .iter()
            .any(|g| !crate::engine::process::group_members(*g).is_empty())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for g in &groups {
        crate::engine::process::kill_group(*g);
    }
}

fn banner(s: &TuneSettings, engine: &dyn Engine, agent_line: &str, dir: &Path) {
    let agent = agent_line.trim_start_matches("agent: ");
    eprintln!(
        "forge tune · model {} · engine {}",
        s.model,
        engine.describe()
    );
    eprintln!(
        "  agent: {agent} · objective: {:?} · workload: {} · concurrency {} · budget {} experiments / {} h{}",
        s.objective,
        s.workload.display(),
        s.concurrency,
        s.max_experiments,
        s.max_hours,
        s.max_dollars
            .map_or(String::new(), |d| format!(" / ${d:.2}"))
    );
    eprintln!(
        "  layers: {} · keep threshold {} % · up to {} paired repeats · run {}",
        s.layers
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join(" → "),
        s.min_improvement_pct,
        s.max_repeats,
        dir.display()
    );
}
