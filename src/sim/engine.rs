//! The simulated engine: boot (memory plan, validation) and one scheduler step at a time.
//! Both the HTTP server and the offline predictor drive this same state machine, so they
//! agree by construction.
//!
//! A caller submits requests as they arrive ([`SimEngine::submit_at`]), calls
//! [`SimEngine::step`] with the current simulated time, waits `duration_s` and then delivers
//! the step's `outputs`. Two effects are folded in so callers need not know about them:
//!
//! - Async scheduling (vLLM's default): the batch of step N+1 is scheduled while step N
//!   runs, so a request that arrives while a step is in flight is first scheduled one step
//!   later; the period is `max(t_gpu, t_cpu)` instead of their sum. Outputs are reported by
//!   the step at whose end they become visible.
//! - The API server ([`super::frontend`]): requests reach the engine after their intake
//!   cost, and when the server falls behind outputs arrive late and merged (`new_tokens >
//!   1`).
//!
//! Output lengths: `ignore_eos` → exactly `max_tokens`; otherwise a natural length drawn
//! from (seed, prompt tokens, `max_tokens`) — log-normal, median 180 tokens — clamped to
//! `[max(min_tokens, 1), max_tokens]`, finishing `Stop` below `max_tokens` and `Length` at it;
//! a stop string or stop token found in the text (`stop_at`, even with `ignore_eos`) ends
//! it sooner with `Stop`. Sequence `choice > 0` of an `n > 1` request draws its own length
//! and text seed ([`crate::tokenize::choice_seed`]).
//! Generated token `i` of request `id` has id [`super::scheduler::output_token_id`]`(id, i)`
//! (its KV blocks are cached like prompt blocks).
//!
//! Noise: `noise_pct` draws a run-level speed factor ~ N(1, pct/100) (clamped to
//! [0.5, 1.5]) at boot and a per-step jitter with a quarter of that spread; 0 makes timing
//! fully deterministic. Everything random comes from ChaCha8 seeded by `seed`.

use std::hash::Hasher;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal};
use serde::Serialize;
use twox_hash::XxHash64;

pub use super::interface::{
    BootError, FinishReason, SimRequest, SimStats, StepResult, TokenOutput,
};

use super::cudagraph::CudaGraphs;
use super::frontend::Frontend;
use super::kv::KvCache;
use super::memory::{GIB, MemoryInputs, MemoryPlan};
use super::model::ModelShape;
use super::policy::Policy;
use super::quant::{self, Precision};
use super::roofline::{BatchShape, StepModel};
use super::scheduler::{Request, SchedConfig, Scheduled, Scheduler};
use super::spec::SpecDecode;
use super::{startup, validate};
use crate::engine::vllm::VllmConfig;
use crate::hardware::GpuSpec;

/// Everything a simulated engine is built from.
#[derive(Debug, Clone)]
pub struct SimSetup {
    /// Model architecture.
    pub model: ModelShape,
    /// GPU (one of `tensor_parallel_size` identical GPUs).
    pub gpu: &'static GpuSpec,
    /// Resolved vLLM configuration.
    pub config: VllmConfig,
    /// Seed for everything random (noise, natural stop lengths).
    pub seed: u64,
    /// Run-to-run noise, percent (0 = deterministic timing).
    pub noise_pct: f64,
    /// The vLLM release simulated (its memory-profiling rules differ).
    pub vllm: crate::engine::vllm::flags::Version,
    /// The framework simulated: vLLM by default, or SGLang's or TensorRT-LLM's memory,
    /// admission and batching rules ([`super::policy`]).
    pub policy: Policy,
}

/// What booting reports (the values vLLM prints in its startup log).
#[derive(Debug, Clone, Serialize)]
pub struct BootInfo {
    /// Weight memory per GPU, GiB.
    pub weights_gib: f64,
    /// Simulated model loading time, s.
    pub load_seconds: f64,
    /// Memory left for the KV cache per GPU, GiB.
    pub kv_cache_gib: f64,
    /// KV cache capacity in tokens.
    pub kv_cache_tokens: u64,
    /// Context limit in force.
    pub max_model_len: u32,
    /// KV capacity ÷ max_model_len (vLLM's "Maximum concurrency ... Nx").
    pub max_concurrency: f64,
    /// CUDA-graph capture sizes (empty when eager).
    pub cudagraph_capture_sizes: Vec<u32>,
    /// Simulated graph capture / compile time, s.
    pub graph_capture_seconds: f64,
    /// Total simulated startup time, s (before the server accepts connections).
    pub startup_seconds: f64,
    /// KV blocks per GPU (vLLM's `num_gpu_blocks`).
    pub num_gpu_blocks: u64,
    /// vLLM's "Estimated CUDA graph memory", GiB (0 when eager).
    pub cudagraph_memory_gib: f64,
    /// Run-level speed factor drawn from the seed (1.0 without noise); step times are
    /// multiplied by it.
    pub speed_factor: f64,
}

/// The simulated engine.
#[derive(Debug)]
pub struct SimEngine {
    max_model_len: u32,
    seed: u64,
    async_sched: bool,
    framework: crate::recipe::EngineKind,
    step_factor: f64,
    max_prompt_tokens: Option<u32>,
    model: StepModel,
    sched: Scheduler,
    frontend: Frontend,
    rng: ChaCha8Rng,
    jitter: Option<Normal<f64>>,
    speed: f64,
    clock: f64,
    steps: u64,
    busy: bool,
    info: BootInfo,
    trace: super::profile::TraceModel,
    last_step: Option<(BatchShape, f64)>,
}

/// Median natural output length when `ignore_eos` is off, tokens.
pub const NATURAL_MEDIAN_TOKENS: f64 = 180.0;
/// Log-normal spread of natural output lengths.
pub const NATURAL_SIGMA: f64 = 0.9;

impl SimEngine {
    /// Plan memory, validate the config, and build the engine.
    pub fn boot(setup: SimSetup) -> Result<(SimEngine, BootInfo), BootError> {
        let SimSetup {
            model,
            gpu,
            config,
            seed,
            noise_pct,
            vllm,
            policy,
        } = setup;
        let max_len = validate::max_model_len(&model, &config)?;
        if policy.is_vllm() {
            validate::check(&model, &config, max_len)?;
        } else {
            validate::check_common(&model, &config)?;
        }
        let prec = quant::resolve(&model, &config, gpu)?;
        let spec = SpecDecode::from_config(config.speculative_config.as_ref(), model.num_layers)
            .map_err(BootError::Config)?;
        let step = StepModel::new(&model, gpu, &prec, &config, spec.clone());
        let trace = super::profile::TraceModel::new(&model, gpu, &config, policy.framework);
        let mut inputs = memory_inputs(&model, gpu, &config, &prec, &step, max_len);
        inputs.graphs_in_budget = vllm >= super::memory::GRAPHS_IN_BUDGET_SINCE;
        inputs.rule = policy.memory;
        let plan = MemoryPlan::compute(&inputs)?;
        let max_len = pool_limited(&policy, max_len, plan.kv_tokens);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (speed, jitter) = noise(&mut rng, noise_pct);
        let info = boot_info(&plan, step.graphs(), &model, &config, max_len, speed);
        let kv = KvCache::new(
            plan.num_blocks as usize,
            config.block_size,
            config.enable_prefix_caching,
        );
        let engine = SimEngine {
            max_model_len: max_len,
            seed,
            async_sched: config.async_scheduling,
            framework: policy.framework,
            step_factor: policy.step_factor,
            max_prompt_tokens: policy.max_prompt_tokens,
            model: step,
            sched: Scheduler::new(sched_config(&config, max_len, spec.as_ref(), &policy), kv),
            frontend: if policy.api_server {
                Frontend::served()
            } else {
                Frontend::offline()
            },
            rng,
            jitter,
            speed,
            clock: 0.0,
            steps: 0,
            busy: false,
            info: info.clone(),
            trace,
            last_step: None,
        };
        Ok((engine, info))
    }

    /// Context limit in force.
    pub fn max_model_len(&self) -> u32 {
        self.max_model_len
    }

    /// What booting reported.
    pub fn boot_info(&self) -> &BootInfo {
        &self.info
    }

    /// The roofline that prices each step.
    pub fn step_model(&self) -> &StepModel {
        &self.model
    }

    /// What the profiler needs to draw this engine's steps as kernels.
    pub fn trace_model(&self) -> &super::profile::TraceModel {
        &self.trace
    }

    /// What the last [`SimEngine::step`] computed and the factor applied to the roofline's
    /// times (run speed, jitter, framework); `None` when it was idle. For the profiler.
    pub fn last_step(&self) -> Option<(BatchShape, f64)> {
        self.last_step
    }

    /// Simulated time at the end of the last step.
    pub fn clock(&self) -> f64 {
        self.clock
    }

    /// Queue a request. Errors carry vLLM's 400 message (e.g. prompt longer than the
    /// context limit). Same as [`SimEngine::submit_at`] at the end of the last step; a
    /// caller with its own clock (a server after an idle spell) should use `submit_at`.
    pub fn submit(&mut self, req: SimRequest) -> Result<(), String> {
        self.submit_at(req, self.clock)
    }

    /// Queue a request that arrived at simulated time `now` (the API server's intake then
    /// decides when the engine sees it). Sequences `choice > 0` of an `n > 1` request are
    /// submitted right after sequence 0 and share its intake.
    pub fn submit_at(&mut self, req: SimRequest, now: f64) -> Result<(), String> {
        let req = self.fit_to_context(req)?;
        self.validate_request(&req)?;
        let (target, reason) = output_target(self.seed, &req);
        let (prompt_len, choice) = (req.prompt.len(), req.choice);
        let mut r = Request::new(req.id, req.prompt, target, reason);
        r.max_tokens = req.max_tokens.max(target);
        r.text_seed = crate::tokenize::choice_seed(r.text_seed, req.choice);
        let slot = self.sched.add(r);
        let lag = u64::from(self.async_sched && self.busy);
        if choice == 0 {
            self.frontend
                .submit(slot, self.steps + lag, now, prompt_len);
        } else {
            self.frontend.submit_sibling(slot, self.steps + lag, now);
        }
        Ok(())
    }

    fn validate_request(&self, req: &SimRequest) -> Result<(), String> {
        if self.sched.contains(req.id) {
            return Err(format!("Request id {} already running.", req.id));
        }
        if req.prompt.is_empty() {
            return Err("The decoder prompt cannot be empty".into());
        }
        if req.max_tokens == 0 {
            return Err("max_tokens must be at least 1, got 0.".into());
        }
        if req.min_tokens > req.max_tokens {
            return Err(format!(
                "min_tokens must be less than or equal to max_tokens={}, got {}.",
                req.max_tokens, req.min_tokens
            ));
        }
        if let Some(max) = self.max_prompt_tokens
            && req.prompt.len() as u64 > u64::from(max)
        {
            // TensorRT-LLM without chunked prefill (`executor` request validation).
            return Err(format!(
                "The sum of prompt length ({}.0), query length (0) should not exceed max_num_tokens ({max})",
                req.prompt.len()
            ));
        }
        let (p, m, n) = (
            req.prompt.len() as u64,
            u64::from(req.max_tokens),
            u64::from(self.max_model_len),
        );
        if p + m > n {
            return Err(context_error(self.framework, p, m, n));
        }
        Ok(())
    }

    /// TensorRT-LLM's PyTorch backend lowers a `max_tokens` the context cannot hold to what
    /// it can (`base_worker.py::_deduce_max_tokens`), refusing only a prompt that leaves no
    /// room; the others refuse the request as it is.
    fn fit_to_context(&self, mut req: SimRequest) -> Result<SimRequest, String> {
        if self.framework != crate::recipe::EngineKind::Trtllm {
            return Ok(req);
        }
        let room = i64::from(self.max_model_len) - req.prompt.len() as i64;
        if room <= 0 {
            return Err(format!(
                "`default_max_tokens` ({room}) must be greater than 0, `default_max_tokens` \
                 ({room}) = max_seq_len ({}) - `splited_prompt_len` ({}) - `query_token_len` (0)",
                self.max_model_len,
                req.prompt.len()
            ));
        }
        req.max_tokens = req.max_tokens.min(room as u32);
        req.min_tokens = req.min_tokens.min(req.max_tokens);
        Ok(req)
    }

    /// Drop a request (client went away).
    pub fn abort(&mut self, id: u64) {
        if let Some(slot) = self.sched.slot_of(id) {
            self.frontend.drop_request(slot, id);
            self.sched.remove(slot);
        }
    }

    /// True when nothing is running, waiting or still being delivered.
    pub fn is_idle(&self) -> bool {
        self.sched.num_running() == 0 && self.sched.num_waiting() == 0 && self.frontend.is_empty()
    }

    /// Run one scheduler step starting at simulated time `now`. With nothing to compute
    /// the result carries no tokens and a duration up to the next event (a request the API
    /// server finishes taking in, or a delayed output), or 0 when idle.
    pub fn step(&mut self, now: f64) -> StepResult {
        let start = now.max(self.clock);
        self.last_step = None;
        self.admit(start);
        let sched = self.sched.schedule();
        if sched.is_empty() {
            return self.idle_step(start);
        }
        let shape = batch_shape(&sched);
        let jitter = self.jitter_factor();
        let period = self.model.step(&shape).period * self.speed * jitter;
        let period = period * self.step_factor;
        self.last_step = Some((shape, self.speed * jitter * self.step_factor));
        let end = start + period;
        let outputs = self.sched.apply(&sched);
        self.frontend.produce(end, outputs);
        self.finish_step(end, true);
        StepResult {
            duration_s: period,
            outputs: self.frontend.release(end),
            scheduled_tokens: shape.tokens,
        }
    }

    fn idle_step(&mut self, start: f64) -> StepResult {
        let next = [
            self.frontend.next_intake(start),
            self.frontend.next_delivery(),
        ]
        .into_iter()
        .flatten()
        .fold(f64::INFINITY, f64::min);
        let duration = if next.is_finite() {
            (next - start).max(0.0)
        } else {
            0.0
        };
        let end = start + duration;
        self.finish_step(end, false);
        StepResult {
            duration_s: duration,
            outputs: self.frontend.release(end),
            scheduled_tokens: 0,
        }
    }

    fn finish_step(&mut self, end: f64, busy: bool) {
        self.clock = end;
        self.steps += 1;
        self.busy = busy;
    }

    /// Queue arrivals the API server has handed over and the scheduler can already see.
    fn admit(&mut self, now: f64) {
        self.frontend.progress(now);
        while let Some(slot) = self.frontend.pop_ready(self.steps) {
            self.sched.enqueue(slot);
        }
    }

    fn jitter_factor(&mut self) -> f64 {
        match &self.jitter {
            Some(d) => (1.0 + d.sample(&mut self.rng)).clamp(0.8, 1.2),
            None => 1.0,
        }
    }

    /// Drop every cached prefix (vLLM's dev endpoint `/reset_prefix_cache`).
    pub fn reset_prefix_cache(&mut self) {
        self.sched.kv.reset_prefix_cache();
    }

    /// Counters for `/metrics`.
    pub fn stats(&self) -> SimStats {
        let c = &self.sched.counters;
        SimStats {
            running: self.sched.num_running(),
            waiting: self.sched.num_waiting() + self.frontend.intake_len(),
            kv_usage: self.sched.kv.usage(),
            prefix_cache_queries: c.prefix_queries,
            prefix_cache_hits: c.prefix_hits,
            preemptions: c.preemptions,
            prompt_tokens: c.prompt_tokens,
            generation_tokens: c.generation_tokens,
            requests_finished: c.finished,
        }
    }
}

/// Summarise a schedule for the roofline.
fn batch_shape(sched: &[Scheduled]) -> BatchShape {
    let first = sched.first().map_or(0, |s| s.tokens);
    let mut b = BatchShape {
        uniform_decode: true,
        ..BatchShape::default()
    };
    for s in sched {
        b.tokens += s.tokens;
        b.seqs += 1;
        b.sampled += u32::from(s.samples);
        if s.decode {
            b.decode_seqs += 1;
            b.decode_context += u64::from(s.prior);
        } else {
            let (n, p) = (f64::from(s.tokens), f64::from(s.prior));
            b.prefill_context += u64::from(s.prior);
            b.prefill_attn_work += n * (p + n / 2.0);
        }
        b.uniform_decode &= s.decode && s.tokens == first;
    }
    b
}

/// Output length and finish reason of a request (see the module docs), then its stop
/// string or stop token (`stop_at`) if that comes first.
pub fn output_target(seed: u64, req: &SimRequest) -> (u32, FinishReason) {
    let (n, reason) = natural_target(seed, req);
    match req.stop_at {
        Some(at) if at >= 1 && at <= n => (at, FinishReason::Stop),
        _ => (n, reason),
    }
}

fn natural_target(seed: u64, req: &SimRequest) -> (u32, FinishReason) {
    if req.ignore_eos {
        return (req.max_tokens, FinishReason::Length);
    }
    let mut h = XxHash64::with_seed(seed);
    for t in &req.prompt {
        h.write_u32(*t);
    }
    h.write_u32(req.max_tokens);
    if req.choice > 0 {
        // Each of a request's n sequences ends at its own length; the first keeps the
        // length a request without `n` has.
        h.write_u32(req.choice);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(h.finish());
    let natural = LogNormal::new(NATURAL_MEDIAN_TOKENS.ln(), NATURAL_SIGMA)
        .map_or(NATURAL_MEDIAN_TOKENS, |d| d.sample(&mut rng))
        .round() as u32;
    let n = natural.max(req.min_tokens).max(1);
    if n >= req.max_tokens {
        (req.max_tokens, FinishReason::Length)
    } else {
        (n, FinishReason::Stop)
    }
}

fn noise(rng: &mut ChaCha8Rng, pct: f64) -> (f64, Option<Normal<f64>>) {
    if !(pct > 0.0 && pct.is_finite()) {
        return (1.0, None);
    }
    let sd = pct / 100.0;
    let speed = Normal::new(1.0, sd)
        .map_or(1.0, |d| d.sample(rng))
        .clamp(0.5, 1.5);
    (speed, Normal::new(0.0, sd / 4.0).ok())
}

/// The 400 message for a request of `p` prompt and `m` output tokens over the context `n`,
/// in `framework`'s words (SGLang: `tokenizer_manager.py::_validate_one_request`).
fn context_error(framework: crate::recipe::EngineKind, p: u64, m: u64, n: u64) -> String {
    match framework {
        crate::recipe::EngineKind::Sglang if p >= n => format!(
            "The input ({p} tokens) is longer than the model's context length ({n} tokens)."
        ),
        crate::recipe::EngineKind::Sglang => format!(
            "Requested token count exceeds the model's maximum context length of {n} tokens. \
             You requested a total of {} tokens: {p} tokens from the input messages and {m} \
             tokens for the completion. Please reduce the number of tokens in the input \
             messages or the completion to fit within the limit.",
            p + m
        ),
        _ => format!(
            "This model's maximum context length is {n} tokens. However, you requested {m} \
             output tokens and your prompt contains {p} input tokens, for a total of {} \
             tokens. Please reduce the length of the input prompt or the number of requested \
             output tokens.",
            p + m
        ),
    }
}

/// The longest sequence the engine serves once its KV pool is sized. vLLM refuses to start
/// when one full-context request does not fit (the memory plan's error); SGLang and
/// TensorRT-LLM start anyway and cap it at the pool (SGLang's scheduler: `max_req_input_len
/// = min(context_len, max_total_num_tokens) - 1`; TensorRT-LLM: "Adjusted max_seq_len to …"),
/// refusing longer requests.
fn pool_limited(policy: &Policy, max_len: u32, pool_tokens: u64) -> u32 {
    if policy.is_vllm() {
        return max_len;
    }
    u64::from(max_len).min(pool_tokens.max(1)) as u32
}

fn sched_config(
    c: &VllmConfig,
    max_len: u32,
    spec: Option<&SpecDecode>,
    policy: &Policy,
) -> SchedConfig {
    SchedConfig {
        admission: policy.admission,
        lpm: policy.lpm,
        separate_prefill: policy.separate_prefill,
        max_num_seqs: c.max_num_seqs,
        max_num_batched_tokens: c.max_num_batched_tokens,
        long_prefill_token_threshold: c.long_prefill_token_threshold,
        chunked_prefill: c.enable_chunked_prefill,
        max_model_len: max_len,
        spec_k: spec.map_or(0, |s| s.k),
        spec_tokens_per_step: spec.map_or(1.0, SpecDecode::tokens_per_step),
    }
}

fn memory_inputs<'a>(
    m: &ModelShape,
    gpu: &'a GpuSpec,
    c: &VllmConfig,
    prec: &Precision,
    step: &StepModel,
    max_len: u32,
) -> MemoryInputs<'a> {
    let tp = f64::from(c.tensor_parallel_size.max(1));
    let qkv = f64::from(m.num_heads + 2 * m.num_kv_heads) * f64::from(m.head_dim);
    let mlp = m.moe.as_ref().map_or(m.intermediate_size as f64, |x| {
        (f64::from(x.top_k) * x.expert_intermediate as f64).max(m.intermediate_size as f64)
    });
    MemoryInputs {
        gpu,
        utilization: c.gpu_memory_utilization,
        weight_bytes: m.weight_bytes(prec.method.as_deref()),
        shards: c.tensor_parallel_size.max(1) * c.pipeline_parallel_size.max(1),
        layers: m.num_layers,
        hidden: m.hidden_size,
        activation_width: (qkv + 3.0 * mlp) / tp,
        vocab: m.vocab_size,
        batched_tokens: c.max_num_batched_tokens,
        max_num_seqs: c.max_num_seqs,
        act_bytes: prec.act_bytes,
        graph_sizes: step.graphs().sizes.len(),
        graphs_in_budget: true,
        rule: super::policy::MemoryRule::Vllm,
        kv_bytes_per_token: step.kv_bytes_per_token() / f64::from(c.pipeline_parallel_size.max(1)),
        block_size: c.block_size,
        max_model_len: max_len,
    }
}

fn boot_info(
    plan: &MemoryPlan,
    graphs: &CudaGraphs,
    m: &ModelShape,
    c: &VllmConfig,
    max_len: u32,
    speed: f64,
) -> BootInfo {
    let parallel = c.tensor_parallel_size * c.pipeline_parallel_size > 1;
    let s = startup::estimate(
        plan.weights,
        m.num_layers,
        graphs,
        c.optimization_level,
        parallel,
    );
    BootInfo {
        weights_gib: plan.weights_gib(),
        load_seconds: s.load,
        kv_cache_gib: plan.kv_gib(),
        kv_cache_tokens: plan.kv_tokens,
        max_model_len: max_len,
        max_concurrency: plan.kv_tokens as f64 / f64::from(max_len.max(1)),
        cudagraph_capture_sizes: graphs.sizes.clone(),
        graph_capture_seconds: s.graphs,
        startup_seconds: s.total,
        num_gpu_blocks: plan.num_blocks,
        cudagraph_memory_gib: plan.graphs / GIB,
        speed_factor: speed,
    }
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
