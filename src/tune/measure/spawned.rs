//! The [`Measure`] that boots the real thing: make sure a server for the recipe is running
//! (reusing the current one only when its argv and environment are identical), reset its
//! prefix cache, replay the workload with `forge bench`'s own runner while watching
//! `/metrics`, and classify what went wrong when something did. One engine log per boot
//! under the run's `logs/`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::{Measure, Prepare, SampleOutput};
use crate::bench::LoadSpec;
use crate::bench::settings::Settings as BenchSettings;
use crate::engine::adapter::Engine;
use crate::engine::failure::{Failure, FailureClass};
use crate::engine::health::{Readiness, engine_port, wait_ready};
use crate::engine::metrics::watch_run;
use crate::engine::process::{self, LaunchSpec, ServerProcess};
use crate::hardware::memory::{MemoryProbe, wait_for_idle_memory};
use crate::recipe::{Illegal, Recipe};
use crate::store::{LOGS_DIR, PIDS_FILE};
use crate::workload::Workload;

/// Per-request deadline, server seconds.
const REQUEST_TIMEOUT_S: f64 = 600.0;

struct Running {
    recipe_id: String,
    spec: LaunchSpec,
    proc: ServerProcess,
    base_url: String,
    served: String,
    log_rel: String,
    seq: u64,
    port: u16,
}

/// Process groups of live engines, for teardown from a signal handler.
pub type LiveGroups = Arc<Mutex<Vec<i32>>>;

/// Boots, reuses and measures servers for one run.
pub struct Spawned {
    engine: Arc<dyn Engine>,
    client: reqwest::Client,
    run_dir: PathBuf,
    workload: Workload,
    load: LoadSpec,
    boot_timeout: Duration,
    current: Option<Running>,
    boot_seq: u64,
    live: LiveGroups,
    memory: Option<(MemoryProbe, Vec<u64>)>,
    notes: Vec<String>,
    /// The client's token timing was reported unreliable on stderr (once a run).
    warned_timing: bool,
    /// What makes a recipe's files before it boots (its patched build, its requantized
    /// model).
    preparers: Vec<Arc<dyn Prepare>>,
    /// How often a long measured run says how far it is.
    heartbeat: Option<Duration>,
}

/// How far above its idle reading GPU memory may be before a boot, MiB.
const IDLE_TOLERANCE_MIB: u64 = 1024;
/// How long to wait for GPU memory to return to idle before booting anyway.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl Spawned {
    /// A measurer for a run directory. `boot_seq` continues from the journal on resume so
    /// log names and simulator seeds never repeat.
    pub fn new(
        engine: Arc<dyn Engine>,
        run_dir: &Path,
        workload: Workload,
        mut load: LoadSpec,
        boot_timeout: Duration,
        boot_seq: u64,
    ) -> Spawned {
        load.time_scale = engine.time_scale();
        Spawned {
            engine,
            client: reqwest::Client::new(),
            run_dir: run_dir.to_path_buf(),
            workload,
            load,
            boot_timeout,
            current: None,
            boot_seq,
            live: Arc::new(Mutex::new(Vec::new())),
            memory: None,
            notes: Vec::new(),
            warned_timing: false,
            preparers: Vec::new(),
            heartbeat: None,
        }
    }

    /// Say every `every` seconds of a measured run how far it is (0: never).
    pub fn set_heartbeat(&mut self, every_s: f64) {
        self.heartbeat = (every_s > 0.0).then(|| Duration::from_secs_f64(every_s));
    }

    /// Have `p` make each recipe's files before it boots.
    pub fn add_preparer(&mut self, p: Arc<dyn Prepare>) {
        self.preparers.push(p);
    }

    /// Make what `recipe` runs, off the async threads.
    async fn prepare(&self, recipe: &Recipe) -> Result<(), Failure> {
        for p in &self.preparers {
            let (p, r) = (p.clone(), recipe.clone());
            tokio::task::spawn_blocking(move || p.prepare(&r))
                .await
                .map_err(|e| infra(&format!("the build task failed: {e}")))??;
        }
        Ok(())
    }

    /// Before each boot, wait until GPU memory is back near `baseline` (the idle reading
    /// taken before the run's first boot).
    pub fn set_memory_probe(&mut self, probe: MemoryProbe, baseline: Vec<u64>) {
        self.memory = Some((probe, baseline));
    }

    async fn wait_gpu_idle(&mut self) {
        let Some((probe, baseline)) = &self.memory else {
            return;
        };
        match wait_for_idle_memory(probe, baseline, IDLE_TOLERANCE_MIB, IDLE_TIMEOUT).await {
            Ok(w) if w.waited > Duration::from_secs(2) => {
                self.notes.push(format!(
                    "waited {:.0} s for GPU memory to return to idle",
                    w.waited.as_secs_f64()
                ));
            }
            Ok(_) => {}
            Err(e) => {
                let note = format!("GPU memory not back to idle before boot: {e}");
                eprintln!("forge: warning: {note}");
                self.notes.push(note);
            }
        }
    }

    /// Replay `workload` under `load` from the next run on (the gate's rate search offers
    /// each scenario at several rates to one server); the engine's clock still sets the
    /// replay's time scale.
    pub fn set_replay(&mut self, workload: Workload, mut load: LoadSpec) {
        load.time_scale = self.engine.time_scale();
        self.workload = workload;
        self.load = load;
    }

    /// Groups to kill if the process is interrupted.
    pub fn live_groups(&self) -> LiveGroups {
        self.live.clone()
    }

    /// Measure `recipe` once. `tag` names the log (`e0003-c1`).
    async fn measure(&mut self, recipe: &Recipe, tag: &str) -> Result<SampleOutput, Failure> {
        self.ensure_server(recipe, tag).await?;
        let Some(run) = self.current.as_mut() else {
            return Err(infra("no server after boot"));
        };
        if let Some(path) = self.engine.reset_path() {
            let _ = self
                .client
                .post(format!("{}{path}", run.base_url))
                .timeout(Duration::from_secs(10))
                .send()
                .await;
        }
        let (stop_tx, stop_rx) = watch::channel(false);
        let period = Duration::from_secs_f64((0.5 * self.load.time_scale).clamp(0.02, 0.5));
        let watcher = tokio::spawn(watch_run(
            self.client.clone(),
            format!("{}{}", run.base_url, self.engine.metrics_path()),
            period,
            stop_rx,
        ));
        let settings = BenchSettings {
            base_url: run.base_url.clone(),
            model: Some(run.served.clone()),
            workload: self.workload.clone(),
            load: self.load.clone(),
            request_timeout: Duration::from_secs_f64(REQUEST_TIMEOUT_S),
            output: None,
            save_detailed: true,
            progress: false,
            fresh_connections: self.engine.bench_quirks().closes_connections,
            heartbeat: self.heartbeat,
        };
        let bench = crate::bench::runner::run(&settings).await;
        let _ = stop_tx.send(true);
        let facts = watcher.await.unwrap_or_default();
        let log = run.log_rel.clone();
        if let Some(status) = run.proc.try_exit() {
            let f = self.died_during_bench(status.code(), &log);
            self.forget_current();
            return Err(f);
        }
        // A server that completed nothing is not reused: the retry boots a fresh one.
        if !matches!(&bench, Ok(r) if r.completed > 0) {
            self.stop().await;
        }
        let result = bench
            .map_err(|e| crashed(format!("benchmark failed: {}", crate::term::error_text(&e))))?;
        if result.completed == 0 {
            let why = result
                .failure_examples
                .first()
                .cloned()
                .unwrap_or_else(|| "no request completed".into());
            return Err(crashed(format!("no request completed ({why})")));
        }
        if !result.schedule.token_timing_ok() {
            let note = crate::bench::output::token_timing_warning(&result.schedule);
            if !std::mem::replace(&mut self.warned_timing, true) {
                eprintln!("forge: warning: {note} (said once; each row affected notes it)");
            }
            self.notes.push(note);
        }
        let answers = result
            .detailed
            .as_ref()
            .map(|d| d.generated_texts.clone())
            .unwrap_or_default();
        Ok(SampleOutput {
            result,
            facts,
            answers,
            log,
        })
    }

    /// Stop the current server, if any.
    pub async fn stop(&mut self) {
        if let Some(run) = self.current.take() {
            // Leave `live` only once stopped: a signal during the grace period must still
            // find the group.
            let pgid = run.proc.pgid;
            run.proc.stop(self.engine.grace()).await;
            self.live.lock().map(|mut v| v.retain(|g| *g != pgid)).ok();
        }
    }

    /// Boots so far (for resume).
    pub fn boot_seq(&self) -> u64 {
        self.boot_seq
    }

    fn forget_current(&mut self) {
        if let Some(run) = self.current.take() {
            process::kill_group(run.proc.pgid);
            self.live
                .lock()
                .map(|mut v| v.retain(|g| *g != run.proc.pgid))
                .ok();
        }
    }

    fn died_during_bench(&self, code: Option<i32>, log_rel: &str) -> Failure {
        let log = read_log(&self.run_dir.join(log_rel));
        let hints = self.engine.log_hints(&log);
        Failure {
            class: FailureClass::CrashedDuringBench,
            exit_code: code,
            signal: None,
            summary: format!(
                "engine exited during the benchmark ({})",
                crate::engine::failure::describe_exit(code, None)
            ),
            hints,
        }
    }

    async fn ensure_server(&mut self, recipe: &Recipe, tag: &str) -> Result<(), Failure> {
        if let Some(run) = &self.current {
            let again = self
                .engine
                .launch_spec(recipe, run.port, &run.served, &run.spec.log_path, run.seq)
                .map_err(|e| reject(&e))?;
            if run.recipe_id == recipe.id
                && again.args == run.spec.args
                && again.env == run.spec.env
            {
                return Ok(());
            }
        }
        self.stop().await;
        self.boot(recipe, tag).await
    }

    async fn boot(&mut self, recipe: &Recipe, tag: &str) -> Result<(), Failure> {
        self.prepare(recipe).await?;
        self.wait_gpu_idle().await;
        self.boot_seq += 1;
        let seq = self.boot_seq;
        let port = engine_port().map_err(|e| infra(&format!("no free port: {e}")))?;
        // Unguessable: a server squatting on the port cannot answer with it by chance.
        let chosen = format!("forge-{tag}-{:016x}", rand::random::<u64>());
        let served = self.engine.served_name(recipe, &chosen);
        let log_rel = format!("{LOGS_DIR}/{tag}.log");
        let log_path = self.run_dir.join(&log_rel);
        let spec = self
            .engine
            .launch_spec(recipe, port, &served, &log_path, seq)
            .map_err(|e| reject(&e))?;
        let mut proc = process::spawn(&spec).map_err(|e| spawn_failure(&spec, &e))?;
        let _ = process::record_launch(
            &self.run_dir.join(PIDS_FILE),
            &proc.record(&spec.program.display().to_string()),
        );
        self.live.lock().map(|mut v| v.push(proc.pgid)).ok();
        let base_url = format!("http://127.0.0.1:{port}");
        let waiting = format!(
            "waiting for the engine to be ready (timeout {:.0} s; its log: {})",
            self.boot_timeout.as_secs_f64(),
            log_path.display()
        );
        let ready = wait_ready(
            &mut proc,
            &self.client,
            &base_url,
            &served,
            self.boot_timeout,
        );
        let ready = with_heartbeat(self.heartbeat, ready, |secs| {
            eprintln!("forge: {waiting}: {secs:.0} s so far");
        });
        match ready.await {
            Readiness::Ready { .. } if squatted(&proc, port) => {
                let models = vec![format!(
                    "{served} (answered by a process that held the port before the engine started)"
                )];
                Err(self
                    .boot_failed(proc, Readiness::Foreign { models }, &log_path)
                    .await)
            }
            Readiness::Ready { .. } => {
                self.current = Some(Running {
                    recipe_id: recipe.id.clone(),
                    spec,
                    proc,
                    base_url,
                    served,
                    log_rel,
                    seq,
                    port,
                });
                Ok(())
            }
            other => Err(self.boot_failed(proc, other, &log_path).await),
        }
    }

    async fn boot_failed(&mut self, proc: ServerProcess, r: Readiness, log_path: &Path) -> Failure {
        let pgid = proc.pgid;
        proc.stop(self.engine.grace()).await;
        self.live.lock().map(|mut v| v.retain(|g| *g != pgid)).ok();
        let log = read_log(log_path);
        match r {
            Readiness::Exited { code, signal } => {
                self.engine.classify_boot_failure(code, signal, &log)
            }
            Readiness::Timeout => Failure {
                class: FailureClass::BootTimeout,
                exit_code: None,
                signal: None,
                summary: format!("not ready after {:.0} s", self.boot_timeout.as_secs_f64()),
                hints: crate::engine::failure::tail(&log, 3),
            },
            Readiness::Foreign { models } => Failure {
                class: FailureClass::ForeignServer,
                exit_code: None,
                signal: None,
                summary: format!(
                    "another server answered on the port (models: {}); it was not measured",
                    models.join(", ")
                ),
                hints: vec![],
            },
            Readiness::Ready { .. } => infra("ready"),
        }
    }
}

/// Whether a process older than the engine holds the port the engine was to listen on
/// (what answered was not the engine, whatever name it listed).
fn squatted(proc: &ServerProcess, port: u16) -> bool {
    match crate::engine::port_owner::squatter(proc.pgid, port) {
        Some(pid) => {
            tracing::warn!("port {port} is held by pid {pid}, which predates the engine");
            true
        }
        None => false,
    }
}

fn infra(why: &str) -> Failure {
    Failure {
        class: FailureClass::CrashedDuringBench,
        exit_code: None,
        signal: None,
        summary: why.to_string(),
        hints: vec![],
    }
}

fn crashed(why: String) -> Failure {
    Failure {
        class: FailureClass::CrashedDuringBench,
        exit_code: None,
        signal: None,
        summary: why,
        hints: vec![],
    }
}

fn reject(why: &Illegal) -> Failure {
    Failure {
        class: FailureClass::InfeasibleConfig,
        exit_code: None,
        signal: None,
        summary: format!("cannot render for this engine version: {why}"),
        hints: vec![],
    }
}

/// An engine log as text, whatever bytes the engine wrote (one invalid byte must not empty
/// the log an OOM is diagnosed from).
fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

impl Measure for Spawned {
    fn sample(
        &mut self,
        recipe: &Recipe,
        tag: &str,
    ) -> impl std::future::Future<Output = Result<SampleOutput, Failure>> + Send {
        self.measure(recipe, tag)
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = ()> + Send {
        self.stop()
    }
}

fn spawn_failure(spec: &LaunchSpec, e: &std::io::Error) -> Failure {
    let class = if e.kind() == std::io::ErrorKind::NotFound {
        FailureClass::EngineMissing
    } else {
        FailureClass::CrashedDuringBench
    };
    Failure {
        class,
        exit_code: None,
        signal: None,
        summary: format!("cannot start `{}`: {e}", spec.program.display()),
        hints: vec![
            "hint: install the engine or point --engine-cmd at it; `forge doctor` checks".into(),
        ],
    }
}

/// Await `f`, calling `say` with the seconds waited at every `every` until it is done (a
/// model that takes ten minutes to load is not ten minutes of silence).
pub async fn with_heartbeat<T>(
    every: Option<Duration>,
    f: impl std::future::Future<Output = T>,
    mut say: impl FnMut(f64),
) -> T {
    let Some(every) = every else {
        return f.await;
    };
    tokio::pin!(f);
    let start = tokio::time::Instant::now();
    let mut beat = tokio::time::interval_at(start + every, every);
    loop {
        tokio::select! {
            r = &mut f => return r,
            _ = beat.tick() => say(start.elapsed().as_secs_f64()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_invalid_byte_does_not_empty_the_log_an_oom_is_read_from() {
        // Regression: `read_to_string().unwrap_or_default()` returned "" for this log, and
        // the OOM was recorded as crashed_during_bench with no hints.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.log");
        let mut bytes = b"INFO loading \xff\xfe weights\n".to_vec();
        bytes.extend_from_slice(
            b"torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n",
        );
        std::fs::write(&p, bytes).unwrap();
        let log = super::read_log(&p);
        assert!(log.contains("CUDA out of memory"), "{log}");
        let f = crate::engine::vllm::logs::classify_exit(Some(1), None, &log);
        assert_eq!(
            f.class,
            crate::engine::failure::FailureClass::InfeasibleOom,
            "{f:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_says_how_long_it_has_waited_at_every_beat() {
        let mut said = Vec::new();
        let every = Some(std::time::Duration::from_secs(60));
        let slow = tokio::time::sleep(std::time::Duration::from_secs(150));
        super::with_heartbeat(every, slow, |s| said.push(s.round())).await;
        assert_eq!(said, [60.0, 120.0]);
        // A short wait says nothing; no heartbeat asked, nothing said.
        let mut said = Vec::new();
        let quick = tokio::time::sleep(std::time::Duration::from_secs(5));
        super::with_heartbeat(every, quick, |s| said.push(s)).await;
        let never = tokio::time::sleep(std::time::Duration::from_secs(500));
        super::with_heartbeat(None, never, |s| said.push(s)).await;
        assert!(said.is_empty(), "{said:?}");
    }
}
