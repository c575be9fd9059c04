//! Hugging Face Hub test data: a real model's published `config.json`, as the recorded Hub
//! and the local cache serve it.

use serde_json::json;

/// Qwen/Qwen3-0.6B's published config.json, with `extra` fields (a `quantization_config`,
/// another architecture).
pub fn qwen3(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 151936, "max_position_embeddings": 40960,
        "torch_dtype": "bfloat16", "tie_word_embeddings": true
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}
