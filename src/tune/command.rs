//! `forge tune` / `forge tune resume`: resolve settings (from the command line, or from the
//! run's `config.json` on resume), validate every input before anything is recorded, take
//! the run's lock, build the engine, agent and measurer, run the loop, and on Ctrl-C or
//! SIGTERM stop every engine process group and leave the run resumable.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::measure::{LiveGroups, Measurer};
use super::run::Tuner;
use super::settings::{EngineChoice, TuneSettings};
use super::state::RunState;
use crate::bench::{Endpoint, LoadSpec, Timing};
use crate::cli::{ResumeArgs, TuneAction, TuneCli};
use crate::engine::adapter::Engine;
use crate::engine::llamacpp::adapter::LlamacppEngine;
use crate::engine::vllm::adapter::{SimLaunch, VllmEngine};
use crate::hardware::detect::DetectOptions;
use crate::hardware::memory::MemoryProbe;
use crate::hardware::{self, Device, GpuSpec, HardwareReport, gpus};
use crate::playbook;
use crate::recipe::{Hardware, Recipe};
use crate::store::{self, CONFIG_FILE, JOURNAL_FILE, PIDS_FILE, RunLock, Store};
use crate::workload;

/// Run `forge tune`.
pub fn main(cli: TuneCli) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.action {
            Some(TuneAction::Resume(a)) => resume(a).await,
            None => start(cli.args).await,
        }
    })
}

/// Detect the machine's GPUs (blocking work off the runtime's threads).
async fn detect(device: Device) -> anyhow::Result<HardwareReport> {
    Ok(tokio::task::spawn_blocking(move || {
        hardware::detect::detect(&DetectOptions::from_env(device))
    })
    .await?)
}

async fn start(args: crate::cli::TuneArgs) -> anyhow::Result<ExitCode> {
    let device: Device = args.device.parse().map_err(anyhow::Error::msg)?;
    let simulated = args.dry_run || args.engine == "sim";
    let report = if simulated && args.sim_gpu.is_some() {
        None
    } else {
        Some(detect(device).await?)
    };
    for w in report.iter().flat_map(|r| r.warnings.iter()) {
        eprintln!("forge: warning: {w}");
    }
    let mut settings = TuneSettings::resolve(&args, report.as_ref().and_then(|r| r.gpu_type()))?;
    if simulated && args.sim_gpu.is_none() && report.as_ref().and_then(|r| r.gpu_type()).is_none() {
        eprintln!(
            "forge: no GPU detected; the simulator models an {} (choose with --sim-gpu)",
            super::settings::DEFAULT_SIM_GPU
        );
    }
    if !simulated {
        let r = report
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("hardware detection did not run"))?;
        anyhow::ensure!(
            device == Device::Cpu || !r.gpus.is_empty(),
            "no GPU detected for --device {} ({}).\nhint: run `forge doctor` to see why; use --device cpu for llama.cpp on CPU, or --dry-run to use the simulator",
            args.device,
            r.failures
                .iter()
                .map(|f| format!("{:?}: {}", f.source, f.reason))
                .collect::<Vec<_>>()
                .join("; ")
        );
        settings.hardware = Some(r.recipe_hardware());
    }
    // Bad input fails here, before a run directory exists.
    workload::load(&settings.workload)?;
    if let EngineChoice::Llamacpp { .. } = settings.engine {
        crate::engine::llamacpp::check_model(&settings.model)?;
    }
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

async fn resume(a: ResumeArgs) -> anyhow::Result<ExitCode> {
    let dir = match a.run {
        Some(d) => d,
        None => Store::new(&a.run_dir)
            .latest_interrupted()?
            .map(|r| r.path)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "no interrupted run under {} (a run with config.json and no completed.json)",
                    a.run_dir.display()
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

fn load_spec(s: &TuneSettings, w: &workload::Workload) -> LoadSpec {
    LoadSpec {
        endpoint: Endpoint::Completions,
        concurrency: Some(s.concurrency),
        request_rate: None,
        burstiness: 1.0,
        timing: if w.has_arrival_offsets() {
            Timing::Trace
        } else {
            Timing::Rate
        },
        num_warmups: (w.requests.len() / 10).clamp(1, 4),
        slo: s.slo,
        pin_output: true,
        seed: s.seed,
        percentiles: vec![50.0, 90.0, 99.0],
        time_scale: 1.0,
    }
}

fn gpu_of(s: &TuneSettings) -> Option<&'static GpuSpec> {
    match &s.engine {
        EngineChoice::Sim { gpu, .. } => gpus::lookup(gpu),
        _ => s.hardware.as_ref().and_then(|h| gpus::lookup(&h.gpu_type)),
    }
}

fn engine_of(s: &TuneSettings, dir: &Path) -> anyhow::Result<Arc<dyn Engine>> {
    Ok(match &s.engine {
        EngineChoice::Sim {
            gpu,
            time_scale,
            boot_time_scale,
            noise_pct,
        } => Arc::new(VllmEngine::simulated(SimLaunch {
            exe: std::env::current_exe()?,
            gpu: gpu.clone(),
            time_scale: *time_scale,
            boot_time_scale: *boot_time_scale,
            noise_pct: *noise_pct,
            seed: s.seed,
            extra: sim_extra_args(),
        })),
        EngineChoice::Vllm { launcher } => Arc::new(tokio::task::block_in_place(|| {
            VllmEngine::installed(launcher.clone(), dir)
        })?),
        EngineChoice::Llamacpp { launcher } => Arc::new(LlamacppEngine::for_run(
            launcher.clone(),
            &s.model,
            &s.workload,
            dir,
        )?),
    })
}

/// Extra simulator flags from `FORGE_SIM_EXTRA_ARGS` (whitespace-separated; tests use it to
/// inject faults into dry runs).
fn sim_extra_args() -> Vec<String> {
    std::env::var("FORGE_SIM_EXTRA_ARGS")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

fn hardware_of(s: &TuneSettings, gpu: Option<&GpuSpec>) -> Hardware {
    if let Some(h) = &s.hardware {
        return h.clone();
    }
    match gpu {
        Some(g) => Hardware {
            vendor: format!("{:?}", g.vendor).to_lowercase(),
            gpu_type: g.name.to_string(),
            count: 1,
            memory_gb_per_gpu: (g.memory_gib() * 10.0).round() / 10.0,
        },
        None => Hardware {
            vendor: s.device.clone(),
            gpu_type: s.device.clone(),
            count: 1,
            memory_gb_per_gpu: 0.0,
        },
    }
}

/// For real engines on GPUs: the probe and the idle memory reading taken now, before this
/// process boots anything.
async fn memory_probe(s: &TuneSettings) -> Option<(MemoryProbe, Vec<u64>)> {
    if matches!(s.engine, EngineChoice::Sim { .. }) {
        return None;
    }
    let device: Device = s.device.parse().ok()?;
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

fn boots_so_far(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join(PIDS_FILE)).map_or(0, |t| t.lines().count() as u64)
}

async fn execute(
    settings: TuneSettings,
    dir: PathBuf,
    _lock: RunLock,
    state: RunState,
) -> anyhow::Result<ExitCode> {
    let workload = workload::load(&settings.workload)?;
    let stats = workload::stats::compute(&workload);
    let playbook = playbook::resolve(settings.playbook.as_ref(), settings.engine.recipe_engine())?;
    let engine = engine_of(&settings, &dir)?;
    let gpu = gpu_of(&settings);
    let load = load_spec(&settings, &workload);
    let mut measurer = Measurer::new(
        engine.clone(),
        &dir,
        workload.clone(),
        load.clone(),
        Duration::from_secs_f64(settings.boot_timeout_s),
        boots_so_far(&dir),
    );
    if let Some((probe, idle)) = memory_probe(&settings).await {
        measurer.set_memory_probe(probe, idle);
    }
    let selection = crate::agent::select::select(&settings)?;
    if let Some(n) = &selection.notice {
        eprintln!("forge: {n}");
    }
    let live = measurer.live_groups();
    let sim =
        gpu.and_then(|g| super::context::SimModel::new(&settings, g, &workload.requests, &load));
    let baseline = Recipe::baseline(
        settings.engine.recipe_engine(),
        &settings.model,
        hardware_of(&settings, gpu),
    );
    banner(&settings, engine.as_ref(), &selection.banner, &dir);
    let mut tuner = Tuner {
        settings,
        dir,
        state,
        measurer,
        agent: selection.agent,
        playbook,
        workload,
        stats,
        gpu,
        sim,
        baseline,
        refs: None,
    };
    let outcome = tokio::select! {
        r = drive(&mut tuner) => Some(r),
        code = interrupted() => {
            teardown(&live, engine.grace()).await;
            eprintln!("forge: interrupted; every engine process was stopped. Resume with: forge tune resume {}", tuner.dir.display());
            return Ok(ExitCode::from(code));
        }
    };
    tuner.measurer.shutdown().await;
    match outcome {
        Some(Ok(reason)) => {
            tuner.complete(&reason)?;
            eprintln!(
                "forge: done ({reason}). Report: forge report {}",
                tuner.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Err(e)) => Err(e),
        None => Ok(ExitCode::from(1)),
    }
}

async fn drive(t: &mut Tuner) -> anyhow::Result<String> {
    let reason = t.run().await?;
    if !reason.starts_with("time budget") && !reason.starts_with("the baseline") {
        t.confirm().await?;
    }
    t.analyze().await;
    Ok(reason)
}

/// Resolves on SIGINT (130) or SIGTERM (143).
async fn interrupted() -> u8 {
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

async fn teardown(live: &LiveGroups, grace: Duration) {
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
