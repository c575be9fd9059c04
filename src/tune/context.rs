//! What the agent is shown about the incumbent: its effective knob values (explicit or
//! the engine's default), the observed facts the playbook's rules test, whether a recipe is
//! legal on this GPU and model (the simulator's memory model and vLLM's own validation),
//! and the surrogate that predicts a recipe's objective.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde_json::Value;

use super::row::{Arm, ExperimentRow, Sample, Status};
use super::score;
use super::settings::TuneSettings;
use crate::bench::LoadSpec;
use crate::engine::vllm::VllmConfig;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Recipe};
use crate::sim::engine::{SimEngine, SimSetup};
use crate::sim::model::ModelShape;
use crate::workload::WorkloadRequest;
use crate::workload::stats::WorkloadStats;

/// The incumbent's value of every vLLM knob, with vLLM's defaults for this GPU filled in.
pub fn effective_vllm(recipe: &Recipe, gpu: &GpuSpec) -> BTreeMap<String, Value> {
    let Ok(args) = crate::recipe::vllm::to_vllm_args(recipe) else {
        return BTreeMap::new();
    };
    let c = args.resolve(gpu);
    let mut m = BTreeMap::new();
    m.insert("max_num_seqs".into(), Value::from(c.max_num_seqs));
    m.insert(
        "max_num_batched_tokens".into(),
        Value::from(c.max_num_batched_tokens),
    );
    m.insert(
        "enable_prefix_caching".into(),
        Value::from(c.enable_prefix_caching),
    );
    m.insert(
        "enable_chunked_prefill".into(),
        Value::from(c.enable_chunked_prefill),
    );
    m.insert(
        "gpu_memory_utilization".into(),
        Value::from(c.gpu_memory_utilization),
    );
    m.insert(
        "long_prefill_token_threshold".into(),
        Value::from(c.long_prefill_token_threshold),
    );
    m.insert("async_scheduling".into(), Value::from(c.async_scheduling));
    m.insert("max_cudagraph_capture_size".into(), cudagraph_max(&c));
    m.insert("block_size".into(), Value::from(c.block_size));
    m.insert("enforce_eager".into(), Value::from(c.enforce_eager));
    m.insert(
        "method".into(),
        Value::from(c.quantization.clone().unwrap_or_else(|| "none".into())),
    );
    m.insert(
        "kv_cache_quant".into(),
        Value::from(c.kv_cache_dtype.as_flag()),
    );
    m.insert(
        "attention_backend".into(),
        Value::from(c.attention_backend.clone().unwrap_or_else(|| "auto".into())),
    );
    m
}

/// vLLM's default largest capture size: min(2·max_num_seqs, 512), unless set.
fn cudagraph_max(c: &VllmConfig) -> Value {
    Value::from(
        c.max_cudagraph_capture_size
            .unwrap_or((2 * c.max_num_seqs).min(512)),
    )
}

/// Facts for the playbook's rules, from the incumbent's latest sample in the history.
pub fn facts(
    history: &[ExperimentRow],
    effective: &BTreeMap<String, Value>,
    stats: &WorkloadStats,
    s: &TuneSettings,
) -> BTreeMap<String, f64> {
    let mut f = BTreeMap::new();
    let latest = history.iter().rev().find_map(incumbent_sample);
    if let Some(sample) = latest {
        let (m, sf) = (&sample.m, &sample.facts);
        f.insert("p99_ttft_ms".into(), m.p99_ttft_ms);
        f.insert("p99_tpot_ms".into(), m.p99_tpot_ms);
        f.insert("p99_e2el_ms".into(), m.p99_e2el_ms);
        f.insert("median_ttft_ms".into(), m.median_ttft_ms);
        f.insert("median_tpot_ms".into(), m.median_tpot_ms);
        f.insert("failed".into(), m.failed as f64);
        if sf.available {
            f.insert("preemptions".into(), sf.preemptions);
            f.insert("peak_running".into(), sf.peak_running);
            f.insert("waiting_peak".into(), sf.peak_waiting);
            f.insert("kv_usage_peak".into(), sf.peak_kv_usage);
            f.insert("prefix_hit_rate".into(), sf.prefix_hit_rate());
        }
    }
    for (k, v) in effective {
        if let Some(x) = v.as_f64() {
            f.insert(k.clone(), x);
        }
    }
    f.insert("prefix_share".into(), stats.prefix_share);
    f.insert("mean_prompt_tokens".into(), stats.prompt_tokens.mean);
    f.insert("mean_output_tokens".into(), stats.output_tokens.mean);
    f.insert("concurrency".into(), s.concurrency as f64);
    if s.engine.recipe_engine() == EngineKind::Llamacpp {
        let cores = crate::engine::llamacpp::host::physical_cores();
        f.insert("cpu_cores".into(), cores as f64);
    }
    if let Some(r) = stats.mean_arrival_rate {
        f.insert("request_rate".into(), r);
    }
    for (name, v) in [
        ("slo_ttft_ms", s.slo.ttft_ms),
        ("slo_tpot_ms", s.slo.tpot_ms),
        ("slo_e2el_ms", s.slo.e2el_ms),
    ] {
        if let Some(v) = v {
            f.insert(name.into(), v);
        }
    }
    f
}

/// The latest sample, in `r`, of the configuration that is the incumbent once `r` is
/// applied: a kept row's (or the confirmation's) candidate — it just became, or is, the
/// incumbent — and otherwise the incumbent arm.
fn incumbent_sample(r: &ExperimentRow) -> Option<&Sample> {
    let arm = match r.status {
        Status::Kept | Status::Confirmation => Arm::Candidate,
        _ => Arm::Incumbent,
    };
    r.samples
        .iter()
        .rev()
        .find(|x| x.arm == arm || r.status == Status::Baseline)
}

/// The simulator as legality check and surrogate for vLLM recipes.
pub struct SimModel {
    shape: ModelShape,
    gpu: &'static GpuSpec,
    requests: Vec<WorkloadRequest>,
    load: LoadSpec,
    settings: TuneSettings,
    cache: Mutex<HashMap<String, Option<f64>>>,
}

impl SimModel {
    /// Build for a model the simulator knows (catalogue or config.json); `None` otherwise.
    pub fn new(
        s: &TuneSettings,
        gpu: &'static GpuSpec,
        requests: &[WorkloadRequest],
        load: &LoadSpec,
    ) -> Option<SimModel> {
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
        })
    }

    fn setup(&self, recipe: &Recipe) -> Result<SimSetup, String> {
        let args = crate::recipe::vllm::to_vllm_args(recipe)?;
        let mut config = args.resolve(self.gpu);
        // A pre-quantized checkpoint keeps the base model's shape.
        config.model = self.settings.model.clone();
        Ok(SimSetup {
            model: self.shape.clone(),
            gpu: self.gpu,
            config,
            seed: self.settings.seed,
            noise_pct: 0.0,
        })
    }

    /// `Err(why)` when vLLM would refuse to start the recipe on this GPU (invalid
    /// combination, does not fit in memory), per the simulator's memory model.
    pub fn legal(&self, recipe: &Recipe) -> Result<(), String> {
        if recipe.engine != EngineKind::Vllm {
            return Ok(());
        }
        let setup = self.setup(recipe)?;
        SimEngine::boot(setup)
            .map(|_| ())
            .map_err(|e| format!("predicted to fail at boot: {e}"))
    }

    /// Predicted objective value (cached per recipe id).
    pub fn predict(&self, recipe: &Recipe) -> Option<f64> {
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
