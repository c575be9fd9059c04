//! The LLM agent: each experiment it renders the run's state into a prompt ([`prompt`]),
//! asks the configured provider ([`http`], [`providers`]), and accepts only a reply that
//! parses strictly and names legal, allowlisted changes ([`parse`]). An invalid reply gets
//! one re-prompt with the exact error; after that — or when the provider fails — the
//! built-in agent takes the step and the rationale says so (`[fallback: builtin] ...`).
//!
//! Bounds that hold on every path, enforced by a per-step [`cost::Meter`] that each HTTP
//! attempt must pass: at most [`MAX_CALLS_PER_STEP`] calls per experiment (retries and the
//! re-prompt included), no call whose projected cost exceeds what `--max-dollars` leaves,
//! and after [`MAX_FAILED_STEPS`] consecutive failed steps (or one authentication, credit
//! or refused-request error) no further calls at all for the rest of the run.

pub mod cost;
pub mod http;
pub mod parse;
pub mod prompt;
pub mod providers;

use futures::FutureExt;
use futures::future::BoxFuture;

use self::cost::Meter;
use self::http::{Client, Message, Role, Turn, clean};
use super::builtin::BuiltinAgent;
use super::{Agent, AgentContext, AgentError, Analysis, AnalysisContext, Proposal, RejectedReply};

/// Most API calls one experiment's proposal may make, counting retries and the re-prompt
/// (two turns of [`http::MAX_TRIES_PER_TURN`] attempts).
pub const MAX_CALLS_PER_STEP: u32 = 6;
/// Most API calls the post-run analysis may make.
pub const MAX_CALLS_PER_ANALYSIS: u32 = 3;
/// Consecutive steps without a usable LLM answer after which the LLM is not called again
/// in this run (the built-in agent carries on).
pub const MAX_FAILED_STEPS: u32 = 3;
/// Output allowance for a proposal, tokens.
pub const PROPOSE_MAX_TOKENS: u32 = 1024;
/// Output allowance for the analysis, tokens.
pub const ANALYSIS_MAX_TOKENS: u32 = 600;
/// Longest rejected reply echoed back in the re-prompt, characters.
const MAX_ECHOED_REPLY_CHARS: usize = 4000;
/// Longest analysis kept, characters.
const MAX_ANALYSIS_CHARS: usize = 2000;

/// Why an LLM call (or the agent's setup) did not produce an answer.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The next call could cost more than `--max-dollars` leaves. The orchestrator stops
    /// the run cleanly on this (it is only returned before any call of the step was made).
    #[error(
        "LLM budget exhausted: ${spent_usd:.4} of ${cap_usd:.2} spent, and the next call could cost up to ${projected_usd:.4}"
    )]
    BudgetExhausted {
        /// Spent so far in the run, USD.
        spent_usd: f64,
        /// `--max-dollars`.
        cap_usd: f64,
        /// Projected cost of the refused call, USD.
        projected_usd: f64,
    },
    /// The per-step call bound was reached.
    #[error("call bound reached ({limit} calls)")]
    CallLimit {
        /// The bound.
        limit: u32,
    },
    /// 401/403: the key is missing, wrong or lacks access.
    #[error("{provider}: authentication failed (HTTP {status}); check {env}")]
    Auth {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The key's environment variable.
        env: String,
    },
    /// A 429 that means the account is out of credit or over its spend limit.
    #[error("{provider}: out of credit or over the account's spend limit: {message}")]
    Quota {
        /// Provider name.
        provider: String,
        /// The provider's message (key scrubbed).
        message: String,
    },
    /// Another 4xx (bad request, unknown model): retrying cannot help.
    #[error("{provider}: request refused (HTTP {status}): {message}")]
    Refused {
        /// Provider name.
        provider: String,
        /// HTTP status.
        status: u16,
        /// The provider's message (key scrubbed).
        message: String,
    },
    /// Retries used up on 429/5xx/network errors.
    #[error("provider unavailable after {tries} attempts: {last}")]
    Exhausted {
        /// Attempts made.
        tries: u32,
        /// The last failure.
        last: String,
    },
    /// The reply could not be used (after the one re-prompt).
    #[error("invalid reply: {0}")]
    InvalidReply(String),
    /// Bad `--llm`, `--llm-base-url` or price file.
    #[error("{0}")]
    Config(String),
}

impl LlmError {
    /// True when the provider will not start working by itself during this run.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            LlmError::Auth { .. } | LlmError::Quota { .. } | LlmError::Refused { .. }
        )
    }
}

/// The LLM agent.
#[derive(Debug)]
pub struct LlmAgent {
    client: Client,
    max_dollars: Option<f64>,
    fallback: BuiltinAgent,
    disabled: Option<String>,
    failed_steps: u32,
    calls_total: u64,
}

impl LlmAgent {
    /// An agent calling `client`, under `max_dollars` for the whole run.
    pub fn new(client: Client, max_dollars: Option<f64>) -> LlmAgent {
        LlmAgent {
            client,
            max_dollars,
            fallback: BuiltinAgent,
            disabled: None,
            failed_steps: 0,
            calls_total: 0,
        }
    }

    /// API calls made so far by this agent (attempts, retries included).
    pub fn calls_made(&self) -> u64 {
        self.calls_total
    }

    /// Why the LLM is no longer called in this run, if it is not.
    pub fn disabled_reason(&self) -> Option<&str> {
        self.disabled.as_deref()
    }

    async fn step(&mut self, ctx: &AgentContext<'_>) -> Result<Proposal, AgentError> {
        if let Some(why) = self.disabled.clone() {
            return self
                .fallback(ctx, 0.0, &format!("LLM off for the rest of the run: {why}"))
                .await;
        }
        let mut meter = Meter::new(MAX_CALLS_PER_STEP, self.max_dollars, ctx.spent_usd);
        let mut refused = Vec::new();
        let outcome = self.converse(ctx, &mut meter, &mut refused).await;
        self.calls_total += u64::from(meter.calls());
        let outcome = match outcome {
            Ok(mut p) => {
                self.failed_steps = 0;
                p.cost_usd = meter.spent_usd();
                Ok(p)
            }
            Err(e @ LlmError::BudgetExhausted { .. }) if meter.calls() == 0 => {
                Err(AgentError::Budget(e.to_string()))
            }
            Err(e) => {
                self.note_failure(&e);
                tracing::warn!("{}: {e}; the built-in agent takes this step", self.name());
                self.fallback(ctx, meter.spent_usd(), &e.to_string()).await
            }
        };
        outcome.map(|mut p| {
            p.rejected = refused;
            p
        })
    }

    /// Ask, validate, and on an invalid reply ask once more with the exact error.
    /// Each refused reply is added to `refused` (journaled as a `rej-*` row).
    async fn converse(
        &self,
        ctx: &AgentContext<'_>,
        meter: &mut Meter,
        refused: &mut Vec<RejectedReply>,
    ) -> Result<Proposal, LlmError> {
        let space = parse::legal_space(ctx);
        let mut messages = vec![Message {
            role: Role::User,
            content: prompt::render_propose(ctx, &space),
        }];
        let first = self.ask(&messages, meter).await?;
        let why = match parse::parse_reply(&first.text, ctx) {
            Ok(p) => return Ok(p),
            Err(why) => explain(why, &first),
        };
        refused.push(refusal(&first.text, &why));
        messages.push(Message {
            role: Role::Assistant,
            content: echo(&first.text),
        });
        messages.push(Message {
            role: Role::User,
            content: prompt::render_retry(&why, ctx),
        });
        let second = self.ask(&messages, meter).await?;
        parse::parse_reply(&second.text, ctx).map_err(|why| {
            let why = explain(why, &second);
            refused.push(refusal(&second.text, &why));
            LlmError::InvalidReply(format!("rejected twice; last: {why}"))
        })
    }

    async fn ask(
        &self,
        messages: &[Message],
        meter: &mut Meter,
    ) -> Result<http::Completion, LlmError> {
        let turn = Turn {
            system: prompt::SYSTEM,
            messages,
            max_tokens: PROPOSE_MAX_TOKENS,
        };
        self.client.complete(&turn, meter).await
    }

    fn note_failure(&mut self, e: &LlmError) {
        self.failed_steps += 1;
        if e.is_permanent() {
            self.disabled = Some(e.to_string());
        } else if self.failed_steps >= MAX_FAILED_STEPS {
            self.disabled = Some(format!(
                "{} consecutive experiments without a usable answer (last: {e})",
                self.failed_steps
            ));
        }
    }

    async fn fallback(
        &mut self,
        ctx: &AgentContext<'_>,
        cost_usd: f64,
        why: &str,
    ) -> Result<Proposal, AgentError> {
        let mut p = self.fallback.propose(ctx).await?;
        p.rationale = format!("[fallback: builtin] {}. {}", clean(why, 300), p.rationale);
        p.cost_usd = cost_usd;
        Ok(p)
    }

    async fn analysis(&mut self, ctx: &AnalysisContext<'_>) -> anyhow::Result<Option<Analysis>> {
        if self.disabled.is_some() {
            return Ok(None);
        }
        let mut meter = Meter::new(MAX_CALLS_PER_ANALYSIS, self.max_dollars, ctx.spent_usd);
        let messages = [Message {
            role: Role::User,
            content: prompt::render_analysis(ctx),
        }];
        let turn = Turn {
            system: prompt::ANALYSIS_SYSTEM,
            messages: &messages,
            max_tokens: ANALYSIS_MAX_TOKENS,
        };
        let outcome = self.client.complete(&turn, &mut meter).await;
        self.calls_total += u64::from(meter.calls());
        let c = outcome?;
        let text = clean(&c.text, MAX_ANALYSIS_CHARS);
        Ok(Some(Analysis {
            text: if text.is_empty() {
                "(the LLM returned an empty analysis)".into()
            } else {
                text
            },
            cost_usd: meter.spent_usd(),
        }))
    }
}

/// A refused reply as the journal keeps it.
fn refusal(text: &str, why: &str) -> RejectedReply {
    let (changes, rationale) = parse::salvage(text);
    RejectedReply {
        changes,
        rationale,
        why: clean(why, 300),
    }
}

/// The parse error, noting truncation (the usual cause of a broken object).
fn explain(why: String, c: &http::Completion) -> String {
    if c.truncated {
        format!("{why} (the reply was cut off at the output limit; keep it short)")
    } else {
        why
    }
}

/// A rejected reply as it goes back into the conversation (providers refuse empty turns).
fn echo(text: &str) -> String {
    let t: String = text.trim().chars().take(MAX_ECHOED_REPLY_CHARS).collect();
    if t.is_empty() {
        "(empty reply)".into()
    } else {
        t
    }
}

impl Agent for LlmAgent {
    fn name(&self) -> String {
        self.client.spec().label()
    }

    fn propose<'a>(
        &'a mut self,
        ctx: &'a AgentContext<'a>,
    ) -> BoxFuture<'a, Result<Proposal, AgentError>> {
        self.step(ctx).boxed()
    }

    fn analyze<'a>(
        &'a mut self,
        ctx: &'a AnalysisContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Analysis>>> {
        self.analysis(ctx).boxed()
    }
}
