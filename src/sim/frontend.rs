//! vLLM's API-server process, modelled as one CPU with two kinds of work: taking in a
//! request (HTTP handling, chat template, tokenization) and turning each engine output into
//! an SSE chunk (detokenization, JSON, send). Streaming outputs comes first; intake runs in
//! the CPU time outputs leave free, first come first served.
//!
//! At light load this adds only the intake cost to TTFT. When the server saturates (small
//! models at high concurrency) requests reach the engine at the rate the leftover CPU
//! allows, which caps the running batch — the regime published burst benchmarks of small
//! models show (TTFTs spread over the whole run, TPOT set by a modest batch). Outputs that
//! cannot be sent before later ones pile up are merged into one chunk, as vLLM's output
//! collector merges them for a slow consumer.
//!
//! The costs are calibrated on the kvcached H100 Qwen3-0.6B measurements cited in
//! `tests/sim_fidelity.rs` (~94 requests/s of 512 + 128 tokens saturate the server).

use std::collections::VecDeque;

use super::fasthash::U64Map;
use super::interface::TokenOutput;

/// API-server CPU cost of taking in a request, seconds.
pub const PER_REQUEST: f64 = 3.5e-3;
/// API-server CPU cost per prompt token (tokenization), seconds.
pub const PER_PROMPT_TOKEN: f64 = 1.5e-6;
/// API-server CPU cost per output chunk sent, seconds.
pub const PER_OUTPUT: f64 = 45e-6;

/// Work below this many seconds is float rounding.
const EPS: f64 = 1e-9;

/// A request being taken in.
#[derive(Debug, Clone, Copy)]
struct Intake {
    key: usize,
    tag: u64,
    arrival: f64,
    remaining: f64,
}

/// The API server's CPU and the work it has not finished.
#[derive(Debug, Clone)]
pub struct Frontend {
    /// Cost scale: 1 for a served engine, 0 for an offline benchmark (no API server: the
    /// benchmark hands requests to the engine in process, as `trtllm-bench` does).
    scale: f64,
    outputs_busy_until: f64,
    /// Busy periods of output sending not yet fully consumed by [`Frontend::progress`].
    output_periods: VecDeque<(f64, f64)>,
    progressed_to: f64,
    intake: VecDeque<Intake>,
    pending: VecDeque<(f64, TokenOutput)>,
}

impl Default for Frontend {
    fn default() -> Frontend {
        Frontend::served()
    }
}

impl Frontend {
    /// An engine behind its API server.
    pub fn served() -> Frontend {
        Frontend {
            scale: 1.0,
            outputs_busy_until: 0.0,
            output_periods: VecDeque::new(),
            progressed_to: 0.0,
            intake: VecDeque::new(),
            pending: VecDeque::new(),
        }
    }

    /// No API server: requests reach the engine and outputs leave it at no CPU cost.
    pub fn offline() -> Frontend {
        Frontend {
            scale: 0.0,
            ..Frontend::served()
        }
    }

    /// A request with `prompt_tokens` tokens arrives at `t`. `key` and `tag` are the
    /// caller's (slot and earliest step); they come back from [`Frontend::pop_ready`].
    pub fn submit(&mut self, key: usize, tag: u64, t: f64, prompt_tokens: usize) {
        self.intake.push_back(Intake {
            key,
            tag,
            arrival: t,
            remaining: self.scale * (PER_REQUEST + PER_PROMPT_TOKEN * prompt_tokens as f64),
        });
    }

    /// Another sequence of the request submitted just before (vLLM fans an `n > 1` request
    /// out to `n` engine requests after taking it in once): no intake work of its own, so
    /// it is ready right after that request.
    pub fn submit_sibling(&mut self, key: usize, tag: u64, t: f64) {
        self.intake.push_back(Intake {
            key,
            tag,
            arrival: t,
            remaining: 0.0,
        });
    }

    /// Spend the CPU time outputs left free in `(last call, now]` on intake, FIFO.
    pub fn progress(&mut self, now: f64) {
        let from = self.progressed_to;
        if now <= from {
            return;
        }
        self.progressed_to = now;
        let busy: f64 = self
            .output_periods
            .iter()
            .map(|&(s, e)| (e.min(now) - s.max(from)).max(0.0))
            .sum();
        while self.output_periods.front().is_some_and(|&(_, e)| e <= now) {
            self.output_periods.pop_front();
        }
        // Outputs run first in the interval; intake gets the rest of it.
        let mut cursor = from + busy.min(now - from);
        for job in self.intake.iter_mut() {
            if job.remaining <= EPS {
                continue;
            }
            let start = cursor.max(job.arrival);
            if start >= now {
                break;
            }
            let used = (now - start).min(job.remaining);
            job.remaining -= used;
            cursor = start + used;
            // Sub-nanosecond leftovers are rounding, not work (and would stall the clock).
            if job.remaining > EPS {
                break;
            }
            job.remaining = 0.0;
        }
    }

    /// The first request in line once it is taken in and its tag is at most `max_tag`.
    pub fn pop_ready(&mut self, max_tag: u64) -> Option<usize> {
        let head = self.intake.front()?;
        if head.remaining > EPS || head.tag > max_tag {
            return None;
        }
        self.intake.pop_front().map(|j| j.key)
    }

    /// When the request at the head of the line will be taken in (`now` if it already
    /// is), assuming no new outputs arrive.
    pub fn next_intake(&self, now: f64) -> Option<f64> {
        let head = self.intake.front()?;
        if head.remaining <= EPS {
            return Some(now);
        }
        Some(now.max(head.arrival).max(self.outputs_busy_until) + head.remaining)
    }

    /// Outputs of a step ending at `t` join the send queue as one batch: sent at `t` when
    /// the server is free, else when it gets to them.
    pub fn produce(&mut self, t: f64, outputs: Vec<TokenOutput>) {
        if outputs.is_empty() {
            return;
        }
        let at = self.outputs_busy_until.max(t);
        self.outputs_busy_until = at + self.scale * PER_OUTPUT * outputs.len() as f64;
        match self.output_periods.back_mut() {
            Some(last) if last.1 >= at => last.1 = self.outputs_busy_until,
            _ => self.output_periods.push_back((at, self.outputs_busy_until)),
        }
        self.pending.extend(outputs.into_iter().map(|o| (at, o)));
    }

    /// Outputs sent by time `t`, one merged chunk per request.
    pub fn release(&mut self, t: f64) -> Vec<TokenOutput> {
        let due = self
            .pending
            .iter()
            .take_while(|(at, _)| *at <= t + 1e-12)
            .count();
        let single_batch = self
            .pending
            .front()
            .is_some_and(|(first, _)| self.pending.iter().take(due).all(|(at, _)| at == first));
        let batch = self.pending.drain(..due).map(|(_, o)| o);
        if single_batch {
            // One batch holds at most one output per request: nothing to merge.
            return batch.collect();
        }
        let mut out: Vec<TokenOutput> = Vec::new();
        let mut pos: U64Map<usize> = U64Map::default();
        for o in batch {
            match pos.get(&o.id) {
                Some(&i) => merge(&mut out[i], &o),
                None => {
                    pos.insert(o.id, out.len());
                    out.push(o);
                }
            }
        }
        out
    }

    /// Time of the next unsent output, if any.
    pub fn next_delivery(&self) -> Option<f64> {
        self.pending.front().map(|(at, _)| *at)
    }

    /// Forget a request: its intake (by `key`) and its unsent outputs (by `id`).
    pub fn drop_request(&mut self, key: usize, id: u64) {
        self.intake.retain(|j| j.key != key);
        self.pending.retain(|(_, o)| o.id != id);
    }

    /// Requests not yet handed to the engine.
    pub fn intake_len(&self) -> usize {
        self.intake.len()
    }

    /// True when nothing is being taken in or waiting to be sent.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty() && self.intake.is_empty()
    }
}

fn merge(into: &mut TokenOutput, later: &TokenOutput) {
    into.new_tokens += later.new_tokens;
    into.total_tokens = later.total_tokens;
    into.finish = later.finish;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(id: u64, total: u32) -> TokenOutput {
        TokenOutput {
            id,
            new_tokens: 1,
            total_tokens: total,
            prompt_tokens: 4,
            cached_tokens: 0,
            finish: None,
        }
    }

    #[test]
    fn offline_requests_and_outputs_cost_no_cpu() {
        let mut f = Frontend::offline();
        f.submit(0, 0, 1.0, 100_000);
        f.progress(1.0);
        assert_eq!(f.pop_ready(0), Some(0), "taken in at once");
        f.produce(2.0, (0..1000).map(|i| out(i, 1)).collect());
        assert_eq!(f.next_delivery(), Some(2.0));
        assert_eq!(f.release(2.0).len(), 1000, "all sent when produced");
    }

    #[test]
    fn intake_takes_its_cost_when_the_server_is_idle() {
        let mut f = Frontend::default();
        f.submit(7, 0, 1.0, 100);
        let cost = PER_REQUEST + 100.0 * PER_PROMPT_TOKEN;
        assert!((f.next_intake(1.0).unwrap() - (1.0 + cost)).abs() < 1e-12);
        f.progress(1.0 + cost / 2.0);
        assert_eq!(f.pop_ready(0), None);
        f.progress(1.0 + cost);
        assert_eq!(f.pop_ready(0), Some(7));
        assert!(f.is_empty());
    }

    #[test]
    fn siblings_share_one_intake() {
        let mut f = Frontend::default();
        f.submit(7, 0, 1.0, 100);
        f.submit_sibling(8, 0, 1.0);
        f.submit_sibling(9, 0, 1.0);
        let cost = PER_REQUEST + 100.0 * PER_PROMPT_TOKEN;
        f.progress(1.0 + cost / 2.0);
        assert_eq!(f.pop_ready(0), None);
        f.progress(1.0 + cost);
        let ready: Vec<usize> = std::iter::from_fn(|| f.pop_ready(0)).collect();
        assert_eq!(ready, [7, 8, 9]);
        assert!(f.is_empty());
    }

    #[test]
    fn outputs_come_first_and_intake_waits_for_its_tag() {
        let mut f = Frontend::default();
        f.submit(1, 5, 0.0, 0);
        // 100 outputs keep the server busy for 4.5 ms: intake only starts after that.
        f.produce(0.0, (0..100).map(|i| out(i, 1)).collect());
        f.progress(0.004);
        f.progress(0.0045 + PER_REQUEST - 1e-6);
        assert_eq!(f.pop_ready(9), None);
        f.progress(0.0046 + PER_REQUEST);
        assert_eq!(f.pop_ready(4), None, "not before step 5");
        assert_eq!(f.pop_ready(5), Some(1));
    }

    #[test]
    fn a_send_backlog_delays_and_merges_chunks() {
        let mut f = Frontend::default();
        f.produce(0.0, (0..100).map(|i| out(i, 1)).collect());
        f.produce(0.001, vec![out(99, 2)]);
        f.produce(0.002, vec![out(99, 3)]);
        assert_eq!(f.release(0.001).len(), 100);
        assert!(f.release(0.004).is_empty());
        assert!((f.next_delivery().unwrap() - 100.0 * PER_OUTPUT).abs() < 1e-12);
        let rest = f.release(1.0);
        assert_eq!(rest.len(), 1);
        assert_eq!((rest[0].new_tokens, rest[0].total_tokens), (2, 3));
    }
}
