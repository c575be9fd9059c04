//! The twins' Prometheus text: SGLang's `sglang:` metrics at `/metrics` (with
//! `--enable-metrics`; labels `model_name`, `engine_type`, `tp_rank`, `pp_rank`, from
//! `metrics/collector.py`) and TensorRT-LLM's `trtllm_` metrics at `/prometheus/metrics`
//! (labels `model_name`, `engine_type`), drawn from the same engine counters as vLLM's.

use std::fmt::Write;

use crate::recipe::EngineKind;
use crate::sim::prom::{Histogram, Metrics, go_float};

struct Names {
    running: &'static str,
    waiting: &'static str,
    kv_usage: &'static str,
    prompt: &'static str,
    generation: &'static str,
    cached: &'static str,
    preempted: &'static str,
    finished: &'static str,
    ttft: &'static str,
    itl: &'static str,
    e2e: &'static str,
}

const SGLANG: Names = Names {
    running: "sglang:num_running_reqs",
    waiting: "sglang:num_queue_reqs",
    kv_usage: "sglang:token_usage",
    prompt: "sglang:prompt_tokens_total",
    generation: "sglang:generation_tokens_total",
    cached: "sglang:cached_tokens_total",
    preempted: "sglang:num_retracted_requests_total",
    finished: "sglang:num_requests_total",
    ttft: "sglang:time_to_first_token_seconds",
    itl: "sglang:inter_token_latency_seconds",
    e2e: "sglang:e2e_request_latency_seconds",
};

const TRTLLM: Names = Names {
    running: "trtllm_num_requests_running",
    waiting: "trtllm_num_requests_waiting",
    kv_usage: "trtllm_kv_cache_utilization",
    prompt: "trtllm_prompt_tokens_total",
    generation: "trtllm_generation_tokens_total",
    cached: "trtllm_prompt_cached_tokens_total",
    preempted: "trtllm_num_paused_requests",
    finished: "trtllm_request_success_total",
    ttft: "trtllm_time_to_first_token_seconds",
    itl: "trtllm_time_per_output_token_seconds",
    e2e: "trtllm_e2e_request_latency_seconds",
};

/// The exposition text `framework`'s server would answer for `model`.
pub fn render(framework: EngineKind, m: &Metrics, model: &str) -> String {
    let (n, labels) = match framework {
        EngineKind::Trtllm => (
            &TRTLLM,
            format!("engine_type=\"undefined\",model_name=\"{model}\""),
        ),
        _ => (
            &SGLANG,
            format!("engine_type=\"unified\",model_name=\"{model}\",pp_rank=\"0\",tp_rank=\"0\""),
        ),
    };
    let s = &m.stats;
    let finished: u64 = m.finished.iter().sum();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, v: f64| {
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name}{{{labels}}} {}", go_float(v));
    };
    metric(n.running, "gauge", s.running as f64);
    metric(n.waiting, "gauge", s.waiting as f64);
    metric(n.kv_usage, "gauge", s.kv_usage);
    metric(n.prompt, "counter", s.prompt_tokens as f64);
    metric(n.generation, "counter", s.generation_tokens as f64);
    metric(n.cached, "counter", s.prefix_cache_hits as f64);
    metric(n.preempted, "counter", s.preemptions as f64);
    metric(n.finished, "counter", finished as f64);
    if framework == EngineKind::Sglang {
        let rate = if s.prefix_cache_queries > 0 {
            s.prefix_cache_hits as f64 / s.prefix_cache_queries as f64
        } else {
            0.0
        };
        metric("sglang:cache_hit_rate", "gauge", rate);
    }
    for (name, h) in [(n.ttft, &m.ttft), (n.itl, &m.itl), (n.e2e, &m.e2e)] {
        histogram(&mut out, name, &labels, h);
    }
    out
}

fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    let _ = writeln!(out, "# TYPE {name} histogram");
    let mut cumulative = 0;
    for (bound, c) in h.buckets() {
        cumulative += c;
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels},le=\"{}\"}} {cumulative}",
            go_float(bound)
        );
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count());
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", go_float(h.sum()));
}
