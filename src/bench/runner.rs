//! The open-loop driver of `forge bench`.
//!
//! One dispatcher task walks the schedule in intended order and sleeps until
//! `start + offset × time_scale` — absolute deadlines, never relative sleeps, so lateness
//! does not accumulate. When a request is due it waits for a concurrency slot (if capped),
//! then spawns the request as its own task and moves on; the request's clock starts just
//! before its POST. Intended time, actual send and the wait between them are recorded, so
//! client-side queueing shows up instead of hiding in front of the timer (as it does in
//! vLLM's client, which starts timing after its semaphore). Finished requests come back
//! over a channel to the collector, which drives the progress bar and, when asked, a
//! heartbeat line (requests done, in flight, failed, current output tokens/s) so a long run
//! is never silent.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::client::{Client, Job};
use super::metrics::{self, BenchResult, RunInfo};
use super::record::RequestRecord;
use super::schedule::{dispatch_order, intended_offsets};
use super::settings::Settings;
use super::stream::StreamState;
use super::warmup;

/// Every stream in flight holds a socket: lift the soft open-files limit (often 1,024) to
/// the hard limit, so a high concurrency is not silently capped by `EMFILE` connect errors.
pub fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        tracing::debug!("cannot raise the open-files limit from {soft}: {e}");
    }
}

/// Replay the workload against the server and aggregate the measurements.
pub async fn run(s: &Settings) -> anyhow::Result<BenchResult> {
    let client = Client::with_pooling(&s.base_url, s.load.endpoint, !s.fresh_connections)?;
    let model = match &s.model {
        Some(m) => m.clone(),
        None => client
            .first_model()
            .await
            .context("cannot find the model to request (pass --model to skip this)")?,
    };
    let load = &s.load;
    let reqs = &s.workload.requests;
    let jobs: Vec<Job> = reqs
        .iter()
        .map(|r| Job::new(load.endpoint, &model, r, load.pin_output))
        .collect();
    warm_up(&client, s, &model).await;
    let offsets = intended_offsets(reqs, load);
    let driver = Driver::new(client, jobs, offsets, s);
    let (records, max_in_flight, interrupted) = driver.run(progress_bar(s, reqs.len())).await;
    let info = RunInfo {
        backend: "forge-bench",
        model_id: &model,
        base_url: &s.base_url,
        load,
        max_concurrent_requests: max_in_flight,
        save_detailed: s.save_detailed,
    };
    let mut result = metrics::aggregate(&records, &info);
    result.interrupted = interrupted;
    Ok(result)
}

/// Send the synthesized warm-ups (all at once, under the concurrency cap) and wait for
/// them. Their results are discarded; failures are only reported.
async fn warm_up(client: &Client, s: &Settings, model: &str) {
    let n = s.load.num_warmups;
    if n == 0 {
        return;
    }
    let reqs = warmup::synthesize(&s.workload.requests, n, s.load.seed);
    let jobs: Vec<Job> = reqs
        .iter()
        .map(|r| Job::new(s.load.endpoint, model, r, s.load.pin_output))
        .collect();
    let cap = Arc::new(Semaphore::new(s.load.concurrency.unwrap_or(n).max(1)));
    let mut set = tokio::task::JoinSet::new();
    for job in jobs {
        let (client, cap, timeout) = (client.clone(), cap.clone(), s.wall_timeout());
        set.spawn(async move {
            let _permit = cap.acquire_owned().await;
            client.send(&job, timeout).await.failure.is_some()
        });
    }
    let failed = set.join_all().await.into_iter().filter(|f| *f).count();
    if failed > 0 {
        eprintln!("warning: {failed} of {n} warm-up requests failed");
    }
}

fn progress_bar(s: &Settings, n: usize) -> ProgressBar {
    if !s.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec} {msg}",
    );
    if let Ok(style) = style {
        bar.set_style(style);
    }
    bar
}

/// Everything the request tasks share.
struct Shared {
    client: Client,
    jobs: Vec<Job>,
    offsets: Vec<f64>,
    scale: f64,
    timeout: Duration,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The measured phase: schedule, cap, spawn, collect.
struct Driver {
    shared: Arc<Shared>,
    cap: Option<Arc<Semaphore>>,
    heartbeat: Option<Duration>,
}

/// What the measured phase has done since the last heartbeat, and in all.
#[derive(Debug, Default)]
struct Pulse {
    done: usize,
    failed: usize,
    tokens_since: u64,
}

impl Pulse {
    /// The heartbeat line: requests done of `n`, in flight, failed, and output tokens/s over
    /// the last `wall` (wall time; `scale` wall seconds per server second).
    fn line(&mut self, n: usize, in_flight: usize, wall: Duration, scale: f64) -> String {
        let server_s = wall.as_secs_f64() / scale.max(1e-9);
        let tok_s = if server_s > 0.0 {
            self.tokens_since as f64 / server_s
        } else {
            0.0
        };
        self.tokens_since = 0;
        format!(
            "forge: measuring: {}/{n} requests done, {in_flight} in flight, {} failed; {tok_s:.1} output tok/s over the last {:.0} s",
            self.done,
            self.failed,
            wall.as_secs_f64()
        )
    }
}

impl Driver {
    fn new(client: Client, jobs: Vec<Job>, offsets: Vec<f64>, s: &Settings) -> Self {
        Driver {
            shared: Arc::new(Shared {
                client,
                jobs,
                offsets,
                scale: s.load.time_scale,
                timeout: s.wall_timeout(),
                in_flight: AtomicUsize::new(0),
                max_in_flight: AtomicUsize::new(0),
            }),
            cap: s.load.concurrency.map(|c| Arc::new(Semaphore::new(c))),
            heartbeat: s.heartbeat,
        }
    }

    /// Run every request; records come back in workload order, with the most requests
    /// seen in flight at once. Ctrl-C stops the run: nothing more is sent, requests in
    /// flight are abandoned, and the records so far are returned (flagged interrupted).
    async fn run(self, bar: ProgressBar) -> (Vec<RequestRecord>, usize, bool) {
        let n = self.shared.jobs.len();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let start = Instant::now();
        let dispatcher = tokio::spawn(dispatch(self.shared.clone(), self.cap, start, tx));
        let mut slots: Vec<Option<RequestRecord>> = vec![None; n];
        let (mut pulse, mut interrupted) = (Pulse::default(), false);
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        // The first beat comes one period in: a short run says nothing.
        let period = self.heartbeat.unwrap_or(Duration::from_secs(86_400 * 365));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            let rec = tokio::select! {
                rec = rx.recv() => rec,
                _ = beat.tick(), if self.heartbeat.is_some() => {
                    let in_flight = self.shared.in_flight.load(Ordering::Relaxed);
                    bar.suspend(|| eprintln!("{}", pulse.line(n, in_flight, period, self.shared.scale)));
                    continue;
                }
                _ = &mut ctrl_c => {
                    interrupted = true;
                    dispatcher.abort();
                    None
                }
            };
            let Some(rec) = rec else { break };
            pulse.done += 1;
            pulse.failed += usize::from(!rec.ok());
            pulse.tokens_since += rec.output_tokens;
            bar.inc(1);
            if pulse.failed > 0 {
                bar.set_message(format!("{} failed", pulse.failed));
            }
            let i = rec.index;
            slots[i] = Some(rec);
        }
        bar.finish_and_clear();
        let records = slots.into_iter().flatten().collect();
        let max = self.shared.max_in_flight.load(Ordering::Relaxed);
        (records, max, interrupted)
    }
}

/// How long after the start a request is due. Offsets and scales are bounded where they
/// are read; this never panics whatever reaches it (NaN is now, beyond a year is a year).
fn due_after(secs: f64) -> Duration {
    const YEAR_S: f64 = 365.0 * 86_400.0;
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::from_secs_f64(secs.min(YEAR_S))
}

/// Walk the schedule: sleep until each request is due, wait for a slot, spawn it.
async fn dispatch(
    shared: Arc<Shared>,
    cap: Option<Arc<Semaphore>>,
    start: Instant,
    tx: mpsc::UnboundedSender<RequestRecord>,
) {
    let start_tokio = tokio::time::Instant::from_std(start);
    for i in dispatch_order(&shared.offsets) {
        let due = start_tokio + due_after(shared.offsets[i] * shared.scale);
        if due > tokio::time::Instant::now() {
            tokio::time::sleep_until(due).await;
        }
        let permit = match &cap {
            Some(sem) => match sem.clone().acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            },
            None => None,
        };
        let (shared, tx) = (shared.clone(), tx.clone());
        tokio::spawn(async move {
            let rec = shared.one(i, start, permit).await;
            let _ = tx.send(rec);
        });
    }
}

impl Shared {
    /// Send request `i` now and turn its measurements into a record.
    async fn one(
        &self,
        i: usize,
        start: Instant,
        permit: Option<OwnedSemaphorePermit>,
    ) -> RequestRecord {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        let st = self.client.send(&self.jobs[i], self.timeout).await;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
        let dispatched = st.t0().saturating_duration_since(start).as_secs_f64();
        to_record(
            i,
            self.offsets[i],
            dispatched,
            st,
            &self.jobs[i],
            self.scale,
        )
    }
}

/// A measured stream as a record in server seconds (client durations ÷ `scale`).
pub fn to_record(
    index: usize,
    intended_s: f64,
    dispatched_wall_s: f64,
    st: StreamState,
    job: &Job,
    scale: f64,
) -> RequestRecord {
    let (output_tokens, estimated) = st.output_tokens();
    let s = |x: f64| x / scale;
    RequestRecord {
        index,
        intended_s,
        dispatched_s: s(dispatched_wall_s),
        prompt_tokens: st.usage_prompt.unwrap_or(job.prompt_estimate),
        output_tokens,
        output_tokens_estimated: estimated,
        ttft_s: st.ttft.map(s),
        first_content_s: st.first_content.map(s),
        itl_s: st.itl.iter().map(|&x| s(x)).collect(),
        itl_tokens: st.itl_tokens,
        e2el_s: st.last_token.map(s),
        generated_text: st.text,
        failure: st.failure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heartbeat_counts_requests_and_the_tokens_since_the_last_one_in_server_time() {
        let mut p = Pulse {
            done: 412,
            failed: 1,
            tokens_since: 12_000,
        };
        // 60 wall seconds on a clock ×0.1: 600 server seconds, 20 tok/s.
        assert_eq!(
            p.line(1000, 8, Duration::from_secs(60), 0.1),
            "forge: measuring: 412/1000 requests done, 8 in flight, 1 failed; 20.0 output tok/s over the last 60 s"
        );
        // The tokens are counted afresh for the next beat.
        assert!(
            p.line(1000, 8, Duration::from_secs(60), 1.0)
                .contains("; 0.0 output tok/s")
        );
    }
}
