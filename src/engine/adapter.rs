//! The `Engine` seam: what differs between serving engines (how a recipe becomes a command
//! line, how a failed boot is classified, how to reset caches between measurements). The
//! lifecycle around it — process groups, readiness, teardown — is shared
//! ([`super::process`], [`super::health`]).

use std::path::Path;
use std::time::Duration;

use super::failure::Failure;
use super::process::LaunchSpec;
use crate::recipe::{EngineKind, Recipe};

/// A serving engine forge can boot and measure.
pub trait Engine: Send + Sync {
    /// One line for banners and reports (`vLLM 0.33.0`, `forge simulator of vLLM 0.33 on H100`).
    fn describe(&self) -> String;

    /// Which recipes it runs.
    fn recipe_engine(&self) -> EngineKind;

    /// The argv (and environment) that serves `recipe` on 127.0.0.1:`port` under
    /// `served_name`. Every value passes the engine's allowlist for its version; `Err` says
    /// which field has no flag or an illegal value.
    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        served_name: &str,
        log: &Path,
        boot_seq: u64,
    ) -> Result<LaunchSpec, String>;

    /// Classify a boot that ended without becoming ready.
    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure;

    /// Wall seconds per server second (the simulator runs on a scaled clock).
    fn time_scale(&self) -> f64 {
        1.0
    }

    /// How long to wait after SIGTERM before SIGKILL.
    fn grace(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Path to POST before each measurement so a reused server starts cold (prefix cache),
    /// if the engine has one.
    fn reset_path(&self) -> Option<&'static str> {
        None
    }

    /// Parameters the benchmark must add to every request (none by default).
    fn bench_quirks(&self) -> BenchQuirks {
        BenchQuirks::default()
    }
}

/// Engine-specific adjustments to how forge benchmarks it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchQuirks {
    /// The server closes the connection after each streamed response (llama.cpp).
    pub closes_connections: bool,
}
