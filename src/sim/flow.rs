//! One accepted generation request on its way out: the engine's token outputs for each of
//! its `n` sequences become vLLM's response, whole or streamed.
//!
//! Each sequence's text is [`crate::tokenize::perturbed_piece`] of its seed; its stop
//! ([`super::stop`]) was found before submission, so the engine ends it there and the
//! text is cut on its last output. Streaming follows vLLM's serving code: one chunk per
//! engine output of one sequence (`index` = the sequence), interleaved as the engine
//! produces them; chat opens with one role chunk per sequence (and one `echo` chunk each);
//! completions' `echo` prepends the prompt to a sequence's first chunk. Usage sums the
//! sequences' tokens (the prompt once). Dropping the response (client gone) aborts every
//! sequence still running.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::mpsc::UnboundedReceiver;

use super::driver::{Driver, ENGINE_DEAD, Event};
use super::interface::{FinishReason, TokenOutput};
use super::logprobs::{self, Scored};
use super::reply::{engine_dead, json_response};
use super::request::GenRequest;
use super::sse::{self, ChoiceOut, Ctx, Logprobs, Usage};
use super::stop::{StopHit, StopReason, TextStream};
use crate::tokenize::perturbed_piece;

/// Aborts the engine requests still running when the response is dropped before it
/// finished (the client disconnected).
#[derive(Debug)]
pub struct AbortGuard {
    driver: Driver,
    ids: Vec<u64>,
    armed: bool,
}

impl AbortGuard {
    /// Guard the engine requests `ids`.
    pub fn new(driver: Driver, ids: Vec<u64>) -> AbortGuard {
        AbortGuard {
            driver,
            ids,
            armed: true,
        }
    }

    /// Nothing left to abort.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        if self.armed {
            for id in &self.ids {
                self.driver.abort(*id);
            }
        }
    }
}

/// One of the request's sequences, as submitted.
#[derive(Debug, Clone)]
pub struct Sequence {
    /// Engine request id.
    pub id: u64,
    /// Seed of its text ([`crate::tokenize::choice_seed`]).
    pub seed: u64,
    /// Where its stop string or stop token ends it, if within `max_tokens`.
    pub stop: Option<StopHit>,
}

/// The prompt as `echo` returns it.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    /// Completions: the prompt text; chat: the last message, when it is the assistant's.
    pub text: String,
    /// Completions: the prompt's token pieces (for its logprobs).
    pub pieces: Vec<String>,
    /// Seed of the prompt's simulated logprobs (the same for every sequence).
    pub salt: u64,
}

/// What the response is built from, besides the engine's outputs.
#[derive(Debug)]
pub struct Setup {
    /// Shared chunk fields.
    pub ctx: Ctx,
    /// The request.
    pub req: GenRequest,
    /// Prompt tokens.
    pub prompt_len: u32,
    /// Share of generated words the quantization perturbs.
    pub perturb_rate: f64,
    /// `Some(0)` with `--enable-prompt-tokens-details` (set from the first output).
    pub cached: Option<u32>,
    /// What `echo` returns.
    pub echo: Option<Echo>,
    /// Characters a stream holds back while stop strings may still match.
    pub hold: usize,
    /// `--sim-garbage-after N`.
    pub garbage_after: Option<u32>,
}

struct Seq {
    index: u32,
    spec: Sequence,
    text: TextStream,
    emitted: u32,
    offset: usize,
    echoed: bool,
    scored: Vec<Scored>,
    finish: Option<(&'static str, Option<StopReason>)>,
}

/// A response under way.
pub struct Flow {
    rx: UnboundedReceiver<Event>,
    guard: AbortGuard,
    setup: Setup,
    seqs: Vec<Seq>,
}

fn finish_str(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Length => "length",
        FinishReason::Stop => "stop",
    }
}

impl Seq {
    /// Take one engine output: the new tokens' text (none with `echo` and `max_tokens: 0`)
    /// and logprobs; on the last output, the stop cut. Returns the new tokens' logprobs.
    fn take(&mut self, out: &TokenOutput, s: &Setup) -> Vec<Scored> {
        let from = self.emitted;
        self.emitted += out.new_tokens;
        let mut scored = Vec::new();
        if !s.req.echo_only() {
            for i in from..self.emitted {
                let p = perturbed_piece(self.spec.seed, i, s.perturb_rate);
                self.text.push(p);
                if let Some(k) = s.req.sampling.logprobs {
                    scored.push(logprobs::score(p, self.spec.seed, i, k));
                }
            }
        }
        if let Some(f) = out.finish {
            self.finish = Some(self.finished(f));
        }
        scored
    }

    fn finished(&mut self, f: FinishReason) -> (&'static str, Option<StopReason>) {
        match &self.spec.stop {
            Some(hit) if f == FinishReason::Stop && hit.tokens == self.emitted => {
                self.text.truncate(hit.keep);
                ("stop", Some(hit.reason.clone()))
            }
            _ => (finish_str(f), None),
        }
    }
}

/// Logprobs of an echoed prompt: none for its first token.
fn echo_scored(echo: &Echo, k: u32) -> Vec<Scored> {
    echo.pieces
        .iter()
        .enumerate()
        .map(|(i, p)| match i {
            0 => logprobs::unscored(p),
            _ => logprobs::score(p, echo.salt, i as u32, k),
        })
        .collect()
}

impl Flow {
    /// A response for `sequences` (in `index` order), whose events arrive on `rx`.
    pub fn new(
        rx: UnboundedReceiver<Event>,
        guard: AbortGuard,
        setup: Setup,
        sequences: Vec<Sequence>,
    ) -> Flow {
        let seqs = (0u32..)
            .zip(sequences)
            .map(|(index, spec)| Seq {
                index,
                spec,
                text: TextStream::new(setup.hold),
                emitted: 0,
                offset: 0,
                echoed: false,
                scored: Vec::new(),
                finish: None,
            })
            .collect();
        Flow {
            rx,
            guard,
            setup,
            seqs,
        }
    }

    fn emitted(&self) -> u32 {
        self.seqs.iter().map(|q| q.emitted).sum()
    }

    fn usage(&self) -> Usage {
        Usage::new(self.setup.prompt_len, self.emitted(), self.setup.cached)
    }

    fn done(&self) -> bool {
        self.seqs.iter().all(|q| q.finish.is_some())
    }

    /// The sequence an output belongs to, noting the prefix-cache hit of the first output.
    fn seq_of(&mut self, out: &TokenOutput) -> Option<usize> {
        if self.emitted() == 0 && self.setup.cached.is_some() {
            self.setup.cached = Some(out.cached_tokens);
        }
        self.seqs.iter().position(|q| q.spec.id == out.id)
    }

    fn logprobs(&self, scored: &[Scored], offset: usize) -> Option<Logprobs> {
        let k = self.setup.req.sampling.logprobs?;
        Some(if self.setup.req.chat {
            Logprobs::Chat(logprobs::chat(scored, k))
        } else {
            Logprobs::Completion(logprobs::completion(scored, offset))
        })
    }

    /// Completions' `echo` of the prompt, once per sequence (text and its logprobs).
    fn take_echo(&mut self, i: usize) -> (String, Vec<Scored>) {
        let s = &self.setup;
        match &s.echo {
            Some(e) if !s.req.chat && !self.seqs[i].echoed => {
                self.seqs[i].echoed = true;
                let k = s.req.sampling.logprobs;
                (e.text.clone(), k.map_or(Vec::new(), |k| echo_scored(e, k)))
            }
            _ => (String::new(), Vec::new()),
        }
    }

    /// Non-streaming: wait for every sequence to end, answer once.
    pub async fn collect(&mut self) -> Response {
        while let Some(ev) = self.rx.recv().await {
            match ev {
                Event::Tokens(out) => {
                    let Some(i) = self.seq_of(&out) else { continue };
                    let scored = self.seqs[i].take(&out, &self.setup);
                    self.seqs[i].scored.extend(scored);
                    if self.done() {
                        self.guard.disarm();
                        return json_response(StatusCode::OK, self.full_body());
                    }
                }
                Event::Died(_) => break,
                Event::Accepted | Event::Rejected(_) => {}
            }
        }
        self.guard.disarm();
        engine_dead()
    }

    fn full_body(&mut self) -> String {
        let mut texts = Vec::with_capacity(self.seqs.len());
        let mut lps = Vec::with_capacity(self.seqs.len());
        for i in 0..self.seqs.len() {
            let (mut text, mut scored) = self.take_echo(i);
            if self.setup.req.chat
                && let Some(e) = &self.setup.echo
            {
                text = e.text.clone();
            }
            text.push_str(self.seqs[i].text.text());
            scored.append(&mut self.seqs[i].scored);
            lps.push(self.logprobs(&scored, 0));
            texts.push(text);
        }
        let choices: Vec<ChoiceOut<'_>> = self
            .seqs
            .iter()
            .zip(texts.iter().zip(&lps))
            .map(|(q, (text, lp))| ChoiceOut {
                index: q.index,
                text,
                logprobs: lp.as_ref(),
                finish: q.finish.as_ref().map(|f| f.0),
                stop_reason: q.finish.as_ref().and_then(|f| f.1.as_ref()),
            })
            .collect();
        self.setup.ctx.full_response(&choices, self.usage())
    }

    /// The first frames: chat's role chunk for every sequence, then its `echo` chunks.
    fn opening_frames(&self) -> String {
        if !self.setup.req.chat {
            return String::new();
        }
        let usage = self.setup.req.continuous_usage.then(|| self.usage());
        let mut frames = String::new();
        for q in &self.seqs {
            frames.push_str(&sse::frame(&self.setup.ctx.role_chunk(q.index, usage)));
        }
        if let Some(e) = self.setup.echo.as_ref().filter(|e| !e.text.is_empty()) {
            for q in &self.seqs {
                let chunk = self.setup.ctx.echo_chunk(q.index, &e.text, usage);
                frames.push_str(&sse::frame(&chunk));
            }
        }
        frames
    }

    /// Frames for every engine event ready now (waiting for the first), so outputs that
    /// piled up go out in one write; `true` when the stream is over.
    async fn next_frames(&mut self) -> (String, bool) {
        let first = self.rx.recv().await;
        let (mut frames, mut over) = self.frames_for(first);
        while !over {
            let Ok(ev) = self.rx.try_recv() else { break };
            let (more, end) = self.frames_for(Some(ev));
            frames.push_str(&more);
            over = end;
        }
        (frames, over)
    }

    fn frames_for(&mut self, ev: Option<Event>) -> (String, bool) {
        match ev {
            Some(Event::Tokens(out)) => self.token_frames(&out),
            Some(Event::Died(msg)) => (self.error_frames(&msg), true),
            Some(_) => (String::new(), false),
            None => (self.error_frames(ENGINE_DEAD), true),
        }
    }

    fn token_frames(&mut self, out: &TokenOutput) -> (String, bool) {
        let Some(i) = self.seq_of(out) else {
            return (String::new(), false);
        };
        let new = self.seqs[i].take(out, &self.setup);
        let chunk = self.chunk(i, new);
        if self.setup.garbage_after.is_some_and(|n| self.emitted() > n) {
            // Half a chunk, then the connection ends: no valid JSON, no [DONE].
            return (sse::frame(&chunk[..chunk.len() / 2]), true);
        }
        let mut frames = sse::frame(&chunk);
        let over = self.done();
        if over {
            self.guard.disarm();
            if self.setup.req.include_usage {
                let usage = self.setup.ctx.usage_chunk(self.usage());
                frames.push_str(&sse::frame(&usage));
            }
            frames.push_str(sse::DONE);
        }
        (frames, over)
    }

    /// The chunk of sequence `i`'s latest output (`new`: its tokens' logprobs).
    fn chunk(&mut self, i: usize, new: Vec<Scored>) -> String {
        let (mut text, mut scored) = self.take_echo(i);
        scored.extend(new);
        let q = &mut self.seqs[i];
        text.push_str(&q.text.delta(q.finish.is_some()));
        let offset = q.offset;
        q.offset += text.chars().count();
        let lp = self.logprobs(&scored, offset);
        let q = &self.seqs[i];
        let usage = self
            .setup
            .req
            .continuous_usage
            .then(|| Usage::new(self.setup.prompt_len, q.emitted, self.setup.cached));
        let c = ChoiceOut {
            index: q.index,
            text: &text,
            logprobs: lp.as_ref(),
            finish: q.finish.as_ref().map(|f| f.0),
            stop_reason: q.finish.as_ref().and_then(|f| f.1.as_ref()),
        };
        self.setup.ctx.token_chunk(c, usage)
    }

    fn error_frames(&mut self, msg: &str) -> String {
        self.guard.disarm();
        let err = sse::stream_error(msg, "InternalServerError", None, 500);
        format!("{}{}", sse::frame(&err), sse::DONE)
    }

    /// The SSE response: the opening chunks, one chunk per engine output, the usage chunk,
    /// `[DONE]`. Dropping the body (client gone) aborts the request.
    pub fn stream(self) -> Response {
        let stream =
            futures::stream::unfold((self, Phase::Start), |(mut flow, phase)| async move {
                let (frames, over) = match phase {
                    Phase::Over => return None,
                    Phase::Start if flow.setup.req.chat => (flow.opening_frames(), false),
                    _ => flow.next_frames().await,
                };
                let next = if over { Phase::Over } else { Phase::Tokens };
                Some((Ok::<Bytes, Infallible>(Bytes::from(frames)), (flow, next)))
            });
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        r
    }
}

enum Phase {
    Start,
    Tokens,
    Over,
}
