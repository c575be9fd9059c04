//! SGLang's own defaults for the knobs forge tunes, as SGLang 0.5.23 resolves them for a
//! GPU and a TP size — pure functions, shared by the real adapter's `effective` and
//! forge's simulated twin so the two agree.
//!
//! Source (0.5.23 wheel, `sglang/srt/`): `arg_groups/memory_hook.py`
//! `handle_gpu_memory_settings` (capacity table by GPU memory, then
//! `mem_fraction_static`), `reserve_for_graph_mb`; `arg_groups/cuda_graph_hook.py`
//! `generate_prefill_cuda_graph_batch_sizes`; `arg_groups/fields/schedule.py` (field
//! defaults: `max_prefill_tokens` 16384, `schedule_policy` "fcfs",
//! `schedule_conservativeness` 1.0); `arg_groups/overrides.py` `_page_size_default` (1 on
//! CUDA). SGLang measures GPU memory in MiB (`nvidia-smi --query-gpu=memory.total`, the
//! smallest visible GPU). Dense (non-MLA) text models, pp_size 1, no attention DP, no
//! DeepEP, no post-capture KV sizing (`SGLANG_ENABLE_POST_CAPTURE_KV_SIZING` off, the
//! default).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::hardware::GpuSpec;
use crate::recipe::Recipe;

/// `--max-prefill-tokens` default (`arg_groups/fields/schedule.py`).
pub const MAX_PREFILL_TOKENS: i64 = 16384;
/// `--schedule-policy` default.
pub const SCHEDULE_POLICY: &str = "fcfs";
/// `--schedule-conservativeness` default.
pub const SCHEDULE_CONSERVATIVENESS: f64 = 1.0;
/// `--page-size` default on CUDA.
pub const PAGE_SIZE: i64 = 1;
/// The page SM100 (Blackwell) forces: its default MHA backend is `trtllm_mha`, which needs
/// pages of 64 (`model_override_base.py::get_default_attn_backend`,
/// `_mla_backend_page_constraints`).
pub const BLACKWELL_PAGE_SIZE: i64 = 64;

/// `--page-size` by GPU: 64 on compute capability 10.x (the default `trtllm_mha` backend),
/// else 1 (dense models; MLA backends differ and are not modelled).
pub fn page_size(gpu: Option<&GpuSpec>) -> i64 {
    match gpu.and_then(|g| g.compute_capability) {
        Some((10, _)) => BLACKWELL_PAGE_SIZE,
        _ => PAGE_SIZE,
    }
}
/// `--stream-interval` default.
pub const STREAM_INTERVAL: i64 = 1;
/// `mem_fraction_static` when the GPU's memory is unknown.
pub const MEM_FRACTION_UNKNOWN_GPU: f64 = 0.95;

const GIB_MIB: u64 = 1024;

/// The prefill chunk SGLang picks for a GPU of `gpu_mem_mib` (`None`: unknown → 4096).
pub fn chunked_prefill_size(gpu_mem_mib: Option<u64>) -> i64 {
    match gpu_mem_mib {
        None => 4096,
        Some(m) if m < 20 * GIB_MIB => 2048,
        Some(m) if m < 60 * GIB_MIB => 4096,
        Some(m) if m < 160 * GIB_MIB => 8192,
        Some(_) => 16384,
    }
}

/// The largest decode batch SGLang captures in a CUDA graph (`--cuda-graph-max-bs-decode`)
/// on a GPU of `gpu_mem_mib` at `tp` GPUs per replica, lowered to
/// `max_running_requests` when that is given and smaller. SGLang decides by memory and TP
/// only (the comments name GPUs — T4, A10, A100-40G, H100, H200, B200 — but the code
/// compares memory).
pub fn cuda_graph_max_bs(
    gpu_mem_mib: Option<u64>,
    tp: u32,
    max_running_requests: Option<u32>,
) -> u32 {
    let big_tp = tp >= 4;
    let bs = match gpu_mem_mib {
        None => 160,
        Some(m) if m < 20 * GIB_MIB => 8,
        Some(m) if m < 35 * GIB_MIB => {
            if big_tp {
                160
            } else {
                48
            }
        }
        Some(m) if m < 60 * GIB_MIB => {
            if big_tp {
                160
            } else {
                32
            }
        }
        Some(m) if m < 160 * GIB_MIB => {
            if big_tp {
                512
            } else {
                256
            }
        }
        Some(_) => 512,
    };
    max_running_requests.map_or(bs, |r| bs.min(r))
}

/// The prefill CUDA-graph capture sizes for a largest size of `max_tokens`
/// (`generate_prefill_cuda_graph_batch_sizes`).
pub fn prefill_graph_sizes(max_tokens: i64) -> Vec<i64> {
    let steps = [
        (4, 32, 4),
        (48, 256, 16),
        (288, 512, 32),
        (576, 1024, 64),
        (1280, 4096, 256),
        (4608, max_tokens, 512),
    ];
    steps
        .iter()
        .flat_map(|&(lo, hi, step)| (lo..=hi).step_by(step as usize))
        .filter(|s| *s <= max_tokens)
        .collect()
}

/// What `mem_fraction_static`'s reserve depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemInputs {
    /// The GPU's memory in MiB (`None`: unknown).
    pub gpu_mem_mib: Option<u64>,
    /// GPUs per replica.
    pub tp: u32,
    /// The prefill chunk (≤ 0: chunking off).
    pub chunked_prefill_size: i64,
    /// The prefill batch budget (used when chunking is off).
    pub max_prefill_tokens: i64,
    /// Largest captured decode batch; `None` when the decode graph is disabled.
    pub decode_graph_max_bs: Option<u32>,
    /// Largest captured prefill size in tokens (the breakable prefill graph, on by default on
    /// CUDA, sized `chunked_prefill_size`); `None` when disabled.
    pub prefill_graph_max_tokens: Option<i64>,
}

/// SGLang's default `mem_fraction_static`: `(gpu_mem − reserved) / gpu_mem`, rounded to
/// three places, where `reserved` (MiB) = 512 + 1.5 · max(chunk, 2048) + tp/8 · 1024 +
/// CUDA-graph memory (2 per decode batch size, 8 per prefill capture size), at least
/// 10 GiB on GPUs over 60 GiB.
pub fn mem_fraction_static(m: &MemInputs) -> f64 {
    let Some(gpu) = m.gpu_mem_mib else {
        return MEM_FRACTION_UNKNOWN_GPU;
    };
    let activation = if m.chunked_prefill_size > 0 {
        m.chunked_prefill_size.max(2048)
    } else {
        m.max_prefill_tokens.max(2048)
    } as f64;
    let mut reserved = 512.0 + activation * 1.5 + f64::from(m.tp) / 8.0 * 1024.0;
    reserved += m.decode_graph_max_bs.map_or(0.0, |bs| f64::from(bs) * 2.0);
    reserved += m
        .prefill_graph_max_tokens
        .map_or(0.0, |t| prefill_graph_sizes(t).len() as f64 * 8.0);
    if gpu > 60 * GIB_MIB {
        reserved = reserved.max(10.0 * 1024.0);
    }
    let gpu = gpu as f64;
    ((gpu - reserved) / gpu * 1000.0).round() / 1000.0
}

/// The effective value of every SGLang knob for `recipe` on `gpu`: the recipe's own values,
/// and SGLang's defaults for the rest. Without a GPU the memory-dependent defaults are
/// those SGLang uses when it cannot read the GPU's memory. `max_running_requests` and
/// `context_length` depend on the model and the KV pool and are left out unless set;
/// `attention_backend` is `auto` (SGLang picks at boot).
pub fn effective(recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
    let c = &recipe.config;
    let int = |k: &str| c.get(k).and_then(Value::as_i64);
    let flag = |k: &str| c.get(k).and_then(Value::as_bool).unwrap_or(false);
    let mem = gpu.map(|g| g.memory_mib);
    let tp = int("tp_size")
        .and_then(|t| u32::try_from(t).ok())
        .unwrap_or(1);
    let running = int("max_running_requests").and_then(|r| u32::try_from(r).ok());
    let chunk = int("chunked_prefill_size").unwrap_or_else(|| chunked_prefill_size(mem));
    let graphs_off = flag("disable_cuda_graph");
    let max_bs = int("cuda_graph_max_bs")
        .and_then(|b| u32::try_from(b).ok())
        .unwrap_or_else(|| cuda_graph_max_bs(mem, tp, running));
    let mfs = c
        .get("mem_fraction_static")
        .and_then(Value::as_f64)
        .unwrap_or_else(|| {
            mem_fraction_static(&MemInputs {
                gpu_mem_mib: mem,
                tp,
                chunked_prefill_size: chunk,
                max_prefill_tokens: int("max_prefill_tokens").unwrap_or(MAX_PREFILL_TOKENS),
                decode_graph_max_bs: (!graphs_off).then_some(max_bs),
                prefill_graph_max_tokens: (!graphs_off && chunk > 0).then_some(chunk),
            })
        });
    let mut m: BTreeMap<String, Value> = BTreeMap::new();
    let defaults: [(&str, Value); 16] = [
        ("chunked_prefill_size", chunk.into()),
        ("max_prefill_tokens", MAX_PREFILL_TOKENS.into()),
        ("mem_fraction_static", mfs.into()),
        ("schedule_policy", SCHEDULE_POLICY.into()),
        (
            "schedule_conservativeness",
            SCHEDULE_CONSERVATIVENESS.into(),
        ),
        ("disable_radix_cache", false.into()),
        ("cuda_graph_max_bs", max_bs.into()),
        ("disable_cuda_graph", false.into()),
        ("page_size", page_size(gpu).into()),
        ("tp_size", tp.into()),
        ("disable_overlap_schedule", false.into()),
        ("enable_mixed_chunk", false.into()),
        ("enable_torch_compile", false.into()),
        ("stream_interval", STREAM_INTERVAL.into()),
        (
            "method",
            recipe
                .quant
                .method
                .clone()
                .unwrap_or_else(|| "none".into())
                .into(),
        ),
        (
            "kv_cache_quant",
            recipe
                .quant
                .kv_cache_quant
                .clone()
                .unwrap_or_else(|| "auto".into())
                .into(),
        ),
    ];
    m.extend(defaults.into_iter().map(|(k, v)| (k.to_string(), v)));
    let backend = recipe
        .kernels
        .iter()
        .find(|k| k.name == "attention_backend")
        .map_or("auto", |k| k.value.as_str());
    m.insert("attention_backend".into(), backend.into());
    for (k, v) in c.iter().filter(|(_, v)| !v.is_null()) {
        m.insert(k.clone(), v.clone());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{EngineKind, Hardware, Layer};
    use serde_json::json;

    const H100: u64 = 81559;
    const H200: u64 = 143_771;
    const B200: u64 = 183_359;
    const A100_40: u64 = 40960;

    fn inputs(gpu: u64, tp: u32) -> MemInputs {
        let chunk = chunked_prefill_size(Some(gpu));
        MemInputs {
            gpu_mem_mib: Some(gpu),
            tp,
            chunked_prefill_size: chunk,
            max_prefill_tokens: MAX_PREFILL_TOKENS,
            decode_graph_max_bs: Some(cuda_graph_max_bs(Some(gpu), tp, None)),
            prefill_graph_max_tokens: Some(chunk),
        }
    }

    #[test]
    fn blackwell_pages_hold_64_tokens() {
        let g = |n: &str| crate::hardware::gpus::lookup(n);
        assert_eq!(page_size(g("H100")), 1);
        assert_eq!(page_size(g("B200")), 64);
        assert_eq!(page_size(g("GB200")), 64);
        assert_eq!(page_size(g("B300")), 64);
        assert_eq!(page_size(None), 1);
    }

    #[test]
    fn capacity_table_by_memory_and_tp() {
        assert_eq!(chunked_prefill_size(Some(16 * 1024)), 2048);
        assert_eq!(chunked_prefill_size(Some(24 * 1024)), 4096);
        assert_eq!(chunked_prefill_size(Some(A100_40)), 4096);
        assert_eq!(chunked_prefill_size(Some(H100)), 8192);
        assert_eq!(chunked_prefill_size(Some(H200)), 8192);
        assert_eq!(chunked_prefill_size(Some(B200)), 16384);
        assert_eq!(chunked_prefill_size(None), 4096);
        assert_eq!(cuda_graph_max_bs(Some(H100), 1, None), 256);
        assert_eq!(cuda_graph_max_bs(Some(H100), 4, None), 512);
        assert_eq!(cuda_graph_max_bs(Some(A100_40), 2, None), 32);
        assert_eq!(cuda_graph_max_bs(Some(24 * 1024), 1, None), 48);
        assert_eq!(cuda_graph_max_bs(Some(B200), 1, None), 512);
        assert_eq!(cuda_graph_max_bs(None, 1, None), 160);
        assert_eq!(cuda_graph_max_bs(Some(H100), 1, Some(64)), 64);
    }

    #[test]
    fn mem_fraction_matches_the_worked_values() {
        assert_eq!(prefill_graph_sizes(8192).len(), 58);
        assert_eq!(prefill_graph_sizes(16384).len(), 74);
        for (gpu, tp, want) in [
            (H100, 1, 0.830),
            (H100, 8, 0.812),
            (H200, 1, 0.903),
            (B200, 1, 0.854),
            (A100_40, 1, 0.823),
            (A100_40, 8, 0.795),
        ] {
            assert_eq!(mem_fraction_static(&inputs(gpu, tp)), want, "{gpu} tp{tp}");
        }
        let no_prefill_graph = MemInputs {
            prefill_graph_max_tokens: None,
            ..inputs(H100, 1)
        };
        assert_eq!(mem_fraction_static(&no_prefill_graph), 0.835);
        assert_eq!(
            mem_fraction_static(&MemInputs {
                gpu_mem_mib: None,
                ..inputs(H100, 1)
            }),
            0.95
        );
    }

    #[test]
    fn effective_fills_what_the_recipe_leaves_out() {
        let h100 = crate::hardware::gpus::lookup("H100").unwrap();
        let r = Recipe::baseline(EngineKind::Sglang, "Qwen/Qwen3-8B", Hardware::default());
        let e = effective(&r, Some(h100));
        assert_eq!(
            e["chunked_prefill_size"],
            json!(chunked_prefill_size(Some(h100.memory_mib)))
        );
        assert_eq!(e["schedule_policy"], json!("fcfs"));
        assert_eq!(e["page_size"], json!(1));
        assert_eq!(e["method"], json!("none"));
        assert_eq!(e["attention_backend"], json!("auto"));
        assert!(!e.contains_key("max_running_requests"));
        let mut ch = BTreeMap::new();
        ch.insert("max_running_requests".to_string(), json!(32));
        ch.insert("schedule_policy".to_string(), json!("lpm"));
        let e = effective(&r.mutate(Layer::Config, &ch), Some(h100));
        assert_eq!(e["cuda_graph_max_bs"], json!(32));
        assert_eq!(e["schedule_policy"], json!("lpm"));
        assert_eq!(e["max_running_requests"], json!(32));
    }
}
