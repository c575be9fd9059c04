//! llama.cpp's `llama-server` as a forge engine: its flags (rendered from a recipe and
//! checked against the binary's own `--help`), its effective defaults (what it uses for a
//! flag forge does not pass), which recipes it can run on this machine and workload, how a
//! failed boot reads in its log, the builds of a source checkout a run serves
//! ([`source`]: layer 3, `kernels.patch`), and the [`adapter::LlamacppEngine`] behind the
//! `Engine` trait.

pub mod adapter;
pub mod flags;
pub mod gguf;
pub mod help;
pub mod host;
pub mod knobs;
pub mod legal;
pub mod logs;
pub mod quant;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::recipe::Recipe;

/// Slots when `--parallel` is not given (`-np -1` = auto: 4 slots over one unified KV
/// buffer, so each request may use the whole context; `tools/server/server.cpp`).
pub const AUTO_PARALLEL: u64 = 4;
/// `--batch-size` default (logical batch).
pub const DEFAULT_BATCH: u64 = 2048;
/// `--ubatch-size` default (physical batch).
pub const DEFAULT_UBATCH: u64 = 512;
/// llama.cpp rounds the context (total and per slot) up to a multiple of this.
pub const CTX_PAD: u64 = 256;

/// The effective value of every llama-server knob for `r`: the recipe's own values, and
/// where it sets none, what llama-server uses (see its `--help`): 4 slots (auto), the
/// model's training context, `-b 2048 -ub 512`, threads = physical cores, batch threads =
/// threads, continuous batching on, flash attention `auto`, `f16` KV cache, no GPU layers
/// on a CPU-only machine (`auto` otherwise), no cache reuse.
pub fn defaults(r: &Recipe) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("parallel".into(), Value::from(AUTO_PARALLEL));
    if let Some(c) = model_context_length(&r.model) {
        m.insert("ctx_size".into(), Value::from(c));
    }
    m.insert("batch_size".into(), Value::from(DEFAULT_BATCH));
    m.insert("ubatch_size".into(), Value::from(DEFAULT_UBATCH));
    m.insert("threads".into(), Value::from(host::physical_cores()));
    m.insert("cont_batching".into(), Value::from(true));
    m.insert("flash_attn".into(), Value::from("auto"));
    m.insert("cache_type_k".into(), Value::from("f16"));
    m.insert("cache_type_v".into(), Value::from("f16"));
    m.insert("cache_reuse".into(), Value::from(0));
    let cpu_only = r.hardware.vendor == "cpu" || r.hardware.count == 0;
    m.insert(
        "n_gpu_layers".into(),
        if cpu_only {
            Value::from(0)
        } else {
            Value::from("auto")
        },
    );
    if let Ok(values) = flags::knob_values(r) {
        for (k, v, _) in values.into_iter().filter(|(_, v, _)| !v.is_null()) {
            m.insert(k, v);
        }
    }
    if let Some(p) = source::patch_of(r) {
        m.insert("patch".into(), Value::from(p));
    }
    if let Some(t) = quant::method_of(r) {
        m.insert("method".into(), Value::from(t));
    }
    let threads = m.get("threads").cloned().unwrap_or(Value::Null);
    m.entry("threads_batch".into()).or_insert(threads);
    // The quant layer moves both cache types together (`quant.kv_cache_quant`).
    let k_type = m.get("cache_type_k").cloned().unwrap_or(Value::Null);
    m.insert("kv_cache_quant".into(), k_type);
    m
}

/// The context one request can use: llama.cpp pads the total context to 256 tokens; with
/// `--parallel` given, each slot gets its share (padded to 256 again); with slots on auto
/// they share one unified buffer and each may use all of it. Either way no more than the
/// model's training context.
pub fn ctx_per_slot(ctx_size: u64, parallel: Option<u64>, n_ctx_train: Option<u64>) -> u64 {
    let pad = |x: u64| x.div_ceil(CTX_PAD) * CTX_PAD;
    let total = pad(ctx_size);
    let per = match parallel {
        Some(np) if np > 0 => pad(total / np),
        _ => total,
    };
    n_ctx_train.map_or(per, |t| per.min(t))
}

/// `--model` for llama.cpp must be a local GGUF file (llama-server would otherwise fail every
/// boot with "failed to load model").
pub fn check_model(model: &str) -> anyhow::Result<()> {
    let path = Path::new(model);
    anyhow::ensure!(
        path.is_file(),
        "--model {model}: no such file (llama.cpp serves a local GGUF file)"
    );
    gguf::read(path).map_err(|e| anyhow::anyhow!("--model {e}"))?;
    Ok(())
}

/// The training context of a GGUF model (read once per path; `None` when the file cannot be
/// read or does not say).
pub fn model_context_length(model: &str) -> Option<u64> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<u64>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    if let Ok(c) = cache.lock()
        && let Some(v) = c.get(model)
    {
        return *v;
    }
    let v = gguf::read(Path::new(model))
        .ok()
        .and_then(|f| f.context_length);
    if let Ok(mut c) = cache.lock() {
        c.insert(model.to_string(), v);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Layer;
    use crate::recipe::{EngineKind, Hardware};
    use serde_json::json;

    fn cpu() -> Hardware {
        Hardware {
            vendor: "cpu".into(),
            gpu_type: "cpu".into(),
            count: 0,
            memory_gb_per_gpu: 0.0,
        }
    }

    #[test]
    fn defaults_match_the_recorded_help() {
        let help = include_str!("../../../tests/fixtures/llamacpp/help.txt");
        for line in [
            "number of server slots (default: -1, -1 = auto)",
            "logical maximum batch size (default: 2048)",
            "physical maximum batch size (default: 512)",
            "size of the prompt context (default: 0, 0 = loaded from model)",
            "default: 'auto')",
            "(default: f16)",
            "number of CPU threads to use during generation (default: -1)",
            "whether to enable continuous batching (a.k.a dynamic batching)",
            "requires prompt caching to be enabled (default: 0)",
        ] {
            assert!(help.contains(line), "{line}");
        }
        let d = defaults(&Recipe::baseline(
            EngineKind::Llamacpp,
            "/no/such.gguf",
            cpu(),
        ));
        assert_eq!(d["parallel"], json!(4));
        assert_eq!(d["batch_size"], json!(2048));
        assert_eq!(d["ubatch_size"], json!(512));
        assert_eq!(d["cont_batching"], json!(true));
        assert_eq!(d["flash_attn"], json!("auto"));
        assert_eq!(d["cache_type_v"], json!("f16"));
        assert_eq!(d["n_gpu_layers"], json!(0));
        assert_eq!(d["threads"], json!(host::physical_cores()));
        assert_eq!(d["threads_batch"], d["threads"]);
        // An unreadable model leaves the context unknown rather than guessed.
        assert!(!d.contains_key("ctx_size"));
    }

    #[test]
    fn explicit_values_win_and_batch_threads_follow_threads() {
        let mut ch = BTreeMap::new();
        ch.insert("threads".to_string(), json!(1));
        ch.insert("parallel".to_string(), json!(8));
        let r = Recipe::baseline(EngineKind::Llamacpp, "m.gguf", cpu()).mutate(Layer::Config, &ch);
        let d = defaults(&r);
        assert_eq!(d["threads"], json!(1));
        assert_eq!(d["threads_batch"], json!(1));
        assert_eq!(d["parallel"], json!(8));
    }

    #[test]
    fn the_model_must_be_a_local_gguf_file() {
        let e = check_model("/no/such.gguf").unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.gguf");
        std::fs::write(&f, "not gguf").unwrap();
        let e = check_model(&f.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a GGUF file"), "{e}");
    }

    #[test]
    fn per_slot_context_as_llama_cpp_computes_it() {
        // Recorded boots: `-np 16 -c 256` → n_ctx_slot = 256; `-c 100` → 256 (auto slots);
        // defaults on SmolLM2 (8192 training context) → 8192.
        assert_eq!(ctx_per_slot(256, Some(16), Some(8192)), 256);
        assert_eq!(ctx_per_slot(100, None, Some(8192)), 256);
        assert_eq!(ctx_per_slot(8192, None, Some(8192)), 8192);
        assert_eq!(ctx_per_slot(8192, Some(8), Some(8192)), 1024);
        assert_eq!(ctx_per_slot(4096, Some(3), None), 1536);
        assert_eq!(ctx_per_slot(32768, None, Some(8192)), 8192);
    }
}
