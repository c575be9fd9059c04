//! The vLLM [`Executor`]: a patch to vLLM's Python is installed the documented way
//! ([`VllmPythonOnly`]: an editable reinstall against the precompiled kernels), and the
//! patched server runs from the checkout itself. The base stays runnable beside it: each
//! base build snapshots the package (`vllm/`, Python copied, large compiled libraries hard
//! linked — a patch never touches them: binary diffs are refused) into `builds/base/`, and
//! the base server runs with that snapshot first on `PYTHONPATH`. Both are served as
//! `python -m vllm.entrypoints.openai.api_server` on 127.0.0.1 under the campaign's served
//! name; the competitor (the best rival's launch command, `{port}` filled in) is measured
//! the same way ([`super::serve`]). Each round profiles the base and, when its framework is
//! known, the competitor with their torch profilers on (`forge profile`'s capture:
//! prefill and decode), filed under `profiles/rN/F/` for the round's analysis.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::analysis::Side;
use super::attempt::{Build, BuildFailed, Executor, Profiles, rebuild};
use super::gate::GateRef;
use super::serve::{Asker, Load, SERVED, Server};
use crate::build::VllmPythonOnly;
use crate::engine::adapter::ProfilerSetup;
use crate::engine::health::engine_port;
use crate::engine::process::LaunchSpec;
use crate::trace::{Framework, framework_id};

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
    /// The competitor's framework, when known (to profile it).
    leader_framework: Option<Framework>,
    /// What the fair gate fixed, when the campaign started from one: the target's winning
    /// flags and their environment, the leader's environment and files.
    gate: GateSides,
    /// The model name the leader serves (a trtllm-serve serves its model's own name).
    leader_served: String,
}

/// The gate's additions to each side's launch.
#[derive(Debug, Clone, Default)]
struct GateSides {
    target_args: Vec<String>,
    target_env: Vec<(String, String)>,
    leader_env: Vec<(String, String)>,
    leader_files: Vec<(PathBuf, String)>,
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
            leader_framework: None,
            gate: GateSides::default(),
            leader_served: SERVED.to_string(),
        }
    }

    /// Serve both sides as the fair gate `g` fixed them: the target with its winning flags,
    /// the leader with its environment and files.
    pub fn with_gate(mut self, g: &GateRef) -> VllmExecutor {
        self.gate = GateSides {
            target_args: g.target_args.clone(),
            target_env: g.target_env.clone(),
            leader_env: g.leader_env.clone(),
            leader_files: g.leader_files.clone(),
        };
        self.leader_served = g.leader_served.clone();
        self
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

    async fn serve(&mut self, which: Option<Build>) -> anyhow::Result<Server> {
        self.serve_with(which, &ProfilerSetup::default()).await
    }

    /// Boot `which` (`None`: the leader) with `extra` arguments and environment.
    async fn serve_with(
        &mut self,
        which: Option<Build>,
        extra: &ProfilerSetup,
    ) -> anyhow::Result<Server> {
        let port = engine_port()?;
        let log = self.asker.next_log()?;
        let spec = match which {
            Some(b) => {
                let python = self.builder.python.display().to_string();
                let mut spec = LaunchSpec::from_launcher(&[python], self.args(port), &log)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let path = self.pythonpath(b).display().to_string();
                spec.env.push(("PYTHONPATH".into(), path));
                spec.args.extend(self.gate.target_args.iter().cloned());
                spec.env.extend(self.gate.target_env.iter().cloned());
                spec
            }
            None => {
                let argv: Vec<String> = self
                    .leader
                    .iter()
                    .map(|a| a.replace("{port}", &port.to_string()))
                    .collect();
                let mut spec = LaunchSpec::from_launcher(&argv, Vec::new(), &log)
                    .map_err(|e| anyhow::anyhow!("the competitor's command: {e}"))?;
                spec.env.extend(self.gate.leader_env.iter().cloned());
                spec.files.extend(self.gate.leader_files.iter().cloned());
                spec
            }
        };
        let mut spec = spec;
        spec.args.extend(extra.args.iter().cloned());
        spec.env.extend(extra.env.iter().cloned());
        let name = if which.is_some() {
            SERVED
        } else {
            &self.leader_served
        };
        self.asker.boot(&spec, port, name, self.boot_timeout).await
    }
}

impl VllmExecutor {
    /// The competitor's framework (its profiler is switched on the way that framework's is).
    pub fn with_leader_framework(mut self, f: Option<Framework>) -> VllmExecutor {
        self.leader_framework = f;
        self
    }

    /// The installed vLLM's (major, minor), from the environment's package metadata.
    fn version(&self) -> Option<(u64, u64)> {
        let out = std::process::Command::new(&self.builder.python)
            .args([
                "-c",
                "import importlib.metadata as m; print(m.version('vllm'))",
            ])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text.trim().split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some((major, minor))
    }

    /// Boot `which` (`None`: the leader) with its profiler writing under `side`'s `raw/`,
    /// capture prefill and decode ([`crate::profile::run`]), stop it.
    async fn profile_side(&mut self, which: Option<Build>, side: &Side) -> anyhow::Result<()> {
        let raw = std::path::absolute(side.profiles.join("raw"))?;
        std::fs::create_dir_all(&raw)?;
        let setup = match side.framework {
            Framework::Sglang => crate::engine::sglang::torch_profiler(&raw),
            _ => {
                let old = self.version().is_none_or(|v| v < (0, 13));
                crate::engine::vllm::adapter::torch_profiler(old, &raw)
            }
        };
        let load = self.asker.load().clone();
        let plan = crate::profile::Plan {
            framework: side.framework,
            input_len: PROFILE_INPUT_LEN,
            output_len: load.output_tokens,
            batch: load.concurrent,
            wait: Duration::from_secs(120),
            layers: None,
            source: format!("forge campaign: {}", framework_id(side.framework)),
        };
        let server = self.serve_with(which, &setup).await?;
        let target = crate::profile::capture::Target {
            base_url: server.url.clone(),
            model: server.name.clone(),
            start_body: setup.start_body.clone(),
            trace_dir: raw,
        };
        let result = crate::profile::run(&target, &side.profiles, &plan).await;
        server.proc.stop(Duration::from_secs(10)).await;
        let manifest = result?;
        anyhow::ensure!(
            manifest.stages.iter().any(|s| !s.traces.is_empty()),
            "no trace: {}",
            manifest
                .stages
                .iter()
                .filter_map(|s| s.error.clone())
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok(())
    }
}

/// Prompt tokens of the prefill capture.
const PROFILE_INPUT_LEN: u32 = 512;

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
        let s = self.serve(Some(which)).await?;
        Ok(self.asker.answers(s).await)
    }

    async fn measure(&mut self, which: Build) -> anyhow::Result<f64> {
        let s = self.serve(Some(which)).await?;
        self.asker.measure(s).await
    }

    async fn measure_leader(&mut self) -> anyhow::Result<f64> {
        let s = self.serve(None).await?;
        self.asker.measure(s).await
    }

    async fn profile(&mut self, dir: &Path, round: u32) -> anyhow::Result<Profiles> {
        let Some(leader) = self.leader_framework else {
            return Ok(Profiles::Unavailable(
                "the competitor's framework is not known (--leader-framework), so it cannot be \
                 profiled beside the target"
                    .into(),
            ));
        };
        let root = dir.join("profiles").join(format!("r{round}"));
        let target = Side {
            framework: Framework::Vllm,
            profiles: root.join("vllm"),
        };
        let leader = Side {
            framework: leader,
            profiles: root.join(framework_id(leader)),
        };
        for (which, side) in [(Some(Build::Base), &target), (None, &leader)] {
            if let Err(e) = self.profile_side(which, side).await {
                return Ok(Profiles::Unavailable(format!(
                    "profiling {} failed: {e:#}",
                    framework_id(side.framework)
                )));
            }
        }
        Ok(Profiles::Captured { target, leader })
    }

    fn command(&self, which: Option<Build>) -> Vec<String> {
        match which {
            Some(b) => {
                let mut argv = vec![
                    "env".to_string(),
                    format!("PYTHONPATH={}", self.pythonpath(b).display()),
                ];
                argv.extend(self.gate.target_env.iter().map(|(k, v)| format!("{k}={v}")));
                argv.push(self.builder.python.display().to_string());
                argv.extend(self.args(8000));
                argv.extend(self.gate.target_args.iter().cloned());
                argv
            }
            None => {
                let env = &self.gate.leader_env;
                let prefix = (!env.is_empty()).then(|| "env".to_string());
                prefix
                    .into_iter()
                    .chain(env.iter().map(|(k, v)| format!("{k}={v}")))
                    .chain(self.leader.iter().map(|a| a.replace("{port}", "8000")))
                    .collect()
            }
        }
    }
}
