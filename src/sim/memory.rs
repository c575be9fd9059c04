//! The boot-time memory plan, as vLLM's profiling run computes it (forge's simulator notes):
//!
//! ```text
//! requested = total × gpu_memory_utilization
//! non_kv    = weights/(TP·PP) + activation peak + non-torch runtime + CUDA-graph memory
//! kv        = requested − non_kv
//! blocks    = ⌊kv / (block_size · kv_bytes_per_token_per_gpu)⌋
//! ```
//! The activation peak is the profile run of `max_num_batched_tokens` tokens (hidden
//! states, fused QKV, gate/up and activation outputs) plus the sampler's fp32 logits for
//! `max_num_seqs` sequences. Runtime overhead: CUDA context, cuBLAS workspaces and, with
//! TP, NCCL buffers. CUDA-graph memory (vLLM's "Estimated CUDA graph memory") grows with the
//! number of captured sizes, layers and hidden size; it is zero when eager.
//! Failures carry vLLM's texts: weights beyond the card → `torch.OutOfMemoryError`,
//! `kv <= 0` → "No available memory for the cache blocks", one `max_model_len` request
//! not fitting → "... estimated maximum model length is M ...".

use super::interface::BootError;
use super::policy::MemoryRule;
use crate::hardware::GpuSpec;

/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
/// Memory the CUDA context takes before any tensor (never available to vLLM).
pub const CUDA_CONTEXT_BYTES: f64 = 0.45 * GIB;
/// Non-torch runtime memory on one GPU (cuBLAS/cuDNN workspaces, allocator slack).
pub const RUNTIME_BYTES: f64 = 0.35 * GIB;
/// Extra runtime memory per GPU when tensor/pipeline parallel (NCCL buffers).
pub const NCCL_BYTES: f64 = 0.25 * GIB;
/// The first vLLM whose memory profiling charges CUDA-graph memory to the KV budget by
/// default (its startup log: "CUDA graph memory profiling is enabled (default since
/// v0.21.0)"; `vllm/v1/worker/gpu_worker.py` before it: KV = requested − weights −
/// activation peak − non-torch memory, graphs captured afterwards).
pub const GRAPHS_IN_BUDGET_SINCE: crate::engine::vllm::flags::Version =
    crate::engine::vllm::flags::Version::new(0, 21, 0);
/// CUDA-graph memory per captured size, per layer, per 5120 hidden units.
pub const GRAPH_BYTES_UNIT: f64 = 0.00049 * GIB;

/// What the plan needs to know.
#[derive(Debug, Clone)]
pub struct MemoryInputs<'a> {
    /// The GPU (one of `tp·pp` identical ones).
    pub gpu: &'a GpuSpec,
    /// `--gpu-memory-utilization`.
    pub utilization: f64,
    /// Weight bytes of the whole model.
    pub weight_bytes: f64,
    /// Tensor × pipeline parallel GPUs the weights and KV are split over.
    pub shards: u32,
    /// Decoder layers.
    pub layers: u32,
    /// Hidden size.
    pub hidden: u64,
    /// Per-GPU width of the profile run's widest activations (q+k+v, 2·intermediate), units.
    pub activation_width: f64,
    /// Vocabulary size (sampler logits).
    pub vocab: u64,
    /// `--max-num-batched-tokens`.
    pub batched_tokens: u32,
    /// `--max-num-seqs`.
    pub max_num_seqs: u32,
    /// Bytes per activation element.
    pub act_bytes: f64,
    /// Captured CUDA-graph sizes (0 when eager).
    pub graph_sizes: usize,
    /// Whether the profiling run charges CUDA-graph memory to the budget (vLLM ≥ 0.21:
    /// `VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS` on by default); before, graphs are
    /// captured after the KV cache is sized and come out of the headroom above it.
    pub graphs_in_budget: bool,
    /// Which framework's rule decides the KV memory.
    pub rule: super::policy::MemoryRule,
    /// KV bytes per token on one GPU.
    pub kv_bytes_per_token: f64,
    /// `--block-size`.
    pub block_size: u32,
    /// Context limit in force.
    pub max_model_len: u32,
}

/// The plan's numbers, bytes per GPU.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryPlan {
    /// Total GPU memory.
    pub total: f64,
    /// total × utilization.
    pub requested: f64,
    /// Weights on this GPU.
    pub weights: f64,
    /// Profile-run activation peak.
    pub activations: f64,
    /// Non-torch runtime memory.
    pub runtime: f64,
    /// CUDA-graph memory.
    pub graphs: f64,
    /// What is left for the KV cache.
    pub kv: f64,
    /// KV blocks.
    pub num_blocks: u64,
    /// KV capacity in tokens (blocks × block size).
    pub kv_tokens: u64,
}

impl MemoryPlan {
    /// Plan memory, failing with vLLM's messages.
    pub fn compute(i: &MemoryInputs<'_>) -> Result<MemoryPlan, BootError> {
        let total = i.gpu.memory_bytes() as f64;
        let weights = i.weight_bytes / f64::from(i.shards.max(1));
        if weights + CUDA_CONTEXT_BYTES > total {
            return Err(BootError::Oom(torch_oom(total, weights, i)));
        }
        let activations = f64::from(i.batched_tokens)
            * (2.0 * i.hidden as f64 + i.activation_width)
            * i.act_bytes
            + f64::from(i.max_num_seqs) * i.vocab as f64 * 4.0 * 2.0;
        let runtime = RUNTIME_BYTES + if i.shards > 1 { NCCL_BYTES } else { 0.0 };
        let graphs = GRAPH_BYTES_UNIT
            * i.graph_sizes as f64
            * f64::from(i.layers)
            * (i.hidden as f64 / 5120.0);
        let requested = total * i.utilization;
        let charged = if i.graphs_in_budget { graphs } else { 0.0 };
        let kv = match i.rule {
            MemoryRule::Vllm => requested - weights - activations - runtime - charged,
            MemoryRule::FractionOfTotal(f) => {
                sglang_kv(total, f, weights, activations + runtime + graphs)?
            }
            MemoryRule::FractionOfFree(f) => {
                let free = total - weights - activations - runtime - graphs;
                if free <= 0.0 {
                    return Err(BootError::Oom(no_kv(i.rule, total, weights, Some(free))));
                }
                f * free
            }
        };
        if kv <= 0.0 {
            return Err(BootError::Oom(no_kv(i.rule, total, weights, None)));
        }
        let block_bytes = f64::from(i.block_size) * i.kv_bytes_per_token;
        let num_blocks = (kv / block_bytes).floor() as u64;
        let plan = MemoryPlan {
            total,
            requested,
            weights,
            activations,
            runtime,
            graphs,
            kv,
            num_blocks,
            kv_tokens: num_blocks * u64::from(i.block_size),
        };
        if i.rule == MemoryRule::Vllm {
            plan.check_max_len(i)?;
        }
        Ok(plan)
    }

    fn check_max_len(&self, i: &MemoryInputs<'_>) -> Result<(), BootError> {
        if self.kv_tokens >= u64::from(i.max_model_len) {
            return Ok(());
        }
        let bs = u64::from(i.block_size);
        let need_tokens = u64::from(i.max_model_len).div_ceil(bs) * bs;
        let needed = need_tokens as f64 * i.kv_bytes_per_token;
        Err(BootError::Oom(format!(
            "ValueError: To serve at least one request with the model's max seq len ({}), \
             ({} GiB KV cache is needed, which is larger than the available KV cache memory \
             ({} GiB). Based on the available memory, the estimated maximum model length is \
             {}. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when \
             initializing the engine. See \
             https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details.",
            i.max_model_len,
            py_round2(needed / GIB),
            py_round2(self.kv / GIB),
            self.kv_tokens
        )))
    }

    /// KV cache memory, GiB.
    pub fn kv_gib(&self) -> f64 {
        self.kv / GIB
    }

    /// Weight memory, GiB.
    pub fn weights_gib(&self) -> f64 {
        self.weights / GIB
    }
}

/// Python's `str(round(x, 2))`: `1.0`, `0.58`, `4.5`.
pub fn py_round2(x: f64) -> String {
    let r = (x * 100.0).round() / 100.0;
    if r.fract() == 0.0 {
        format!("{r:.1}")
    } else {
        format!("{r}")
    }
}

/// PyTorch's size formatting in OOM messages.
fn torch_size(bytes: f64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes / GIB)
    } else {
        format!("{:.2} MiB", bytes / (1024.0 * 1024.0))
    }
}

/// PyTorch's message when loading the weights runs out of device memory: the failing
/// allocation is one fused MLP weight (gate+up) of a layer.
fn torch_oom(total: f64, weights: f64, i: &MemoryInputs<'_>) -> String {
    let per_layer = weights / f64::from(i.layers.max(1));
    let chunk = (per_layer * 0.6).max(1.0);
    let usable = total - CUDA_CONTEXT_BYTES;
    let allocated = (usable / chunk).floor() * chunk;
    let free = total - CUDA_CONTEXT_BYTES - allocated;
    format!(
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate {}. GPU 0 has a total \
         capacity of {} of which {} is free. Including non-PyTorch memory, this process has {} \
         memory in use. Of the allocated memory {} is allocated by PyTorch, and {} is reserved \
         by PyTorch but unallocated. If reserved but unallocated memory is large try setting \
         PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See \
         documentation for Memory Management  \
         (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)",
        torch_size(chunk),
        torch_size(total),
        torch_size(free),
        torch_size(total - free),
        torch_size(allocated),
        torch_size(0.0),
    )
}

/// SGLang's KV pool (`kv_cache_configurator.py::_profile_available_bytes`): what
/// `mem_fraction_static` of the card leaves after the weights and the runtime; activations
/// and CUDA graphs must fit in the rest, or graph capture fails with SGLang's own message
/// (`decode_cuda_graph_runner.py`, `CUDA_GRAPH_CAPTURE_FAILED_MSG` of 0.5.23).
fn sglang_kv(total: f64, fraction: f64, weights: f64, outside: f64) -> Result<f64, BootError> {
    let reserve = total * (1.0 - fraction);
    if outside > reserve {
        return Err(BootError::Oom(format!(
            "Exception: Capture cuda graph failed: CUDA out of memory. Tried to allocate {} \
             ({} are left outside mem_fraction_static={fraction})\n\
             Possible solutions:\n\
             1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)\n\
             2. set --cuda-graph-max-bs-decode to a smaller value (e.g., 16)\n\
             3. disable decode CUDA graph by --cuda-graph-backend-decode=disabled. (Not \
             recommended. Huge performance loss)",
            torch_size(outside - reserve),
            torch_size(reserve),
        )));
    }
    Ok(total * fraction - weights)
}

/// The start-up failure when a framework's rule leaves no memory for the KV cache: vLLM's
/// "No available memory for the cache blocks", SGLang's `MemoryPoolConfig` check, or
/// TensorRT-LLM's executor creation (with what the profiling pass left `free`, when known).
fn no_kv(rule: MemoryRule, total: f64, weights: f64, free: Option<f64>) -> String {
    match rule {
        MemoryRule::FractionOfFree(f) => {
            let mut msg = format!(
                "RuntimeError: Executor creation failed due to insufficient GPU memory.\n\
                 The following component could not be created: KV cache\n\
                 Total GPU memory (GiB): {:.2}\nModel weights (GiB): {:.2}\n\
                 free_gpu_memory_fraction: {f}",
                total / GIB,
                weights / GIB
            );
            if let Some(free) = free {
                msg.push_str(&format!("\nFree after profiling (GiB): {:.2}", free / GIB));
            }
            msg
        }
        MemoryRule::FractionOfTotal(f) => format!(
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. \
             Current value: mem_fraction_static={f}"
        ),
        MemoryRule::Vllm => "ValueError: No available memory for the cache blocks. Try \
             increasing `gpu_memory_utilization` when initializing the engine. See \
             https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_rounding_spelling() {
        assert_eq!(py_round2(1.0), "1.0");
        assert_eq!(py_round2(0.5811), "0.58");
        assert_eq!(py_round2(4.499), "4.5");
        assert_eq!(torch_size(896.0 * 1024.0 * 1024.0), "896.00 MiB");
    }
}
