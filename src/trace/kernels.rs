//! GPU kernels of a trace, as the campaign contract's analysis sees them: which events are
//! kernels (`X` events with a duration whose category names a kernel or starts with `gpu_`
//! — memcpy and memset count — never annotations), their canonical names, their category
//! (the contract's first-match substring rules), and the kernel table of a set of kernels.

use std::collections::HashMap;

use serde::Serialize;

use super::read::Event;

/// Categories in the contract's order; the first whose keywords match wins.
const RULES: &[(&str, &[&str])] = &[
    (
        "communication",
        &[
            "nccl",
            "allreduce",
            "all_reduce",
            "reduce_scatter",
            "allgather",
            "all_gather",
            "alltoall",
            "cross_device_reduce",
            "deepep",
        ],
    ),
    // KV-cache writes are scatters (memory-bound copies into the paged cache); the
    // contract's list has no rule for them, and their template arguments
    // (`Fp8KVCacheDataType`) would file them under quantize.
    (
        "memory",
        &[
            "memcpy",
            "memset",
            "reshape_and_cache",
            "store_kvcache",
            "set_kv_buffer",
        ],
    ),
    (
        "hybrid_linear",
        &["mamba", "ssm", "gated_delta", "causal_conv"],
    ),
    // The contract's list misses FlashAttention-2's and FlashInfer's kernel names
    // (`flash::flash_fwd_splitkv_kernel`, `BatchPrefillWithPagedKVCacheKernel`): added.
    // Not `flashinfer` itself: FlashInfer's norms, activations and RoPE
    // (`flashinfer::norm::RMSNormKernel`) are not attention.
    (
        "attention",
        &[
            "flash_attn",
            "fmha",
            "attention",
            "mla",
            "paged_attention",
            "flash_fwd",
            "batchprefill",
            "batchdecode",
        ],
    ),
    ("moe", &["fused_moe", "grouped_mm", "moe", "expert"]),
    (
        "gemm",
        &[
            "gemm", "gemv", "matmul", "cublas", "cutlass", "wgmma", "mma", "bmm", "nvjet",
            // Tensile/hipBLASLt GEMMs on ROCm (`Cijk_Alik_Bljk_…`), missing from the
            // contract's list.
            "cijk_",
        ],
    ),
    ("norm", &["rmsnorm", "rms_norm", "layernorm", "layer_norm"]),
    ("rope", &["rotary", "rope"]),
    ("softmax", &["softmax"]),
    ("activation", &["silu", "gelu", "act_and_mul"]),
    ("quantize", &["quant", "fp8", "mxfp", "nvfp4", "dequant"]),
    ("reduce_topk", &["topk", "argmax", "sampling"]),
    ("elementwise", &["elementwise"]),
];

/// The category of a kernel by its name.
pub fn category(name: &str) -> &'static str {
    let n = name.to_lowercase();
    for (cat, words) in RULES {
        if words.iter().any(|w| n.contains(w)) {
            return cat;
        }
        // Copies and fills are memory unless the name says they compute (checked after
        // communication, before everything else).
        if *cat == "memory" && (n.contains("copy") || n.contains("fill")) && !computes(&n) {
            return "memory";
        }
    }
    "other"
}

fn computes(n: &str) -> bool {
    ["gemm", "matmul", "attention", "moe", "norm", "quant", "bmm"]
        .iter()
        .any(|w| n.contains(w))
}

/// Is this event a GPU kernel (memcpy and memset included)?
pub fn is_kernel(e: &Event) -> bool {
    // The cheap tests first: most events of a trace are CPU-side complete events.
    if e.ph != "X" || e.dur <= 0.0 || matches!(e.cat.as_ref(), "python_function" | "cpu_op") {
        return false;
    }
    let cat = e.cat.to_lowercase();
    (cat.contains("kernel") || cat.starts_with("gpu_")) && !cat.contains("annotation")
}

/// The contract's canonical name: whitespace collapsed, `0x…` → `0xADDR`, the argument list
/// of a `void f(...)` signature dropped.
pub fn canonical(name: &str) -> String {
    let mut s = name.split_whitespace().collect::<Vec<_>>().join(" ");
    s = hex_to_addr(&s);
    if s.starts_with("void ")
        && let Some(cut) = trailing_args(&s)
    {
        s.truncate(cut);
    }
    s
}

/// A short name for tables: the function's own name, without return type, namespaces,
/// template arguments or argument list (`multimem_all_reduce_kernel`).
pub fn short(canonical: &str) -> String {
    if !canonical.contains("::") && !canonical.contains('<') {
        return canonical.to_string();
    }
    let mut s = canonical.to_string();
    if let Some(cut) = trailing_args(&s) {
        s.truncate(cut);
    }
    // The part after the last space outside brackets (drops a return type). `<` and `>`
    // inside parentheses are comparisons (`enable_if<((8)>(0))>`), not brackets.
    let (mut paren, mut angle) = (0i32, 0i32);
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' => paren += 1,
            ')' | ']' => paren -= 1,
            '<' if paren == 0 => angle += 1,
            '>' if paren == 0 => angle -= 1,
            ' ' if paren == 0 && angle == 0 => start = i + 1,
            _ => {}
        }
    }
    let tail = &s[start..];
    // Cut template arguments.
    let mut paren = 0i32;
    let mut end = tail.len();
    for (i, c) in tail.char_indices() {
        match c {
            '(' => paren += 1,
            ')' => paren -= 1,
            '<' if paren == 0 => {
                end = i;
                break;
            }
            _ => {}
        }
    }
    let base = &tail[..end];
    let short = base.rsplit("::").next().unwrap_or(base).trim();
    if short.is_empty() {
        canonical.to_string()
    } else {
        short.to_string()
    }
}

/// Where the argument list at the end of `s` starts (its matching `(`), if `s` ends in one.
fn trailing_args(s: &str) -> Option<usize> {
    if !s.ends_with(')') {
        return None;
    }
    let mut depth = 0i32;
    for (i, c) in s.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return (i > 0).then_some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn hex_to_addr(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'0'
            && i + 2 < b.len()
            && (b[i + 1] == b'x' || b[i + 1] == b'X')
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push_str("0xADDR");
            i += 2;
            while i < b.len() && b[i].is_ascii_hexdigit() {
                i += 1;
            }
        } else {
            let c = s[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// One row of the kernel table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelRow {
    /// Short name (tables).
    pub kernel: String,
    /// Canonical name (the grouping key).
    pub canonical: String,
    /// Category.
    pub category: &'static str,
    /// GPU time, µs.
    pub gpu_us: f64,
    /// Share of the process's kernel time.
    pub share: f64,
    /// Launches.
    pub launches: u64,
    /// The innermost user Python frame its GPU time was mostly launched from
    /// (`path:line function`).
    pub python_location: Option<String>,
    /// That site's share of the kernel's GPU time.
    pub site_share: Option<f64>,
    /// The launching cpu_op with the most of its GPU time.
    pub cpu_op: Option<String>,
}

/// The kernel table of a stage's kernels, given as (canonical name, duration) pairs,
/// longest first.
pub fn table<'a>(kernels: impl Iterator<Item = (&'a str, f64)>) -> Vec<KernelRow> {
    let mut by: HashMap<&str, (f64, u64)> = HashMap::new();
    for (name, dur) in kernels {
        let slot = by.entry(name).or_default();
        slot.0 += dur;
        slot.1 += 1;
    }
    let t: f64 = by.values().map(|v| v.0).sum();
    let mut rows: Vec<KernelRow> = by
        .into_iter()
        .map(|(name, (us, n))| KernelRow {
            kernel: short(name),
            canonical: name.to_string(),
            category: category(name),
            gpu_us: us,
            share: if t > 0.0 { us / t } else { 0.0 },
            launches: n,
            python_location: None,
            site_share: None,
            cpu_op: None,
        })
        .collect();
    rows.sort_by(|a, b| {
        b.gpu_us
            .total_cmp(&a.gpu_us)
            .then(a.canonical.cmp(&b.canonical))
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_canonical_and_short() {
        let n = "void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16>(c10::BFloat16*, unsigned long, unsigned long)";
        let c = canonical(n);
        assert_eq!(
            c,
            "void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16>"
        );
        assert_eq!(short(&c), "multimem_all_reduce_kernel");
        assert_eq!(canonical("kernel  at   0x7f3a9c00"), "kernel at 0xADDR");
        let e = "std::enable_if<(((8)>(0)))&&vllm::_typeConvert<c10::BFloat16>::exists, void>::type vllm::fused_add_rms_norm_kernel<c10::BFloat16, 8>(c10::BFloat16*, long, float, int, int)";
        assert_eq!(short(&canonical(e)), "fused_add_rms_norm_kernel");
        // A name that is not a C++ signature stays as it is.
        assert_eq!(
            short("Memcpy DtoD (Device -> Device)"),
            "Memcpy DtoD (Device -> Device)"
        );
        assert_eq!(short("triton_poi_fused_mul_0"), "triton_poi_fused_mul_0");
    }

    #[test]
    fn categories_follow_the_contracts_first_match_rules() {
        for (name, cat) in [
            ("ncclDevKernel_AllReduce_Sum_bf16", "communication"),
            (
                "void (anonymous namespace)::multimem_all_reduce_kernel<c10::BFloat16>",
                "communication",
            ),
            ("Memcpy DtoD (Device -> Device)", "memory"),
            (
                "void at::native::unrolled_elementwise_kernel<copy>",
                "memory",
            ),
            ("flash_fwd_splitkv_kernel", "attention"),
            ("flashinfer::BatchDecodeWithPagedKVCacheKernel", "attention"),
            ("flashinfer::norm::RMSNormKernel<8, __nv_bfloat16>", "norm"),
            (
                "flashinfer::activation::act_and_mul_kernel<silu>",
                "activation",
            ),
            (
                "flashinfer::BatchQKApplyRotaryPosIdsCosSinCacheKernel",
                "rope",
            ),
            (
                "void vllm::reshape_and_cache_flash_kernel<__nv_bfloat16, unsigned char, (vllm::Fp8KVCacheDataType)1>",
                "memory",
            ),
            ("store_kvcache", "memory"),
            ("fused_moe_kernel", "moe"),
            ("nvjet_tst_128x64_64x8_1x2_h_bz_TNT", "gemm"),
            ("vllm::rms_norm_kernel", "norm"),
            ("vllm::act_and_mul_kernel<silu>", "activation"),
            ("triton_poi_fused_mul_0", "other"),
            (
                "Cijk_Alik_Bljk_BBS_BH_Bias_HA_S_SAV_UserArgs_MT256x32x64",
                "gemm",
            ),
            (
                "void at::native::vectorized_elementwise_kernel<4, add>",
                "elementwise",
            ),
        ] {
            assert_eq!(category(name), cat, "{name}");
        }
    }
}
