//! The run's derived files, regenerated from the journal after every row and written
//! atomically: `experiments.tsv`, `experiments.json`, `best_recipe.yaml`.

use std::path::Path;

use crate::record::{ExperimentRow, Status, recommended};
use crate::report::{self, RunSummary};
use crate::store::{self, BEST_RECIPE_FILE, JSON_FILE, TSV_FILE, write_atomic};

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
