//! forge: tunes LLM serving deployments. Propose a config, boot the engine, replay the
//! workload, score, keep or revert, repeat — with an audit trail that survives the night.
//!
//! The binary is a thin shell over [`run`]; each command lives in its own module.
#![deny(missing_docs)]

pub mod agent;
pub mod bench;
pub mod cli;
pub mod doctor;
pub mod engine;
pub mod hardware;
pub mod logging;
pub mod playbook;
pub mod recipe;
pub mod report;
pub mod sim;
pub mod store;
pub mod term;
pub mod tokenize;
pub mod tune;
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
        Command::Tune(args) => tune::command::main(*args),
        Command::Report(args) => report::main(args),
        Command::Playbook(cmd) => playbook::command::main(cmd),
        Command::Recipe(cmd) => recipe::command::main(cmd),
        Command::Workload(cmd) => workload::command::main(cmd),
        Command::LoopbackServer(args) => bench::loopback::main(args),
        Command::Sim(SimCommand::Worker) => sim::faults::worker_main(),
        Command::Doctor(args) => doctor::main(args),
    }
}
