//! One simulated engine step as a torch-profiler Chrome trace: its kernels, in the order a
//! decoder forward launches them, with durations split from the roofline's GPU time, and
//! the CPU events that launched them.
//!
//! Per step: input copy; per layer input norm, QKV GEMM, rope, KV-cache write, attention,
//! O-proj GEMM, all-reduce (TP > 1), post-attention fused add+norm, gate_up GEMM (MoE:
//! router GEMM, top-k gating, two fused-MoE GEMMs), activation, down GEMM, all-reduce
//! (TP > 1); then final norm, lm_head GEMM, sampling (and a draft pass when speculating).
//!
//! The split of the step's GPU time `G` ([`StepParts`], times the engine's speed factor):
//! - the linear term `dense` goes to the GEMMs in proportion to their parameters (the
//!   roofline prices both its compute and its memory bound by parameter count, so this is
//!   its own split); `experts` to the fused-MoE kernels of the MoE layers (w13 ⅔, w2 ⅓);
//!   `attention` evenly over the layers; `head` to lm_head; `allreduce` evenly over the 2L
//!   all-reduces; `draft` to one draft kernel; `fixed` (τ_step) 30 % input copy, 70 %
//!   sampling.
//! - the roofline does not price norms, rope, KV writes and activations: they get their
//!   memory time (bytes moved ÷ achieved bandwidth). The layers' kernels (priced and these)
//!   then fill `max(priced, L·τ_floor)`: when the floor is higher (small batches), the
//!   shortest kernels are raised to a common minimum (the floor is "each kernel takes a few
//!   µs"); when the kernels overrun it, they are scaled down in proportion.
//! - what the host launch cost adds beyond that (`launch_bound`, eager mode) is GPU idle
//!   time, drawn as gaps between the layers' kernels.
//!
//! So Σ kernel durations + Σ idle gaps = `G` exactly. Each kernel is also followed by a
//! fixed [`LAUNCH_GAP_US`] (not part of `G`), as real streams show.
//!
//! Launches: under a FULL CUDA graph ([`Launch::FullGraph`]) the whole forward is one
//! `cudaGraphLaunch` whose kernels share its correlation id; under piecewise graphs each
//! layer's pieces between attentions are one graph launch and attention is launched on its
//! own; otherwise every kernel has its `cudaLaunchKernel`, `cpu_op` (same `External id`)
//! and Python frame. Kernel names follow the framework (vLLM, SGLang) and the GPU family
//! (cuBLAS `nvjet` on Hopper/Blackwell, `ampere_…` GEMMs on Ampere, Tensile `Cijk_…` and
//! Triton attention on ROCm). Python line numbers are indicative.

use serde_json::{Value, json};

use super::StepRecord;
use crate::engine::vllm::VllmConfig;
use crate::hardware::{GpuSpec, Vendor};
use crate::recipe::EngineKind;
use crate::sim::cudagraph::Launch;
use crate::sim::model::ModelShape;
use crate::sim::roofline::{StepModel, StepParts};

/// Idle time after every kernel on the stream, µs (not part of the roofline's time).
pub const LAUNCH_GAP_US: f64 = 0.5;
/// The GPU device (trace pid) and stream (tid).
const DEVICE: u32 = 0;
const STREAM: u32 = 7;
/// How long a launch call takes on the host, µs.
const LAUNCH_US: f64 = 4.0;
/// How far ahead of its kernel the host launches it, µs.
const LEAD_US: f64 = 12.0;

/// What a kernel computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Input ids and positions copied to the GPU.
    InputCopy,
    /// Input RMSNorm.
    InputNorm,
    /// QKV projection.
    Qkv,
    /// Rotary embedding.
    Rope,
    /// KV-cache write.
    KvWrite,
    /// Attention.
    Attention,
    /// Output projection.
    OProj,
    /// Tensor-parallel all-reduce.
    AllReduce,
    /// Residual add + RMSNorm.
    PostNorm,
    /// Gate and up projections.
    GateUp,
    /// SiLU-and-mul.
    Act,
    /// Down projection.
    Down,
    /// MoE router GEMM (and shared experts).
    Router,
    /// MoE top-k gating.
    Gating,
    /// Fused-MoE gate_up GEMM.
    MoeUp,
    /// Fused-MoE down GEMM.
    MoeDown,
    /// Final norm.
    FinalNorm,
    /// Output head.
    LmHead,
    /// Sampling.
    Sample,
    /// Draft model pass (speculative decoding).
    Draft,
}

/// One kernel of a step.
#[derive(Debug, Clone, PartialEq)]
pub struct Kernel {
    /// What it computes.
    pub op: Op,
    /// Its decoder layer.
    pub layer: Option<u32>,
    /// Duration, µs.
    pub dur_us: f64,
    /// Idle time after it from host launch cost (part of the roofline's time), µs.
    pub idle_us: f64,
}

/// GPU families whose kernel names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ampere,
    Hopper,
    Amd,
}

/// The model and setup numbers the trace needs, taken at boot.
#[derive(Debug, Clone)]
pub struct TraceModel {
    layers: u32,
    moe_layers: u32,
    hidden: f64,
    q_dim: f64,
    kv_dim: f64,
    inter: f64,
    top_k: f64,
    qkv: f64,
    o: f64,
    mlp: f64,
    moe_fixed: f64,
    tp: u32,
    act_bytes: f64,
    gpu_name: &'static str,
    memory: u64,
    capability: (u32, u32),
    family: Family,
    framework: EngineKind,
    flashinfer: bool,
}

impl TraceModel {
    /// Take what the trace needs from the model, GPU and config.
    pub fn new(
        m: &ModelShape,
        gpu: &'static GpuSpec,
        c: &VllmConfig,
        framework: EngineKind,
    ) -> TraceModel {
        let tp = c.tensor_parallel_size.max(1);
        let t = f64::from(tp);
        let q = f64::from(m.num_heads) * f64::from(m.head_dim);
        let kv = f64::from(m.num_kv_heads) * f64::from(m.head_dim);
        let h = m.hidden_size as f64;
        let family = match (gpu.vendor, gpu.compute_capability) {
            (Vendor::Amd, _) => Family::Amd,
            (_, Some((major, _))) if major < 9 => Family::Ampere,
            _ => Family::Hopper,
        };
        let backend = c.attention_backend.as_deref().unwrap_or_default();
        TraceModel {
            layers: m.num_layers,
            moe_layers: m.moe_layers(),
            hidden: h,
            q_dim: q / t,
            kv_dim: kv / t,
            inter: m.intermediate_size as f64 / t,
            top_k: m.moe.as_ref().map_or(0.0, |x| f64::from(x.top_k)),
            qkv: h * (q + 2.0 * kv),
            o: q * h,
            mlp: m.dense_mlp_params() as f64,
            moe_fixed: m.moe_fixed_params() as f64,
            tp,
            act_bytes: m.dtype_bytes.max(1.0),
            gpu_name: gpu.name,
            memory: gpu.memory_bytes(),
            capability: gpu.compute_capability.unwrap_or((9, 4)),
            family,
            framework,
            flashinfer: framework == EngineKind::Sglang
                || backend.eq_ignore_ascii_case("FLASHINFER"),
        }
    }

    /// Decoder layers.
    pub fn layers(&self) -> u32 {
        self.layers
    }

    /// Tensor-parallel size.
    pub fn tp(&self) -> u32 {
        self.tp
    }

    fn is_moe_layer(&self, layer: u32) -> bool {
        layer >= self.layers - self.moe_layers
    }

    /// The layer's always-active linear parameters, per op.
    fn layer_params(&self, layer: u32) -> Vec<(Op, f64)> {
        let mut v = vec![(Op::Qkv, self.qkv), (Op::OProj, self.o)];
        if self.is_moe_layer(layer) {
            v.push((Op::Router, self.moe_fixed));
        } else {
            v.push((Op::GateUp, self.mlp * 2.0 / 3.0));
            v.push((Op::Down, self.mlp / 3.0));
        }
        v
    }

    /// Bytes an unpriced (memory-bound) op moves for `t` tokens.
    fn pointwise_bytes(&self, op: Op, t: f64) -> f64 {
        let b = self.act_bytes;
        match op {
            Op::InputNorm | Op::FinalNorm => 2.0 * t * self.hidden * b,
            Op::PostNorm => 4.0 * t * self.hidden * b,
            Op::Rope => 2.0 * t * (self.q_dim + self.kv_dim) * b,
            Op::KvWrite => 2.0 * t * 2.0 * self.kv_dim * b,
            Op::Act => 3.0 * t * self.inter * b,
            Op::Gating => t * self.top_k.max(1.0) * 8.0,
            _ => 0.0,
        }
    }
}

/// The kernels of one step, in launch order, with their durations (see the module docs).
pub fn kernels(tm: &TraceModel, p: &StepParts, factor: f64, bandwidth: f64) -> Vec<Kernel> {
    let t = f64::from(p.padded_tokens);
    let tp = tm.tp > 1;
    // Priced ops per layer and their share of their term.
    let dense_total: f64 = (0..tm.layers)
        .flat_map(|l| tm.layer_params(l))
        .map(|(_, w)| w)
        .sum::<f64>()
        .max(1.0);
    let moe_layers = f64::from(tm.moe_layers.max(1));
    let layers = f64::from(tm.layers.max(1));
    let mut ks: Vec<Kernel> = Vec::new();
    // The last argument says whether the roofline prices the op (documentation only).
    let mut push = |op, layer, dur: f64, _unpriced: bool| {
        ks.push(Kernel {
            op,
            layer,
            dur_us: dur * 1e6,
            idle_us: 0.0,
        });
    };
    let mem = |bytes: f64| bytes / bandwidth;
    push(Op::InputCopy, None, p.fixed * 0.3, false);
    for l in 0..tm.layers {
        let params = tm.layer_params(l);
        let share = |op| {
            params
                .iter()
                .find(|(o, _)| *o == op)
                .map_or(0.0, |(_, w)| p.dense * w / dense_total)
        };
        let layer = Some(l);
        push(
            Op::InputNorm,
            layer,
            mem(tm.pointwise_bytes(Op::InputNorm, t)),
            true,
        );
        push(Op::Qkv, layer, share(Op::Qkv), false);
        push(Op::Rope, layer, mem(tm.pointwise_bytes(Op::Rope, t)), true);
        push(
            Op::KvWrite,
            layer,
            mem(tm.pointwise_bytes(Op::KvWrite, t)),
            true,
        );
        push(Op::Attention, layer, p.attention / layers, false);
        push(Op::OProj, layer, share(Op::OProj), false);
        if tp {
            push(Op::AllReduce, layer, p.allreduce / (2.0 * layers), false);
        }
        push(
            Op::PostNorm,
            layer,
            mem(tm.pointwise_bytes(Op::PostNorm, t)),
            true,
        );
        if tm.is_moe_layer(l) {
            push(Op::Router, layer, share(Op::Router), false);
            push(
                Op::Gating,
                layer,
                mem(tm.pointwise_bytes(Op::Gating, t)),
                true,
            );
            push(Op::MoeUp, layer, p.experts / moe_layers * 2.0 / 3.0, false);
            push(
                Op::Act,
                layer,
                mem(tm.pointwise_bytes(Op::Act, t * tm.top_k)),
                true,
            );
            push(Op::MoeDown, layer, p.experts / moe_layers / 3.0, false);
        } else {
            push(Op::GateUp, layer, share(Op::GateUp), false);
            push(Op::Act, layer, mem(tm.pointwise_bytes(Op::Act, t)), true);
            push(Op::Down, layer, share(Op::Down), false);
        }
        if tp {
            push(Op::AllReduce, layer, p.allreduce / (2.0 * layers), false);
        }
    }
    push(
        Op::FinalNorm,
        None,
        mem(tm.pointwise_bytes(Op::FinalNorm, t)),
        true,
    );
    if p.head > 0.0 {
        push(Op::LmHead, None, p.head, false);
    }
    push(Op::Sample, None, p.fixed * 0.7, false);
    if p.draft > 0.0 {
        push(Op::Draft, None, p.draft, false);
    }
    // Fit the layers' kernels (priced + pointwise) into max(priced, floor).
    let in_body = |k: &Kernel| {
        (k.layer.is_some() && k.op != Op::AllReduce) || k.op == Op::FinalNorm || k.op == Op::LmHead
    };
    let busy = p.priced().max(p.floor) * 1e6;
    let raw: Vec<f64> = ks.iter().filter(|k| in_body(k)).map(|k| k.dur_us).collect();
    let fitted = fit(&raw, busy);
    let idle = (p.body() - p.priced().max(p.floor)).max(0.0) * 1e6 / raw.len().max(1) as f64;
    let mut fitted = fitted.into_iter();
    ks.into_iter()
        .map(|mut k| {
            if in_body(&k) {
                k.dur_us = fitted.next().unwrap_or(k.dur_us);
                k.idle_us = idle;
            }
            k.dur_us *= factor;
            k.idle_us *= factor;
            k
        })
        .collect()
}

/// Durations `raw` made to add up to `total`: scaled down in proportion when they exceed
/// it; otherwise the shortest are raised to a common minimum `m` (Σ max(dᵢ, m) = total), the
/// roofline's floor being "each of a layer's kernels takes a few µs at least".
fn fit(raw: &[f64], total: f64) -> Vec<f64> {
    let sum: f64 = raw.iter().sum();
    if raw.is_empty() || sum <= 0.0 {
        let each = total / raw.len().max(1) as f64;
        return vec![each; raw.len()];
    }
    if sum >= total {
        return raw.iter().map(|d| d * total / sum).collect();
    }
    let mut sorted = raw.to_vec();
    sorted.sort_by(f64::total_cmp);
    // Raise the k+1 shortest to m = (total − Σ the rest) / (k+1) while m ≥ the k-th.
    let mut rest: f64 = sum;
    let mut m = total / raw.len() as f64;
    for (k, d) in sorted.iter().enumerate() {
        rest -= d;
        let cand = (total - rest) / (k + 1) as f64;
        let next = sorted.get(k + 1).copied().unwrap_or(f64::INFINITY);
        if cand <= next {
            m = cand;
            break;
        }
    }
    raw.iter().map(|d| d.max(m)).collect()
}

/// Kernel name, Python frame and cpu_op of `op` under `tm`'s framework and GPU, for a step
/// of `tokens` tokens; `decode`: a pure-decode step.
fn names(
    tm: &TraceModel,
    op: Op,
    tokens: u32,
    decode: bool,
) -> (String, &'static str, &'static str) {
    let sgl = tm.framework == EngineKind::Sglang;
    let small = tokens <= 64;
    let gemm = match (tm.family, small) {
        (Family::Amd, true) => {
            "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT32x32x256_MI16x16x1_SN_LDSB1_AFC1_AFEM1_AFEM1_ASEM1_CLR1_CADS0_DTVA0_DTVB0_EPS0_FDSI0_GRPM1_GRVWA8_GRVWB8_GSUAMB_GLS0_ISA942_IU1_K1_LBSPPA128_LBSPPB128_LBSPPM0_LPA16_LPB16_LPM0_LRVW8_LWPMn1_MIAV1_MIWT1_1_MO40_NTn1_NTA0_NTB0_NTC0_NTD0_NTM0_NEPBS16_NLCA1_NLCB1_ONLL1_PGR2_PLR1_PKA1_SIA3_SS1_SPO0_SRVW0_SSO0_SVW1_SK3_SKFTR0_SKXCCM0_SGROB0_TLDS1_ULSGRO0_USL1_UIOFGRO0_USFGROn1_VSn1_VWA1_VWB1_WSGRA0_WSGRB0_WS64_WG16_4_1"
        }
        (Family::Amd, false) => {
            "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT256x256x64_MI16x16x1_SN_LDSB1_AFC1_AFEM1_AFEM1_ASEM1_CLR1_CADS0_DTVA0_DTVB0_EPS0_FDSI0_GRPM1_GRVWA8_GRVWB8_GSUAMB_GLS0_ISA942_IU1_K1_LBSPPA128_LBSPPB128_LBSPPM0_LPA16_LPB16_LPM0_LRVW8_LWPMn1_MIAV1_MIWT4_4_MO40_NTn1_NTA0_NTB0_NTC0_NTD0_NTM0_NEPBS16_NLCA1_NLCB1_ONLL1_PGR2_PLR1_PKA1_SIA3_SS1_SPO0_SRVW0_SSO0_SVW1_SK0_SKFTR0_SKXCCM0_SGROB0_TLDS1_ULSGRO0_USL1_UIOFGRO0_USFGROn1_VSn1_VWA1_VWB1_WSGRA0_WSGRB0_WS64_WG64_4_1"
        }
        (Family::Ampere, true) => "ampere_bf16_s16816gemm_bf16_64x64_ldg8_f2f_stages_64x5_tn",
        (Family::Ampere, false) => "ampere_bf16_s16816gemm_bf16_256x128_ldg8_f2f_stages_64x3_tn",
        (Family::Hopper, true) => "nvjet_tst_64x8_64x16_4x1_v_bz_TNT",
        (Family::Hopper, false) => "nvjet_tst_256x128_64x4_2x1_v_bz_coopA_NNT",
    };
    let (bf, ty) = if tm.family == Family::Amd {
        ("__hip_bfloat16", "c10::BFloat16")
    } else {
        ("__nv_bfloat16", "c10::BFloat16")
    };
    let linear = if sgl {
        "sglang/srt/layers/linear.py(1275): forward"
    } else {
        "vllm/model_executor/layers/linear.py(565): forward"
    };
    let s = |x: &str| x.to_string();
    match op {
        Op::InputCopy => (
            s("Memcpy HtoD (Pinned -> Device)"),
            if sgl {
                "sglang/srt/model_executor/forward_batch_info.py(330): init_new"
            } else {
                "vllm/v1/worker/gpu_model_runner.py(1420): _prepare_inputs"
            },
            "aten::copy_",
        ),
        Op::InputNorm | Op::FinalNorm if sgl => (
            format!(
                "void flashinfer::norm::RMSNormKernel<8u, {bf}>({bf}*, {bf}*, {bf}*, unsigned int, unsigned int, unsigned int, float, float)"
            ),
            "sglang/srt/layers/layernorm.py(118): forward_cuda",
            "sgl_kernel::rmsnorm",
        ),
        Op::InputNorm | Op::FinalNorm => (
            format!(
                "void vllm::rms_norm_kernel<{ty}, 8, 2>({ty}*, {ty} const*, long, long, long, long, long, {ty} const*, float, int, int)"
            ),
            "vllm/model_executor/layers/layernorm.py(282): forward_cuda",
            "_C::rms_norm",
        ),
        Op::PostNorm if sgl => (
            format!(
                "void flashinfer::norm::FusedAddRMSNormKernel<8u, {bf}>({bf}*, {bf}*, {bf}*, unsigned int, unsigned int, unsigned int, float, float)"
            ),
            "sglang/srt/layers/layernorm.py(118): forward_cuda",
            "sgl_kernel::fused_add_rmsnorm",
        ),
        Op::PostNorm => (
            format!(
                "std::enable_if<(((8)>(0)))&&vllm::_typeConvert<{ty}>::exists, void>::type vllm::fused_add_rms_norm_kernel<{ty}, 8>({ty}*, long, {ty}*, {ty} const*, float, int, int)"
            ),
            "vllm/model_executor/layers/layernorm.py(282): forward_cuda",
            "_C::fused_add_rms_norm",
        ),
        Op::Qkv | Op::OProj | Op::GateUp | Op::Down | Op::Router => (s(gemm), linear, "aten::mm"),
        Op::LmHead => (
            s(gemm),
            if sgl {
                "sglang/srt/layers/logits_processor.py(560): _get_logits"
            } else {
                "vllm/model_executor/layers/logits_processor.py(98): _get_logits"
            },
            "aten::mm",
        ),
        Op::Draft => (
            s(gemm),
            if sgl {
                "sglang/srt/speculative/eagle_worker.py(520): draft_forward"
            } else {
                "vllm/v1/spec_decode/eagle.py(240): propose"
            },
            "aten::mm",
        ),
        Op::Rope if sgl => (
            format!(
                "void flashinfer::BatchQKApplyRotaryPosIdsCosSinCacheKernel<true, 128u, 8u, 16u, {bf}, long>({bf}*, {bf}*, {bf}*, {bf}*, float*, long*, unsigned int, unsigned int, unsigned int, unsigned int, unsigned long, unsigned long, unsigned long, unsigned long, unsigned long, unsigned long, unsigned long, unsigned long)"
            ),
            "sglang/srt/layers/rotary_embedding.py(250): forward_cuda",
            "sgl_kernel::apply_rope_pos_ids_cos_sin_cache",
        ),
        Op::Rope => (
            format!(
                "void vllm::rotary_embedding_kernel<{ty}, true>(long const*, {ty}*, {ty}*, {ty} const*, int, long, long, long, int, int, int)"
            ),
            "vllm/model_executor/layers/rotary_embedding/base.py(210): forward_cuda",
            "_C::rotary_embedding",
        ),
        Op::KvWrite if sgl => (
            s(
                "void (anonymous namespace)::store_kvcache<2048l, 4, false, long>((anonymous namespace)::StoreKVCacheParams)",
            ),
            "sglang/srt/mem_cache/memory_pool.py(640): set_kv_buffer",
            "sgl_kernel::store_kv_cache",
        ),
        Op::KvWrite => (
            format!(
                "void vllm::reshape_and_cache_flash_kernel<{bf}, {bf}, (vllm::Fp8KVCacheDataType)0>({bf} const*, {bf} const*, {bf}*, {bf}*, long const*, long, long, long, long, int, int, int, float const*, float const*)"
            ),
            "vllm/v1/attention/backends/flash_attn.py(590): forward",
            "_C_cache_ops::reshape_and_cache_flash",
        ),
        Op::Attention => attention_name(tm, decode, bf),
        Op::AllReduce => (
            s("ncclDevKernel_AllReduce_Sum_bf16_RING_LL(ncclDevKernelArgsStorage<4096ul>)"),
            if sgl {
                "sglang/srt/distributed/device_communicators/pynccl.py(140): all_reduce"
            } else {
                "vllm/distributed/device_communicators/pynccl.py(150): all_reduce"
            },
            if sgl {
                "sglang::inplace_all_reduce"
            } else {
                "vllm::all_reduce"
            },
        ),
        Op::Act if sgl => (
            format!(
                "void flashinfer::activation::act_and_mul_kernel<{bf}, &(float silu<float>(float const&))>({bf}*, {bf} const*, int)"
            ),
            "sglang/srt/layers/activation.py(70): forward_cuda",
            "sgl_kernel::silu_and_mul",
        ),
        Op::Act => (
            format!(
                "void vllm::act_and_mul_kernel<{ty}, &(({ty} vllm::silu_kernel<{ty}>({ty} const&))), true>({ty}*, {ty} const*, int)"
            ),
            "vllm/model_executor/layers/activation.py(95): forward_cuda",
            "_C::silu_and_mul",
        ),
        Op::Gating => (
            s(
                "void vllm::moe::topkGatingSoftmax<4, 128, 4, 16, 32, int>(float const*, bool const*, float*, int, int*, int*, int, int, int)",
            ),
            if sgl {
                "sglang/srt/layers/moe/topk.py(420): select_experts"
            } else {
                "vllm/model_executor/layers/fused_moe/layer.py(1800): select_experts"
            },
            "_moe_C::topk_softmax",
        ),
        Op::MoeUp | Op::MoeDown => (
            s("fused_moe_kernel"),
            if sgl {
                "sglang/srt/layers/moe/fused_moe_triton/fused_moe.py(1400): fused_experts_impl"
            } else {
                "vllm/model_executor/layers/fused_moe/fused_moe.py(1600): fused_experts_impl"
            },
            if sgl {
                "sglang::inplace_fused_experts"
            } else {
                "vllm::outplace_fused_experts"
            },
        ),
        Op::Sample => (
            s(
                "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::ArgMaxOps<float>, unsigned int, long, 4, 4> >(at::native::ReduceOp<float, at::native::ArgMaxOps<float>, unsigned int, long, 4, 4>)",
            ),
            if sgl {
                "sglang/srt/layers/sampler.py(90): forward"
            } else {
                "vllm/v1/sample/sampler.py(70): forward"
            },
            "aten::argmax",
        ),
    }
}

fn attention_name(tm: &TraceModel, decode: bool, bf: &str) -> (String, &'static str, &'static str) {
    let sgl = tm.framework == EngineKind::Sglang;
    if tm.flashinfer {
        let py = if sgl {
            "sglang/srt/layers/attention/flashinfer_backend.py(700): forward_extend"
        } else {
            "vllm/v1/attention/backends/flashinfer.py(1000): forward"
        };
        let name = if decode {
            format!(
                "void flashinfer::BatchDecodeWithPagedKVCacheKernel<(flashinfer::PosEncodingMode)0, 2u, 4u, 8u, 16u, 1u, 8u, flashinfer::DefaultAttention<false, false, false, false>, flashinfer::BatchDecodeParams<{bf}, {bf}, {bf}, int> >(flashinfer::BatchDecodeParams<{bf}, {bf}, {bf}, int>)"
            )
        } else {
            format!(
                "void flashinfer::BatchPrefillWithPagedKVCacheKernel<flashinfer::KernelTraits<(flashinfer::MaskMode)1, 128u, 1u, 4u, 8u, 8u, 1u, 4u, (flashinfer::PosEncodingMode)0, {bf}, {bf}, {bf}, float, int, flashinfer::DefaultAttention<false, false, false, false> >, flashinfer::BatchPrefillPagedParams<{bf}, {bf}, {bf}, int> >(flashinfer::BatchPrefillPagedParams<{bf}, {bf}, {bf}, int>)"
            )
        };
        let py = if sgl && decode {
            "sglang/srt/layers/attention/flashinfer_backend.py(780): forward_decode"
        } else {
            py
        };
        return (name, py, "flashinfer::batch_attention");
    }
    if tm.family == Family::Amd {
        return (
            if decode {
                "kernel_unified_attention_3d"
            } else {
                "kernel_unified_attention_2d"
            }
            .to_string(),
            "vllm/v1/attention/backends/triton_attn.py(330): forward",
            "vllm::unified_attention_with_output",
        );
    }
    let name = if decode {
        "void flash::flash_fwd_splitkv_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, cutlass::bfloat16_t, Flash_kernel_traits<128, 64, 128, 4, cutlass::bfloat16_t> >, false, true, false, false, true, true, false, false>(flash::Flash_fwd_params)"
    } else {
        "void flash::flash_fwd_kernel<Flash_fwd_kernel_traits<128, 128, 64, 4, false, false, cutlass::bfloat16_t, Flash_kernel_traits<128, 128, 64, 4, cutlass::bfloat16_t> >, false, true, false, false, true, true, false, false>(flash::Flash_fwd_params)"
    };
    (
        name.to_string(),
        "vllm/v1/attention/backends/flash_attn.py(620): forward",
        "_vllm_fa2_C::varlen_fwd",
    )
}

/// The step's annotation, as the framework names it: vLLM V1's simple
/// `execute_context_{n}({tokens})_generation_{m}({tokens})`
/// (`ProfilerConfig.detailed_trace_annotation` off), SGLang's `step[DECODE bs=N]` /
/// `step[EXTEND bs=N]`.
pub fn step_name(framework: EngineKind, r: &StepRecord) -> String {
    let b = &r.shape;
    let ctx = b.seqs - b.decode_seqs;
    // Decode requests compute one token each (1 + k with speculation): the rest is prefill.
    let gen_tokens = if b.decode_seqs > 0 && ctx == 0 {
        b.tokens
    } else {
        b.decode_seqs
    };
    let ctx_tokens = b.tokens.saturating_sub(gen_tokens);
    match framework {
        EngineKind::Sglang => {
            let mode = if r.is_extend() { "EXTEND" } else { "DECODE" };
            format!("step[{mode} bs={}]", b.seqs)
        }
        _ => format!(
            "execute_context_{ctx}({ctx_tokens})_generation_{}({gen_tokens})",
            b.decode_seqs
        ),
    }
}

/// Ids and clocks while events are laid out.
struct Cursor {
    host_pid: u32,
    correlation: u64,
    external: u64,
    gpu_us: f64,
    events: Vec<Value>,
}

impl Cursor {
    fn next_correlation(&mut self) -> u64 {
        self.correlation += 1;
        self.correlation
    }

    fn next_external(&mut self) -> u64 {
        self.external += 1;
        self.external
    }

    fn cpu(&mut self, cat: &str, name: &str, ts: f64, dur: f64, args: Value) {
        self.events.push(json!({
            "ph": "X", "cat": cat, "name": name, "pid": self.host_pid, "tid": self.host_pid,
            "ts": round3(ts), "dur": round3(dur), "args": args,
        }));
    }

    fn gpu(&mut self, cat: &str, name: &str, ts: f64, dur: f64, args: Value) {
        self.events.push(json!({
            "ph": "X", "cat": cat, "name": name, "pid": DEVICE, "tid": STREAM,
            "ts": round3(ts), "dur": round3(dur), "args": args,
        }));
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// How a kernel is launched.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    /// Its own launch call.
    Own,
    /// Graph launch number `n` of the step.
    Graph(usize),
}

/// The whole trace document for `steps`: `base_us` is the wall clock (µs) of simulated
/// time `sim0`.
pub fn render(
    steps: &[StepRecord],
    model: &StepModel,
    tm: &TraceModel,
    base_us: f64,
    sim0: f64,
) -> Value {
    let host_pid = std::process::id();
    let mut c = Cursor {
        host_pid,
        correlation: 0,
        external: 0,
        gpu_us: 0.0,
        events: metadata(host_pid),
    };
    for r in steps {
        let Some(parts) = model.parts(&r.shape) else {
            continue;
        };
        let ks = kernels(tm, &parts, r.factor, model.achieved_bandwidth());
        let start = base_us + (r.start_s - sim0) * 1e6;
        step_events(&mut c, tm, r, &parts, &ks, start);
    }
    let (major, minor) = tm.capability;
    json!({
        "schemaVersion": 1,
        "deviceProperties": [{
            "id": DEVICE, "name": tm.gpu_name, "totalGlobalMem": tm.memory,
            "computeMajor": major, "computeMinor": minor,
        }],
        "distributedInfo": {"backend": "nccl", "rank": 0, "world_size": tm.tp},
        "with_stack": 1,
        "displayTimeUnit": "ms",
        "traceName": "forge simulator (predicted, not measured)",
        "forge_sim": {
            "note": "kernel times predicted by forge's roofline, not measured on a GPU",
            "steps": steps.len(),
        },
        "traceEvents": c.events,
    })
}

fn metadata(host_pid: u32) -> Vec<Value> {
    vec![
        json!({"ph": "M", "name": "process_name", "pid": host_pid, "tid": 0,
               "args": {"name": "python3"}}),
        json!({"ph": "M", "name": "thread_name", "pid": host_pid, "tid": host_pid,
               "args": {"name": "thread 0 (python3)"}}),
        json!({"ph": "M", "name": "process_name", "pid": DEVICE, "tid": 0,
               "args": {"name": "GPU 0"}}),
        json!({"ph": "M", "name": "thread_name", "pid": DEVICE, "tid": STREAM,
               "args": {"name": format!("stream {STREAM}")}}),
        json!({"ph": "M", "name": "process_sort_index", "pid": DEVICE, "tid": 0,
               "args": {"sort_index": 5000000}}),
    ]
}

fn step_events(
    c: &mut Cursor,
    tm: &TraceModel,
    r: &StepRecord,
    parts: &StepParts,
    ks: &[Kernel],
    start: f64,
) {
    let decode = !r.is_extend();
    let tokens = parts.padded_tokens;
    // Which launch each kernel belongs to.
    let mut graph = 0usize;
    let vias: Vec<Via> = ks
        .iter()
        .map(|k| match parts.launch {
            _ if k.op == Op::InputCopy => Via::Own,
            Launch::FullGraph
                if k.layer.is_some() || k.op == Op::FinalNorm || k.op == Op::LmHead =>
            {
                Via::Graph(0)
            }
            Launch::PiecewiseGraph if k.layer.is_some() && k.op != Op::Attention => {
                Via::Graph(graph)
            }
            Launch::PiecewiseGraph if k.op == Op::Attention => {
                graph += 1;
                Via::Own
            }
            _ => Via::Own,
        })
        .collect();
    // Kernels go back to back on the stream (with their idle time and the launch gap),
    // never before their own launch returns: a host slower than the GPU starves it.
    let name = step_name(tm.framework, r);
    let ann = c.next_external();
    let gpu_start = (start + 30.0).max(c.gpu_us + LAUNCH_GAP_US);
    let mut t = gpu_start;
    let mut host = start + 5.0;
    let mut graph_corr: Vec<(usize, u64)> = Vec::new();
    for (k, via) in ks.iter().zip(&vias) {
        let (kname, py, op) = names(tm, k.op, tokens, decode);
        let launch_at = (t - LEAD_US).max(host);
        let (corr, ext) = match via {
            Via::Graph(n) => match graph_corr.iter().find(|(g, _)| g == n) {
                Some((_, corr)) => (*corr, None),
                None => {
                    let corr = c.next_correlation();
                    graph_corr.push((*n, corr));
                    let frame = if tm.framework == EngineKind::Sglang {
                        "sglang/srt/model_executor/cuda_graph_runner.py(760): replay"
                    } else {
                        "vllm/compilation/cuda_graph.py(250): __call__"
                    };
                    c.cpu(
                        "python_function",
                        frame,
                        launch_at,
                        LAUNCH_US + 2.0,
                        json!({}),
                    );
                    c.cpu(
                        "cuda_runtime",
                        "cudaGraphLaunch",
                        launch_at + 1.0,
                        LAUNCH_US,
                        json!({"correlation": corr}),
                    );
                    host = launch_at + LAUNCH_US + 2.0;
                    t = t.max(launch_at + 1.0 + LAUNCH_US);
                    (corr, None)
                }
            },
            Via::Own => {
                let corr = c.next_correlation();
                let ext = c.next_external();
                let runtime = if k.op == Op::InputCopy {
                    "cudaMemcpyAsync"
                } else {
                    "cudaLaunchKernel"
                };
                c.cpu("python_function", py, launch_at, LAUNCH_US + 4.0, json!({}));
                c.cpu(
                    "cpu_op",
                    op,
                    launch_at + 1.0,
                    LAUNCH_US + 2.0,
                    json!({"External id": ext}),
                );
                c.cpu(
                    "cuda_runtime",
                    runtime,
                    launch_at + 2.0,
                    LAUNCH_US,
                    json!({"External id": ext, "correlation": corr}),
                );
                host = launch_at + LAUNCH_US + 4.0;
                t = t.max(launch_at + 2.0 + LAUNCH_US);
                (corr, Some(ext))
            }
        };
        let cat = if k.op == Op::InputCopy {
            "gpu_memcpy"
        } else {
            "kernel"
        };
        let mut args = json!({"device": DEVICE, "stream": STREAM, "correlation": corr});
        if let (Some(x), Some(map)) = (ext, args.as_object_mut()) {
            map.insert("External id".into(), json!(x));
        }
        c.gpu(cat, &kname, t, k.dur_us, args);
        t += k.dur_us + k.idle_us + LAUNCH_GAP_US;
    }
    let gpu_end = t;
    c.gpu_us = gpu_end;
    // The step's annotations and the model runner's frame around the launches.
    let cpu_end = host.max(start + 50.0) + 5.0;
    c.cpu(
        "user_annotation",
        &name,
        start,
        cpu_end - start,
        json!({"External id": ann}),
    );
    let runner = if tm.framework == EngineKind::Sglang {
        "sglang/srt/managers/scheduler.py(2919): run_batch"
    } else {
        "vllm/v1/worker/gpu_model_runner.py(2290): execute_model"
    };
    c.cpu(
        "python_function",
        runner,
        start + 1.0,
        cpu_end - start - 2.0,
        json!({}),
    );
    c.gpu(
        "gpu_user_annotation",
        &name,
        gpu_start,
        gpu_end - gpu_start,
        json!({"External id": ann}),
    );
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::engine::vllm::VllmArgs;
    use crate::sim::quant;
    use crate::sim::roofline::BatchShape;

    pub(in crate::sim::profile) fn setup(
        model: &str,
        tp: u32,
        eager: bool,
    ) -> (TraceModel, StepModel, ModelShape) {
        let m = ModelShape::resolve(model).expect("catalogue model");
        let gpu = crate::hardware::gpus::lookup("H100").expect("H100");
        let args = VllmArgs {
            model: model.into(),
            tensor_parallel_size: Some(tp),
            enforce_eager: Some(eager),
            ..VllmArgs::default()
        };
        let c = args.resolve(gpu);
        let prec = quant::resolve(&m, &c, gpu).expect("precision");
        let sm = StepModel::new(&m, gpu, &prec, &c, None);
        (TraceModel::new(&m, gpu, &c, EngineKind::Vllm), sm, m)
    }

    pub(in crate::sim::profile) fn decode(n: u32) -> BatchShape {
        BatchShape {
            tokens: n,
            seqs: n,
            sampled: n,
            decode_context: u64::from(n) * 1000,
            decode_seqs: n,
            uniform_decode: true,
            ..BatchShape::default()
        }
    }

    pub(in crate::sim::profile) fn prefill(n: u32) -> BatchShape {
        BatchShape {
            tokens: n,
            seqs: 1,
            sampled: 1,
            prefill_attn_work: f64::from(n) * f64::from(n) / 2.0,
            ..BatchShape::default()
        }
    }

    #[test]
    fn durations_add_up_to_the_rooflines_gpu_time() {
        for (tp, eager) in [(1, false), (2, false), (1, true), (4, true)] {
            let (tm, sm, _) = setup("meta-llama/Llama-3.1-8B-Instruct", tp, eager);
            for b in [decode(1), decode(64), prefill(2048), prefill(8)] {
                let p = sm.parts(&b).expect("parts");
                let ks = kernels(&tm, &p, 1.0, sm.achieved_bandwidth());
                let busy: f64 = ks.iter().map(|k| k.dur_us).sum();
                let idle: f64 = ks.iter().map(|k| k.idle_us).sum();
                let g = sm.gpu_time(&b) * 1e6;
                assert!(
                    ((busy + idle) - g).abs() < 1e-6 * g,
                    "tp {tp} eager {eager}: {busy}+{idle} vs {g}"
                );
                if !eager {
                    assert!(idle.abs() < 1e-9, "no idle without a launch bound");
                }
                assert!(ks.iter().all(|k| k.dur_us > 0.0), "every kernel takes time");
            }
        }
    }

    #[test]
    fn layers_and_all_reduces_match_the_model() {
        for tp in [1, 2, 8] {
            let (tm, sm, m) = setup("meta-llama/Llama-3.1-8B-Instruct", tp, false);
            let p = sm.parts(&decode(8)).expect("parts");
            let ks = kernels(&tm, &p, 1.0, sm.achieved_bandwidth());
            let attn = ks.iter().filter(|k| k.op == Op::Attention).count();
            assert_eq!(attn, m.num_layers as usize);
            let ar = ks.iter().filter(|k| k.op == Op::AllReduce).count();
            assert_eq!(ar, if tp > 1 { 2 * m.num_layers as usize } else { 0 });
            let last = ks.iter().filter_map(|k| k.layer).max();
            assert_eq!(last, Some(m.num_layers - 1));
        }
    }

    #[test]
    fn moe_layers_use_moe_kernels_and_names_categorize() {
        let (tm, sm, m) = setup("Qwen/Qwen3-30B-A3B", 1, false);
        let p = sm.parts(&decode(16)).expect("parts");
        let ks = kernels(&tm, &p, 1.0, sm.achieved_bandwidth());
        let moe = ks.iter().filter(|k| k.op == Op::MoeUp).count();
        assert_eq!(moe, m.moe_layers() as usize);
        let cat = |op| crate::trace::kernels::category(&names(&tm, op, 16, true).0);
        assert_eq!(cat(Op::Qkv), "gemm");
        assert_eq!(cat(Op::Attention), "attention");
        assert_eq!(cat(Op::InputNorm), "norm");
        assert_eq!(cat(Op::PostNorm), "norm");
        assert_eq!(cat(Op::Act), "activation");
        assert_eq!(cat(Op::Rope), "rope");
        assert_eq!(cat(Op::AllReduce), "communication");
        assert_eq!(cat(Op::MoeUp), "moe");
        assert_eq!(cat(Op::Sample), "reduce_topk");
    }

    #[test]
    fn kernels_start_after_their_launch_and_graphs_launch_once() {
        for eager in [false, true] {
            let (tm, sm, m) = setup("meta-llama/Llama-3.1-8B-Instruct", 2, eager);
            let steps: Vec<StepRecord> = [decode(8), prefill(512), decode(8)]
                .into_iter()
                .enumerate()
                .map(|(i, shape)| StepRecord {
                    start_s: i as f64 * 0.001,
                    shape,
                    factor: 1.0,
                })
                .collect();
            let doc = render(&steps, &sm, &tm, 1e15, 0.0);
            let events = doc["traceEvents"].as_array().expect("events");
            let launches: std::collections::HashMap<u64, (f64, &str)> = events
                .iter()
                .filter(|e| e["cat"] == "cuda_runtime")
                .map(|e| {
                    let end = e["ts"].as_f64().unwrap_or(0.0) + e["dur"].as_f64().unwrap_or(0.0);
                    let name = e["name"].as_str().unwrap_or("");
                    (e["args"]["correlation"].as_u64().unwrap_or(0), (end, name))
                })
                .collect();
            let kernels: Vec<&Value> = events
                .iter()
                .filter(|e| e["cat"] == "kernel" || e["cat"] == "gpu_memcpy")
                .collect();
            for k in &kernels {
                let corr = k["args"]["correlation"].as_u64().unwrap_or(0);
                let (end, _) = launches[&corr];
                assert!(k["ts"].as_f64().unwrap_or(0.0) + 1e-3 >= end, "{k}");
            }
            let graphs = launches
                .values()
                .filter(|(_, n)| *n == "cudaGraphLaunch")
                .count();
            // Decode steps under FULL graphs: one launch each; the piecewise prefill one per
            // piece between attentions (L + 1); eager: none.
            let want = if eager {
                0
            } else {
                2 + m.num_layers as usize + 1
            };
            assert_eq!(graphs, want, "eager {eager}");
            let ann = events
                .iter()
                .filter(|e| e["cat"] == "gpu_user_annotation")
                .count();
            assert_eq!(ann, 3);
        }
    }

    #[test]
    fn fitting_raises_the_shortest_or_scales_down() {
        let f = fit(&[1.0, 2.0, 10.0], 20.0);
        assert!((f.iter().sum::<f64>() - 20.0).abs() < 1e-9, "{f:?}");
        assert_eq!(f[2], 10.0);
        assert!(
            (f[0] - 5.0).abs() < 1e-9 && (f[1] - 5.0).abs() < 1e-9,
            "{f:?}"
        );
        let f = fit(&[1.0, 3.0], 2.0);
        assert!(
            (f[0] - 0.5).abs() < 1e-9 && (f[1] - 1.5).abs() < 1e-9,
            "{f:?}"
        );
    }

    #[test]
    fn step_names_read_like_the_frameworks() {
        let r = StepRecord {
            start_s: 0.0,
            shape: decode(32),
            factor: 1.0,
        };
        assert_eq!(
            step_name(EngineKind::Vllm, &r),
            "execute_context_0(0)_generation_32(32)"
        );
        assert_eq!(step_name(EngineKind::Sglang, &r), "step[DECODE bs=32]");
        let r = StepRecord {
            shape: prefill(888),
            ..r
        };
        assert_eq!(
            step_name(EngineKind::Vllm, &r),
            "execute_context_1(888)_generation_0(0)"
        );
        assert_eq!(step_name(EngineKind::Sglang, &r), "step[EXTEND bs=1]");
    }
}
