//! The allowlist: every recipe field forge may set, per engine, with its layer, type and
//! legal values. Nothing outside these tables reaches an engine's command line, and values
//! an engine rejects (`kv_cache_dtype: bf16`, removed flags such as `swap_space`) are
//! refused here, with the reason, before anything boots.

use serde_json::Value;

use super::knobs::{Knob, check_in};
use crate::recipe::{EngineKind, Illegal, Layer};

/// The knob table of an engine.
pub fn table(engine: EngineKind) -> &'static [Knob] {
    match engine {
        EngineKind::Vllm => super::vllm::knobs::VLLM_KNOBS,
        EngineKind::Llamacpp => super::llamacpp::knobs::LLAMACPP_KNOBS,
        EngineKind::Sglang => super::sglang::knobs::SGLANG_KNOBS,
        EngineKind::Trtllm => super::trtllm::knobs::TRTLLM_KNOBS,
    }
}

/// Look a knob up by layer and name.
pub fn find(engine: EngineKind, layer: Layer, name: &str) -> Option<&'static Knob> {
    table(engine)
        .iter()
        .find(|k| k.layer == layer && k.name == name)
}

/// Check one value against `engine`'s allowlist. `Err` says why, in words a user (or an
/// LLM) can act on, and names the knob and value.
pub fn check(engine: EngineKind, layer: Layer, name: &str, value: &Value) -> Result<(), Illegal> {
    check_in(engine, table(engine), layer, name, value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rejects_what_vllm_rejects() {
        let e = check(
            EngineKind::Vllm,
            Layer::Quant,
            "kv_cache_quant",
            &json!("bf16"),
        )
        .unwrap_err();
        assert!(e.why.contains("not one of"), "{e}");
        let e = check(EngineKind::Vllm, Layer::Config, "swap_space", &json!(4)).unwrap_err();
        assert!(e.why.contains("not a config knob"), "{e}");
        assert_eq!(e.knob.as_deref(), Some("swap_space"));
        assert_eq!(e.value, Some(json!(4)));
        let e = check(
            EngineKind::Vllm,
            Layer::Kernel,
            "attention_backend",
            &json!("flash-attn-3"),
        )
        .unwrap_err();
        assert!(e.why.contains("not one of"), "{e}");
        assert!(check(EngineKind::Vllm, Layer::Config, "max_num_seqs", &json!(0)).is_err());
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "max_num_seqs",
                &json!("64")
            )
            .is_err()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "gpu_memory_utilization",
                &json!(0.99)
            )
            .is_err()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "enable_prefix_caching",
                &json!(1)
            )
            .is_err()
        );
    }

    #[test]
    fn accepts_legal_values_and_resets() {
        assert!(check(EngineKind::Vllm, Layer::Config, "max_num_seqs", &json!(256)).is_ok());
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "gpu_memory_utilization",
                &json!(0.95)
            )
            .is_ok()
        );
        assert!(
            check(
                EngineKind::Vllm,
                Layer::Config,
                "max_num_seqs",
                &Value::Null
            )
            .is_ok()
        );
        assert!(check(EngineKind::Vllm, Layer::Quant, "method", &json!("fp8")).is_ok());
        assert!(check(EngineKind::Llamacpp, Layer::Config, "parallel", &json!(4)).is_ok());
        assert!(
            check(
                EngineKind::Llamacpp,
                Layer::Config,
                "max_num_seqs",
                &json!(4)
            )
            .is_err()
        );
    }
}
