//! vLLM engine arguments: what a user (or a recipe) sets ([`VllmArgs`], unset = engine
//! default) and what the engine ends up running with on a given GPU ([`VllmConfig`]),
//! resolved with vLLM 0.33's defaults:
//!
//! - `max_num_seqs`: 1024 on GPUs with >= 70 GiB that are not A100, else 256.
//! - `max_num_batched_tokens`: 16384 on >= 160 GiB, 8192 on >= 70 GiB (not A100), else 2048.
//! - prefix caching and chunked prefill on; `gpu_memory_utilization` 0.92; block size 16;
//!   `-O2`; async scheduling on; FCFS.

use serde::{Deserialize, Serialize};

use crate::hardware::GpuSpec;

/// `--kv-cache-dtype` values vLLM accepts (`bf16` is *not* one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KvCacheDtype {
    /// Same as the model dtype.
    #[default]
    Auto,
    /// `float16`.
    Float16,
    /// `bfloat16`.
    Bfloat16,
    /// `fp8` (= `fp8_e4m3`).
    Fp8,
    /// `fp8_e4m3`.
    Fp8E4m3,
    /// `fp8_e5m2`.
    Fp8E5m2,
}

impl KvCacheDtype {
    /// The spelling on vLLM's command line.
    pub fn as_flag(self) -> &'static str {
        match self {
            KvCacheDtype::Auto => "auto",
            KvCacheDtype::Float16 => "float16",
            KvCacheDtype::Bfloat16 => "bfloat16",
            KvCacheDtype::Fp8 => "fp8",
            KvCacheDtype::Fp8E4m3 => "fp8_e4m3",
            KvCacheDtype::Fp8E5m2 => "fp8_e5m2",
        }
    }

    /// Parse vLLM's spelling.
    pub fn from_flag(s: &str) -> Option<Self> {
        Some(match s {
            "auto" => KvCacheDtype::Auto,
            "float16" => KvCacheDtype::Float16,
            "bfloat16" => KvCacheDtype::Bfloat16,
            "fp8" => KvCacheDtype::Fp8,
            "fp8_e4m3" => KvCacheDtype::Fp8E4m3,
            "fp8_e5m2" => KvCacheDtype::Fp8E5m2,
            _ => return None,
        })
    }

    /// Bytes per element, given the model's own element size for `auto`.
    pub fn bytes(self, model_dtype_bytes: f64) -> f64 {
        match self {
            KvCacheDtype::Auto => model_dtype_bytes,
            KvCacheDtype::Float16 | KvCacheDtype::Bfloat16 => 2.0,
            KvCacheDtype::Fp8 | KvCacheDtype::Fp8E4m3 | KvCacheDtype::Fp8E5m2 => 1.0,
        }
    }
}

/// `--performance-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceMode {
    /// Default.
    #[default]
    Balanced,
    /// Favour per-user latency.
    Interactivity,
    /// Favour aggregate throughput.
    Throughput,
}

/// `--scheduling-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SchedulingPolicy {
    /// First come, first served.
    #[default]
    Fcfs,
    /// By request priority.
    Priority,
}

impl PerformanceMode {
    /// vLLM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PerformanceMode::Balanced => "balanced",
            PerformanceMode::Interactivity => "interactivity",
            PerformanceMode::Throughput => "throughput",
        }
    }
}

impl SchedulingPolicy {
    /// vLLM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulingPolicy::Fcfs => "fcfs",
            SchedulingPolicy::Priority => "priority",
        }
    }
}

/// What was set on the command line; `None` means "vLLM's default".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VllmArgs {
    /// Model id or path (positional).
    pub model: String,
    /// `--served-model-name` (first name).
    pub served_model_name: Option<String>,
    /// `--host`.
    pub host: Option<String>,
    /// `--port`.
    pub port: Option<u16>,
    /// `--max-num-seqs`.
    pub max_num_seqs: Option<u32>,
    /// `--max-num-batched-tokens`.
    pub max_num_batched_tokens: Option<u32>,
    /// `--enable-prefix-caching` / `--no-enable-prefix-caching`.
    pub enable_prefix_caching: Option<bool>,
    /// `--enable-chunked-prefill` / `--no-enable-chunked-prefill`.
    pub enable_chunked_prefill: Option<bool>,
    /// `--gpu-memory-utilization`.
    pub gpu_memory_utilization: Option<f64>,
    /// `--block-size`.
    pub block_size: Option<u32>,
    /// `--kv-cache-dtype`.
    pub kv_cache_dtype: Option<KvCacheDtype>,
    /// `--quantization` / `-q`.
    pub quantization: Option<String>,
    /// `--dtype`.
    pub dtype: Option<String>,
    /// `--max-model-len`.
    pub max_model_len: Option<u32>,
    /// `--tensor-parallel-size` / `-tp`.
    pub tensor_parallel_size: Option<u32>,
    /// `--pipeline-parallel-size` / `-pp`.
    pub pipeline_parallel_size: Option<u32>,
    /// `--data-parallel-size` / `-dp`.
    pub data_parallel_size: Option<u32>,
    /// `--enforce-eager`.
    pub enforce_eager: Option<bool>,
    /// `-O0`..`-O3` (`--optimization-level`).
    pub optimization_level: Option<u8>,
    /// `--cudagraph-capture-sizes`.
    pub cudagraph_capture_sizes: Option<Vec<u32>>,
    /// `--max-cudagraph-capture-size`.
    pub max_cudagraph_capture_size: Option<u32>,
    /// `--performance-mode`.
    pub performance_mode: Option<PerformanceMode>,
    /// `--async-scheduling` / `--no-async-scheduling`.
    pub async_scheduling: Option<bool>,
    /// `--long-prefill-token-threshold`.
    pub long_prefill_token_threshold: Option<u32>,
    /// `--scheduling-policy`.
    pub scheduling_policy: Option<SchedulingPolicy>,
    /// `--speculative-config` / `-sc` (JSON).
    pub speculative_config: Option<serde_json::Value>,
    /// `--attention-backend`.
    pub attention_backend: Option<String>,
    /// `--seed`.
    pub seed: Option<u64>,
}

/// The configuration the engine actually runs with: every default resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VllmConfig {
    /// Model id or path.
    pub model: String,
    /// Name the API serves the model under.
    pub served_model_name: String,
    /// Concurrent sequences per step.
    pub max_num_seqs: u32,
    /// Token budget per step (= chunked-prefill chunk).
    pub max_num_batched_tokens: u32,
    /// Automatic prefix caching.
    pub enable_prefix_caching: bool,
    /// Chunked prefill.
    pub enable_chunked_prefill: bool,
    /// Fraction of GPU memory for this instance.
    pub gpu_memory_utilization: f64,
    /// KV block size, tokens.
    pub block_size: u32,
    /// KV cache element type.
    pub kv_cache_dtype: KvCacheDtype,
    /// Weight quantization method (`None` = unquantized / from checkpoint).
    pub quantization: Option<String>,
    /// Model dtype (`auto`, `bfloat16`, `float16`, ...).
    pub dtype: String,
    /// Context limit; `None` = the model's `max_position_embeddings`.
    pub max_model_len: Option<u32>,
    /// Tensor parallel degree.
    pub tensor_parallel_size: u32,
    /// Pipeline parallel degree.
    pub pipeline_parallel_size: u32,
    /// Data parallel degree.
    pub data_parallel_size: u32,
    /// CUDA graphs off.
    pub enforce_eager: bool,
    /// Compilation level 0..3.
    pub optimization_level: u8,
    /// Explicit CUDA-graph capture sizes.
    pub cudagraph_capture_sizes: Option<Vec<u32>>,
    /// Largest CUDA-graph capture size (`None` = vLLM's rule).
    pub max_cudagraph_capture_size: Option<u32>,
    /// Performance mode.
    pub performance_mode: PerformanceMode,
    /// Overlap CPU scheduling with GPU execution.
    pub async_scheduling: bool,
    /// Per-step cap on one request's prefill chunk (0 = none).
    pub long_prefill_token_threshold: u32,
    /// Scheduling policy.
    pub scheduling_policy: SchedulingPolicy,
    /// Speculative decoding config (JSON), if any.
    pub speculative_config: Option<serde_json::Value>,
    /// Attention backend (`None` = auto).
    pub attention_backend: Option<String>,
    /// Engine seed.
    pub seed: u64,
}

/// GiB threshold above which vLLM picks its large-GPU defaults.
const LARGE_GPU_GIB: f64 = 70.0;
/// GiB threshold for the 16k token budget.
const HUGE_GPU_GIB: f64 = 160.0;

/// vLLM's default `max_num_seqs` for a GPU.
pub fn default_max_num_seqs(gpu: &GpuSpec) -> u32 {
    if gpu.memory_gib() >= LARGE_GPU_GIB && !gpu.is_a100() {
        1024
    } else {
        256
    }
}

/// vLLM's default `max_num_batched_tokens` for a GPU.
pub fn default_max_num_batched_tokens(gpu: &GpuSpec) -> u32 {
    let gib = gpu.memory_gib();
    if gib >= HUGE_GPU_GIB {
        16384
    } else if gib >= LARGE_GPU_GIB && !gpu.is_a100() {
        8192
    } else {
        2048
    }
}

impl VllmArgs {
    /// Resolve every default as vLLM 0.33 does on `gpu`.
    pub fn resolve(&self, gpu: &GpuSpec) -> VllmConfig {
        let eager = self.enforce_eager.unwrap_or(false);
        VllmConfig {
            model: self.model.clone(),
            served_model_name: self
                .served_model_name
                .clone()
                .unwrap_or_else(|| self.model.clone()),
            max_num_seqs: self
                .max_num_seqs
                .unwrap_or_else(|| default_max_num_seqs(gpu)),
            max_num_batched_tokens: self
                .max_num_batched_tokens
                .unwrap_or_else(|| default_max_num_batched_tokens(gpu)),
            enable_prefix_caching: self.enable_prefix_caching.unwrap_or(true),
            enable_chunked_prefill: self.enable_chunked_prefill.unwrap_or(true),
            gpu_memory_utilization: self.gpu_memory_utilization.unwrap_or(0.92),
            block_size: self.block_size.unwrap_or(16),
            kv_cache_dtype: self.kv_cache_dtype.unwrap_or_default(),
            quantization: self.quantization.clone(),
            dtype: self.dtype.clone().unwrap_or_else(|| "auto".into()),
            max_model_len: self.max_model_len,
            tensor_parallel_size: self.tensor_parallel_size.unwrap_or(1),
            pipeline_parallel_size: self.pipeline_parallel_size.unwrap_or(1),
            data_parallel_size: self.data_parallel_size.unwrap_or(1),
            enforce_eager: eager,
            optimization_level: if eager {
                0
            } else {
                self.optimization_level.unwrap_or(2)
            },
            cudagraph_capture_sizes: self.cudagraph_capture_sizes.clone(),
            max_cudagraph_capture_size: self.max_cudagraph_capture_size,
            performance_mode: self.performance_mode.unwrap_or_default(),
            async_scheduling: self.async_scheduling.unwrap_or(true),
            long_prefill_token_threshold: self.long_prefill_token_threshold.unwrap_or(0),
            scheduling_policy: self.scheduling_policy.unwrap_or_default(),
            speculative_config: self.speculative_config.clone(),
            attention_backend: self.attention_backend.clone(),
            seed: self.seed.unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::gpus::lookup;

    #[test]
    fn defaults_follow_gpu_class() {
        let h100 = lookup("H100").unwrap();
        let a100 = lookup("A100-80GB").unwrap();
        let l4 = lookup("L4").unwrap();
        let h200 = lookup("H200").unwrap();
        assert_eq!(default_max_num_seqs(h100), 1024);
        assert_eq!(default_max_num_seqs(a100), 256);
        assert_eq!(default_max_num_seqs(l4), 256);
        assert_eq!(default_max_num_batched_tokens(h100), 8192);
        assert_eq!(default_max_num_batched_tokens(a100), 2048);
        assert_eq!(default_max_num_batched_tokens(h200), 8192);
        assert_eq!(
            default_max_num_batched_tokens(lookup("B200").unwrap()),
            16384
        );
        let c = VllmArgs {
            model: "m".into(),
            ..Default::default()
        }
        .resolve(h100);
        assert!(c.enable_prefix_caching && c.enable_chunked_prefill && c.async_scheduling);
        assert_eq!(c.gpu_memory_utilization, 0.92);
        assert_eq!(c.served_model_name, "m");
        assert_eq!(c.optimization_level, 2);
    }
}
