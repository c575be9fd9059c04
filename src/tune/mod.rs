//! The tuning loop: propose → validate → launch → bench → score → keep or revert → record.

pub mod accuracy;
pub mod command;
pub mod row;
pub mod score;
pub mod settings;
pub mod state;
pub mod verdict;
