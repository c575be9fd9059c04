//! TensorRT-LLM behind the `Engine` trait — the real `trtllm-serve serve` (PyTorch
//! backend) or forge's simulated twin, which takes the very same arguments: the twin is
//! this adapter with `forge sim serve --engine trtllm` as its launcher
//! ([`crate::engine::twin`]).
//!
//! A real `trtllm-serve` is asked for `serve --help` first ([`super::help::probe`]): its
//! import banner gives the version, its listing the options every command line is checked
//! against; both are stored in the run directory. Each launch writes the recipe's YAML next
//! to its log (`<log stem>.extra_llm_api_options.yaml`, through `LaunchSpec::files`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::flags::{self, Target};
use super::help::{self, ServeHelp, Version};
use super::legal::{self, Limits};
use super::{defaults, logs};
use crate::engine::adapter::Engine;
use crate::engine::failure::Failure;
use crate::engine::process::LaunchSpec;
use crate::engine::twin::SimLaunch;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// How long a real trtllm-serve gets after SIGTERM (serve.py's own child cleanup waits up
/// to 10 s, then the MPI workers free the GPU).
const REAL_GRACE: Duration = Duration::from_secs(30);
/// The suffix of the YAML written beside each launch's log.
pub const YAML_SUFFIX: &str = "extra_llm_api_options.yaml";

/// TensorRT-LLM (real or simulated).
#[derive(Debug, Clone)]
pub struct TrtllmEngine {
    /// Launcher argv prefix (`["trtllm-serve", "serve"]`).
    pub launcher: Vec<String>,
    /// The release command lines and YAML keys are rendered for.
    pub version: Version,
    /// The installed `serve --help`; every option rendered must be listed there.
    pub help: Option<Arc<ServeHelp>>,
    /// Set for the simulated twin.
    pub sim: Option<SimLaunch>,
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
    /// What the run's recipes must fit (the workload's longest prompt).
    pub limits: Limits,
}

impl TrtllmEngine {
    /// A real trtllm-serve through `launcher`, rendering for `version`, no help listing.
    pub fn real(launcher: Vec<String>, version: Version) -> TrtllmEngine {
        TrtllmEngine {
            launcher,
            version,
            help: None,
            sim: None,
            grace: crate::engine::process::grace_or(REAL_GRACE),
            limits: Limits::default(),
        }
    }

    /// The TensorRT-LLM `launcher` leads to: `serve --help` is asked for (blocking, up to
    /// [`help::PROBE_TIMEOUT`]), stored in `run_dir` and used for every command line.
    /// Fails only when there is no TensorRT-LLM behind the launcher.
    pub fn installed(launcher: Vec<String>, run_dir: &Path) -> anyhow::Result<TrtllmEngine> {
        let p = help::probe(&launcher, help::PROBE_TIMEOUT).map_err(|e| {
            anyhow::anyhow!(
                "{e}\nhint: install TensorRT-LLM (NVIDIA's wheel or container) so `trtllm-serve` \
                 is on PATH, or point --engine-cmd at it; `forge doctor` checks"
            )
        })?;
        p.record("TensorRT-LLM", run_dir);
        let mut engine = TrtllmEngine::real(launcher, p.version.unwrap_or(Version::NEWEST));
        engine.help = p.help.map(Arc::new);
        Ok(engine)
    }

    /// forge's twin: rendered for the newest release forge knows, plus its `--sim-*` flags.
    pub fn simulated(sim: SimLaunch) -> TrtllmEngine {
        TrtllmEngine {
            launcher: sim.launcher(EngineKind::Trtllm),
            version: Version::NEWEST,
            help: None,
            sim: Some(sim),
            grace: Duration::from_secs(3),
            limits: Limits::default(),
        }
    }

    /// The same engine, refusing recipes whose `max_num_tokens` (without chunked prefill)
    /// or `max_seq_len` cannot take a prompt of `tokens` (the workload's longest).
    pub fn with_longest_prompt(mut self, tokens: Option<u64>) -> TrtllmEngine {
        self.limits.longest_prompt = tokens;
        self
    }

    fn target(&self) -> Target<'_> {
        Target {
            version: &self.version,
            help: self.help.as_deref(),
        }
    }
}

/// Where a launch's YAML goes: beside its log, `<log stem>.extra_llm_api_options.yaml`.
pub fn yaml_path_for(log: &Path) -> PathBuf {
    let stem = log.file_stem().map_or_else(
        || "trtllm".to_string(),
        |s| s.to_string_lossy().into_owned(),
    );
    log.with_file_name(format!("{stem}.{YAML_SUFFIX}"))
}

/// The name `/v1/models` lists: the MODEL argument, or its last component when it is a
/// local directory (`OpenAIServer.__init__`, tensorrt_llm/serve/openai_server.py:
/// `self.model = model_dir.name` if `Path(model).is_dir()`).
pub fn served_model_name(model_arg: &str) -> String {
    let p = Path::new(model_arg);
    match p.file_name() {
        Some(name) if p.is_dir() => name.to_string_lossy().into_owned(),
        _ => model_arg.to_string(),
    }
}

impl Engine for TrtllmEngine {
    fn describe(&self) -> String {
        match &self.sim {
            Some(s) => format!(
                "forge simulator of TensorRT-LLM {} on {} (clock ×{}, noise {} %)",
                self.version, s.gpu, s.time_scale, s.noise_pct
            ),
            None => format!(
                "TensorRT-LLM {} ({}; {})",
                self.version,
                self.launcher.join(" "),
                if self.help.is_some() {
                    "options checked against its --help"
                } else {
                    "options unchecked: no help listing"
                }
            ),
        }
    }

    fn recipe_engine(&self) -> EngineKind {
        EngineKind::Trtllm
    }

    fn check(&self, recipe: &Recipe) -> Result<(), Illegal> {
        legal::check(recipe, self.limits)
    }

    fn effective(&self, recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
        defaults::effective(recipe, gpu)
    }

    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        _served_name: &str,
        log: &Path,
        boot_seq: u64,
    ) -> Result<LaunchSpec, Illegal> {
        let (mut args, yaml) = flags::render(
            recipe,
            "127.0.0.1",
            port,
            &yaml_path_for(log),
            self.target(),
        )?;
        if let Some(s) = &self.sim {
            args.extend(s.args(boot_seq));
        }
        let mut spec = LaunchSpec::from_launcher(&self.launcher, args, log)?;
        spec.files = yaml.into_iter().collect();
        Ok(spec)
    }

    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
        logs::classify_exit(code, signal, log)
    }

    fn log_hints(&self, log: &str) -> Vec<String> {
        logs::hints(log)
    }

    fn time_scale(&self) -> f64 {
        self.sim.as_ref().map_or(1.0, |s| s.time_scale)
    }

    fn grace(&self) -> Duration {
        self.grace
    }

    fn served_name(&self, recipe: &Recipe, _chosen: &str) -> String {
        served_model_name(&flags::model_arg(recipe))
    }

    fn metrics_path(&self) -> &'static str {
        // Mounted by OpenAIServer.mount_metrics when return_perf_metrics is true (the YAML
        // sets it); `/metrics` is a JSON list of iteration stats, not Prometheus text.
        "/prometheus/metrics"
    }

    fn reset_path(&self) -> Option<&'static str> {
        // register_routes (openai_server.py) has no prefix-cache reset.
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Hardware;

    #[test]
    fn the_twin_gets_the_real_arguments_then_its_own() {
        let e = TrtllmEngine::simulated(SimLaunch::example());
        let r = Recipe::baseline(EngineKind::Trtllm, "Qwen/Qwen3-0.6B", Hardware::default());
        let log = Path::new("/run/logs/e0002-abc-c1.log");
        let spec = e.launch_spec(&r, 4321, "ignored", log, 2).unwrap();
        assert_eq!(spec.program, PathBuf::from("/bin/forge"));
        let args = spec.args.join(" ");
        assert!(
            args.starts_with("sim serve --engine trtllm Qwen/Qwen3-0.6B --backend pytorch --host 127.0.0.1 --port 4321 --extra_llm_api_options /run/logs/e0002-abc-c1.extra_llm_api_options.yaml --sim-gpu H100"),
            "{args}"
        );
        assert_eq!(spec.files.len(), 1);
        assert_eq!(
            spec.files[0].0,
            Path::new("/run/logs/e0002-abc-c1.extra_llm_api_options.yaml")
        );
        assert_eq!(e.served_name(&r, "forge-x"), "Qwen/Qwen3-0.6B");
        assert_eq!(e.metrics_path(), "/prometheus/metrics");
        assert_eq!(e.reset_path(), None);
        assert!(
            e.describe()
                .starts_with("forge simulator of TensorRT-LLM 1.2.0 on H100")
        );
    }

    #[test]
    fn a_local_model_is_served_under_its_directory_name() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("my-model");
        std::fs::create_dir(&model).unwrap();
        assert_eq!(served_model_name(&model.display().to_string()), "my-model");
        assert_eq!(served_model_name("org/name"), "org/name");
    }

    #[test]
    fn the_help_refuses_what_it_does_not_list() {
        let mut e = TrtllmEngine::real(
            vec!["trtllm-serve".into(), "serve".into()],
            Version::new(1, 1, 0),
        );
        e.help = Some(Arc::new(ServeHelp::parse(
            "Options:\n  --port INTEGER  p\n  --backend [pytorch]  b\n  --host TEXT  h\n  --max_batch_size INTEGER  m\n",
        )));
        let mut r = Recipe::baseline(EngineKind::Trtllm, "m", Hardware::default());
        r.config.insert("max_batch_size".into(), 8.into());
        let e2 = e.renders(&r).unwrap_err();
        assert!(
            e2.why.contains("lists no --extra_llm_api_options"),
            "{}",
            e2.why
        );
        r.config.insert("tp_size".into(), 1.into());
        assert!(
            e.launch_spec(&r, 1, "s", Path::new("l.log"), 0)
                .unwrap_err()
                .why
                .contains("--tp_size")
        );
    }
}
