//! Fairness is checked, not assumed. Every candidate is held against the campaign's
//! reference — the weights (by content or resolved revision), their tokenizer, the GPU
//! type and count, the endpoint and sampling of the one client — and what differs is
//! either refused (other weights, another GPU type: the candidate becomes a `skipped` row
//! saying why) or recorded in the row's `normalization` (a different GPU count, a KV-cache
//! precision other than the reference's).

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use twox_hash::XxHash3_128;

use super::candidate::Normalization;
use crate::recipe::Recipe;

/// What every candidate is compared with.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The weights' identity ([`weights_id`] of the campaign's model).
    pub weights: String,
    /// The GPU type.
    pub gpu_type: String,
    /// GPUs.
    pub gpu_count: u32,
    /// KV cache precision (`auto` = the model's dtype).
    pub kv_cache: String,
}

impl Reference {
    /// The reference of a campaign: its model, on the hardware its first framework's
    /// baseline runs on.
    pub fn of(model: &str, baseline: &Recipe) -> Reference {
        Reference {
            weights: weights_id(model),
            gpu_type: baseline.hardware.gpu_type.clone(),
            gpu_count: baseline.hardware.count,
            kv_cache: kv_cache(baseline),
        }
    }
}

/// The KV cache precision a recipe asks for.
pub fn kv_cache(r: &Recipe) -> String {
    if let Some(k) = &r.quant.kv_cache_quant {
        return k.clone();
    }
    let llama = |k: &str| {
        r.config
            .get(k)
            .map(|v| v.to_string().trim_matches('"').to_string())
    };
    match (llama("cache_type_k"), llama("cache_type_v")) {
        (None, None) => "auto".into(),
        (k, v) => format!(
            "k={} v={}",
            k.unwrap_or_else(|| "f16".into()),
            v.unwrap_or_else(|| "f16".into())
        ),
    }
}

/// Why `r` cannot be compared with the reference at all, if so.
pub fn refusal(reference: &Reference, model: &str, r: &Recipe) -> Option<String> {
    if let Some(c) = &r.quant.checkpoint {
        return Some(format!(
            "unfair: loads checkpoint `{c}` instead of the campaign's weights `{model}`"
        ));
    }
    if let Some(m) = &r.quant.method {
        return Some(format!(
            "unfair: quantizes the weights ({m}) where the other frameworks serve them as shipped"
        ));
    }
    if r.hardware.gpu_type != reference.gpu_type {
        return Some(format!(
            "unfair: runs on {} where the reference runs on {}",
            r.hardware.gpu_type, reference.gpu_type
        ));
    }
    None
}

/// What is the same as the reference and what is not, for a row.
pub fn normalization(reference: &Reference, r: &Recipe) -> Normalization {
    let mut notes = vec![
        format!("weights {}", reference.weights),
        "one client for every framework: the same requests, /v1/completions, greedy sampling, output lengths pinned (ignore_eos)".into(),
    ];
    let same_gpu_count = r.hardware.count == reference.gpu_count;
    if !same_gpu_count {
        notes.push(format!(
            "uses {} GPU(s) where the reference uses {}",
            r.hardware.count, reference.gpu_count
        ));
    }
    let kv = kv_cache(r);
    if kv != reference.kv_cache {
        notes.push(format!(
            "KV cache precision {kv} where the reference keeps {}",
            reference.kv_cache
        ));
    }
    Normalization {
        same_gpu_count,
        same_model_weights: r.quant.checkpoint.is_none() && r.quant.method.is_none(),
        same_tokenizer: r.quant.checkpoint.is_none(),
        same_endpoint: true,
        notes,
    }
}

/// The identity of `model`'s weights: a content hash for a local file or directory, the
/// revision the local Hugging Face cache resolved for a repository id, or the id alone
/// (said so) when neither is at hand.
pub fn weights_id(model: &str) -> String {
    let p = Path::new(model);
    if p.is_file() {
        return file_id(p).unwrap_or_else(|e| format!("{model} (unreadable: {e})"));
    }
    if p.is_dir() {
        return dir_id(p).unwrap_or_else(|e| format!("{model} (unreadable: {e})"));
    }
    match hf_revision(model) {
        Some(rev) => format!("{model}@{rev}"),
        None => format!("{model} (revision not resolved: not in the local Hugging Face cache)"),
    }
}

/// A 128-bit content hash (xxh3: identity, not security) of a file's size, first and last MiB (a GGUF can be tens of GB; its header
/// and tail tell copies apart).
fn file_id(p: &Path) -> std::io::Result<String> {
    const MIB: u64 = 1 << 20;
    let mut f = std::fs::File::open(p)?;
    let len = f.metadata()?.len();
    let mut h = XxHash3_128::new();
    h.write(&len.to_le_bytes());
    let mut buf = vec![0u8; MIB.min(len) as usize];
    f.read_exact(&mut buf)?;
    h.write(&buf);
    if len > MIB {
        f.seek(SeekFrom::Start(len.saturating_sub(MIB).max(MIB)))?;
        let mut tail = Vec::new();
        f.read_to_end(&mut tail)?;
        h.write(&tail);
    }
    Ok(format!(
        "xxh3:{:032x} (size and first/last MiB of {})",
        h.finish_128(),
        file_name(p)
    ))
}

/// A content hash of a model directory's `config.json` and the names and sizes of its files.
fn dir_id(p: &Path) -> std::io::Result<String> {
    let mut h = XxHash3_128::new();
    if let Ok(c) = std::fs::read(p.join("config.json")) {
        h.write(&c);
    }
    let mut files: Vec<(String, u64)> = std::fs::read_dir(p)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            m.is_file()
                .then(|| (e.file_name().to_string_lossy().to_string(), m.len()))
        })
        .collect();
    files.sort();
    for (n, l) in &files {
        h.write(n.as_bytes());
        h.write(&l.to_le_bytes());
    }
    Ok(format!(
        "xxh3:{:032x} (config.json, file names and sizes of {})",
        h.finish_128(),
        file_name(p)
    ))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// The commit `refs/main` points to in the local Hugging Face cache.
fn hf_revision(id: &str) -> Option<String> {
    hf_revision_in(&crate::sim::hf_cache::hub_dir()?, id)
}

fn hf_revision_in(hub: &Path, id: &str) -> Option<String> {
    let dir = hub.join(format!("models--{}", id.replace('/', "--")));
    let rev = std::fs::read_to_string(dir.join("refs").join("main")).ok()?;
    let rev = rev.trim();
    (rev.len() >= 7 && rev.bytes().all(|b| b.is_ascii_hexdigit())).then(|| rev.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::Hardware;
    use crate::recipe::EngineKind;

    fn recipe(engine: EngineKind, gpus: u32) -> Recipe {
        Recipe::baseline(
            engine,
            "Qwen/Qwen3-8B",
            Hardware {
                vendor: "nvidia".into(),
                gpu_type: "H100".into(),
                count: gpus,
                memory_gb_per_gpu: 80.0,
            },
        )
    }

    #[test]
    fn same_weights_gpus_and_client_are_all_true() {
        let base = recipe(EngineKind::Vllm, 1);
        let r = Reference::of("Qwen/Qwen3-8B", &base);
        let other = recipe(EngineKind::Sglang, 1);
        assert_eq!(refusal(&r, "Qwen/Qwen3-8B", &other), None);
        let n = normalization(&r, &other);
        assert!(n.same_gpu_count && n.same_model_weights && n.same_tokenizer && n.same_endpoint);
        assert!(
            n.notes[0].starts_with("weights Qwen/Qwen3-8B"),
            "{:?}",
            n.notes
        );
    }

    #[test]
    fn other_weights_or_gpu_type_are_refused() {
        let base = recipe(EngineKind::Vllm, 1);
        let r = Reference::of("Qwen/Qwen3-8B", &base);
        let mut ckpt = recipe(EngineKind::Trtllm, 1);
        ckpt.quant.checkpoint = Some("nvidia/Qwen3-8B-FP8".into());
        assert!(
            refusal(&r, "Qwen/Qwen3-8B", &ckpt)
                .unwrap()
                .contains("nvidia/Qwen3-8B-FP8")
        );
        let mut q = recipe(EngineKind::Sglang, 1);
        q.quant.method = Some("fp8".into());
        assert!(refusal(&r, "Qwen/Qwen3-8B", &q).unwrap().contains("fp8"));
        let mut g = recipe(EngineKind::Sglang, 1);
        g.hardware.gpu_type = "A100-80GB".into();
        assert!(
            refusal(&r, "Qwen/Qwen3-8B", &g)
                .unwrap()
                .contains("A100-80GB")
        );
    }

    #[test]
    fn gpu_count_and_kv_precision_differences_are_recorded() {
        let base = recipe(EngineKind::Vllm, 1);
        let r = Reference::of("Qwen/Qwen3-8B", &base);
        let mut tp2 = recipe(EngineKind::Sglang, 2);
        tp2.quant.kv_cache_quant = Some("fp8".into());
        assert_eq!(refusal(&r, "Qwen/Qwen3-8B", &tp2), None);
        let n = normalization(&r, &tp2);
        assert!(!n.same_gpu_count);
        assert!(
            n.notes
                .iter()
                .any(|x| x.contains("2 GPU(s) where the reference uses 1"))
        );
        assert!(
            n.notes
                .iter()
                .any(|x| x.contains("KV cache precision fp8 where the reference keeps auto"))
        );
    }

    #[test]
    fn local_weights_are_identified_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m.gguf");
        std::fs::write(&f, vec![7u8; 3 << 20]).unwrap();
        let a = weights_id(f.to_str().unwrap());
        assert!(a.starts_with("xxh3:"), "{a}");
        std::fs::write(&f, vec![8u8; 3 << 20]).unwrap();
        assert_ne!(weights_id(f.to_str().unwrap()), a);
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(weights_id(dir.path().to_str().unwrap()).contains("config.json"));
        // A repository id resolves through the local cache.
        let hub = dir.path().join("hub");
        std::fs::create_dir_all(hub.join("models--org--m/refs")).unwrap();
        std::fs::write(hub.join("models--org--m/refs/main"), "0123456789abcdef\n").unwrap();
        assert_eq!(
            hf_revision_in(&hub, "org/m").as_deref(),
            Some("0123456789abcdef")
        );
        assert_eq!(hf_revision_in(&hub, "org/other"), None);
        assert!(weights_id("nobody/nothing-xyz").contains("revision not resolved"));
    }
}
