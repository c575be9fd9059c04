//! `forge report`: a run's baseline, best, gain with its interval, every experiment, and
//! failures by kind — as a table, TSV, JSON, Markdown or a self-contained HTML page with
//! charts. The same renderers write the run's `experiments.tsv`, `experiments.json`,
//! `report.md`, `report.html` and `charts/*.svg` views.

pub mod charts;
pub mod cost;
pub mod html;
pub mod render;
pub mod side;
pub mod summary;
pub mod svg;

pub use crate::record::{LoadedRun, load};
pub use summary::RunSummary;

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Human-readable table.
    Table,
    /// Tab-separated values.
    Tsv,
    /// JSON.
    Json,
    /// Markdown.
    Md,
    /// One self-contained HTML page (inline CSS and SVG charts, no script).
    Html,
}

/// The run in `run`, summarised, as `format`; costs at `gpu_hour_usd` per GPU-hour when
/// given, else at the GPU's built-in price.
pub fn render(
    run: &LoadedRun,
    format: ReportFormat,
    gpu_hour_usd: Option<f64>,
) -> anyhow::Result<String> {
    let summary = RunSummary::of(run).priced(run, gpu_hour_usd);
    Ok(match format {
        ReportFormat::Table => render::table(run, &summary),
        ReportFormat::Tsv => render::tsv(&run.rows),
        ReportFormat::Json => render::json(run, &summary)?,
        ReportFormat::Md => render::markdown(run, &summary),
        ReportFormat::Html => html::page(run, &summary),
    })
}
