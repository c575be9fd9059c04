//! What a compare campaign was asked to do, resolved once from the command line and kept
//! in the campaign directory (`compare.json`), so a resumed campaign runs exactly the same
//! gate: same frameworks, scenarios, SLA, budgets, rates and seeds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::rate::Bounds;
use super::scenario::Scenario;
use super::sla::Sla;
use crate::hardware::Device;
use crate::recipe::EngineKind;

/// Version of `compare.json`'s layout.
pub const SETTINGS_VERSION: u32 = 1;

/// The file the settings live in.
pub const SETTINGS_FILE: &str = "compare.json";

/// A compare campaign's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompareSettings {
    /// Layout version.
    pub version: u32,
    /// The model every framework serves (a Hugging Face id, a local directory, a GGUF).
    pub model: String,
    /// The frameworks compared, in order.
    pub frameworks: Vec<EngineKind>,
    /// The scenarios (written into the campaign).
    pub scenarios: Vec<Scenario>,
    /// The SLA every candidate is held to.
    pub sla: Sla,
    /// Experiments each framework's search may spend (baseline included).
    pub budget: u32,
    /// Candidates per framework taken from its search into the gate (its baseline and its
    /// best kept recipes, newest first).
    pub candidates_per_framework: usize,
    /// Run the simulated twins instead of the real engines.
    pub dry_run: bool,
    /// The GPU the twins model (dry run).
    pub sim_gpu: Option<String>,
    /// Run-to-run noise of the twins, %.
    pub sim_noise: f64,
    /// GPU backend of real engines.
    pub device: Device,
    /// Per framework: the launcher to use instead of the default (`--engine-cmd F=CMD`).
    pub engine_cmds: BTreeMap<String, String>,
    /// Request-rate bounds and stopping rule of the rate search.
    pub rates: RateBounds,
    /// Concurrency caps to search under (`None` = no cap).
    pub max_concurrency: Vec<Option<usize>>,
    /// Seed of the scenarios, the searches and the load.
    pub seed: u64,
    /// How long a server may take to become ready, seconds.
    pub boot_timeout_s: f64,
    /// The searches' accuracy floor.
    pub accuracy_floor: f64,
    /// Most paired repeats per decision of the searches.
    pub max_repeats: usize,
}

/// [`Bounds`] as stored.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateBounds {
    /// Lowest rate, requests/s.
    pub lo: f64,
    /// Highest rate, requests/s.
    pub hi: f64,
    /// Relative width at which the search stops.
    pub tolerance: f64,
    /// Most runs per search.
    pub max_runs: usize,
}

impl From<RateBounds> for Bounds {
    fn from(r: RateBounds) -> Bounds {
        Bounds {
            lo: r.lo,
            hi: r.hi,
            tolerance: r.tolerance,
            max_runs: r.max_runs,
            all_at_once: true,
        }
    }
}

impl Default for RateBounds {
    fn default() -> Self {
        let b = Bounds::default();
        RateBounds {
            lo: b.lo,
            hi: b.hi,
            tolerance: b.tolerance,
            max_runs: b.max_runs,
        }
    }
}

impl CompareSettings {
    /// The longest request of any scenario (prompt + output): the floor of every
    /// sequence-length flag.
    pub fn floor(&self, dir: &std::path::Path) -> anyhow::Result<u64> {
        let mut longest = 0;
        for s in &self.scenarios {
            longest = longest.max(super::scenario::lengths(&s.load(dir)?).longest);
        }
        Ok(longest)
    }

    /// Where a framework's search runs live.
    pub fn search_root(&self, dir: &std::path::Path, fw: EngineKind) -> PathBuf {
        dir.join("search").join(fw.as_str())
    }
}

/// The settings of the campaign in `dir` (its `compare.json`).
pub fn load(dir: &std::path::Path) -> anyhow::Result<CompareSettings> {
    let path = dir.join(SETTINGS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| anyhow::anyhow!("{}: {e} (not a compare campaign?)", path.display()))?;
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
