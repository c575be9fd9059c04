//! The run's derived files, regenerated from the journal after every row and written
//! atomically: `experiments.tsv`, `experiments.json`, `best_recipe.yaml`, `report.html`,
//! `report.md` and its `charts/*.svg`.

use std::path::Path;

use crate::record::{ExperimentRow, Status, recommended};
use crate::report::{self, RunSummary};
use crate::store::{self, BEST_RECIPE_FILE, JSON_FILE, TSV_FILE, write_atomic};

/// The run's self-contained HTML report.
pub const HTML_FILE: &str = "report.html";
/// The run's Markdown report (its charts beside it).
pub const MD_FILE: &str = "report.md";
/// Where the charts' SVG files are.
pub const CHARTS_DIR: &str = "charts";

/// Rewrite every view of the run in `dir`.
pub fn write_all(dir: &Path, rows: &[ExperimentRow]) -> Result<(), store::StoreError> {
    write_atomic(&dir.join(TSV_FILE), report::render::tsv(rows).as_bytes())?;
    let run = report::load(dir).map_err(|e| store::StoreError::Corrupt {
        path: dir.to_path_buf(),
        why: crate::term::error_text(&e),
    })?;
    let summary = RunSummary::of(&run);
    let json = report::render::json(&run, &summary).unwrap_or_default();
    write_atomic(&dir.join(JSON_FILE), json.as_bytes())?;
    write_pages(dir, &run, &summary)?;
    if let Some(best) = recommended(rows) {
        let header = format!(
            "# {}; deploy with: forge recipe command {}\n",
            standing(best),
            std::path::absolute(dir.join(BEST_RECIPE_FILE))
                .unwrap_or_else(|_| dir.join(BEST_RECIPE_FILE))
                .display()
        );
        write_atomic(
            &dir.join(BEST_RECIPE_FILE),
            format!("{header}{}", best.recipe.to_yaml()).as_bytes(),
        )?;
    }
    Ok(())
}

/// `report.html` (self-contained), and `report.md` with the same charts as
/// `charts/NAME.svg` beside it: refreshed after every row, so a night run can be watched.
fn write_pages(
    dir: &Path,
    run: &report::LoadedRun,
    s: &RunSummary,
) -> Result<(), store::StoreError> {
    let charts = report::charts::charts(run, s);
    let page = report::html::page_with(run, s, &charts);
    write_atomic(&dir.join(HTML_FILE), page.as_bytes())?;
    let mut md = report::render::markdown(run, s);
    if !charts.is_empty() {
        std::fs::create_dir_all(dir.join(CHARTS_DIR)).map_err(|e| store::StoreError::Io {
            path: dir.join(CHARTS_DIR),
            source: e,
        })?;
        md.push_str("\n## Charts\n\n");
    }
    for (stem, svg) in &charts {
        let file = format!("{CHARTS_DIR}/{stem}.svg");
        write_atomic(&dir.join(&file), svg.as_bytes())?;
        md.push_str(&format!("![{stem}]({file})\n\n"));
    }
    write_atomic(&dir.join(MD_FILE), md.as_bytes())
}

/// What the recommended recipe's row says about it, in a line.
fn standing(r: &ExperimentRow) -> String {
    match (r.status, r.interval) {
        (Status::Confirmation, Some(iv)) => format!(
            "recommended recipe: {:+.1} % [{:+.1}, {:+.1}] over the baseline, measured side by side",
            iv.gain_pct, iv.lo_pct, iv.hi_pct
        ),
        (Status::Baseline, _) => {
            "recommended recipe: the engine's defaults (nothing beat them side by side)".into()
        }
        _ => format!(
            "best recipe so far, not yet confirmed against the baseline (chained score {:.4})",
            r.score.unwrap_or(1.0)
        ),
    }
}
