//! `trtllm-serve`'s own defaults (PyTorch backend), as pure functions both the adapter and
//! forge's simulated twin call, so a recipe's effective values agree everywhere.
//!
//! Sources (`tensorrt_llm/commands/serve.py`, `tensorrt_llm/llmapi/llm_args.py`, 1.1 and
//! 1.2 era; the same in both unless said):
//! - options: `--max_batch_size` 2048 and `--max_num_tokens` 8192 (`BuildConfig` field
//!   defaults), `--max_seq_len` None (from the model config), `--tp_size` 1,
//!   `--kv_cache_free_gpu_memory_fraction` 0.9, `--enable_chunked_prefill` off;
//! - `KvCacheConfig`: `enable_block_reuse` True, `tokens_per_block` 32, `dtype` "auto";
//! - `SchedulerConfig.capacity_scheduler_policy` GUARANTEED_NO_EVICT (serve.py builds it
//!   explicitly too);
//! - `TorchLlmArgs`: `cuda_graph_config` = `CudaGraphConfig()` — **CUDA graphs are on by
//!   default**, for 1.0-era builds as well; `max_batch_size` 0 becomes 128 and the batch
//!   sizes are generated ([`cuda_graph_batch_sizes`]); `enable_padding` False;
//!   `disable_overlap_scheduler` False; `stream_interval` 1; `attn_backend` "TRTLLM".

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hardware::GpuSpec;
use crate::recipe::Recipe;

/// `max_batch_size` (requests per iteration).
pub const MAX_BATCH_SIZE: u64 = 2048;
/// `max_num_tokens` (tokens per iteration).
pub const MAX_NUM_TOKENS: u64 = 8192;
/// `kv_cache_free_gpu_memory_fraction`.
pub const KV_FRACTION: f64 = 0.9;
/// `kv_cache_config.tokens_per_block`.
pub const TOKENS_PER_BLOCK: u64 = 32;
/// `cuda_graph_config.max_batch_size` when left 0 (`validate_cuda_graph_config`).
pub const CUDA_GRAPH_MAX_BATCH_SIZE: u64 = 128;
/// `scheduler_config.capacity_scheduler_policy`.
pub const CAPACITY_POLICY: &str = "GUARANTEED_NO_EVICT";
/// `attn_backend`.
pub const ATTN_BACKEND: &str = "TRTLLM";

/// Every knob's default; `max_seq_len` is `null` (the model's own context).
pub fn defaults() -> BTreeMap<String, Value> {
    let pairs: [(&str, Value); 16] = [
        ("max_batch_size", MAX_BATCH_SIZE.into()),
        ("max_num_tokens", MAX_NUM_TOKENS.into()),
        ("max_seq_len", Value::Null),
        ("tp_size", 1.into()),
        ("kv_cache_free_gpu_memory_fraction", KV_FRACTION.into()),
        ("enable_chunked_prefill", false.into()),
        ("enable_block_reuse", true.into()),
        ("tokens_per_block", TOKENS_PER_BLOCK.into()),
        ("capacity_scheduler_policy", CAPACITY_POLICY.into()),
        ("enable_cuda_graph", true.into()),
        (
            "cuda_graph_max_batch_size",
            CUDA_GRAPH_MAX_BATCH_SIZE.into(),
        ),
        ("cuda_graph_padding", false.into()),
        ("disable_overlap_scheduler", false.into()),
        ("stream_interval", 1.into()),
        ("kv_cache_quant", "auto".into()),
        ("attn_backend", ATTN_BACKEND.into()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The recipe's value of every knob, else trtllm-serve's default. Nothing depends on the
/// GPU (`gpu` is accepted for the seam). Without CUDA graphs their two sub-knobs are
/// `null`; `checkpoint` appears only when the recipe names one.
pub fn effective(recipe: &Recipe, _gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
    let mut out = defaults();
    for (_, name, value) in recipe.fields() {
        if !value.is_null() {
            out.insert(name, value);
        }
    }
    if out.get("enable_cuda_graph") == Some(&Value::Bool(false)) {
        out.insert("cuda_graph_max_batch_size".into(), Value::Null);
        out.insert("cuda_graph_padding".into(), Value::Null);
    }
    out
}

/// The decode batch sizes captured in CUDA graphs for `max_batch_size` (0 = the default
/// 128), as `CudaGraphConfig._generate_cuda_graph_batch_sizes` (llm_args.py, 1.1/1.2 era)
/// generates them: 1..=31, 32, 64, 128 (padding: 1, 2, 4 and multiples of 8 to 128), then
/// powers of two from 256 below the maximum, then the maximum itself.
pub fn cuda_graph_batch_sizes(max_batch_size: u64, enable_padding: bool) -> Vec<u64> {
    let max = if max_batch_size == 0 {
        CUDA_GRAPH_MAX_BATCH_SIZE
    } else {
        max_batch_size
    };
    let mut sizes: Vec<u64> = if enable_padding {
        [1, 2, 4]
            .into_iter()
            .chain((1..=16).map(|i| i * 8))
            .collect()
    } else {
        (1..32).chain([32, 64, 128]).collect()
    };
    let mut p = 256;
    while p < max && p.trailing_zeros() < ceil_log2(max) {
        sizes.push(p);
        p *= 2;
    }
    sizes.retain(|s| *s <= max);
    sizes.sort_unstable();
    if sizes.last() != Some(&max) {
        sizes.push(max);
    }
    sizes
}

/// Smallest k with 2^k ≥ n (Python's `math.ceil(math.log(n, 2))` for exact powers).
fn ceil_log2(n: u64) -> u32 {
    64 - n.saturating_sub(1).leading_zeros()
}

/// The batch sizes a recipe really captures: none without CUDA graphs; otherwise the
/// generated sizes no larger than `max_batch_size` (the executor never runs a larger batch).
pub fn captured_batch_sizes(effective: &BTreeMap<String, Value>) -> Vec<u64> {
    if effective.get("enable_cuda_graph") == Some(&Value::Bool(false)) {
        return Vec::new();
    }
    let int = |k: &str, d: u64| effective.get(k).and_then(Value::as_u64).unwrap_or(d);
    let padding = effective
        .get("cuda_graph_padding")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let limit = int("max_batch_size", MAX_BATCH_SIZE);
    let mut sizes = cuda_graph_batch_sizes(int("cuda_graph_max_batch_size", 0), padding);
    sizes.retain(|s| *s <= limit);
    sizes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{EngineKind, Hardware};

    #[test]
    fn the_default_graphs_are_1_to_31_32_64_128() {
        let s = cuda_graph_batch_sizes(0, false);
        assert_eq!(s.len(), 34);
        assert_eq!(&s[29..], [30, 31, 32, 64, 128]);
        assert_eq!(
            cuda_graph_batch_sizes(0, true),
            [
                1, 2, 4, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128
            ]
        );
        assert_eq!(
            &cuda_graph_batch_sizes(1000, false)[31..],
            [32, 64, 128, 256, 512, 1000]
        );
        assert_eq!(
            &cuda_graph_batch_sizes(256, false)[31..],
            [32, 64, 128, 256]
        );
        assert_eq!(cuda_graph_batch_sizes(8, false), [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn effective_fills_the_defaults_and_drops_graph_knobs_without_graphs() {
        let r = Recipe::baseline(EngineKind::Trtllm, "m", Hardware::default());
        let e = effective(&r, None);
        assert_eq!(e["max_batch_size"], 2048);
        assert_eq!(e["enable_cuda_graph"], true);
        assert_eq!(e["capacity_scheduler_policy"], "GUARANTEED_NO_EVICT");
        assert!(e["max_seq_len"].is_null());
        assert_eq!(captured_batch_sizes(&e).len(), 34);
        let mut r2 = r.clone();
        r2.config.insert("enable_cuda_graph".into(), false.into());
        let e2 = effective(&r2, None);
        assert!(e2["cuda_graph_max_batch_size"].is_null());
        assert!(captured_batch_sizes(&e2).is_empty());
        let mut r3 = r.clone();
        r3.config.insert("max_batch_size".into(), 16.into());
        assert_eq!(
            captured_batch_sizes(&effective(&r3, None)).last(),
            Some(&16)
        );
    }
}
