//! Recipe → vLLM engine arguments. Only allowlisted fields are read, each converted to
//! its typed `VllmArgs` field; cross-field legality (TP divides heads, batched tokens
//! >= max_num_seqs, GPU gates) is checked against the model and GPU.

use serde_json::Value;

use super::knobs::{self, Layer};
use super::{EngineKind, Recipe};
use crate::engine::vllm::{KvCacheDtype, PerformanceMode, SchedulingPolicy, VllmArgs};

/// Convert a recipe to `VllmArgs` (model = the quantized checkpoint when one is named).
/// Every field passes the allowlist first; the error names the field.
pub fn to_vllm_args(recipe: &Recipe) -> Result<VllmArgs, String> {
    let mut a = VllmArgs {
        model: recipe
            .quant
            .checkpoint
            .clone()
            .unwrap_or_else(|| recipe.model.clone()),
        ..Default::default()
    };
    for (name, value) in &recipe.config {
        knobs::check(EngineKind::Vllm, Layer::Config, name, value)?;
        set_config(&mut a, name, value)?;
    }
    apply_speculative(&mut a, recipe)?;
    if let Some(m) = &recipe.quant.method {
        knobs::check(
            EngineKind::Vllm,
            Layer::Quant,
            "method",
            &Value::from(m.as_str()),
        )?;
        a.quantization = (m != "none").then(|| m.clone());
    }
    if let Some(kv) = &recipe.quant.kv_cache_quant {
        knobs::check(
            EngineKind::Vllm,
            Layer::Quant,
            "kv_cache_quant",
            &Value::from(kv.as_str()),
        )?;
        a.kv_cache_dtype = KvCacheDtype::from_flag(kv);
    }
    for k in &recipe.kernels {
        knobs::check(
            EngineKind::Vllm,
            Layer::Kernel,
            &k.name,
            &Value::from(k.value.as_str()),
        )?;
        if k.name == "attention_backend" && k.value != "auto" {
            a.attention_backend = Some(k.value.clone());
        }
    }
    Ok(a)
}

fn int(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

fn set_config(a: &mut VllmArgs, name: &str, v: &Value) -> Result<(), String> {
    let bad = || format!("{name}: unusable value {v}");
    match name {
        "max_num_seqs" => a.max_num_seqs = Some(int(v).ok_or_else(bad)?),
        "max_num_batched_tokens" => a.max_num_batched_tokens = Some(int(v).ok_or_else(bad)?),
        "enable_prefix_caching" => a.enable_prefix_caching = v.as_bool(),
        "enable_chunked_prefill" => a.enable_chunked_prefill = v.as_bool(),
        "gpu_memory_utilization" => a.gpu_memory_utilization = v.as_f64(),
        "block_size" => a.block_size = Some(int(v).ok_or_else(bad)?),
        "max_model_len" => a.max_model_len = Some(int(v).ok_or_else(bad)?),
        "tensor_parallel_size" => a.tensor_parallel_size = Some(int(v).ok_or_else(bad)?),
        "enforce_eager" => a.enforce_eager = v.as_bool(),
        "optimization_level" => {
            a.optimization_level = Some(int(v).and_then(|x| u8::try_from(x).ok()).ok_or_else(bad)?)
        }
        "max_cudagraph_capture_size" => {
            a.max_cudagraph_capture_size = Some(int(v).ok_or_else(bad)?)
        }
        "performance_mode" => {
            a.performance_mode = Some(match v.as_str() {
                Some("interactivity") => PerformanceMode::Interactivity,
                Some("throughput") => PerformanceMode::Throughput,
                _ => PerformanceMode::Balanced,
            })
        }
        "async_scheduling" => a.async_scheduling = v.as_bool(),
        "long_prefill_token_threshold" => {
            a.long_prefill_token_threshold = Some(int(v).ok_or_else(bad)?)
        }
        "scheduling_policy" => {
            a.scheduling_policy = Some(match v.as_str() {
                Some("priority") => SchedulingPolicy::Priority,
                _ => SchedulingPolicy::Fcfs,
            })
        }
        // Read together in apply_speculative.
        "speculative_method" | "num_speculative_tokens" => {}
        other => return Err(format!("{other}: no vLLM flag for this field")),
    }
    Ok(())
}

fn apply_speculative(a: &mut VllmArgs, r: &Recipe) -> Result<(), String> {
    let method = r.config.get("speculative_method").and_then(Value::as_str);
    let k = r
        .config
        .get("num_speculative_tokens")
        .and_then(Value::as_u64);
    match (method, k) {
        (None | Some("none"), _) => Ok(()),
        (Some(m), k) => {
            let k = k.unwrap_or(3);
            let mut cfg = serde_json::json!({"method": m, "num_speculative_tokens": k});
            if m == "ngram" {
                cfg["prompt_lookup_max"] = 4.into();
                cfg["prompt_lookup_min"] = 2.into();
            }
            a.speculative_config = Some(cfg);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{Hardware, Kernel};
    use serde_json::json;

    fn base() -> Recipe {
        Recipe::baseline(
            EngineKind::Vllm,
            "meta-llama/Llama-3.1-8B-Instruct",
            Hardware::default(),
        )
    }

    #[test]
    fn baseline_sets_nothing() {
        let a = to_vllm_args(&base()).unwrap();
        assert_eq!(
            a,
            VllmArgs {
                model: "meta-llama/Llama-3.1-8B-Instruct".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn fields_map_to_typed_args() {
        let mut r = base();
        r.config.insert("max_num_seqs".into(), json!(128));
        r.config
            .insert("enable_prefix_caching".into(), json!(false));
        r.config
            .insert("gpu_memory_utilization".into(), json!(0.95));
        r.config.insert("speculative_method".into(), json!("ngram"));
        r.quant.kv_cache_quant = Some("fp8".into());
        r.kernels.push(Kernel {
            name: "attention_backend".into(),
            value: "FLASHINFER".into(),
        });
        let a = to_vllm_args(&r).unwrap();
        assert_eq!(a.max_num_seqs, Some(128));
        assert_eq!(a.enable_prefix_caching, Some(false));
        assert_eq!(a.gpu_memory_utilization, Some(0.95));
        assert_eq!(a.kv_cache_dtype, Some(KvCacheDtype::Fp8));
        assert_eq!(a.attention_backend.as_deref(), Some("FLASHINFER"));
        assert_eq!(a.speculative_config.unwrap()["num_speculative_tokens"], 3);
    }

    #[test]
    fn illegal_fields_are_refused_with_the_field_name() {
        let mut r = base();
        r.config.insert("swap_space".into(), json!(4));
        assert!(to_vllm_args(&r).unwrap_err().contains("swap_space"));
        let mut r = base();
        r.quant.kv_cache_quant = Some("bf16".into());
        assert!(to_vllm_args(&r).unwrap_err().contains("kv_cache_quant"));
    }
}
