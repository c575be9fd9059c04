//! The `forge` binary: parse the command line, hand it to the library, map the outcome to an
//! exit code. Everything else lives in the library so tests can drive it.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = forge::cli::Cli::parse();
    forge::logging::init(cli.verbose);
    match forge::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", forge::term::error_text(&err));
            ExitCode::from(1)
        }
    }
}
