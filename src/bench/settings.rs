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
        // The server root is wanted; `.../v1` (as OpenAI SDKs take it) would double the
        // prefix into `/v1/v1/completions`.
        let url = args.base_url.trim().trim_end_matches('/');
        let url = url.strip_suffix("/v1").unwrap_or(url);
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn resolve(workload: &str, extra: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.jsonl");
        std::fs::write(&path, workload)?;
        let mut argv = vec!["forge", "bench", "--base-url", "http://h:1/v1/", "-w"];
        let p = path.to_string_lossy().to_string();
        argv.push(&p);
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Bench(args) => Settings::resolve(args),
            _ => anyhow::bail!("not bench"),
        }
    }

    const TRACE: &str = r#"{"prompt":"a","expected_output_tokens":1,"arrival_offset_s":0.5}"#;
    const PLAIN: &str = r#"{"prompt":"a","expected_output_tokens":1}"#;

    #[test]
    fn timing_defaults_to_trace_only_when_offsets_and_no_rate() {
        let s = resolve(TRACE, &[]).unwrap();
        assert_eq!(s.load.timing, Timing::Trace);
        assert_eq!(s.base_url, "http://h:1");
        let s = resolve(TRACE, &["--request-rate", "5"]).unwrap();
        assert_eq!(
            (s.load.timing, s.load.request_rate),
            (Timing::Rate, Some(5.0))
        );
        let s = resolve(PLAIN, &[]).unwrap();
        assert_eq!((s.load.timing, s.load.request_rate), (Timing::Rate, None));
        let e = resolve(PLAIN, &["--timing", "trace", "--request-rate", "2"]).unwrap_err();
        assert!(
            e.to_string().contains("not used with --timing trace"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_are_rejected_before_anything_runs() {
        for (flag, v) in [
            ("--time-scale", "0"),
            ("--request-timeout", "-1"),
            ("--burstiness", "0"),
            ("--concurrency", "0"),
            ("--slo", "ttft=1"),
            ("--metric-percentiles", "120"),
        ] {
            assert!(resolve(PLAIN, &[flag, v]).is_err(), "{flag} {v}");
        }
        let s = resolve(PLAIN, &["--time-scale", "0.5", "--request-timeout", "10"]).unwrap();
        assert_eq!(s.wall_timeout(), Duration::from_secs(5));
        assert!(s.load.pin_output);
        assert!(
            !resolve(PLAIN, &["--no-ignore-eos"])
                .unwrap()
                .load
                .pin_output
        );
    }
}
