//! The run's derived files, regenerated from the journal after every row and written
//! atomically: `experiments.tsv`, `experiments.json`, `best_recipe.yaml`.

use std::path::Path;

use crate::record::{ExperimentRow, Status};
use crate::report::{self, RunSummary};
use crate::store::{self, BEST_RECIPE_FILE, JSON_FILE, TSV_FILE, write_atomic};

/// Rewrite every view of the run in `dir`.
pub fn write_all(dir: &Path, rows: &[ExperimentRow]) -> Result<(), store::StoreError> {
    write_atomic(&dir.join(TSV_FILE), report::render::tsv(rows).as_bytes())?;
    let run = report::load(dir).map_err(|e| store::StoreError::Corrupt {
        path: dir.to_path_buf(),
        why: format!("{e:#}"),
    })?;
    let summary = RunSummary::of(&run);
    let json = report::render::json(&run, &summary).unwrap_or_default();
    write_atomic(&dir.join(JSON_FILE), json.as_bytes())?;
    if let Some(best) = rows
        .iter()
        .rev()
        .find(|r| matches!(r.status, Status::Kept | Status::Baseline))
    {
        let header = format!(
            "# best recipe so far (score {:.4}); deploy with: forge recipe command {}\n",
            best.score.unwrap_or(1.0),
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
