//! TensorRT-LLM's twin: `trtllm-serve serve MODEL` options and its
//! `--extra_llm_api_options` YAML (strict, as `LlmArgs` is: an unknown key fails start-up
//! with pydantic's "Extra inputs are not permitted"), resolved with the PyTorch backend's
//! defaults (the adapter's [`crate::engine::trtllm::defaults`]: max_batch_size 2048,
//! max_num_tokens 8192, KV 0.9 of the memory free after the profiling pass, 32-token blocks
//! with reuse, chunked prefill off, GUARANTEED_NO_EVICT, CUDA graphs on up to batch 128
//! without padding, overlap scheduler on).
//! Without chunked prefill a prompt over `max_num_tokens` is refused with a 400.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::cli::{Parsed, UsageError};
use super::{Booted, Twin};
use crate::engine::trtllm::adapter::served_model_name;
use crate::engine::trtllm::defaults;
use crate::engine::vllm::{KvCacheDtype, VllmArgs};
use crate::hardware::GpuSpec;
use crate::recipe::EngineKind;
use crate::sim::policy::{Admission, MemoryRule, Policy};

/// trtllm-serve's default port.
pub const DEFAULT_PORT: u16 = 8000;

/// The YAML keys the twin reads (a subset of `LlmArgs`; every other key of the real schema
/// is accepted and ignored, an unknown one refused).
#[derive(Debug, Default, Deserialize)]
struct Yaml {
    #[serde(default)]
    kv_cache_config: Option<KvCacheConfig>,
    #[serde(default)]
    cuda_graph_config: Option<Option<CudaGraphConfig>>,
    #[serde(default)]
    scheduler_config: Option<SchedulerConfig>,
    #[serde(default)]
    enable_chunked_prefill: Option<bool>,
    #[serde(default)]
    disable_overlap_scheduler: Option<bool>,
    #[serde(default)]
    max_batch_size: Option<u32>,
    #[serde(default)]
    max_num_tokens: Option<u32>,
    #[serde(default)]
    max_seq_len: Option<u32>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct KvCacheConfig {
    free_gpu_memory_fraction: Option<f64>,
    enable_block_reuse: Option<bool>,
    tokens_per_block: Option<u32>,
    dtype: Option<String>,
    #[serde(flatten)]
    other: BTreeMap<String, serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
struct CudaGraphConfig {
    max_batch_size: Option<u32>,
    batch_sizes: Option<Vec<u32>>,
}

#[derive(Debug, Default, Deserialize)]
struct SchedulerConfig {
    capacity_scheduler_policy: Option<String>,
}

/// Top-level `LlmArgs` keys the twin accepts without modelling them.
const OTHER_KEYS: &[&str] = &[
    "attn_backend",
    "stream_interval",
    "return_perf_metrics",
    "enable_iter_perf_stats",
    "print_iter_log",
    "enable_attention_dp",
    "speculative_config",
    "trust_remote_code",
    "backend",
];
const KV_OTHER_KEYS: &[&str] = &["max_tokens", "host_cache_size", "enable_partial_reuse"];

fn extra(key: &str, v: &serde_norway::Value) -> String {
    use serde_norway::Value as Y;
    let (repr, ty) = match v {
        Y::Bool(b) => ((if *b { "True" } else { "False" }).to_string(), "bool"),
        Y::Number(n) if n.is_f64() => (n.to_string(), "float"),
        Y::Number(n) => (n.to_string(), "int"),
        Y::String(x) => (format!("'{x}'"), "str"),
        Y::Null => ("None".to_string(), "NoneType"),
        Y::Sequence(_) => ("[...]".to_string(), "list"),
        _ => ("{...}".to_string(), "dict"),
    };
    format!(
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for TorchLlmArgs\n{key}\n  Extra inputs are not permitted [type=extra_forbidden, input_value={repr}, input_type={ty}]"
    )
}

fn read_yaml(path: &str, read: &Reader<'_>) -> Result<Yaml, String> {
    let text = read(path).map_err(|e| {
        format!("FileNotFoundError: [Errno 2] No such file or directory: '{path}' ({e})")
    })?;
    let y: Yaml =
        serde_norway::from_str(&text).map_err(|e| format!("yaml.scanner.ScannerError: {e}"))?;
    if let Some((k, v)) = y
        .other
        .iter()
        .find(|(k, _)| !OTHER_KEYS.contains(&k.as_str()))
    {
        return Err(extra(k, v));
    }
    if let Some(kv) = &y.kv_cache_config
        && let Some((k, v)) = kv
            .other
            .iter()
            .find(|(k, _)| !KV_OTHER_KEYS.contains(&k.as_str()))
    {
        return Err(extra(&format!("kv_cache_config.{k}"), v));
    }
    Ok(y)
}

fn num<T: std::str::FromStr>(p: &Parsed, dest: &str) -> Option<T> {
    p.get(dest).and_then(|v| v.parse().ok())
}

/// How the twin reads the file `--extra_llm_api_options` names.
pub type Reader<'a> = dyn Fn(&str) -> std::io::Result<String> + 'a;

/// Resolve a parsed `trtllm-serve serve` command line on `gpu`, its YAML read from disk.
pub fn resolve(p: &Parsed, gpu: &GpuSpec) -> Result<Twin, UsageError> {
    resolve_with(p, gpu, &|path: &str| std::fs::read_to_string(path))
}

/// [`resolve`], reading the YAML through `read` (the surrogate passes the text the adapter
/// rendered instead of writing it to disk).
pub fn resolve_with(p: &Parsed, gpu: &GpuSpec, read: &Reader<'_>) -> Result<Twin, UsageError> {
    let model = p.positionals.first().cloned().unwrap_or_default();
    let (yaml, startup_error) = match p.get("extra_llm_api_options") {
        Some(path) => match read_yaml(path, read) {
            Ok(y) => (y, None),
            Err(e) => (Yaml::default(), Some(e)),
        },
        None => (Yaml::default(), None),
    };
    let l = limits(p, yaml);
    Ok(Twin {
        framework: EngineKind::Trtllm,
        served: vec![served_model_name(&model)],
        config: engine_args(p, &model, &l).resolve(gpu),
        policy: policy(&l),
        model,
        host: p.get("host").unwrap_or("localhost").to_string(),
        port: num(p, "port").unwrap_or(DEFAULT_PORT),
        api_key: None,
        running_from_pool: false,
        metrics: true,
        startup_error: startup_error.or_else(|| backend_error(p)),
    })
}

/// What trtllm-serve resolves from its options and the YAML (an option wins over the same
/// key in the YAML; forge never sets both).
struct Limits {
    batch: u32,
    tokens: u32,
    chunked: bool,
    fraction: f64,
    /// Largest CUDA-graph batch; `None` when `cuda_graph_config: null` turns graphs off.
    graph_max: Option<u32>,
    no_evict: bool,
    kv: KvCacheConfig,
    max_seq_len: Option<u32>,
    overlap: bool,
}

fn limits(p: &Parsed, yaml: Yaml) -> Limits {
    let kv = yaml.kv_cache_config.unwrap_or_default();
    let graph_max = match yaml.cuda_graph_config {
        Some(None) => None,
        Some(Some(c)) => Some(
            c.max_batch_size
                .or_else(|| c.batch_sizes.as_ref().and_then(|b| b.iter().max().copied()))
                .unwrap_or(defaults::CUDA_GRAPH_MAX_BATCH_SIZE as u32),
        ),
        None => Some(defaults::CUDA_GRAPH_MAX_BATCH_SIZE as u32),
    };
    let policy = yaml
        .scheduler_config
        .and_then(|s| s.capacity_scheduler_policy)
        .unwrap_or_else(|| defaults::CAPACITY_POLICY.into());
    Limits {
        batch: num(p, "max_batch_size")
            .or(yaml.max_batch_size)
            .unwrap_or(defaults::MAX_BATCH_SIZE as u32),
        tokens: num(p, "max_num_tokens")
            .or(yaml.max_num_tokens)
            .unwrap_or(defaults::MAX_NUM_TOKENS as u32),
        chunked: p.flag("enable_chunked_prefill") || yaml.enable_chunked_prefill.unwrap_or(false),
        fraction: num(p, "kv_cache_free_gpu_memory_fraction")
            .or(kv.free_gpu_memory_fraction)
            .unwrap_or(defaults::KV_FRACTION),
        graph_max,
        no_evict: policy == defaults::CAPACITY_POLICY,
        max_seq_len: num(p, "max_seq_len").or(yaml.max_seq_len),
        overlap: !yaml.disable_overlap_scheduler.unwrap_or(false),
        kv,
    }
}

/// The shared core's configuration for these limits.
fn engine_args(p: &Parsed, model: &str, l: &Limits) -> VllmArgs {
    VllmArgs {
        model: model.to_string(),
        max_num_seqs: Some(l.batch),
        max_num_batched_tokens: Some(l.tokens),
        enable_prefix_caching: Some(l.kv.enable_block_reuse.unwrap_or(true)),
        enable_chunked_prefill: Some(l.chunked),
        gpu_memory_utilization: Some(l.fraction),
        block_size: Some(
            l.kv.tokens_per_block
                .unwrap_or(defaults::TOKENS_PER_BLOCK as u32),
        ),
        kv_cache_dtype: Some(if l.kv.dtype.as_deref() == Some("fp8") {
            KvCacheDtype::Fp8
        } else {
            KvCacheDtype::Auto
        }),
        max_model_len: l.max_seq_len,
        tensor_parallel_size: Some(num(p, "tp_size").unwrap_or(1)),
        pipeline_parallel_size: Some(num(p, "pp_size").unwrap_or(1)),
        enforce_eager: Some(l.graph_max.is_none()),
        max_cudagraph_capture_size: l.graph_max,
        async_scheduling: Some(l.overlap),
        ..Default::default()
    }
}

/// TensorRT-LLM's behaviour on the core: KV from the memory free after profiling, the
/// capacity policy's admission, a 400 for a prompt over `max_num_tokens` without chunking.
fn policy(l: &Limits) -> Policy {
    Policy {
        framework: EngineKind::Trtllm,
        memory: MemoryRule::FractionOfFree(l.fraction),
        admission: if l.no_evict {
            Admission::NoEvict
        } else {
            Admission::OnDemand
        },
        lpm: false,
        separate_prefill: false,
        step_factor: 1.0,
        api_server: true,
        max_prompt_tokens: (!l.chunked).then_some(l.tokens),
    }
}

/// Anything but the PyTorch backend is not what the twin simulates.
fn backend_error(p: &Parsed) -> Option<String> {
    match p.get("backend") {
        None | Some("pytorch") => None,
        Some(other) => Some(format!(
            "NotImplementedError: forge's TensorRT-LLM twin simulates the PyTorch backend only, not `{other}`"
        )),
    }
}

/// TensorRT-LLM's start-up lines (`_torch/pyexecutor/_util.py`'s KV-cache estimation).
pub fn startup_lines(_t: &Twin, b: &Booted) -> Vec<String> {
    let info = &b.info;
    vec![
        format!(
            "[TRT-LLM] [I] Memory used after loading model weights (inside torch) in memory usage profiling: {:.2} GiB",
            info.weights_gib
        ),
        format!(
            "[TRT-LLM] [I] Estimated max memory in KV cache : {:.2} GiB",
            info.kv_cache_gib
        ),
        format!(
            "[TRT-LLM] [I] [MemUsageChange] Allocated {:.2} GiB for max tokens in paged KV cache ({}).",
            info.kv_cache_gib, info.kv_cache_tokens
        ),
    ]
}
