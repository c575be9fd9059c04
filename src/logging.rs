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
        .try_init();
}
