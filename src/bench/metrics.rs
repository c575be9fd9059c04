//! Aggregation: per-request records → the run's metrics, with the definitions and JSON keys
//! of `vllm bench serve` (so numbers compare 1:1) plus forge's additions: token-correct
//! ITL, latency measured from the intended send time, failures by kind, schedule accuracy.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{FailureKind, RequestRecord};
use super::{LoadSpec, Slo, Timing};
use crate::stats::percentile;

/// Mean, median, population standard deviation and chosen percentiles of one metric, ms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// Population standard deviation (numpy's `std`).
    pub std: f64,
    /// Requested percentiles, keyed by their label (`"99"`, `"99.9"`).
    pub percentiles: BTreeMap<String, f64>,
}

/// Summarise samples given in seconds into milliseconds. All zeros for an empty sample
/// (as vLLM reports).
pub fn summarize_ms(samples_s: &[f64], percentiles: &[f64]) -> Summary {
    let mut v: Vec<f64> = samples_s
        .iter()
        .filter(|x| x.is_finite())
        .map(|x| x * 1000.0)
        .collect();
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    let mean = if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / n
    };
    let std = if v.is_empty() {
        0.0
    } else {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
    };
    let percentiles = percentiles
        .iter()
        .map(|&p| (percentile_label(p), percentile(&v, p).unwrap_or(0.0)))
        .collect();
    Summary {
        mean,
        median: percentile(&v, 50.0).unwrap_or(0.0),
        std,
        percentiles,
    }
}

/// `99.0` → `"99"`, `99.9` → `"99.9"` (vLLM's key spelling).
pub fn percentile_label(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as i64)
    } else {
        format!("{p}")
    }
}

/// Requested vs achieved arrival rate and how late the client sent requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleStats {
    /// Requested rate (req/s); `None` for infinite rate or trace timing.
    pub requested_rate: Option<f64>,
    /// Rate implied by the intended schedule (requests ÷ span of intended times).
    pub intended_rate: Option<f64>,
    /// Rate at which requests were actually dispatched.
    pub achieved_rate: Option<f64>,
    /// Dispatch − intended, ms (client queueing under the concurrency cap plus lateness).
    pub delay_ms: Summary,
    /// False when the client fell behind its own schedule by more than it should
    /// (p99 delay over 10 ms or achieved below 95 % of intended) without a concurrency cap
    /// to explain it.
    pub client_kept_up: bool,
    /// Percent of inter-token gaps in which a token arrived in the same network read as
    /// the one before (a gap of exactly zero): tokens coalesced on the wire, or a client
    /// that could not read as fast as the server wrote. Above
    /// [`TOKENS_TOGETHER_WARN_PCT`], ITL, TPOT and TTFT are not to be trusted.
    #[serde(default)]
    pub tokens_read_together_pct: f64,
}

/// Share of tokens read together with the one before (percent) above which the client's
/// token timing is reported as unreliable.
pub const TOKENS_TOGETHER_WARN_PCT: f64 = 10.0;

impl ScheduleStats {
    /// Whether the client read tokens as they came, so token timings can be trusted.
    pub fn token_timing_ok(&self) -> bool {
        self.tokens_read_together_pct <= TOKENS_TOGETHER_WARN_PCT
    }
}

/// The result of one replay. Keys match `vllm bench serve`'s result JSON; `pXX_*` keys are
/// flattened from the percentile maps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// When the run finished (ISO 8601 UTC).
    pub date: String,
    /// Who measured: `forge-bench` or `forge-sim-predict`.
    pub backend: String,
    /// Served model name.
    pub model_id: String,
    /// Base URL measured (empty for predictions).
    pub base_url: String,
    /// `completions` or `chat`.
    pub endpoint: String,
    /// Measured requests.
    pub num_prompts: usize,
    /// Requested rate, `"inf"` for infinity, `"trace"` for trace timing.
    pub request_rate: serde_json::Value,
    /// Gamma shape.
    pub burstiness: f64,
    /// Concurrency cap (`null` = none).
    pub max_concurrency: Option<usize>,
    /// First dispatch → last finish, s.
    pub duration: f64,
    /// Successful requests.
    pub completed: usize,
    /// Failed requests.
    pub failed: usize,
    /// Σ prompt tokens of completed requests.
    pub total_input_tokens: u64,
    /// Σ output tokens of completed requests.
    pub total_output_tokens: u64,
    /// completed / duration.
    pub request_throughput: f64,
    /// Requests meeting every SLO per second (`null` without `--slo`).
    pub request_goodput: Option<f64>,
    /// Σ output tokens / duration.
    pub output_throughput: f64,
    /// (Σ input + Σ output) / duration.
    pub total_token_throughput: f64,
    /// Most requests in flight at once.
    pub max_concurrent_requests: usize,
    /// Mean TTFT, ms.
    pub mean_ttft_ms: f64,
    /// Median TTFT, ms.
    pub median_ttft_ms: f64,
    /// Std of TTFT, ms.
    pub std_ttft_ms: f64,
    /// Mean TPOT, ms.
    pub mean_tpot_ms: f64,
    /// Median TPOT, ms.
    pub median_tpot_ms: f64,
    /// Std of TPOT, ms.
    pub std_tpot_ms: f64,
    /// Mean ITL (one sample per chunk), ms.
    pub mean_itl_ms: f64,
    /// Median ITL, ms.
    pub median_itl_ms: f64,
    /// Std of ITL, ms.
    pub std_itl_ms: f64,
    /// Mean E2EL, ms.
    pub mean_e2el_ms: f64,
    /// Median E2EL, ms.
    pub median_e2el_ms: f64,
    /// Std of E2EL, ms.
    pub std_e2el_ms: f64,
    /// Per-request detail (`--save-detailed`): input/output lengths, TTFTs, ITLs, texts,
    /// errors, in vLLM's list-per-field layout, flattened into the top level as vLLM
    /// writes them (`ttfts`, `itls`, ...). Declared before `percentile_keys` so that, when
    /// reading a result back, these lists are taken before that catch-all map.
    #[serde(flatten, default)]
    pub detailed: Option<Detailed>,
    /// `p99_ttft_ms`, `p90_tpot_ms`, ... for every requested percentile and metric.
    #[serde(flatten)]
    pub percentile_keys: BTreeMap<String, f64>,
    /// Token-correct ITL (gap ÷ tokens in the chunk), ms.
    pub itl_per_token: Summary,
    /// TTFT measured from the intended send time (includes client queueing), ms.
    pub ttft_from_schedule: Summary,
    /// E2EL measured from the intended send time, ms.
    pub e2el_from_schedule: Summary,
    /// Failures by kind (every kind present, zero when none).
    pub failures: BTreeMap<String, usize>,
    /// First few failure messages, for diagnosis.
    pub failure_examples: Vec<String>,
    /// Schedule accuracy.
    pub schedule: ScheduleStats,
    /// Requests whose output length had to be estimated (no usage from the server).
    pub estimated_output_tokens: usize,
    /// The run was stopped (Ctrl-C) before every request finished: only the requests that
    /// completed are in this result.
    #[serde(default)]
    pub interrupted: bool,
    /// The SLO used for goodput.
    pub slo: Slo,
}

/// vLLM's `--save-detailed` per-request lists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Detailed {
    /// Prompt tokens per request.
    pub input_lens: Vec<u64>,
    /// Output tokens per request.
    pub output_lens: Vec<u64>,
    /// TTFT per request, s (0 when failed).
    pub ttfts: Vec<f64>,
    /// ITL samples per request, s.
    pub itls: Vec<Vec<f64>>,
    /// E2EL per request, s (0 when failed), vLLM's `latencies`.
    pub latencies: Vec<f64>,
    /// Generated text per request.
    pub generated_texts: Vec<String>,
    /// Error per request (empty string when none).
    pub errors: Vec<String>,
    /// Intended send offset per request, s.
    pub intended_s: Vec<f64>,
    /// Actual send offset per request, s.
    pub dispatched_s: Vec<f64>,
}

/// What the aggregation needs to know about the run besides the records.
#[derive(Debug, Clone)]
pub struct RunInfo<'a> {
    /// `forge-bench` or `forge-sim-predict`.
    pub backend: &'a str,
    /// Served model name.
    pub model_id: &'a str,
    /// Base URL (empty for predictions).
    pub base_url: &'a str,
    /// The load description.
    pub load: &'a LoadSpec,
    /// Most requests in flight at once, as observed.
    pub max_concurrent_requests: usize,
    /// Keep per-request lists.
    pub save_detailed: bool,
}

/// Aggregate records into a result. Durations in records are already in server seconds.
pub fn aggregate(records: &[RequestRecord], info: &RunInfo<'_>) -> BenchResult {
    let ok: Vec<&RequestRecord> = records.iter().filter(|r| r.ok()).collect();
    let duration = run_duration(records);
    let pcts = &info.load.percentiles;
    let total_in: u64 = ok.iter().map(|r| r.prompt_tokens).sum();
    let total_out: u64 = ok.iter().map(|r| r.output_tokens).sum();
    let per_s = |x: f64| if duration > 0.0 { x / duration } else { 0.0 };

    let ttft: Vec<f64> = ok.iter().filter_map(|r| r.ttft_s).collect();
    let tpot: Vec<f64> = ok.iter().filter_map(|r| r.tpot_s()).collect();
    let itl: Vec<f64> = ok.iter().flat_map(|r| r.itl_s.iter().copied()).collect();
    let e2el: Vec<f64> = ok.iter().filter_map(|r| r.e2el_s).collect();
    let metrics = [
        ("ttft", summarize_ms(&ttft, pcts)),
        ("tpot", summarize_ms(&tpot, pcts)),
        ("itl", summarize_ms(&itl, pcts)),
        ("e2el", summarize_ms(&e2el, pcts)),
    ];
    let mut percentile_keys = BTreeMap::new();
    for (name, s) in &metrics {
        for (label, v) in &s.percentiles {
            percentile_keys.insert(format!("p{label}_{name}_ms"), *v);
        }
    }
    let [ttft_s, tpot_s, itl_s, e2el_s] = metrics.map(|(_, s)| s);

    let good = if info.load.slo.is_empty() {
        None
    } else {
        Some(per_s(
            ok.iter().filter(|r| meets_slo(r, &info.load.slo)).count() as f64,
        ))
    };

    BenchResult {
        date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        backend: info.backend.to_string(),
        model_id: info.model_id.to_string(),
        base_url: info.base_url.to_string(),
        endpoint: match info.load.endpoint {
            super::Endpoint::Completions => "completions".into(),
            super::Endpoint::Chat => "chat".into(),
        },
        num_prompts: records.len(),
        request_rate: rate_value(info.load),
        burstiness: info.load.burstiness,
        max_concurrency: info.load.concurrency,
        duration,
        completed: ok.len(),
        failed: records.len() - ok.len(),
        total_input_tokens: total_in,
        total_output_tokens: total_out,
        request_throughput: per_s(ok.len() as f64),
        request_goodput: good,
        output_throughput: per_s(total_out as f64),
        total_token_throughput: per_s((total_in + total_out) as f64),
        max_concurrent_requests: info.max_concurrent_requests,
        mean_ttft_ms: ttft_s.mean,
        median_ttft_ms: ttft_s.median,
        std_ttft_ms: ttft_s.std,
        mean_tpot_ms: tpot_s.mean,
        median_tpot_ms: tpot_s.median,
        std_tpot_ms: tpot_s.std,
        mean_itl_ms: itl_s.mean,
        median_itl_ms: itl_s.median,
        std_itl_ms: itl_s.std,
        mean_e2el_ms: e2el_s.mean,
        median_e2el_ms: e2el_s.median,
        std_e2el_ms: e2el_s.std,
        percentile_keys,
        itl_per_token: summarize_ms(&token_itl(&ok), pcts),
        ttft_from_schedule: summarize_ms(&from_schedule(&ok, |r| r.ttft_s), pcts),
        e2el_from_schedule: summarize_ms(&from_schedule(&ok, |r| r.e2el_s), pcts),
        failures: failure_counts(records),
        failure_examples: records
            .iter()
            .filter_map(|r| r.failure.as_ref())
            .take(5)
            .map(|f| format!("{}: {}", f.kind.as_str(), f.message))
            .collect(),
        schedule: schedule_stats(records, info.load),
        estimated_output_tokens: ok.iter().filter(|r| r.output_tokens_estimated).count(),
        interrupted: false,
        slo: info.load.slo,
        detailed: info.save_detailed.then(|| detailed(records)),
    }
}

/// First dispatch → last finish (finish = dispatch + e2el, or dispatch for failures that
/// carry no timing), in seconds.
pub fn run_duration(records: &[RequestRecord]) -> f64 {
    let start = records
        .iter()
        .map(|r| r.dispatched_s)
        .fold(f64::INFINITY, f64::min);
    let end = records
        .iter()
        .map(|r| r.dispatched_s + r.e2el_s.unwrap_or(0.0))
        .fold(f64::NEG_INFINITY, f64::max);
    if start.is_finite() && end.is_finite() {
        (end - start).max(0.0)
    } else {
        0.0
    }
}

/// True when a completed request meets every bound of the SLO (DistServe goodput).
pub fn meets_slo(r: &RequestRecord, slo: &Slo) -> bool {
    let within = |bound: Option<f64>, value: Option<f64>| match bound {
        None => true,
        Some(b) => value.is_some_and(|v| v * 1000.0 <= b),
    };
    // A one-token answer has no TPOT; it meets a TPOT bound trivially.
    let tpot_ok = slo.tpot_ms.is_none() || r.output_tokens <= 1 || within(slo.tpot_ms, r.tpot_s());
    r.ok() && within(slo.ttft_ms, r.ttft_s) && tpot_ok && within(slo.e2el_ms, r.e2el_s)
}

fn rate_value(load: &LoadSpec) -> serde_json::Value {
    match (load.timing, load.request_rate) {
        (Timing::Trace, _) => "trace".into(),
        (Timing::Rate, None) => "inf".into(),
        (Timing::Rate, Some(r)) => serde_json::json!(r),
    }
}

fn token_itl(ok: &[&RequestRecord]) -> Vec<f64> {
    let mut out = Vec::new();
    for r in ok {
        for (gap, &n) in r.itl_s.iter().zip(&r.itl_tokens) {
            let n = n.max(1);
            out.extend(std::iter::repeat_n(gap / f64::from(n), n as usize));
        }
    }
    out
}

fn from_schedule(ok: &[&RequestRecord], f: impl Fn(&RequestRecord) -> Option<f64>) -> Vec<f64> {
    ok.iter()
        .filter_map(|r| f(r).map(|x| x + r.queue_delay_s()))
        .collect()
}

fn failure_counts(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut m: BTreeMap<String, usize> = FailureKind::ALL
        .iter()
        .map(|k| (k.as_str().to_string(), 0))
        .collect();
    for f in records.iter().filter_map(|r| r.failure.as_ref()) {
        *m.entry(f.kind.as_str().to_string()).or_default() += 1;
    }
    m
}

fn span_rate(times: &mut [f64]) -> Option<f64> {
    times.sort_by(f64::total_cmp);
    let span = times.last()? - times.first()?;
    (times.len() > 1 && span > 0.0).then(|| (times.len() - 1) as f64 / span)
}

fn schedule_stats(records: &[RequestRecord], load: &LoadSpec) -> ScheduleStats {
    let mut intended: Vec<f64> = records.iter().map(|r| r.intended_s).collect();
    let mut sent: Vec<f64> = records.iter().map(|r| r.dispatched_s).collect();
    let delays: Vec<f64> = records.iter().map(|r| r.queue_delay_s()).collect();
    let intended_rate = span_rate(&mut intended);
    let achieved_rate = span_rate(&mut sent);
    let delay_ms = summarize_ms(&delays, &[99.0]);
    let p99 = delay_ms.percentiles.get("99").copied().unwrap_or(0.0);
    let rate_ok = match (intended_rate, achieved_rate) {
        (Some(i), Some(a)) => a >= 0.95 * i,
        _ => true,
    };
    ScheduleStats {
        requested_rate: match load.timing {
            Timing::Rate => load.request_rate,
            Timing::Trace => None,
        },
        intended_rate,
        achieved_rate,
        client_kept_up: load.concurrency.is_some() || (p99 <= 10.0 && rate_ok),
        delay_ms,
        tokens_read_together_pct: together_pct(records),
    }
}

/// Percent of the successful requests' inter-token gaps that are exactly zero.
fn together_pct(records: &[RequestRecord]) -> f64 {
    let gaps = records
        .iter()
        .filter(|r| r.failure.is_none())
        .flat_map(|r| r.itl_s.iter());
    let (zero, all) = gaps.fold((0usize, 0usize), |(z, n), &g| {
        (z + usize::from(g == 0.0), n + 1)
    });
    if all == 0 {
        0.0
    } else {
        100.0 * zero as f64 / all as f64
    }
}

fn detailed(records: &[RequestRecord]) -> Detailed {
    Detailed {
        input_lens: records.iter().map(|r| r.prompt_tokens).collect(),
        output_lens: records.iter().map(|r| r.output_tokens).collect(),
        ttfts: records.iter().map(|r| r.ttft_s.unwrap_or(0.0)).collect(),
        itls: records.iter().map(|r| r.itl_s.clone()).collect(),
        latencies: records.iter().map(|r| r.e2el_s.unwrap_or(0.0)).collect(),
        generated_texts: records.iter().map(|r| r.generated_text.clone()).collect(),
        errors: records
            .iter()
            .map(|r| {
                r.failure
                    .as_ref()
                    .map(|f| f.message.clone())
                    .unwrap_or_default()
            })
            .collect(),
        intended_s: records.iter().map(|r| r.intended_s).collect(),
        dispatched_s: records.iter().map(|r| r.dispatched_s).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::record::Failure;

    #[test]
    fn summary_uses_population_std() {
        // np.std([2,4,4,4,5,5,7,9]) == 2.0
        let s = summarize_ms(
            &[0.002, 0.004, 0.004, 0.004, 0.005, 0.005, 0.007, 0.009],
            &[90.0],
        );
        assert!((s.mean - 5.0).abs() < 1e-9);
        assert!((s.std - 2.0).abs() < 1e-9);
        assert!((s.median - 4.5).abs() < 1e-9);
        // rank 0.9*7 = 6.3 -> 7 + 0.3*(9-7) = 7.6
        assert!((s.percentiles["90"] - 7.6).abs() < 1e-9);
        assert_eq!(percentile_label(99.9), "99.9");
    }

    fn rec(dispatch: f64, ttft: f64, e2el: f64, out: u64) -> RequestRecord {
        RequestRecord {
            intended_s: dispatch,
            dispatched_s: dispatch,
            prompt_tokens: 10,
            output_tokens: out,
            ttft_s: Some(ttft),
            e2el_s: Some(e2el),
            ..Default::default()
        }
    }

    #[test]
    fn tpot_throughput_and_goodput() {
        // TPOT = (1.0 - 0.1) / 9 = 0.1 s
        let a = rec(0.0, 0.1, 1.0, 10);
        assert!((a.tpot_s().unwrap() - 0.1).abs() < 1e-12);
        // One token: no TPOT.
        assert_eq!(rec(0.0, 0.1, 0.1, 1).tpot_s(), None);
        let b = rec(1.0, 0.5, 1.0, 10); // finishes at 2.0
        let mut c = rec(0.5, 0.0, 0.0, 0);
        c.failure = Some(Failure {
            kind: FailureKind::Timeout,
            message: "t".into(),
        });
        c.e2el_s = None;
        let load = LoadSpec {
            slo: Slo {
                ttft_ms: Some(200.0),
                ..Default::default()
            },
            ..Default::default()
        };
        let info = RunInfo {
            backend: "t",
            model_id: "m",
            base_url: "",
            load: &load,
            max_concurrent_requests: 2,
            save_detailed: false,
        };
        let r = aggregate(&[a, b, c], &info);
        assert_eq!(r.duration, 2.0);
        assert_eq!(r.completed, 2);
        assert_eq!(r.failed, 1);
        assert_eq!(r.failures["timeout"], 1);
        assert_eq!(r.failures["connect"], 0);
        assert_eq!(r.total_output_tokens, 20);
        assert!((r.output_throughput - 10.0).abs() < 1e-12);
        assert!((r.total_token_throughput - 20.0).abs() < 1e-12);
        assert!((r.request_throughput - 1.0).abs() < 1e-12);
        // Only `a` meets TTFT <= 200 ms: goodput 1 request / 2 s.
        assert_eq!(r.request_goodput, Some(0.5));
        assert!((r.median_ttft_ms - 300.0).abs() < 1e-9);
        assert!(r.percentile_keys.contains_key("p99_ttft_ms"));
        assert!(r.percentile_keys.contains_key("p90_e2el_ms"));
    }

    #[test]
    fn token_correct_itl_splits_multi_token_chunks() {
        let mut a = rec(0.0, 0.1, 0.4, 4);
        a.itl_s = vec![0.1, 0.2];
        a.itl_tokens = vec![1, 2];
        let load = LoadSpec::default();
        let info = RunInfo {
            backend: "t",
            model_id: "m",
            base_url: "",
            load: &load,
            max_concurrent_requests: 1,
            save_detailed: true,
        };
        let r = aggregate(&[a], &info);
        // chunk ITL: mean of [100, 200] = 150; token ITL: [100, 100, 100] -> 100
        assert!((r.mean_itl_ms - 150.0).abs() < 1e-9);
        assert!((r.itl_per_token.mean - 100.0).abs() < 1e-9);
        assert_eq!(r.detailed.as_ref().unwrap().itls, vec![vec![0.1, 0.2]]);
        // vLLM's layout: the lists sit at the top level, and read back.
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["itls"], serde_json::json!([[0.1, 0.2]]));
        assert_eq!(v["latencies"], serde_json::json!([0.4]));
        assert!(v.get("detailed").is_none());
        let back: BenchResult = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let plain = BenchResult::default();
        let back: BenchResult =
            serde_json::from_value(serde_json::to_value(&plain).unwrap()).unwrap();
        assert_eq!(back.detailed, None);
    }

    #[test]
    fn queueing_shows_in_from_schedule_latency() {
        let mut a = rec(0.0, 0.1, 1.0, 10);
        a.intended_s = 0.0;
        a.dispatched_s = 0.5;
        let load = LoadSpec {
            concurrency: Some(1),
            ..Default::default()
        };
        let info = RunInfo {
            backend: "t",
            model_id: "m",
            base_url: "",
            load: &load,
            max_concurrent_requests: 1,
            save_detailed: false,
        };
        let r = aggregate(&[a], &info);
        assert!((r.median_ttft_ms - 100.0).abs() < 1e-9);
        assert!((r.ttft_from_schedule.median - 600.0).abs() < 1e-9);
        assert!((r.schedule.delay_ms.median - 500.0).abs() < 1e-9);
    }
}
