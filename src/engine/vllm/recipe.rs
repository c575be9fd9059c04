//! Recipe → vLLM engine arguments. Only allowlisted fields are read, each converted to
//! its typed `VllmArgs` field; cross-field legality (TP divides heads, batched tokens
//! >= max_num_seqs, GPU gates) is checked against the model and GPU.

use std::collections::BTreeMap;

use serde_json::Value;

use super::knobs::VLLM_KNOBS;
use super::{KvCacheDtype, PerformanceMode, SchedulingPolicy, VllmArgs, VllmConfig};
use crate::engine::knobs::check_in;
use crate::hardware::GpuSpec;
use crate::recipe::Layer;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// Convert a recipe to `VllmArgs` (model = the quantized checkpoint when one is named).
/// Every field passes the allowlist first; the error names the field.
pub fn to_vllm_args(recipe: &Recipe) -> Result<VllmArgs, Illegal> {
    let mut a = VllmArgs {
        model: recipe
            .quant
            .checkpoint
            .clone()
            .unwrap_or_else(|| recipe.model.clone()),
        ..Default::default()
    };
    for (name, value) in &recipe.config {
        allowed(Layer::Config, name, value)?;
        set_config(&mut a, name, value)?;
    }
    apply_speculative(&mut a, recipe)?;
    if let Some(m) = &recipe.quant.method {
        allowed(Layer::Quant, "method", &Value::from(m.as_str()))?;
        a.quantization = (m != "none").then(|| m.clone());
    }
    if let Some(kv) = &recipe.quant.kv_cache_quant {
        allowed(Layer::Quant, "kv_cache_quant", &Value::from(kv.as_str()))?;
        a.kv_cache_dtype = KvCacheDtype::from_flag(kv);
    }
    for k in &recipe.kernels {
        allowed(Layer::Kernel, &k.name, &Value::from(k.value.as_str()))?;
        if k.name == "attention_backend" && k.value != "auto" {
            a.attention_backend = Some(k.value.clone());
        }
    }
    Ok(a)
}

/// A recipe's value of every vLLM knob, with vLLM's defaults for `gpu` filled in. Without a
/// GPU (its defaults depend on the GPU's memory) only the recipe's explicit config values.
pub fn effective(recipe: &Recipe, gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
    let Some(gpu) = gpu else {
        return recipe.config.clone();
    };
    let Ok(args) = to_vllm_args(recipe) else {
        return BTreeMap::new();
    };
    let c = args.resolve(gpu);
    let mut m = BTreeMap::new();
    m.insert("max_num_seqs".into(), Value::from(c.max_num_seqs));
    m.insert(
        "max_num_batched_tokens".into(),
        Value::from(c.max_num_batched_tokens),
    );
    m.insert(
        "enable_prefix_caching".into(),
        Value::from(c.enable_prefix_caching),
    );
    m.insert(
        "enable_chunked_prefill".into(),
        Value::from(c.enable_chunked_prefill),
    );
    m.insert(
        "gpu_memory_utilization".into(),
        Value::from(c.gpu_memory_utilization),
    );
    m.insert(
        "long_prefill_token_threshold".into(),
        Value::from(c.long_prefill_token_threshold),
    );
    m.insert("async_scheduling".into(), Value::from(c.async_scheduling));
    m.insert("max_cudagraph_capture_size".into(), cudagraph_max(&c));
    m.insert("block_size".into(), Value::from(c.block_size));
    m.insert("enforce_eager".into(), Value::from(c.enforce_eager));
    m.insert(
        "method".into(),
        Value::from(c.quantization.clone().unwrap_or_else(|| "none".into())),
    );
    m.insert(
        "kv_cache_quant".into(),
        Value::from(c.kv_cache_dtype.as_flag()),
    );
    m.insert(
        "attention_backend".into(),
        Value::from(c.attention_backend.clone().unwrap_or_else(|| "auto".into())),
    );
    m
}

/// vLLM's default largest capture size: min(2·max_num_seqs, 512), unless set.
fn cudagraph_max(c: &VllmConfig) -> Value {
    Value::from(
        c.max_cudagraph_capture_size
            .unwrap_or((2 * c.max_num_seqs).min(512)),
    )
}

/// One value against vLLM's allowlist.
fn allowed(layer: Layer, name: &str, value: &Value) -> Result<(), Illegal> {
    check_in(EngineKind::Vllm, VLLM_KNOBS, layer, name, value)
}

fn int(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|x| u32::try_from(x).ok())
}

fn set_config(a: &mut VllmArgs, name: &str, v: &Value) -> Result<(), Illegal> {
    let bad = || Illegal::knob(name, v, format!("{name}: unusable value {v}"));
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
        other => {
            return Err(Illegal::knob(
                other,
                v,
                format!("{other}: no vLLM flag for this field"),
            ));
        }
    }
    Ok(())
}

fn apply_speculative(a: &mut VllmArgs, r: &Recipe) -> Result<(), Illegal> {
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

/// The recipe config that `argv` (vLLM flags, as typed after `vllm serve MODEL`) sets:
/// base engine arguments a user passes every experiment (`forge tune --engine-args`).
/// Only flags a recipe carries in its config layer are taken, each checked by the
/// allowlist; a flag forge tunes elsewhere (quantization, kernels) or cannot carry is
/// refused with its name.
pub fn config_from_args(argv: &[String]) -> Result<BTreeMap<String, Value>, Illegal> {
    if argv.iter().any(|w| w.starts_with("--api-key")) {
        return Err(Illegal::recipe(
            "--api-key is never taken: base engine arguments are recorded in config.json, and a key must not be",
        ));
    }
    let mut words = vec!["model".to_string()];
    words.extend(argv.iter().cloned());
    let p = super::flags::parse_full(&words, super::flags::Version::CURRENT)
        .map_err(|e| Illegal::recipe(format!("vllm serve would refuse it: {}", e.message)))?;
    if let Some(f) = p.ignored.first() {
        return Err(Illegal::recipe(format!(
            "{f} does not change how forge measures a recipe; leave it out"
        )));
    }
    let a = &p.args;
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.to_string(), v);
        }
    };
    put("max_num_seqs", a.max_num_seqs.map(Value::from));
    put(
        "max_num_batched_tokens",
        a.max_num_batched_tokens.map(Value::from),
    );
    put(
        "enable_prefix_caching",
        a.enable_prefix_caching.map(Value::from),
    );
    put(
        "enable_chunked_prefill",
        a.enable_chunked_prefill.map(Value::from),
    );
    put(
        "gpu_memory_utilization",
        a.gpu_memory_utilization.map(Value::from),
    );
    put("block_size", a.block_size.map(Value::from));
    put("max_model_len", a.max_model_len.map(Value::from));
    put(
        "tensor_parallel_size",
        a.tensor_parallel_size.map(Value::from),
    );
    put("enforce_eager", a.enforce_eager.map(Value::from));
    put("optimization_level", a.optimization_level.map(Value::from));
    put(
        "max_cudagraph_capture_size",
        a.max_cudagraph_capture_size.map(Value::from),
    );
    put("async_scheduling", a.async_scheduling.map(Value::from));
    put(
        "long_prefill_token_threshold",
        a.long_prefill_token_threshold.map(Value::from),
    );
    put(
        "performance_mode",
        a.performance_mode.map(|x| Value::from(x.as_str())),
    );
    put(
        "scheduling_policy",
        a.scheduling_policy.map(|x| Value::from(x.as_str())),
    );
    for (k, v) in &m {
        allowed(Layer::Config, k, v)?;
    }
    let back = to_vllm_args(&Recipe::baseline_with(
        EngineKind::Vllm,
        "model",
        crate::recipe::Hardware::default(),
        m.clone(),
    ))?;
    let others: Vec<String> = p
        .set
        .iter()
        .filter(|(dest, _)| !m.contains_key(dest))
        .map(|(dest, _)| format!("--{}", dest.replace('_', "-")))
        .collect();
    if !others.is_empty() || back != *a {
        return Err(Illegal::recipe(format!(
            "only serving flags a recipe carries may be given (forge picks host, port and served name itself, and tunes quantization and kernels in their own layers); not: {}",
            others.join(", ")
        )));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn base_engine_arguments_become_config_or_are_refused_by_name() {
        let m = config_from_args(&words(
            "--max-model-len 8K --max-num-seqs 64 --no-enable-prefix-caching --performance-mode throughput",
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"max_model_len": 8192, "max_num_seqs": 64,
                "enable_prefix_caching": false, "performance_mode": "throughput"})
        );
        for (argv, says) in [
            ("--quantization fp8", "not: --quantization"),
            ("--kv-cache-dtype fp8", "not: --kv-cache-dtype"),
            ("--port 9000 --max-num-seqs 8", "not: --port"),
            ("--max-num-seqs 0", "outside"),
            ("--api-key sk-secret", "--api-key is never taken"),
            ("--bogus 1", "unrecognized arguments: --bogus"),
            ("--max-num-seqs", "expected one argument"),
        ] {
            let e = config_from_args(&words(argv)).unwrap_err();
            assert!(e.to_string().contains(says), "{argv}: {e}");
            assert!(!e.to_string().contains("sk-secret"), "{e}");
        }
    }
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
        assert!(to_vllm_args(&r).unwrap_err().why.contains("swap_space"));
        let mut r = base();
        r.quant.kv_cache_quant = Some("bf16".into());
        assert!(to_vllm_args(&r).unwrap_err().why.contains("kv_cache_quant"));
    }
}
