//! `forge bench` arguments → validated settings. Everything the user typed is checked here,
//! and the workload is loaded and validated here, before any request (even `/v1/models`)
//! goes out: a bad line fails the run with `FILE:LINE: field: why` and the server sees
//! nothing.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::{LoadSpec, Timing, parse_percentiles, parse_rate, parse_slo};
use crate::cli::BenchArgs;
use crate::workload::{self, Workload};

/// A validated `forge bench` invocation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Server root, without a trailing slash.
    pub base_url: String,
    /// Model to request; `None` asks the server's `/v1/models`.
    pub model: Option<String>,
    /// The measured requests.
    pub workload: Workload,
    /// How the load is offered.
    pub load: LoadSpec,
    /// Per-request deadline in server seconds.
    pub request_timeout: Duration,
    /// Where to write the result JSON.
    pub output: Option<PathBuf>,
    /// Keep per-request lists in the JSON.
    pub save_detailed: bool,
    /// Draw a progress bar (only on a terminal).
    pub progress: bool,
    /// Open a new connection for every request instead of reusing idle ones: for servers
    /// that close the connection after each streamed response (llama.cpp), where reusing
    /// one races the server's close and fails the request.
    pub fresh_connections: bool,
}

impl Settings {
    /// Validate arguments and load the workload.
    pub fn resolve(args: BenchArgs) -> anyhow::Result<Self> {
        let url = args.base_url.trim().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--base-url: `{url}` must start with http:// or https://");
        }
        positive("--time-scale", args.time_scale)?;
        positive("--request-timeout", args.request_timeout)?;
        positive("--burstiness", args.burstiness)?;
        if args.concurrency == Some(0) {
            bail!("--concurrency: must be at least 1");
        }
        if let Some(m) = &args.model
            && m.trim().is_empty()
        {
            bail!("--model: must not be empty");
        }
        let workload = workload::load(&args.workload)?;
        let load = load_spec(&args, &workload)?;
        Ok(Settings {
            base_url: url.to_string(),
            model: args.model,
            workload,
            load,
            request_timeout: Duration::from_secs_f64(args.request_timeout),
            output: args.output,
            save_detailed: args.save_detailed,
            progress: !args.no_progress,
            fresh_connections: false,
        })
    }

    /// The per-request deadline in wall time (server seconds × time scale).
    pub fn wall_timeout(&self) -> Duration {
        self.request_timeout.mul_f64(self.load.time_scale)
    }
}

fn positive(flag: &str, v: f64) -> anyhow::Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bail!("{flag}: must be a positive number, got {v}")
    }
}

/// The load description: timing defaults to `trace` when the workload carries arrival
/// offsets and no rate was given, else `rate`.
fn load_spec(args: &BenchArgs, workload: &Workload) -> anyhow::Result<LoadSpec> {
    let request_rate = match &args.request_rate {
        Some(r) => parse_rate(r).map_err(anyhow::Error::msg)?,
        None => None,
    };
    let timing = match args.timing {
        Some(t) => t,
        None if args.request_rate.is_none() && workload.has_arrival_offsets() => Timing::Trace,
        None => Timing::Rate,
    };
    if timing == Timing::Trace && args.request_rate.is_some() {
        bail!("--request-rate: not used with --timing trace (offsets come from the workload)");
    }
    let slo = match &args.slo {
        Some(s) => parse_slo(s).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    let percentiles = parse_percentiles(&args.metric_percentiles)
        .map_err(anyhow::Error::msg)
        .context("bad percentiles")?;
    Ok(LoadSpec {
        endpoint: args.endpoint,
        concurrency: args.concurrency,
        request_rate,
        burstiness: args.burstiness,
        timing,
        num_warmups: args.num_warmups,
        slo,
        pin_output: !args.no_ignore_eos,
        seed: args.seed,
        percentiles,
        time_scale: args.time_scale,
    })
}
