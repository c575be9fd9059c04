//! Candidate patches to a serving engine's source (stub).

pub mod diff;
pub mod git;
pub mod safety;
