//! The `Engine` seam: what differs between serving engines — which recipes it may run
//! (allowlist, cross-field rules, what its version can express), its defaults, how a recipe
//! becomes a command line, how a failed boot or a crash reads in its log, how to reset
//! caches between measurements. The loop asks these questions and never branches on which
//! engine it tunes. The lifecycle around it — process groups, readiness, teardown — is
//! shared ([`super::process`], [`super::health`]).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::failure::Failure;
use super::process::LaunchSpec;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// A serving engine forge can boot and measure.
pub trait Engine: Send + Sync {
    /// One line for banners and reports (`vLLM 0.33.0`, `forge simulator of vLLM 0.33 on H100`).
    fn describe(&self) -> String;

    /// Which recipes it runs.
    fn recipe_engine(&self) -> EngineKind;

    /// Whether `recipe` may boot: every field on this engine's allowlist for its layer, and
    /// the engine's cross-field rules (and the run's limits, e.g. the workload's longest
    /// request). Decided before anything boots; `Err` names the knob and says why. What the
    /// installed version can express is [`Engine::renders`].
    fn check(&self, recipe: &Recipe) -> Result<(), Illegal>;

    /// Whether this engine's version can express `recipe` on its command line (a field
    /// with no flag in this version, a value its help does not accept): refused, with the
    /// reason, before anything boots.
    fn renders(&self, recipe: &Recipe) -> Result<(), Illegal> {
        self.launch_spec(
            recipe,
            8000,
            "forge-render-check",
            Path::new("check.log"),
            0,
        )
        .map(|_| ())
    }

    /// The recipe's value of every knob: its own, else this engine's default (on `gpu` when
    /// the defaults depend on it).
    fn effective(&self, recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value>;

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
    ) -> Result<LaunchSpec, Illegal>;

    /// Classify a boot that ended without becoming ready.
    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure;

    /// The lines of this engine's log worth keeping with a failure (its own hints, the
    /// error that ended it).
    fn log_hints(&self, log: &str) -> Vec<String>;

    /// Facts about the host the playbook's rules read for this engine (none by default;
    /// llama.cpp: `cpu_cores`).
    fn host_facts(&self) -> BTreeMap<String, f64> {
        BTreeMap::new()
    }

    /// When the engine's defaults failed to boot with `failure`, the smallest change that
    /// lets them serve a workload whose longest request needs `need_tokens` (vLLM: a
    /// context from its own "estimated maximum model length" hint), and why; `None` when
    /// there is none.
    fn bootable(&self, _failure: &Failure, _need_tokens: u64) -> Option<BootFix> {
        None
    }

    /// Wall seconds per server second (the simulator runs on a scaled clock).
    fn time_scale(&self) -> f64 {
        1.0
    }

    /// The vLLM release this engine is (or stands in for), as (major, minor, patch), when
    /// it is a vLLM: the simulator's memory plan follows that release's profiling rules.
    fn vllm_version(&self) -> Option<(u32, u32, u32)> {
        None
    }

    /// How long to wait after SIGTERM before SIGKILL.
    fn grace(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// The name the server will list in `/v1/models` and answer under, given the
    /// unguessable one the measurer `chosen` (most engines serve under the name they are
    /// given; trtllm-serve has no such option and serves under its model argument).
    fn served_name(&self, _recipe: &Recipe, chosen: &str) -> String {
        chosen.to_string()
    }

    /// Path of its Prometheus metrics (`/metrics`; trtllm-serve: `/prometheus/metrics`).
    fn metrics_path(&self) -> &'static str {
        "/metrics"
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

    /// How this engine's version turns on its torch profiler, its traces written under
    /// `dir`: what to add to the launch and what `/start_profile` takes. `Err` says why it
    /// has none over HTTP.
    fn profiler(&self, _dir: &Path) -> Result<ProfilerSetup, String> {
        Err(format!(
            "{} has no torch profiler behind /start_profile and /stop_profile",
            self.describe()
        ))
    }
}

/// What turns an engine's torch profiler on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfilerSetup {
    /// Arguments added to the launch command.
    pub args: Vec<String>,
    /// Environment added to the launch.
    pub env: Vec<(String, String)>,
    /// The JSON body of `POST /start_profile` (none: an empty request).
    pub start_body: Option<Value>,
}

/// A change to the engine's defaults that lets them boot, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BootFix {
    /// Recipe config values to add to the baseline.
    pub config: BTreeMap<String, Value>,
    /// What was changed and why, in a sentence.
    pub why: String,
}

/// Engine-specific adjustments to how forge benchmarks it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchQuirks {
    /// The server closes the connection after each streamed response (llama.cpp).
    pub closes_connections: bool,
}
