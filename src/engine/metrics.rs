//! Reading the engine's Prometheus `/metrics` while a benchmark runs: peak gauges (running,
//! waiting, KV-cache usage) sampled during the run, and counter deltas (preemptions, prefix
//! cache queries and hits) across it. These are the symptoms the playbook's rules use.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// What the server itself reported about one benchmark run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerFacts {
    /// Preemptions during the run.
    pub preemptions: f64,
    /// Prompt tokens looked up in the prefix cache during the run.
    pub prefix_queries: f64,
    /// Of which hits.
    pub prefix_hits: f64,
    /// Most requests running at once (sampled).
    pub peak_running: f64,
    /// Most requests waiting at once (sampled).
    pub peak_waiting: f64,
    /// Highest KV-cache usage, 0..1 (sampled).
    pub peak_kv_usage: f64,
    /// False when the server exposed no metrics at all.
    pub available: bool,
}

impl ServerFacts {
    /// Prefix-cache hit rate over the run (0 when nothing was queried).
    pub fn prefix_hit_rate(&self) -> f64 {
        if self.prefix_queries > 0.0 {
            self.prefix_hits / self.prefix_queries
        } else {
            0.0
        }
    }
}

/// Sum of every sample of each metric name in Prometheus text format (labels folded).
pub fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let rest = match line[name_end..].rfind('}') {
            Some(i) if line[name_end..].starts_with('{') => &line[name_end + i + 1..],
            _ => &line[name_end..],
        };
        if let Some(v) = rest
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
        {
            *out.entry(name.to_string()).or_default() += v;
        }
    }
    out
}

/// First present of several spellings (vLLM renamed some metrics across versions).
fn pick(m: &BTreeMap<String, f64>, names: &[&str]) -> Option<f64> {
    names.iter().find_map(|n| m.get(*n).copied())
}

const RUNNING: &[&str] = &[
    "vllm:num_requests_running",
    "llamacpp:requests_processing",
    "sglang:num_running_reqs",
    "trtllm_num_requests_running",
];
const WAITING: &[&str] = &[
    "vllm:num_requests_waiting",
    "llamacpp:requests_deferred",
    "sglang:num_queue_reqs",
    "trtllm_num_requests_waiting",
];
/// llama.cpp's server exports no KV-usage gauge (its `llamacpp:kv_cache_usage_ratio` is
/// gone; `tests/fixtures/llamacpp/metrics.txt` is what current builds export).
const KV_USAGE: &[&str] = &[
    "vllm:kv_cache_usage_perc",
    "vllm:gpu_cache_usage_perc",
    "sglang:token_usage",
    "trtllm_kv_cache_utilization",
];
/// SGLang's retractions (a request sent back to the queue when decode runs out of KV) are
/// its preemptions.
const PREEMPT: &[&str] = &[
    "vllm:num_preemptions_total",
    "vllm:num_preemptions",
    "sglang:num_retracted_requests_total",
];
const PQ: &[&str] = &[
    "vllm:prefix_cache_queries_total",
    "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_queries_total",
    "sglang:prompt_tokens_total",
    "trtllm_prompt_tokens_total",
];
const PH: &[&str] = &[
    "vllm:prefix_cache_hits_total",
    "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_hits_total",
    "sglang:cached_tokens_total",
    "trtllm_prompt_cached_tokens_total",
];

async fn fetch(client: &reqwest::Client, url: &str) -> Option<BTreeMap<String, f64>> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    Some(parse(&r.text().await.ok()?))
}

/// Sample the metrics at `url` (the engine's `/metrics`) every `period` until `stop`
/// flips, then compute the facts.
pub async fn watch_run(
    client: reqwest::Client,
    url: String,
    period: Duration,
    mut stop: watch::Receiver<bool>,
) -> ServerFacts {
    let first = fetch(&client, &url).await;
    let mut facts = ServerFacts {
        available: first.is_some(),
        ..Default::default()
    };
    let mut last = first.clone();
    loop {
        if let Some(m) = &last {
            facts.peak_running = facts.peak_running.max(pick(m, RUNNING).unwrap_or(0.0));
            facts.peak_waiting = facts.peak_waiting.max(pick(m, WAITING).unwrap_or(0.0));
            facts.peak_kv_usage = facts.peak_kv_usage.max(pick(m, KV_USAGE).unwrap_or(0.0));
        }
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => {}
        }
        if let Some(m) = fetch(&client, &url).await {
            facts.available = true;
            last = Some(m);
        }
    }
    if let (Some(a), Some(b)) = (first.as_ref(), last.as_ref()) {
        let delta = |names: &[&str]| {
            (pick(b, names).unwrap_or(0.0) - pick(a, names).unwrap_or(0.0)).max(0.0)
        };
        facts.preemptions = delta(PREEMPT);
        facts.prefix_queries = delta(PQ);
        facts.prefix_hits = delta(PH);
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP vllm:num_requests_running Number of requests running.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.42
vllm:num_preemptions_total{engine="0",model_name="m"} 3.0
vllm:prefix_cache_queries_total{engine="0",model_name="m"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="m"} 250.0
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 4.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 6.0
vllm:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"} 10
"#;

    #[test]
    fn parses_and_folds_labels() {
        let m = parse(TEXT);
        assert_eq!(m["vllm:num_requests_running"], 7.0);
        assert_eq!(m["vllm:request_success_total"], 10.0);
        assert_eq!(m["vllm:e2e_request_latency_seconds_bucket"], 10.0);
        assert_eq!(pick(&m, PQ), Some(1000.0));
        assert_eq!(pick(&m, &["nope"]), None);
    }

    #[test]
    fn llama_cpp_names_are_what_llama_server_exports() {
        let m = parse(include_str!("../../tests/fixtures/llamacpp/metrics.txt"));
        for names in [RUNNING, WAITING] {
            assert!(
                names
                    .iter()
                    .any(|n| n.starts_with("llamacpp:") && m.contains_key(*n)),
                "{names:?}"
            );
        }
        assert!(m.keys().all(|k| !k.contains("kv_cache")), "{m:?}");
    }

    #[tokio::test]
    async fn watches_a_server() {
        use axum::{Router, routing::get};
        let app = Router::new().route("/metrics", get(|| async { TEXT }));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        let (tx, rx) = watch::channel(false);
        let h = tokio::spawn(watch_run(
            reqwest::Client::new(),
            format!("{url}/metrics"),
            Duration::from_millis(10),
            rx,
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        let f = h.await.unwrap();
        assert!(f.available);
        assert_eq!(f.peak_running, 7.0);
        assert_eq!(f.peak_kv_usage, 0.42);
        // Counters did not move during the run.
        assert_eq!(f.preemptions, 0.0);
        assert_eq!(f.prefix_hit_rate(), 0.0);
    }
}
