//! vLLM's "Python-only build (without compilation)": a checkout whose patches touch only
//! Python is reinstalled in editable mode against the precompiled kernels of the wheel of
//! its base commit, never compiling C++/CUDA. As documented in "Set up using Python-only
//! build (without compilation)",
//! <https://docs.vllm.ai/en/latest/getting_started/installation/gpu.html#python-only-build>
//! (source: `docs/getting_started/installation/gpu.cuda.inc.md` in vllm-project/vllm):
//!
//! ```text
//! VLLM_USE_PRECOMPILED=1 uv pip install --editable . --torch-backend=auto
//! ```
//!
//! and, in the releases whose docs install with pip (v0.6–v0.7),
//! `VLLM_USE_PRECOMPILED=1 pip install --editable .`. [`Installer`] picks which; the
//! docs' other variables (`VLLM_PRECOMPILED_WHEEL_LOCATION`, `…_COMMIT`, `…_VARIANT`) go
//! through [`VllmPythonOnly::env`]. A patch to C++ or CUDA cannot be installed this way
//! (the docs: an import error about a missing library or undefined symbol follows).
//!
//! Argv only; the environment is set on the child, never through a shell.

use super::cmake::{failed, is_executable};
use super::run::Step;
use super::{BuildFailure, Builder, Built};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Which installer runs the editable install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installer {
    /// `PYTHON -m pip install --editable CHECKOUT` (the docs of v0.6–v0.7).
    Pip,
    /// `UV pip install --python PYTHON --editable CHECKOUT --torch-backend=auto` (the
    /// current docs).
    Uv(PathBuf),
}

/// Reinstalls a vLLM checkout's Python into the environment of `python`.
#[derive(Debug, Clone)]
pub struct VllmPythonOnly {
    /// The interpreter of the environment vLLM runs in; what [`Built::program`] names.
    pub python: PathBuf,
    /// pip or uv.
    pub installer: Installer,
    /// Extra variables for the install (`VLLM_USE_PRECOMPILED=1` is always set).
    pub env: Vec<(OsString, OsString)>,
    /// Where the install's process group is recorded (see [`super::run::Step::pids`]).
    pub pids: Option<PathBuf>,
}

impl VllmPythonOnly {
    /// Install with `python -m pip`.
    pub fn pip(python: &Path) -> Self {
        VllmPythonOnly {
            python: python.to_path_buf(),
            installer: Installer::Pip,
            env: Vec::new(),
            pids: None,
        }
    }

    /// Record the install's process group in `pids` (a campaign's `engines.pids`).
    pub fn recorded_in(mut self, pids: &Path) -> Self {
        self.pids = Some(pids.to_path_buf());
        self
    }

    /// Install with `uv pip`, into `python`'s environment.
    pub fn uv(python: &Path, uv: &Path) -> Self {
        VllmPythonOnly {
            installer: Installer::Uv(uv.to_path_buf()),
            ..Self::pip(python)
        }
    }

    /// The install step, run in the checkout.
    fn step(&self, checkout: &Path) -> Step {
        let step = match &self.installer {
            Installer::Pip => Step::new(&self.python, checkout)
                .args(["-m", "pip", "install", "--editable"])
                .args([checkout.as_os_str()]),
            Installer::Uv(uv) => Step::new(uv, checkout)
                .args(["pip", "install", "--python"])
                .args([self.python.as_os_str()])
                .args(["--editable".as_ref(), checkout.as_os_str()])
                .args(["--torch-backend=auto"]),
        };
        let step = step
            .env("VLLM_USE_PRECOMPILED", "1")
            .recorded_in(self.pids.as_deref());
        self.env
            .iter()
            .fold(step, |s, (k, v)| s.env(k.clone(), v.clone()))
    }

    /// [`BuildFailure::Missing`] unless the interpreter (and uv) can be run.
    fn check_tools(&self) -> Result<(), BuildFailure> {
        let mut tools = vec![("python", &self.python)];
        if let Installer::Uv(uv) = &self.installer {
            tools.push(("uv", uv));
        }
        for (tool, path) in tools {
            if !is_executable(path) {
                return Err(BuildFailure::Missing {
                    tool: tool.to_string(),
                    searched: vec![path.display().to_string()],
                });
            }
        }
        Ok(())
    }
}

impl Builder for VllmPythonOnly {
    fn build(&self, checkout: &Path, log: &Path, timeout: Duration) -> Result<Built, BuildFailure> {
        let start = Instant::now();
        self.check_tools()?;
        let ended = self.step(checkout).run(log, start + timeout)?;
        failed(ended, timeout, |first_errors| BuildFailure::Install {
            first_errors,
        })?;
        Ok(Built {
            program: self.python.clone(),
            took: start.elapsed(),
        })
    }
}

#[cfg(test)]
#[path = "vllm_tests.rs"]
mod tests;
