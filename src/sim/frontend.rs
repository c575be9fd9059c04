//! vLLM's API-server process, modelled as one CPU that serves jobs first come, first
//! served: taking in a request (HTTP parsing, chat template, tokenization) and turning each
//! engine output into an SSE chunk (detokenization, JSON, send).
//!
//! At light load it adds nothing: an output is delivered when its step ends. When the
//! server falls behind (small models at high concurrency), new requests reach the engine
//! late and outputs are delivered late; outputs of one request that pile up are merged into
//! one chunk, as vLLM's output collector merges them for a slow consumer.

use std::collections::{HashMap, VecDeque};

use super::engine::TokenOutput;

/// API-server CPU cost of taking in a request, seconds.
pub const PER_REQUEST: f64 = 1.2e-3;
/// API-server CPU cost per prompt token (tokenization), seconds.
pub const PER_PROMPT_TOKEN: f64 = 1.5e-6;
/// API-server CPU cost per output chunk sent, seconds.
pub const PER_OUTPUT: f64 = 45e-6;

/// The API server's CPU queue and the outputs it has not delivered yet.
#[derive(Debug, Clone, Default)]
pub struct Frontend {
    busy_until: f64,
    /// `busy_until` before the last batch of outputs joined, and that batch's time: an
    /// arrival reported late (with an earlier timestamp) queues behind the work before it.
    before_last_batch: f64,
    last_batch: f64,
    pending: VecDeque<(f64, TokenOutput)>,
}

impl Frontend {
    /// A request arrives at `t`; returns when the engine sees it.
    pub fn intake(&mut self, t: f64, prompt_tokens: usize) -> f64 {
        let cost = PER_REQUEST + PER_PROMPT_TOKEN * prompt_tokens as f64;
        let late = t < self.last_batch;
        let queue = if late {
            self.before_last_batch
        } else {
            self.busy_until
        };
        let done = queue.max(t) + cost;
        self.before_last_batch = self.before_last_batch.max(done);
        self.busy_until = if late {
            (self.busy_until + cost).max(done)
        } else {
            done
        };
        done
    }

    /// Outputs produced by a step ending at `t` join the queue as one batch: delivered at
    /// `t` when the server is free, else when it gets to them. The batch then keeps the
    /// server busy for `PER_OUTPUT` per output, which delays what comes after it.
    pub fn produce(&mut self, t: f64, outputs: Vec<TokenOutput>) {
        self.before_last_batch = self.busy_until;
        self.last_batch = t;
        let at = self.busy_until.max(t);
        self.busy_until = at + PER_OUTPUT * outputs.len() as f64;
        self.pending.extend(outputs.into_iter().map(|o| (at, o)));
    }

    /// Outputs delivered by time `t`, one merged chunk per request.
    pub fn release(&mut self, t: f64) -> Vec<TokenOutput> {
        let mut out: Vec<TokenOutput> = Vec::new();
        let mut pos: HashMap<u64, usize> = HashMap::new();
        while let Some((at, _)) = self.pending.front() {
            if *at > t + 1e-12 {
                break;
            }
            let Some((_, o)) = self.pending.pop_front() else {
                break;
            };
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

    /// Time of the next undelivered output, if any.
    pub fn next_delivery(&self) -> Option<f64> {
        self.pending.front().map(|(at, _)| *at)
    }

    /// Forget undelivered outputs of an aborted request.
    pub fn drop_request(&mut self, id: u64) {
        self.pending.retain(|(_, o)| o.id != id);
    }

    /// True when nothing is waiting for delivery.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
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
    fn keeps_up_at_light_load() {
        let mut f = Frontend::default();
        assert!(
            (f.intake(1.0, 100) - (1.0 + PER_REQUEST + 100.0 * PER_PROMPT_TOKEN)).abs() < 1e-12
        );
        f.produce(2.0, vec![out(1, 1)]);
        assert_eq!(f.release(2.0).len(), 1);
        assert!(f.is_empty());
    }

    #[test]
    fn a_backlog_delays_and_merges_chunks() {
        let mut f = Frontend::default();
        // 100 outputs at once: sent now, but they keep the server busy for 4.5 ms.
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
