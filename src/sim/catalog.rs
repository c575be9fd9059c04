//! The built-in model catalogue: exact architecture numbers copied from each model's
//! published HF `config.json`, so `forge sim` needs no network for common ids.
//!
//! Lookup ignores case and the organisation prefix; an `-Instruct` id shares its base
//! model's shape (Qwen2.5's instruct checkpoints cap `max_position_embeddings` at 32768,
//! which the table records separately).

use std::path::Path;

use super::model::{ModelShape, MoeShape, QuantConfig};

/// One catalogue row.
struct Entry {
    id: &'static str,
    aliases: &'static [&'static str],
    layers: u32,
    hidden: u64,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    intermediate: u64,
    vocab: u64,
    tied: bool,
    max_pos: u32,
    /// `max_position_embeddings` of the `-Instruct` checkpoint when it differs.
    instruct_max_pos: Option<u32>,
    /// (experts, top-k, expert intermediate).
    moe: Option<(u32, u32, u64)>,
}

#[allow(clippy::too_many_arguments)]
const fn e(
    id: &'static str,
    aliases: &'static [&'static str],
    layers: u32,
    hidden: u64,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    intermediate: u64,
    vocab: u64,
    tied: bool,
    max_pos: u32,
) -> Entry {
    Entry {
        id,
        aliases,
        layers,
        hidden,
        heads,
        kv_heads,
        head_dim,
        intermediate,
        vocab,
        tied,
        max_pos,
        instruct_max_pos: None,
        moe: None,
    }
}

const fn instruct_max(mut entry: Entry, max_pos: u32) -> Entry {
    entry.instruct_max_pos = Some(max_pos);
    entry
}

const fn moe(mut entry: Entry, experts: u32, top_k: u32, inter: u64) -> Entry {
    entry.moe = Some((experts, top_k, inter));
    entry
}

/// The table (values from each model's `config.json` on the Hugging Face Hub).
const ENTRIES: &[Entry] = &[
    e(
        "meta-llama/Llama-3.2-1B",
        &[],
        16,
        2048,
        32,
        8,
        64,
        8192,
        128256,
        true,
        131072,
    ),
    e(
        "meta-llama/Llama-3.2-3B",
        &[],
        28,
        3072,
        24,
        8,
        128,
        8192,
        128256,
        true,
        131072,
    ),
    e(
        "meta-llama/Llama-3.1-8B",
        &["meta-llama/Meta-Llama-3.1-8B"],
        32,
        4096,
        32,
        8,
        128,
        14336,
        128256,
        false,
        131072,
    ),
    e(
        "meta-llama/Meta-Llama-3-8B",
        &[],
        32,
        4096,
        32,
        8,
        128,
        14336,
        128256,
        false,
        8192,
    ),
    e(
        "meta-llama/Llama-3.1-70B",
        &["meta-llama/Meta-Llama-3.1-70B"],
        80,
        8192,
        64,
        8,
        128,
        28672,
        128256,
        false,
        131072,
    ),
    e(
        "meta-llama/Llama-3.3-70B",
        &[],
        80,
        8192,
        64,
        8,
        128,
        28672,
        128256,
        false,
        131072,
    ),
    e(
        "Qwen/Qwen2.5-0.5B",
        &[],
        24,
        896,
        14,
        2,
        64,
        4864,
        151936,
        true,
        32768,
    ),
    instruct_max(
        e(
            "Qwen/Qwen2.5-1.5B",
            &[],
            28,
            1536,
            12,
            2,
            128,
            8960,
            151936,
            true,
            131072,
        ),
        32768,
    ),
    e(
        "Qwen/Qwen2.5-3B",
        &[],
        36,
        2048,
        16,
        2,
        128,
        11008,
        151936,
        true,
        32768,
    ),
    instruct_max(
        e(
            "Qwen/Qwen2.5-7B",
            &[],
            28,
            3584,
            28,
            4,
            128,
            18944,
            152064,
            false,
            131072,
        ),
        32768,
    ),
    instruct_max(
        e(
            "Qwen/Qwen2.5-14B",
            &[],
            48,
            5120,
            40,
            8,
            128,
            13824,
            152064,
            false,
            131072,
        ),
        32768,
    ),
    instruct_max(
        e(
            "Qwen/Qwen2.5-32B",
            &[],
            64,
            5120,
            40,
            8,
            128,
            27648,
            152064,
            false,
            131072,
        ),
        32768,
    ),
    e(
        "Qwen/Qwen3-0.6B",
        &[],
        28,
        1024,
        16,
        8,
        128,
        3072,
        151936,
        true,
        40960,
    ),
    e(
        "Qwen/Qwen3-1.7B",
        &[],
        28,
        2048,
        16,
        8,
        128,
        6144,
        151936,
        true,
        40960,
    ),
    e(
        "Qwen/Qwen3-4B",
        &[],
        36,
        2560,
        32,
        8,
        128,
        9728,
        151936,
        true,
        40960,
    ),
    e(
        "Qwen/Qwen3-8B",
        &[],
        36,
        4096,
        32,
        8,
        128,
        12288,
        151936,
        false,
        40960,
    ),
    e(
        "Qwen/Qwen3-14B",
        &[],
        40,
        5120,
        40,
        8,
        128,
        17408,
        151936,
        false,
        40960,
    ),
    e(
        "Qwen/Qwen3-32B",
        &[],
        64,
        5120,
        64,
        8,
        128,
        25600,
        151936,
        false,
        40960,
    ),
    moe(
        e(
            "Qwen/Qwen3-30B-A3B",
            &[],
            48,
            2048,
            32,
            4,
            128,
            6144,
            151936,
            false,
            40960,
        ),
        128,
        8,
        768,
    ),
    e(
        "mistralai/Mistral-7B-v0.3",
        &[],
        32,
        4096,
        32,
        8,
        128,
        14336,
        32768,
        false,
        32768,
    ),
    moe(
        e(
            "mistralai/Mixtral-8x7B-v0.1",
            &[],
            32,
            4096,
            32,
            8,
            128,
            14336,
            32000,
            false,
            32768,
        ),
        8,
        2,
        14336,
    ),
    e(
        "HuggingFaceTB/SmolLM2-135M",
        &[],
        30,
        576,
        9,
        3,
        64,
        1536,
        49152,
        true,
        8192,
    ),
];

/// Canonical ids of every catalogue entry (base names; `-Instruct` also resolves).
pub fn ids() -> Vec<&'static str> {
    ENTRIES.iter().map(|e| e.id).collect()
}

/// The part after the organisation, lower-cased.
fn short(id: &str) -> String {
    id.rsplit('/').next().unwrap_or(id).to_ascii_lowercase()
}

/// Quantized copies a publisher puts beside a base model, by the end of their name: the
/// `quantization_config` each naming convention carries (Qwen's `-AWQ`/`-GPTQ-Int4`/
/// `-GPTQ-Int8`, RedHatAI's `-FP8`/`-FP8-dynamic`/`-quantized.w4a16`/`-quantized.w8a8`,
/// hugging-quants' `-AWQ-INT4`; forge's calibrations' `-AWQ-W4A16`/`-GPTQ-W4A16`), each
/// before any shorter suffix it ends with.
const QUANT_SUFFIXES: &[(&str, &str, u32, Option<u32>, bool)] = &[
    // forge's own calibrations (`tune::calibrate`), compressed-tensors.
    ("-awq-w4a16", "compressed-tensors", 4, None, false),
    ("-gptq-w4a16", "compressed-tensors", 4, None, false),
    ("-quantized.w4a16", "compressed-tensors", 4, None, false),
    ("-quantized.w8a8", "compressed-tensors", 8, Some(8), false),
    ("-fp8-dynamic", "compressed-tensors", 8, Some(8), true),
    ("-gptq-int4", "gptq", 4, None, false),
    ("-gptq-int8", "gptq", 8, None, false),
    ("-awq-int4", "awq", 4, None, false),
    ("-w4a16", "compressed-tensors", 4, None, false),
    ("-awq", "awq", 4, None, false),
    ("-fp8", "fp8", 8, Some(8), true),
];

/// The base name and quantization of a published quantized copy's (lower-case) name.
fn split_quant(name: &str) -> (&str, Option<QuantConfig>) {
    for (suffix, method, bits, act, float) in QUANT_SUFFIXES {
        if let Some(base) = name.strip_suffix(suffix) {
            let q = QuantConfig {
                method: (*method).to_string(),
                weight_bits: *bits,
                activation_bits: *act,
                float_weights: *float,
            };
            return (base, Some(q));
        }
    }
    (name, None)
}

/// The pre-quantized copies of `model` its publisher put on the Hub, as the dry run offers
/// them to layer 2 (a real run asks the Hub). Qwen publishes `-AWQ`, `-GPTQ-Int4` and
/// `-GPTQ-Int8` beside every Qwen2.5 Instruct model (the Hub's "Qwen2.5" collection).
pub fn published_quantized(model: &str) -> Vec<String> {
    let name = model.trim().rsplit('/').next().unwrap_or(model);
    let lower = name.to_ascii_lowercase();
    let qwen25_instruct = lower.starts_with("qwen2.5-")
        && lower.ends_with("-instruct")
        && !lower.contains("coder")
        && !lower.contains("math")
        && lookup(model).is_some();
    if !qwen25_instruct {
        return Vec::new();
    }
    ["-AWQ", "-GPTQ-Int4", "-GPTQ-Int8"]
        .iter()
        .map(|s| format!("Qwen/{name}{s}"))
        .collect()
}

/// Find a model by id (case-insensitive, organisation optional, `-Instruct` optional); a
/// published quantized copy (`…-AWQ`, `…-FP8`, see [`QUANT_SUFFIXES`]) is its base model's
/// shape with that quantization.
pub fn lookup(id: &str) -> Option<ModelShape> {
    let full = short(id.trim());
    let (want, quant) = split_quant(&full);
    let instruct = want.contains("-instruct");
    let base = want.replacen("-instruct", "", 1);
    let entry = ENTRIES
        .iter()
        .find(|e| short(e.id) == base || e.aliases.iter().any(|a| short(a) == base))?;
    let mut shape = to_shape(entry, id.trim(), instruct);
    shape.quant = quant;
    Some(shape)
}

fn to_shape(entry: &Entry, id: &str, instruct: bool) -> ModelShape {
    let max_pos = match (instruct, entry.instruct_max_pos) {
        (true, Some(m)) => m,
        _ => entry.max_pos,
    };
    ModelShape {
        id: id.to_string(),
        num_layers: entry.layers,
        hidden_size: entry.hidden,
        num_heads: entry.heads,
        num_kv_heads: entry.kv_heads,
        head_dim: entry.head_dim,
        intermediate_size: entry.intermediate,
        vocab_size: entry.vocab,
        tie_word_embeddings: entry.tied,
        max_position_embeddings: max_pos,
        dtype_bytes: 2.0,
        moe: entry.moe.map(|(experts, top_k, inter)| MoeShape {
            num_experts: experts,
            top_k,
            expert_intermediate: inter,
            shared_experts: 0,
            shared_intermediate: 0,
            dense_layers: 0,
        }),
        dtype: "bfloat16".into(),
        quant: None,
        mla: None,
        sliding: None,
        unmodelled: Vec::new(),
    }
}

impl ModelShape {
    /// Resolve a model argument: a directory (or file) holding an HF `config.json`, a
    /// repository in the local Hugging Face cache, or a catalogue id (case-insensitive;
    /// `-Instruct` variants share the base shape).
    pub fn resolve(model: &str) -> anyhow::Result<ModelShape> {
        let path = Path::new(model);
        if path.is_dir() {
            return Ok(Self::from_config_file(&path.join("config.json"), model)?);
        }
        if path.is_file() {
            return Ok(Self::from_config_file(path, model)?);
        }
        // The exact checkpoint this machine downloaded beats the catalogue's generic shape.
        if let Some(cfg) = super::hf_cache::config(model) {
            return Ok(Self::from_config_file(&cfg, model)?);
        }
        lookup(model).ok_or_else(|| {
            anyhow::anyhow!(
                "unknown model `{model}`: not a directory with a config.json and not in the \
                 built-in catalogue ({})",
                ids().join(", ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_quantized_copy_is_its_base_with_the_quantization() {
        let awq = lookup("Qwen/Qwen2.5-3B-Instruct-AWQ").unwrap();
        let base = lookup("Qwen/Qwen2.5-3B-Instruct").unwrap();
        assert_eq!(awq.num_layers, base.num_layers);
        assert_eq!(awq.max_position_embeddings, base.max_position_embeddings);
        let q = awq.quant.unwrap();
        assert_eq!((q.method.as_str(), q.weight_bits), ("awq", 4));
        let fp8 = lookup("RedHatAI/Qwen2.5-7B-Instruct-FP8-dynamic").unwrap();
        assert_eq!(fp8.quant.unwrap().activation_bits, Some(8));
        assert!(base.quant.is_none());
        assert_eq!(
            published_quantized("Qwen/Qwen2.5-3B-Instruct"),
            [
                "Qwen/Qwen2.5-3B-Instruct-AWQ",
                "Qwen/Qwen2.5-3B-Instruct-GPTQ-Int4",
                "Qwen/Qwen2.5-3B-Instruct-GPTQ-Int8"
            ]
        );
        assert!(published_quantized("Qwen/Qwen2.5-3B").is_empty());
        assert!(published_quantized("meta-llama/Llama-3.1-8B-Instruct").is_empty());
    }

    #[test]
    fn lookup_is_case_insensitive_and_instruct_shares_the_base() {
        let a = lookup("meta-llama/Llama-3.1-8B-Instruct").unwrap();
        let b = lookup("META-LLAMA/llama-3.1-8b").unwrap();
        assert_eq!(a.num_layers, b.num_layers);
        assert_eq!(a.id, "meta-llama/Llama-3.1-8B-Instruct");
        assert!(lookup("Llama-3.1-8B-Instruct").is_some());
        assert!(lookup("meta-llama/Meta-Llama-3.1-8B-Instruct").is_some());
        assert!(lookup("nobody/nothing-7B").is_none());
    }

    #[test]
    fn qwen25_instruct_caps_context_at_32k() {
        assert_eq!(
            lookup("Qwen/Qwen2.5-7B").unwrap().max_position_embeddings,
            131072
        );
        assert_eq!(
            lookup("Qwen/Qwen2.5-7B-Instruct")
                .unwrap()
                .max_position_embeddings,
            32768
        );
    }

    #[test]
    fn parameter_counts_match_published_sizes() {
        // Llama-3.1-8B: 8,030,261,248 published, of which 266,240 are norm weights (not
        // counted here: they are negligible for bytes and FLOPs).
        let l = lookup("meta-llama/Llama-3.1-8B").unwrap();
        assert_eq!(l.total_params(), 8_030_261_248 - 266_240);
        // 128 KiB of KV per token in 16 bits.
        assert_eq!(l.kv_bytes_per_token(2.0), 131072.0);
        // Qwen3-0.6B: 596,049,920 published with tied embeddings, 65,536 of them norms.
        let q = lookup("qwen/qwen3-0.6b").unwrap();
        assert_eq!(q.total_params(), 596_049_920 - 65_536);
        // Qwen3-30B-A3B: 30.5 B total, 3.3 B active.
        let m = lookup("Qwen/Qwen3-30B-A3B").unwrap();
        let (t, a) = (
            m.total_params() as f64 / 1e9,
            m.active_params() as f64 / 1e9,
        );
        assert!(
            (30.0..31.0).contains(&t) && (3.0..3.5).contains(&a),
            "{t} {a}"
        );
        // Mixtral-8x7B: 46.7 B total, 12.9 B active.
        let x = lookup("mistralai/Mixtral-8x7B-Instruct-v0.1").unwrap();
        let (t, a) = (
            x.total_params() as f64 / 1e9,
            x.active_params() as f64 / 1e9,
        );
        assert!(
            (46.5..46.8).contains(&t) && (12.8..13.0).contains(&a),
            "{t} {a}"
        );
        // Llama-3.1-70B: 70.6 B.
        let b = lookup("meta-llama/Llama-3.3-70B-Instruct").unwrap();
        assert!((70.5..70.6).contains(&(b.total_params() as f64 / 1e9)));
    }
}
