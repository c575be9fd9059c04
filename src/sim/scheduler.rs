//! vLLM V1's scheduler, one step at a time (forge's simulator notes, "Scheduler"):
//!
//! 1. Budget B = `max_num_batched_tokens`. Running requests first, in admission order: each
//!    gets `n = min(remaining, B, long_prefill_token_threshold if > 0)`. When its KV blocks
//!    cannot be allocated, the most recently admitted running request is preempted
//!    (recompute: blocks freed tail-first, `num_computed = 0`, pushed to the head of the
//!    waiting queue, counted) and allocation is retried; preempting the request itself ends
//!    the running pass.
//! 2. Only if nothing was preempted this step: waiting requests, FCFS, while B > 0 and
//!    fewer than `max_num_seqs` run. A request with nothing computed looks up the prefix
//!    cache first; `n = min(L − hit, B)` (chunked prefill; without it a prompt that does not
//!    fit the budget waits). The first allocation failure stops admission (head-of-line
//!    blocking).
//! 3. A request emits a token when its prefill completes or when it decodes.
//!
//! `--scheduling-policy priority` is treated as FCFS: requests here carry no priority, and
//! vLLM orders equal priorities by arrival, which is FCFS.

use std::collections::VecDeque;
use std::hash::Hasher;

use twox_hash::XxHash64;

use super::fasthash::U64Map;
use super::interface::{FinishReason, TokenOutput};
use super::kv::{KvCache, ROOT_HASH, block_hash};
use super::policy::{Admission, LPM_MAX_QUEUE};

/// Scheduler limits.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedConfig {
    /// `--max-num-seqs`.
    pub max_num_seqs: u32,
    /// `--max-num-batched-tokens`.
    pub max_num_batched_tokens: u32,
    /// `--long-prefill-token-threshold` (0 = off).
    pub long_prefill_token_threshold: u32,
    /// `--enable-chunked-prefill`.
    pub chunked_prefill: bool,
    /// Context limit.
    pub max_model_len: u32,
    /// Speculative tokens verified per decode step (0 = no speculation).
    pub spec_k: u32,
    /// Expected tokens emitted per decode step (1 without speculation).
    pub spec_tokens_per_step: f64,
    /// How waiting requests are admitted ([`Admission`]).
    pub admission: Admission,
    /// Longest-prefix-match order of the waiting queue (SGLang's `lpm`).
    pub lpm: bool,
    /// Prefill batches and decode batches alternate instead of sharing a step (SGLang).
    pub separate_prefill: bool,
}

/// One request's scheduler state.
#[derive(Debug, Clone)]
pub struct Request {
    /// Caller's id.
    pub id: u64,
    /// Seed of its generated text ([`crate::tokenize::text_seed`] of the prompt).
    pub text_seed: u64,
    /// Prompt token ids.
    pub prompt: Vec<u32>,
    /// Output tokens to produce before finishing.
    pub target: u32,
    /// The client's `max_tokens` (what a reservation must hold; `target` may be shorter).
    pub max_tokens: u32,
    /// Why it finishes on reaching `target`.
    pub target_reason: FinishReason,
    /// Output tokens generated so far.
    pub num_output: u32,
    /// Tokens whose KV is computed.
    pub num_computed: u32,
    /// KV blocks held.
    pub blocks: Vec<u32>,
    /// Chained hashes of the full blocks of its tokens, computed lazily.
    hashes: Vec<u64>,
    /// Blocks registered in the prefix cache.
    cached_blocks: usize,
    /// Prompt tokens served from the prefix cache at first scheduling.
    pub cached_tokens: u32,
    scheduled_once: bool,
    spec_carry: f64,
    /// Times this request was preempted.
    pub preemptions: u32,
    /// False for a slot whose request was removed.
    active: bool,
}

impl Request {
    /// A new request that should generate `target` tokens.
    pub fn new(id: u64, prompt: Vec<u32>, target: u32, target_reason: FinishReason) -> Request {
        Request {
            id,
            text_seed: crate::tokenize::text_seed(&prompt),
            prompt,
            target,
            max_tokens: target,
            target_reason,
            num_output: 0,
            num_computed: 0,
            blocks: Vec::new(),
            hashes: Vec::new(),
            cached_blocks: 0,
            cached_tokens: 0,
            scheduled_once: false,
            spec_carry: 0.0,
            preemptions: 0,
            active: true,
        }
    }

    /// A placeholder for an empty slot.
    fn inactive() -> Request {
        Request {
            active: false,
            ..Request::new(0, Vec::new(), 0, FinishReason::Stop)
        }
    }

    /// Prompt plus generated tokens.
    pub fn num_tokens(&self) -> u32 {
        self.prompt.len() as u32 + self.num_output
    }

    fn token_at(&self, pos: usize) -> u32 {
        match self.prompt.get(pos) {
            Some(t) => *t,
            None => output_token_id(self.text_seed, (pos - self.prompt.len()) as u32),
        }
    }

    fn ensure_hashes(&mut self, full_blocks: usize, bs: usize) {
        while self.hashes.len() < full_blocks {
            let i = self.hashes.len();
            let parent = self.hashes.last().copied().unwrap_or(ROOT_HASH);
            let end = (i + 1) * bs;
            let h = if end <= self.prompt.len() {
                block_hash(parent, &self.prompt[i * bs..end])
            } else {
                let tokens: Vec<u32> = (i * bs..end).map(|p| self.token_at(p)).collect();
                block_hash(parent, &tokens)
            };
            self.hashes.push(h);
        }
    }
}

/// Token id of generated token `index` of request `id` (what its KV blocks hash). A
/// deterministic hash: the stand-in tokenizer re-tokenizes streamed output words into a
/// different number of tokens, so a follow-up turn that quotes the answer hits the prefix
/// cache up to the answer, not through it (the shared history before it still hits).
pub fn output_token_id(id: u64, index: u32) -> u32 {
    let mut h = XxHash64::with_seed(id);
    h.write_u32(index);
    (h.finish() % u64::from(crate::tokenize::VOCAB)) as u32
}

/// Which running requests a pass schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Every running request (vLLM, TensorRT-LLM: prefill chunks and decodes share a step).
    Any,
    /// Only those still prefilling.
    Prefill,
    /// Only those decoding.
    Decode,
}

/// One request's share of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scheduled {
    /// Slot of the request.
    pub slot: usize,
    /// Tokens computed this step (1 + k when decoding speculatively).
    pub tokens: u32,
    /// Tokens already computed before the step.
    pub prior: u32,
    /// A decode step (one new token, or 1 + k speculative).
    pub decode: bool,
    /// The step ends its prefill or decodes, so it samples.
    pub samples: bool,
}

/// Monotonic counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Preemptions.
    pub preemptions: u64,
    /// Prefix-cache lookups, in tokens.
    pub prefix_queries: u64,
    /// Prefix-cache hits, in tokens.
    pub prefix_hits: u64,
    /// Prompt tokens of requests whose prefill completed.
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub generation_tokens: u64,
    /// Finished requests.
    pub finished: u64,
}

/// The scheduler and its KV cache.
#[derive(Debug, Clone)]
pub struct Scheduler {
    cfg: SchedConfig,
    /// The block pool.
    pub kv: KvCache,
    /// Request slots; a removed request's slot is inactive until reused.
    reqs: Vec<Request>,
    free_slots: Vec<usize>,
    index: U64Map<usize>,
    waiting: VecDeque<usize>,
    running: Vec<usize>,
    /// Counters.
    pub counters: Counters,
    /// SGLang's `new_token_ratio`: the share of remaining output admission reserves.
    new_token_ratio: f64,
}

impl Scheduler {
    /// An empty scheduler over `kv`.
    pub fn new(cfg: SchedConfig, kv: KvCache) -> Scheduler {
        let new_token_ratio = match cfg.admission {
            Admission::Reserve { init, .. } => init,
            _ => 0.0,
        };
        Scheduler {
            new_token_ratio,
            cfg,
            kv,
            reqs: Vec::new(),
            free_slots: Vec::new(),
            index: U64Map::default(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// True when `id` is known (queued, running or staged).
    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    /// Store a request (not yet queued); returns its slot.
    pub fn add(&mut self, req: Request) -> usize {
        let id = req.id;
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.reqs[s] = req;
                s
            }
            None => {
                self.reqs.push(req);
                self.reqs.len() - 1
            }
        };
        self.index.insert(id, slot);
        slot
    }

    /// Put a stored request at the back of the waiting queue.
    pub fn enqueue(&mut self, slot: usize) {
        self.waiting.push_back(slot);
    }

    /// The request in `slot`.
    pub fn request(&self, slot: usize) -> Option<&Request> {
        self.reqs.get(slot).filter(|r| r.active)
    }

    /// Slot of request `id`.
    pub fn slot_of(&self, id: u64) -> Option<usize> {
        self.index.get(&id).copied()
    }

    /// Requests running.
    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    /// Requests waiting (queued or preempted).
    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Drop a request wherever it is, releasing its blocks.
    pub fn remove(&mut self, slot: usize) {
        self.waiting.retain(|&s| s != slot);
        self.running.retain(|&s| s != slot);
        if let Some(r) = self.reqs.get_mut(slot).filter(|r| r.active) {
            let r = std::mem::replace(r, Request::inactive());
            self.kv.free(&r.blocks);
            self.index.remove(&r.id);
            self.free_slots.push(slot);
        }
    }

    fn req(&mut self, slot: usize) -> &mut Request {
        &mut self.reqs[slot]
    }

    /// Decide the next step.
    pub fn schedule(&mut self) -> Vec<Scheduled> {
        if self.cfg.lpm && self.waiting.len() <= LPM_MAX_QUEUE {
            self.order_by_prefix_match();
        }
        if self.cfg.separate_prefill {
            return self.schedule_separate();
        }
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut out = Vec::new();
        let preempted = self.schedule_running(&mut budget, &mut out, Phase::Any);
        if !preempted {
            self.schedule_waiting(&mut budget, &mut out);
        }
        out
    }

    /// SGLang's event loop: a prefill batch (unfinished chunks first, then new requests)
    /// when there is one, else one decode step for every running request.
    fn schedule_separate(&mut self) -> Vec<Scheduled> {
        let mut budget = self.cfg.max_num_batched_tokens;
        let mut out = Vec::new();
        let preempted = self.schedule_running(&mut budget, &mut out, Phase::Prefill);
        if !preempted {
            self.schedule_waiting(&mut budget, &mut out);
        }
        if !out.is_empty() {
            return out;
        }
        let mut unbounded = u32::MAX;
        self.schedule_running(&mut unbounded, &mut out, Phase::Decode);
        if let Admission::Reserve { min, decay, .. } = self.cfg.admission
            && !out.is_empty()
        {
            self.new_token_ratio = (self.new_token_ratio - decay).max(min);
        }
        out
    }

    /// Stable sort of the waiting queue by cached prefix length, longest first.
    fn order_by_prefix_match(&mut self) {
        let slots: Vec<usize> = self.waiting.iter().copied().collect();
        let mut keyed: Vec<(usize, usize)> = slots
            .into_iter()
            .map(|slot| (self.prefix_hits(slot).len(), slot))
            .collect();
        keyed.sort_by_key(|k| std::cmp::Reverse(k.0));
        self.waiting = keyed.into_iter().map(|(_, slot)| slot).collect();
    }

    /// Blocks a request needs for its prompt and `max_tokens` (a reservation).
    fn reserved_blocks(&self, r: &Request, ratio: f64) -> usize {
        let bs = self.kv.block_size();
        let out = f64::from(r.max_tokens.saturating_sub(r.num_output)) * ratio;
        let total = r.num_tokens() + out.ceil() as u32;
        total.div_ceil(bs) as usize
    }

    /// Blocks the running requests may still claim under the admission rule.
    fn outstanding(&self, ratio: f64) -> usize {
        self.running
            .iter()
            .map(|&slot| {
                let r = &self.reqs[slot];
                self.reserved_blocks(r, ratio)
                    .saturating_sub(r.blocks.len())
            })
            .sum()
    }

    /// Whether the admission rule lets the request in `slot` (with `hits` cached blocks)
    /// join now.
    fn admissible(&self, slot: usize, hits: &[u32]) -> bool {
        let (ratio_running, ratio_new) = match self.cfg.admission {
            Admission::OnDemand => return true,
            Admission::NoEvict => (1.0, 1.0),
            Admission::Reserve { .. } => (self.new_token_ratio, 1.0),
        };
        let r = &self.reqs[slot];
        let need = self
            .reserved_blocks(r, ratio_new)
            .saturating_sub(hits.len());
        let free = self.kv.num_free().saturating_sub(self.kv.free_hits(hits));
        need + self.outstanding(ratio_running) <= free
    }

    fn new_tokens(&self, r: &Request, budget: u32) -> u32 {
        let mut n = r.num_tokens() - r.num_computed;
        let t = self.cfg.long_prefill_token_threshold;
        if t > 0 && n > t {
            n = t;
        }
        n.min(budget)
    }

    fn schedule_running(
        &mut self,
        budget: &mut u32,
        out: &mut Vec<Scheduled>,
        phase: Phase,
    ) -> bool {
        let mut preempted = false;
        let mut i = 0;
        while i < self.running.len() && *budget > 0 {
            let slot = self.running[i];
            let r = &self.reqs[slot];
            let n = self.new_tokens(r, *budget);
            let decode = r.num_computed + 1 == r.num_tokens() && r.num_output > 0;
            let wrong_phase = match phase {
                Phase::Any => false,
                Phase::Prefill => decode,
                Phase::Decode => !decode,
            };
            if n == 0 || wrong_phase {
                i += 1;
                continue;
            }
            let extra = if decode {
                self.cfg.spec_k.min(*budget - n)
            } else {
                0
            };
            let mut scheduled = false;
            loop {
                if self.allocate(slot, n + extra, &[]) {
                    scheduled = true;
                    break;
                }
                preempted = true;
                if let Admission::Reserve { init, .. } = self.cfg.admission {
                    self.new_token_ratio = init; // SGLang resets it after a retraction
                }
                match self.preempt_last() {
                    Some(victim) if victim != slot => {}
                    _ => break,
                }
            }
            if !scheduled {
                break;
            }
            out.push(self.scheduled(slot, n + extra, decode));
            *budget -= n + extra;
            i += 1;
        }
        preempted
    }

    fn scheduled(&mut self, slot: usize, tokens: u32, decode: bool) -> Scheduled {
        let r = self.req(slot);
        Scheduled {
            slot,
            tokens,
            prior: r.num_computed,
            decode,
            samples: r.num_computed + tokens >= r.num_tokens(),
        }
    }

    /// Preempt the most recently admitted running request (recompute); its slot.
    fn preempt_last(&mut self) -> Option<usize> {
        let slot = self.running.pop()?;
        let r = &mut self.reqs[slot];
        let blocks = std::mem::take(&mut r.blocks);
        r.num_computed = 0;
        r.cached_blocks = 0;
        r.preemptions += 1;
        self.kv.free(&blocks);
        self.waiting.push_front(slot);
        self.counters.preemptions += 1;
        Some(slot)
    }

    fn schedule_waiting(&mut self, budget: &mut u32, out: &mut Vec<Scheduled>) {
        while *budget > 0 && (self.running.len() as u32) < self.cfg.max_num_seqs {
            let Some(&slot) = self.waiting.front() else {
                break;
            };
            let hits = self.prefix_hits(slot);
            let bs = self.kv.block_size();
            let r = &self.reqs[slot];
            let computed = hits.len() as u32 * bs;
            let remaining = r.num_tokens() - computed;
            if !self.cfg.chunked_prefill && remaining > *budget {
                break;
            }
            if !self.admissible(slot, &hits) {
                break;
            }
            let mut n = remaining.min(*budget);
            let t = self.cfg.long_prefill_token_threshold;
            if t > 0 {
                n = n.min(t);
            }
            if !self.allocate_with_hits(slot, n, &hits) {
                break;
            }
            self.waiting.pop_front();
            self.running.push(slot);
            out.push(self.scheduled(slot, n, false));
            *budget -= n;
        }
    }

    /// Prefix-cache hit blocks for a waiting request with nothing computed.
    fn prefix_hits(&mut self, slot: usize) -> Vec<u32> {
        let bs = self.kv.block_size() as usize;
        let r = &mut self.reqs[slot];
        if r.num_computed > 0 {
            return Vec::new();
        }
        let len = r.num_tokens() as usize;
        let max_blocks = (len - 1) / bs;
        r.ensure_hashes(len / bs, bs);
        self.kv.lookup(&r.hashes, max_blocks)
    }

    fn allocate_with_hits(&mut self, slot: usize, n: u32, hits: &[u32]) -> bool {
        let bs = self.kv.block_size();
        if !self.allocate(slot, n, hits) {
            return false;
        }
        let caching = self.kv.caching();
        let r = &mut self.reqs[slot];
        let hit_tokens = hits.len() as u32 * bs;
        if !r.scheduled_once {
            r.cached_tokens = hit_tokens.min(r.prompt.len() as u32);
            r.scheduled_once = true;
        }
        if caching {
            self.counters.prefix_queries += u64::from(r.num_tokens());
            self.counters.prefix_hits += u64::from(hit_tokens);
        }
        true
    }

    /// Give `slot` the blocks for `n` more tokens (after taking `hits` as computed), and
    /// register the full blocks those tokens complete. False (and no change) when the pool
    /// is short.
    fn allocate(&mut self, slot: usize, n: u32, hits: &[u32]) -> bool {
        let bs = self.kv.block_size();
        let r = &mut self.reqs[slot];
        let computed = r.num_computed + hits.len() as u32 * bs;
        let need = (computed + n).div_ceil(bs) as usize;
        let new = need.saturating_sub(r.blocks.len() + hits.len());
        if !self.kv.can_allocate(new, hits) {
            return false;
        }
        self.kv.touch(hits);
        r.blocks.extend_from_slice(hits);
        r.num_computed = computed;
        r.cached_blocks = r.cached_blocks.max(hits.len());
        if let Some(fresh) = self.kv.allocate(new) {
            r.blocks.extend(fresh);
        }
        let full = ((computed + n).min(r.num_tokens()) / bs) as usize;
        r.ensure_hashes(full, bs as usize);
        for i in r.cached_blocks..full {
            self.kv.register(r.blocks[i], r.hashes[i]);
        }
        r.cached_blocks = r.cached_blocks.max(full);
        true
    }

    /// Account a finished step: advance computed tokens, emit tokens, finish requests.
    pub fn apply(&mut self, sched: &[Scheduled]) -> Vec<TokenOutput> {
        let mut outputs = Vec::new();
        let mut finished = Vec::new();
        for s in sched {
            if let Some(out) = self.advance(s) {
                if out.finish.is_some() {
                    finished.push(s.slot);
                }
                outputs.push(out);
            }
        }
        for slot in finished {
            self.remove(slot);
            self.counters.finished += 1;
        }
        outputs
    }

    fn advance(&mut self, s: &Scheduled) -> Option<TokenOutput> {
        let (k, rate, max_len) = (
            self.cfg.spec_k,
            self.cfg.spec_tokens_per_step,
            self.cfg.max_model_len,
        );
        let r = &mut self.reqs[s.slot];
        if !s.samples {
            r.num_computed += s.tokens;
            return None;
        }
        let mut emit = 1;
        if s.decode && k > 0 {
            r.spec_carry += rate;
            emit = (r.spec_carry.floor() as u32).clamp(1, k + 1);
            r.spec_carry -= f64::from(emit);
        }
        let emit = emit.min(r.target.saturating_sub(r.num_output)).max(1);
        if r.num_output == 0 {
            self.counters.prompt_tokens += r.prompt.len() as u64;
        }
        r.num_output += emit;
        r.num_computed = r.num_tokens() - 1;
        self.counters.generation_tokens += u64::from(emit);
        let finish = if r.num_output >= r.target {
            Some(r.target_reason)
        } else if r.num_tokens() >= max_len {
            Some(FinishReason::Length)
        } else {
            None
        };
        Some(TokenOutput {
            id: r.id,
            new_tokens: emit,
            total_tokens: r.num_output,
            prompt_tokens: r.prompt.len() as u32,
            cached_tokens: r.cached_tokens,
            finish,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(budget: u32, seqs: u32) -> SchedConfig {
        SchedConfig {
            max_num_seqs: seqs,
            max_num_batched_tokens: budget,
            long_prefill_token_threshold: 0,
            chunked_prefill: true,
            max_model_len: 1 << 20,
            spec_k: 0,
            spec_tokens_per_step: 1.0,
            admission: Admission::OnDemand,
            lpm: false,
            separate_prefill: false,
        }
    }

    fn sched(c: SchedConfig, blocks: usize, bs: u32, caching: bool) -> Scheduler {
        Scheduler::new(c, KvCache::new(blocks, bs, caching))
    }

    fn add(s: &mut Scheduler, id: u64, prompt: Vec<u32>, out: u32) -> usize {
        let slot = s.add(Request::new(id, prompt, out, FinishReason::Length));
        s.enqueue(slot);
        slot
    }

    fn tokens(n: u32, salt: u32) -> Vec<u32> {
        (0..n).map(|i| i * 31 + salt).collect()
    }

    #[test]
    fn chunked_prefill_splits_the_budget() {
        let mut s = sched(cfg(8, 16), 100, 4, false);
        let a = add(&mut s, 1, tokens(10, 0), 3);
        let b = add(&mut s, 2, tokens(5, 1), 3);
        // Step 1: A takes the whole budget (8 of 10); B waits.
        let st = s.schedule();
        assert_eq!(st.len(), 1);
        assert_eq!(
            (st[0].slot, st[0].tokens, st[0].prior, st[0].samples),
            (a, 8, 0, false)
        );
        assert!(
            s.apply(&st).is_empty(),
            "no token before the prefill completes"
        );
        // Step 2: A's last 2 prompt tokens (it samples), then B's 5 (6 budget left).
        let st = s.schedule();
        assert_eq!(
            st.iter()
                .map(|x| (x.slot, x.tokens, x.prior))
                .collect::<Vec<_>>(),
            vec![(a, 2, 8), (b, 5, 0)]
        );
        let out = s.apply(&st);
        assert_eq!(
            out.len(),
            2,
            "both prefills complete and emit their first token"
        );
        // Step 3: both decode one token each.
        let st = s.schedule();
        assert!(st.iter().all(|x| x.decode && x.tokens == 1));
        assert_eq!(s.counters.prompt_tokens, 15);
    }

    #[test]
    fn long_prefill_threshold_caps_each_chunk() {
        let mut c = cfg(100, 16);
        c.long_prefill_token_threshold = 6;
        let mut s = sched(c, 100, 4, false);
        add(&mut s, 1, tokens(20, 0), 1);
        add(&mut s, 2, tokens(20, 1), 1);
        let st = s.schedule();
        assert_eq!(st.iter().map(|x| x.tokens).collect::<Vec<_>>(), vec![6, 6]);
    }

    #[test]
    fn fcfs_head_of_line_blocking() {
        // 4 blocks of 4 tokens. A takes 3 blocks; B needs 3 and blocks C (1 block) behind it.
        let mut s = sched(cfg(100, 16), 4, 4, false);
        let a = add(&mut s, 1, tokens(10, 0), 5);
        add(&mut s, 2, tokens(10, 1), 5);
        add(&mut s, 3, tokens(2, 2), 5);
        let st = s.schedule();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].slot, a);
        assert_eq!((s.num_running(), s.num_waiting()), (1, 2));
        assert_eq!(s.kv.num_free(), 1);
    }

    #[test]
    fn recompute_preemption_of_the_latest_admitted() {
        // 4 blocks of 4 tokens; A and B have 7-token prompts (2 blocks each).
        let mut s = sched(cfg(100, 16), 4, 4, false);
        let a = add(&mut s, 1, tokens(7, 0), 10);
        let b = add(&mut s, 2, tokens(7, 1), 10);
        let st = s.schedule();
        assert_eq!(st.len(), 2);
        s.apply(&st); // both emit their first token: 8 tokens each, 7 computed
        let st = s.schedule(); // decode to 8 computed: still 2 blocks each
        assert_eq!(st.len(), 2);
        s.apply(&st);
        // Now A needs a 3rd block with none free: B (admitted last) is preempted.
        let st = s.schedule();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0].slot, a);
        assert_eq!(s.counters.preemptions, 1);
        let rb = s.request(b).unwrap();
        assert_eq!((rb.num_computed, rb.num_output, rb.blocks.len()), (0, 2, 0));
        assert_eq!((s.num_running(), s.num_waiting()), (1, 1));
        s.apply(&st);
        // B resumes by recomputing prompt + its 2 outputs (9 tokens) once blocks free up.
        s.remove(a);
        let st = s.schedule();
        assert_eq!((st[0].slot, st[0].tokens), (b, 9));
        let out = s.apply(&st);
        assert_eq!(out[0].total_tokens, 3, "recompute ends with the next token");
    }

    #[test]
    fn prefix_hits_are_block_aligned_and_keep_the_last_token() {
        let mut s = sched(cfg(1000, 16), 64, 16, true);
        let shared = tokens(40, 0);
        let a = add(&mut s, 1, shared.clone(), 1);
        let st = s.schedule();
        s.apply(&st);
        assert!(s.request(a).is_none(), "finished after one token");
        // Same 40-token prompt: hits ⌊39/16⌋ = 2 blocks = 32 tokens, even after A freed them.
        let b = add(&mut s, 2, shared.clone(), 1);
        let st = s.schedule();
        assert_eq!((st[0].slot, st[0].prior, st[0].tokens), (b, 32, 8));
        let out = s.apply(&st);
        assert_eq!(out[0].cached_tokens, 32);
        // Exactly 32 tokens: only ⌊31/16⌋ = 1 block may hit.
        add(&mut s, 3, shared[..32].to_vec(), 1);
        let st = s.schedule();
        assert_eq!(st[0].prior, 16);
        s.apply(&st);
        assert_eq!(s.counters.prefix_queries, 40 + 40 + 32);
        assert_eq!(s.counters.prefix_hits, 32 + 16);
    }

    #[test]
    fn prefix_caching_off_recomputes_everything() {
        let mut s = sched(cfg(1000, 16), 64, 16, false);
        add(&mut s, 1, tokens(40, 0), 1);
        let st = s.schedule();
        s.apply(&st);
        add(&mut s, 2, tokens(40, 0), 1);
        let st = s.schedule();
        assert_eq!(st[0].prior, 0);
        assert_eq!((s.counters.prefix_queries, s.counters.prefix_hits), (0, 0));
    }

    #[test]
    fn max_num_seqs_limits_admission_and_finish_frees_blocks() {
        let mut s = sched(cfg(1000, 2), 64, 16, false);
        for i in 0..3 {
            add(&mut s, i, tokens(5, i as u32), 1);
        }
        let st = s.schedule();
        assert_eq!(st.len(), 2);
        let out = s.apply(&st);
        assert!(out.iter().all(|o| o.finish == Some(FinishReason::Length)));
        assert_eq!(s.kv.num_free(), 64);
        assert_eq!(s.counters.finished, 2);
    }

    #[test]
    fn speculative_decode_emits_the_expected_rate() {
        let mut c = cfg(1000, 16);
        c.spec_k = 3;
        c.spec_tokens_per_step = 2.5;
        let mut s = sched(c, 64, 16, false);
        add(&mut s, 1, tokens(5, 0), 100);
        let st = s.schedule();
        assert_eq!(s.apply(&st)[0].new_tokens, 1, "a prefill emits one token");
        let mut emitted = 0;
        for _ in 0..4 {
            let st = s.schedule();
            assert_eq!(st[0].tokens, 4, "1 + k tokens verified");
            emitted += s.apply(&st)[0].new_tokens;
        }
        assert_eq!(emitted, 10, "2.5 tokens per step on average");
    }
}
