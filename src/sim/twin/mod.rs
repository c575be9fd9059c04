//! forge's simulated twins of SGLang and TensorRT-LLM: each framework's command line
//! ([`cli`]) resolved with that framework's own defaults ([`sglang`], [`trtllm`]) into the
//! simulator's engine configuration plus the [`Policy`] that makes the shared
//! discrete-event core behave as that framework does, and the lines its server prints.

pub mod cli;
pub mod prom;
pub mod sglang;
pub mod trtllm;

use crate::engine::vllm::VllmConfig;
use crate::hardware::GpuSpec;
use crate::recipe::EngineKind;

use super::engine::{BootError, BootInfo, SimEngine, SimSetup};
use super::model::ModelShape;
use super::options::SimOptions;
use super::policy::Policy;
use crate::engine::vllm::flags::ParsedArgs;
use crate::recipe::{Illegal, Recipe};

pub use cli::UsageError;

/// A twin's resolved command line.
#[derive(Debug, Clone)]
pub struct Twin {
    /// SGLang or TensorRT-LLM.
    pub framework: EngineKind,
    /// The model argument.
    pub model: String,
    /// The names `/v1/models` lists (SGLang's `--served-model-name`, else the model).
    pub served: Vec<String>,
    /// Where to listen.
    pub host: String,
    /// Port (SGLang 30000, trtllm-serve 8000 by default).
    pub port: u16,
    /// `--api-key` (SGLang; never logged).
    pub api_key: Option<String>,
    /// The engine configuration the shared core runs.
    pub config: VllmConfig,
    /// What makes the core behave as this framework.
    pub policy: Policy,
    /// SGLang: `max_running_requests` was not given, so it follows the KV pool.
    pub running_from_pool: bool,
    /// `/metrics` is served (SGLang: `--enable-metrics`; trtllm-serve: always, as JSON and
    /// Prometheus text at `/prometheus/metrics`).
    pub metrics: bool,
    /// A start-up failure decided from the command line and its files (trtllm's YAML).
    pub startup_error: Option<String>,
}

/// Parse `argv` (the words after `sglang serve` / `trtllm-serve serve`) for `gpu`.
pub fn parse(framework: EngineKind, argv: &[String], gpu: &GpuSpec) -> Result<Twin, UsageError> {
    match framework {
        EngineKind::Sglang => sglang::resolve(&cli::parse_sglang(argv)?, gpu),
        EngineKind::Trtllm => trtllm::resolve(&cli::parse_trtllm(argv)?, gpu),
        other => Err(UsageError(format!(
            "forge sim serve --engine: {} has no twin (vllm is `forge sim serve` itself)",
            other.as_str()
        ))),
    }
}

impl Twin {
    /// The lines the framework prints while it starts, after `booted`.
    pub fn startup_lines(&self, booted: &Booted) -> Vec<String> {
        match self.framework {
            EngineKind::Trtllm => trtllm::startup_lines(self, booted),
            _ => sglang::startup_lines(self, booted),
        }
    }

    /// The lines that say the server is ready, listening on `port`.
    pub fn ready_lines(&self, port: u16) -> Vec<String> {
        let pid = std::process::id();
        let mut v = vec![
            format!("INFO:     Started server process [{pid}]"),
            "INFO:     Waiting for application startup.".to_string(),
            "INFO:     Application startup complete.".to_string(),
            format!(
                "INFO:     Uvicorn running on http://{}:{port} (Press CTRL+C to quit)",
                self.host
            ),
        ];
        if self.framework == EngineKind::Sglang {
            v.push(format!(
                "{} The server is fired up and ready to roll!",
                sglang::stamp()
            ));
        }
        v
    }

    /// The release the twin stands in for (`/version`).
    pub fn version(&self) -> &'static str {
        match self.framework {
            EngineKind::Trtllm => "1.2.0",
            _ => "0.5.23",
        }
    }

    /// The equivalent of a vLLM command line for the parts the server shares: the model,
    /// where to listen, the served names and the API key.
    pub fn parsed_args(&self) -> ParsedArgs {
        let mut p = ParsedArgs::default();
        p.args.model = self.model.clone();
        p.args.host = Some(self.host.clone());
        p.args.port = Some(self.port);
        p.args.served_model_name = self.served.first().cloned();
        p.server.served_model_names = self.served.clone();
        p.server.api_key = self.api_key.clone();
        p
    }

    /// The simulator's setup for this command line on `run`'s GPU, seed and noise.
    pub fn setup(&self, model: ModelShape, run: Run) -> SimSetup {
        SimSetup {
            model,
            gpu: run.gpu,
            config: self.config.clone(),
            seed: run.seed,
            noise_pct: run.noise_pct,
            vllm: crate::engine::vllm::flags::Version::CURRENT,
            policy: self.policy.clone(),
        }
    }
}

/// Where and how a twin runs: the GPU simulated, the seed, run-to-run noise (percent).
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The GPU.
    pub gpu: &'static GpuSpec,
    /// Seed for everything random.
    pub seed: u64,
    /// Run-to-run noise, percent.
    pub noise_pct: f64,
}

impl Run {
    /// What `--sim-*` flags say.
    pub fn of(sim: &SimOptions) -> Run {
        Run {
            gpu: sim.gpu,
            seed: sim.seed,
            noise_pct: sim.noise_pct,
        }
    }
}

/// The twin a recipe of `recipe.engine` (SGLang or TensorRT-LLM) deploys: the recipe
/// rendered by that framework's real adapter (for the newest release forge knows) and
/// parsed back by the twin, as a dry run would boot it. This is how the tune loop's
/// surrogate and legality check see such a recipe.
pub fn for_recipe(recipe: &Recipe, gpu: &GpuSpec) -> Result<Twin, Illegal> {
    let refused = |e: UsageError| Illegal::recipe(e.0);
    match recipe.engine {
        EngineKind::Sglang => {
            let help = crate::engine::sglang::help::newest_help();
            let argv =
                crate::engine::sglang::flags::render(recipe, 30000, "surrogate", Some(&help))?;
            parse(EngineKind::Sglang, &argv, gpu).map_err(refused)
        }
        EngineKind::Trtllm => {
            use crate::engine::trtllm::{flags, help::Version};
            let yaml_path = std::path::Path::new("surrogate.extra_llm_api_options.yaml");
            let target = flags::Target {
                version: &Version::NEWEST,
                help: None,
            };
            let (argv, yaml) = flags::render(recipe, "127.0.0.1", 8000, yaml_path, target)?;
            let p = cli::parse_trtllm(&argv).map_err(refused)?;
            trtllm::resolve_with(&p, gpu, &|path: &str| match &yaml {
                Some((at, text)) if at.as_path() == std::path::Path::new(path) => Ok(text.clone()),
                _ => std::fs::read_to_string(path),
            })
            .map_err(refused)
        }
        other => Err(Illegal::recipe(format!(
            "{} has no simulated twin",
            other.display_name()
        ))),
    }
}

/// Print a twin's start-up failure as the framework's Python process ends (the exception
/// after a traceback header, on stderr) and return its exit status, 1.
pub fn print_failure(msg: &str) -> std::process::ExitCode {
    super::vlog::raw_err("Traceback (most recent call last):");
    for line in msg.lines() {
        super::vlog::raw_err(line);
    }
    super::boot::exit_failure()
}

/// The twin's setup with every limit the framework derives at boot resolved (SGLang's
/// `max_running_requests` from the KV pool, when not given).
pub fn sized_setup(t: &Twin, model: ModelShape, run: Run) -> Result<SimSetup, BootError> {
    let mut setup = t.setup(model, run);
    if t.running_from_pool {
        let (_, info) = SimEngine::boot(setup.clone())?;
        setup.config.max_num_seqs =
            sglang::max_running_requests(info.kv_cache_tokens, info.max_model_len);
    }
    Ok(setup)
}

/// What booting a twin reported, with what its start-up lines need.
#[derive(Debug, Clone)]
pub struct Booted {
    /// The engine's boot report.
    pub info: BootInfo,
    /// The running-request limit in force.
    pub max_running: u32,
    /// The GPU's memory, GiB.
    pub gpu_gib: f64,
    /// The model's context as configured (SGLang's `context_len`; the engine may serve less
    /// when its KV pool is smaller, `info.max_model_len`).
    pub context_len: u32,
}

/// Boot the twin's engine. SGLang sizes `max_running_requests` from the KV pool when it
/// is not given, so that engine boots twice: once to size the pool, once with the limit.
pub fn boot(
    t: &Twin,
    model: ModelShape,
    sim: &SimOptions,
) -> Result<(SimEngine, Booted), BootError> {
    let setup = sized_setup(t, model, Run::of(sim))?;
    let max_running = setup.config.max_num_seqs;
    let gpu_gib = setup.gpu.memory_gib();
    let context_len = setup
        .config
        .max_model_len
        .unwrap_or(setup.model.max_position_embeddings);
    let (engine, info) = SimEngine::boot(setup)?;
    Ok((
        engine,
        Booted {
            info,
            max_running,
            gpu_gib,
            context_len,
        },
    ))
}
