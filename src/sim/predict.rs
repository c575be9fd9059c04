//! `forge sim predict`: what `forge bench` would measure against `forge sim serve` with the
//! same config, computed in simulated time without HTTP.
//!
//! The replay mirrors the load generator: prompts are tokenized with the stand-in tokenizer
//! (completions: `as_prompt_text()`; chat: `render_chat(as_messages())`), intended send
//! times come from [`crate::bench::schedule`], and a client-side concurrency cap dispatches
//! each request at `max(intended, a slot frees)` in schedule order (a slot frees when its
//! request's last chunk arrives). Warm-ups (`num_warmups` requests of fresh random tokens,
//! the workload's median prompt and output length, all due at once under the same cap)
//! run to completion first; the measured schedule starts when the engine is idle again.
//! `pin_output` sends `ignore_eos` with `min_tokens = max_tokens = expected_output_tokens`;
//! otherwise `max_tokens = expected_output_tokens` and the engine picks a natural length.
//!
//! Every engine output is one SSE chunk: TTFT is first chunk − dispatch, each later chunk
//! adds one ITL sample (with its token count), E2EL ends at the last chunk. The loop jumps
//! simulated time to the next arrival whenever the engine is idle, so 10,000 requests take
//! well under a second.

use std::collections::VecDeque;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Uniform};

use super::engine::{SimEngine, SimSetup};
use super::fasthash::U64Map;
use super::interface::{BootError, SimRequest, TokenOutput};
use crate::bench::metrics::{BenchResult, RunInfo, aggregate};
use crate::bench::record::{Failure, FailureKind, RequestRecord};
use crate::bench::schedule::{dispatch_order, intended_offsets};
use crate::bench::{Endpoint, LoadSpec};
use crate::engine::metrics::ServerFacts;
use crate::stats::median_count;
use crate::tokenize;
use crate::workload::WorkloadRequest;

/// Ids given to warm-up requests start here (workload requests use their index).
const WARMUP_ID_BASE: u64 = 1 << 40;
/// One-way delay between the client and the engine on loopback (HTTP handling, request
/// parsing, delivery of a chunk), s. A request sent the instant another finishes therefore
/// reaches the engine just after the next step started, as it does over real HTTP.
const LOOPBACK_S: f64 = 0.0003;
/// Consecutive zero-length idle steps after which the replay gives up on stuck requests.
const MAX_STALLED_STEPS: u32 = 10_000;

/// Predict the metrics `forge bench` would report for `requests` under `load`.
pub fn predict(
    setup: SimSetup,
    requests: &[WorkloadRequest],
    load: &LoadSpec,
    model_name: &str,
) -> Result<BenchResult, BootError> {
    predict_with(setup, requests, load, model_name, false)
}

/// [`predict`], optionally keeping the per-request lists (`--save-detailed`).
pub fn predict_with(
    setup: SimSetup,
    requests: &[WorkloadRequest],
    load: &LoadSpec,
    model_name: &str,
    save_detailed: bool,
) -> Result<BenchResult, BootError> {
    replay(setup, requests, load, model_name, save_detailed, None).map(|(r, _)| r)
}

/// [`predict_with`], and what the server's `/metrics` would have shown over the run (warm-ups
/// included, as forge's watcher sees it): peaks of running and waiting requests and of KV
/// usage, sampled after every step, and the preemptions and prefix-cache lookups and hits.
pub fn predict_observed(
    setup: SimSetup,
    requests: &[WorkloadRequest],
    load: &LoadSpec,
    model_name: &str,
    save_detailed: bool,
) -> Result<(BenchResult, ServerFacts), BootError> {
    let facts = ServerFacts {
        available: true,
        ..ServerFacts::default()
    };
    let (r, f) = replay(
        setup,
        requests,
        load,
        model_name,
        save_detailed,
        Some(facts),
    )?;
    Ok((r, f.unwrap_or_default()))
}

fn replay(
    setup: SimSetup,
    requests: &[WorkloadRequest],
    load: &LoadSpec,
    model_name: &str,
    save_detailed: bool,
    observe: Option<ServerFacts>,
) -> Result<(BenchResult, Option<ServerFacts>), BootError> {
    let (mut engine, _) = SimEngine::boot(setup)?;
    let prepared = prepare_all(requests, load);
    let (start, observe) = run_warmups(&mut engine, &prepared, load, observe);
    let offsets = intended_offsets(requests, load);
    let mut replay = Replay::new(prepared, offsets, load.concurrency, start);
    replay.observe = observe;
    replay.run(&mut engine);
    let info = RunInfo {
        backend: "forge-sim-predict",
        model_id: model_name,
        base_url: "",
        load,
        max_concurrent_requests: replay.max_in_flight,
        save_detailed,
    };
    let facts = replay.observe.take().map(|mut f| {
        let s = engine.stats();
        f.preemptions = s.preemptions as f64;
        f.prefix_queries = s.prefix_cache_queries as f64;
        f.prefix_hits = s.prefix_cache_hits as f64;
        f
    });
    Ok((aggregate(&replay.records, &info), facts))
}

/// The token ids the server would see for a workload request.
pub fn prompt_tokens(r: &WorkloadRequest, endpoint: Endpoint) -> Vec<u32> {
    match endpoint {
        Endpoint::Completions => tokenize::tokenize(&r.input.as_prompt_text()),
        Endpoint::Chat => tokenize::tokenize(&crate::workload::render_chat(&r.input.as_messages())),
    }
}

/// Tokenize every request, in parallel over the available cores (order preserved).
fn prepare_all(requests: &[WorkloadRequest], load: &LoadSpec) -> Vec<SimRequest> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(16);
    let chunk = requests.len().div_ceil(threads.max(1)).max(256);
    std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(i, r)| prepare((c * chunk + i) as u64, r, load))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

fn prepare(id: u64, r: &WorkloadRequest, load: &LoadSpec) -> SimRequest {
    let out = r.expected_output_tokens.max(1);
    SimRequest {
        id,
        prompt: prompt_tokens(r, load.endpoint),
        max_tokens: out,
        min_tokens: if load.pin_output { out } else { 0 },
        ignore_eos: load.pin_output,
        choice: 0,
        stop_at: None,
    }
}

/// Warm-up requests: fresh random tokens, the workload's median prompt and output length.
fn warmups(prepared: &[SimRequest], load: &LoadSpec) -> Vec<SimRequest> {
    let len = median_count(prepared.iter().map(|r| r.prompt.len() as u64)).map_or(1, |m| m.max(1));
    let out = median_count(prepared.iter().map(|r| u64::from(r.max_tokens)))
        .map_or(1, |m| u32::try_from(m.max(1)).unwrap_or(u32::MAX));
    let mut rng = ChaCha8Rng::seed_from_u64(load.seed ^ 0x5741_524d);
    let ids = Uniform::new(0u32, tokenize::VOCAB).ok();
    (0..load.num_warmups as u64)
        .map(|i| SimRequest {
            id: WARMUP_ID_BASE + i,
            prompt: (0..len)
                .map(|_| ids.as_ref().map_or(0, |d| d.sample(&mut rng)))
                .collect(),
            max_tokens: out,
            min_tokens: if load.pin_output { out } else { 0 },
            ignore_eos: load.pin_output,
            choice: 0,
            stop_at: None,
        })
        .collect()
}

/// Run the warm-ups to completion (observing the engine when asked); returns the simulated
/// time the measured phase starts.
fn run_warmups(
    engine: &mut SimEngine,
    prepared: &[SimRequest],
    load: &LoadSpec,
    observe: Option<ServerFacts>,
) -> (f64, Option<ServerFacts>) {
    let w = warmups(prepared, load);
    if w.is_empty() {
        return (0.0, observe);
    }
    let n = w.len();
    let mut replay = Replay::new(w, vec![0.0; n], load.concurrency, 0.0);
    replay.observe = observe;
    replay.run(engine);
    (engine.clock(), replay.observe)
}

/// Client-side bookkeeping of one replay.
struct Replay {
    reqs: Vec<Option<SimRequest>>,
    offsets: Vec<f64>,
    pending: VecDeque<usize>,
    free_slots: Option<VecDeque<f64>>,
    origin: f64,
    by_id: U64Map<usize>,
    last_chunk: Vec<f64>,
    records: Vec<RequestRecord>,
    in_flight: usize,
    max_in_flight: usize,
    /// The server's gauges, sampled after every step, when asked for.
    observe: Option<ServerFacts>,
}

impl Replay {
    fn new(reqs: Vec<SimRequest>, offsets: Vec<f64>, cap: Option<usize>, origin: f64) -> Replay {
        let n = reqs.len();
        let by_id = reqs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        Replay {
            pending: dispatch_order(&offsets).into(),
            free_slots: cap.map(|c| vec![f64::NEG_INFINITY; c.max(1)].into()),
            records: (0..n)
                .map(|i| RequestRecord {
                    index: i,
                    intended_s: offsets[i],
                    ..RequestRecord::default()
                })
                .collect(),
            reqs: reqs.into_iter().map(Some).collect(),
            offsets,
            origin,
            by_id,
            last_chunk: vec![0.0; n],
            in_flight: 0,
            max_in_flight: 0,
            observe: None,
        }
    }

    /// Drive the engine until every request finished.
    fn run(&mut self, engine: &mut SimEngine) {
        let mut t = 0.0;
        let mut stalled = 0;
        loop {
            self.dispatch(engine, t);
            if engine.is_idle() {
                match self.next_dispatch() {
                    Some(next) if next > t => {
                        t = next;
                        continue;
                    }
                    _ => break,
                }
            }
            let r = engine.step(self.origin + t);
            stalled = if r.duration_s > 0.0 || !r.outputs.is_empty() {
                0
            } else {
                stalled + 1
            };
            if stalled > MAX_STALLED_STEPS {
                break;
            }
            t = engine.clock() - self.origin;
            if let Some(f) = &mut self.observe {
                let s = engine.stats();
                f.peak_running = f.peak_running.max(s.running as f64);
                f.peak_waiting = f.peak_waiting.max(s.waiting as f64);
                f.peak_kv_usage = f.peak_kv_usage.max(s.kv_usage);
            }
            for o in &r.outputs {
                self.on_output(o, t);
            }
        }
        self.fail_unfinished();
    }

    /// When the next pending request can go out, if a slot is (or will be) free.
    fn next_dispatch(&self) -> Option<f64> {
        let &i = self.pending.front()?;
        let slot = match &self.free_slots {
            Some(s) => *s.front()?,
            None => f64::NEG_INFINITY,
        };
        Some(self.offsets[i].max(slot))
    }

    /// Send every request that is due by `t` and has a slot.
    fn dispatch(&mut self, engine: &mut SimEngine, t: f64) {
        while let Some(at) = self.next_dispatch() {
            if at > t + 1e-12 {
                break;
            }
            let Some(i) = self.pending.pop_front() else {
                break;
            };
            if let Some(s) = &mut self.free_slots {
                s.pop_front();
            }
            self.send(engine, i, at);
        }
    }

    fn send(&mut self, engine: &mut SimEngine, i: usize, at: f64) {
        let Some(req) = self.reqs[i].take() else {
            return;
        };
        let rec = &mut self.records[i];
        rec.dispatched_s = at;
        rec.prompt_tokens = req.prompt.len() as u64;
        self.in_flight += 1;
        self.max_in_flight = self.max_in_flight.max(self.in_flight);
        if let Err(message) = engine.submit_at(req, self.origin + at + LOOPBACK_S) {
            rec.failure = Some(Failure {
                kind: FailureKind::HttpStatus,
                message: format!("400 Bad Request: {message}"),
            });
            self.complete(at);
        }
    }

    fn complete(&mut self, t: f64) {
        self.in_flight -= 1;
        if let Some(s) = &mut self.free_slots {
            s.push_back(t);
        }
    }

    fn on_output(&mut self, o: &TokenOutput, t: f64) {
        let Some(&i) = self.by_id.get(&o.id) else {
            return;
        };
        let rec = &mut self.records[i];
        // The client sees the chunk a loopback hop after the step that made it.
        let t = t + LOOPBACK_S;
        let since = t - rec.dispatched_s;
        if rec.ttft_s.is_none() {
            rec.ttft_s = Some(since);
            rec.first_content_s = Some(since);
        } else {
            rec.itl_s.push(t - self.last_chunk[i]);
            rec.itl_tokens.push(o.new_tokens);
        }
        self.last_chunk[i] = t;
        rec.output_tokens = u64::from(o.total_tokens);
        rec.prompt_tokens = u64::from(o.prompt_tokens);
        if o.finish.is_some() {
            rec.e2el_s = Some(since);
            self.complete(t);
        }
    }

    /// Requests that never finished (a stuck engine) count as timeouts.
    fn fail_unfinished(&mut self) {
        for rec in &mut self.records {
            if rec.e2el_s.is_none() && rec.failure.is_none() {
                rec.failure = Some(Failure {
                    kind: FailureKind::Timeout,
                    message: "the simulated engine never finished this request".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::RequestInput;

    #[test]
    fn warmups_have_median_lengths_and_fresh_ids() {
        let prepared: Vec<SimRequest> = [3usize, 10, 7]
            .iter()
            .enumerate()
            .map(|(i, &n)| SimRequest {
                id: i as u64,
                prompt: vec![1; n],
                max_tokens: 5 + i as u32,
                min_tokens: 0,
                ignore_eos: true,
                choice: 0,
                stop_at: None,
            })
            .collect();
        let load = LoadSpec {
            num_warmups: 2,
            ..LoadSpec::default()
        };
        let w = warmups(&prepared, &load);
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].prompt.len(), 7);
        assert_eq!(w[0].max_tokens, 6);
        assert!(w[0].id >= WARMUP_ID_BASE);
        assert_ne!(w[0].prompt, w[1].prompt);
    }

    #[test]
    fn chat_prompts_use_the_chat_template() {
        let r = WorkloadRequest {
            line: 1,
            input: RequestInput::Prompt("hello there".into()),
            expected_output_tokens: 3,
            arrival_offset_s: None,
            expected_output: None,
        };
        let c = prompt_tokens(&r, Endpoint::Completions);
        let h = prompt_tokens(&r, Endpoint::Chat);
        assert!(h.len() > c.len());
        let p = prepare(0, &r, &LoadSpec::default());
        assert!(p.ignore_eos && p.min_tokens == 3 && p.max_tokens == 3);
    }
}
