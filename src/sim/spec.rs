//! Speculative decoding (`--speculative-config '{"method": ..., "num_speculative_tokens": k}'`):
//! a deliberately simple model.
//!
//! Each decode step verifies k drafted tokens per request (the target computes k + 1 tokens
//! per request) and emits the accepted ones plus one: with a fixed per-method acceptance
//! rate α, the expected tokens per step are (1 − α^(k+1)) / (1 − α). The drafter costs k
//! sequential passes: EAGLE/EAGLE3/MTP run one extra decoder layer plus the output head,
//! a separate draft model about a tenth of the target's layers, n-gram lookup nothing on the
//! GPU. The acceptance rates are round numbers typical of chat traffic (n-gram 0.3,
//! EAGLE 0.6, EAGLE3 0.7, MTP 0.75, draft model 0.65); real rates depend on the text.

use serde_json::Value;

/// A resolved speculative-decoding setup.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecDecode {
    /// vLLM's method name.
    pub method: String,
    /// Speculative tokens per step (k).
    pub k: u32,
    /// Per-token acceptance rate α.
    pub acceptance: f64,
    /// Decoder layers one draft pass runs.
    pub draft_layers: f64,
    /// Output-head passes per draft pass (0 or 1).
    pub draft_head: f64,
}

impl SpecDecode {
    /// Parse `--speculative-config`. `None` when absent; `Err` carries vLLM-style text.
    pub fn from_config(
        v: Option<&Value>,
        target_layers: u32,
    ) -> Result<Option<SpecDecode>, String> {
        let Some(v) = v else { return Ok(None) };
        let k = v
            .get("num_speculative_tokens")
            .and_then(Value::as_u64)
            .ok_or("ValueError: num_speculative_tokens must be provided with speculative model")?
            as u32;
        let method = v
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or(if v.get("model").is_some() {
                "draft_model"
            } else {
                "ngram"
            })
            .to_string();
        let (acceptance, layers, head) = match method.as_str() {
            "ngram" | "suffix" => (0.3, 0.0, 0.0),
            "eagle" => (0.6, 1.0, 1.0),
            "eagle3" => (0.7, 1.0, 1.0),
            "draft_model" => (0.65, (f64::from(target_layers) / 10.0).ceil(), 0.2),
            m if m == "mtp" || m.ends_with("_mtp") => (0.75, 1.0, 1.0),
            m => return Err(format!("ValueError: Unsupported speculative method: '{m}'")),
        };
        if k == 0 {
            return Err("ValueError: num_speculative_tokens must be > 0".into());
        }
        Ok(Some(SpecDecode {
            method,
            k,
            acceptance,
            draft_layers: layers,
            draft_head: head,
        }))
    }

    /// Expected tokens emitted per decode step: (1 − α^(k+1)) / (1 − α).
    pub fn tokens_per_step(&self) -> f64 {
        let a = self.acceptance;
        (1.0 - a.powi(self.k as i32 + 1)) / (1.0 - a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_tokens_per_step() {
        let s = SpecDecode::from_config(
            Some(&serde_json::json!({"method": "eagle", "num_speculative_tokens": 3})),
            32,
        )
        .unwrap()
        .unwrap();
        // (1 - 0.6^4) / 0.4 = 2.176
        assert!((s.tokens_per_step() - 2.176).abs() < 1e-9);
        assert!(SpecDecode::from_config(None, 32).unwrap().is_none());
        let bad = SpecDecode::from_config(
            Some(&serde_json::json!({"method": "magic", "num_speculative_tokens": 2})),
            32,
        );
        assert!(bad.unwrap_err().contains("magic"));
    }
}
