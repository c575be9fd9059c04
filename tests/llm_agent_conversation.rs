//! A recorded multi-step conversation (`tests/fixtures/llm/conversation.json`) served in
//! order by the scripted provider drives the agent through all three layers, the way the
//! orchestrator will: every step's proposal comes from the LLM (none falls back), the rate
//! limit and the rejected value are absorbed inside their steps, and the spend adds up to
//! the recorded usage at list prices.

mod common;

use common::llm_ctx::{Fixture, opts, settings};
use common::llm_mock::{Scripted, ScriptedLlm, Shape, load_conversation};
use common::run::fixture;
use forge::agent::select::select_with;
use forge::recipe::Layer;
use forge::recipe::Recipe;
use serde_json::json;

#[tokio::test]
async fn a_recorded_conversation_drives_every_layer() {
    let conv = load_conversation(&fixture("llm/conversation.json"));
    for shape in [Shape::Anthropic, Shape::OpenAi] {
        let mock = ScriptedLlm::start(shape, conv.replies.clone()).await;
        let s = settings(shape.llm(), Some(&mock.base_url()), Some(1.0));
        let var = shape.key_env();
        let env = move |k: &str| (k == var).then(|| "sk-test".to_string());
        let mut agent = select_with(&s, &env, &opts()).unwrap().agent;
        let mut f = Fixture::new(s);
        let mut tried: Vec<String> = Vec::new();
        let mut spent = 0.0;
        let mut moves = Vec::new();
        for layer in [Layer::Config, Layer::Quant, Layer::Kernel] {
            loop {
                let ids = tried.clone();
                let is_tried = move |r: &Recipe| ids.contains(&r.id);
                let p = agent
                    .propose(&f.ctx_with(layer, spent, &is_tried))
                    .await
                    .unwrap();
                assert!(!p.rationale.starts_with("[fallback"), "{}", p.rationale);
                assert_eq!(p.layer, layer);
                spent += p.cost_usd;
                if p.changes.is_empty() {
                    break;
                }
                moves.push(json!(p.changes));
                let cand = f.incumbent.mutate(layer, &p.changes);
                tried.push(cand.id.clone());
                f.incumbent = cand; // pretend every experiment is kept
            }
        }
        assert_eq!(
            moves,
            [
                json!({"max_num_seqs": 256}),
                json!({"max_num_batched_tokens": 16384}),
                json!({"long_prefill_token_threshold": 2048}),
                json!({"gpu_memory_utilization": 0.94}),
                json!({"kv_cache_quant": "fp8"}),
                json!({"attention_backend": "FLASHINFER"}),
            ]
        );
        assert_eq!(
            mock.calls(),
            conv.replies.len(),
            "one request per recorded reply"
        );
        let (pi, po) = match shape {
            Shape::Anthropic => (3.0, 15.0),
            Shape::OpenAi => (2.5, 10.0),
        };
        let want: f64 = conv
            .replies
            .iter()
            .map(|r| match r {
                Scripted::Reply {
                    input_tokens,
                    output_tokens,
                    ..
                } => (*input_tokens as f64 * pi + *output_tokens as f64 * po) / 1e6,
                Scripted::Status { .. } => 0.0,
            })
            .sum();
        assert!(
            (spent - want).abs() < 1e-9,
            "{shape:?}: spent {spent}, want {want}"
        );
    }
}
