//! `forge bench`: every flag checked and the workload loaded and validated before any
//! request (even `/v1/models`) goes out — a bad line fails the run with
//! `FILE:LINE: field: why` and the server sees nothing — then the replay, the summary on
//! stdout and the result JSON.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use super::runtime;
use crate::bench::settings::Settings;
use crate::bench::{LoadSpec, output, runner};
use crate::cli::BenchArgs;
use crate::workload;

/// `forge bench`: validate, replay, print the summary, write the JSON.
pub fn main(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let max_failed_pct = args.max_failed_pct;
    anyhow::ensure!(
        (0.0..=100.0).contains(&max_failed_pct),
        "--max-failed-pct: must be in 0..100, got {max_failed_pct}"
    );
    let settings = resolve(args)?;
    runner::raise_fd_limit();
    let result = runtime(None)?.block_on(runner::run(&settings))?;
    print!("{}", output::summary(&result));
    output::warnings(&result);
    if let Some(path) = &settings.output {
        output::write_json_atomic(path, &result)?;
    }
    // 128 + SIGINT, as a shell reports an interrupted command.
    if result.interrupted {
        return Ok(ExitCode::from(130));
    }
    Ok(
        match verdict(result.completed, result.failed, max_failed_pct) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, why)) => {
                eprintln!("error: {why}");
                ExitCode::from(code)
            }
        },
    )
}

/// `forge bench`'s exit status when no request completed.
pub const EXIT_NONE_COMPLETED: u8 = 3;
/// `forge bench`'s exit status when more requests failed than `--max-failed-pct` allows.
pub const EXIT_TOO_MANY_FAILED: u8 = 4;

/// Whether a replay with `completed` and `failed` requests passes: an exit status and why
/// when it does not.
fn verdict(completed: usize, failed: usize, max_pct: f64) -> Result<(), (u8, String)> {
    let total = completed + failed;
    if completed == 0 {
        return Err((
            EXIT_NONE_COMPLETED,
            format!("no request completed ({failed} failed): nothing was measured"),
        ));
    }
    let pct = 100.0 * failed as f64 / total as f64;
    if pct > max_pct {
        return Err((
            EXIT_TOO_MANY_FAILED,
            format!(
                "{failed} of {total} requests failed ({pct:.1} %), more than --max-failed-pct {max_pct}"
            ),
        ));
    }
    Ok(())
}

/// Validate the arguments and load the workload.
pub fn resolve(args: BenchArgs) -> anyhow::Result<Settings> {
    // The server root is wanted; `.../v1` (as OpenAI SDKs take it) would double the
    // prefix into `/v1/v1/completions`.
    let url = args.base_url.trim().trim_end_matches('/');
    let url = url.strip_suffix("/v1").unwrap_or(url);
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        bail!("--base-url: `{url}` must start with http:// or https://");
    }
    positive("--time-scale", args.time_scale)?;
    positive("--request-timeout", args.request_timeout)?;
    if let Some(m) = &args.model
        && m.trim().is_empty()
    {
        bail!("--model: must not be empty");
    }
    let workload = workload::load(&args.workload)?;
    let mut load = LoadSpec::resolve(&args.load, &workload, args.seed)?;
    load.time_scale = args.time_scale;
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
        // Where no progress bar shows (a log, a pipe), a line a minute says how far it is.
        heartbeat: (args.no_progress || !std::io::stderr().is_terminal())
            .then(|| Duration::from_secs(60)),
    })
}

fn positive(flag: &str, v: f64) -> anyhow::Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        bail!("{flag}: must be a positive number, got {v}")
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn failure_threshold_decides_the_exit_status() {
        assert!(super::verdict(100, 0, 1.0).is_ok());
        assert!(super::verdict(99, 1, 1.0).is_ok(), "1 % is allowed at 1 %");
        let (code, why) = super::verdict(98, 2, 1.0).unwrap_err();
        assert_eq!(code, super::EXIT_TOO_MANY_FAILED);
        assert_eq!(
            why,
            "2 of 100 requests failed (2.0 %), more than --max-failed-pct 1"
        );
        assert!(super::verdict(98, 2, 5.0).is_ok());
        assert_eq!(
            super::verdict(0, 4, 100.0).unwrap_err().0,
            super::EXIT_NONE_COMPLETED
        );
        assert_eq!(super::verdict(1, 99, 100.0), Ok(()));
    }

    use super::*;
    use crate::bench::{LoadArgs, Timing};
    use crate::cli::{Cli, Command};

    fn resolve_with(workload: &str, extra: &[&str]) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("w.jsonl");
        std::fs::write(&path, workload)?;
        let mut argv = vec!["forge", "bench", "--base-url", "http://h:1/v1/", "-w"];
        let p = path.to_string_lossy().to_string();
        argv.push(&p);
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Bench(args) => resolve(args),
            _ => anyhow::bail!("not bench"),
        }
    }

    const TRACE: &str = r#"{"prompt":"a","expected_output_tokens":1,"arrival_offset_s":0.5}"#;
    const PLAIN: &str = r#"{"prompt":"a","expected_output_tokens":1}"#;

    #[test]
    fn nothing_typed_is_the_load_args_default() {
        match Cli::try_parse_from(["forge", "bench", "--base-url", "http://h", "-w", "w"])
            .unwrap()
            .command
        {
            Command::Bench(args) => assert_eq!(args.load, LoadArgs::default()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn timing_defaults_to_trace_only_when_offsets_and_no_rate() {
        let s = resolve_with(TRACE, &[]).unwrap();
        assert_eq!(s.load.timing, Timing::Trace);
        assert_eq!(s.base_url, "http://h:1");
        let s = resolve_with(TRACE, &["--request-rate", "5"]).unwrap();
        assert_eq!(
            (s.load.timing, s.load.request_rate),
            (Timing::Rate, Some(5.0))
        );
        let s = resolve_with(PLAIN, &[]).unwrap();
        assert_eq!((s.load.timing, s.load.request_rate), (Timing::Rate, None));
        let e = resolve_with(PLAIN, &["--timing", "trace", "--request-rate", "2"]).unwrap_err();
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
            assert!(resolve_with(PLAIN, &[flag, v]).is_err(), "{flag} {v}");
        }
        let s = resolve_with(PLAIN, &["--time-scale", "0.5", "--request-timeout", "10"]).unwrap();
        assert_eq!(s.wall_timeout(), Duration::from_secs(5));
        assert_eq!(s.load.time_scale, 0.5);
        assert!(s.load.pin_output);
        assert!(
            !resolve_with(PLAIN, &["--no-ignore-eos"])
                .unwrap()
                .load
                .pin_output
        );
    }
}
