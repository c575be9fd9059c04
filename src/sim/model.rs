//! Model shapes: from a local HF `config.json` or the built-in catalogue.
//!
//! INTERFACE STUB: to be completed by the sim-core work.

use serde::{Deserialize, Serialize};

/// Mixture-of-experts parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoeShape {
    /// Routed experts.
    pub num_experts: u32,
    /// Experts active per token.
    pub top_k: u32,
    /// Intermediate size of one expert.
    pub expert_intermediate: u64,
    /// Shared (always-on) experts.
    pub shared_experts: u32,
}

/// The architecture numbers the memory model and the roofline need.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelShape {
    /// HF id or path.
    pub id: String,
    /// Decoder layers.
    pub num_layers: u32,
    /// Hidden size.
    pub hidden_size: u64,
    /// Query heads.
    pub num_heads: u32,
    /// KV heads (GQA).
    pub num_kv_heads: u32,
    /// Head dimension.
    pub head_dim: u32,
    /// MLP intermediate size (dense layers).
    pub intermediate_size: u64,
    /// Vocabulary size.
    pub vocab_size: u64,
    /// Input and output embeddings shared.
    pub tie_word_embeddings: bool,
    /// Context the model was trained for.
    pub max_position_embeddings: u32,
    /// Bytes per parameter of the checkpoint's dtype (2 for BF16).
    pub dtype_bytes: f64,
    /// MoE parameters, if any.
    pub moe: Option<MoeShape>,
}

impl ModelShape {
    /// Resolve a model argument: a directory (or file) holding an HF `config.json`, or a
    /// catalogue id (case-insensitive).
    pub fn resolve(_model: &str) -> anyhow::Result<ModelShape> {
        todo!("sim core")
    }
}
