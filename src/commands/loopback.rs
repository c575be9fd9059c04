//! `forge loopback-server` (hidden): the zero-latency SSE server `bench/loadgen.sh` and the
//! tests measure `forge bench` against.

use std::process::ExitCode;
use std::time::Duration;

use super::runtime;
use crate::bench::loopback::{self, Script};
use crate::bench::runner::raise_fd_limit;
use crate::cli::LoopbackArgs;

/// `forge loopback-server`: serve until killed. Prints `listening on ADDR` on stdout.
pub fn main(args: LoopbackArgs) -> anyhow::Result<ExitCode> {
    let script = Script {
        port: args.port,
        ttft: ms(args.ttft_ms, "--ttft-ms")?,
        itl: ms(args.itl_ms, "--itl-ms")?,
        model: args.model,
        burst: args.burst,
    };
    raise_fd_limit();
    runtime(None)?.block_on(loopback::run(script))?;
    Ok(ExitCode::SUCCESS)
}

fn ms(v: f64, flag: &str) -> anyhow::Result<Duration> {
    anyhow::ensure!(v.is_finite() && v >= 0.0, "{flag}: must be >= 0, got {v}");
    Duration::try_from_secs_f64(v / 1000.0).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
}
