//! Layer 3 from source (`forge tune --engine llamacpp --source CHECKOUT --patches DIR`):
//! the checkout's own `llama-server` (the base build, serving every recipe without
//! `kernels.patch`) and one build per patch of the series, each made once into the run
//! directory (`builds/base/`, `builds/NAME/`) with the campaign's machinery: the patch
//! judged and applied by [`crate::patch`] (the `rej-*` refusals, `git apply`), the server
//! rebuilt incrementally by [`crate::build::LlamaCpp`] in a build directory outside the
//! checkout, and the checkout put back on its base commit after each build, whatever
//! happened. A patch that is refused, does not apply or does not compile is its recipe's
//! failure (`build_failed`, with the compiler's first error lines); the run goes on.
//!
//! Crash safety: a build directory counts only with its stamp (`built.json`: base commit
//! and the patch's hash), written last; the checkout is patched only between a marker
//! (`builds/applying`) and its removal, so a run killed in between puts the checkout back
//! when it resumes. One run patches a checkout at a time (a lock in its git directory).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::measure::Prepare;
use crate::build::{Builder, LlamaCpp, keep_server};
use crate::engine::failure::Failure;
use crate::engine::llamacpp::source::{self, BASE, Builds};
use crate::patch::{self, Limits, git, series};
use crate::recipe::Recipe;
use crate::record::settings::SourceSettings;
use crate::store::{LOGS_DIR, PIDS_FILE, RunLock, write_atomic};

/// The stamp of a finished build.
const STAMP: &str = "built.json";
/// Present while the checkout carries a patch (its content: the patch's name).
const APPLYING: &str = "applying";
/// Longest a build may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// What a finished build was made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Stamp {
    base_commit: String,
    /// XxHash64 of the patch text (`None`: the base build).
    patch_hash: Option<String>,
}

/// The builds of one run.
pub struct SourceBuilds {
    settings: SourceSettings,
    builds: Builds,
    series: Vec<series::Candidate>,
    builder: LlamaCpp,
    logs: PathBuf,
    _checkout_lock: RunLock,
}

impl SourceBuilds {
    /// The builds of the run in `run_dir`: the checkout locked, put back on its base commit
    /// if a killed run left a patch in it, and checked to be there and clean.
    pub fn open(s: &SourceSettings, run_dir: &Path) -> anyhow::Result<SourceBuilds> {
        let co = &s.checkout;
        let lock = RunLock::acquire(&git::git_dir(co)?).map_err(|e| {
            anyhow::anyhow!(
                "--source {}: another forge run is patching it ({e})",
                co.display()
            )
        })?;
        let series = series::list(&s.patches)?;
        let names = series.iter().map(|c| c.name.clone()).collect();
        let mut builder = LlamaCpp::new(&s.build_dir);
        builder.cmake.pids = Some(run_dir.join(PIDS_FILE));
        let me = SourceBuilds {
            settings: s.clone(),
            builds: Builds::of_run(run_dir, names),
            series,
            builder,
            logs: run_dir.join(LOGS_DIR),
            _checkout_lock: lock,
        };
        me.recover()?;
        Ok(me)
    }

    /// The builds the engine launches.
    pub fn builds(&self) -> &Builds {
        &self.builds
    }

    /// Put the checkout back if a killed run left a patch in it, then insist it is clean and
    /// on the run's base commit.
    fn recover(&self) -> anyhow::Result<()> {
        let (co, base) = (&self.settings.checkout, &self.settings.base_commit);
        let marker = self.builds.dir.join(APPLYING);
        if marker.exists() {
            git::revert_to(co, base)?;
            std::fs::remove_file(&marker)?;
            eprintln!(
                "forge: put {} back on {} (an interrupted build had patched it)",
                co.display(),
                git::short(base)
            );
        }
        git::ensure_repo_and_clean(co).map_err(|e| anyhow::anyhow!("--source: {e}"))?;
        let head = git::head(co)?;
        anyhow::ensure!(
            head == *base,
            "--source {}: HEAD is {} but this run builds {}; check that commit out again to resume",
            co.display(),
            git::short(&head),
            git::short(base)
        );
        Ok(())
    }

    /// Make the base build (the checkout as it is) unless it exists; an error when it cannot
    /// be made (the user's own checkout, or the machine, is at fault: nothing to tune).
    pub fn ensure_base(&self) -> anyhow::Result<()> {
        if self.stamped(None, None) {
            return Ok(());
        }
        eprintln!(
            "forge: building llama-server from {} at {} (the base every patch is measured against; log: {})",
            self.settings.checkout.display(),
            git::short(&self.settings.base_commit),
            self.log_of(None).display()
        );
        self.build_into(None, None)
            .map_err(|f| anyhow::anyhow!("--source: {}", f.summary))
    }

    /// Make what `recipe` is served with before it boots: the build of its `kernels.patch`
    /// (nothing for a recipe without one). `Err` is the recipe's `build_failed`.
    fn prepare_patch(&self, recipe: &Recipe) -> Result<(), Failure> {
        let Some(name) = source::patch_of(recipe) else {
            return Ok(());
        };
        let c = self.series.iter().find(|c| c.name == name).ok_or_else(|| {
            Failure::build_failed(
                format!("`{name}` is not a patch of this run's series"),
                Vec::new(),
            )
        })?;
        let text =
            series::read(c).map_err(|e| Failure::build_failed(format!("{e:#}"), Vec::new()))?;
        let hash = crate::text::content_hash(text.as_bytes());
        if self.stamped(Some(name), Some(&hash)) {
            return Ok(());
        }
        eprintln!(
            "forge: building llama-server with {name} (log: {})",
            self.log_of(Some(name)).display()
        );
        self.with_patch(name, &text, || self.build_into(Some(name), Some(&hash)))
    }

    /// Run `build` with `text` applied to the checkout, and put the checkout back after.
    fn with_patch(
        &self,
        name: &str,
        text: &str,
        build: impl FnOnce() -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let co = &self.settings.checkout;
        let marker = self.builds.dir.join(APPLYING);
        std::fs::create_dir_all(&self.builds.dir).map_err(|e| machine(&e))?;
        write_atomic(&marker, name.as_bytes()).map_err(|e| machine(&e))?;
        let outcome = match patch::try_apply(co, text, &Limits::default()) {
            Ok(_) => build(),
            Err(rej) => Err(Failure::build_failed(
                format!("{name}: the patch was not applied ({}): {rej}", rej.code()),
                Vec::new(),
            )),
        };
        git::revert_to(co, &self.settings.base_commit).map_err(|e| machine(&e))?;
        std::fs::remove_file(&marker).map_err(|e| machine(&e))?;
        outcome
    }

    /// Build the checkout as it is now into `builds/NAME/` and stamp it.
    fn build_into(&self, patch: Option<&str>, hash: Option<&str>) -> Result<(), Failure> {
        let log = self.log_of(patch);
        std::fs::create_dir_all(&self.logs).map_err(|e| machine(&e))?;
        let built = self
            .builder
            .build(&self.settings.checkout, &log, BUILD_TIMEOUT)
            .map_err(|e| {
                let whose = if e.is_patch_fault() {
                    ""
                } else {
                    " (the machine's fault, not the patch's)"
                };
                Failure::build_failed(
                    format!("{}{whose}; log: {}", e, log.display()),
                    e.first_errors().to_vec(),
                )
            })?;
        let dir = self.builds.dir_of(patch);
        let bin = built.program.parent().unwrap_or(Path::new("."));
        keep_server(bin, &dir).map_err(|e| machine(&e))?;
        let stamp = Stamp {
            base_commit: self.settings.base_commit.clone(),
            patch_hash: hash.map(str::to_string),
        };
        let text = serde_json::to_vec_pretty(&stamp).map_err(|e| machine(&e))?;
        write_atomic(&dir.join(STAMP), &text).map_err(|e| machine(&e))
    }

    /// True when `builds/NAME/` holds a finished build of this base and patch text.
    fn stamped(&self, patch: Option<&str>, hash: Option<&str>) -> bool {
        let dir = self.builds.dir_of(patch);
        let Ok(text) = std::fs::read(dir.join(STAMP)) else {
            return false;
        };
        let want = Stamp {
            base_commit: self.settings.base_commit.clone(),
            patch_hash: hash.map(str::to_string),
        };
        serde_json::from_slice::<Stamp>(&text).is_ok_and(|s| s == want)
            && dir.join(source::SERVER).is_file()
    }

    fn log_of(&self, patch: Option<&str>) -> PathBuf {
        self.logs
            .join(format!("build-{}.log", patch.unwrap_or(BASE)))
    }
}

impl Prepare for SourceBuilds {
    fn prepare(&self, recipe: &Recipe) -> Result<(), Failure> {
        self.prepare_patch(recipe)
    }
}

/// The machine failed around a build (a file, git): still the recipe's row, said so.
fn machine(e: &dyn std::fmt::Display) -> Failure {
    Failure::build_failed(
        format!("could not build (the machine's fault): {e}"),
        Vec::new(),
    )
}
