//! One file per subcommand: each turns what was typed ([`crate::cli`]) into validated
//! settings and calls the module that does the work. The only place a tokio runtime is
//! built.

pub mod bench;
pub mod campaign;
pub mod compare;
pub mod doctor;
pub mod loopback;
pub mod playbook;
pub mod profile;
pub mod recipe;
pub mod report;
pub mod sim;
pub mod trace;
pub mod tune;
pub mod workload;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, SimCommand};

/// Run one command line. Returns the process exit code; `Err` is reported by `main` and
/// exits 1.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Bench(args) => bench::main(args),
        Command::Sim(SimCommand::Serve(args)) => sim::serve_main(args),
        Command::Sim(SimCommand::Predict(args)) => sim::predict_main(args),
        Command::Sim(SimCommand::Worker) => crate::sim::faults::worker_main(),
        Command::Tune(args) => tune::main(*args),
        Command::Compare(args) => compare::main(*args),
        Command::Gap(args) => compare::gap_main(args),
        Command::Trace(cmd) => trace::main(cmd),
        Command::Profile(args) => profile::main(args),
        Command::Campaign(args) => campaign::main(*args),
        Command::Report(args) => report::main(args),
        Command::Playbook(cmd) => playbook::main(cmd),
        Command::Recipe(cmd) => recipe::main(cmd),
        Command::Workload(cmd) => workload::main(cmd),
        Command::LoopbackServer(args) => loopback::main(args),
        Command::Doctor(args) => doctor::main(args),
    }
}

/// The multi-threaded runtime a command runs on: tokio's default worker count, or
/// `workers` (the simulator's server takes 2, leaving the machine's other cores to what
/// is being measured).
pub fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        b.worker_threads(n);
    }
    b.enable_all()
        .build()
        .context("cannot start the async runtime")
}
