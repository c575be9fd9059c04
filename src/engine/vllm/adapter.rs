//! vLLM behind the `Engine` trait — and forge's simulator, which speaks the same flags:
//! the simulator is the vLLM adapter with `forge sim serve` as its launcher, so a dry run
//! exercises the very rendering, spawning and classification a GPU run uses.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::flags::{self, Version};
use super::logs;
use crate::engine::adapter::Engine;
use crate::engine::failure::Failure;
use crate::engine::process::LaunchSpec;
use crate::recipe::{EngineKind, Recipe};

/// How the simulator is launched (dry runs).
#[derive(Debug, Clone, PartialEq)]
pub struct SimLaunch {
    /// The forge executable.
    pub exe: PathBuf,
    /// GPU modelled.
    pub gpu: String,
    /// Wall seconds per simulated second.
    pub time_scale: f64,
    /// Wall seconds per simulated second of startup.
    pub boot_time_scale: f64,
    /// Run-to-run noise, percent.
    pub noise_pct: f64,
    /// Base seed (each boot gets its own, derived from this and the boot sequence).
    pub seed: u64,
    /// Extra `--sim-*` arguments (fault injection in tests).
    pub extra: Vec<String>,
}

/// vLLM (real or simulated).
#[derive(Debug, Clone)]
pub struct VllmEngine {
    /// Launcher argv prefix (`["vllm"]`, `["python", "-m", "vllm.entrypoints.cli.main"]`).
    pub launcher: Vec<String>,
    /// Version the flags are rendered for.
    pub version: Version,
    /// Set for the simulator.
    pub sim: Option<SimLaunch>,
}

impl VllmEngine {
    /// Real vLLM through `launcher`.
    pub fn real(launcher: Vec<String>, version: Version) -> VllmEngine {
        VllmEngine {
            launcher,
            version,
            sim: None,
        }
    }

    /// forge's simulator.
    pub fn simulated(sim: SimLaunch) -> VllmEngine {
        VllmEngine {
            launcher: vec![sim.exe.display().to_string(), "sim".into()],
            version: Version::CURRENT,
            sim: Some(sim),
        }
    }
}

impl Engine for VllmEngine {
    fn describe(&self) -> String {
        match &self.sim {
            Some(s) => format!(
                "forge simulator of vLLM {} on {} (clock ×{}, noise {} %)",
                self.version, s.gpu, s.time_scale, s.noise_pct
            ),
            None => format!("vLLM {} ({})", self.version, self.launcher.join(" ")),
        }
    }

    fn recipe_engine(&self) -> EngineKind {
        EngineKind::Vllm
    }

    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        served_name: &str,
        log: &Path,
        boot_seq: u64,
    ) -> Result<LaunchSpec, String> {
        let mut args = crate::recipe::vllm::to_vllm_args(recipe)?;
        args.host = Some("127.0.0.1".into());
        args.port = Some(port);
        args.served_model_name = Some(served_name.to_string());
        let rendered = flags::render(&args, self.version).map_err(|e| e.to_string())?;
        let (program, mut argv) = match self.launcher.split_first() {
            Some((p, rest)) => (PathBuf::from(p), rest.to_vec()),
            None => return Err("empty engine launcher".into()),
        };
        argv.push("serve".into());
        argv.extend(rendered);
        let env = vec![("VLLM_SERVER_DEV_MODE".to_string(), "1".to_string())];
        if let Some(s) = &self.sim {
            argv.extend(sim_args(s, boot_seq));
        }
        Ok(LaunchSpec {
            program,
            args: argv,
            env,
            log_path: log.to_path_buf(),
        })
    }

    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
        logs::classify_exit(code, signal, log)
    }

    fn time_scale(&self) -> f64 {
        self.sim.as_ref().map_or(1.0, |s| s.time_scale)
    }

    fn grace(&self) -> Duration {
        match &self.sim {
            Some(_) => Duration::from_secs(3),
            None => Duration::from_secs(30),
        }
    }

    fn reset_path(&self) -> Option<&'static str> {
        Some("/reset_prefix_cache")
    }
}

fn sim_args(s: &SimLaunch, boot_seq: u64) -> Vec<String> {
    let mut v = vec![
        "--sim-gpu".to_string(),
        s.gpu.clone(),
        "--sim-time-scale".into(),
        s.time_scale.to_string(),
        "--sim-boot-time-scale".into(),
        s.boot_time_scale.to_string(),
        "--sim-seed".into(),
        s.seed
            .wrapping_mul(1_000_003)
            .wrapping_add(boot_seq)
            .to_string(),
    ];
    if s.noise_pct > 0.0 {
        v.extend(["--sim-noise".to_string(), s.noise_pct.to_string()]);
    }
    v.extend(s.extra.iter().cloned());
    v
}
