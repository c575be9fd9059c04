//! How forge's simulated twins are launched in dry runs: `forge sim serve` (vLLM) or
//! `forge sim serve --engine sglang|trtllm`, followed by the framework's own flags as the
//! engine's adapter renders them, then forge's `--sim-*` flags. The adapters are the real
//! ones; only the launcher differs, so a dry run exercises the rendering, spawning and
//! classification a GPU run uses.

use std::path::PathBuf;

use crate::recipe::EngineKind;

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

impl SimLaunch {
    /// The launcher argv prefix of `framework`'s twin: `forge sim` for vLLM (its adapter adds
    /// `serve`, as for `vllm`), `forge sim serve --engine sglang|trtllm` for the others.
    pub fn launcher(&self, framework: EngineKind) -> Vec<String> {
        let mut v = vec![self.exe.display().to_string(), "sim".to_string()];
        if framework != EngineKind::Vllm {
            v.extend([
                "serve".to_string(),
                "--engine".into(),
                framework.as_str().into(),
            ]);
        }
        v
    }

    /// The `--sim-*` flags of boot number `boot_seq` (each boot its own seed).
    pub fn args(&self, boot_seq: u64) -> Vec<String> {
        let s = self;
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

    /// A launch for unit tests: `/bin/forge` on an H100, fast clocks, seed 7.
    #[cfg(test)]
    pub fn example() -> SimLaunch {
        SimLaunch {
            exe: PathBuf::from("/bin/forge"),
            gpu: "H100".into(),
            time_scale: 0.01,
            boot_time_scale: 0.001,
            noise_pct: 0.0,
            seed: 7,
            extra: Vec::new(),
        }
    }
}
