//! Agent contexts for LLM-agent tests: Llama-3.1-8B on one H100 with the bundled vLLM
//! playbook, a workload read from `tests/fixtures/llm/workload.jsonl`, a stand-in for the
//! KV-capacity legality check, and a simple surrogate; plus agent selection options that
//! retry fast.

use std::collections::BTreeMap;
use std::time::Duration;

use clap::Parser;
use forge::agent::AgentContext;
use forge::agent::llm::http::RetryPolicy;
use forge::agent::select::SelectOptions;
use forge::cli::{Cli, Command};
use forge::playbook::Playbook;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Illegal, Recipe};
use forge::record::ExperimentRow;
use forge::record::settings::TuneSettings;
use forge::workload::stats::{self, WorkloadStats};
use serde_json::{Value, json};

use super::run::fixture;

/// The model the fixtures tune.
pub const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// A retry policy with millisecond backoffs, so retries cost the tests nothing.
pub fn fast() -> RetryPolicy {
    RetryPolicy {
        tries_per_turn: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        retry_after_cap: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
    }
}

/// Agent selection options: `fast` retries, no price file.
pub fn opts() -> SelectOptions {
    SelectOptions {
        policy: fast(),
        price_file: None,
        no_surrogate: false,
    }
}

/// Settings as `forge tune` would resolve them, plus LLM options.
pub fn settings(llm: &str, base_url: Option<&str>, max_dollars: Option<f64>) -> TuneSettings {
    let mut argv = vec![
        "forge".to_string(),
        "tune".into(),
        "-m".into(),
        MODEL.into(),
        "-w".into(),
        "workload.jsonl".into(),
        "--llm".into(),
        llm.into(),
    ];
    if let Some(b) = base_url {
        argv.extend(["--llm-base-url".to_string(), b.to_string()]);
    }
    if let Some(d) = max_dollars {
        argv.extend(["--max-dollars".to_string(), d.to_string()]);
    }
    match Cli::parse_from(argv).command {
        Command::Tune(t) => forge::commands::tune::resolve(&t.args, None).unwrap(),
        _ => unreachable!(),
    }
}

/// Workload statistics of a JSONL fixture.
pub fn workload_stats(file: &str) -> WorkloadStats {
    let p = fixture("llm").join(file);
    let text = std::fs::read_to_string(&p).unwrap();
    stats::compute(&forge::workload::parse(&p, &text).unwrap())
}

/// vLLM 0.33 defaults on an H100 for the playbook's knobs.
pub fn defaults() -> BTreeMap<String, Value> {
    [
        ("max_num_seqs", json!(1024)),
        ("max_num_batched_tokens", json!(8192)),
        ("gpu_memory_utilization", json!(0.92)),
        ("enable_prefix_caching", json!(true)),
        ("long_prefill_token_threshold", json!(0)),
        ("async_scheduling", json!(true)),
        ("max_cudagraph_capture_size", json!(512)),
        ("kv_cache_quant", json!("auto")),
        ("method", json!("none")),
        ("attention_backend", json!("auto")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The effective value of every knob of `r`.
pub fn effective(r: &Recipe) -> BTreeMap<String, Value> {
    let mut e = defaults();
    for (k, v) in &r.config {
        e.insert(k.clone(), v.clone());
    }
    if let Some(m) = &r.quant.method {
        e.insert("method".into(), json!(m));
    }
    if let Some(k) = &r.quant.kv_cache_quant {
        e.insert("kv_cache_quant".into(), json!(k));
    }
    for k in &r.kernels {
        e.insert(k.name.clone(), json!(k.value));
    }
    e
}

/// Stand-in for the KV-capacity memory model: a 32768-token step budget leaves too little
/// memory for the KV cache of this model, and 0.96 of the GPU leaves too little headroom.
pub fn legal(r: &Recipe) -> Result<(), Illegal> {
    let e = effective(r);
    let tokens = e["max_num_batched_tokens"].as_i64().unwrap_or(0);
    if tokens >= 32768 {
        return Err(Illegal::recipe(format!(
            "KV cache holds 41000 tokens after {tokens}-token activations; below max_model_len 131072"
        )));
    }
    if e["gpu_memory_utilization"].as_f64().unwrap_or(0.0) >= 0.96 {
        return Err(Illegal::recipe(
            "0.96 leaves less than the 3 GiB activation headroom",
        ));
    }
    Ok(())
}

/// Nothing tried yet.
pub fn never_tried(_: &Recipe) -> bool {
    false
}

/// A surrogate with its optimum at max_num_seqs = 256 and a small gain from a larger
/// token budget.
pub fn surrogate(r: &Recipe) -> Option<f64> {
    let e = effective(r);
    let seqs = e["max_num_seqs"].as_f64()?;
    let tokens = e["max_num_batched_tokens"].as_f64()?;
    let peak = 1.0 + 0.1 * (-((seqs / 256.0).ln()).powi(2)).exp();
    Some(1000.0 * peak * (1.0 + 0.01 * (tokens / 8192.0).ln()))
}

/// One H100.
pub fn hardware() -> Hardware {
    Hardware {
        vendor: "nvidia".into(),
        gpu_type: "H100".into(),
        count: 1,
        memory_gb_per_gpu: 79.6,
    }
}

/// Everything a context borrows.
pub struct Fixture {
    /// Run settings.
    pub settings: TuneSettings,
    /// Bundled vLLM playbook.
    pub playbook: Playbook,
    /// Workload statistics.
    pub stats: WorkloadStats,
    /// Current best.
    pub incumbent: Recipe,
    /// Rows so far.
    pub history: Vec<ExperimentRow>,
    /// Observed facts.
    pub facts: BTreeMap<String, f64>,
}

impl Fixture {
    /// Baseline on one H100 with `settings`.
    pub fn new(settings: TuneSettings) -> Fixture {
        Fixture {
            settings,
            playbook: Playbook::bundled(EngineKind::Vllm).unwrap(),
            stats: workload_stats("workload.jsonl"),
            incumbent: Recipe::baseline(EngineKind::Vllm, MODEL, hardware()),
            history: Vec::new(),
            facts: BTreeMap::new(),
        }
    }

    /// The context for `layer` with `spent_usd` already spent.
    pub fn ctx(&self, layer: Layer, spent_usd: f64) -> AgentContext<'_> {
        self.ctx_with(layer, spent_usd, &never_tried)
    }

    /// The context with a tried-set predicate.
    pub fn ctx_with<'a>(
        &'a self,
        layer: Layer,
        spent_usd: f64,
        tried: &'a (dyn Fn(&Recipe) -> bool + Send + Sync),
    ) -> AgentContext<'a> {
        AgentContext {
            settings: &self.settings,
            playbook: &self.playbook,
            layer,
            incumbent: &self.incumbent,
            effective: effective(&self.incumbent),
            facts: self.facts.clone(),
            workload: &self.stats,
            history: &self.history,
            is_tried: tried,
            legal: &legal,
            surrogate: Some(&surrogate),
            gpu: forge::hardware::gpus::lookup("H100"),
            spent_usd,
        }
    }
}

/// A journal row from JSON (fields the JSON leaves out take their serde defaults).
pub fn row(v: Value) -> ExperimentRow {
    serde_json::from_value(v).unwrap()
}
