//! Which agent runs: the LLM agent when `--llm` names a provider whose key is in the
//! environment (or one that needs none: local servers, `--llm-base-url`), otherwise the
//! built-in agent, with a notice the caller prints once. `--llm builtin` asks for the
//! built-in agent without a notice. The banner line says which agent runs and, for an
//! LLM, where it is called, what it costs and under which bounds.

use std::path::PathBuf;

use super::Agent;
use super::builtin::BuiltinAgent;
use super::llm::cost::{self, PriceFile, PriceSource};
use super::llm::http::{Client, RetryPolicy};
use super::llm::providers::{self, LlmSpec};
use super::llm::{LlmAgent, LlmError, MAX_CALLS_PER_STEP};
use crate::record::settings::TuneSettings;

/// The chosen agent and what to tell the user about it.
pub struct Selection {
    /// The agent.
    pub agent: Box<dyn Agent>,
    /// One line for the run banner (`agent: ...`).
    pub banner: String,
    /// A notice to print once (no key, unknown price), if any.
    pub notice: Option<String>,
}

impl std::fmt::Debug for Selection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Selection")
            .field("agent", &self.agent.name())
            .field("banner", &self.banner)
            .field("notice", &self.notice)
            .finish()
    }
}

/// Knobs of the selection beyond the settings.
#[derive(Debug, Clone, Default)]
pub struct SelectOptions {
    /// Retry timing (tests shorten it).
    pub policy: RetryPolicy,
    /// A price file named on the command line; wins over `$FORGE_LLM_PRICES` and
    /// `~/.config/forge/prices.yaml`.
    pub price_file: Option<PathBuf>,
    /// The run has no simulator to climb (an engine or a model it cannot shape): the
    /// built-in agent's banner must not promise a surrogate climb.
    pub no_surrogate: bool,
}

/// Choose from the settings and the process environment; `has_surrogate` says whether the
/// run has the simulator as its surrogate.
pub fn select(settings: &TuneSettings, has_surrogate: bool) -> Result<Selection, LlmError> {
    select_with(
        settings,
        &|k| std::env::var(k).ok(),
        &SelectOptions {
            price_file: settings.llm_prices.clone(),
            no_surrogate: !has_surrogate,
            ..SelectOptions::default()
        },
    )
}

/// Choose with an explicit environment lookup and options.
pub fn select_with(
    settings: &TuneSettings,
    env: &dyn Fn(&str) -> Option<String>,
    opts: &SelectOptions,
) -> Result<Selection, LlmError> {
    if settings.llm.trim() == providers::BUILTIN {
        let how = if opts.no_surrogate {
            "no surrogate: playbook rules and single-knob moves"
        } else {
            "surrogate climb, calibrated on this run"
        };
        return Ok(builtin(&format!("agent: builtin ({how})"), None));
    }
    let spec = LlmSpec::parse(&settings.llm, settings.llm_base_url.as_deref())?;
    let key = providers::key_from_env(&spec, env);
    if spec.key_required && key.is_none() {
        return Ok(no_key(&spec));
    }
    let file = opts
        .price_file
        .clone()
        .or_else(|| cost::default_price_file(env))
        .map(|p| PriceFile::load(&p))
        .transpose()?;
    let (price, source) = cost::resolve_price(&spec, file.as_ref());
    let notice = (source == PriceSource::Conservative).then(|| unpriced_notice(&spec, price));
    let banner = banner(&spec, price, &source, settings.max_dollars);
    let client = Client::new(spec, key, price, opts.policy)?;
    Ok(Selection {
        agent: Box::new(LlmAgent::new(client, settings.max_dollars)),
        banner,
        notice,
    })
}

fn no_key(spec: &LlmSpec) -> Selection {
    let var = spec.key_env.clone().unwrap_or_default();
    let notice = format!(
        "no {var} in the environment: the built-in agent proposes the experiments \
         (set {var} to use {}, or pass --llm builtin to silence this notice)",
        spec.label()
    );
    builtin(
        &format!("agent: builtin (no {var} for {})", spec.label()),
        Some(notice),
    )
}

fn unpriced_notice(spec: &LlmSpec, price: cost::Price) -> String {
    format!(
        "no price known for {}: spend is counted at ${}/${} per million input/output \
         tokens; set its price in a price file (${} or ~/.config/forge/prices.yaml)",
        spec.label(),
        price.input,
        price.output,
        cost::PRICES_ENV
    )
}

fn builtin(banner: &str, notice: Option<String>) -> Selection {
    Selection {
        agent: Box::new(BuiltinAgent),
        banner: banner.to_string(),
        notice,
    }
}

fn banner(spec: &LlmSpec, price: cost::Price, source: &PriceSource, cap: Option<f64>) -> String {
    let priced = match source {
        PriceSource::Builtin => format!("list prices of {}", cost::PRICES_AS_OF),
        PriceSource::File(p) => format!("from {}", p.display()),
        PriceSource::Unpriced => "unpriced".into(),
        PriceSource::Conservative => "assumed".into(),
    };
    let cap = cap.map_or("no --max-dollars cap".into(), |c| format!("cap ${c:.2}"));
    format!(
        "agent: {} via {} (${}/${} per Mtok in/out, {priced}; {cap}; at most {MAX_CALLS_PER_STEP} calls per experiment)",
        spec.label(),
        spec.base_url,
        price.input,
        price.output
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(llm: &str, base: Option<&str>) -> TuneSettings {
        let mut s = crate::record::settings::test_settings();
        s.llm = llm.into();
        s.llm_base_url = base.map(str::to_string);
        s
    }

    #[test]
    fn default_llm_without_key_selects_builtin_with_one_notice() {
        let none = |_: &str| None;
        let sel = select_with(
            &settings("anthropic/claude-sonnet-4-6", None),
            &none,
            &SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(sel.agent.name(), "builtin");
        assert!(
            sel.banner.contains("no ANTHROPIC_API_KEY"),
            "{}",
            sel.banner
        );
        assert!(sel.notice.unwrap().contains("ANTHROPIC_API_KEY"));
    }

    #[test]
    fn key_or_local_selects_the_llm() {
        let env = |k: &str| (k == "ANTHROPIC_API_KEY").then(|| "sk-ant-SECRET".to_string());
        let sel = select_with(
            &settings("anthropic/claude-sonnet-4-6", None),
            &env,
            &SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(sel.agent.name(), "anthropic/claude-sonnet-4-6");
        assert!(sel.notice.is_none());
        assert!(sel.banner.contains("$3/$15"), "{}", sel.banner);
        assert!(!format!("{sel:?}").contains("SECRET"));
        let none = |_: &str| None;
        let sel = select_with(
            &settings("ollama/qwen3:8b", None),
            &none,
            &SelectOptions::default(),
        )
        .unwrap();
        assert_eq!(sel.agent.name(), "ollama/qwen3:8b");
        assert!(sel.banner.contains("unpriced"), "{}", sel.banner);
        let sel =
            select_with(&settings("builtin", None), &none, &SelectOptions::default()).unwrap();
        assert_eq!(sel.agent.name(), "builtin");
        assert!(sel.notice.is_none());
    }

    #[test]
    fn unknown_price_is_noticed_and_bad_specs_are_errors() {
        let env = |k: &str| (k == "GROQ_API_KEY").then(|| "g".to_string());
        let sel = select_with(
            &settings("groq/llama-3.3-70b", None),
            &env,
            &SelectOptions::default(),
        )
        .unwrap();
        assert!(sel.notice.unwrap().contains("no price known"));
        let none = |_: &str| None;
        assert!(
            select_with(
                &settings("nosuch/x", None),
                &none,
                &SelectOptions::default()
            )
            .is_err()
        );
    }

    #[test]
    fn an_explicit_price_file_wins() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("prices.yaml");
        std::fs::write(&p, "groq/*: {input: 0.5, output: 0.75}\n").unwrap();
        let env = |k: &str| (k == "GROQ_API_KEY").then(|| "g".to_string());
        let opts = SelectOptions {
            price_file: Some(p),
            ..SelectOptions::default()
        };
        let sel = select_with(&settings("groq/llama-3.3-70b", None), &env, &opts).unwrap();
        assert!(sel.notice.is_none());
        assert!(sel.banner.contains("$0.5/$0.75"), "{}", sel.banner);
        let bad = SelectOptions {
            price_file: Some(dir.path().join("missing.yaml")),
            ..SelectOptions::default()
        };
        let e = select_with(&settings("groq/llama-3.3-70b", None), &env, &bad).unwrap_err();
        assert!(e.to_string().contains("missing.yaml"), "{e}");
    }
}
