//! The `Measure` seam: how the loop gets one measured run of a recipe. Two implementations,
//! in the spirit of hyperfine's executor and its mock: [`spawned::Spawned`] boots the engine
//! in its own process group and replays the workload over HTTP with `forge bench`'s runner;
//! [`predicted::Predicted`] computes the same run in process with the simulator (`forge sim
//! predict`, with run-to-run noise), so the loop, the benches and the cross-framework gate
//! run the very same decisions in milliseconds, and `Tuner` has unit tests that start no
//! process.

pub mod predicted;
pub mod spawned;

use std::future::Future;

use crate::bench::metrics::BenchResult;
use crate::engine::failure::Failure;
use crate::engine::metrics::ServerFacts;
use crate::recipe::Recipe;

pub use predicted::Predicted;
pub use spawned::Spawned;

/// What one measured run produced.
#[derive(Debug, Clone)]
pub struct SampleOutput {
    /// The benchmark result.
    pub result: BenchResult,
    /// What the server reported about itself during the run.
    pub facts: ServerFacts,
    /// Generated text per request (for accuracy).
    pub answers: Vec<String>,
    /// The engine log of the server that was measured (relative to the run directory).
    pub log: String,
}

/// Makes what a recipe runs before it boots: a patched build of the engine
/// ([`crate::tune::source`]), a requantized model ([`crate::tune::quantize`]). Blocking
/// (builds take minutes); a failure is the recipe's (`build_failed`), never the run's.
pub trait Prepare: Send + Sync {
    /// Make `recipe`'s files if it needs any that do not exist yet.
    fn prepare(&self, recipe: &Recipe) -> Result<(), Failure>;
}

/// One measured run of a recipe, however it is obtained. A failure of the system under test
/// is a classified [`Failure`], never an error that stops the run.
pub trait Measure: Send {
    /// Measure `recipe` once. `tag` names the run (`e0003-c1`): its log, its noise.
    fn sample(
        &mut self,
        recipe: &Recipe,
        tag: &str,
    ) -> impl Future<Output = Result<SampleOutput, Failure>> + Send;

    /// Things that happened on the machine since the last call, for the next journal row.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }

    /// Stop whatever is running (the end of a run).
    fn shutdown(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}
