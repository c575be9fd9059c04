//! Tune settings: the command line resolved into validated values, persisted as the run's
//! `config.json` and restored verbatim by `tune resume` — every budget, flag and seed,
//! so a resumed run is the run that was started.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::bench::{self, Slo};
use crate::cli::{Objective, TuneArgs};
use crate::recipe::EngineKind;
use crate::recipe::knobs::Layer;

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
    /// forge's simulator (`forge sim serve`) standing in for vLLM.
    Sim {
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
            EngineChoice::Vllm { .. } | EngineChoice::Sim { .. } => EngineKind::Vllm,
            EngineChoice::Llamacpp { .. } => EngineKind::Llamacpp,
        }
    }
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
    pub device: String,
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
}

/// Default GPU the simulator models when none is detected and none is named.
pub const DEFAULT_SIM_GPU: &str = "H100";

impl TuneSettings {
    /// Resolve and validate the command line. `detected_gpu` is the GPU hardware detection
    /// found (used by `--dry-run` when `--sim-gpu` is absent).
    pub fn resolve(a: &TuneArgs, detected_gpu: Option<&str>) -> anyhow::Result<TuneSettings> {
        let model = a
            .model
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--model is required (or use `forge tune resume`)"))?;
        let workload = a
            .workload
            .clone()
            .ok_or_else(|| anyhow::anyhow!("--workload is required"))?;
        anyhow::ensure!(
            matches!(a.device.as_str(), "cuda" | "rocm" | "cpu"),
            "--device must be cuda, rocm or cpu (got `{}`)",
            a.device
        );
        anyhow::ensure!(a.concurrency >= 1, "--concurrency must be at least 1");
        anyhow::ensure!(a.max_hours > 0.0, "--max-hours must be positive");
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
        let slo = match &a.slo {
            Some(s) => bench::parse_slo(s).map_err(anyhow::Error::msg)?,
            None => Slo::default(),
        };
        anyhow::ensure!(
            a.objective != Objective::Goodput || !slo.is_empty(),
            "--objective goodput needs --slo (e.g. --slo ttft_ms=500,tpot_ms=50)"
        );
        let engine = engine_choice(a, detected_gpu)?;
        Ok(TuneSettings {
            version: CONFIG_VERSION,
            model,
            device: a.device.clone(),
            workload: absolute(workload),
            playbook: a.playbook.clone().map(absolute),
            llm: a.llm.clone(),
            llm_base_url: a.llm_base_url.clone(),
            llm_prices: a.llm_prices.clone().map(absolute),
            concurrency: a.concurrency,
            max_experiments: a.max_experiments,
            max_config_experiments: a.max_config_experiments,
            max_quant_experiments: a.max_quant_experiments,
            max_hours: a.max_hours,
            max_dollars: a.max_dollars,
            accuracy_floor: a.accuracy_floor,
            min_improvement_pct: a.min_improvement_pct,
            run_dir: a.run_dir.clone(),
            layers: layers(a)?,
            engine,
            boot_timeout_s: a.boot_timeout,
            objective: a.objective,
            slo,
            max_repeats: a.max_repeats,
            seed: a.seed,
            dry_run: a.dry_run,
            hardware: None,
        })
    }
}

fn absolute(p: PathBuf) -> PathBuf {
    std::path::absolute(&p).unwrap_or(p)
}

fn split_launcher(s: &str) -> anyhow::Result<Vec<String>> {
    let v: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    anyhow::ensure!(!v.is_empty(), "--engine-cmd is empty");
    Ok(v)
}

fn engine_choice(a: &TuneArgs, detected_gpu: Option<&str>) -> anyhow::Result<EngineChoice> {
    let sim = a.dry_run || a.engine == "sim";
    if sim {
        let gpu = a
            .sim_gpu
            .clone()
            .or_else(|| detected_gpu.map(str::to_string))
            .unwrap_or_else(|| DEFAULT_SIM_GPU.to_string());
        anyhow::ensure!(
            crate::hardware::gpus::lookup(&gpu).is_some(),
            "--sim-gpu: unknown GPU `{gpu}` (known: {})",
            crate::hardware::gpus::names().join(", ")
        );
        anyhow::ensure!(a.sim_time_scale > 0.0, "--sim-time-scale must be positive");
        anyhow::ensure!(
            a.sim_boot_time_scale > 0.0,
            "--sim-boot-time-scale must be positive"
        );
        anyhow::ensure!(
            (0.0..=50.0).contains(&a.sim_noise),
            "--sim-noise must be in 0..50"
        );
        return Ok(EngineChoice::Sim {
            gpu,
            time_scale: a.sim_time_scale,
            boot_time_scale: a.sim_boot_time_scale,
            noise_pct: a.sim_noise,
        });
    }
    match a.engine.as_str() {
        "vllm" => Ok(EngineChoice::Vllm {
            launcher: match &a.engine_cmd {
                Some(c) => split_launcher(c)?,
                None => vec!["vllm".into()],
            },
        }),
        "llamacpp" => Ok(EngineChoice::Llamacpp {
            launcher: match &a.engine_cmd {
                Some(c) => split_launcher(c)?,
                None => vec!["llama-server".into()],
            },
        }),
        other => anyhow::bail!("--engine must be vllm, sim or llamacpp (got `{other}`)"),
    }
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

/// Settings for unit tests: the defaults of `forge tune -m m -w w`.
#[cfg(test)]
pub fn test_settings() -> TuneSettings {
    use clap::Parser;
    match crate::cli::Cli::parse_from(["forge", "tune", "-m", "m", "-w", "w"]).command {
        crate::cli::Command::Tune(t) => TuneSettings::resolve(&t.args, None).unwrap(),
        _ => unreachable!(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn args(extra: &[&str]) -> TuneArgs {
        let mut v = vec!["forge", "tune", "--model", "m", "--workload", "w.jsonl"];
        v.extend_from_slice(extra);
        match Cli::parse_from(v).command {
            Command::Tune(t) => t.args,
            _ => unreachable!(),
        }
    }

    #[test]
    fn defaults_match_the_original() {
        let s = TuneSettings::resolve(&args(&[]), None).unwrap();
        assert_eq!(s.concurrency, 8);
        assert_eq!(s.max_experiments, 50);
        assert_eq!(s.max_hours, 12.0);
        assert_eq!(s.accuracy_floor, 0.99);
        assert_eq!(s.min_improvement_pct, 1.0);
        assert_eq!(s.llm, "anthropic/claude-sonnet-4-6");
        assert_eq!(s.layers, vec![Layer::Config, Layer::Quant, Layer::Kernel]);
        assert_eq!(
            s.engine,
            EngineChoice::Vllm {
                launcher: vec!["vllm".into()]
            }
        );
        assert!(s.workload.is_absolute());
    }

    #[test]
    fn dry_run_uses_detected_then_default_gpu() {
        let s = TuneSettings::resolve(&args(&["--dry-run"]), Some("A100-80GB")).unwrap();
        assert!(matches!(s.engine, EngineChoice::Sim { ref gpu, .. } if gpu == "A100-80GB"));
        let s = TuneSettings::resolve(&args(&["--dry-run"]), None).unwrap();
        assert!(matches!(s.engine, EngineChoice::Sim { ref gpu, .. } if gpu == "H100"));
        let e =
            TuneSettings::resolve(&args(&["--dry-run", "--sim-gpu", "GTX1080"]), None).unwrap_err();
        assert!(e.to_string().contains("unknown GPU"));
    }

    #[test]
    fn layers_and_validation() {
        let s =
            TuneSettings::resolve(&args(&["--skip-quant", "--start-layer", "1"]), None).unwrap();
        assert_eq!(s.layers, vec![Layer::Config, Layer::Kernel]);
        let s = TuneSettings::resolve(&args(&["--start-layer", "2"]), None).unwrap();
        assert_eq!(s.layers, vec![Layer::Quant, Layer::Kernel]);
        assert!(
            TuneSettings::resolve(
                &args(&["--skip-config", "--skip-quant", "--skip-kernel"]),
                None
            )
            .is_err()
        );
        assert!(
            TuneSettings::resolve(&args(&["--objective", "goodput"]), None)
                .unwrap_err()
                .to_string()
                .contains("needs --slo")
        );
        assert!(TuneSettings::resolve(&args(&["--device", "tpu"]), None).is_err());
        let s = TuneSettings::resolve(
            &args(&["--engine-cmd", "python -m vllm.entrypoints.cli.main"]),
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
    }

    #[test]
    fn round_trips_through_json() {
        let s = TuneSettings::resolve(
            &args(&["--dry-run", "--max-dollars", "2.5", "--slo", "ttft_ms=500"]),
            None,
        )
        .unwrap();
        let back: TuneSettings = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
