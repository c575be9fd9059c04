//! The persisted run model: what a run directory holds and means — journal rows and their
//! statuses, measurements and intervals, the run's settings and objective — and the one
//! reader of a run directory. `tune` writes these, `report` and `agent` read them; none of
//! them owns them. Where each file lives is the store's business ([`crate::store`]).

pub mod frontier;
pub mod row;
pub mod settings;

use std::path::{Path, PathBuf};

pub use row::{
    AnswerAgreement, Arm, ExperimentRow, Interval, LatencyQuantiles, Measurement, Sample, Status,
    recommended,
};
pub use settings::{EngineChoice, Objective, TuneSettings};

use crate::store::{self, ANALYSIS_FILE, COMPLETED_FILE, CONFIG_FILE, JOURNAL_FILE};

/// A run as read from disk.
#[derive(Debug, Clone)]
pub struct LoadedRun {
    /// The run directory.
    pub dir: PathBuf,
    /// Its settings.
    pub settings: Option<TuneSettings>,
    /// Its rows.
    pub rows: Vec<ExperimentRow>,
    /// Whether `completed.json` exists, and its content.
    pub completed: Option<serde_json::Value>,
    /// The agent's post-run analysis, if it wrote one.
    pub analysis: Option<String>,
    /// The simulator's predicted frontier, when the run has one.
    pub frontier: Option<frontier::Frontier>,
}

/// Read a run without modifying it.
pub fn load(dir: &Path) -> anyhow::Result<LoadedRun> {
    let settings = match std::fs::read_to_string(dir.join(CONFIG_FILE)) {
        Ok(t) => Some(
            serde_json::from_str(&t)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join(CONFIG_FILE).display()))?,
        ),
        Err(_) => None,
    };
    let rows = store::read_rows(&dir.join(JOURNAL_FILE))?;
    let completed = std::fs::read_to_string(dir.join(COMPLETED_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let analysis = std::fs::read_to_string(dir.join(ANALYSIS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string));
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        settings,
        rows,
        completed,
        analysis,
        frontier: frontier::read(dir),
    })
}
