//! Whether a TensorRT-LLM recipe may boot: every field on the allowlist, and the rules
//! between fields that `trtllm-serve` would otherwise enforce only after minutes of
//! loading, or not at all while wasting an experiment.
//!
//! - Without chunked prefill a prompt must fit one iteration: `llmapi/llm.py`
//!   (`BaseLLM._check_arguments`, PyTorch branch) rejects each longer one with `The sum of
//!   prompt length (…), query length (…) should not exceed max_num_tokens (…)` — HTTP 400
//!   for every such request, so `max_num_tokens` must cover the workload's longest prompt.
//! - A prompt at or over `max_seq_len` leaves no room to generate
//!   (`executor/base_worker.py::_deduce_max_tokens`: "`default_max_tokens` … must be
//!   greater than 0").
//! - `tp_size` must divide the attention heads (the model's `num_attention_heads`, when its
//!   config is readable) and fit the GPUs of the recipe's hardware.
//! - CUDA-graph sub-knobs mean nothing with `enable_cuda_graph: false`
//!   (`cuda_graph_config: null`), and graphs larger than `max_batch_size` are never used.
//! - `tokens_per_block` is a power of two (the paged-attention kernels' block sizes).

use std::path::Path;

use serde_json::Value;

use super::defaults;
use super::knobs::TRTLLM_KNOBS;
use crate::engine::knobs::check_in;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// What a run's recipes must fit that a recipe does not carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Tokens of the workload's longest prompt, when known.
    pub longest_prompt: Option<u64>,
}

/// Allowlist, then the cross-field rules.
pub fn check(recipe: &Recipe, limits: Limits) -> Result<(), Illegal> {
    for (layer, name, value) in recipe.fields() {
        check_in(EngineKind::Trtllm, TRTLLM_KNOBS, layer, &name, &value)?;
    }
    let e = defaults::effective(recipe, None);
    let int = |k: &str| e.get(k).and_then(Value::as_u64);
    cuda_graph_rules(recipe, int("max_batch_size"))?;
    block_size_rule(recipe)?;
    prompt_rules(&e, limits)?;
    parallel_rules(recipe, int("tp_size").unwrap_or(1))
}

fn set<'a>(recipe: &'a Recipe, k: &str) -> Option<&'a Value> {
    recipe.config.get(k).filter(|v| !v.is_null())
}

fn cuda_graph_rules(recipe: &Recipe, max_batch_size: Option<u64>) -> Result<(), Illegal> {
    let off = set(recipe, "enable_cuda_graph") == Some(&Value::Bool(false));
    for k in ["cuda_graph_max_batch_size", "cuda_graph_padding"] {
        if let (true, Some(v)) = (off, set(recipe, k)) {
            return Err(Illegal::knob(
                k,
                v,
                format!(
                    "{k} has no effect with enable_cuda_graph: false (cuda_graph_config: null)"
                ),
            ));
        }
    }
    let graphs = set(recipe, "cuda_graph_max_batch_size").and_then(Value::as_u64);
    if let (Some(g), Some(m)) = (graphs, max_batch_size)
        && g > m
    {
        return Err(Illegal::knob(
            "cuda_graph_max_batch_size",
            &Value::from(g),
            format!("CUDA graphs up to batch {g} are never used with max_batch_size {m}"),
        ));
    }
    Ok(())
}

fn block_size_rule(recipe: &Recipe) -> Result<(), Illegal> {
    match set(recipe, "tokens_per_block").and_then(Value::as_u64) {
        Some(b) if !b.is_power_of_two() => Err(Illegal::knob(
            "tokens_per_block",
            &Value::from(b),
            "tokens_per_block must be a power of two (8, 16, 32, 64, 128)",
        )),
        _ => Ok(()),
    }
}

fn prompt_rules(
    e: &std::collections::BTreeMap<String, Value>,
    limits: Limits,
) -> Result<(), Illegal> {
    let Some(prompt) = limits.longest_prompt else {
        return Ok(());
    };
    let chunked = e.get("enable_chunked_prefill") == Some(&Value::Bool(true));
    let tokens = e
        .get("max_num_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(defaults::MAX_NUM_TOKENS);
    if !chunked && tokens < prompt {
        return Err(Illegal::knob(
            "max_num_tokens",
            &Value::from(tokens),
            format!(
                "without enable_chunked_prefill every prompt must fit max_num_tokens ({tokens}), but the workload's longest prompt has {prompt} tokens (trtllm-serve rejects each such request)"
            ),
        ));
    }
    match e.get("max_seq_len").and_then(Value::as_u64) {
        Some(len) if len <= prompt => Err(Illegal::knob(
            "max_seq_len",
            &Value::from(len),
            format!(
                "max_seq_len {len} leaves no room to generate after the workload's longest prompt ({prompt} tokens)"
            ),
        )),
        _ => Ok(()),
    }
}

fn parallel_rules(recipe: &Recipe, tp: u64) -> Result<(), Illegal> {
    let tp_value = Value::from(tp);
    let gpus = u64::from(recipe.hardware.count);
    if tp > 1 && gpus > 0 && recipe.hardware.vendor != "cpu" && tp > gpus {
        return Err(Illegal::knob(
            "tp_size",
            &tp_value,
            format!("tp_size {tp} needs {tp} GPUs; the recipe's hardware has {gpus}"),
        ));
    }
    match attention_heads(&recipe.model) {
        Some(h) if h % tp != 0 => Err(Illegal::knob(
            "tp_size",
            &tp_value,
            format!("tp_size {tp} does not divide the model's {h} attention heads"),
        )),
        _ => Ok(()),
    }
}

/// `num_attention_heads` of a local model directory's `config.json` (HF layout).
fn attention_heads(model: &str) -> Option<u64> {
    let text = std::fs::read_to_string(Path::new(model).join("config.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("num_attention_heads")
        .or_else(|| v.pointer("/text_config/num_attention_heads"))
        .and_then(Value::as_u64)
        .filter(|h| *h > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Hardware;

    fn recipe(model: &str, config: serde_json::Value) -> Recipe {
        let config = serde_json::from_value(config).unwrap();
        let hw = Hardware {
            vendor: "nvidia".into(),
            gpu_type: "H100".into(),
            count: 2,
            memory_gb_per_gpu: 80.0,
        };
        Recipe::baseline_with(EngineKind::Trtllm, model, hw, config)
    }

    fn why(r: &Recipe, l: Limits) -> String {
        check(r, l).unwrap_err().why
    }

    #[test]
    fn the_baseline_and_plain_changes_are_legal() {
        assert!(check(&recipe("m", serde_json::json!({})), Limits::default()).is_ok());
        let r = recipe(
            "m",
            serde_json::json!({"max_batch_size": 64, "cuda_graph_max_batch_size": 64, "tokens_per_block": 64}),
        );
        assert!(
            check(
                &r,
                Limits {
                    longest_prompt: Some(4000)
                }
            )
            .is_ok()
        );
    }

    #[test]
    fn cuda_graph_knobs_need_graphs_and_fit_the_batch() {
        let r = recipe(
            "m",
            serde_json::json!({"enable_cuda_graph": false, "cuda_graph_padding": true}),
        );
        assert!(why(&r, Limits::default()).contains("no effect with enable_cuda_graph: false"));
        let r = recipe(
            "m",
            serde_json::json!({"max_batch_size": 32, "cuda_graph_max_batch_size": 64}),
        );
        assert!(why(&r, Limits::default()).contains("never used with max_batch_size 32"));
        let r = recipe("m", serde_json::json!({"tokens_per_block": 48}));
        assert!(why(&r, Limits::default()).contains("power of two"));
    }

    #[test]
    fn prompts_must_fit_an_iteration_unless_chunked() {
        let long = Limits {
            longest_prompt: Some(9000),
        };
        let r = recipe("m", serde_json::json!({}));
        assert!(why(&r, long).contains("longest prompt has 9000 tokens"));
        let r = recipe("m", serde_json::json!({"enable_chunked_prefill": true}));
        assert!(check(&r, long).is_ok());
        let r = recipe(
            "m",
            serde_json::json!({"enable_chunked_prefill": true, "max_seq_len": 8192}),
        );
        assert!(why(&r, long).contains("no room to generate"));
    }

    #[test]
    fn tensor_parallel_fits_gpus_and_heads() {
        let r = recipe("m", serde_json::json!({"tp_size": 4}));
        assert!(why(&r, Limits::default()).contains("needs 4 GPUs"));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"num_attention_heads": 14}"#,
        )
        .unwrap();
        let model = dir.path().display().to_string();
        let r = recipe(&model, serde_json::json!({"tp_size": 2}));
        assert!(check(&r, Limits::default()).is_ok());
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"num_attention_heads": 15}"#,
        )
        .unwrap();
        assert!(
            why(&r, Limits::default()).contains("does not divide the model's 15 attention heads")
        );
    }
}
