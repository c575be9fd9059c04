//! The engine thread: runs [`SimEngine`] in real time, scaled by `--sim-time-scale`.
//!
//! Requests arrive over a channel stamped with their wall arrival; their simulated arrival
//! is `(arrival − t0) / F`. When the engine is idle the thread blocks for the next command
//! (and simulated time jumps to the wall clock); otherwise it runs one step at `now`,
//! sleeps until the absolute wall deadline `t0 + (now + step) · F` (absolute, so no
//! drift; a plain sleep, so no spinning on a shared CI core), then hands each
//! [`TokenOutput`] to its request's channel. HTTP handlers turn those into SSE. A dropped
//! channel (client gone) aborts the request.
//!
//! The thread also keeps `/metrics` current (histograms in simulated seconds), prints
//! vLLM's periodic stats line, and plays `--sim-crash-after`: once N requests have started
//! streaming the engine dies the way vLLM's does (`EngineDeadError`), every live stream
//! gets the error, and the server is told to exit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc::UnboundedSender, oneshot};

use super::engine::SimEngine;
use super::interface::{FinishReason, SimRequest, StepResult, TokenOutput};
use super::profile::{Enabling, ProfileError, Recorder, StartRequest, StepRecord, Written};
use super::prom::{Finished, Metrics};
use super::vlog::{self, Level, Proc};

/// vLLM's `EngineDeadError` text.
pub const ENGINE_DEAD: &str =
    "EngineCore encountered an issue. See stack trace (above) for the root cause.";

/// What a request's handler hears from the engine thread.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The engine took the request.
    Accepted,
    /// The engine refused it (vLLM's 400 message).
    Rejected(String),
    /// New tokens.
    Tokens(TokenOutput),
    /// The engine died; the message is vLLM's.
    Died(String),
}

enum Cmd {
    Submit(Vec<SimRequest>, UnboundedSender<Event>, Instant),
    Abort(u64),
    ResetPrefixCache,
    StartProfile(
        Enabling,
        StartRequest,
        oneshot::Sender<Result<(), ProfileError>>,
    ),
    StopProfile(oneshot::Sender<Result<Option<Written>, ProfileError>>),
    Shutdown,
}

/// State shared with the HTTP side.
#[derive(Debug, Default)]
pub struct Shared {
    metrics: Mutex<Metrics>,
    dead: AtomicBool,
    /// Woken once when the engine dies.
    pub died: Notify,
}

impl Shared {
    /// The metrics (a poisoned lock still yields the data).
    pub fn metrics(&self) -> MutexGuard<'_, Metrics> {
        self.metrics.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True once the engine has died.
    pub fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }
}

/// How the engine thread runs.
#[derive(Debug, Clone, Copy)]
pub struct DriverConfig {
    /// Wall seconds per simulated second.
    pub time_scale: f64,
    /// `--sim-crash-after N`.
    pub crash_after: Option<u64>,
    /// Pid shown in engine-core log lines.
    pub engine_pid: u32,
    /// Print vLLM's periodic stats line.
    pub log_stats: bool,
    /// The framework served (profiler file names).
    pub framework: crate::recipe::EngineKind,
}

/// Handle to the engine thread (cheap to clone).
#[derive(Debug, Clone)]
pub struct Driver {
    tx: Sender<Cmd>,
    next_id: Arc<AtomicU64>,
    /// Metrics and liveness.
    pub shared: Arc<Shared>,
}

impl Driver {
    /// Start the engine thread.
    pub fn start(
        engine: SimEngine,
        cfg: DriverConfig,
    ) -> std::io::Result<(Driver, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name("sim-engine".into())
            .spawn(move || Loop::new(engine, rx, thread_shared, cfg).run())?;
        let driver = Driver {
            tx,
            next_id: Arc::new(AtomicU64::new(1)),
            shared,
        };
        Ok((driver, handle))
    }

    /// A fresh request id.
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Hand requests that arrived together (the `n` sequences of one API request) to the
    /// engine, which takes them in one go, before its next step; the events of all of them
    /// arrive on `events` (one `Accepted` or `Rejected` each, then their tokens). False when
    /// the engine thread is gone.
    pub fn submit(&self, reqs: Vec<SimRequest>, events: UnboundedSender<Event>) -> bool {
        self.tx
            .send(Cmd::Submit(reqs, events, Instant::now()))
            .is_ok()
    }

    /// Drop a request (client went away).
    pub fn abort(&self, id: u64) {
        let _ = self.tx.send(Cmd::Abort(id));
    }

    /// Drop the prefix cache (vLLM's dev endpoint `/reset_prefix_cache`).
    pub fn reset_prefix_cache(&self) {
        let _ = self.tx.send(Cmd::ResetPrefixCache);
    }

    /// Start recording steps for a trace (`/start_profile`).
    pub async fn start_profile(
        &self,
        how: Enabling,
        req: StartRequest,
    ) -> Result<(), ProfileError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::StartProfile(how, req, tx)).is_err() {
            return Err(ProfileError::NotRunning);
        }
        rx.await.unwrap_or(Err(ProfileError::NotRunning))
    }

    /// Stop recording and write the trace (`/stop_profile`).
    pub async fn stop_profile(&self) -> Result<Option<Written>, ProfileError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::StopProfile(tx)).is_err() {
            return Err(ProfileError::NotRunning);
        }
        rx.await.unwrap_or(Err(ProfileError::NotRunning))
    }

    /// Stop the engine thread.
    pub fn shutdown(&self) {
        let _ = self.tx.send(Cmd::Shutdown);
    }
}

struct Live {
    events: UnboundedSender<Event>,
    arrival: f64,
    last: Option<f64>,
}

struct StatsWindow {
    at: f64,
    prompt: u64,
    generation: u64,
    queries: u64,
    hits: u64,
}

struct Loop {
    engine: SimEngine,
    rx: Receiver<Cmd>,
    shared: Arc<Shared>,
    cfg: DriverConfig,
    t0: Instant,
    now: f64,
    live: HashMap<u64, Live>,
    started: u64,
    window: StatsWindow,
    lag: Lag,
    profiler: Recorder,
}

/// Tracks how far the engine thread runs behind its wall-clock schedule (a time scale
/// too small for the machine): latencies seen over HTTP are then inflated, so it says so.
#[derive(Debug, Default)]
struct Lag {
    warned_at: Option<Instant>,
}

/// Lag worth a warning.
const LAG_WARN: Duration = Duration::from_millis(50);
/// At most one lag warning per this much wall time.
const LAG_WARN_EVERY: Duration = Duration::from_secs(10);

impl Lag {
    fn note(&mut self, behind: Duration, scale: f64) {
        if behind < LAG_WARN || self.warned_at.is_some_and(|t| t.elapsed() < LAG_WARN_EVERY) {
            return;
        }
        self.warned_at = Some(Instant::now());
        let msg = format!(
            "forge simulator: the engine is {:.0} ms (wall) behind its schedule; this machine \
             cannot run --sim-time-scale {scale} in real time, so latencies measured over HTTP \
             are inflated. Use a larger --sim-time-scale.",
            behind.as_secs_f64() * 1e3
        );
        vlog::emit(Proc::Api, Level::Warning, "sim_driver.rs:1", &msg);
    }
}

/// Seconds between vLLM's stats lines.
const LOG_INTERVAL_S: f64 = 10.0;

impl Loop {
    fn new(engine: SimEngine, rx: Receiver<Cmd>, shared: Arc<Shared>, cfg: DriverConfig) -> Loop {
        Loop {
            engine,
            rx,
            shared,
            cfg,
            t0: Instant::now(),
            now: 0.0,
            live: HashMap::new(),
            started: 0,
            lag: Lag::default(),
            profiler: Recorder::new(cfg.framework),
            window: StatsWindow {
                at: 0.0,
                prompt: 0,
                generation: 0,
                queries: 0,
                hits: 0,
            },
        }
    }

    fn sim_since_start(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.t0).as_secs_f64() / self.cfg.time_scale
    }

    fn run(mut self) {
        loop {
            if self.engine.is_idle() {
                let Ok(cmd) = self.rx.recv() else { return };
                self.now = self.now.max(self.sim_since_start(Instant::now()));
                if !self.handle(cmd) {
                    return;
                }
            }
            while let Ok(cmd) = self.rx.try_recv() {
                if !self.handle(cmd) {
                    return;
                }
            }
            if self.engine.is_idle() {
                continue;
            }
            if !self.step() {
                return;
            }
        }
    }

    /// Apply one command; false means stop the thread.
    fn handle(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Submit(reqs, events, at) => {
                for req in reqs {
                    self.submit(req, events.clone(), at);
                }
            }
            Cmd::Abort(id) => self.abort(id),
            Cmd::ResetPrefixCache => self.engine.reset_prefix_cache(),
            Cmd::StartProfile(how, req, reply) => {
                let _ = reply.send(self.profiler.start(&how, &req));
            }
            Cmd::StopProfile(reply) => {
                let done = self
                    .profiler
                    .stop(self.engine.step_model(), self.engine.trace_model());
                if let Ok(Some(w)) = &done {
                    log_written(w);
                }
                let _ = reply.send(done);
            }
            Cmd::Shutdown => return false,
        }
        self.publish_stats();
        if self.cfg.crash_after == Some(0) && !self.live.is_empty() {
            return self.die();
        }
        true
    }

    fn submit(&mut self, req: SimRequest, events: UnboundedSender<Event>, at: Instant) {
        let id = req.id;
        let arrival = self.sim_since_start(at);
        match self.engine.submit_at(req, arrival) {
            Ok(()) => {
                let _ = events.send(Event::Accepted);
                let live = Live {
                    events,
                    arrival,
                    last: None,
                };
                self.live.insert(id, live);
            }
            Err(msg) => {
                let _ = events.send(Event::Rejected(msg));
            }
        }
    }

    fn abort(&mut self, id: u64) {
        if self.live.remove(&id).is_some() {
            self.engine.abort(id);
            self.shared.metrics().finish(Finished::Abort);
        }
    }

    /// One engine step in real time; false when the engine died.
    fn step(&mut self) -> bool {
        let result = self.engine.step(self.now);
        if let Some((shape, factor)) = self.engine.last_step()
            && self.profiler.is_recording()
        {
            let rec = StepRecord {
                start_s: self.now,
                shape,
                factor,
            };
            let written =
                self.profiler
                    .record(rec, self.engine.step_model(), self.engine.trace_model());
            for w in written {
                match w {
                    Ok(w) => log_written(&w),
                    Err(e) => vlog::emit(Proc::Api, Level::Error, "profiler.py:1", &e.to_string()),
                }
            }
        }
        let end = self.now + result.duration_s.max(0.0);
        let deadline = self.t0 + Duration::from_secs_f64(end * self.cfg.time_scale);
        match deadline.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => self
                .lag
                .note(Instant::now() - deadline, self.cfg.time_scale),
        }
        self.now = end;
        if result.duration_s <= 0.0 && result.outputs.is_empty() && result.scheduled_tokens == 0 {
            // Nothing can run (e.g. waiting for memory that never frees): wait for a
            // command instead of spinning.
            match self.rx.recv_timeout(Duration::from_millis(10)) {
                Ok(cmd) => return self.handle(cmd),
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
        self.deliver(&result);
        self.publish_stats();
        self.maybe_log_stats();
        match self.cfg.crash_after {
            Some(n) if self.started >= n => self.die(),
            _ => true,
        }
    }

    fn deliver(&mut self, result: &StepResult) {
        let now = self.now;
        let mut gone = Vec::new();
        let mut m = self
            .shared
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        m.iteration_tokens
            .observe(f64::from(result.scheduled_tokens));
        for out in &result.outputs {
            let Some(live) = self.live.get_mut(&out.id) else {
                continue;
            };
            match live.last {
                None => {
                    m.ttft.observe(now - live.arrival);
                    self.started += 1;
                }
                Some(last) => m.itl.observe(now - last),
            }
            live.last = Some(now);
            let sent = live.events.send(Event::Tokens(out.clone())).is_ok();
            if let Some(reason) = out.finish {
                m.e2e.observe(now - live.arrival);
                m.finish(match reason {
                    FinishReason::Stop => Finished::Stop,
                    FinishReason::Length => Finished::Length,
                });
                self.live.remove(&out.id);
            } else if !sent {
                gone.push(out.id);
            }
        }
        drop(m);
        for id in gone {
            self.abort(id);
        }
    }

    fn publish_stats(&self) {
        let stats = self.engine.stats();
        self.shared.metrics().stats = stats;
    }

    /// vLLM's `LoggingStatLogger` line, every 10 simulated seconds while busy.
    fn maybe_log_stats(&mut self) {
        let span = self.now - self.window.at;
        if !self.cfg.log_stats || span < LOG_INTERVAL_S {
            return;
        }
        let s = self.engine.stats();
        let w = &self.window;
        let hit_rate = match s.prefix_cache_queries - w.queries {
            0 => 0.0,
            q => (s.prefix_cache_hits - w.hits) as f64 / q as f64 * 100.0,
        };
        let msg = format!(
            "Engine 000: Avg prompt throughput: {:.1} tokens/s, Avg generation throughput: \
             {:.1} tokens/s, Running: {} reqs, Waiting: {} reqs, GPU KV cache usage: {:.1}%, \
             Prefix cache hit rate: {:.1}%",
            (s.prompt_tokens - w.prompt) as f64 / span,
            (s.generation_tokens - w.generation) as f64 / span,
            s.running,
            s.waiting,
            s.kv_usage * 100.0,
            hit_rate,
        );
        vlog::info("loggers.py:123", &msg);
        self.window = StatsWindow {
            at: self.now,
            prompt: s.prompt_tokens,
            generation: s.generation_tokens,
            queries: s.prefix_cache_queries,
            hits: s.prefix_cache_hits,
        };
    }

    /// `--sim-crash-after`: die like vLLM's engine core. Always returns false.
    fn die(&mut self) -> bool {
        let pid = Proc::Engine(self.cfg.engine_pid);
        for line in CRASH_TRACE {
            vlog::emit(pid, Level::Error, "core.py:710", line);
        }
        vlog::emit(
            Proc::Api,
            Level::Error,
            "async_llm.py:480",
            "AsyncLLM output_handler failed.",
        );
        let dead = format!("vllm.v1.engine.exceptions.EngineDeadError: {ENGINE_DEAD}");
        vlog::emit(Proc::Api, Level::Error, "async_llm.py:480", &dead);
        self.shared.dead.store(true, Ordering::SeqCst);
        for (_, live) in self.live.drain() {
            let _ = live.events.send(Event::Died(ENGINE_DEAD.to_string()));
        }
        self.shared.died.notify_one();
        false
    }
}

fn log_written(w: &Written) {
    vlog::info(
        "profiler.py:1",
        &format!(
            "forge simulator: wrote a predicted trace of {} steps ({} events) to {}",
            w.steps,
            w.events,
            w.path.display()
        ),
    );
}

const CRASH_TRACE: &[&str] = &[
    "EngineCore encountered a fatal error.",
    "Traceback (most recent call last):",
    "  File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 701, in run_engine_core",
    "    engine_core.run_busy_loop()",
    "  File \"/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py\", line 728, in run_busy_loop",
    "    self._process_engine_step()",
    "RuntimeError: CUDA error: an illegal memory access was encountered (simulated: --sim-crash-after)",
];
