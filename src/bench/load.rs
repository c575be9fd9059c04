//! How load is offered: the flags every command that replays a workload shares
//! ([`LoadArgs`], flattened into `forge bench`, `forge sim predict` and `forge tune`), and the
//! one resolver that turns them into a [`LoadSpec`] against a workload, so the three commands
//! accept, default and refuse the same flags identically.

use clap::Args;
use serde::{Deserialize, Serialize};

use crate::workload::{MAX_ARRIVAL_OFFSET_S, Workload};

/// Which OpenAI-compatible API the requests use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    /// `POST /v1/completions` with `prompt`.
    #[default]
    Completions,
    /// `POST /v1/chat/completions` with `messages`.
    Chat,
}

impl Endpoint {
    /// The request path.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Completions => "/v1/completions",
            Endpoint::Chat => "/v1/chat/completions",
        }
    }
}

/// How arrival times are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// Use each request's `arrival_offset_s` (missing offsets count as 0).
    Trace,
    /// Gamma-distributed gaps at `--request-rate` with `--burstiness` (1 = Poisson).
    Rate,
}

/// Service-level objectives for goodput: a request is "good" when it meets every bound set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    /// Bound on time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Bound on time per output token, ms.
    pub tpot_ms: Option<f64>,
    /// Bound on end-to-end latency, ms.
    pub e2el_ms: Option<f64>,
}

impl Slo {
    /// True when no bound is set.
    pub fn is_empty(&self) -> bool {
        self.ttft_ms.is_none() && self.tpot_ms.is_none() && self.e2el_ms.is_none()
    }
}

/// How the load is offered: everything about a replay except the target server.
/// Shared by `forge bench`, `forge sim predict` and the tuner, so all three schedule
/// and score a workload identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    /// API flavour.
    pub endpoint: Endpoint,
    /// Cap on in-flight requests (`None` = unlimited).
    pub concurrency: Option<usize>,
    /// Requests per second for rate timing (`None` = infinity: all due at t=0).
    pub request_rate: Option<f64>,
    /// Gamma shape for rate timing (1.0 = Poisson).
    pub burstiness: f64,
    /// Trace offsets or generated arrivals.
    pub timing: Timing,
    /// Requests sent (and discarded) before the measured phase. They are synthesized with
    /// fresh text of the workload's typical length, so they warm the server without putting
    /// any measured prompt into its prefix cache.
    pub num_warmups: usize,
    /// Goodput bounds.
    pub slo: Slo,
    /// Pin output length with `ignore_eos` + `min_tokens` = `max_tokens`.
    pub pin_output: bool,
    /// Seed for generated arrivals.
    pub seed: u64,
    /// Extra percentiles to report (vLLM's `--metric-percentiles`), e.g. `[90, 95, 99]`.
    pub percentiles: Vec<f64>,
    /// Wall seconds per server second, for a simulator running on a scaled clock: the
    /// schedule is compressed by this factor and measured durations are divided by it.
    pub time_scale: f64,
}

impl Default for LoadSpec {
    fn default() -> Self {
        LoadSpec {
            endpoint: Endpoint::Completions,
            concurrency: None,
            request_rate: None,
            burstiness: 1.0,
            timing: Timing::Rate,
            num_warmups: 0,
            slo: Slo::default(),
            pin_output: true,
            seed: 0,
            percentiles: vec![90.0, 95.0, 99.0],
            time_scale: 1.0,
        }
    }
}

/// The load flags as typed. Shared by every command that replays a workload; resolved by
/// [`LoadSpec::resolve`].
#[derive(Debug, Clone, PartialEq, Args)]
pub struct LoadArgs {
    /// API to call.
    #[arg(long, value_enum, default_value_t = Endpoint::Completions)]
    pub endpoint: Endpoint,
    /// Cap on requests in flight (default: no cap). Requests due while the cap is reached
    /// wait client-side; that wait is recorded as schedule delay.
    #[arg(long, short = 'c', alias = "max-concurrency", value_parser = crate::bounds::count(1, MAX_CONCURRENCY as u64))]
    pub concurrency: Option<usize>,
    /// Requests per second for rate timing, or `inf` to send all at once (the default when
    /// rate timing is used without a rate).
    #[arg(long)]
    pub request_rate: Option<String>,
    /// Gamma shape of inter-arrival gaps: 1 = Poisson, < 1 burstier, > 1 smoother.
    #[arg(long, default_value_t = 1.0, value_parser = crate::bounds::burstiness())]
    pub burstiness: f64,
    /// `trace` replays `arrival_offset_s`; `rate` generates arrivals. Default: trace when
    /// the workload has offsets and no --request-rate is given, else rate.
    #[arg(long, value_enum)]
    pub timing: Option<Timing>,
    /// Warm-up requests (fresh synthetic text, not measured; default 0).
    #[arg(long, value_parser = crate::bounds::count(0, MAX_WARMUPS as u64))]
    pub num_warmups: Option<usize>,
    /// Goodput bounds, e.g. `ttft_ms=500,tpot_ms=50,e2el_ms=20000`.
    #[arg(long)]
    pub slo: Option<String>,
    /// Percentiles to report, e.g. `90,95,99`.
    #[arg(long, default_value = "90,95,99")]
    pub metric_percentiles: String,
    /// Do not pin output length with ignore_eos/min_tokens.
    #[arg(long)]
    pub no_ignore_eos: bool,
}

impl Default for LoadArgs {
    /// Nothing typed: the flags' own defaults.
    fn default() -> Self {
        LoadArgs {
            endpoint: Endpoint::Completions,
            concurrency: None,
            request_rate: None,
            burstiness: 1.0,
            timing: None,
            num_warmups: None,
            slo: None,
            metric_percentiles: "90,95,99".into(),
            no_ignore_eos: false,
        }
    }
}

/// Most requests in flight one client holds (each is a task and a socket).
pub const MAX_CONCURRENCY: usize = 100_000;
/// Most warm-up requests (each one is generated text held in memory).
pub const MAX_WARMUPS: usize = 100_000;
/// Burstiness range: a Gamma shape outside it makes gaps of 0 or of years.
pub const MIN_BURSTINESS: f64 = 0.001;
/// See [`MIN_BURSTINESS`].
pub const MAX_BURSTINESS: f64 = 1000.0;

/// A load flag whose value cannot be used (the flag, and why).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LoadError(pub String);

impl LoadSpec {
    /// The load `args` describe for `workload`, with `seed` for generated arrivals and
    /// warm-up text. Timing defaults to `trace` when the workload carries arrival offsets and
    /// no rate was given, else `rate`; a rate with trace timing is refused (the offsets would
    /// silently win).
    pub fn resolve(args: &LoadArgs, workload: &Workload, seed: u64) -> Result<LoadSpec, LoadError> {
        let request_rate = match &args.request_rate {
            Some(r) => parse_rate(r).map_err(LoadError)?,
            None => None,
        };
        let timing = match args.timing {
            Some(t) => t,
            None if args.request_rate.is_none() && workload.has_arrival_offsets() => Timing::Trace,
            None => Timing::Rate,
        };
        if timing == Timing::Trace && args.request_rate.is_some() {
            return Err(LoadError(
                "--request-rate: not used with --timing trace (offsets come from the workload)"
                    .into(),
            ));
        }
        if !(args.burstiness.is_finite()
            && (MIN_BURSTINESS..=MAX_BURSTINESS).contains(&args.burstiness))
        {
            return Err(LoadError(format!(
                "--burstiness: must be a number in {MIN_BURSTINESS}..={MAX_BURSTINESS}, got {}",
                args.burstiness
            )));
        }
        if let Some(rate) = request_rate {
            let span = workload.requests.len() as f64 / rate;
            if span > MAX_ARRIVAL_OFFSET_S {
                return Err(LoadError(format!(
                    "--request-rate: {} requests at {rate:e} req/s would take {span:e} s, past the limit of {MAX_ARRIVAL_OFFSET_S} s (7 days)",
                    workload.requests.len()
                )));
            }
        }
        match args.concurrency {
            Some(0) => return Err(LoadError("--concurrency: must be at least 1".into())),
            Some(c) if c > MAX_CONCURRENCY => {
                return Err(LoadError(format!(
                    "--concurrency: {c} is above the limit of {MAX_CONCURRENCY} requests in flight"
                )));
            }
            _ => {}
        }
        if let Some(n) = args.num_warmups
            && n > MAX_WARMUPS
        {
            return Err(LoadError(format!(
                "--num-warmups: {n} is above the limit of {MAX_WARMUPS}"
            )));
        }
        let slo = match &args.slo {
            Some(s) => parse_slo(s).map_err(LoadError)?,
            None => Slo::default(),
        };
        Ok(LoadSpec {
            endpoint: args.endpoint,
            concurrency: args.concurrency,
            request_rate,
            burstiness: args.burstiness,
            timing,
            num_warmups: args.num_warmups.unwrap_or(0),
            slo,
            pin_output: !args.no_ignore_eos,
            seed,
            percentiles: parse_percentiles(&args.metric_percentiles).map_err(LoadError)?,
            time_scale: 1.0,
        })
    }
}

/// Parse `--slo ttft_ms=500,tpot_ms=50,e2el_ms=20000` (any subset, any order).
pub fn parse_slo(text: &str) -> Result<Slo, String> {
    let mut slo = Slo::default();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("--slo: `{part}` is not key=value"))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("--slo: {key}: `{value}` is not a number"))?;
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("--slo: {key}: must be a positive number of ms"));
        }
        match key.trim() {
            "ttft_ms" => slo.ttft_ms = Some(v),
            "tpot_ms" => slo.tpot_ms = Some(v),
            "e2el_ms" => slo.e2el_ms = Some(v),
            other => {
                return Err(format!(
                    "--slo: unknown key `{other}` (ttft_ms, tpot_ms, e2el_ms)"
                ));
            }
        }
    }
    if slo.is_empty() {
        return Err("--slo: give at least one of ttft_ms, tpot_ms, e2el_ms".into());
    }
    Ok(slo)
}

/// Parse `--request-rate`: a positive number, or `inf` (returned as `None`).
pub fn parse_rate(text: &str) -> Result<Option<f64>, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("inf") || t.eq_ignore_ascii_case("infinity") {
        return Ok(None);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
        Ok(v) if v.is_infinite() && v > 0.0 => Ok(None),
        _ => Err(format!(
            "--request-rate: `{text}` is not a positive number or `inf`"
        )),
    }
}

/// Parse `--metric-percentiles 90,95,99`.
pub fn parse_percentiles(text: &str) -> Result<Vec<f64>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
            _ => Err(format!(
                "--metric-percentiles: `{p}` is not a number in 0..=100"
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slo_rate_and_percentile_parsing() {
        let s = parse_slo("ttft_ms=500, e2el_ms=2e4").unwrap();
        assert_eq!(s.ttft_ms, Some(500.0));
        assert_eq!(s.tpot_ms, None);
        assert_eq!(s.e2el_ms, Some(20000.0));
        assert!(
            parse_slo("ttft=5")
                .unwrap_err()
                .contains("unknown key `ttft`")
        );
        assert!(parse_slo("ttft_ms").unwrap_err().contains("not key=value"));
        assert!(parse_slo("tpot_ms=-1").is_err());
        assert!(parse_slo("").is_err());
        assert_eq!(parse_rate("inf"), Ok(None));
        assert_eq!(parse_rate("2.5"), Ok(Some(2.5)));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(parse_percentiles("50, 99.9").unwrap(), vec![50.0, 99.9]);
        assert!(parse_percentiles("101").is_err());
    }

    fn workload(offsets: bool) -> Workload {
        let line = if offsets {
            r#"{"prompt":"hi","expected_output_tokens":4,"arrival_offset_s":0.5}"#
        } else {
            r#"{"prompt":"hi","expected_output_tokens":4}"#
        };
        crate::workload::parse(std::path::Path::new("w.jsonl"), line).unwrap()
    }

    fn args(rate: Option<&str>, timing: Option<Timing>) -> LoadArgs {
        LoadArgs {
            request_rate: rate.map(str::to_string),
            timing,
            ..LoadArgs::default()
        }
    }

    #[test]
    fn timing_defaults_to_trace_only_when_offsets_and_no_rate() {
        let l = LoadSpec::resolve(&args(None, None), &workload(true), 0).unwrap();
        assert_eq!((l.timing, l.request_rate), (Timing::Trace, None));
        let l = LoadSpec::resolve(&args(Some("5"), None), &workload(true), 0).unwrap();
        assert_eq!((l.timing, l.request_rate), (Timing::Rate, Some(5.0)));
        let l = LoadSpec::resolve(&args(None, None), &workload(false), 0).unwrap();
        assert_eq!((l.timing, l.request_rate), (Timing::Rate, None));
        let e = LoadSpec::resolve(&args(Some("2"), Some(Timing::Trace)), &workload(false), 0)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--request-rate: not used with --timing trace (offsets come from the workload)"
        );
    }

    #[test]
    fn bad_values_name_their_flag() {
        let w = workload(false);
        let bad = [
            LoadArgs {
                concurrency: Some(0),
                ..args(None, None)
            },
            LoadArgs {
                burstiness: 0.0,
                ..args(None, None)
            },
            LoadArgs {
                burstiness: f64::NAN,
                ..args(None, None)
            },
            LoadArgs {
                slo: Some("ttft=1".into()),
                ..args(None, None)
            },
            LoadArgs {
                metric_percentiles: "120".into(),
                ..args(None, None)
            },
            args(Some("fast"), None),
        ];
        for (a, flag) in bad.iter().zip([
            "--concurrency",
            "--burstiness",
            "--burstiness",
            "--slo",
            "--metric-percentiles",
            "--request-rate",
        ]) {
            let e = LoadSpec::resolve(a, &w, 0).unwrap_err();
            assert!(e.to_string().starts_with(flag), "{e}");
        }
        let l = LoadSpec::resolve(
            &LoadArgs {
                no_ignore_eos: true,
                num_warmups: Some(3),
                ..args(None, None)
            },
            &w,
            7,
        )
        .unwrap();
        assert!(!l.pin_output);
        assert_eq!((l.num_warmups, l.seed), (3, 7));
    }
}
