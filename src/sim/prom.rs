//! `GET /metrics`: vLLM's Prometheus metrics, rendered as `prometheus_client`'s text
//! exposition renders them, with times in simulated seconds.
//!
//! Names, help strings and buckets are vLLM V1's (`vllm/v1/metrics/loggers.py`); labels
//! are `model_name` and `engine="0"` (`finished_reason` on `vllm:request_success`),
//! printed sorted as `prometheus_client` does; counters are exposed as `NAME_total` plus
//! a `NAME_created` gauge; numbers use `prometheus_client`'s `floatToGoString`.

use std::fmt::Write;

use crate::engine::vllm::flags::py_repr_float;
use crate::sim::interface::SimStats;

/// `vllm:time_to_first_token_seconds` buckets.
pub const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// `vllm:inter_token_latency_seconds` buckets.
pub const ITL_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// `vllm:e2e_request_latency_seconds` buckets.
pub const E2E_BUCKETS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];
/// `vllm:iteration_tokens_total` buckets.
pub const ITERATION_BUCKETS: &[f64] = &[
    1.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// A Prometheus histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram with these upper bounds (`+Inf` is implied).
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: vec![0; bounds.len()],
            sum: 0.0,
            count: 0,
        }
    }

    /// Record one observation.
    pub fn observe(&mut self, v: f64) {
        if let Some(i) = self.bounds.iter().position(|b| v <= *b) {
            self.counts[i] += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Each bucket's upper bound with its own (not cumulative) count.
    pub fn buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.bounds.iter().copied().zip(self.counts.iter().copied())
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }
}

/// How requests ended, for `vllm:request_success_total{finished_reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// EOS / stop.
    Stop,
    /// `max_tokens`.
    Length,
    /// Client went away.
    Abort,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// Engine counters and gauges (last snapshot).
    pub stats: SimStats,
    /// Finished requests: stop, length, abort.
    pub finished: [u64; 3],
    /// Time to first token, simulated s.
    pub ttft: Histogram,
    /// Inter-token latency, simulated s.
    pub itl: Histogram,
    /// End-to-end latency, simulated s.
    pub e2e: Histogram,
    /// Tokens per engine step.
    pub iteration_tokens: Histogram,
    /// Unix time the metrics were created (the `_created` series).
    pub created: f64,
}

impl Metrics {
    /// Fresh metrics created now.
    pub fn new() -> Metrics {
        let created = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
        Metrics {
            stats: SimStats::default(),
            finished: [0; 3],
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
            iteration_tokens: Histogram::new(ITERATION_BUCKETS),
            created,
        }
    }

    /// Count a finished request.
    pub fn finish(&mut self, how: Finished) {
        self.finished[how as usize] += 1;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `prometheus_client`'s `floatToGoString`.
pub fn go_float(d: f64) -> String {
    if d.is_nan() {
        return "NaN".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let s = py_repr_float(d);
    let dot = s.find('.');
    match dot {
        Some(dot) if d > 0.0 && dot > 6 => {
            let digits = format!("{}{}", &s[1..dot], &s[dot + 1..]);
            let mantissa = format!("{}.{digits}", &s[..1]);
            let mantissa = mantissa.trim_end_matches(['0', '.']);
            format!("{mantissa}e+0{}", dot - 1)
        }
        _ => s,
    }
}

/// Prometheus label value escaping.
fn escape(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('\n', r"\n")
        .replace('"', "\\\"")
}

struct Out {
    text: String,
    model: String,
}

impl Out {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    /// A sample line with `engine`, extra labels and `model_name`, sorted by name.
    fn sample(&mut self, name: &str, extra: &[(&str, String)], v: f64) {
        let mut labels: Vec<(&str, String)> = vec![("engine", "0".into())];
        labels.extend(extra.iter().cloned());
        labels.push(("model_name", escape(&self.model)));
        labels.sort_by(|a, b| a.0.cmp(b.0));
        let body: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
        let _ = writeln!(self.text, "{name}{{{}}} {}", body.join(","), go_float(v));
    }

    fn gauge(&mut self, name: &str, help: &str, v: f64) {
        self.head(name, "gauge", help);
        self.sample(name, &[], v);
    }

    fn created(&mut self, name: &str, help: &str, rows: &[Vec<(&str, String)>], t: f64) {
        let created = format!("{name}_created");
        self.head(&created, "gauge", help);
        for labels in rows {
            self.sample(&created, labels, t);
        }
    }

    fn counter(&mut self, name: &str, help: &str, v: f64, t: f64) {
        let total = format!("{name}_total");
        self.head(&total, "counter", help);
        self.sample(&total, &[], v);
        self.created(name, help, &[vec![]], t);
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram, t: f64) {
        self.head(name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (bound, n) in h.bounds.iter().zip(&h.counts) {
            cumulative += n;
            self.sample(&bucket, &[("le", go_float(*bound))], cumulative as f64);
        }
        self.sample(&bucket, &[("le", "+Inf".into())], h.count as f64);
        self.sample(&format!("{name}_count"), &[], h.count as f64);
        self.sample(&format!("{name}_sum"), &[], h.sum);
        self.created(name, help, &[vec![]], t);
    }
}

/// The exposition text for `model_name`.
pub fn render(m: &Metrics, model_name: &str) -> String {
    let mut o = Out {
        text: String::new(),
        model: model_name.to_string(),
    };
    let s = &m.stats;
    let gauges = [
        (
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            s.running as f64,
        ),
        (
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            s.waiting as f64,
        ),
        (
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            s.kv_usage,
        ),
    ];
    for (name, help, v) in gauges {
        o.gauge(name, help, v);
    }
    let counters = [
        (
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            s.prefix_cache_queries,
        ),
        (
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            s.prefix_cache_hits,
        ),
        (
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            s.preemptions,
        ),
        (
            "vllm:prompt_tokens",
            "Number of prefill tokens processed.",
            s.prompt_tokens,
        ),
        (
            "vllm:generation_tokens",
            "Number of generation tokens processed.",
            s.generation_tokens,
        ),
    ];
    for (name, help, v) in counters {
        o.counter(name, help, v as f64, m.created);
    }
    request_success(&mut o, m);
    let histograms = [
        (
            "vllm:iteration_tokens_total",
            "Histogram of number of tokens per engine_step.",
            &m.iteration_tokens,
        ),
        (
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &m.ttft,
        ),
        (
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &m.itl,
        ),
        (
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
            &m.e2e,
        ),
    ];
    for (name, help, h) in histograms {
        o.histogram(name, help, h, m.created);
    }
    o.text
}

fn request_success(o: &mut Out, m: &Metrics) {
    let help = "Count of successfully processed requests.";
    o.head("vllm:request_success_total", "counter", help);
    let reasons = ["stop", "length", "abort"];
    let rows: Vec<Vec<(&str, String)>> = reasons
        .iter()
        .map(|r| vec![("finished_reason", r.to_string())])
        .collect();
    for (row, n) in rows.iter().zip(m.finished) {
        o.sample("vllm:request_success_total", row, n as f64);
    }
    o.created("vllm:request_success", help, &rows, m.created);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_floats_match_prometheus_client() {
        assert_eq!(go_float(0.0), "0.0");
        assert_eq!(go_float(3.0), "3.0");
        assert_eq!(go_float(0.001), "0.001");
        assert_eq!(go_float(16384.0), "16384.0");
        assert_eq!(go_float(1234567.0), "1.234567e+06");
        assert_eq!(go_float(1700000000.25), "1.70000000025e+09");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut m = Metrics::new();
        m.ttft.observe(0.003);
        m.ttft.observe(0.05);
        m.ttft.observe(5000.0);
        m.stats.running = 2;
        m.finish(Finished::Length);
        let text = render(&m, "my \"model\"");
        let l = "model_name=\"my \\\"model\\\"\"";
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"0.001\",{l}}} 0.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"0.005\",{l}}} 1.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"2560.0\",{l}}} 2.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_bucket{{engine=\"0\",le=\"+Inf\",{l}}} 3.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:time_to_first_token_seconds_count{{engine=\"0\",{l}}} 3.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:num_requests_running{{engine=\"0\",{l}}} 2.0\n"
        )));
        assert!(text.contains(&format!(
            "vllm:request_success_total{{engine=\"0\",finished_reason=\"length\",{l}}} 1.0\n"
        )));
        assert!(text.contains("# TYPE vllm:prompt_tokens_total counter\n"));
        assert!(text.contains("# TYPE vllm:prompt_tokens_created gauge\n"));
        assert!(text.contains(&format!(
            "vllm:iteration_tokens_total_bucket{{engine=\"0\",le=\"16384.0\",{l}}} 0.0\n"
        )));
    }
}
