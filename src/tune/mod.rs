//! The tuning loop: propose → validate → launch → bench → score → keep or revert → record.

pub mod accuracy;
pub mod command;
pub mod context;
pub mod decide;
pub mod measure;
pub mod progress;
pub mod row;
pub mod run;
pub mod score;
pub mod settings;
pub mod state;
pub mod verdict;
pub mod views;
