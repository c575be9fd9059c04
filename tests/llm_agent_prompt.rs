//! The rendered LLM prompt, snapshot-tested: playbook prose, hardware, workload statistics
//! (never the workload's text), the current recipe, the legal moves after the KV-capacity
//! check, the history with intervals and classified failures, and the simulator's
//! predictions.

mod common;

use common::llm_ctx::{self, Fixture, row, settings};
use forge::agent::llm::{parse, prompt};
use forge::recipe::Layer;
use serde_json::json;

fn fixture() -> Fixture {
    let mut f = Fixture::new(settings("anthropic/claude-sonnet-4-6", None, Some(2.0)));
    let base = json!({"model": llm_ctx::MODEL, "engine": "vllm"});
    f.history = vec![
        row(json!({
            "seq": 0, "exp": 0, "id": f.incumbent.id, "generation": 0, "layer": "config",
            "changes": {}, "rationale": "baseline", "agent": "builtin", "status": "baseline",
            "score": 1.0, "recipe": base, "wall_s": 60.0, "finished_at": "2026-05-13T04:10:00Z",
            "measurement": {"value": 2718.3, "sla_ok": true, "output_throughput": 2718.3,
                "request_throughput": 9.1, "median_ttft_ms": 80.0, "p99_ttft_ms": 240.0,
                "median_tpot_ms": 11.0, "p99_tpot_ms": 19.5, "p99_e2el_ms": 2410.0,
                "failed": 0, "completed": 500}
        })),
        row(json!({
            "seq": 1, "exp": 1, "id": "5e1f0c2a", "parent_id": f.incumbent.id, "generation": 1,
            "layer": "config", "changes": {"max_num_seqs": 512},
            "rationale": "Preemptions: 12 at 1024 sequences; halve the batch.",
            "agent": "anthropic/claude-sonnet-4-6", "status": "reverted", "score": 0.994,
            "interval": {"gain_pct": -0.6, "lo_pct": -2.1, "hi_pct": 0.9, "confidence": 0.95, "pairs": 3},
            "predicted_gain_pct": 4.7, "recipe": base, "wall_s": 300.0, "cost_usd": 0.0125,
            "finished_at": "2026-05-13T04:20:00Z"
        })),
        row(json!({
            "seq": 2, "exp": 2, "id": "77aa0b13", "parent_id": f.incumbent.id, "generation": 1,
            "layer": "config", "changes": {"gpu_memory_utilization": 0.95},
            "rationale": "[fallback: builtin] provider unavailable after 3 attempts: HTTP 503. gpu_memory_utilization: 0.92 → 0.95.",
            "agent": "anthropic/claude-sonnet-4-6", "status": "failed",
            "failure": {"class": "infeasible_oom", "exit_code": 1,
                "summary": "engine exited during startup: CUDA out of memory",
                "hints": ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
                          "Free memory on device (71.2/79.6 GiB) on startup is less than desired GPU memory utilization (0.95, 75.6 GiB)"]},
            "recipe": base, "wall_s": 40.0, "finished_at": "2026-05-13T04:25:00Z"
        })),
    ];
    f.facts = [
        ("preemptions", 12.0),
        ("peak_running", 254.0),
        ("prefix_share", 0.31),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    f
}

#[test]
fn the_config_prompt_reads_as_recorded() {
    let f = fixture();
    let ctx = f.ctx(Layer::Config, 0.0125);
    let text = prompt::render_propose(&ctx, &parse::legal_space(&ctx));
    assert_eq!(
        text,
        prompt::render_propose(&ctx, &parse::legal_space(&ctx))
    );
    assert!(!text.to_lowercase().contains("ignore previous instructions"));
    assert!(
        !text.contains("Acme"),
        "workload text leaked into the prompt"
    );
    insta::assert_snapshot!(text);
}

#[test]
fn the_quant_prompt_lists_only_quant_moves() {
    let f = fixture();
    let ctx = f.ctx(Layer::Quant, 0.0);
    let space = parse::legal_space(&ctx);
    let knobs: Vec<&str> = space.iter().map(|k| k.knob.as_str()).collect();
    assert_eq!(knobs, ["kv_cache_quant", "method"]);
    let kv = &space[0];
    assert_eq!(kv.legal, [json!("fp8")]);
    let text = prompt::render_propose(&ctx, &space);
    assert!(
        text.contains("- kv_cache_quant (now \"auto\"): \"fp8\""),
        "{text}"
    );
    assert!(text.contains("This step tunes layer `quant` (layer 2) only."));
}

#[test]
fn infeasible_values_are_listed_with_the_reason() {
    let f = fixture();
    let ctx = f.ctx(Layer::Config, 0.0);
    let space = parse::legal_space(&ctx);
    let tokens = space
        .iter()
        .find(|k| k.knob == "max_num_batched_tokens")
        .unwrap();
    assert!(!tokens.legal.contains(&json!(32768)));
    assert!(tokens.excluded.iter().any(|(v, why)| *v == json!(32768)
        && why.starts_with("infeasible on this GPU and model: KV cache holds")));
    let predictions = prompt::top_predictions(&ctx);
    assert_eq!(predictions.len(), prompt::MAX_PREDICTIONS);
    // Largest |predicted change| first: the surrogate's optimum is max_num_seqs = 256.
    assert_eq!(predictions[0].0, "max_num_seqs");
}
