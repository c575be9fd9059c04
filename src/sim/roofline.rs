//! Step time: a roofline model of one engine step (forge's simulator notes, "Step time").
//!
//! ```text
//! t_lin  = max(2·N_lin·T_pad/(P·η_c(T_pad)),  W_lin/(BW·η_m))       (MoE: experts apart)
//! t_attn = max(Σ_j 4·L·H·d·n_j·(p_j+n_j/2)/(P·η_a),  kv_tok·(Σc_i+Σp_j+T)/(BW·η_m))
//! t_head = max(2·N_head·S/(P·η_c(S)),  W_head/(BW·η_m))
//! t_gpu  = max(t_lin+t_attn+t_head, L·τ_floor, L·τ_launch) + t_allreduce + t_draft + τ_step
//! t_cpu  = c0 + c_seq·seqs + c_tok·T
//! period = max(t_gpu, t_cpu) with async scheduling, t_gpu + t_cpu without
//! ```
//! Everything per GPU: FLOPs and bytes divide by TP; two all-reduces per layer cost
//! `α + 2(tp−1)/tp · T·hidden·2 B / link`. η_c(T) = η_max·T/(T+T½).
//! Pipeline parallelism only splits memory (weights and KV per GPU divide by TP·PP); step
//! times are those of one TP group running every layer (micro-batch pipelining is not
//! modelled). Data parallelism is a matter of running several engines.
//! Calibration (see [`calib`]) reproduces the notes' sanity anchors for Llama-3-8B on H100
//! SXM and A100-40GB within ±20 % (checked in `tests/sim_fidelity.rs`).

use super::cudagraph::{CudaGraphs, Launch};
use super::model::ModelShape;
use super::quant::Precision;
use super::spec::SpecDecode;
use crate::engine::vllm::VllmConfig;
use crate::hardware::GpuSpec;

/// Calibrated constants. Public so reports can print them.
pub mod calib {
    /// Achieved fraction of peak memory bandwidth (η_m).
    pub const ETA_MEM: f64 = 0.77;
    /// Asymptotic fraction of peak tensor throughput for GEMMs (η_max).
    pub const ETA_COMPUTE_MAX: f64 = 0.55;
    /// Tokens at which GEMMs reach half of η_max (T½).
    pub const T_HALF: f64 = 64.0;
    /// Fraction of peak tensor throughput for prefill attention (η_a).
    pub const ETA_ATTN: f64 = 0.45;
    /// Fixed GPU time per step: sampling, input copies (τ_step), seconds.
    pub const TAU_STEP: f64 = 0.3e-3;
    /// Shortest GPU time one decoder layer can take (its ~12 kernels at a few µs each).
    pub const TAU_LAYER_FLOOR: f64 = 65e-6;
    /// Host launch cost per layer with PIECEWISE graphs (attention between pieces).
    pub const TAU_LAYER_PIECEWISE: f64 = 25e-6;
    /// Host launch cost per layer for torch.compile'd code without graphs.
    pub const TAU_LAYER_COMPILED: f64 = 45e-6;
    /// Host launch cost per layer in eager mode (`-O0`, `--enforce-eager`).
    pub const TAU_LAYER_EAGER: f64 = 0.35e-3;
    /// Extra eager launch cost per layer for weight-only quantized linears (4 Marlin calls).
    pub const TAU_LAYER_EAGER_QUANT: f64 = 0.10e-3;
    /// All-reduce latency over NVLink-class links (α), seconds.
    pub const ALLREDUCE_ALPHA_FAST: f64 = 12e-6;
    /// All-reduce latency over PCIe-class links.
    pub const ALLREDUCE_ALPHA_SLOW: f64 = 30e-6;
    /// Weight-only quantized GEMMs reach this fraction of the BF16 compute rate.
    pub const DEQUANT_COMPUTE: f64 = 0.8;
    /// Engine-core CPU time per step (scheduler, input preparation, output handling).
    pub const CPU_BASE: f64 = 2.0e-3;
    /// CPU time per scheduled sequence.
    pub const CPU_PER_SEQ: f64 = 50e-6;
    /// CPU time per scheduled token.
    pub const CPU_PER_TOKEN: f64 = 0.03e-6;
}

/// What one step computes, summed over its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BatchShape {
    /// Tokens computed (unpadded), including speculative tokens.
    pub tokens: u32,
    /// Requests scheduled.
    pub seqs: u32,
    /// Requests that sample at the end of the step.
    pub sampled: u32,
    /// Σ context length of decoding requests (tokens already in their KV cache).
    pub decode_context: u64,
    /// Σ prior context of prefill chunks.
    pub prefill_context: u64,
    /// Σ n·(p + n/2) over prefill chunks of n tokens at prior context p.
    pub prefill_attn_work: f64,
    /// Requests decoding (one token, or 1 + k speculative).
    pub decode_seqs: u32,
    /// Every request decodes the same number of tokens (FULL CUDA graph eligible).
    pub uniform_decode: bool,
}

/// Per-step time components, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepTime {
    /// GPU time of the step.
    pub gpu: f64,
    /// Engine CPU time of the step.
    pub cpu: f64,
    /// Step period (what the clock advances by).
    pub period: f64,
}

/// The terms of one step's GPU time, seconds per GPU:
/// `total = max(dense + experts + attention + head, floor, launch_bound) + allreduce + draft
/// + fixed`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepParts {
    /// Tokens after CUDA-graph padding.
    pub padded_tokens: u32,
    /// How the forward is launched.
    pub launch: Launch,
    /// Always-active linear layers (attention projections, dense MLPs, shared experts).
    pub dense: f64,
    /// Routed experts (MoE).
    pub experts: f64,
    /// Attention.
    pub attention: f64,
    /// Output head.
    pub head: f64,
    /// The shortest the layers can take (`L·τ_floor`).
    pub floor: f64,
    /// Host launch cost of the layers under this launch mode (`L·τ_launch`).
    pub launch_bound: f64,
    /// Tensor-parallel all-reduces.
    pub allreduce: f64,
    /// Speculative draft passes.
    pub draft: f64,
    /// Fixed per-step GPU time (τ_step: input copies, sampling).
    pub fixed: f64,
}

impl StepParts {
    /// The priced kernels of the layers and head.
    pub fn priced(&self) -> f64 {
        self.dense + self.experts + self.attention + self.head
    }

    /// The layers' time: priced kernels, raised to the floor or the host launch cost.
    pub fn body(&self) -> f64 {
        self.priced().max(self.floor).max(self.launch_bound)
    }

    /// GPU time of the step.
    pub fn total(&self) -> f64 {
        self.body() + self.allreduce + self.draft + self.fixed
    }
}

/// The precomputed roofline of one (model, GPU, config).
#[derive(Debug, Clone)]
pub struct StepModel {
    layers: f64,
    hidden: f64,
    attn_flop_coef: f64,
    dense_flops_per_token: f64,
    dense_bytes: f64,
    expert: Option<ExpertCost>,
    head_flops_per_token: f64,
    head_bytes: f64,
    kv_bytes_per_token: f64,
    /// Sliding-window layers' KV bytes per token on one GPU, and their window: they read
    /// at most the window of each sequence.
    sliding: Option<(f64, f64)>,
    p_lin: f64,
    p_attn: f64,
    bw: f64,
    tp: f64,
    link: f64,
    alpha: f64,
    eager_layer: f64,
    graphs: CudaGraphs,
    async_sched: bool,
    spec: Option<SpecDecode>,
}

/// Routed-expert costs of a MoE model, per GPU.
#[derive(Debug, Clone, Copy)]
struct ExpertCost {
    experts: f64,
    top_k: f64,
    flops_per_token_per_expert: f64,
    bytes_per_expert: f64,
}

/// Tensor rates (FLOP/s) of linear layers and of attention/the output head under `prec`.
fn compute_rates(gpu: &GpuSpec, prec: &Precision) -> (f64, f64) {
    let bf16 = gpu.bf16_tflops * 1e12 / (prec.act_bytes / 2.0);
    let p_lin = if prec.fp8_compute || prec.int8_compute {
        gpu.fp8_tflops.map_or(2.0 * bf16, |f| f * 1e12)
    } else if prec.weight_only {
        bf16 * calib::DEQUANT_COMPUTE
    } else {
        bf16
    };
    (p_lin, bf16)
}

/// Per-GPU FLOPs per token and bytes of the always-active linear layers, and the routed
/// experts' costs of a MoE model.
fn linear_terms(m: &ModelShape, prec: &Precision, tp: f64) -> (f64, f64, Option<ExpertCost>) {
    let w_bytes = super::model::bytes_per_weight(
        prec.method.as_deref(),
        m.quant.as_ref().map(|q| q.weight_bits),
        prec.act_bytes,
    );
    let moe_layers = f64::from(m.moe_layers());
    let expert_params = m.expert_params() as f64;
    let top_k = m.moe.as_ref().map_or(0.0, |x| f64::from(x.top_k));
    let active_dense = m.layer_linear_params_active() as f64 - moe_layers * top_k * expert_params;
    let expert = m.moe.as_ref().map(|x| ExpertCost {
        experts: f64::from(x.num_experts),
        top_k,
        flops_per_token_per_expert: 2.0 * expert_params * moe_layers / tp,
        bytes_per_expert: expert_params * moe_layers * w_bytes / tp,
    });
    (2.0 * active_dense / tp, active_dense * w_bytes / tp, expert)
}

/// η_c(T) = η_max·T/(T+T½).
pub fn eta_compute(tokens: f64) -> f64 {
    calib::ETA_COMPUTE_MAX * tokens / (tokens + calib::T_HALF)
}

/// Expected distinct experts touched by `tokens` tokens routing to `k` of `e` experts.
pub fn experts_touched(e: f64, k: f64, tokens: f64) -> f64 {
    e * (1.0 - (1.0 - k / e).powf(tokens))
}

impl StepModel {
    /// Precompute the roofline terms for `m` on `gpu` under `c`.
    pub fn new(
        m: &ModelShape,
        gpu: &GpuSpec,
        prec: &Precision,
        c: &VllmConfig,
        spec: Option<SpecDecode>,
    ) -> StepModel {
        let tp = f64::from(c.tensor_parallel_size.max(1));
        let (p_lin, p_attn) = compute_rates(gpu, prec);
        let (dense_flops, dense_bytes, expert) = linear_terms(m, prec, tp);
        StepModel {
            layers: f64::from(m.num_layers),
            hidden: m.hidden_size as f64,
            attn_flop_coef: 4.0
                * f64::from(m.num_layers)
                * f64::from(m.num_heads)
                * f64::from(m.head_dim)
                / tp,
            dense_flops_per_token: dense_flops,
            dense_bytes,
            expert,
            head_flops_per_token: 2.0 * m.lm_head_params() as f64 / tp,
            head_bytes: m.lm_head_params() as f64 * prec.act_bytes / tp,
            kv_bytes_per_token: m.kv_bytes_per_token_per_gpu(prec.kv_bytes, c.tensor_parallel_size),
            sliding: m.sliding.map(|s| {
                let per_layer =
                    m.kv_bytes_per_layer_token_per_gpu(prec.kv_bytes, c.tensor_parallel_size);
                (per_layer * f64::from(s.layers), f64::from(s.window))
            }),
            p_lin,
            p_attn,
            bw: gpu.bandwidth_tbs * 1e12,
            tp,
            link: gpu.link_gbs * 1e9,
            alpha: if gpu.link_gbs >= 200.0 {
                calib::ALLREDUCE_ALPHA_FAST
            } else {
                calib::ALLREDUCE_ALPHA_SLOW
            },
            eager_layer: calib::TAU_LAYER_EAGER
                + if prec.weight_only {
                    calib::TAU_LAYER_EAGER_QUANT
                } else {
                    0.0
                },
            graphs: CudaGraphs::from_config(c),
            async_sched: c.async_scheduling,
            spec,
        }
    }

    /// The graph setup in force.
    pub fn graphs(&self) -> &CudaGraphs {
        &self.graphs
    }

    /// KV bytes per token on one GPU.
    pub fn kv_bytes_per_token(&self) -> f64 {
        self.kv_bytes_per_token
    }

    fn mem(&self, bytes: f64) -> f64 {
        bytes / (self.bw * calib::ETA_MEM)
    }

    fn experts(&self, t_pad: f64) -> f64 {
        self.expert.map_or(0.0, |x| {
            let touched = experts_touched(x.experts, x.top_k, t_pad);
            let per_expert_tokens = (t_pad * x.top_k / touched).max(1.0);
            let flops = x.flops_per_token_per_expert * x.top_k * t_pad;
            (flops / (self.p_lin * eta_compute(per_expert_tokens)))
                .max(self.mem(touched * x.bytes_per_expert))
        })
    }

    fn attention(&self, b: &BatchShape) -> f64 {
        let flops = self.attn_flop_coef * b.prefill_attn_work;
        let context = b.decode_context as f64 + b.prefill_context as f64 + f64::from(b.tokens);
        let windowed = self.sliding.map_or(0.0, |(bytes, window)| {
            bytes * context.min(f64::from(b.seqs) * window)
        });
        let kv = self.kv_bytes_per_token * context + windowed;
        (flops / (self.p_attn * calib::ETA_ATTN)).max(self.mem(kv))
    }

    fn head(&self, sampled: f64) -> f64 {
        if sampled <= 0.0 {
            return 0.0;
        }
        (self.head_flops_per_token * sampled / (self.p_attn * eta_compute(sampled)))
            .max(self.mem(self.head_bytes))
    }

    fn allreduce(&self, t_pad: f64) -> f64 {
        if self.tp <= 1.0 {
            return 0.0;
        }
        let bytes = 2.0 * (self.tp - 1.0) / self.tp * t_pad * self.hidden * 2.0;
        2.0 * self.layers * (self.alpha + bytes / self.link)
    }

    fn launch(&self, kind: Launch) -> f64 {
        self.layers
            * match kind {
                Launch::FullGraph => 0.0,
                Launch::PiecewiseGraph => calib::TAU_LAYER_PIECEWISE,
                Launch::Compiled => calib::TAU_LAYER_COMPILED,
                Launch::Eager => self.eager_layer,
            }
    }

    /// GPU time of one forward pass over `b`.
    pub fn gpu_time(&self, b: &BatchShape) -> f64 {
        self.parts(b).map_or(0.0, |p| p.total())
    }

    /// The terms [`StepModel::gpu_time`] adds up for `b` (`None` for an empty step): what
    /// the simulator's profiler ([`super::profile`]) splits into kernels.
    pub fn parts(&self, b: &BatchShape) -> Option<StepParts> {
        if b.tokens == 0 {
            return None;
        }
        let (pad, kind) = self.graphs.plan(b.tokens, b.uniform_decode);
        let t_pad = f64::from(pad);
        let dense = (self.dense_flops_per_token * t_pad / (self.p_lin * eta_compute(t_pad)))
            .max(self.mem(self.dense_bytes));
        let experts = self.experts(t_pad);
        let attention = self.attention(b);
        let head = self.head(f64::from(b.sampled));
        Some(StepParts {
            padded_tokens: pad,
            launch: kind,
            dense,
            experts,
            attention,
            head,
            floor: self.layers * calib::TAU_LAYER_FLOOR,
            launch_bound: self.launch(kind),
            allreduce: self.allreduce(t_pad),
            draft: self.draft_time(b),
            fixed: calib::TAU_STEP,
        })
    }

    /// Bytes one GPU moves through memory per second at the roofline's achieved rate.
    pub fn achieved_bandwidth(&self) -> f64 {
        self.bw * calib::ETA_MEM
    }

    /// Draft-model time of a speculative step (zero without speculation).
    fn draft_time(&self, b: &BatchShape) -> f64 {
        let Some(s) = &self.spec else { return 0.0 };
        if b.decode_seqs == 0 {
            return 0.0;
        }
        let seqs = f64::from(b.decode_seqs);
        let one_layer = self.mem(self.dense_bytes / self.layers) + calib::TAU_LAYER_FLOOR;
        let pass = s.draft_layers * one_layer + s.draft_head * self.head(seqs);
        f64::from(s.k) * pass
    }

    /// Engine CPU time of a step.
    pub fn cpu_time(&self, b: &BatchShape) -> f64 {
        calib::CPU_BASE
            + calib::CPU_PER_SEQ * f64::from(b.seqs)
            + calib::CPU_PER_TOKEN * f64::from(b.tokens)
    }

    /// GPU, CPU and period of a step.
    pub fn step(&self, b: &BatchShape) -> StepTime {
        let gpu = self.gpu_time(b);
        let cpu = self.cpu_time(b);
        let period = if self.async_sched {
            gpu.max(cpu)
        } else {
            gpu + cpu
        };
        StepTime { gpu, cpu, period }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_efficiency_and_expert_coverage() {
        assert!((eta_compute(64.0) - calib::ETA_COMPUTE_MAX / 2.0).abs() < 1e-12);
        // One token touches exactly top-k experts; many tokens touch them all.
        assert!((experts_touched(128.0, 8.0, 1.0) - 8.0).abs() < 1e-9);
        assert!(experts_touched(128.0, 8.0, 4096.0) > 127.99);
    }
}
