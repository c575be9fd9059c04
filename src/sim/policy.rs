//! What differs between the serving frameworks the simulator stands in for, expressed on
//! one discrete-event core ([`super::engine`]): how the memory left for the KV cache is
//! computed, how requests are admitted (on demand with preemption, vLLM; a reservation for
//! future output with retraction, SGLang; a guaranteed reservation that never evicts,
//! TensorRT-LLM), in which order waiting requests are considered (FCFS or SGLang's longest
//! prefix match), and whether prefill and decode share a step (vLLM and TensorRT-LLM mix
//! them; SGLang runs a prefill batch or a decode batch unless `--enable-mixed-chunk`).
//! vLLM's behaviour is the default, so a setup that names no framework simulates vLLM.

use crate::recipe::EngineKind;

/// How the KV cache's memory is decided at boot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryRule {
    /// vLLM: `total × gpu_memory_utilization − (weights + activation peak + runtime [+
    /// CUDA graphs from 0.21])`.
    Vllm,
    /// SGLang: `total × mem_fraction_static − (weights + runtime)`; activations and CUDA
    /// graphs must fit in the rest (`total × (1 − mem_fraction_static)`).
    FractionOfTotal(f64),
    /// TensorRT-LLM: `fraction × (memory free after the weights and the profiling pass)`.
    FractionOfFree(f64),
}

/// How a waiting request is admitted and what happens when decode runs out of KV.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Admission {
    /// vLLM (and TensorRT-LLM's MAX_UTILIZATION): admit what fits now; when a running
    /// request cannot grow, preempt the newest (recompute).
    OnDemand,
    /// SGLang: admit only when the pool also holds `ratio` of every admitted request's
    /// remaining output; the ratio starts at `init`, falls by `decay` per decode step to
    /// `min`, and goes back to `init` when decode runs out and a request is retracted.
    Reserve {
        /// Starting (and reset) ratio.
        init: f64,
        /// Floor.
        min: f64,
        /// Decrease per decode step.
        decay: f64,
    },
    /// TensorRT-LLM's GUARANTEED_NO_EVICT: admit only when the pool holds the whole prompt
    /// and `max_tokens` of every admitted request; nothing is ever evicted.
    NoEvict,
}

/// A framework's scheduling and memory behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Which framework this is.
    pub framework: EngineKind,
    /// KV memory rule.
    pub memory: MemoryRule,
    /// Admission rule.
    pub admission: Admission,
    /// Longest-prefix-match ordering of the waiting queue (SGLang's `lpm`), used while at
    /// most [`LPM_MAX_QUEUE`] requests wait (SGLang falls back to FCFS beyond).
    pub lpm: bool,
    /// Prefill and decode run in separate batches (SGLang without `--enable-mixed-chunk`).
    pub separate_prefill: bool,
    /// Step time relative to vLLM's kernels on the same batch (1.0 = the same).
    pub step_factor: f64,
    /// Requests and outputs pass through the engine's API server (its CPU cost,
    /// [`super::frontend`]); false for an offline benchmark (`trtllm-bench`, SGLang's
    /// `bench_offline_throughput`), which drives the engine in process.
    pub api_server: bool,
    /// Longest prompt a request may have (TensorRT-LLM without chunked prefill:
    /// `max_num_tokens`); longer ones are refused with a 400.
    pub max_prompt_tokens: Option<u32>,
}

/// SGLang computes LPM priorities only while the queue is this short
/// (`schedule_policy.py`: beyond it the policy degrades to FCFS).
pub const LPM_MAX_QUEUE: usize = 128;

impl Policy {
    /// vLLM V1.
    pub fn vllm() -> Policy {
        Policy {
            framework: EngineKind::Vllm,
            memory: MemoryRule::Vllm,
            admission: Admission::OnDemand,
            lpm: false,
            separate_prefill: false,
            step_factor: 1.0,
            api_server: true,
            max_prompt_tokens: None,
        }
    }

    /// True for vLLM (its validation and startup log apply).
    pub fn is_vllm(&self) -> bool {
        self.framework == EngineKind::Vllm
    }
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::vllm()
    }
}
