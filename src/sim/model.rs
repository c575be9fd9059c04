//! Model shapes: the architecture numbers the simulator needs, read from a local HF
//! `config.json` or from the built-in catalogue (`super::catalog`) (so no network is needed), plus the
//! parameter and byte counts derived from them (weights per quantization method, KV bytes per
//! token, active vs total parameters for mixture-of-experts models).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Intermediate size of one shared expert (0 = same as a routed expert).
    #[serde(default)]
    pub shared_intermediate: u64,
    /// Leading layers that use a dense MLP instead of experts (DeepSeek's
    /// `first_k_dense_replace`).
    #[serde(default)]
    pub dense_layers: u32,
}

/// A checkpoint's own quantization (`quantization_config` in `config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantConfig {
    /// vLLM's method name (`awq`, `gptq`, `fp8`, `compressed-tensors`, ...).
    pub method: String,
    /// Bits per weight (4 for AWQ/GPTQ, 8 for FP8).
    pub weight_bits: u32,
    /// Bits per activation when activations are quantized too (W8A8), else `None`.
    pub activation_bits: Option<u32>,
    /// Weights are floating point (FP8/FP4) rather than integers.
    #[serde(default)]
    pub float_weights: bool,
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
    /// The checkpoint's `torch_dtype` (`bfloat16`, `float16`, `float32`).
    #[serde(default = "default_dtype")]
    pub dtype: String,
    /// Pre-quantized checkpoint's method, if any.
    #[serde(default)]
    pub quant: Option<QuantConfig>,
    /// Multi-head latent attention (DeepSeek-V2/V3, Kimi): the KV cache holds one
    /// compressed latent per token and layer instead of K and V per head.
    #[serde(default)]
    pub mla: Option<MlaShape>,
    /// Sliding-window attention layers (gpt-oss, Gemma 2/3: `layer_types` naming
    /// `sliding_attention` layers, `sliding_window` their window): they cache and read at
    /// most the window, so only the other layers' KV grows with the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sliding: Option<SlidingShape>,
    /// `config.json` fields that change memory or compute and that the simulator does not
    /// model (each with what it means for the prediction); empty for catalogue shapes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unmodelled: Vec<String>,
}

/// Layers that attend to (and cache) only the last `window` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingShape {
    /// Tokens each of them keeps.
    pub window: u32,
    /// How many of the model's layers are sliding-window layers.
    pub layers: u32,
}

/// MLA's cache: `kv_lora_rank + qk_rope_head_dim` elements per token and layer, the same on
/// every tensor-parallel rank (vLLM's MLA backends replicate the latent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaShape {
    /// `kv_lora_rank`: the compressed KV latent.
    pub kv_lora_rank: u32,
    /// `qk_rope_head_dim`: the decoupled rotary key, cached beside the latent.
    pub rope_dim: u32,
}

/// `config.json` fields the simulator does not model, and what each changes.
const UNMODELLED: &[(&str, &str)] = &[
    (
        "sliding_window",
        "sliding-window layers cache at most the window: KV capacity is underestimated",
    ),
    (
        "layer_types",
        "per-layer attention types (sliding/full) are treated as full attention",
    ),
    (
        "num_nextn_predict_layers",
        "multi-token-prediction (MTP) layers and speculative decoding are not modelled",
    ),
    (
        "rope_scaling",
        "rope scaling is ignored (the context limit is max_position_embeddings)",
    ),
    (
        "attention_chunk_size",
        "chunked attention is treated as full attention",
    ),
    (
        "interleave_moe_layer_step",
        "MoE layers interleaved with dense ones (Llama 4 Maverick) are treated as all MoE",
    ),
    (
        "num_local_experts_per_layer",
        "per-layer expert counts are treated as uniform",
    ),
];

fn default_dtype() -> String {
    "bfloat16".into()
}

/// Bytes per weight of a linear layer under a quantization method (`None` = unquantized).
/// 4-bit methods carry a group scale every 128 weights (+~3 %).
pub fn bytes_per_weight(method: Option<&str>, bits: Option<u32>, unquantized: f64) -> f64 {
    match (method, bits) {
        (None, _) => unquantized,
        (Some(_), Some(b)) if b <= 4 => 0.5 * 1.03,
        (Some(m), None) if is_four_bit_method(m) => 0.5 * 1.03,
        (Some(_), _) => 1.0,
    }
}

/// True for methods whose default checkpoints are 4-bit weights.
pub fn is_four_bit_method(m: &str) -> bool {
    matches!(
        m,
        "awq" | "awq_marlin" | "gptq" | "gptq_marlin" | "marlin" | "mxfp4" | "auto-round"
    )
}

/// MLA cache bytes per token: one latent plus the rotary key per layer.
fn mla_bytes(layers: u32, m: MlaShape, kv_dtype_bytes: f64) -> f64 {
    f64::from(layers) * f64::from(m.kv_lora_rank + m.rope_dim) * kv_dtype_bytes
}

/// Largest layer count, width, head count or vocabulary a `config.json` may give (2^24;
/// today's largest models are two orders of magnitude below).
pub const MAX_DIM: u64 = 1 << 24;
/// Most parameters a simulated model may have (100 trillion; the largest published are ~2T).
pub const MAX_PARAMS: f64 = 1e14;

impl ModelShape {
    /// Parse an HF `config.json` file. `id` names the model in the result.
    pub fn from_config_file(file: &Path, id: &str) -> Result<ModelShape, ShapeError> {
        let text = crate::text::read(file).map_err(|e| ShapeError {
            file: file.to_path_buf(),
            field: "file".into(),
            why: format!("cannot read: {e}"),
        })?;
        // serde_json's message ends with its own `at line L column C`: said once.
        let json: Value = serde_json::from_str(&text).map_err(|e| ShapeError {
            file: file.to_path_buf(),
            field: "json".into(),
            why: e.to_string(),
        })?;
        Self::from_config_json(&json, file, id)
    }

    /// Build a shape from a parsed `config.json` (`file` is only used in errors).
    pub fn from_config_json(json: &Value, file: &Path, id: &str) -> Result<ModelShape, ShapeError> {
        let cfg = ConfigReader::new(json, file);
        let hidden = cfg.dim("hidden_size", cfg.u64("hidden_size")?)?;
        let heads = cfg.dim("num_attention_heads", cfg.u64("num_attention_heads")?)?;
        let kv_heads = match cfg.opt_u64("num_key_value_heads")? {
            Some(k) => cfg.dim("num_key_value_heads", k)?,
            None => heads,
        };
        let head_dim = match cfg.opt_u64("head_dim")? {
            Some(d) => cfg.dim("head_dim", d)?,
            None => cfg.dim("head_dim", hidden / heads)?,
        };
        let dtype = cfg.dtype();
        ModelShape {
            id: id.to_string(),
            num_layers: cfg.dim("num_hidden_layers", cfg.u64("num_hidden_layers")?)? as u32,
            hidden_size: hidden,
            num_heads: heads as u32,
            num_kv_heads: kv_heads as u32,
            head_dim: head_dim as u32,
            intermediate_size: cfg.dim("intermediate_size", cfg.intermediate()?)?,
            vocab_size: cfg.dim("vocab_size", cfg.u64("vocab_size")?)?,
            tie_word_embeddings: cfg.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            max_position_embeddings: cfg.opt_u64("max_position_embeddings")?.unwrap_or(2048) as u32,
            dtype_bytes: dtype_bytes(&dtype),
            dtype,
            moe: cfg.moe()?,
            quant: cfg.quant()?,
            mla: cfg.mla()?,
            sliding: cfg.sliding()?,
            unmodelled: cfg.unmodelled(),
        }
        .sized(file)
    }

    /// The shape, when its parameter count is one integer arithmetic can hold with room
    /// (at most [`MAX_PARAMS`]); each dimension alone being in range is not enough.
    fn sized(self, file: &Path) -> Result<ModelShape, ShapeError> {
        let f = |v: u64| v as f64;
        let q = f(u64::from(self.num_heads)) * f(u64::from(self.head_dim));
        let kv = f(u64::from(self.num_kv_heads)) * f(u64::from(self.head_dim));
        let experts = self.moe.as_ref().map_or(0.0, |m| {
            f(u64::from(m.num_experts) + u64::from(m.shared_experts))
                * f(m.expert_intermediate.max(m.shared_intermediate))
        });
        let per_layer = f(self.hidden_size)
            * (2.0 * q + 2.0 * kv + 3.0 * (f(self.intermediate_size) + experts));
        let total = f(u64::from(self.num_layers)) * per_layer
            + 2.0 * f(self.vocab_size) * f(self.hidden_size);
        if total <= MAX_PARAMS {
            Ok(self)
        } else {
            Err(ShapeError {
                file: file.to_path_buf(),
                field: "num_hidden_layers".into(),
                why: format!(
                    "the dimensions give {total:.3e} parameters, above the {MAX_PARAMS:e} the \
                     simulator models"
                ),
            })
        }
    }

    /// Input embedding parameters (vocab × hidden).
    pub fn embedding_params(&self) -> u64 {
        self.vocab_size * self.hidden_size
    }

    /// Output head parameters (vocab × hidden; the same tensor as the embedding when tied,
    /// but it is still a matmul every step).
    pub fn lm_head_params(&self) -> u64 {
        self.vocab_size * self.hidden_size
    }

    /// Attention projection parameters of one layer (q, k, v, o).
    pub fn attn_params_per_layer(&self) -> u64 {
        let q = u64::from(self.num_heads) * u64::from(self.head_dim);
        let kv = u64::from(self.num_kv_heads) * u64::from(self.head_dim);
        self.hidden_size * (q + 2 * kv) + q * self.hidden_size
    }

    /// Dense MLP parameters of one layer (gate, up, down).
    pub fn dense_mlp_params(&self) -> u64 {
        3 * self.hidden_size * self.intermediate_size
    }

    /// Parameters of one routed expert.
    pub fn expert_params(&self) -> u64 {
        self.moe
            .as_ref()
            .map_or(0, |m| 3 * self.hidden_size * m.expert_intermediate)
    }

    /// Parameters of the always-on part of one MoE layer's MLP (shared experts + router).
    pub fn moe_fixed_params(&self) -> u64 {
        self.moe.as_ref().map_or(0, |m| {
            let inter = if m.shared_intermediate > 0 {
                m.shared_intermediate
            } else {
                m.expert_intermediate
            };
            u64::from(m.shared_experts) * 3 * self.hidden_size * inter
                + self.hidden_size * u64::from(m.num_experts)
        })
    }

    /// Layers whose MLP is a mixture of experts.
    pub fn moe_layers(&self) -> u32 {
        self.moe
            .as_ref()
            .map_or(0, |m| self.num_layers.saturating_sub(m.dense_layers))
    }

    /// Linear-layer parameters of all decoder layers (everything but embeddings and head).
    pub fn layer_linear_params_total(&self) -> u64 {
        let moe_layers = u64::from(self.moe_layers());
        let dense_layers = u64::from(self.num_layers) - moe_layers;
        let experts = self.moe.as_ref().map_or(0, |m| u64::from(m.num_experts));
        u64::from(self.num_layers) * self.attn_params_per_layer()
            + dense_layers * self.dense_mlp_params()
            + moe_layers * (experts * self.expert_params() + self.moe_fixed_params())
    }

    /// Linear-layer parameters one token actually multiplies (top-k experts only).
    pub fn layer_linear_params_active(&self) -> u64 {
        let moe_layers = u64::from(self.moe_layers());
        let dense_layers = u64::from(self.num_layers) - moe_layers;
        let k = self.moe.as_ref().map_or(0, |m| u64::from(m.top_k));
        u64::from(self.num_layers) * self.attn_params_per_layer()
            + dense_layers * self.dense_mlp_params()
            + moe_layers * (k * self.expert_params() + self.moe_fixed_params())
    }

    /// All parameters (embeddings counted once when tied).
    pub fn total_params(&self) -> u64 {
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.lm_head_params()
        };
        self.embedding_params() + self.layer_linear_params_total() + head
    }

    /// Parameters used per token (MoE: top-k experts), embeddings counted once when tied.
    pub fn active_params(&self) -> u64 {
        let head = if self.tie_word_embeddings {
            0
        } else {
            self.lm_head_params()
        };
        self.embedding_params() + self.layer_linear_params_active() + head
    }

    /// Layers whose KV cache grows with the context (all but sliding-window layers).
    pub fn full_attention_layers(&self) -> u32 {
        self.num_layers - self.sliding.map_or(0, |s| s.layers.min(self.num_layers))
    }

    /// KV cache bytes per token of context (full-attention layers, all KV heads) at
    /// `kv_dtype_bytes` per element; sliding-window layers hold at most their window and
    /// are not part of it.
    pub fn kv_bytes_per_token(&self, kv_dtype_bytes: f64) -> f64 {
        if let Some(m) = self.mla {
            return mla_bytes(self.full_attention_layers(), m, kv_dtype_bytes);
        }
        2.0 * f64::from(self.full_attention_layers())
            * f64::from(self.num_kv_heads)
            * f64::from(self.head_dim)
            * kv_dtype_bytes
    }

    /// KV cache bytes per token on one of `tp` GPUs: vLLM gives each GPU
    /// `max(1, kv_heads / tp)` KV heads (replicating them when TP exceeds the KV heads).
    pub fn kv_bytes_per_token_per_gpu(&self, kv_dtype_bytes: f64, tp: u32) -> f64 {
        self.kv_bytes_per_layer_token_per_gpu(kv_dtype_bytes, tp)
            * f64::from(self.full_attention_layers())
    }

    /// KV bytes one layer keeps per token on one of `tp` GPUs.
    pub fn kv_bytes_per_layer_token_per_gpu(&self, kv_dtype_bytes: f64, tp: u32) -> f64 {
        if let Some(m) = self.mla {
            return mla_bytes(1, m, kv_dtype_bytes);
        }
        let heads = (self.num_kv_heads / tp.max(1)).max(1);
        2.0 * f64::from(heads) * f64::from(self.head_dim) * kv_dtype_bytes
    }

    /// Weight bytes of the whole model (all GPUs) under `method` (`None` = the
    /// checkpoint's own dtype). Embeddings and the output head stay unquantized.
    pub fn weight_bytes(&self, method: Option<&str>) -> f64 {
        let bits = self.quant.as_ref().map(|q| q.weight_bits);
        let bits = match (method, &self.quant) {
            (Some(m), Some(q)) if q.method == m || same_family(m, &q.method) => bits,
            _ => None,
        };
        let per_w = bytes_per_weight(method, bits, self.dtype_bytes);
        let head = if self.tie_word_embeddings {
            0.0
        } else {
            self.lm_head_params() as f64
        };
        // Quantized checkpoints keep embeddings and the head in 16 bits.
        let embed_bytes = if method.is_some() {
            2.0
        } else {
            self.dtype_bytes
        };
        self.layer_linear_params_total() as f64 * per_w
            + (self.embedding_params() as f64 + head) * embed_bytes
    }
}

/// True when two method names are spellings of the same kernel family (`awq` and
/// `awq_marlin`, `gptq` and `gptq_marlin`).
pub fn same_family(a: &str, b: &str) -> bool {
    let fam = |s: &str| s.trim_end_matches("_marlin").to_string();
    fam(a) == fam(b)
}

/// Bytes per element of a `torch_dtype` spelling.
pub fn dtype_bytes(dtype: &str) -> f64 {
    match dtype {
        "float32" | "float" | "fp32" => 4.0,
        _ => 2.0,
    }
}

/// A `config.json` that could not be used: the file, the field and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {field}: {why}", file.display())]
pub struct ShapeError {
    /// The config file.
    pub file: PathBuf,
    /// The offending field.
    pub field: String,
    /// What is wrong with it.
    pub why: String,
}

/// Field access over a config (and its `text_config`, for multimodal wrappers).
struct ConfigReader<'a> {
    json: &'a Value,
    file: &'a Path,
}

impl<'a> ConfigReader<'a> {
    fn new(json: &'a Value, file: &'a Path) -> Self {
        let inner = json.get("text_config").filter(|t| {
            t.get("num_hidden_layers").is_some() && json.get("num_hidden_layers").is_none()
        });
        ConfigReader {
            json: inner.unwrap_or(json),
            file,
        }
    }

    fn err(&self, field: &str, why: &str) -> ShapeError {
        ShapeError {
            file: self.file.to_path_buf(),
            field: field.into(),
            why: why.into(),
        }
    }

    /// A dimension of the network: at least 1 (a zero sizes a KV block at 0 bytes and the
    /// cache at infinitely many) and at most [`MAX_DIM`].
    fn dim(&self, field: &str, v: u64) -> Result<u64, ShapeError> {
        if (1..=MAX_DIM).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(field, &format!("must be 1 to {MAX_DIM}, got {v}")))
        }
    }

    fn opt_u64(&self, field: &str) -> Result<Option<u64>, ShapeError> {
        match self.json.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .map(Some)
                .ok_or_else(|| {
                    self.err(field, &format!("expected a non-negative integer, got {v}"))
                }),
        }
    }

    fn u64(&self, field: &str) -> Result<u64, ShapeError> {
        self.opt_u64(field)?
            .ok_or_else(|| self.err(field, "missing (required)"))
    }

    /// Sliding-window layers: those `layer_types` names `sliding_attention`, with the
    /// `sliding_window` they keep (required then).
    fn sliding(&self) -> Result<Option<SlidingShape>, ShapeError> {
        let Some(types) = self.json.get("layer_types").and_then(Value::as_array) else {
            return Ok(None);
        };
        let layers = types
            .iter()
            .filter(|t| t.as_str() == Some("sliding_attention"))
            .count() as u32;
        if layers == 0 {
            return Ok(None);
        }
        let window = self.u64("sliding_window")?;
        Ok(Some(SlidingShape {
            window: self.dim("sliding_window", window)? as u32,
            layers,
        }))
    }

    /// MLA when `kv_lora_rank` is set (DeepSeek-V2/V3 and their descendants).
    fn mla(&self) -> Result<Option<MlaShape>, ShapeError> {
        let Some(rank) = self.opt_u64("kv_lora_rank")? else {
            return Ok(None);
        };
        let rank = self.dim("kv_lora_rank", rank)?;
        let rope = self.opt_u64("qk_rope_head_dim")?.unwrap_or(64);
        Ok(Some(MlaShape {
            kv_lora_rank: rank as u32,
            rope_dim: self.dim("qk_rope_head_dim", rope)? as u32,
        }))
    }

    /// The fields of [`UNMODELLED`] this config sets to a value that matters.
    fn unmodelled(&self) -> Vec<String> {
        UNMODELLED
            .iter()
            .filter(|(k, _)| self.matters(k))
            .map(|(k, why)| format!("{k}: {why}"))
            .collect()
    }

    /// Whether the unmodelled field `k` changes anything here. A `sliding_window` is
    /// modelled when `layer_types` says which layers use it, and means nothing under
    /// `use_sliding_window: false` (Qwen2's configs); an interleave step of 1 is all-MoE.
    fn matters(&self, k: &str) -> bool {
        let set = |v: &Value| !v.is_null() && v != &Value::Bool(false);
        match k {
            "sliding_window" | "layer_types" => {
                let modelled = self.json.get("layer_types").is_some_and(Value::is_array)
                    || self.json.get("use_sliding_window") == Some(&Value::Bool(false));
                !modelled && self.json.get(k).is_some_and(set)
            }
            "interleave_moe_layer_step" => self.opt_u64(k).ok().flatten().is_some_and(|n| n > 1),
            _ => self.json.get(k).is_some_and(set),
        }
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>, ShapeError> {
        match self.json.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(field, &format!("expected true or false, got {v}"))),
        }
    }

    fn dtype(&self) -> String {
        ["torch_dtype", "dtype"]
            .iter()
            .find_map(|k| self.json.get(*k).and_then(Value::as_str))
            .unwrap_or("bfloat16")
            .to_string()
    }

    fn intermediate(&self) -> Result<u64, ShapeError> {
        match self.opt_u64("intermediate_size")? {
            Some(i) => Ok(i),
            None => Ok(self
                .opt_u64("ffn_dim")?
                .unwrap_or(4 * self.u64("hidden_size")?)),
        }
    }

    fn moe(&self) -> Result<Option<MoeShape>, ShapeError> {
        let experts =
            match self.first_u64(&["num_local_experts", "num_experts", "n_routed_experts"])? {
                Some(e) if e > 1 => e,
                _ => return Ok(None),
            };
        let top_k = self
            .first_u64(&["num_experts_per_tok", "num_experts_per_token", "moe_topk"])?
            .ok_or_else(|| {
                self.err(
                    "num_experts_per_tok",
                    "missing for a mixture-of-experts model",
                )
            })?;
        let expert_inter = match self.opt_u64("moe_intermediate_size")? {
            Some(i) => i,
            None => self.intermediate()?,
        };
        let shared_inter = self
            .opt_u64("shared_expert_intermediate_size")?
            .unwrap_or(0);
        // Llama 4 (its text config has `intermediate_size_mlp`) runs one shared expert of
        // the routed experts' size beside them in every MoE layer, with no field naming it.
        let llama4 = self.opt_u64("intermediate_size_mlp")?.is_some();
        let shared_inter = if llama4 && shared_inter == 0 {
            expert_inter
        } else {
            shared_inter
        };
        let shared = match self.first_u64(&["n_shared_experts", "num_shared_experts"])? {
            Some(n) => n,
            None => u64::from(shared_inter > 0),
        };
        Ok(Some(MoeShape {
            num_experts: experts as u32,
            top_k: top_k as u32,
            expert_intermediate: expert_inter,
            shared_experts: shared as u32,
            shared_intermediate: shared_inter,
            dense_layers: self.opt_u64("first_k_dense_replace")?.unwrap_or(0) as u32,
        }))
    }

    fn first_u64(&self, fields: &[&str]) -> Result<Option<u64>, ShapeError> {
        for f in fields {
            if let Some(v) = self.opt_u64(f)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn quant(&self) -> Result<Option<QuantConfig>, ShapeError> {
        let Some(q) = self.json.get("quantization_config") else {
            return Ok(None);
        };
        let method = q
            .get("quant_method")
            .and_then(Value::as_str)
            .ok_or_else(|| self.err("quantization_config.quant_method", "missing"))?
            .to_ascii_lowercase();
        let (bits, act) = quant_bits(q, &method);
        let float = float_weights(q, &method);
        Ok(Some(QuantConfig {
            method,
            weight_bits: bits,
            activation_bits: act,
            float_weights: float,
        }))
    }
}

/// Whether a `quantization_config`'s weights are floating point (FP8/FP4) rather than
/// integers.
pub fn float_weights(q: &Value, method: &str) -> bool {
    matches!(method, "fp8" | "fbgemm_fp8" | "modelopt" | "mxfp4")
        || q.pointer("/config_groups/group_0/weights/type")
            .and_then(Value::as_str)
            == Some("float")
}

/// Weight and activation bits of a `quantization_config`.
pub fn quant_bits(q: &Value, method: &str) -> (u32, Option<u32>) {
    let as_u32 = |v: Option<&Value>| v.and_then(Value::as_u64).map(|b| b as u32);
    if let Some(b) = as_u32(q.get("bits")).or(as_u32(q.get("w_bit"))) {
        return (b, None);
    }
    // ModelOpt names its algorithm: `NVFP4` is FP4 weights and activations.
    if let Some(algo) = q.get("quant_algo").and_then(Value::as_str) {
        let algo = algo.to_ascii_uppercase();
        if algo.contains("FP4") {
            return (4, Some(4));
        }
        if algo.contains("FP8") {
            return (8, Some(8));
        }
    }
    let group = q
        .get("config_groups")
        .and_then(Value::as_object)
        .and_then(|g| g.values().next());
    if let Some(g) = group {
        let w = as_u32(g.pointer("/weights/num_bits")).unwrap_or(8);
        let a = as_u32(g.pointer("/input_activations/num_bits"));
        return (w, a);
    }
    match method {
        "fp8" | "fbgemm_fp8" | "modelopt" => (8, Some(8)),
        "mxfp4" => (4, None),
        m if is_four_bit_method(m) => (4, None),
        _ => (8, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_config(dir: &Path, body: &str) -> PathBuf {
        let p = dir.join("config.json");
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn parses_a_dense_config_with_defaults() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                "intermediate_size": 128, "vocab_size": 1000, "torch_dtype": "float16"}"#,
        );
        let s = ModelShape::resolve(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(s.num_kv_heads, 4);
        assert_eq!(s.head_dim, 16);
        assert!(!s.tie_word_embeddings);
        assert_eq!(s.dtype, "float16");
        assert_eq!(s.max_position_embeddings, 2048);
        assert!(s.moe.is_none() && s.quant.is_none());
        // q,k,v,o: 64*(64+2*64) + 64*64 = 16384; mlp 3*64*128 = 24576.
        assert_eq!(s.attn_params_per_layer(), 16384);
        assert_eq!(
            s.total_params(),
            1000 * 64 + 2 * (16384 + 24576) + 1000 * 64
        );
    }

    #[test]
    fn zero_or_huge_dimensions_are_refused_by_name() {
        // Regression: 0 layers, width or head_dim panicked with "capacity overflow".
        let base = r#""num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 1000"#;
        for (extra, field) in [
            (r#", "head_dim": 0"#, "head_dim"),
            (r#", "num_key_value_heads": 0"#, "num_key_value_heads"),
            (r#", "intermediate_size": 0"#, "intermediate_size"),
            (r#", "num_hidden_layers": 99999999999"#, "num_hidden_layers"),
        ] {
            let json: Value = serde_json::from_str(&format!("{{{base}{extra}}}")).unwrap();
            let e = ModelShape::from_config_json(&json, Path::new("config.json"), "m")
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("{field}: must be 1 to")), "{e}");
        }
        let json: Value = serde_json::from_str(
            r#"{"num_hidden_layers": 0, "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 1000}"#,
        )
        .unwrap();
        assert!(ModelShape::from_config_json(&json, Path::new("c.json"), "m").is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]
        /// Any numbers a `config.json` carries: a shape or an error, never a panic, and a
        /// shape the memory model can size.
        #[test]
        fn any_config_json_is_a_shape_or_an_error(
            layers in proptest::num::u64::ANY, hidden in 0u64..1 << 26, heads in 0u64..300,
            kv in proptest::option::of(0u64..300), head_dim in proptest::option::of(0u64..1 << 12),
            vocab in 0u64..1 << 25, inter in proptest::option::of(proptest::num::u64::ANY),
            experts in proptest::option::of(0u64..600), mpe in proptest::option::of(proptest::num::u64::ANY),
        ) {
            let mut j = serde_json::json!({"num_hidden_layers": layers % (1 << 26), "hidden_size": hidden,
                "num_attention_heads": heads, "vocab_size": vocab});
            let o = j.as_object_mut().unwrap();
            if let Some(k) = kv { o.insert("num_key_value_heads".into(), k.into()); }
            if let Some(d) = head_dim { o.insert("head_dim".into(), d.into()); }
            if let Some(i) = inter { o.insert("intermediate_size".into(), i.into()); }
            if let Some(e) = experts { o.insert("num_experts".into(), e.into()); }
            if let Some(m) = mpe { o.insert("max_position_embeddings".into(), m.into()); }
            if let Ok(s) = ModelShape::from_config_json(&j, Path::new("config.json"), "m") {
                let _ = s.total_params();
                let _ = s.kv_bytes_per_token(2.0);
            }
        }
    }

    #[test]
    fn mla_caches_one_latent_and_unmodelled_fields_are_named() {
        // DeepSeek-V2-Lite's public config.json (the fields that size it).
        let ds: Value = serde_json::from_str(
            r#"{"num_hidden_layers": 27, "hidden_size": 2048, "num_attention_heads": 16,
                "num_key_value_heads": 16, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
                "qk_nope_head_dim": 128, "v_head_dim": 128, "vocab_size": 102400,
                "intermediate_size": 10944, "moe_intermediate_size": 1408,
                "n_routed_experts": 64, "num_experts_per_tok": 6, "n_shared_experts": 2,
                "first_k_dense_replace": 1, "max_position_embeddings": 163840,
                "torch_dtype": "bfloat16"}"#,
        )
        .unwrap();
        let s = ModelShape::from_config_json(&ds, Path::new("config.json"), "ds").unwrap();
        // vLLM's MLA cache: 27 layers × (512 + 64) × 2 bytes = 31,104 B (was 221 KB).
        assert_eq!(s.kv_bytes_per_token(2.0), 31_104.0);
        assert_eq!(
            s.kv_bytes_per_token_per_gpu(2.0, 4),
            31_104.0,
            "replicated per rank"
        );
        assert!(s.unmodelled.is_empty(), "{:?}", s.unmodelled);
        // gpt-oss: alternating sliding-window layers are not modelled, and it says so.
        let oss: Value = serde_json::from_str(
            r#"{"num_hidden_layers": 24, "hidden_size": 2880, "num_attention_heads": 64,
                "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088,
                "intermediate_size": 2880, "num_local_experts": 32, "num_experts_per_tok": 4,
                "sliding_window": 128, "max_position_embeddings": 131072}"#,
        )
        .unwrap();
        let mut oss = oss;
        let types: Vec<&str> = (0..24)
            .map(|i| ["sliding_attention", "full_attention"][i % 2])
            .collect();
        oss["layer_types"] = serde_json::json!(types);
        let s = ModelShape::from_config_json(&oss, Path::new("config.json"), "oss").unwrap();
        assert!(s.mla.is_none());
        assert!(s.unmodelled.is_empty(), "{:?}", s.unmodelled);
        // Alternating layers: 12 of 24 slide over 128 tokens; only 12 grow with the
        // context (2 × 8 heads × 64 × 2 bytes = 2 KiB per layer and token).
        assert_eq!(
            s.sliding,
            Some(SlidingShape {
                window: 128,
                layers: 12
            })
        );
        assert_eq!(s.kv_bytes_per_token(2.0), 12.0 * 2048.0);
        // A sliding window with no layer types: not modelled, and named.
        let mut all = oss.clone();
        all.as_object_mut().unwrap().remove("layer_types");
        let s = ModelShape::from_config_json(&all, Path::new("config.json"), "x").unwrap();
        assert!(s.sliding.is_none());
        assert!(
            s.unmodelled[0].starts_with("sliding_window"),
            "{:?}",
            s.unmodelled
        );
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_config(
            dir.path(),
            r#"{"num_hidden_layers": "two", "hidden_size": 8, "num_attention_heads": 2}"#,
        );
        let e = ModelShape::resolve(p.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("config.json: num_hidden_layers: expected a non-negative integer"),
            "{e}"
        );
        let p = write_config(dir.path(), r#"{"num_hidden_layers": 2}"#);
        let e = ModelShape::resolve(p.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("config.json: hidden_size: missing (required)"),
            "{e}"
        );
        let p = write_config(dir.path(), "{ not json");
        let e = ModelShape::resolve(p.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("config.json: json: key must be a string at line 1 column 3"),
            "{e}"
        );
    }

    #[test]
    fn parses_moe_and_quantization() {
        let dir = tempfile::tempdir().unwrap();
        write_config(
            dir.path(),
            r#"{"num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4,
                "num_key_value_heads": 2, "intermediate_size": 256, "moe_intermediate_size": 32,
                "num_experts": 8, "num_experts_per_tok": 2, "vocab_size": 100,
                "quantization_config": {"quant_method": "AWQ", "bits": 4, "group_size": 128}}"#,
        );
        let s = ModelShape::resolve(dir.path().to_str().unwrap()).unwrap();
        let m = s.moe.clone().unwrap();
        assert_eq!((m.num_experts, m.top_k, m.expert_intermediate), (8, 2, 32));
        let q = s.quant.clone().unwrap();
        assert_eq!((q.method.as_str(), q.weight_bits), ("awq", 4));
        // Active: 2 of 8 experts; router 64*8 per layer.
        let attn = s.attn_params_per_layer();
        let expert = 3 * 64 * 32;
        assert_eq!(
            s.layer_linear_params_active(),
            4 * (attn + 2 * expert + 64 * 8)
        );
        assert_eq!(
            s.layer_linear_params_total(),
            4 * (attn + 8 * expert + 64 * 8)
        );
        // 4-bit weights: ~0.515 byte per linear weight, embeddings and head in 16 bits.
        let w = s.weight_bytes(Some("awq"));
        let expect = s.layer_linear_params_total() as f64 * 0.515 + 2.0 * 6400.0 * 2.0;
        assert!((w - expect).abs() < 1.0, "{w} vs {expect}");
    }

    #[test]
    fn compressed_tensors_bits_come_from_config_groups() {
        let q: Value = serde_json::json!({"quant_method": "compressed-tensors",
            "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"},
            "input_activations": {"num_bits": 8}}}});
        assert_eq!(quant_bits(&q, "compressed-tensors"), (8, Some(8)));
        let q: Value = serde_json::json!({"quant_method": "compressed-tensors",
            "config_groups": {"group_0": {"weights": {"num_bits": 4}}}});
        assert_eq!(quant_bits(&q, "compressed-tensors"), (4, None));
    }
}
