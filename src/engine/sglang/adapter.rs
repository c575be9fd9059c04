//! SGLang behind the `Engine` trait, real or as forge's simulated twin. The twin is the
//! same adapter with `forge sim serve --engine sglang` as its launcher and the embedded
//! 0.5.23 help as its listing, so a dry run exercises the rendering, spawning and
//! classification a GPU run uses.
//!
//! A real SGLang is asked for its help and version first ([`super::help::probe`]); every
//! command line is rendered against that help. The launcher is argv (`sglang serve`,
//! `python -m sglang.launch_server`, a container wrapper): both entry points take the same
//! flags. Readiness is the shared one (`/health`; `/v1/models` lists the served name).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::help::{self, HelpSnapshot, PROBE_TIMEOUT, Version};
use super::{defaults, flags, logs};
use crate::engine::adapter::{Engine, ProfilerSetup};
use crate::engine::failure::Failure;
use crate::engine::process::LaunchSpec;
use crate::engine::twin::SimLaunch;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// How long a real SGLang gets to exit after SIGTERM: its launcher kills the scheduler
/// and detokenizer process tree on the way out (`kill_process_tree`), in seconds.
const REAL_GRACE: Duration = Duration::from_secs(15);
/// The twin's grace.
const SIM_GRACE: Duration = Duration::from_secs(3);

/// SGLang (real or simulated).
#[derive(Debug, Clone)]
pub struct SglangEngine {
    /// Launcher argv prefix (`["sglang", "serve"]`, `["python", "-m",
    /// "sglang.launch_server"]`; the twin's `forge sim serve --engine sglang`).
    pub launcher: Vec<String>,
    /// The version, when the launcher told it (the twin: the newest forge knows).
    pub version: Option<Version>,
    /// The flag listing every command line is checked against (`None`: unchecked).
    pub help: Option<Arc<HelpSnapshot>>,
    /// Set for the simulated twin.
    pub sim: Option<SimLaunch>,
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
}

impl SglangEngine {
    /// The SGLang `launcher` leads to: its help (and version, where the launcher's shape
    /// allows) are asked for, stored in `run_dir` and used for every command line
    /// (`serve` is added to a launcher that is the `sglang` CLI alone). Blocking. Fails only when there is no SGLang behind the launcher.
    pub fn installed(launcher: Vec<String>, run_dir: &Path) -> anyhow::Result<SglangEngine> {
        let launcher = help::normalize_launcher(launcher);
        let p = help::probe(&launcher, PROBE_TIMEOUT).map_err(|e| {
            anyhow::anyhow!(
                "{e}\nhint: install SGLang so `sglang` is on PATH, or point --engine-cmd at it \
                 (e.g. \"python -m sglang.launch_server\"); `forge doctor` checks"
            )
        })?;
        p.record("SGLang", run_dir);
        Ok(SglangEngine {
            launcher,
            version: p.version,
            help: p.help.map(Arc::new),
            sim: None,
            grace: crate::engine::process::grace_or(REAL_GRACE),
        })
    }

    /// forge's twin: no probe; rendered against the embedded 0.5.23 help.
    pub fn simulated(sim: SimLaunch) -> SglangEngine {
        SglangEngine {
            launcher: sim.launcher(EngineKind::Sglang),
            version: Some(Version::NEWEST),
            help: Some(Arc::new(help::newest_help())),
            sim: Some(sim),
            grace: SIM_GRACE,
        }
    }
}

impl Engine for SglangEngine {
    /// SGLang serves `/start_profile` and `/stop_profile`; its traces go to
    /// `SGLANG_TORCH_PROFILER_DIR` (set at launch, as its bench client requires) or the
    /// request's `output_dir`.
    fn profiler(&self, dir: &Path) -> Result<ProfilerSetup, String> {
        Ok(super::torch_profiler(dir))
    }

    fn describe(&self) -> String {
        let version = self.version.map_or_else(
            || match &self.help {
                Some(h) => format!("version unknown, help like {}", help::era(h)),
                None => "version unknown".into(),
            },
            |v| v.to_string(),
        );
        match &self.sim {
            Some(s) => format!(
                "forge simulator of SGLang {version} on {} (clock ×{}, noise {} %)",
                s.gpu, s.time_scale, s.noise_pct
            ),
            None => format!(
                "SGLang {version} ({}; {})",
                self.launcher.join(" "),
                if self.help.is_some() {
                    "flags checked against its --help"
                } else {
                    "flags unchecked: no help listing"
                }
            ),
        }
    }

    fn recipe_engine(&self) -> EngineKind {
        EngineKind::Sglang
    }

    fn check(&self, recipe: &Recipe) -> Result<(), Illegal> {
        flags::knobs(recipe, self.help.as_deref()).map(|_| ())
    }

    fn effective(&self, recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
        defaults::effective(recipe, gpu)
    }

    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        served_name: &str,
        log: &Path,
        boot_seq: u64,
    ) -> Result<LaunchSpec, Illegal> {
        let rendered = flags::render(recipe, port, served_name, self.help.as_deref())?;
        let mut args = rendered;
        if let Some(s) = &self.sim {
            args.extend(s.args(boot_seq));
        }
        LaunchSpec::from_launcher(&self.launcher, args, log)
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

    /// `POST /flush_cache` empties the radix cache (srt/entrypoints/http_server.py:
    /// `@app.api_route("/flush_cache", methods=["GET", "POST"])`; 200 "Cache flushed.",
    /// 400 while requests are running or waiting).
    fn reset_path(&self) -> Option<&'static str> {
        Some("/flush_cache")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{Hardware, Layer};
    use serde_json::json;
    use std::path::PathBuf;

    #[test]
    fn the_twin_renders_real_flags_then_sim_flags() {
        let e = SglangEngine::simulated(SimLaunch::example());
        let mut ch = BTreeMap::new();
        ch.insert("cuda_graph_max_bs".to_string(), json!(64));
        let r = Recipe::baseline(EngineKind::Sglang, "Qwen/Qwen3-0.6B", Hardware::default())
            .mutate(Layer::Config, &ch);
        let spec = e
            .launch_spec(&r, 4321, "forge-e0001-x", Path::new("l.log"), 2)
            .unwrap();
        assert_eq!(spec.program, PathBuf::from("/bin/forge"));
        let argv = spec.args.join(" ");
        assert!(
            argv.starts_with(
                "sim serve --engine sglang --model-path Qwen/Qwen3-0.6B --host 127.0.0.1 --port 4321 \
                 --served-model-name forge-e0001-x --enable-metrics --cuda-graph-max-bs-decode 64 --sim-gpu H100"
            ),
            "{argv}"
        );
        assert!(
            e.describe()
                .starts_with("forge simulator of SGLang 0.5.23 on H100")
        );
        assert_eq!(e.reset_path(), Some("/flush_cache"));
        assert!(spec.env.is_empty());
        assert!(e.renders(&r).is_ok());
    }

    #[test]
    fn python_module_launchers_take_the_same_flags() {
        let e = SglangEngine {
            launcher: vec!["python3".into(), "-m".into(), "sglang.launch_server".into()],
            version: None,
            help: None,
            sim: None,
            grace: REAL_GRACE,
        };
        let r = Recipe::baseline(EngineKind::Sglang, "Qwen/Qwen3-0.6B", Hardware::default());
        let spec = e.launch_spec(&r, 1, "s", Path::new("l"), 0).unwrap();
        assert_eq!(spec.program, PathBuf::from("python3"));
        assert_eq!(
            spec.args[..4].join(" "),
            "-m sglang.launch_server --model-path Qwen/Qwen3-0.6B"
        );
        assert!(e.describe().contains("flags unchecked"));
        let mut bad = r.clone();
        bad.config.insert("swap_space".into(), json!(4));
        assert!(e.check(&bad).unwrap_err().why.contains("not a config knob"));
    }
}
