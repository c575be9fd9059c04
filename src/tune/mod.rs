//! The tuning loop: propose → validate → launch → bench → score → keep or revert → record.
//!
//! [`tuner`] is the loop; [`measure`] the seam it measures through (a spawned engine, or the
//! simulator in process); [`decide`] and [`verdict`] the paired keep/revert decision;
//! [`score`] and [`accuracy`] what a run is worth; [`state`] what the journal says so far;
//! [`context`] and [`surrogate`] what the agent is shown; [`launch`] starts and resumes a
//! run; [`quantize`] layer 2's requantized models on llama.cpp; [`source`] the builds of
//! layer 3 from source (`--source`, `--patches`); [`views`]
//! and [`progress`] what a person sees.

pub mod accuracy;
pub mod assemble;
pub mod calibrate;
pub mod context;
pub mod decide;
pub mod frontier;
pub mod judge;
pub mod launch;
pub mod measure;
pub mod progress;
pub mod quantize;
pub mod score;
pub mod source;
pub mod state;
pub mod surrogate;
pub mod tuner;
pub mod verdict;
pub mod views;
