//! Which llama.cpp recipes may boot, decided before anything boots: the allowlist and this
//! binary's flags ([`super::flags`]), then combinations llama.cpp refuses or silently
//! rewrites, and contexts too small for the workload.
//!
//! Refused: `ubatch_size > batch_size` (llama.cpp clamps it, so it would only repeat
//! another recipe); a per-slot context smaller than the workload's longest prompt plus
//! output (those requests would fail); GPU layers on a machine without a GPU; a quantized V
//! cache with flash attention off (llama.cpp exits: "quantized V cache requires flash_attn
//! to be enabled"); `cache_reuse` (it needs the prompt cache, which forge turns off while
//! benchmarking). Allowed: more threads than cores (the playbook discourages it).
//!
//! What a recipe does not carry — the workload's longest request and the binary's flags —
//! is fixed once per run in the engine ([`super::adapter::LlamacppEngine::limits`]).

use serde_json::Value;

use super::help::HelpFlags;
use super::{DEFAULT_BATCH, DEFAULT_UBATCH, ctx_per_slot, defaults, flags};
use crate::recipe::{Illegal, Recipe};

/// Facts about the run a recipe's legality depends on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLimits {
    /// Tokens the longest request may need: its prompt plus its output (the workload's
    /// largest prompt and largest output, by forge's stand-in tokenizer).
    pub need_tokens: Option<u64>,
    /// The options this run's llama-server accepts (`None`: unknown, not checked).
    pub flags: Option<HelpFlags>,
}

/// `Err(why)` when `r` must not boot under `limits`, for a model trained with
/// `n_ctx_train` tokens of context.
pub fn check(r: &Recipe, limits: &RunLimits, n_ctx_train: Option<u64>) -> Result<(), Illegal> {
    combinations(r, limits, n_ctx_train).map_err(Illegal::recipe)
}

fn combinations(r: &Recipe, limits: &RunLimits, n_ctx_train: Option<u64>) -> Result<(), String> {
    flags::render_knobs(r, limits.flags.as_ref()).map_err(|e| e.to_string())?;
    let eff = defaults(r);
    let int = |k: &str| eff.get(k).and_then(Value::as_u64);
    let (batch, ubatch) = (
        int("batch_size").unwrap_or(DEFAULT_BATCH),
        int("ubatch_size").unwrap_or(DEFAULT_UBATCH),
    );
    if ubatch > batch {
        return Err(format!(
            "ubatch_size {ubatch} > batch_size {batch}: llama.cpp would clamp the physical batch to {batch}, the same as ubatch_size {batch}"
        ));
    }
    check_context(r, limits, n_ctx_train)?;
    check_devices_and_caches(r, &eff)
}

fn check_context(r: &Recipe, limits: &RunLimits, n_ctx_train: Option<u64>) -> Result<(), String> {
    let explicit = |k: &str| r.config.get(k).and_then(Value::as_u64);
    let Some(ctx) = explicit("ctx_size").or(n_ctx_train) else {
        return Ok(());
    };
    let parallel = explicit("parallel");
    let per_slot = ctx_per_slot(ctx, parallel, n_ctx_train);
    match limits.need_tokens {
        Some(need) if need > per_slot => Err(format!(
            "{} leaves {per_slot} tokens of context per slot, but the workload's longest request needs up to {need} (prompt + output)",
            match parallel {
                Some(np) => format!("ctx_size {ctx} over parallel {np} slots"),
                None => format!("ctx_size {ctx}"),
            }
        )),
        _ => Ok(()),
    }
}

fn check_devices_and_caches(
    r: &Recipe,
    eff: &std::collections::BTreeMap<String, Value>,
) -> Result<(), String> {
    let cpu_only = r.hardware.vendor == "cpu" || r.hardware.count == 0;
    let gpu_layers = r.config.get("n_gpu_layers").and_then(Value::as_u64);
    if cpu_only && gpu_layers.is_some_and(|n| n > 0) {
        return Err("n_gpu_layers: this machine has no GPU to offload layers to".into());
    }
    if r.config
        .get("cache_reuse")
        .and_then(Value::as_u64)
        .is_some_and(|n| n > 0)
    {
        return Err(
            "cache_reuse: llama.cpp reuses KV only from the prompt cache, which forge turns off while benchmarking (--no-cache-prompt), so it cannot change a measurement".into(),
        );
    }
    let v_type = eff
        .get("cache_type_v")
        .and_then(Value::as_str)
        .unwrap_or("f16");
    let fa = eff
        .get("flash_attn")
        .and_then(Value::as_str)
        .unwrap_or("auto");
    if !matches!(v_type, "f16" | "bf16" | "f32") && fa == "off" {
        return Err(format!(
            "cache_type_v {v_type} with flash_attn off: llama.cpp refuses it (\"quantized V cache requires flash_attn to be enabled\")"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Layer;
    use crate::recipe::{EngineKind, Hardware};
    use serde_json::json;

    fn recipe(config: &[(&str, Value)]) -> Recipe {
        let hw = Hardware {
            vendor: "cpu".into(),
            gpu_type: "cpu".into(),
            count: 0,
            memory_gb_per_gpu: 0.0,
        };
        let changes = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        Recipe::baseline(EngineKind::Llamacpp, "/m.gguf", hw).mutate(Layer::Config, &changes)
    }

    fn limits(need: u64) -> RunLimits {
        RunLimits {
            need_tokens: Some(need),
            flags: Some(HelpFlags::parse(include_str!(
                "../../../tests/fixtures/llamacpp/help.txt"
            ))),
        }
    }

    #[test]
    fn the_baseline_and_sensible_moves_are_legal() {
        let l = limits(300);
        assert_eq!(combinations(&recipe(&[]), &l, Some(8192)), Ok(()));
        for (k, v) in [
            ("parallel", json!(16)),
            ("threads", json!(64)),
            ("ubatch_size", json!(2048)),
            ("cont_batching", json!(false)),
            ("flash_attn", json!("off")),
        ] {
            assert_eq!(
                combinations(&recipe(&[(k, v.clone())]), &l, Some(8192)),
                Ok(()),
                "{k}={v}"
            );
        }
    }

    #[test]
    fn ubatch_above_batch_is_refused() {
        let e =
            combinations(&recipe(&[("batch_size", json!(256))]), &limits(10), None).unwrap_err();
        assert!(e.starts_with("ubatch_size 512 > batch_size 256"), "{e}");
        let ok = recipe(&[("batch_size", json!(256)), ("ubatch_size", json!(256))]);
        assert_eq!(combinations(&ok, &limits(10), None), Ok(()));
    }

    #[test]
    fn slots_too_small_for_the_workload_are_refused() {
        // 8192 / 16 = 512 tokens per slot.
        let r = recipe(&[("parallel", json!(16))]);
        assert_eq!(combinations(&r, &limits(512), Some(8192)), Ok(()));
        let e = combinations(&r, &limits(513), Some(8192)).unwrap_err();
        assert_eq!(
            e,
            "ctx_size 8192 over parallel 16 slots leaves 512 tokens of context per slot, but the workload's longest request needs up to 513 (prompt + output)"
        );
        let e = combinations(
            &recipe(&[("ctx_size", json!(256))]),
            &limits(300),
            Some(8192),
        );
        assert!(e.unwrap_err().starts_with("ctx_size 256 leaves 256 tokens"));
        // Unknown training context and no explicit ctx_size: nothing to check against.
        assert_eq!(combinations(&r, &limits(100_000), None), Ok(()));
    }

    #[test]
    fn devices_caches_and_missing_flags() {
        let l = limits(10);
        let e = combinations(&recipe(&[("n_gpu_layers", json!(10))]), &l, None).unwrap_err();
        assert!(e.contains("no GPU"), "{e}");
        assert_eq!(
            combinations(&recipe(&[("n_gpu_layers", json!(0))]), &l, None),
            Ok(())
        );
        let e = combinations(&recipe(&[("cache_reuse", json!(256))]), &l, None).unwrap_err();
        assert!(e.contains("--no-cache-prompt"), "{e}");
        let mut r = recipe(&[("flash_attn", json!("off"))]);
        r.quant.kv_cache_quant = Some("q8_0".into());
        assert!(
            combinations(&r, &l, None)
                .unwrap_err()
                .contains("requires flash_attn")
        );
        let old = RunLimits {
            need_tokens: None,
            flags: Some(HelpFlags::parse("-np,   --parallel N\n")),
        };
        let e = combinations(&recipe(&[("threads", json!(2))]), &old, None).unwrap_err();
        assert!(e.contains("no `--threads` option"), "{e}");
    }
}
