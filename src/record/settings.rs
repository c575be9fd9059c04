//! Tune settings as `config.json` keeps them: every budget, flag and seed of a run, restored
//! verbatim by `tune resume`, so a resumed run is the run that was started. (The command
//! line becomes these in `commands::tune`.)

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bench::{LoadSpec, Slo};
use crate::hardware::Device;
use crate::recipe::EngineKind;
use crate::recipe::Layer;

/// Format version of `config.json`.
pub const CONFIG_VERSION: u32 = 1;

/// How experiments are executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EngineChoice {
    /// Real vLLM (`vllm serve`, or `--engine-cmd`).
    Vllm {
        /// Launcher argv prefix (default `["vllm"]`).
        launcher: Vec<String>,
    },
    /// Real SGLang (`sglang serve`, or `--engine-cmd`).
    Sglang {
        /// Launcher argv prefix, up to the flags (default `["sglang", "serve"]`).
        launcher: Vec<String>,
    },
    /// Real TensorRT-LLM (`trtllm-serve serve`, or `--engine-cmd`).
    Trtllm {
        /// Launcher argv prefix, up to the model (default `["trtllm-serve", "serve"]`).
        launcher: Vec<String>,
    },
    /// forge's simulator (`forge sim serve`) standing in for vLLM, or for SGLang or
    /// TensorRT-LLM (`forge sim serve --engine sglang|trtllm`).
    Sim {
        /// The framework simulated (absent in runs started before the twins: vLLM).
        #[serde(default, skip_serializing_if = "is_vllm")]
        framework: EngineKind,
        /// GPU the simulator models.
        gpu: String,
        /// Wall seconds per simulated second.
        time_scale: f64,
        /// Wall seconds per simulated second of startup.
        #[serde(default = "default_boot_scale")]
        boot_time_scale: f64,
        /// Run-to-run noise, percent.
        noise_pct: f64,
    },
    /// llama.cpp's `llama-server`.
    Llamacpp {
        /// Launcher argv prefix (default `["llama-server"]`).
        launcher: Vec<String>,
    },
}

impl EngineChoice {
    /// The recipe engine this executes.
    pub fn recipe_engine(&self) -> EngineKind {
        match self {
            EngineChoice::Vllm { .. } => EngineKind::Vllm,
            EngineChoice::Sim { framework, .. } => *framework,
            EngineChoice::Llamacpp { .. } => EngineKind::Llamacpp,
            EngineChoice::Sglang { .. } => EngineKind::Sglang,
            EngineChoice::Trtllm { .. } => EngineKind::Trtllm,
        }
    }
}

fn is_vllm(k: &EngineKind) -> bool {
    *k == EngineKind::Vllm
}

fn default_boot_scale() -> f64 {
    0.01
}

/// Everything a run needs to know, as stored in `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneSettings {
    /// `config.json` format version.
    pub version: u32,
    /// Model id or path.
    pub model: String,
    /// cuda, rocm or cpu.
    pub device: Device,
    /// Workload file (absolute).
    pub workload: PathBuf,
    /// Playbook file (absolute), `None` = bundled.
    pub playbook: Option<PathBuf>,
    /// Agent LLM `provider/model`.
    pub llm: String,
    /// Agent LLM base URL override.
    pub llm_base_url: Option<String>,
    /// Price file for LLM spend (`provider/model: {input: $/Mtok, output: $/Mtok}`).
    #[serde(default)]
    pub llm_prices: Option<PathBuf>,
    /// Bench concurrency.
    pub concurrency: usize,
    /// Experiment budget.
    pub max_experiments: u32,
    /// Layer caps.
    pub max_config_experiments: Option<u32>,
    /// Layer caps.
    pub max_quant_experiments: Option<u32>,
    /// Wall-clock budget (hours of experiment time, summed across resumes).
    pub max_hours: f64,
    /// LLM spend cap, USD.
    pub max_dollars: Option<f64>,
    /// Relative accuracy floor.
    pub accuracy_floor: f64,
    /// Keep threshold, percent.
    pub min_improvement_pct: f64,
    /// Store root.
    pub run_dir: PathBuf,
    /// Layers to run, in order.
    pub layers: Vec<Layer>,
    /// Engine.
    pub engine: EngineChoice,
    /// Boot timeout, s.
    pub boot_timeout_s: f64,
    /// How often a long measured run says how far it is, s (0: never).
    #[serde(default = "default_heartbeat_s")]
    pub heartbeat_s: f64,
    /// Objective.
    pub objective: Objective,
    /// SLA bounds (p99 for throughput/latency objectives; per-request for goodput).
    pub slo: Slo,
    /// Paired repeats per decision.
    pub max_repeats: usize,
    /// Seed.
    pub seed: u64,
    /// Original flags as typed, for the record.
    pub dry_run: bool,
    /// The hardware detected when the run started (real engines), restored on resume.
    #[serde(default)]
    pub hardware: Option<crate::recipe::Hardware>,
    /// How the workload is replayed, resolved against it when the run started (absent in
    /// runs started before forge kept it: [`TuneSettings::load_spec`] rebuilds theirs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadSpec>,
    /// Base engine arguments (`--engine-args`), as typed and split into words: every
    /// experiment starts from them (the baseline carries what they set).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub engine_args: Vec<String>,
    /// Layer 3 from source (`--source`, `--patches`): llama.cpp built from a git checkout,
    /// one candidate build per patch of a series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceSettings>,
    /// Layer 2 on llama.cpp: the model requantized to GGUF types with llama-quantize and an
    /// importance matrix from the workload (`None`: no tools, or another engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantize: Option<QuantSettings>,
    /// Layer 2 on GPU engines: the pre-quantized checkpoints of the model found when the run
    /// started (the local Hugging Face cache, then the Hub; [`crate::hub`]), each checked
    /// against the model's architecture: the legal values of `quant.checkpoint`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<String>,
    /// Layer 2 on a GPU engine without a pre-quantized checkpoint: the calibrations
    /// planned (their directories are values of `quant.checkpoint` too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationSettings>,
}

/// A calibration planned at start: the scheme and where its checkpoint lands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// [`CalScheme::name`].
    pub scheme: String,
    /// The checkpoint directory (absolute): the value of `quant.checkpoint`.
    pub dir: PathBuf,
}

/// How a run on a GPU engine calibrates checkpoints of a model that has none
/// (`crate::tune::calibrate`; `config.json`'s `calibration`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSettings {
    /// The engine's Python, llm-compressor's environment (absolute).
    pub python: PathBuf,
    /// The planned checkpoints.
    pub planned: Vec<Planned>,
    /// Prompts of the workload (stratified by length) calibrated on.
    pub prompts: usize,
}

/// How a llama.cpp run makes its quantized candidates (`--quant-types`, `--quant-tools`,
/// `--calibration-prompts`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantSettings {
    /// `llama-quantize` (absolute).
    pub quantize: PathBuf,
    /// `llama-imatrix` (absolute).
    pub imatrix: PathBuf,
    /// The GGUF types tried (lower case).
    pub types: Vec<String>,
    /// Where requantized models and importance matrices are cached, by the model's content
    /// hash (`STORE/gguf-cache`, absolute): later runs reuse them.
    pub cache: PathBuf,
    /// Prompts of the workload (stratified by length) the importance matrix is computed on.
    pub calibration_prompts: usize,
}

/// A tune that serves builds of an engine's source checkout (`forge tune --source
/// CHECKOUT --patches DIR [--build-dir DIR]`): the checkout's own build serves the
/// baseline, and each patch of the series is a `kernels.patch` candidate of layer 3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceSettings {
    /// The git checkout (absolute; a clean tree at `base_commit`).
    pub checkout: PathBuf,
    /// The patch series directory (absolute).
    pub patches: PathBuf,
    /// Where CMake builds (outside the checkout; absolute).
    pub build_dir: PathBuf,
    /// The checkout's HEAD when the run started: every build is of it, with or without one
    /// patch.
    pub base_commit: String,
}

/// What `forge tune` maximises.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Output tokens per second (with the SLA as a constraint).
    Throughput,
    /// Requests per second that meet every SLO.
    Goodput,
    /// Lower p99 end-to-end latency.
    Latency,
}

impl TuneSettings {
    /// The replay every measurement of this run uses: the one resolved at its start, or, for
    /// a run started before forge kept it, the load forge used then (completions, the run's
    /// concurrency, SLO and seed, trace timing when the workload has arrival offsets, 1–4
    /// warm-ups, pinned outputs).
    pub fn load_spec(&self, has_arrival_offsets: bool, requests: usize) -> LoadSpec {
        let mut spec = self.spec(has_arrival_offsets, requests);
        // The report draws each run's latency distributions: measure them at every level.
        for level in crate::record::LatencyQuantiles::LEVELS {
            if !spec.percentiles.contains(&level) {
                spec.percentiles.push(level);
            }
        }
        spec.percentiles.sort_by(f64::total_cmp);
        spec
    }

    fn spec(&self, has_arrival_offsets: bool, requests: usize) -> LoadSpec {
        if let Some(l) = &self.load {
            return l.clone();
        }
        LoadSpec {
            concurrency: Some(self.concurrency),
            timing: if has_arrival_offsets {
                crate::bench::Timing::Trace
            } else {
                crate::bench::Timing::Rate
            },
            num_warmups: auto_warmups(requests),
            slo: self.slo,
            seed: self.seed,
            percentiles: vec![50.0, 90.0, 99.0],
            ..LoadSpec::default()
        }
    }
}

/// A heartbeat a minute: a night run is never silent for long (runs recorded before forge
/// kept the setting read it so).
fn default_heartbeat_s() -> f64 {
    60.0
}

/// Warm-ups `forge tune` sends before each measured run when none are asked for: a tenth of
/// the workload, between 1 and 4.
pub fn auto_warmups(requests: usize) -> usize {
    (requests / 10).clamp(1, 4)
}

/// Settings for unit tests: the defaults of `forge tune -m m -w w` (`commands::tune` checks
/// that its resolution of that command line gives exactly these).
#[cfg(test)]
pub fn test_settings() -> TuneSettings {
    TuneSettings {
        version: CONFIG_VERSION,
        model: "m".into(),
        device: Device::Cuda,
        workload: std::path::absolute("w").unwrap_or_else(|_| "w".into()),
        playbook: None,
        llm: "anthropic/claude-sonnet-4-6".into(),
        llm_base_url: None,
        llm_prices: None,
        concurrency: 8,
        max_experiments: 50,
        max_config_experiments: None,
        max_quant_experiments: None,
        max_hours: 12.0,
        max_dollars: None,
        accuracy_floor: 0.99,
        min_improvement_pct: 1.0,
        run_dir: ".forge".into(),
        layers: vec![Layer::Config, Layer::Quant, Layer::Kernel],
        engine: EngineChoice::Vllm {
            launcher: vec!["vllm".into()],
        },
        boot_timeout_s: 600.0,
        heartbeat_s: default_heartbeat_s(),
        objective: Objective::Throughput,
        slo: Slo::default(),
        max_repeats: 4,
        seed: 0,
        dry_run: false,
        hardware: None,
        load: None,
        engine_args: Vec::new(),
        source: None,
        quantize: None,
        checkpoints: Vec::new(),
        calibration: None,
    }
}

/// Default GPU the simulator models when none is detected and none is named.
pub const DEFAULT_SIM_GPU: &str = "H100";
