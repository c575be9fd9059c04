//! The vLLM [`Executor`]: a patch to vLLM's Python is installed the documented way
//! ([`VllmPythonOnly`]: an editable reinstall against the precompiled kernels), and the
//! patched server runs from the checkout itself. The base stays runnable beside it: each
//! base build snapshots the package (`vllm/`, Python copied, large compiled libraries hard
//! linked — a patch never touches them: binary diffs are refused) into `builds/base/`, and
//! the base server runs with that snapshot first on `PYTHONPATH`. Both are served as
//! `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 under the campaign's served
//! name; the competitor (the best rival's launch command, `{port}` filled in) is measured
//! the same way ([`super::serve`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::attempt::{Build, BuildFailed, Executor, Profiles, rebuild};
use super::serve::{Asker, Load, SERVED};
use crate::build::VllmPythonOnly;
use crate::engine::health::engine_port;
use crate::engine::process::{LaunchSpec, ServerProcess};

/// The Python package a vLLM checkout installs.
const PACKAGE: &str = "vllm";
/// Files at least this large are hard linked into the base snapshot, not copied.
const LINK_BYTES: u64 = 1 << 20;

/// vLLM behind the [`Executor`] seam.
pub struct VllmExecutor {
    builder: VllmPythonOnly,
    /// The checkout the patched server runs from.
    checkout: PathBuf,
    /// `builds/base` (holding the base's `vllm/`).
    base: PathBuf,
    model: String,
    asker: Asker,
    /// The competitor's launch command (`{port}` is replaced by its port).
    leader: Vec<String>,
    timeout: Duration,
    boot_timeout: Duration,
}

impl VllmExecutor {
    /// Install with `builder`, serve `model` from `checkout`, keep builds and logs under
    /// `dir`, and measure `leader` as the competitor.
    pub fn new(
        builder: VllmPythonOnly,
        checkout: &Path,
        dir: &Path,
        model: &str,
        load: Load,
        leader: Vec<String>,
    ) -> VllmExecutor {
        let asker = Asker::new(dir, load, json!({"seed": 1}));
        VllmExecutor {
            builder: builder.recorded_in(asker.pids()),
            checkout: checkout.to_path_buf(),
            base: dir.join("builds").join("base"),
            model: model.to_string(),
            asker,
            leader,
            timeout: Duration::from_secs(3600),
            boot_timeout: Duration::from_secs(1200),
        }
    }

    /// Where `which`'s `vllm` package is imported from.
    fn pythonpath(&self, which: Build) -> &Path {
        match which {
            Build::Base => &self.base,
            Build::Patched => &self.checkout,
        }
    }

    fn args(&self, port: u16) -> Vec<String> {
        let port = port.to_string();
        [
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            &self.model,
            "--served-model-name",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    async fn serve(&mut self, which: Option<Build>) -> anyhow::Result<(ServerProcess, String)> {
        let port = engine_port()?;
        let log = self.asker.next_log()?;
        let spec = match which {
            Some(b) => {
                let python = self.builder.python.display().to_string();
                let mut spec = LaunchSpec::from_launcher(&[python], self.args(port), &log)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let path = self.pythonpath(b).display().to_string();
                spec.env.push(("PYTHONPATH".into(), path));
                spec
            }
            None => {
                let argv: Vec<String> = self
                    .leader
                    .iter()
                    .map(|a| a.replace("{port}", &port.to_string()))
                    .collect();
                LaunchSpec::from_launcher(&argv, Vec::new(), &log)
                    .map_err(|e| anyhow::anyhow!("the competitor's command: {e}"))?
            }
        };
        self.asker.boot(&spec, port, self.boot_timeout).await
    }
}

/// Replace `to` with a snapshot of the package directory `from` (`__pycache__` left out).
fn snapshot(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let ty = e.file_type()?;
        if name == "__pycache__" || ty.is_symlink() {
            continue;
        }
        let target = to.join(&name);
        if ty.is_dir() {
            snapshot(&e.path(), &target)?;
        } else if e.metadata()?.len() >= LINK_BYTES {
            std::fs::hard_link(e.path(), &target)
                .or_else(|_| std::fs::copy(e.path(), &target).map(|_| ()))?;
        } else {
            std::fs::copy(e.path(), &target)?;
        }
    }
    Ok(())
}

impl Executor for VllmExecutor {
    async fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> anyhow::Result<Result<(), BuildFailed>> {
        if let Err(failed) = rebuild(&self.builder, checkout, log, self.timeout)? {
            return Ok(Err(failed));
        }
        if which == Build::Base {
            snapshot(&checkout.join(PACKAGE), &self.base.join(PACKAGE))?;
        }
        Ok(Ok(()))
    }

    async fn answers(&mut self, which: Build) -> anyhow::Result<Vec<String>> {
        let (proc, url) = self.serve(Some(which)).await?;
        Ok(self.asker.answers(proc, &url).await)
    }

    async fn measure(&mut self, which: Build) -> anyhow::Result<f64> {
        let (proc, url) = self.serve(Some(which)).await?;
        self.asker.measure(proc, &url).await
    }

    async fn measure_leader(&mut self) -> anyhow::Result<f64> {
        let (proc, url) = self.serve(None).await?;
        self.asker.measure(proc, &url).await
    }

    async fn profile(&mut self, _dir: &Path, _round: u32) -> anyhow::Result<Profiles> {
        Ok(Profiles::Unavailable(
            "the campaign does not capture vLLM profiles yet: take them with `forge profile \
             --base-url URL --trace-dir DIR` and give the reports to the round"
                .into(),
        ))
    }

    fn command(&self, which: Option<Build>) -> Vec<String> {
        match which {
            Some(b) => {
                let mut argv = vec![
                    "env".to_string(),
                    format!("PYTHONPATH={}", self.pythonpath(b).display()),
                    self.builder.python.display().to_string(),
                ];
                argv.extend(self.args(8000));
                argv
            }
            None => self
                .leader
                .iter()
                .map(|a| a.replace("{port}", "8000"))
                .collect(),
        }
    }
}
