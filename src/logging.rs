//! Diagnostic logging on stderr (tracing). Data goes to stdout; logs never do.

use tracing_subscriber::EnvFilter;

/// Install the stderr subscriber. `RUST_LOG` wins over `--verbose`.
pub fn init(verbose: bool) {
    let default = if verbose { "forge=debug" } else { "forge=warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(colour())
        .try_init();
}

/// Colour only on a terminal, and never with `NO_COLOR` set (a log file or a CI capture
/// must not fill with escape codes).
fn colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
