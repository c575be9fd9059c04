//! `forge report`: a run's baseline, best, gain with its interval, every experiment, and
//! failures by kind — as a table, TSV, JSON or Markdown. The same renderers write the run's
//! `experiments.tsv` and `experiments.json` views.

pub mod render;
pub mod summary;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{ReportArgs, ReportFormat};
use crate::store::{self, CONFIG_FILE, JOURNAL_FILE};
use crate::tune::row::ExperimentRow;
use crate::tune::settings::TuneSettings;

pub use summary::RunSummary;

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
    let completed = std::fs::read_to_string(dir.join(store::COMPLETED_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let analysis = std::fs::read_to_string(dir.join(crate::tune::run::ANALYSIS_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_string));
    Ok(LoadedRun {
        dir: dir.to_path_buf(),
        settings,
        rows,
        completed,
        analysis,
    })
}

/// `forge report`.
pub fn main(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let dir = store::resolve_run_path(&args.path)?;
    let run = load(&dir)?;
    let summary = RunSummary::of(&run);
    let text = match args.format {
        ReportFormat::Table => render::table(&run, &summary),
        ReportFormat::Tsv => render::tsv(&run.rows),
        ReportFormat::Json => render::json(&run, &summary)?,
        ReportFormat::Md => render::markdown(&run, &summary),
    };
    crate::term::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
