//! Agents propose one mutation per experiment, with a written rationale. The built-in
//! agent ([`builtin`]) climbs the simulator as a surrogate, calibrated on the run; the LLM
//! agent ([`llm`]) reads the playbook and history; [`select`] picks one from the settings.
//! Both answer in the original tool's shape:
//! `{rationale, mutation: {layer, changes}, expected_throughput_delta_pct,
//! expected_accuracy_delta}`; empty changes mean "converged".

pub mod builtin;
pub mod llm;
pub mod select;
pub mod space;

use std::collections::BTreeMap;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::playbook::Playbook;
use crate::recipe::Layer;
use crate::recipe::{Illegal, Recipe};
use crate::record::ExperimentRow;
use crate::record::settings::TuneSettings;
use crate::workload::stats::WorkloadStats;

/// A proposed mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// Why this change, in a sentence or two.
    pub rationale: String,
    /// The layer.
    pub layer: Layer,
    /// `field: value` (`null` = back to the engine default). Empty = converged.
    pub changes: BTreeMap<String, Value>,
    /// Predicted change of the objective, %.
    pub expected_throughput_delta_pct: Option<f64>,
    /// Predicted change of accuracy.
    pub expected_accuracy_delta: Option<f64>,
    /// Spend to produce this proposal, USD.
    #[serde(default)]
    pub cost_usd: f64,
    /// Whether `expected_throughput_delta_pct` is the simulator's prediction (the built-in
    /// agent's) rather than an LLM's claim: only a surrogate's prediction may buy a
    /// decision more pairs (`decide::rule`); a reply cannot.
    #[serde(default)]
    pub from_surrogate: bool,
    /// Replies the agent refused on the way to this proposal (the LLM's invalid or illegal
    /// answers), each journaled as a `rej-*` row before this proposal is handled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<RejectedReply>,
}

/// An agent's answer that was refused: the changes it named (when it named any) and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RejectedReply {
    /// What the reply proposed, as far as it could be read.
    pub changes: BTreeMap<String, Value>,
    /// Its rationale, cleaned (empty when it had none).
    pub rationale: String,
    /// Why it was refused.
    pub why: String,
}

impl Proposal {
    /// A "nothing left to try" answer.
    pub fn converged(layer: Layer, rationale: impl Into<String>) -> Proposal {
        Proposal {
            rationale: rationale.into(),
            layer,
            changes: BTreeMap::new(),
            expected_throughput_delta_pct: None,
            expected_accuracy_delta: None,
            cost_usd: 0.0,
            from_surrogate: false,
            rejected: Vec::new(),
        }
    }
}

/// Predicts a recipe's objective value (the simulator, for vLLM recipes).
pub type Surrogate<'a> = dyn Fn(&Recipe) -> Option<f64> + Send + Sync + 'a;

/// What an agent sees when proposing.
pub struct AgentContext<'a> {
    /// Run settings.
    pub settings: &'a TuneSettings,
    /// The playbook.
    pub playbook: &'a Playbook,
    /// The layer to work on.
    pub layer: Layer,
    /// The incumbent recipe.
    pub incumbent: &'a Recipe,
    /// The incumbent's effective value of every knob (explicit or engine default).
    pub effective: BTreeMap<String, Value>,
    /// Observed facts for playbook rules (metrics of the incumbent, workload, SLO).
    pub facts: BTreeMap<String, f64>,
    /// Workload statistics.
    pub workload: &'a WorkloadStats,
    /// Every row so far.
    pub history: &'a [ExperimentRow],
    /// Candidates already tried from this base (ids), and infeasible ones.
    pub is_tried: &'a (dyn Fn(&Recipe) -> bool + Send + Sync),
    /// Legality beyond the allowlist (memory, GPU gates, cross-field rules).
    pub legal: &'a (dyn Fn(&Recipe) -> Result<(), Illegal> + Send + Sync),
    /// The surrogate, when one exists for this engine.
    pub surrogate: Option<&'a Surrogate<'a>>,
    /// Hardware the run tunes for (GPU spec when known).
    pub gpu: Option<&'static crate::hardware::GpuSpec>,
    /// LLM spend so far in this run, USD (restored on resume).
    pub spent_usd: f64,
}

/// What an agent sees when writing the post-run analysis.
pub struct AnalysisContext<'a> {
    /// Run settings.
    pub settings: &'a TuneSettings,
    /// Every row of the run.
    pub history: &'a [ExperimentRow],
    /// Workload statistics.
    pub workload: &'a WorkloadStats,
    /// LLM spend so far, USD.
    pub spent_usd: f64,
}

/// A post-run analysis paragraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// The text.
    pub text: String,
    /// Spend to produce it, USD.
    pub cost_usd: f64,
}

/// Why an agent gave no proposal. The loop branches on it: a spent budget ends the run
/// cleanly, anything else is an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The spend cap leaves no room for the agent's next step (its words say how much).
    #[error("{0}")]
    Budget(String),
    /// The agent failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A source of proposals.
pub trait Agent: Send {
    /// Name for the banner and the journal (`builtin`, `anthropic/claude-…`).
    fn name(&self) -> String;
    /// Propose the next mutation.
    fn propose<'a>(
        &'a mut self,
        ctx: &'a AgentContext<'a>,
    ) -> BoxFuture<'a, Result<Proposal, AgentError>>;
    /// Write the post-run analysis paragraph; `None` when this agent writes none (the
    /// built-in agent), so callers need no special case.
    fn analyze<'a>(
        &'a mut self,
        _ctx: &'a AnalysisContext<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Option<Analysis>>> {
        Box::pin(async { Ok(None) })
    }
}
