//! The simulator's predicted frontier of a run, written beside its journal
//! (`frontier.json`, [`crate::record::frontier`]) for the report to draw the measured
//! points over: the baseline's curve when the run starts, the recommended recipe's when
//! the search ends. A view, not a verdict: a failure to write it is said and the run goes
//! on.

use std::path::Path;

use super::surrogate::SimModel;
use crate::hardware::GpuSpec;
use crate::recipe::Recipe;
use crate::record::frontier::{self, Curve, Frontier};

/// The concurrencies each curve is predicted at.
pub const LEVELS: [usize; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Predict `recipe`'s curve and store it in `dir` under `label` (replacing one of that
/// label); nothing when the simulator cannot run it.
pub fn record(dir: &Path, sim: &SimModel, gpu: &GpuSpec, label: &str, recipe: &Recipe) {
    let points = sim.sweep(recipe, &LEVELS);
    if points.is_empty() {
        return;
    }
    let base = frontier::read(dir).unwrap_or_else(|| Frontier {
        gpu: gpu.name.to_string(),
        curves: Vec::new(),
    });
    let f = base.with(Curve {
        label: label.to_string(),
        recipe_id: recipe.id.clone(),
        gpus: recipe.hardware.count.max(1),
        points,
    });
    if let Err(e) = frontier::write(dir, &f) {
        eprintln!(
            "forge: warning: the predicted frontier was not written ({}); the report goes without it",
            crate::term::error_text(&e)
        );
    }
}

/// The baseline's curve, unless the run already has one (a resumed run keeps its own).
pub fn baseline(dir: &Path, sim: &SimModel, gpu: &GpuSpec, recipe: &Recipe) {
    let has = frontier::read(dir).is_some_and(|f| f.curves.iter().any(|c| c.label == "baseline"));
    if !has {
        record(dir, sim, gpu, "baseline", recipe);
    }
}
