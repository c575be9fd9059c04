//! A scenario made ready for the bench: `forge tune` settings as its command line resolves
//! them, its workload and playbook written where forge reads them, the simulator as truth
//! (noise-free) and as a noisy instrument, and the exhaustive sweep of its space.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use forge::cli::{Cli, Command};
use forge::engine::adapter::Engine;
use forge::engine::vllm::adapter::VllmEngine;
use forge::hardware::GpuSpec;
use forge::playbook::Playbook;
use forge::recipe::{Layer, Recipe};
use forge::record::settings::TuneSettings;
use forge::record::{EngineChoice, Measurement};
use forge::tune::assemble::sim_launch;
use forge::tune::measure::{Measure, Predicted};
use forge::tune::score;
use forge::tune::surrogate::{SimModel, SimRun, setup_for};
use forge::tune::tuner::legal;
use forge::workload::stats::WorkloadStats;
use forge::workload::{self, WorkloadRequest};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

use crate::scenarios::{REACH, Scenario};

/// A scenario made ready.
pub struct Bench {
    pub name: &'static str,
    /// σ of the surrogate's per-configuration error, % (0 = forge's simulator as is).
    pub surrogate_err: f64,
    /// `forge tune`'s settings for the scenario (workload and playbook point into `dir`).
    pub settings: TuneSettings,
    pub gpu: &'static GpuSpec,
    pub requests: Vec<WorkloadRequest>,
    pub stats: WorkloadStats,
    /// The legality check and the surrogate, as the loop builds them.
    pub engine: Arc<dyn Engine>,
    pub sim: SimModel,
    /// The playbook's config space (the swept one).
    pub space: BTreeMap<String, Vec<Value>>,
    pub baseline: Recipe,
    /// The scenario's files and the agents' run directories.
    pub dir: tempfile::TempDir,
}

/// A directory for many small runs: memory-backed where the machine has one (each row is
/// fsync'd, and this bench writes thousands).
fn scratch() -> anyhow::Result<tempfile::TempDir> {
    let shm = std::path::Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    })
}

impl Bench {
    pub fn new(
        sc: Scenario,
        noise: f64,
        surrogate_err: f64,
        playbook: &str,
    ) -> anyhow::Result<Bench> {
        let dir = scratch()?;
        let path = dir.path().join("search-quality.jsonl");
        std::fs::write(&path, forge::workload::synth::to_jsonl(&sc.requests))?;
        std::fs::write(dir.path().join("playbook.md"), playbook)?;
        let args = tune_args(&sc, noise, &path.to_string_lossy())?;
        let w = workload::load(&path)?;
        let mut settings = forge::commands::tune::resolve(&args, None)?;
        settings.load = Some(forge::commands::tune::resolve_load(&args, &w)?);
        settings.playbook = Some(dir.path().join("playbook.md"));
        let gpu = forge::hardware::gpus::lookup(sc.gpu).context("unknown GPU")?;
        let load = settings.load_spec(w.has_arrival_offsets(), w.requests.len());
        let sim = SimModel::new(&settings, gpu, &w.requests, &load)
            .context("no sim model")?
            .with_error(surrogate_err, 0);
        let engine: Arc<dyn Engine> =
            Arc::new(VllmEngine::simulated(sim_launch(&settings, "forge".into())));
        let pb = Playbook::parse("playbook.md", playbook)?;
        let baseline = Recipe::baseline(
            settings.engine.recipe_engine(),
            sc.model,
            forge::recipe::Hardware {
                vendor: "nvidia".into(),
                gpu_type: gpu.name.to_string(),
                count: 1,
                memory_gb_per_gpu: (gpu.memory_gib() * 10.0).round() / 10.0,
            },
        );
        Ok(Bench {
            name: sc.name,
            surrogate_err,
            stats: workload::stats::compute(&w),
            settings,
            gpu,
            requests: sc.requests,
            engine,
            sim,
            space: pb.space.get(&Layer::Config).cloned().unwrap_or_default(),
            baseline,
            dir,
        })
    }

    /// The run-to-run noise of this scenario's measurements, %.
    pub fn settings_noise(&self) -> f64 {
        match self.settings.engine {
            EngineChoice::Sim { noise_pct, .. } => noise_pct,
            _ => 0.0,
        }
    }

    /// The in-process instrument with `noise` % run-to-run noise: what the loop measures
    /// with.
    pub fn instrument(&self, noise: f64) -> anyhow::Result<Predicted> {
        let load = self.settings.load_spec(
            self.requests.iter().any(|r| r.arrival_offset_s.is_some()),
            self.requests.len(),
        );
        Predicted::new(
            &self.settings.model,
            self.gpu,
            self.requests.clone(),
            &load,
            noise,
            self.settings.seed,
        )
    }

    /// One run of `r` on `instrument`, named `tag`, scored as forge scores it.
    pub fn measure(
        &self,
        instrument: &mut Predicted,
        r: &Recipe,
        tag: &str,
    ) -> Result<Measurement, String> {
        let out = futures::executor::block_on(instrument.sample(r, tag)).map_err(|f| f.summary)?;
        Ok(score::measure(&out.result, &self.settings, None))
    }

    /// The true score: the noise-free run, 0 when it misses the SLA, `None` if infeasible.
    pub fn truth(&self, r: &Recipe) -> Option<f64> {
        let shape = forge::sim::model::ModelShape::resolve(&self.settings.model).ok()?;
        let run = SimRun {
            seed: self.settings.seed,
            noise_pct: 0.0,
            vllm: forge::engine::vllm::flags::Version::CURRENT,
        };
        let c = setup_for(&shape, self.gpu, &self.settings.model, r, run).ok()?;
        let load = self.settings.load.clone()?;
        let res =
            forge::sim::predict::predict(c.setup, &self.requests, &load, &self.settings.model)
                .ok()?;
        let m = score::measure(&res, &self.settings, None);
        Some(if m.sla_ok && m.completed > 0 {
            m.value
        } else {
            0.0
        })
    }

    /// The values of the swept knobs in effect for `r` (defaults filled in): the key of
    /// the truth table.
    pub fn key(&self, r: &Recipe) -> String {
        let eff = forge::engine::vllm::effective(r, Some(self.gpu));
        let m: BTreeMap<&String, Value> = self
            .space
            .keys()
            .map(|k| (k, eff.get(k).cloned().unwrap_or(Value::Null)))
            .collect();
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// `forge tune`'s command line for the scenario (the workload file is `workload`).
fn tune_args(sc: &Scenario, noise: f64, workload: &str) -> anyhow::Result<forge::cli::TuneArgs> {
    let noise = noise.to_string();
    let mut argv = vec![
        "forge",
        "tune",
        "-m",
        sc.model,
        "-w",
        workload,
        "--dry-run",
        "--sim-gpu",
        sc.gpu,
        "--sim-noise",
        &noise,
        "--skip-quant",
        "--skip-kernel",
        "--llm",
        "builtin",
    ];
    argv.extend_from_slice(sc.flags);
    match Cli::parse_from(argv).command {
        Command::Tune(t) => Ok(t.args),
        _ => anyhow::bail!("not a tune command line"),
    }
}

/// The exhaustive sweep of one scenario.
pub struct Sweep {
    /// Truth by effective-config key; `None` = infeasible.
    pub truth: HashMap<String, Option<f64>>,
    /// Feasible keys with their score, in enumeration order.
    pub feasible: Vec<(String, f64)>,
    pub total: usize,
    pub best: f64,
    pub best_key: String,
    pub baseline: f64,
    pub seconds: f64,
}

/// The recipe for a truth-table key (every swept knob set explicitly).
pub fn recipe_of(b: &Bench, key: &str) -> Recipe {
    let m: BTreeMap<String, Value> = serde_json::from_str(key).unwrap_or_default();
    b.baseline.mutate(Layer::Config, &m)
}

fn combinations(space: &BTreeMap<String, Vec<Value>>) -> Vec<BTreeMap<String, Value>> {
    let mut out = vec![BTreeMap::new()];
    for (k, values) in space {
        out = out
            .into_iter()
            .flat_map(|m| {
                values.iter().map(move |v| {
                    let mut m = m.clone();
                    m.insert(k.clone(), v.clone());
                    m
                })
            })
            .collect();
    }
    out
}

pub fn sweep(b: &Bench) -> Sweep {
    let started = Instant::now();
    let mut space = b.space.clone();
    if std::env::var("SQ_COARSE").is_ok() {
        space.insert("gpu_memory_utilization".into(), vec![Value::from(0.92)]);
        space.insert("enable_prefix_caching".into(), vec![Value::from(true)]);
    }
    let combos = combinations(&space);
    let mut truth = HashMap::new();
    let mut feasible = Vec::new();
    for c in &combos {
        let r = b.baseline.mutate(Layer::Config, c);
        let key = b.key(&r);
        let t = legal(b.engine.as_ref(), Some(&b.sim), &r)
            .ok()
            .and_then(|_| b.truth(&r));
        if let Some(s) = t {
            feasible.push((key.clone(), s));
        }
        truth.insert(key, t);
    }
    let (best_key, best) = feasible
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .cloned()
        .unwrap_or_default();
    let baseline = b.truth(&b.baseline).unwrap_or(0.0);
    Sweep {
        truth,
        feasible,
        total: combos.len(),
        best,
        best_key,
        baseline,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Sweep {
    pub fn score(&self, b: &Bench, r: &Recipe) -> f64 {
        let key = b.key(r);
        match self.truth.get(&key) {
            Some(t) => t.unwrap_or(0.0),
            None => b.truth(r).unwrap_or(0.0),
        }
    }

    pub fn reached(&self, s: f64) -> bool {
        s >= REACH * self.best
    }
}

/// Experiments random search needs to reach the target, over `seeds` orders.
pub fn random_search(sw: &Sweep, seeds: u64) -> Vec<u32> {
    if sw.reached(sw.baseline) {
        return vec![0; seeds as usize];
    }
    let mut out = Vec::new();
    for seed in 0..seeds {
        let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_0000 + seed);
        let mut order: Vec<usize> = (0..sw.feasible.len()).collect();
        // Fisher-Yates.
        for i in (1..order.len()).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let n = order
            .iter()
            .position(|&i| sw.reached(sw.feasible[i].1))
            .map_or(order.len(), |p| p + 1);
        out.push(n as u32);
    }
    out
}
