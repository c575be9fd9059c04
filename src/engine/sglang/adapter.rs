//! SGLang behind the `Engine` trait, real or as forge's simulated twin.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::engine::adapter::Engine;
use crate::engine::failure::{Failure, FailureClass, describe_exit};
use crate::engine::process::LaunchSpec;
use crate::engine::twin::SimLaunch;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// SGLang (real or simulated).
#[derive(Debug, Clone)]
pub struct SglangEngine {
    /// Launcher argv prefix.
    pub launcher: Vec<String>,
    /// Set for the simulated twin.
    pub sim: Option<SimLaunch>,
}

impl SglangEngine {
    /// The SGLang behind `launcher`.
    pub fn installed(launcher: Vec<String>, run_dir: &Path) -> anyhow::Result<SglangEngine> {
        let _ = run_dir;
        Ok(SglangEngine {
            launcher,
            sim: None,
        })
    }

    /// forge's twin.
    pub fn simulated(sim: SimLaunch) -> SglangEngine {
        SglangEngine {
            launcher: sim.launcher(EngineKind::Sglang),
            sim: Some(sim),
        }
    }
}

impl Engine for SglangEngine {
    fn describe(&self) -> String {
        "SGLang".into()
    }

    fn recipe_engine(&self) -> EngineKind {
        EngineKind::Sglang
    }

    fn check(&self, recipe: &Recipe) -> Result<(), Illegal> {
        for (layer, name, value) in recipe.fields() {
            crate::engine::allowlist::check(EngineKind::Sglang, layer, &name, &value)?;
        }
        Ok(())
    }

    fn effective(&self, recipe: &Recipe, _gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
        recipe.config.clone()
    }

    fn launch_spec(
        &self,
        _recipe: &Recipe,
        _port: u16,
        _served_name: &str,
        _log: &Path,
        _boot_seq: u64,
    ) -> Result<LaunchSpec, Illegal> {
        Err(Illegal::recipe("SGLang command lines are not rendered yet"))
    }

    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, _log: &str) -> Failure {
        Failure {
            class: FailureClass::CrashedDuringBoot,
            exit_code: code,
            signal,
            summary: describe_exit(code, signal),
            hints: Vec::new(),
        }
    }

    fn log_hints(&self, _log: &str) -> Vec<String> {
        Vec::new()
    }
}
