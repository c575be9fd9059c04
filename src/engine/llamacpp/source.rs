//! A llama.cpp run that serves builds of a source checkout (`forge tune --source CHECKOUT
//! --patches DIR`): where each build lives in the run directory, which patch a recipe is
//! served with, and how a build is launched. The base build (the checkout as it is) serves
//! every recipe without `kernels.patch`; a recipe with `kernels.patch: NAME` is served by
//! the build of the checkout with that patch of the series applied. Making the builds is
//! the tune's business (`crate::tune::source`); the engine checks that a recipe names a
//! patch of the series and launches its build.

use std::path::{Path, PathBuf};

use crate::recipe::Recipe;

/// The run's builds, under the run directory.
pub const BUILDS_DIR: &str = "builds";
/// The base build's directory name (a patch's ends in `.diff`/`.patch`, so never this).
pub const BASE: &str = "base";
/// The server binary in a build directory.
pub const SERVER: &str = "llama-server";

/// The builds of one run and the series they come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Builds {
    /// `RUN/builds`.
    pub dir: PathBuf,
    /// The series' file names, in order: the legal values of `kernels.patch`.
    pub patches: Vec<String>,
}

impl Builds {
    /// The builds of the run in `run_dir`, for a series of `patches`.
    pub fn of_run(run_dir: &Path, patches: Vec<String>) -> Builds {
        Builds {
            dir: run_dir.join(BUILDS_DIR),
            patches,
        }
    }

    /// The directory of the build that serves `patch` (`None`: the base build).
    pub fn dir_of(&self, patch: Option<&str>) -> PathBuf {
        self.dir.join(patch.unwrap_or(BASE))
    }

    /// `Err(why)` unless `patch` is a file of this run's series.
    pub fn check(&self, patch: &str) -> Result<(), String> {
        if self.patches.iter().any(|p| p == patch) {
            return Ok(());
        }
        Err(format!(
            "`{patch}` is not a patch of this run's series (the series: {})",
            self.patches.join(", ")
        ))
    }
}

/// The patch `r` is served with (`kernels.patch`), if any.
pub fn patch_of(r: &Recipe) -> Option<&str> {
    r.kernels
        .iter()
        .find(|k| k.name == "patch")
        .map(|k| k.value.as_str())
}

/// The argv prefix that runs the `llama-server` in build directory `dir` with the shared
/// libraries beside it: `env LD_LIBRARY_PATH=DIR DIR/llama-server`. (The binary's RUNPATH
/// names the CMake build directory, which the next build overwrites.)
pub fn launcher(dir: &Path) -> Vec<String> {
    vec![
        "env".to_string(),
        format!("LD_LIBRARY_PATH={}", dir.display()),
        dir.join(SERVER).display().to_string(),
    ]
}

/// The launcher a deployment of the recipe in file `recipe_file` uses when it names
/// `patch`: the build the run kept beside the recipe (`RUN/builds/PATCH/`).
pub fn deploy_launcher(recipe_file: &Path, patch: &str) -> Result<Vec<String>, String> {
    let run = recipe_file.parent().unwrap_or(Path::new("."));
    let run = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
    let dir = run.join(BUILDS_DIR).join(patch);
    if dir.join(SERVER).is_file() {
        return Ok(launcher(&dir));
    }
    Err(format!(
        "kernels.patch: this recipe serves llama.cpp built with the patch `{patch}`, and no such build is beside it ({} is missing); run `forge recipe command` on the recipe in its run directory, or build your checkout with the patch applied",
        dir.join(SERVER).display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::{EngineKind, Hardware, Layer};
    use std::collections::BTreeMap;

    #[test]
    fn a_recipe_names_its_patch_and_each_build_has_its_directory() {
        let hw = Hardware {
            vendor: "cpu".into(),
            gpu_type: "cpu".into(),
            count: 0,
            memory_gb_per_gpu: 0.0,
        };
        let base = Recipe::baseline(EngineKind::Llamacpp, "m.gguf", hw);
        assert_eq!(patch_of(&base), None);
        let ch = BTreeMap::from([("patch".to_string(), serde_json::json!("01-x.diff"))]);
        let r = base.mutate(Layer::Kernel, &ch);
        assert_eq!(patch_of(&r), Some("01-x.diff"));
        let b = Builds::of_run(Path::new("/run"), vec!["01-x.diff".into()]);
        assert_eq!(b.dir_of(None), Path::new("/run/builds/base"));
        assert_eq!(
            b.dir_of(Some("01-x.diff")),
            Path::new("/run/builds/01-x.diff")
        );
        assert!(b.check("01-x.diff").is_ok());
        let e = b.check("02-y.diff").unwrap_err();
        assert!(e.contains("the series: 01-x.diff"), "{e}");
        assert_eq!(
            launcher(Path::new("/run/builds/base")),
            [
                "env",
                "LD_LIBRARY_PATH=/run/builds/base",
                "/run/builds/base/llama-server"
            ]
        );
    }

    #[test]
    fn a_deployment_uses_the_build_beside_the_recipe() {
        let tmp = tempfile::tempdir().unwrap();
        let recipe = tmp.path().join("best_recipe.yaml");
        let e = deploy_launcher(&recipe, "01-x.diff").unwrap_err();
        assert!(e.contains("no such build is beside it"), "{e}");
        let dir = tmp.path().join("builds/01-x.diff");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(SERVER), "").unwrap();
        let l = deploy_launcher(&recipe, "01-x.diff").unwrap();
        assert_eq!(l[2], dir.join(SERVER).display().to_string());
    }
}
