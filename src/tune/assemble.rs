//! A [`Tuner`] put together from a run's settings: the workload and its statistics, the
//! playbook, the agent, the GPU the run tunes for, the simulator's model of it, the
//! baseline — the same for every [`Measure`]. [`in_process`] builds one that measures by
//! prediction (no process, no port): the benches, the unit tests of the loop and the
//! cross-framework gate run the real loop through it.

use std::path::Path;
use std::sync::Arc;

use super::measure::{Measure, Predicted};
use super::state::RunState;
use super::surrogate::SimModel;
use super::tuner::Tuner;
use crate::agent::select::Selection;
use crate::engine::adapter::Engine;
use crate::engine::vllm::adapter::{SimLaunch, VllmEngine};
use crate::hardware::{GpuSpec, gpus};
use crate::playbook;
use crate::recipe::{EngineKind, Hardware, Recipe};
use crate::record::Status;
use crate::record::settings::{EngineChoice, TuneSettings};
use crate::store::{self, CONFIG_FILE, JOURNAL_FILE};
use crate::workload;

/// A tuner for `settings` in run directory `dir`, continuing from `state`, measuring with
/// `measure` and judging legality with `engine`. Also returns the agent's banner line and
/// the notice to print once (no API key, unknown price).
pub fn assemble<M: Measure>(
    settings: TuneSettings,
    dir: &Path,
    state: RunState,
    measure: M,
    engine: Arc<dyn Engine>,
) -> anyhow::Result<(Tuner<M>, String)> {
    let workload = workload::load(&settings.workload)?;
    let stats = workload::stats::compute(&workload);
    let mut playbook =
        playbook::resolve(settings.playbook.as_ref(), settings.engine.recipe_engine())?;
    if let Some(src) = &settings.source {
        patches_in_space(&mut playbook, &src.patches)?;
    }
    if !settings.checkpoints.is_empty() {
        let repos = settings
            .checkpoints
            .iter()
            .map(|c| serde_json::Value::from(c.as_str()));
        playbook
            .space
            .entry(crate::recipe::Layer::Quant)
            .or_default()
            .insert("checkpoint".to_string(), repos.collect());
    }
    if let Some(q) = &settings.quantize {
        let types = q.types.iter().map(|t| serde_json::Value::from(t.as_str()));
        playbook
            .space
            .entry(crate::recipe::Layer::Quant)
            .or_default()
            .insert("method".to_string(), types.collect());
    }
    let gpu = gpu_of(&settings);
    if let Some(g) = gpu {
        for note in gate_space(&mut playbook, settings.engine.recipe_engine(), g) {
            eprintln!(
                "forge: layer 2 on {}: {note} (`forge playbook gates --gpu {}`)",
                g.name, g.name
            );
        }
    }
    let load = settings.load_spec(workload.has_arrival_offsets(), workload.requests.len());
    let sim = gpu
        .and_then(|g| SimModel::new(&settings, g, &workload.requests, &load))
        .map(|m| {
            let v = engine.vllm_version();
            m.for_vllm(v.map(|(a, b, c)| crate::engine::vllm::flags::Version::new(a, b, c)))
        });
    say_what_the_surrogate_knows(&settings, gpu, sim.as_ref());
    let Selection {
        agent,
        banner,
        notice,
    } = crate::agent::select::select(&settings, sim.is_some())?;
    if let Some(n) = notice {
        eprintln!("forge: {n}");
    }
    let baseline = baseline(&settings, &state, gpu)?;
    let tuner = Tuner {
        settings,
        dir: dir.to_path_buf(),
        state,
        measure,
        engine,
        agent,
        playbook,
        workload,
        stats,
        gpu,
        sim,
        baseline,
        refs: None,
        echo: true,
    };
    Ok((tuner, banner))
}

/// The hardware gates on layer 2's search space: a value `gpu` cannot run leaves it, one
/// that runs through a fallback kernel stays (it may still pay: FP8 weights on an A100 halve
/// the weight bytes) with what it will really be. Returns the lines to say.
fn gate_space(pb: &mut playbook::Playbook, engine: EngineKind, gpu: &GpuSpec) -> Vec<String> {
    use crate::engine::gates::{Gate, check, scheme_of_knob};
    let mut notes = Vec::new();
    let Some(knobs) = pb.space.get_mut(&crate::recipe::Layer::Quant) else {
        return notes;
    };
    for (field, values) in knobs.iter_mut() {
        values.retain(|v| {
            let Some(scheme) = v.as_str().and_then(|s| scheme_of_knob(field, s)) else {
                return true;
            };
            match check(engine, scheme, gpu) {
                Gate::Native => true,
                Gate::Fallback(why) => {
                    notes.push(format!("{field}={} stays, as a fallback: {why}", v_str(v)));
                    true
                }
                Gate::Refused(why) => {
                    notes.push(format!("{field}={} left out: {why}", v_str(v)));
                    false
                }
            }
        });
    }
    notes
}

fn v_str(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// Layer 3 from source: every patch of the series is a value of `kernels.patch` in the
/// search space the agents read (a playbook cannot list them: they are this run's files).
fn patches_in_space(pb: &mut playbook::Playbook, series: &Path) -> anyhow::Result<()> {
    let names = crate::patch::series::list(series)?
        .into_iter()
        .map(|c| serde_json::Value::from(c.name))
        .collect();
    pb.space
        .entry(crate::recipe::Layer::Kernel)
        .or_default()
        .insert("patch".to_string(), names);
    Ok(())
}

/// The simulator is the agent's surrogate for vLLM, SGLang and TensorRT-LLM runs: say
/// loudly when there is none (an unknown GPU, a model it cannot shape), and which of the
/// model's features it ignores. (llama.cpp has no simulator: nothing to say.)
fn say_what_the_surrogate_knows(s: &TuneSettings, gpu: Option<&GpuSpec>, sim: Option<&SimModel>) {
    if s.engine.recipe_engine() == crate::recipe::EngineKind::Llamacpp {
        return;
    }
    match sim {
        Some(m) => {
            for why in m.unmodelled() {
                eprintln!("forge: warning: the simulator ignores config.json {why}");
            }
        }
        None => {
            let why = match gpu {
                None => "the detected hardware is not a GPU the simulator models".to_string(),
                Some(_) => match crate::sim::model::ModelShape::resolve(&s.model) {
                    Err(e) => format!("it cannot shape the model ({e})"),
                    Ok(_) => "it could not be set up".to_string(),
                },
            };
            eprintln!(
                "forge: warning: NO SURROGATE — {why}; the agent gets no simulator predictions \
                 (no climb, no predicted gains): proposals come from the playbook's rules and \
                 single-knob moves, so expect more experiments"
            );
        }
    }
}

/// The baseline: the one the journal measured (a resumed run; it may carry a context the
/// engine's defaults could not boot with), else the engine's defaults plus the base engine
/// arguments.
fn baseline(s: &TuneSettings, state: &RunState, gpu: Option<&GpuSpec>) -> anyhow::Result<Recipe> {
    if let Some(r) = state.rows.iter().find(|r| r.status == Status::Baseline) {
        return Ok(r.recipe.clone());
    }
    let kind = s.engine.recipe_engine();
    let config = crate::engine::base_config(kind, &s.engine_args)
        .map_err(|e| anyhow::anyhow!("config.json: engine_args: {}", e.why))?;
    Ok(Recipe::baseline_with(
        kind,
        &s.model,
        hardware_of(s, gpu),
        config,
    ))
}

/// A tuner for a simulated run (`settings.engine` is the simulator) in `dir` that measures
/// in process by prediction, its noise drawn from `noise_seed`. `dir` becomes a run
/// directory (`config.json`, the journal, the views); an existing journal there is
/// continued, as `tune resume` continues one.
pub fn in_process(
    settings: TuneSettings,
    dir: &Path,
    noise_seed: u64,
) -> anyhow::Result<Tuner<Predicted>> {
    let EngineChoice::Sim { gpu, noise_pct, .. } = &settings.engine else {
        anyhow::bail!("measuring in process needs the simulator as the engine (--dry-run)");
    };
    let spec = gpus::lookup(gpu).ok_or_else(|| anyhow::anyhow!("unknown GPU `{gpu}`"))?;
    let w = workload::load(&settings.workload)?;
    let load = settings.load_spec(w.has_arrival_offsets(), w.requests.len());
    let measure = Predicted::new(
        &settings.model,
        spec,
        w.requests,
        &load,
        *noise_pct,
        noise_seed,
    )?;
    let sim = sim_launch(&settings, "forge".into());
    let engine: Arc<dyn crate::engine::adapter::Engine> = match settings.engine.recipe_engine() {
        crate::recipe::EngineKind::Sglang => {
            Arc::new(crate::engine::sglang::adapter::SglangEngine::simulated(sim))
        }
        crate::recipe::EngineKind::Trtllm => {
            Arc::new(crate::engine::trtllm::adapter::TrtllmEngine::simulated(sim))
        }
        _ => Arc::new(VllmEngine::simulated(sim)),
    };
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    store::write_atomic(
        &dir.join(CONFIG_FILE),
        serde_json::to_string_pretty(&settings)?.as_bytes(),
    )?;
    let journal = store::read_journal(&dir.join(JOURNAL_FILE))?;
    let state = RunState::from_rows(journal.rows);
    Ok(assemble(settings, dir, state, measure, engine)?.0)
}

/// How `forge sim serve` is launched for the simulator in `settings`, as `exe`.
pub fn sim_launch(s: &TuneSettings, exe: std::path::PathBuf) -> SimLaunch {
    let (gpu, time_scale, boot_time_scale, noise_pct) = match &s.engine {
        EngineChoice::Sim {
            gpu,
            time_scale,
            boot_time_scale,
            noise_pct,
            ..
        } => (gpu.clone(), *time_scale, *boot_time_scale, *noise_pct),
        _ => (String::new(), 1.0, 1.0, 0.0),
    };
    SimLaunch {
        exe,
        gpu,
        time_scale,
        boot_time_scale,
        noise_pct,
        seed: s.seed,
        extra: sim_extra_args(),
    }
}

/// Extra simulator flags from `FORGE_SIM_EXTRA_ARGS` (whitespace-separated; tests use it to
/// inject faults into dry runs).
fn sim_extra_args() -> Vec<String> {
    std::env::var("FORGE_SIM_EXTRA_ARGS")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// The GPU the run tunes for: the simulated one, or the one detected when it started.
pub fn gpu_of(s: &TuneSettings) -> Option<&'static GpuSpec> {
    match &s.engine {
        EngineChoice::Sim { gpu, .. } => gpus::lookup(gpu),
        _ => s.hardware.as_ref().and_then(|h| gpus::lookup(&h.gpu_type)),
    }
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
            vendor: s.device.as_str().into(),
            gpu_type: s.device.as_str().into(),
            count: 1,
            memory_gb_per_gpu: 0.0,
        },
    }
}
