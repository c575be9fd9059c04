//! `frontier.json`: the simulator's predicted throughput–latency frontier of a run's model,
//! GPU and workload — one curve per recipe (the baseline at the start, the recommended one
//! at the end), each the workload replayed at rising concurrency. The report draws the
//! run's measured points over it; written atomically, read back as it was.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file in a run directory.
pub const FRONTIER_FILE: &str = "frontier.json";

/// The predicted frontier of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Frontier {
    /// The simulated GPU.
    pub gpu: String,
    /// One curve per recipe.
    pub curves: Vec<Curve>,
}

/// One recipe's predicted points, by concurrency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// What the recipe is in this run (`baseline`, `recommended`).
    pub label: String,
    /// The recipe's id.
    pub recipe_id: String,
    /// GPUs the recipe holds (tokens/s per GPU divides by it).
    pub gpus: u32,
    /// The points, by rising concurrency.
    pub points: Vec<FrontierPoint>,
}

/// The workload replayed at one concurrency, as the simulator predicts it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FrontierPoint {
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Output tokens/s.
    pub output_throughput: f64,
    /// Median time per output token, ms.
    pub median_tpot_ms: f64,
    /// p99 time per output token, ms.
    pub p99_tpot_ms: f64,
    /// p99 time to first token, ms.
    pub p99_ttft_ms: f64,
}

impl Frontier {
    /// `curve` in place of the one with its label.
    pub fn with(mut self, curve: Curve) -> Frontier {
        self.curves.retain(|c| c.label != curve.label);
        self.curves.push(curve);
        self
    }
}

/// The frontier in `dir`, if one was written (an unreadable file reads as none: the report
/// goes on without it).
pub fn read(dir: &Path) -> Option<Frontier> {
    let text = std::fs::read_to_string(dir.join(FRONTIER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Write `f` into `dir`, atomically.
pub fn write(dir: &Path, f: &Frontier) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(f)?;
    crate::store::write_atomic(&dir.join(FRONTIER_FILE), text.as_bytes())?;
    Ok(())
}
