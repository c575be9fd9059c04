//! The llama.cpp [`Executor`]: the checkout rebuilt incrementally ([`LlamaCpp`], build
//! directory outside the checkout), each build's `bin/` (the server and its shared
//! libraries) kept as `builds/base/` or `builds/patched/` so both stay runnable, and each
//! question answered by booting that `llama-server` on 127.0.0.1 with the model, on every
//! core but one ([`super::serve`] asks and measures). The competitor (a stock
//! `llama-server`) is served with the same flags and measured the same way. Build steps
//! are recorded in the campaign's `engines.pids` like the servers. llama.cpp has no torch
//! profiler: a round's evidence is the measured gap, and the reports say so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use super::attempt::{Build, BuildFailed, Executor, Profiles, rebuild};
use super::serve::{Asker, Load, SERVED, Server};
use crate::build::{LlamaCpp, keep_server};
use crate::engine::health::engine_port;
use crate::engine::process::LaunchSpec;

/// llama.cpp behind the [`Executor`] seam.
pub struct LlamaCppExecutor {
    builder: LlamaCpp,
    /// `builds/` (holding `base/` and `patched/`).
    builds: PathBuf,
    model: PathBuf,
    asker: Asker,
    timeout: Duration,
    /// The competitor's `llama-server` (its shared libraries beside it), if any.
    leader: Option<PathBuf>,
}

impl LlamaCppExecutor {
    /// Build in `build_dir`, keep builds and logs under `dir`, serve `model`.
    pub fn new(build_dir: &Path, dir: &Path, model: &Path, load: Load) -> LlamaCppExecutor {
        let asker = Asker::new(dir, load, json!({"seed": 1, "cache_prompt": false}));
        let mut builder = LlamaCpp::new(build_dir);
        builder.cmake.pids = Some(asker.pids().to_path_buf());
        LlamaCppExecutor {
            builder,
            builds: dir.join("builds"),
            model: model.to_path_buf(),
            asker,
            timeout: Duration::from_secs(3600),
            leader: None,
        }
    }

    /// Measure `server` (a stock `llama-server`) as the competitor.
    pub fn with_leader(mut self, server: &Path) -> LlamaCppExecutor {
        self.leader = Some(server.to_path_buf());
        self
    }

    fn bin(&self, which: Build) -> PathBuf {
        self.builds.join(match which {
            Build::Base => "base",
            Build::Patched => "patched",
        })
    }

    /// The server program of `which` (`None`: the leader).
    fn program(&self, which: Option<Build>) -> anyhow::Result<PathBuf> {
        match which {
            Some(b) => Ok(self.bin(b).join("llama-server")),
            None => self
                .leader
                .clone()
                .ok_or_else(|| anyhow::anyhow!("no competitor llama-server was given")),
        }
    }

    /// The server's arguments (the same for every side).
    fn args(&self, port: u16) -> Vec<String> {
        let np = self.asker.load().concurrent.max(1).to_string();
        let threads = threads().to_string();
        let model = self.model.display().to_string();
        let port = port.to_string();
        [
            "-m",
            &model,
            "-a",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            &port,
            "-t",
            &threads,
            "-c",
            "4096",
            "-np",
            &np,
            "--cache-ram",
            "0",
            "--no-cache-prompt",
            "--no-webui",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Boot `which`'s server (`None`: the leader); its process and base URL.
    async fn serve(&mut self, which: Option<Build>) -> anyhow::Result<Server> {
        let program = self.program(which)?;
        let libs = program.parent().map(Path::to_path_buf).unwrap_or_default();
        let port = engine_port()?;
        let log = self.asker.next_log()?;
        let mut spec =
            LaunchSpec::from_launcher(&[program.display().to_string()], self.args(port), &log)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        spec.env
            .push(("LD_LIBRARY_PATH".into(), libs.display().to_string()));
        self.asker
            .boot(&spec, port, SERVED, Duration::from_secs(120))
            .await
    }
}

/// Server threads: every core but one, which the load generator and the OS keep.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
}

impl Executor for LlamaCppExecutor {
    async fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> anyhow::Result<Result<(), BuildFailed>> {
        let b = match rebuild(&self.builder, checkout, log, self.timeout)? {
            Ok(b) => b,
            Err(failed) => return Ok(Err(failed)),
        };
        let bin = b
            .program
            .parent()
            .ok_or_else(|| anyhow::anyhow!("{}: no directory", b.program.display()))?;
        keep_server(bin, &self.bin(which))?;
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

    async fn profile(&mut self, _dir: &Path, _round: u32) -> anyhow::Result<Profiles> {
        Ok(Profiles::Unavailable(
            "llama.cpp has no torch profiler: the round's evidence is the measured gap".into(),
        ))
    }

    fn command(&self, which: Option<Build>) -> Vec<String> {
        let program = self
            .program(which)
            .unwrap_or_else(|_| PathBuf::from("llama-server"));
        let libs = program.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut argv = vec![
            "env".to_string(),
            format!("LD_LIBRARY_PATH={}", libs.display()),
            program.display().to_string(),
        ];
        argv.extend(self.args(8080));
        argv
    }
}
