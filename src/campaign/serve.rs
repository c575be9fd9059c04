//! How a campaign boots an engine's OpenAI-compatible server and asks it — the same for
//! every engine and for the competitor: the server spawned in its own process group on
//! 127.0.0.1 and recorded in the campaign's `engines.pids` (a resumed campaign reaps what a
//! `kill -9` left), ready when it lists the served name; answers at temperature 0 to the
//! reference prompts one by one; a measurement as the best output tokens per second of
//! three batches of concurrent requests with pinned lengths (end of sequence ignored),
//! after one warm-up request.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::engine::health::{Readiness, wait_ready};
use crate::engine::process::{self, LaunchSpec, ServerProcess};

/// The name every campaign server answers under.
pub const SERVED: &str = "forge-campaign";

/// Batches per measurement: one server boot, the best of three batches. Interference
/// (a neighbour's burst, the client's own threads) only ever slows a batch, so the best
/// batch of a boot is the engine's speed in that boot — `timeit`'s rule. Measured on two
/// shared cores (SmolLM2-135M on llama.cpp, 8 boot pairs of two identical builds): σ of a
/// pair's log ratio 1.0 % with the best of three batches and one server thread, against
/// 2.4 % with their median and 3.6 % with one batch and two server threads.
const BATCHES: usize = 3;

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

/// Boots servers for one campaign and asks them.
#[derive(Debug, Clone)]
pub struct Asker {
    client: reqwest::Client,
    load: Load,
    /// Fields every request carries besides the standard ones (an engine's own).
    extra: Value,
    /// `engines.pids`.
    pids: PathBuf,
    /// Server logs.
    logs: PathBuf,
    boots: u64,
}

/// A server that answers: its process, base URL and the model name it serves.
pub struct Server {
    /// The process (stopped when a measurement or the answers are done).
    pub proc: ServerProcess,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The name requests ask for.
    pub name: String,
}

impl Asker {
    /// Ask with `load`, adding `extra` to every request; servers logged under `dir/logs`
    /// and recorded in `dir/engines.pids`.
    pub fn new(dir: &Path, load: Load, extra: Value) -> Asker {
        let pids = dir.join(crate::store::PIDS_FILE);
        Asker {
            client: reqwest::Client::new(),
            load,
            extra,
            boots: process::launches_recorded(&pids),
            pids,
            logs: dir.join("logs"),
        }
    }

    /// `engines.pids`, where build steps are recorded too.
    pub fn pids(&self) -> &Path {
        &self.pids
    }

    /// The load.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// The next server log's path.
    pub fn next_log(&mut self) -> anyhow::Result<PathBuf> {
        self.boots += 1;
        std::fs::create_dir_all(&self.logs)?;
        Ok(self.logs.join(format!("server-{:03}.log", self.boots)))
    }

    /// Spawn `spec` and wait until it serves `name` on `port`.
    pub async fn boot(
        &self,
        spec: &LaunchSpec,
        port: u16,
        name: &str,
        timeout: Duration,
    ) -> anyhow::Result<Server> {
        let mut proc = process::spawn(spec)?;
        if let Err(e) = process::record_launch(
            &self.pids,
            &proc.record(&spec.program.display().to_string()),
        ) {
            proc.stop(Duration::from_secs(5)).await;
            return Err(e.into());
        }
        let url = format!("http://127.0.0.1:{port}");
        match wait_ready(&mut proc, &self.client, &url, name, timeout).await {
            Readiness::Ready { .. } => Ok(Server {
                proc,
                url,
                name: name.to_string(),
            }),
            other => {
                proc.stop(Duration::from_secs(5)).await;
                anyhow::bail!(
                    "{} did not become ready: {other:?}; see {}",
                    spec.program.display(),
                    spec.log_path.display()
                )
            }
        }
    }

    /// The answers at temperature 0 to the reference prompts, in order (an empty string
    /// for a request that failed); the server is stopped after.
    pub async fn answers(&self, s: Server) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.load.prompts {
            let text = self.complete(&s, p, self.load.answer_tokens).await;
            out.push(text.map(|(t, _)| t).unwrap_or_default());
        }
        s.proc.stop(Duration::from_secs(5)).await;
        out
    }

    /// One measurement (the best of three batches); the server is stopped after.
    pub async fn measure(&self, s: Server) -> anyhow::Result<f64> {
        let first = self.load.prompts.first().cloned().unwrap_or_default();
        let result = async {
            self.complete(&s, &first, 8).await?;
            let mut best = 0.0_f64;
            for _ in 0..BATCHES {
                best = best.max(self.batch(&s).await?);
            }
            Ok(best)
        }
        .await;
        s.proc.stop(Duration::from_secs(5)).await;
        result
    }

    /// Output tokens per second of one batch of concurrent requests.
    async fn batch(&self, s: &Server) -> anyhow::Result<f64> {
        let start = Instant::now();
        let calls = (0..self.load.concurrent).map(|i| {
            let p = &self.load.prompts[i % self.load.prompts.len().max(1)];
            self.complete(s, p, self.load.output_tokens)
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

    /// One completion: its text and output tokens.
    async fn complete(
        &self,
        s: &Server,
        prompt: &str,
        max_tokens: u32,
    ) -> anyhow::Result<(String, u64)> {
        let mut body = json!({
            "model": s.name,
            "prompt": prompt,
            "max_tokens": max_tokens,
            "temperature": 0,
            "ignore_eos": true,
        });
        if let (Some(b), Some(extra)) = (body.as_object_mut(), self.extra.as_object()) {
            b.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let v: Value = self
            .client
            .post(format!("{}/v1/completions", s.url))
            .json(&body)
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
