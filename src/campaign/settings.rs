//! What a campaign was started with, kept in `campaign.json` (written once, atomically,
//! before anything else) so `forge campaign resume DIR` goes on with exactly the same
//! target, checkout, competitor, load, proposals and budgets, whatever the shell that
//! resumes it has typed. Paths are stored absolute; no key or token is ever among them
//! (an LLM's key is read from the environment when a round calls it).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::write_atomic;

/// The settings file.
pub const SETTINGS_FILE: &str = "campaign.json";

/// The engine whose source is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// llama.cpp's `llama-server` (rebuilt with CMake; runs on a CPU).
    Llamacpp,
    /// vLLM (a Python-only editable reinstall; a GPU host).
    Vllm,
}

impl Target {
    /// The framework's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Llamacpp => "llama.cpp",
            Target::Vllm => "vLLM",
        }
    }
}

/// When the campaign must stop even though the target is still behind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Rounds.
    pub max_rounds: Option<u32>,
    /// Hours of campaign time (summed over every session of it).
    pub max_hours: Option<f64>,
    /// Dollars: LLM spend plus machine time at `gpu_hour_usd`.
    pub max_dollars: Option<f64>,
    /// What an hour of the machine costs, USD (0 for a machine already paid for).
    pub gpu_hour_usd: f64,
}

/// How the engine is asked and measured (the same for the target and its competitor).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSettings {
    /// Reference prompts (answers at temperature 0 are compared on these).
    pub prompts: Vec<String>,
    /// Where they came from (a workload file, or forge's built-in smoke prompts).
    pub prompts_from: String,
    /// Tokens per reference answer.
    pub answer_tokens: u32,
    /// Concurrent requests per measurement.
    pub concurrent: usize,
    /// Output tokens per measured request.
    pub output_tokens: u32,
}

/// Everything a campaign runs with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The engine patched.
    pub target: Target,
    /// The model served (a GGUF file for llama.cpp, an id or path for vLLM).
    pub model: String,
    /// The engine's git checkout.
    pub source: PathBuf,
    /// The campaign branch in it.
    pub branch: String,
    /// The commit the campaign started from.
    pub start_commit: String,
    /// Where the engine is built (outside the checkout).
    pub build_dir: PathBuf,
    /// The competitor's server program (for llama.cpp: a stock `llama-server`).
    pub leader: PathBuf,
    /// The competitor's arguments (vLLM; `{port}` replaced), after `leader`.
    #[serde(default)]
    pub leader_args: Vec<String>,
    /// The competitor's name in reports.
    pub leader_name: String,
    /// The competitor's framework (`vllm`, `sglang`), when known.
    #[serde(default)]
    pub leader_framework: Option<String>,
    /// vLLM: the interpreter of its environment.
    #[serde(default)]
    pub python: Option<PathBuf>,
    /// vLLM: `uv`, when it installs.
    #[serde(default)]
    pub uv: Option<PathBuf>,
    /// A flow check (a CPU stand-in for a GPU campaign), labelled so in every report.
    pub flow_check: bool,
    /// The patch series, if proposals come from one.
    pub patches: Option<PathBuf>,
    /// `provider/model` of the LLM agent, if proposals come from one.
    pub llm: Option<String>,
    /// The LLM provider's base URL, when not its default.
    #[serde(default)]
    pub llm_base_url: Option<String>,
    /// Attempts per round before the gap is decided again.
    pub attempts_per_round: u32,
    /// Pairs at most per gap decision.
    pub gap_pairs: usize,
    /// The gap's tie threshold, % (the contract's 1 % unless this machine's own noise
    /// cannot resolve it).
    #[serde(default = "super::gap::contract_threshold")]
    pub tie_threshold_pct: f64,
    /// The load.
    pub load: LoadSettings,
    /// The budget.
    pub budget: Budget,
    /// The fair gate the campaign started from (`--compare DIR`): the leader's command and
    /// the target's winning flags come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<super::gate::GateRef>,
}

impl Settings {
    /// Write `dir/campaign.json` (atomic).
    pub fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_atomic(&dir.join(SETTINGS_FILE), text.as_bytes())?;
        Ok(())
    }

    /// Read `dir/campaign.json`; an error names the file and what is wrong.
    pub fn load(dir: &Path) -> anyhow::Result<Settings> {
        let path = dir.join(SETTINGS_FILE);
        let text = crate::text::read(&path)
            .map_err(|e| anyhow::anyhow!("{}: not a campaign directory ({e})", dir.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{}:{}:{}: {e}", path.display(), e.line(), e.column()))
    }
}

/// The four prompts used when no workload is given (labelled as smoke prompts).
pub fn smoke_prompts() -> Vec<String> {
    [
        "The capital of France is",
        "List three colours:",
        "Water boils at",
        "A haiku about servers:",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_a_bad_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings {
            target: Target::Llamacpp,
            model: "m.gguf".into(),
            source: "/src".into(),
            branch: "forge-campaign".into(),
            start_commit: "abc".into(),
            build_dir: "/b".into(),
            leader: "/stock/llama-server".into(),
            leader_args: Vec::new(),
            leader_name: "llama.cpp (stock)".into(),
            leader_framework: None,
            python: None,
            uv: None,
            flow_check: true,
            patches: Some("/p".into()),
            llm: None,
            llm_base_url: None,
            attempts_per_round: 4,
            gap_pairs: 6,
            tie_threshold_pct: 1.0,
            load: LoadSettings {
                prompts: smoke_prompts(),
                prompts_from: "smoke".into(),
                answer_tokens: 16,
                concurrent: 4,
                output_tokens: 48,
            },
            budget: Budget::default(),
            gate: None,
        };
        s.save(dir.path()).unwrap();
        assert_eq!(Settings::load(dir.path()).unwrap(), s);
        std::fs::write(dir.path().join(SETTINGS_FILE), "{\n \"target\": 3\n}").unwrap();
        let e = Settings::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("campaign.json:2:"), "{e}");
        let e = Settings::load(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a campaign directory"), "{e}");
    }
}
