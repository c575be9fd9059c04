//! forge: tunes LLM serving deployments. Propose a config, boot the engine, replay the
//! workload, score, keep or revert, repeat — with an audit trail that survives the night.
//!
//! The binary is a thin shell over [`run`]; each command lives in its own module.
#![deny(missing_docs)]

pub mod bench;
pub mod cli;
pub mod engine;
pub mod hardware;
pub mod logging;
pub mod sim;
pub mod tokenize;
pub mod workload;

use std::process::ExitCode;

use cli::{Cli, Command, SimCommand};

/// Run one command line. Returns the process exit code; `Err` is reported by `main` and
/// exits 1.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench(args) => bench::runner::main(args),
        Command::Sim(SimCommand::Serve(args)) => sim::cli::serve_main(args),
        Command::Sim(SimCommand::Predict(args)) => sim::cli::predict_main(args),
        Command::Sim(SimCommand::Worker) => sim::faults::worker_main(),
    }
}
