//! forge: tunes LLM serving deployments. Propose a config, boot the engine, replay the
//! workload, score, keep or revert, repeat — with an audit trail that survives the night.
//!
//! The binary is a thin shell over [`run`]; each command lives in its own module.
#![deny(missing_docs)]
// No unwrap/expect in the product: a panic ends a night's run. Tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod agent;
pub mod bench;
pub mod bounds;
pub mod build;
pub mod campaign;
pub mod cli;
pub mod commands;
pub mod compare;
pub mod doctor;
pub mod engine;
pub mod hardware;
pub mod hub;
pub mod logging;
pub mod patch;
pub mod playbook;
pub mod profile;
pub mod recipe;
pub mod record;
pub mod report;
pub mod sim;
pub mod stats;
pub mod store;
pub mod term;
pub mod text;
pub mod tokenize;
pub mod trace;
pub mod tune;
pub mod workload;

use std::process::ExitCode;

/// Run one command line. Returns the process exit code; `Err` is reported by `main` and
/// exits 1.
pub fn run(cli: cli::Cli) -> anyhow::Result<ExitCode> {
    commands::run(cli)
}
