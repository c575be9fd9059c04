//! The simulator as the loop's model of a deployment — vLLM, or SGLang and TensorRT-LLM
//! through their twins ([`crate::sim::twin::for_recipe`]): the surrogate the agent climbs
//! (a recipe's predicted objective, in milliseconds) and the memory model that refuses a
//! recipe the engine would not boot on this GPU before anything is spent on it.

use std::collections::HashMap;
use std::hash::Hasher;
use std::sync::Mutex;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;
use twox_hash::XxHash64;

use super::score;
use crate::bench::LoadSpec;
use crate::engine::vllm::VllmArgs;
use crate::engine::vllm::flags::Version;
use crate::engine::vllm::recipe::to_vllm_args;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};
use crate::record::frontier::FrontierPoint;
use crate::record::settings::TuneSettings;
use crate::sim::engine::{SimEngine, SimSetup};
use crate::sim::model::ModelShape;
use crate::workload::WorkloadRequest;

/// A recipe made ready for the simulator: its setup and the vLLM arguments it came from.
pub struct SimConfig {
    /// What the simulator boots.
    pub setup: SimSetup,
    /// The recipe as vLLM arguments (for what the setup does not keep, e.g. the text
    /// perturbation of a quantization).
    pub args: VllmArgs,
}

/// How the simulator runs: the seed for everything random, run-to-run noise (percent) and
/// the vLLM release it stands in for.
#[derive(Debug, Clone, Copy)]
pub struct SimRun {
    /// Seed.
    pub seed: u64,
    /// Run-to-run noise, percent.
    pub noise_pct: f64,
    /// The vLLM release (its memory-profiling rules).
    pub vllm: Version,
}

/// The simulator setup of `recipe` for `model` (`shape`) on `gpu`, run as `run` says: vLLM
/// recipes directly, SGLang and TensorRT-LLM ones through their twins (rendered by the real
/// adapter and parsed back). A pre-quantized checkpoint is the base model's shape with the
/// checkpoint's own quantization (read where the simulator can shape the checkpoint: the
/// catalogue's published copies, the local Hugging Face cache).
pub fn setup_for(
    shape: &ModelShape,
    gpu: &'static GpuSpec,
    model: &str,
    recipe: &Recipe,
    run: SimRun,
) -> Result<SimConfig, Illegal> {
    if matches!(recipe.engine, EngineKind::Sglang | EngineKind::Trtllm) {
        let twin = crate::sim::twin::for_recipe(recipe, gpu)?;
        let at = crate::sim::twin::Run {
            gpu,
            seed: run.seed,
            noise_pct: run.noise_pct,
        };
        let setup = crate::sim::twin::sized_setup(&twin, shape.clone(), at)
            .map_err(|e| Illegal::recipe(format!("predicted to fail at boot: {e}")))?;
        return Ok(SimConfig {
            setup,
            args: VllmArgs::default(),
        });
    }
    let args = to_vllm_args(recipe)?;
    let mut config = args.resolve(gpu);
    config.model = model.to_string();
    Ok(SimConfig {
        setup: SimSetup {
            model: with_checkpoint(shape, recipe),
            gpu,
            config,
            seed: run.seed,
            noise_pct: run.noise_pct,
            vllm: run.vllm,
            policy: Default::default(),
        },
        args,
    })
}

/// `shape` with the quantization of `recipe`'s pre-quantized checkpoint, when it has one
/// the simulator can read.
fn with_checkpoint(shape: &ModelShape, recipe: &Recipe) -> ModelShape {
    let quant = recipe
        .quant
        .checkpoint
        .as_deref()
        .and_then(|c| ModelShape::resolve(c).ok())
        .and_then(|m| m.quant);
    match quant {
        Some(q) => ModelShape {
            quant: Some(q),
            ..shape.clone()
        },
        None => shape.clone(),
    }
}

/// The simulator as legality check and surrogate for vLLM recipes.
pub struct SimModel {
    shape: ModelShape,
    gpu: &'static GpuSpec,
    requests: Vec<WorkloadRequest>,
    load: LoadSpec,
    settings: TuneSettings,
    cache: Mutex<HashMap<String, Option<f64>>>,
    error_pct: f64,
    error_seed: u64,
    vllm: Version,
}

impl SimModel {
    /// Build for a model the simulator knows (catalogue or config.json) served by an engine
    /// it models (vLLM, SGLang, TensorRT-LLM); `None` otherwise.
    pub fn new(
        s: &TuneSettings,
        gpu: &'static GpuSpec,
        requests: &[WorkloadRequest],
        load: &LoadSpec,
    ) -> Option<SimModel> {
        if s.engine.recipe_engine() == EngineKind::Llamacpp {
            return None; // the simulator has no model of llama.cpp
        }
        let shape = ModelShape::resolve(&s.model).ok()?;
        let mut load = load.clone();
        load.time_scale = 1.0;
        Some(SimModel {
            shape,
            gpu,
            requests: requests.to_vec(),
            load,
            settings: s.clone(),
            cache: Mutex::new(HashMap::new()),
            error_pct: 0.0,
            error_seed: 0,
            vllm: Version::CURRENT,
        })
    }

    /// The model's `config.json` features the simulator does not model.
    pub fn unmodelled(&self) -> &[String] {
        &self.shape.unmodelled
    }

    fn setup(&self, recipe: &Recipe) -> Result<SimSetup, Illegal> {
        let run = SimRun {
            seed: self.settings.seed,
            noise_pct: 0.0,
            vllm: self.vllm,
        };
        setup_for(&self.shape, self.gpu, &self.settings.model, recipe, run).map(|c| c.setup)
    }

    /// Predict as the vLLM release `version` would boot (its memory-profiling rules), when
    /// the engine knows it.
    pub fn for_vllm(mut self, version: Option<Version>) -> SimModel {
        if let Some(v) = version {
            self.vllm = v;
        }
        self
    }

    /// `Err` when vLLM would refuse to start the recipe on this GPU (invalid combination,
    /// does not fit in memory), per the simulator's memory model.
    pub fn legal(&self, recipe: &Recipe) -> Result<(), Illegal> {
        if recipe.engine == EngineKind::Llamacpp {
            return Ok(());
        }
        let setup = self.setup(recipe)?;
        SimEngine::boot(setup)
            .map(|_| ())
            .map_err(|e| Illegal::recipe(format!("predicted to fail at boot: {e}")))
    }

    /// Predicted objective value (cached per recipe id), off by this model's configured
    /// error (see [`SimModel::with_error`]).
    pub fn predict(&self, recipe: &Recipe) -> Option<f64> {
        let v = self.predict_exact(recipe)?;
        if self.error_pct <= 0.0 {
            return Some(v);
        }
        let mut h = XxHash64::with_seed(0x5e44 ^ self.error_seed);
        let key = crate::engine::vllm::effective(recipe, Some(self.gpu));
        h.write(serde_json::to_string(&key).unwrap_or_default().as_bytes());
        let mut rng = ChaCha8Rng::seed_from_u64(h.finish());
        let z: f64 = rand_distr::StandardNormal.sample(&mut rng);
        Some(v * (self.error_pct / 100.0 * z).exp())
    }

    /// The same model, wrong by a fixed factor exp(σ·z) per configuration (z a standard
    /// normal drawn from the configuration's effective values and `seed`), σ = `pct` / 100:
    /// what a surrogate that mis-ranks some configurations does to the search
    /// (`bench/search_quality.sh` with `SQ_SURROGATE_ERR`; each `seed` is another wrong
    /// model).
    pub fn with_error(mut self, pct: f64, seed: u64) -> SimModel {
        self.error_pct = pct.max(0.0);
        self.error_seed = seed;
        self
    }

    /// The predicted median inter-token latency (ms) of `recipe` on this workload; `None`
    /// when it cannot run.
    pub fn predicted_itl_ms(&self, recipe: &Recipe) -> Option<f64> {
        let setup = self.setup(recipe).ok()?;
        let r = crate::sim::predict::predict(setup, &self.requests, &self.load, "clock").ok()?;
        (r.completed > 0).then_some(r.median_itl_ms)
    }

    /// `recipe` on this workload at each concurrency of `levels` (all requests due at once,
    /// at most that many in flight): the simulator's throughput–latency curve. Levels
    /// beyond the workload's request count, and ones it cannot run, are left out.
    pub fn sweep(&self, recipe: &Recipe, levels: &[usize]) -> Vec<FrontierPoint> {
        let Ok(setup) = self.setup(recipe) else {
            return Vec::new();
        };
        let mut load = self.load.clone();
        load.timing = crate::bench::Timing::Rate;
        load.request_rate = None;
        levels
            .iter()
            .filter(|c| **c <= self.requests.len().max(1))
            .filter_map(|&c| {
                load.concurrency = Some(c);
                let r = crate::sim::predict::predict(setup.clone(), &self.requests, &load, "sweep")
                    .ok()?;
                let p99 = |k: &str| r.percentile_keys.get(k).copied().unwrap_or(0.0);
                (r.completed > 0).then(|| FrontierPoint {
                    concurrency: c,
                    output_throughput: r.output_throughput,
                    median_tpot_ms: r.median_tpot_ms,
                    p99_tpot_ms: p99("p99_tpot_ms"),
                    p99_ttft_ms: p99("p99_ttft_ms"),
                })
            })
            .collect()
    }

    fn predict_exact(&self, recipe: &Recipe) -> Option<f64> {
        if let Ok(c) = self.cache.lock()
            && let Some(v) = c.get(&recipe.id)
        {
            return *v;
        }
        let v = self.setup(recipe).ok().and_then(|setup| {
            let r = crate::sim::predict::predict(setup, &self.requests, &self.load, "surrogate")
                .ok()?;
            let m = score::measure(&r, &self.settings, None);
            Some(score::comparable(&m, &self.settings))
        });
        if let Ok(mut c) = self.cache.lock() {
            c.insert(recipe.id.clone(), v);
        }
        v
    }
}
