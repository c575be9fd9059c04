//! Layer 2 on llama.cpp: the weights' GGUF type. A recipe with `quant.method: q4_k_m` is
//! served the user's model requantized to that type (`RUN/quant/q4_k_m.gguf`, made by
//! llama-quantize with an importance matrix from the workload before the recipe boots —
//! the tune's business, `crate::tune::quantize`). The engine checks that the run can make
//! the type and serves that file as `--model`.

use std::path::{Path, PathBuf};

use crate::recipe::Recipe;

/// GGUF types forge may ask llama-quantize for (lower case in a recipe; llama-quantize
/// takes them in upper case). `f16` is the unquantized reference.
pub const GGUF_TYPES: &[&str] = &[
    "f16", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q4_k_m", "q4_k_s", "iq4_xs", "q4_0", "q3_k_m",
];

/// The types tried when the user names none, best quality first.
pub const DEFAULT_TYPES: &[&str] = &["q8_0", "q6_k", "q5_k_m", "q4_k_m", "iq4_xs"];

/// The run's quantized model files.
pub const QUANT_DIR: &str = "quant";

/// The requantized models of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantFiles {
    /// `RUN/quant`.
    pub dir: PathBuf,
    /// The types this run can make (the legal values of `quant.method`).
    pub types: Vec<String>,
}

impl QuantFiles {
    /// The files of the run in `run_dir`, for `types`.
    pub fn of_run(run_dir: &Path, types: Vec<String>) -> QuantFiles {
        QuantFiles {
            dir: run_dir.join(QUANT_DIR),
            types,
        }
    }

    /// The model file of `ty`.
    pub fn path_of(&self, ty: &str) -> PathBuf {
        self.dir.join(format!("{ty}.gguf"))
    }

    /// `Err(why)` unless this run makes `ty`.
    pub fn check(&self, ty: &str) -> Result<(), String> {
        if self.types.iter().any(|t| t == ty) {
            return Ok(());
        }
        Err(format!(
            "this run does not make `{ty}` (it makes: {})",
            self.types.join(", ")
        ))
    }
}

/// The GGUF type `r` is served as (`quant.method`), if any.
pub fn method_of(r: &Recipe) -> Option<&str> {
    r.quant.method.as_deref()
}

/// `r` with `model` as its model and no `quant.method`: what llama-server is given.
pub fn served_as(r: &Recipe, model: &Path) -> Recipe {
    let mut out = r.clone();
    out.model = model.display().to_string();
    out.quant.method = None;
    out
}

/// The model file a deployment of the recipe in `recipe_file` serves when it names `ty`:
/// the one its run kept beside it (`RUN/quant/TY.gguf`).
pub fn deployed_model(recipe_file: &Path, ty: &str) -> Result<PathBuf, String> {
    let run = recipe_file.parent().unwrap_or(Path::new("."));
    let run = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
    let file = run.join(QUANT_DIR).join(format!("{ty}.gguf"));
    if file.is_file() {
        return Ok(file);
    }
    Err(format!(
        "quant.method: this recipe serves the model requantized to `{ty}`, and no such file is beside it ({} is missing); run `forge recipe command` on the recipe in its run directory",
        file.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{EngineKind, Hardware};

    #[test]
    fn a_quantized_recipe_is_served_its_file() {
        let hw = Hardware {
            vendor: "cpu".into(),
            gpu_type: "cpu".into(),
            count: 0,
            memory_gb_per_gpu: 0.0,
        };
        let mut r = Recipe::baseline(EngineKind::Llamacpp, "/m/orig.gguf", hw);
        assert_eq!(method_of(&r), None);
        r.quant.method = Some("q4_k_m".into());
        let q = QuantFiles::of_run(Path::new("/run"), vec!["q4_k_m".into()]);
        let path = q.path_of("q4_k_m");
        assert_eq!(path, Path::new("/run/quant/q4_k_m.gguf"));
        let served = served_as(&r, &path);
        assert_eq!(served.model, "/run/quant/q4_k_m.gguf");
        assert_eq!(method_of(&served), None);
        assert!(q.check("q4_k_m").is_ok());
        assert!(q.check("q8_0").unwrap_err().contains("it makes: q4_k_m"));
        for t in DEFAULT_TYPES {
            assert!(GGUF_TYPES.contains(t));
        }
    }
}
