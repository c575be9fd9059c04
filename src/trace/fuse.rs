//! The fuse-opportunity table: a registry of fusions the serving frameworks already ship,
//! each with the keywords of its split kernels (every group must match a separate kernel)
//! and of its fused kernel, and where the fused implementation lives in each framework's
//! source. A pattern whose fused kernel runs in the trace is "confirmed" (the path is
//! active: the question is whether that kernel is fast); a pattern whose split kernels all
//! run is a candidate, "confirmed" when their share of GPU time is large. A kernel counts
//! toward one pattern only, the most specific first.
//!
//! Keywords match a kernel's canonical name, its Python location or its cpu_op. Source
//! paths were checked against each project's repository (vLLM's `csrc/` and
//! `vllm/compilation/passes/fusion/`, SGLang's `python/sglang/`, TensorRT-LLM's
//! `tensorrt_llm/_torch/`); a framework without a known implementation shows none.

use std::collections::HashSet;

use serde::Serialize;

use super::Framework;
use super::kernels::KernelRow;

/// A known fusion.
struct Pattern {
    name: &'static str,
    /// Keywords of the fused kernel (any).
    fused: &'static [&'static str],
    /// Keyword groups of the split kernels: each must match a kernel of its own.
    split: &'static [&'static [&'static str]],
    /// The fused implementation: vLLM, SGLang, TensorRT-LLM.
    paths: [Option<&'static str>; 3],
    /// Split kernels under this share of GPU time are not worth a row.
    min_share: f64,
    /// Split kernels at this share or above are a confirmed opportunity.
    likely_share: f64,
    why: &'static str,
}

const QUANT: &[&str] = &[
    "scaled_fp8_quant",
    "per_token_quant",
    "per_token_group_quant",
    "fp4_quant",
    "quantize_with",
];

const REGISTRY: &[Pattern] = &[
    Pattern {
        name: "All-reduce + residual RMSNorm",
        fused: &[
            "allreduce_fusion",
            "allreducefusion",
            "fused_allreduce",
            "allreduce_rms",
            "allreduce_add_rmsnorm",
        ],
        split: &[
            &["all_reduce", "allreduce", "cross_device_reduce"],
            &["rms_norm", "rmsnorm"],
        ],
        paths: [
            Some("vllm/compilation/passes/fusion/allreduce_rms_fusion.py"),
            Some("python/sglang/srt/layers/flashinfer_comm_fusion.py"),
            Some("tensorrt_llm/_torch/distributed/ops.py"),
        ],
        min_share: 0.005,
        likely_share: 0.04,
        why: "the TP all-reduce and the next residual add + RMSNorm run as one kernel (one pass over the hidden states, one launch fewer per layer)",
    },
    Pattern {
        name: "QK-norm + RoPE",
        fused: &["fused_qk_norm_rope", "fused_qknorm_rope"],
        split: &[
            &["q_norm", "k_norm", "qk_norm", "qknorm"],
            &["rotary", "rope"],
        ],
        paths: [
            Some("vllm/compilation/passes/fusion/qk_norm_rope_fusion.py"),
            Some("python/sglang/jit_kernel/fused_qknorm_rope.py"),
            None,
        ],
        min_share: 0.003,
        likely_share: 0.02,
        why: "Q/K RMSNorm and the rotary embedding applied in place in one kernel on the packed QKV",
    },
    Pattern {
        name: "RoPE + KV-cache write",
        fused: &[
            "rope_and_cache",
            "rope_kvcache",
            "fused_qk_rope_reshape_and_cache",
            "fused_set_kv_buffer",
        ],
        split: &[
            &["rotary", "rope"],
            &["reshape_and_cache", "store_kvcache", "set_kv_buffer"],
        ],
        paths: [
            Some("vllm/compilation/passes/fusion/rope_kvcache_fusion.py"),
            Some("python/sglang/jit_kernel/rope.py"),
            None,
        ],
        min_share: 0.003,
        likely_share: 0.02,
        why: "rotating K and writing K/V into the paged cache in one kernel saves a round trip of K through memory",
    },
    Pattern {
        name: "RMSNorm + quant",
        fused: &[
            "rms_norm_static_fp8_quant",
            "rms_norm_dynamic_per_token_quant",
            "rmsnorm_quant",
            "rms_norm_quant",
            "rms_norm_fp8",
        ],
        split: &[&["rms_norm", "rmsnorm"], QUANT],
        paths: [
            Some("vllm/compilation/passes/fusion/rms_quant_fusion.py"),
            None,
            None,
        ],
        min_share: 0.003,
        likely_share: 0.015,
        why: "the norm writes the quantized activations the next GEMM reads, instead of BF16 that a quant kernel reads back",
    },
    Pattern {
        name: "SiLU-and-mul + quant",
        fused: &[
            "silu_and_mul_quant",
            "silu_mul_quant",
            "act_and_mul_quant",
            "silu_and_mul_scaled",
            "silu_and_mul_per_block_quant",
            "silu_mul_fp8",
        ],
        split: &[&["silu", "act_and_mul", "swiglu"], QUANT],
        paths: [
            Some("vllm/compilation/passes/fusion/act_quant_fusion.py"),
            None,
            None,
        ],
        min_share: 0.003,
        likely_share: 0.015,
        why: "the MLP activation writes the quantized input of the down projection directly",
    },
    Pattern {
        name: "Attention + output quant",
        fused: &["attn_quant", "output_scale"],
        split: &[
            &[
                "attention",
                "fmha",
                "flash_attn",
                "flash_fwd",
                "batchprefill",
                "batchdecode",
            ],
            QUANT,
        ],
        paths: [
            Some("vllm/compilation/passes/fusion/attn_quant_fusion.py"),
            None,
            None,
        ],
        min_share: 0.003,
        likely_share: 0.015,
        why: "the attention epilogue quantizes its output for the O projection instead of a separate quant kernel",
    },
    Pattern {
        name: "MoE routing top-k + softmax",
        fused: &[
            "topk_softmax",
            "topkgating",
            "topk_gating",
            "moe_fused_gate",
            "fused_topk",
            "grouped_topk",
            "routingindices",
        ],
        split: &[&["topk"], &["softmax"]],
        paths: [
            Some("csrc/moe/topk_softmax_kernels.cu"),
            Some("python/sglang/srt/layers/moe/topk.py"),
            Some("tensorrt_llm/_torch/modules/fused_moe/routing.py"),
        ],
        min_share: 0.003,
        likely_share: 0.015,
        why: "router softmax, top-k selection and renormalization in one kernel per MoE layer",
    },
    Pattern {
        name: "Residual add + RMSNorm",
        fused: &[
            "fused_add_rms_norm",
            "fused_add_rmsnorm",
            "add_rmsnorm",
            "fusedaddrmsnorm",
        ],
        split: &[&["rms_norm", "rmsnorm"], &["functor_add", "add_kernel"]],
        paths: [
            Some("csrc/layernorm_kernels.cu · vllm/model_executor/layers/layernorm.py"),
            Some("python/sglang/srt/layers/layernorm.py"),
            Some("tensorrt_llm/_torch/modules/rms_norm.py"),
        ],
        min_share: 0.002,
        likely_share: 0.01,
        why: "the residual add and the RMSNorm read the hidden states once",
    },
    Pattern {
        name: "SiLU-and-mul (SwiGLU)",
        fused: &["silu_and_mul", "act_and_mul", "gelu_and_mul", "swiglu"],
        split: &[&["silu", "gelu"], &["functor_mul", "mul_kernel"]],
        paths: [
            Some("csrc/activation_kernels.cu · vllm/model_executor/layers/activation.py"),
            Some("python/sglang/srt/layers/activation.py"),
            Some("tensorrt_llm/_torch/modules/swiglu.py"),
        ],
        min_share: 0.002,
        likely_share: 0.01,
        why: "the gate activation and the multiply by the up projection in one elementwise pass",
    },
];

/// One row of the fuse-opportunity table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuseRow {
    /// The fusion.
    pub pattern: &'static str,
    /// `confirmed` or `candidate`.
    pub confidence: &'static str,
    /// The fused path already runs in this trace.
    pub active: bool,
    /// GPU time of the kernels involved, µs.
    pub related_us: f64,
    /// Their share of the stage's GPU time.
    pub share: f64,
    /// The kernels involved (short names), longest first.
    pub evidence: Vec<String>,
    /// Where they are launched from.
    pub locations: Vec<String>,
    /// The fused implementation in the trace's framework (all three when unknown).
    pub fused_path: String,
    /// Why.
    pub rationale: String,
}

/// The fuse-opportunity table of a stage's kernel table.
pub fn table(rows: &[KernelRow], framework: Framework) -> Vec<FuseRow> {
    let total: f64 = rows.iter().map(|r| r.gpu_us).sum();
    if total <= 0.0 {
        return Vec::new();
    }
    let mut order: Vec<&Pattern> = REGISTRY.iter().collect();
    order.sort_by_key(|p| std::cmp::Reverse(p.split.len()));
    let mut used: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for p in order {
        let Some((active, idx)) = matched(p, rows, &used) else {
            continue;
        };
        let related: f64 = idx.iter().map(|i| rows[*i].gpu_us).sum();
        let share = related / total;
        if !active && share < p.min_share {
            continue;
        }
        for i in &idx {
            used.insert(rows[*i].canonical.as_str());
        }
        out.push(row(p, rows, &idx, active, related, share, framework));
    }
    out.sort_by(|a, b| {
        (a.confidence != "confirmed")
            .cmp(&(b.confidence != "confirmed"))
            .then(b.related_us.total_cmp(&a.related_us))
    });
    out
}

/// Whether the fused kernel runs, and the rows involved; `None` when neither the fused
/// kernel nor every split group is present.
fn matched(p: &Pattern, rows: &[KernelRow], used: &HashSet<&str>) -> Option<(bool, Vec<usize>)> {
    let free = |i: &usize| !used.contains(rows[*i].canonical.as_str());
    let hits = |words: &[&str]| -> Vec<usize> {
        (0..rows.len())
            .filter(free)
            .filter(|i| words.iter().any(|w| text(&rows[*i]).contains(w)))
            .collect()
    };
    let fused = hits(p.fused);
    if !fused.is_empty() {
        return Some((true, fused));
    }
    let mut idx: Vec<usize> = Vec::new();
    for group in p.split {
        // Each group needs a kernel not already claimed by an earlier group; a GEMM or MoE
        // kernel is never a split piece (a GEMM with a fused SwiGLU epilogue names
        // `swiGlu`, but it is not the activation kernel this pattern would remove).
        let g: Vec<usize> = hits(group)
            .into_iter()
            .filter(|i| !idx.contains(i) && !matches!(rows[*i].category, "gemm" | "moe"))
            .collect();
        if g.is_empty() {
            return None;
        }
        idx.extend(g);
    }
    Some((false, idx))
}

fn text(r: &KernelRow) -> String {
    format!(
        "{} {} {}",
        r.canonical,
        r.python_location.as_deref().unwrap_or(""),
        r.cpu_op.as_deref().unwrap_or("")
    )
    .to_lowercase()
}

fn row(
    p: &Pattern,
    rows: &[KernelRow],
    idx: &[usize],
    active: bool,
    related: f64,
    share: f64,
    framework: Framework,
) -> FuseRow {
    let mut idx = idx.to_vec();
    idx.sort_by(|a, b| rows[*b].gpu_us.total_cmp(&rows[*a].gpu_us));
    let mut locations: Vec<String> = Vec::new();
    for i in &idx {
        if let Some(l) = &rows[*i].python_location
            && !locations.contains(l)
        {
            locations.push(l.clone());
        }
    }
    let known = path_for(p, framework);
    let fused_path = if active && known == "none known" {
        format!("in use: {}", rows[idx[0]].kernel)
    } else {
        known
    };
    let rationale = if active {
        format!(
            "Fused path active ({}): {}; what is left is that kernel's own speed",
            rows[idx[0]].kernel, p.why
        )
    } else {
        format!(
            "Split into {} kernels: {}; the fused path {}",
            idx.len(),
            p.why,
            if fused_path.starts_with("none known") {
                "has no known implementation in this framework".to_string()
            } else {
                "exists but did not fire (disabled, unsupported shape or backend?)".to_string()
            }
        )
    };
    FuseRow {
        pattern: p.name,
        confidence: if active || share >= p.likely_share {
            "confirmed"
        } else {
            "candidate"
        },
        active,
        related_us: related,
        share,
        evidence: {
            let mut e: Vec<String> = Vec::new();
            for i in &idx {
                if !e.contains(&rows[*i].kernel) {
                    e.push(rows[*i].kernel.clone());
                }
            }
            e
        },
        locations,
        fused_path,
        rationale,
    }
}

fn path_for(p: &Pattern, framework: Framework) -> String {
    let named = |i: usize| p.paths[i].map(str::to_string);
    match framework {
        Framework::Vllm => named(0),
        Framework::Sglang => named(1),
        Framework::Trtllm => named(2),
        Framework::Auto => {
            let all: Vec<String> = ["vLLM", "SGLang", "TensorRT-LLM"]
                .iter()
                .zip(p.paths)
                .filter_map(|(f, path)| path.map(|x| format!("{f}: {x}")))
                .collect();
            (!all.is_empty()).then(|| all.join("; "))
        }
    }
    .unwrap_or_else(|| "none known".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(name: &str, us: f64) -> KernelRow {
        KernelRow {
            kernel: name.to_string(),
            canonical: name.to_string(),
            category: super::super::kernels::category(name),
            gpu_us: us,
            share: 0.0,
            launches: 1,
            python_location: None,
            site_share: None,
            cpu_op: None,
        }
    }

    #[test]
    fn split_kernels_are_a_candidate_and_a_fused_one_is_active() {
        let rows = vec![
            k("gemm_a", 800.0),
            k("ncclDevKernel_AllReduce_Sum_bf16", 100.0),
            k("vllm::rms_norm_kernel", 50.0),
            k("vllm::act_and_mul_kernel<silu>", 50.0),
        ];
        let t = table(&rows, Framework::Vllm);
        let ar = t
            .iter()
            .find(|r| r.pattern == "All-reduce + residual RMSNorm")
            .unwrap();
        assert!(!ar.active);
        assert_eq!(ar.confidence, "confirmed", "15 % of GPU time");
        assert_eq!(
            ar.fused_path,
            "vllm/compilation/passes/fusion/allreduce_rms_fusion.py"
        );
        assert!((ar.share - 0.15).abs() < 1e-9);
        let act = t
            .iter()
            .find(|r| r.pattern == "SiLU-and-mul (SwiGLU)")
            .unwrap();
        assert!(act.active && act.confidence == "confirmed");
        // The norm counted toward the all-reduce fusion is not counted again.
        assert!(t.iter().all(|r| r.pattern != "Residual add + RMSNorm"));
    }

    #[test]
    fn a_pattern_needs_every_split_group() {
        let rows = vec![k("gemm_a", 800.0), k("rotary_embedding_kernel", 100.0)];
        assert!(table(&rows, Framework::Vllm).is_empty());
    }
}
