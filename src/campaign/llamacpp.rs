//! The llama.cpp [`Executor`]: the checkout rebuilt incrementally ([`LlamaCpp`], build
//! directory outside the checkout), each build's `bin/` (the server and its shared
//! libraries) kept as `builds/base/` or `builds/patched/` so both stay runnable, and each
//! question answered by booting that `llama-server` on 127.0.0.1 with the model:
//! answers at temperature 0 to the reference prompts one by one, and a measurement as the
//! output tokens per second of a batch of concurrent requests with pinned lengths (end of
//! sequence ignored), after one warm-up request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::attempt::{Build, BuildFailed, Executor};
use crate::build::{Builder, LlamaCpp};
use crate::engine::health::{Readiness, engine_port, wait_ready};
use crate::engine::process::{self, LaunchSpec, ServerProcess};

/// The name the server answers under.
const SERVED: &str = "forge-campaign";

/// How the engine is asked and measured.
#[derive(Debug, Clone)]
pub struct Load {
    /// The reference prompts.
    pub prompts: Vec<String>,
    /// Tokens per reference answer.
    pub answer_tokens: u32,
    /// Concurrent requests per measurement.
    pub concurrent: usize,
    /// Output tokens per measured request.
    pub output_tokens: u32,
}

/// llama.cpp behind the [`Executor`] seam.
pub struct LlamaCppExecutor {
    builder: LlamaCpp,
    /// `builds/` (holding `base/` and `patched/`).
    builds: PathBuf,
    /// Server logs.
    logs: PathBuf,
    model: PathBuf,
    load: Load,
    timeout: Duration,
    client: reqwest::Client,
    boots: u64,
}

impl LlamaCppExecutor {
    /// Build in `build_dir`, keep builds and logs under `dir`, serve `model`.
    pub fn new(build_dir: &Path, dir: &Path, model: &Path, load: Load) -> LlamaCppExecutor {
        LlamaCppExecutor {
            builder: LlamaCpp::new(build_dir),
            builds: dir.join("builds"),
            logs: dir.join("logs"),
            model: model.to_path_buf(),
            load,
            timeout: Duration::from_secs(3600),
            client: reqwest::Client::new(),
            boots: 0,
        }
    }

    fn bin(&self, which: Build) -> PathBuf {
        self.builds.join(match which {
            Build::Base => "base",
            Build::Patched => "patched",
        })
    }

    /// Boot `which`'s server; its process and base URL.
    async fn serve(&mut self, which: Build) -> anyhow::Result<(ServerProcess, String)> {
        self.boots += 1;
        std::fs::create_dir_all(&self.logs)?;
        let bin = self.bin(which);
        let port = engine_port()?;
        let args: Vec<String> = [
            "-m",
            &self.model.display().to_string(),
            "-a",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "-t",
            "2",
            "-c",
            "4096",
            "-np",
            "4",
            "--cache-ram",
            "0",
            "--no-cache-prompt",
            "--no-webui",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log = self.logs.join(format!("server-{:03}.log", self.boots));
        let mut spec = LaunchSpec::from_launcher(
            &[bin.join("llama-server").display().to_string()],
            args,
            &log,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        spec.env
            .push(("LD_LIBRARY_PATH".into(), bin.display().to_string()));
        let mut proc = process::spawn(&spec)?;
        let url = format!("http://127.0.0.1:{port}");
        match wait_ready(
            &mut proc,
            &self.client,
            &url,
            SERVED,
            Duration::from_secs(120),
        )
        .await
        {
            Readiness::Ready { .. } => Ok((proc, url)),
            other => {
                proc.stop(Duration::from_secs(5)).await;
                anyhow::bail!(
                    "llama-server ({}) did not become ready: {other:?}; see {}",
                    bin.display(),
                    log.display()
                )
            }
        }
    }

    async fn complete(
        &self,
        url: &str,
        prompt: &str,
        max_tokens: u32,
    ) -> anyhow::Result<(String, u64)> {
        let v: serde_json::Value = self
            .client
            .post(format!("{url}/v1/completions"))
            .json(&json!({
                "model": SERVED,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "temperature": 0,
                "seed": 1,
                "ignore_eos": true,
                "cache_prompt": false,
            }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let text = v["choices"][0]["text"].as_str().unwrap_or("").to_string();
        let tokens = v["usage"]["completion_tokens"].as_u64().unwrap_or(0);
        Ok((text, tokens))
    }
}

/// Copy a build's `bin/` (server and shared libraries) to `to`, replacing what was there.
fn keep(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name == "llama-server" || name.contains(".so") {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

impl Executor for LlamaCppExecutor {
    async fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> anyhow::Result<Result<(), BuildFailed>> {
        if let Some(parent) = log.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let built = tokio::task::block_in_place(|| self.builder.build(checkout, log, self.timeout));
        match built {
            Ok(b) => {
                let bin = b
                    .program
                    .parent()
                    .ok_or_else(|| anyhow::anyhow!("{}: no directory", b.program.display()))?
                    .to_path_buf();
                keep(&bin, &self.bin(which))?;
                Ok(Ok(()))
            }
            Err(e) if e.is_patch_fault() => {
                let mut first_errors = e.first_errors().to_vec();
                if first_errors.is_empty() {
                    first_errors.push(e.to_string());
                }
                Ok(Err(BuildFailed { first_errors }))
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn answers(&mut self, which: Build) -> anyhow::Result<Vec<String>> {
        let (proc, url) = self.serve(which).await?;
        let mut out = Vec::new();
        for p in self.load.prompts.clone() {
            out.push(
                self.complete(&url, &p, self.load.answer_tokens)
                    .await
                    .map(|(t, _)| t)
                    .unwrap_or_default(),
            );
        }
        proc.stop(Duration::from_secs(5)).await;
        Ok(out)
    }

    async fn measure(&mut self, which: Build) -> anyhow::Result<f64> {
        let (proc, url) = self.serve(which).await?;
        let first = self.load.prompts.first().cloned().unwrap_or_default();
        let result = async {
            self.complete(&url, &first, 8).await?;
            let start = Instant::now();
            let calls = (0..self.load.concurrent).map(|i| {
                let p = &self.load.prompts[i % self.load.prompts.len().max(1)];
                self.complete(&url, p, self.load.output_tokens)
            });
            let done = futures::future::join_all(calls).await;
            let tokens: u64 = done
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .map(|r| r.1)
                .sum();
            anyhow::ensure!(tokens > 0, "no request of the measurement completed");
            Ok(tokens as f64 / start.elapsed().as_secs_f64())
        }
        .await;
        proc.stop(Duration::from_secs(5)).await;
        result
    }
}
