//! SGLang's twin: `sglang serve` flags resolved with SGLang 0.5.23's own defaults
//! (`arg_groups/memory_hook.py::handle_gpu_memory_settings`: chunk size and decode
//! CUDA-graph batch by GPU memory, `mem_fraction_static` from the memory it reserves;
//! `scheduler.py`: `max_running_requests` from the KV pool), and the lines it prints.
//! Behaviour expressed on the shared core: the radix prefix cache at page granularity
//! (`page_size` 1 = token by token), LPM ordering when asked, admission that reserves a
//! decaying share of future output with retraction (`new_token_ratio`: 0.7 ×
//! conservativeness, floor 0.14 ×, over 600 decode steps), separate prefill and decode
//! batches unless `--enable-mixed-chunk`, the overlap scheduler unless disabled.

use super::cli::{Parsed, UsageError};
use super::{Booted, Twin};
use crate::engine::sglang::defaults;
use crate::engine::vllm::{KvCacheDtype, VllmArgs};
use crate::hardware::GpuSpec;
use crate::recipe::EngineKind;
use crate::sim::policy::{Admission, MemoryRule, Policy};

/// SGLang's default port.
pub const DEFAULT_PORT: u16 = 30000;
/// `--max-prefill-tokens` default.
pub const MAX_PREFILL_TOKENS: u32 = defaults::MAX_PREFILL_TOKENS as u32;
/// Steps over which `new_token_ratio` decays to its floor (`SGLANG_NEW_TOKEN_RATIO_DECAY_STEPS`).
const RATIO_DECAY_STEPS: f64 = 600.0;

/// `max_running_requests` when not given: from the pool of `tokens` and the context.
pub fn max_running_requests(tokens: u64, context_len: u32) -> u32 {
    let by_pool = (tokens as f64 / f64::from(context_len.max(1)) * 512.0).clamp(2048.0, 4096.0);
    (by_pool as u64).min(tokens / 2).max(1) as u32
}

fn num<T: std::str::FromStr>(p: &Parsed, dest: &str) -> Option<T> {
    p.get(dest).and_then(|v| v.parse().ok())
}

/// What SGLang resolves from its flags and the GPU before it sizes the KV pool.
struct Limits {
    tp: u32,
    /// `chunked_prefill_size` (≤ 0: chunking off).
    chunk: i64,
    /// `max_running_requests`, when given.
    running: Option<u32>,
    graph_bs: u32,
    eager: bool,
    prefill_tokens: u32,
    mem_fraction_static: f64,
    page: u32,
}

fn limits(p: &Parsed, gpu: &GpuSpec) -> Limits {
    let tp: u32 = num(p, "tp_size").unwrap_or(1).max(1);
    let mem = Some(gpu.memory_mib);
    let chunk: i64 =
        num(p, "chunked_prefill_size").unwrap_or_else(|| defaults::chunked_prefill_size(mem));
    let running: Option<u32> = num(p, "max_running_requests");
    let graph_bs: u32 = num(p, "cuda_graph_max_bs_decode")
        .unwrap_or_else(|| defaults::cuda_graph_max_bs(mem, tp, running));
    let eager =
        p.flag("disable_cuda_graph") || p.get("cuda_graph_backend_decode") == Some("disabled");
    let prefill_tokens: u32 = num(p, "max_prefill_tokens").unwrap_or(MAX_PREFILL_TOKENS);
    let mem_fraction_static: f64 = num(p, "mem_fraction_static").unwrap_or_else(|| {
        defaults::mem_fraction_static(&defaults::MemInputs {
            gpu_mem_mib: mem,
            tp,
            chunked_prefill_size: chunk,
            max_prefill_tokens: i64::from(prefill_tokens),
            decode_graph_max_bs: (!eager).then_some(graph_bs),
            prefill_graph_max_tokens: (!eager && chunk > 0).then_some(chunk),
        })
    });
    let page = num(p, "page_size").unwrap_or(defaults::page_size(Some(gpu)) as u32);
    Limits {
        tp,
        chunk,
        running,
        graph_bs,
        eager,
        prefill_tokens,
        mem_fraction_static,
        page,
    }
}

/// The shared core's configuration for these limits (a prefill batch is the chunk, or the
/// prefill budget with chunking off).
fn engine_args(p: &Parsed, model: &str, l: &Limits) -> VllmArgs {
    VllmArgs {
        model: model.to_string(),
        served_model_name: p.get("served_model_name").map(str::to_string),
        max_num_seqs: Some(l.running.unwrap_or(4096)),
        max_num_batched_tokens: Some(if l.chunk > 0 {
            l.chunk as u32
        } else {
            l.prefill_tokens
        }),
        enable_prefix_caching: Some(!p.flag("disable_radix_cache")),
        enable_chunked_prefill: Some(l.chunk > 0),
        gpu_memory_utilization: Some(l.mem_fraction_static),
        block_size: Some(l.page),
        kv_cache_dtype: Some(kv_dtype(p.get("kv_cache_dtype"))),
        quantization: p.get("quantization").map(str::to_string),
        max_model_len: num(p, "context_length"),
        tensor_parallel_size: Some(l.tp),
        enforce_eager: Some(l.eager),
        max_cudagraph_capture_size: Some(l.graph_bs),
        async_scheduling: Some(!p.flag("disable_overlap_schedule")),
        seed: num(p, "random_seed"),
        ..Default::default()
    }
}

/// SGLang's behaviour on the core: its memory rule, its `new_token_ratio` admission,
/// LPM when asked, separate prefill and decode batches unless mixed.
fn policy(p: &Parsed, mem_fraction_static: f64) -> Policy {
    let conservativeness: f64 = num(p, "schedule_conservativeness").unwrap_or(1.0);
    let init = (0.7 * conservativeness).min(1.0);
    let min = 0.14 * conservativeness;
    Policy {
        framework: EngineKind::Sglang,
        memory: MemoryRule::FractionOfTotal(mem_fraction_static),
        admission: Admission::Reserve {
            init,
            min,
            decay: (init - min).max(0.0) / RATIO_DECAY_STEPS,
        },
        lpm: p.get("schedule_policy") == Some("lpm"),
        separate_prefill: !p.flag("enable_mixed_chunk"),
        step_factor: 1.0,
        api_server: true,
        max_prompt_tokens: None,
    }
}

/// Resolve a parsed `sglang serve` command line on `gpu`.
pub fn resolve(p: &Parsed, gpu: &GpuSpec) -> Result<Twin, UsageError> {
    let model = p.get("model_path").unwrap_or_default().to_string();
    let l = limits(p, gpu);
    let served = p
        .get("served_model_name")
        .map_or_else(|| vec![model.clone()], |s| vec![s.to_string()]);
    Ok(Twin {
        framework: EngineKind::Sglang,
        config: engine_args(p, &model, &l).resolve(gpu),
        policy: policy(p, l.mem_fraction_static),
        running_from_pool: l.running.is_none(),
        model,
        served,
        host: p.get("host").unwrap_or("127.0.0.1").to_string(),
        port: num(p, "port").unwrap_or(DEFAULT_PORT),
        api_key: p.get("api_key").map(str::to_string),
        metrics: p.flag("enable_metrics"),
        startup_error: None,
    })
}

fn kv_dtype(v: Option<&str>) -> KvCacheDtype {
    match v {
        Some("fp8_e4m3") => KvCacheDtype::Fp8E4m3,
        Some("fp8_e5m2") => KvCacheDtype::Fp8E5m2,
        Some("bf16" | "bfloat16") => KvCacheDtype::Bfloat16,
        _ => KvCacheDtype::Auto,
    }
}

/// `[YYYY-MM-DD HH:MM:SS]`, SGLang's log prefix.
pub fn stamp() -> String {
    format!("[{}]", chrono::Local::now().format("%Y-%m-%d %H:%M:%S"))
}

/// SGLang's start-up lines, from weight loading to the resolved limits (messages from
/// `model_runner.py::load_model`, `memory_pool.py`, `cuda_graph_setup.py` and
/// `scheduler.py`; GB there is GiB).
pub fn startup_lines(t: &Twin, b: &Booted) -> Vec<String> {
    let s = stamp();
    let info = &b.info;
    let before = b.gpu_gib - crate::sim::memory::CUDA_CONTEXT_BYTES / crate::sim::memory::GIB;
    let loaded = before - info.weights_gib;
    let pooled = loaded - info.kv_cache_gib;
    let ready = pooled - info.cudagraph_memory_gib;
    let mut v = vec![
        format!("{s} Load weight begin. avail mem={before:.2} GB"),
        format!(
            "{s} Load weight end. elapsed={:.2} s, type=ForgeSimulatedModel, avail mem={loaded:.2} GB, mem usage={:.2} GB.",
            info.load_seconds, info.weights_gib
        ),
        format!(
            "{s} KV Cache is allocated. #tokens: {}, K size: {:.2} GB, V size: {:.2} GB",
            info.kv_cache_tokens,
            info.kv_cache_gib / 2.0,
            info.kv_cache_gib / 2.0
        ),
        format!("{s} Memory pool end. avail mem={pooled:.2} GB"),
    ];
    if !info.cudagraph_capture_sizes.is_empty() {
        let sizes: Vec<String> = info
            .cudagraph_capture_sizes
            .iter()
            .map(u32::to_string)
            .collect();
        v.push(format!(
            "{s} Capture target decode CUDA graph end. bs=[{}], elapsed={:.2} s, mem usage={:.2} GB, avail mem={ready:.2} GB.",
            sizes.join(", "),
            info.graph_capture_seconds,
            info.cudagraph_memory_gib
        ));
    }
    let chunk = if t.config.enable_chunked_prefill {
        i64::from(t.config.max_num_batched_tokens)
    } else {
        -1
    };
    v.push(format!(
        "{s} max_total_num_tokens={}, chunked_prefill_size={chunk}, max_prefill_tokens={MAX_PREFILL_TOKENS}, max_running_requests={}, context_len={}, available_gpu_mem={ready:.2} GB",
        info.kv_cache_tokens, b.max_running, b.context_len
    ));
    v
}
