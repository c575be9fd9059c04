//! The tuning loop: propose → validate → launch → bench → score → keep or revert → record.

pub mod command;
pub mod settings;
pub mod verdict;
