//! vLLM behind the `Engine` trait — and forge's simulator, which speaks the same flags:
//! the simulator is the vLLM adapter with `forge sim serve` as its launcher, so a dry run
//! exercises the very rendering, spawning and classification a GPU run uses
//! ([`crate::engine::twin`]).
//!
//! A real vLLM is asked for its version and its `--help=all` first ([`super::probe`]);
//! every command line is rendered for that version and checked against that listing
//! ([`super::checked`]) before it boots. The launcher is argv (`vllm`, `python -m
//! vllm.entrypoints.cli.main`, a container wrapper), the server binds 127.0.0.1 on the
//! port the measurer chose, under the served name it chose. What an older vLLM reads from
//! the environment instead of a flag (the attention backend before 0.13) is set on the
//! process, never refused.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::checked::serve_command;
use super::flags::Version;
use super::help::HelpSnapshot;
use super::logs;
use super::probe::{self, PROBE_TIMEOUT};
use crate::engine::adapter::{BootFix, Engine, ProfilerSetup};
use crate::engine::failure::Failure;
use crate::engine::process::LaunchSpec;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

pub use crate::engine::twin::SimLaunch;

pub use crate::engine::process::GRACE_ENV;
/// How long a real vLLM gets to exit after SIGTERM (it drains, then frees the GPU).
const REAL_GRACE: Duration = Duration::from_secs(30);

/// vLLM (real or simulated).
#[derive(Debug, Clone)]
pub struct VllmEngine {
    /// Launcher argv prefix (`["vllm"]`, `["python", "-m", "vllm.entrypoints.cli.main"]`).
    pub launcher: Vec<String>,
    /// Version the flags are rendered for.
    pub version: Version,
    /// The installed engine's own flag listing; every command line is checked against it.
    pub help: Option<Arc<HelpSnapshot>>,
    /// Set for the simulator.
    pub sim: Option<SimLaunch>,
    /// SIGTERM → SIGKILL grace.
    pub grace: Duration,
}

impl VllmEngine {
    /// Real vLLM through `launcher`, rendering for `version` with no help snapshot.
    pub fn real(launcher: Vec<String>, version: Version) -> VllmEngine {
        VllmEngine {
            launcher,
            version,
            help: None,
            sim: None,
            grace: crate::engine::process::grace_or(REAL_GRACE),
        }
    }

    /// The vLLM `launcher` leads to: its version and help listing are asked for, stored in
    /// `run_dir` and used for every command line. Blocking (each question may take
    /// seconds). Fails only when there is no vLLM behind the launcher.
    pub fn installed(launcher: Vec<String>, run_dir: &Path) -> anyhow::Result<VllmEngine> {
        let p = probe::probe(&launcher, PROBE_TIMEOUT).map_err(|e| {
            anyhow::anyhow!(
                "{e}\nhint: install vLLM so `vllm` is on PATH, or point --engine-cmd at it \
                 (e.g. \"python -m vllm.entrypoints.cli.main\"); `forge doctor` checks"
            )
        })?;
        p.record("vLLM", run_dir);
        let version = p.version.unwrap_or_else(|| {
            eprintln!(
                "forge: warning: vLLM version unknown; rendering flags for {}",
                Version::CURRENT
            );
            Version::CURRENT
        });
        let mut engine = VllmEngine::real(launcher, version);
        engine.help = p.help.map(Arc::new);
        Ok(engine)
    }

    /// forge's simulator.
    pub fn simulated(sim: SimLaunch) -> VllmEngine {
        VllmEngine {
            launcher: vec![sim.exe.display().to_string(), "sim".into()],
            version: Version::CURRENT,
            help: None,
            sim: Some(sim),
            grace: Duration::from_secs(3),
        }
    }
}

impl Engine for VllmEngine {
    fn vllm_version(&self) -> Option<(u32, u32, u32)> {
        Some((self.version.major, self.version.minor, self.version.patch))
    }

    /// vLLM ≥ 0.13 takes `--profiler-config '{"profiler":"torch","torch_profiler_dir":…}'`
    /// (vllm-project/vllm#29912); earlier releases read `VLLM_TORCH_PROFILER_DIR`, which
    /// 0.16 removed (#33536). Either way the routes exist only while it is set.
    fn profiler(&self, dir: &Path) -> Result<ProfilerSetup, String> {
        let old = (self.version.major, self.version.minor) < (0, 13);
        if let Some(h) = &self.help
            && !old
            && h.lists_flags()
            && !h.has("--profiler-config")
        {
            return Err(format!(
                "{}: its help lists no --profiler-config",
                self.describe()
            ));
        }
        Ok(torch_profiler(old, dir))
    }

    fn describe(&self) -> String {
        match &self.sim {
            Some(s) => format!(
                "forge simulator of vLLM {} on {} (clock ×{}, noise {} %)",
                self.version, s.gpu, s.time_scale, s.noise_pct
            ),
            None => format!(
                "vLLM {} ({}; {})",
                self.version,
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
        EngineKind::Vllm
    }

    fn check(&self, recipe: &Recipe) -> Result<(), Illegal> {
        super::recipe::to_vllm_args(recipe).map(|_| ())
    }

    fn effective(&self, recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
        super::effective(recipe, gpu)
    }

    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        served_name: &str,
        log: &Path,
        boot_seq: u64,
    ) -> Result<LaunchSpec, Illegal> {
        let mut args = super::recipe::to_vllm_args(recipe)?;
        args.host = Some("127.0.0.1".into());
        args.port = Some(port);
        args.served_model_name = Some(served_name.to_string());
        let serve = serve_command(&args, self.version, self.help.as_deref())
            .map_err(|e| Illegal::recipe(e.to_string()))?;
        let mut argv = vec!["serve".to_string()];
        argv.extend(serve.args);
        if let Some(s) = &self.sim {
            argv.extend(s.args(boot_seq));
        }
        let mut spec = LaunchSpec::from_launcher(&self.launcher, argv, log)?;
        spec.env = vec![("VLLM_SERVER_DEV_MODE".to_string(), "1".to_string())];
        spec.env.extend(serve.env);
        Ok(spec)
    }

    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
        logs::classify_exit(code, signal, log)
    }

    fn log_hints(&self, log: &str) -> Vec<String> {
        logs::hints(log)
    }

    fn bootable(&self, failure: &Failure, need_tokens: u64) -> Option<BootFix> {
        let text = std::iter::once(&failure.summary)
            .chain(&failure.hints)
            .find_map(|l| logs::estimated_max_model_len(l))?;
        let len = context_for(need_tokens, text)?;
        Some(BootFix {
            config: BTreeMap::from([("max_model_len".to_string(), Value::from(len))]),
            why: format!(
                "the engine's defaults do not boot on this GPU (the model's full context does not fit; vLLM estimates at most {text} tokens); the baseline serves the workload's longest request ({need_tokens} tokens) with max_model_len {len}"
            ),
        })
    }

    fn time_scale(&self) -> f64 {
        self.sim.as_ref().map_or(1.0, |s| s.time_scale)
    }

    fn grace(&self) -> Duration {
        self.grace
    }

    fn reset_path(&self) -> Option<&'static str> {
        Some("/reset_prefix_cache")
    }
}

/// A context length for a workload that needs `need` tokens where vLLM can fit at most
/// `max`: `need` rounded up to a multiple of 1,024 (at least 2,048), capped at `max`;
/// `None` when even `need` does not fit.
fn context_for(need: u64, max: u64) -> Option<u64> {
    if need > max {
        return None;
    }
    Some((need.div_ceil(1024) * 1024).max(2048).min(max))
}

/// vLLM's torch profiler writing into `dir`: `VLLM_TORCH_PROFILER_DIR` before 0.13 (`old`),
/// `--profiler-config` (JSON) from 0.13.
pub fn torch_profiler(old: bool, dir: &Path) -> ProfilerSetup {
    let dir = dir.display().to_string();
    if old {
        return ProfilerSetup {
            env: vec![("VLLM_TORCH_PROFILER_DIR".into(), dir)],
            ..ProfilerSetup::default()
        };
    }
    let config = serde_json::json!({"profiler": "torch", "torch_profiler_dir": dir});
    ProfilerSetup {
        args: vec!["--profiler-config".into(), config.to_string()],
        ..ProfilerSetup::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP_ALL_0_33: &str = include_str!("../../../tests/fixtures/vllm/help-all-0.33.0.txt");
    const HELP_0_10: &str = include_str!("../../../tests/fixtures/vllm/help-0.10.2.txt");

    fn at(major: u32, minor: u32, help: Option<&str>) -> VllmEngine {
        let mut e = VllmEngine::real(
            vec!["vllm".into()],
            Version {
                major,
                minor,
                patch: 0,
            },
        );
        e.help = help.map(|h| Arc::new(HelpSnapshot::parse(h)));
        e
    }

    #[test]
    fn the_profiler_is_turned_on_the_way_each_version_reads_it() {
        let dir = Path::new("/runs/p/raw");
        let old = at(0, 10, Some(HELP_0_10)).profiler(dir).unwrap();
        assert_eq!(
            old.env,
            vec![(
                "VLLM_TORCH_PROFILER_DIR".to_string(),
                "/runs/p/raw".to_string()
            )]
        );
        assert!(old.args.is_empty() && old.start_body.is_none());
        let new = at(0, 33, Some(HELP_ALL_0_33)).profiler(dir).unwrap();
        assert_eq!(new.args[0], "--profiler-config");
        let v: Value = serde_json::from_str(&new.args[1]).unwrap();
        assert_eq!(v["profiler"], "torch");
        assert_eq!(v["torch_profiler_dir"], "/runs/p/raw");
        assert!(new.env.is_empty());
        // A help that lists its flags without --profiler-config: refused, not guessed.
        let e = at(0, 33, Some(HELP_0_10)).profiler(dir).unwrap_err();
        assert!(e.contains("--profiler-config"), "{e}");
    }
}
