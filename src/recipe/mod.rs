//! Recipes: the one artifact forge tunes and hands over. The YAML keeps the original tool's
//! shape — `model`, `hardware`, `config` (layer 1: serving flags), `quant` (layer 2),
//! `kernels` (layer 3), `parent_id`, `generation`, `id` — plus `engine`.
//!
//! `config` holds only what differs from the engine's defaults (the baseline's is empty,
//! so the baseline really is the engine's own defaults). Every field and value is checked
//! against the engine's allowlist ([`knobs`]) before anything is rendered to argv.

pub mod layer;

use std::collections::BTreeMap;
use std::hash::Hasher;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use twox_hash::XxHash64;

pub use crate::hardware::Hardware;
pub use layer::Layer;

/// Why a recipe, or one value in it, may not run: the knob and value at fault (when one is),
/// and why, in words a user or an LLM can act on. Legality checks return it; the loop
/// records it on a `rej-*` row and the agent reads it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{why}")]
pub struct Illegal {
    /// The recipe field at fault, when one is.
    pub knob: Option<String>,
    /// Its value.
    pub value: Option<Value>,
    /// Why it may not run.
    pub why: String,
}

impl Illegal {
    /// One knob's value is refused.
    pub fn knob(name: &str, value: &Value, why: impl Into<String>) -> Illegal {
        Illegal {
            knob: Some(name.to_string()),
            value: Some(value.clone()),
            why: why.into(),
        }
    }

    /// The recipe as a whole is refused (a combination, or what boot would do).
    pub fn recipe(why: impl Into<String>) -> Illegal {
        Illegal {
            knob: None,
            value: None,
            why: why.into(),
        }
    }
}

/// Which engine a recipe is for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// vLLM (`vllm serve`), or forge's simulator of it.
    #[default]
    Vllm,
    /// llama.cpp's `llama-server`.
    Llamacpp,
    /// SGLang (`sglang serve`), or forge's simulated twin of it.
    Sglang,
    /// TensorRT-LLM's `trtllm-serve` (PyTorch backend), or forge's simulated twin of it.
    Trtllm,
}

impl EngineKind {
    /// The framework's name as people write it (`vLLM`, `SGLang`).
    pub fn display_name(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vLLM",
            EngineKind::Llamacpp => "llama.cpp",
            EngineKind::Sglang => "SGLang",
            EngineKind::Trtllm => "TensorRT-LLM",
        }
    }

    /// The engine named `name` as [`EngineKind::as_str`] writes it.
    pub fn parse(name: &str) -> Option<EngineKind> {
        <EngineKind as clap::ValueEnum>::from_str(name, false).ok()
    }

    /// The name `--engine` and `config.json` use (`vllm`, `sglang`).
    pub fn as_str(self) -> &'static str {
        match self {
            EngineKind::Vllm => "vllm",
            EngineKind::Llamacpp => "llamacpp",
            EngineKind::Sglang => "sglang",
            EngineKind::Trtllm => "trtllm",
        }
    }
}

/// Layer 2: quantization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Quant {
    /// Weight quantization (`fp8`, `awq_marlin`, ...); `None` = the checkpoint's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// KV cache precision (`fp8`, ...); `None` = auto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_quant: Option<String>,
    /// Pre-quantized checkpoint to load instead of `model`, when the method needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
}

impl Quant {
    /// True when nothing is quantized beyond the checkpoint's own format.
    pub fn is_empty(&self) -> bool {
        self.method.is_none() && self.kv_cache_quant.is_none() && self.checkpoint.is_none()
    }
}

/// Layer 3: one kernel choice (e.g. `attention_backend: FLASHINFER`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kernel {
    /// Which kernel slot.
    pub name: String,
    /// The implementation chosen.
    pub value: String,
}

/// A complete deployment recipe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// Content hash (8 hex digits) of everything below except lineage.
    #[serde(default)]
    pub id: String,
    /// The recipe this one was mutated from.
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Mutations since the baseline along the kept lineage.
    #[serde(default)]
    pub generation: u32,
    /// Engine.
    #[serde(default)]
    pub engine: EngineKind,
    /// Model id or path.
    pub model: String,
    /// Hardware.
    #[serde(default)]
    pub hardware: Hardware,
    /// Layer 1: serving flags that differ from the engine's defaults.
    #[serde(default)]
    pub config: BTreeMap<String, Value>,
    /// Layer 2.
    #[serde(default, skip_serializing_if = "Quant::is_empty")]
    pub quant: Quant,
    /// Layer 3.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kernels: Vec<Kernel>,
}

/// Why a recipe file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    /// Unreadable file, or not UTF-8 (`FILE: why` or `FILE:LINE: why`, said once).
    #[error("{0}")]
    Unreadable(String),
    /// Not a recipe.
    #[error("{path}: {why}")]
    Invalid {
        /// The file (with line where known).
        path: String,
        /// What is wrong.
        why: String,
    },
}

impl Recipe {
    /// Every value the recipe sets, as `(layer, knob, value)`: its config, its quant fields
    /// (`method`, `kv_cache_quant`, `checkpoint`) and its kernel choices, in that order.
    pub fn fields(&self) -> Vec<(Layer, String, Value)> {
        let mut out: Vec<(Layer, String, Value)> = self
            .config
            .iter()
            .map(|(k, v)| (Layer::Config, k.clone(), v.clone()))
            .collect();
        let q = &self.quant;
        for (name, v) in [
            ("method", &q.method),
            ("kv_cache_quant", &q.kv_cache_quant),
            ("checkpoint", &q.checkpoint),
        ] {
            if let Some(v) = v {
                out.push((Layer::Quant, name.to_string(), Value::from(v.as_str())));
            }
        }
        for k in &self.kernels {
            out.push((Layer::Kernel, k.name.clone(), Value::from(k.value.as_str())));
        }
        out
    }

    /// A baseline recipe: the engine's defaults for `model` on `hardware`.
    pub fn baseline(engine: EngineKind, model: &str, hardware: Hardware) -> Recipe {
        Recipe::baseline_with(engine, model, hardware, BTreeMap::new())
    }

    /// A baseline with `config` set: the engine's defaults plus what the user's base engine
    /// arguments (or a context the defaults cannot boot with) fix for every candidate.
    pub fn baseline_with(
        engine: EngineKind,
        model: &str,
        hardware: Hardware,
        config: BTreeMap<String, Value>,
    ) -> Recipe {
        let mut r = Recipe {
            id: String::new(),
            parent_id: None,
            generation: 0,
            engine,
            model: model.to_string(),
            hardware,
            config,
            quant: Quant::default(),
            kernels: Vec::new(),
        };
        r.id = r.content_id();
        r
    }

    /// The content hash: equal configurations get equal ids whatever their lineage, so a
    /// re-proposed configuration is recognised as a duplicate.
    pub fn content_id(&self) -> String {
        let key = serde_json::json!({
            "engine": self.engine,
            "model": self.model,
            "hardware": [self.hardware.vendor, self.hardware.gpu_type, self.hardware.count],
            "config": self.config,
            "quant": self.quant,
            "kernels": self.kernels,
        });
        let mut h = XxHash64::with_seed(0xf07e);
        h.write(key.to_string().as_bytes());
        format!("{:08x}", h.finish() as u32)
    }

    /// A child recipe with `changes` applied to one layer (`null` removes a config field,
    /// returning it to the engine default). Lineage and id are updated.
    pub fn mutate(&self, layer: Layer, changes: &BTreeMap<String, Value>) -> Recipe {
        let mut r = self.clone();
        for (k, v) in changes {
            match layer {
                Layer::Config => {
                    if v.is_null() {
                        r.config.remove(k);
                    } else {
                        r.config.insert(k.clone(), v.clone());
                    }
                }
                Layer::Quant => apply_quant(&mut r.quant, k, v),
                Layer::Kernel => apply_kernel(&mut r.kernels, k, v),
            }
        }
        r.parent_id = Some(self.id.clone());
        r.generation = self.generation + 1;
        r.id = r.content_id();
        r
    }

    /// Serialize to YAML.
    pub fn to_yaml(&self) -> String {
        serde_norway::to_string(self).unwrap_or_default()
    }

    /// Parse YAML (errors carry the YAML parser's line and column, in front: `FILE:L:C:`).
    /// Unknown keys are refused (`confg:` would otherwise deploy the defaults), and the
    /// model and checkpoint must be ids or paths an engine may be given.
    pub fn from_yaml(path: &Path, text: &str) -> Result<Recipe, RecipeError> {
        let r: Recipe = serde_norway::from_str(text).map_err(|e| RecipeError::Invalid {
            path: match e.location() {
                Some(l) => format!("{}:{}:{}", path.display(), l.line(), l.column()),
                None => path.display().to_string(),
            },
            why: crate::text::without_location(&e.to_string()),
        })?;
        let refs = [
            ("model", Some(&r.model)),
            ("quant.checkpoint", r.quant.checkpoint.as_ref()),
        ];
        for (field, v) in refs {
            if let Some(v) = v.filter(|v| !is_safe_model_ref(v)) {
                return Err(RecipeError::Invalid {
                    path: path.display().to_string(),
                    why: format!(
                        "{field}: `{v}` is not a model id or path forge passes to an engine \
                         (letters, digits and -_./:@+, no `..`, at most 256 characters)"
                    ),
                });
            }
        }
        Ok(r)
    }

    /// Read a recipe file.
    pub fn load(path: &Path) -> Result<Recipe, RecipeError> {
        let text = crate::text::read(path).map_err(|e| RecipeError::Unreadable(e.at(path)))?;
        Recipe::from_yaml(path, &text)
    }
}

/// A Hugging Face id or local path with no characters that could be read as a flag or
/// shell syntax (argv is never a shell string, but ids also reach logs and prompts).
pub fn is_safe_model_id(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@+".contains(c))
}

/// A model or checkpoint a recipe may name: [`is_safe_model_id`], and no `..` path
/// component (a recipe file from elsewhere must not point the engine up the tree).
pub fn is_safe_model_ref(s: &str) -> bool {
    is_safe_model_id(s) && !s.split('/').any(|part| part == "..")
}

fn apply_quant(q: &mut Quant, key: &str, v: &Value) {
    let s = v.as_str().map(str::to_string);
    match key {
        "method" => q.method = s.filter(|m| m != "none"),
        "kv_cache_quant" => q.kv_cache_quant = s.filter(|m| m != "auto"),
        "checkpoint" => q.checkpoint = s,
        _ => {}
    }
}

fn apply_kernel(k: &mut Vec<Kernel>, name: &str, v: &Value) {
    k.retain(|x| x.name != name);
    if let Some(s) = v.as_str()
        && s != "auto"
    {
        k.push(Kernel {
            name: name.to_string(),
            value: s.to_string(),
        });
        k.sort_by(|a, b| a.name.cmp(&b.name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hw() -> Hardware {
        Hardware {
            vendor: "nvidia".into(),
            gpu_type: "H100".into(),
            count: 1,
            memory_gb_per_gpu: 79.6,
        }
    }

    #[test]
    fn ids_are_content_hashes() {
        let a = Recipe::baseline(EngineKind::Vllm, "m", hw());
        let b = Recipe::baseline(EngineKind::Vllm, "m", hw());
        assert_eq!(a.id, b.id);
        assert_eq!(a.id.len(), 8);
        let mut ch = BTreeMap::new();
        ch.insert("max_num_seqs".to_string(), json!(128));
        let c = a.mutate(Layer::Config, &ch);
        assert_ne!(c.id, a.id);
        assert_eq!(c.parent_id.as_deref(), Some(a.id.as_str()));
        assert_eq!(c.generation, 1);
        // Setting and unsetting returns to the same content.
        let mut back = BTreeMap::new();
        back.insert("max_num_seqs".to_string(), Value::Null);
        assert_eq!(c.mutate(Layer::Config, &back).id, a.id);
    }

    #[test]
    fn yaml_round_trip_keeps_the_original_shape() {
        let mut ch = BTreeMap::new();
        ch.insert("enable_prefix_caching".to_string(), json!(false));
        let r = Recipe::baseline(EngineKind::Vllm, "meta-llama/Llama-3.1-8B-Instruct", hw())
            .mutate(Layer::Config, &ch);
        let y = r.to_yaml();
        for key in [
            "id:",
            "parent_id:",
            "generation:",
            "model:",
            "hardware:",
            "config:",
        ] {
            assert!(y.contains(key), "{key} missing in\n{y}");
        }
        assert_eq!(Recipe::from_yaml(Path::new("r.yaml"), &y).unwrap(), r);
    }

    #[test]
    fn misspelled_keys_and_escaping_checkpoints_are_refused() {
        let p = Path::new("r.yaml");
        let e = Recipe::from_yaml(p, "model: m\nconfg:\n  max_num_seqs: 8\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `confg`"), "{e}");
        let e = Recipe::from_yaml(p, "model: m\nquant:\n  methd: fp8\n").unwrap_err();
        assert!(e.to_string().contains("unknown field `methd`"), "{e}");
        let e =
            Recipe::from_yaml(p, "model: m\nquant:\n  checkpoint: ../../../../etc\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("r.yaml: quant.checkpoint: `../../../../etc` is not"),
            "{e}"
        );
        let e = Recipe::from_yaml(p, "model: --trust-remote-code\n").unwrap_err();
        assert!(
            e.to_string().contains("model: `--trust-remote-code`"),
            "{e}"
        );
        let ok = "model: /models/llama-3.1..8b\nquant:\n  checkpoint: org/m-AWQ\n";
        assert!(Recipe::from_yaml(p, ok).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        /// Any text: a recipe or an error naming the file, never a panic.
        #[test]
        fn any_recipe_text_is_a_recipe_or_an_error(text in r"(model: [a-z/.:-]{0,12}\n)?((config|quant|kernels|hardware|engine|id|confg):( [a-z0-9.:\[\]{},-]{0,10})?\n(  [a-z_]{1,10}: [a-z0-9.\[\]-]{0,6}\n){0,3}){0,4}") {
            match Recipe::from_yaml(Path::new("r.yaml"), &text) {
                Ok(r) => { let _ = r.to_yaml(); }
                Err(e) => proptest::prop_assert!(e.to_string().starts_with("r.yaml")),
            }
        }
    }

    #[test]
    fn yaml_errors_carry_location() {
        let e = Recipe::from_yaml(Path::new("r.yaml"), "model: [unclosed\n").unwrap_err();
        assert!(e.to_string().starts_with("r.yaml:"), "{e}");
        // The place is said once, in front.
        let e = Recipe::from_yaml(Path::new("r.yaml"), "engine: vllm\nmodel: [a]\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "r.yaml:2:8: model: invalid type: sequence, expected a string"
        );
    }

    #[test]
    fn quant_and_kernel_layers() {
        let base = Recipe::baseline(EngineKind::Vllm, "m", hw());
        let mut q = BTreeMap::new();
        q.insert("kv_cache_quant".to_string(), json!("fp8"));
        let r = base.mutate(Layer::Quant, &q);
        assert_eq!(r.quant.kv_cache_quant.as_deref(), Some("fp8"));
        let mut k = BTreeMap::new();
        k.insert("attention_backend".to_string(), json!("FLASHINFER"));
        let r2 = r.mutate(Layer::Kernel, &k);
        assert_eq!(r2.kernels.len(), 1);
        let mut auto = BTreeMap::new();
        auto.insert("attention_backend".to_string(), json!("auto"));
        assert!(r2.mutate(Layer::Kernel, &auto).kernels.is_empty());
    }
}
