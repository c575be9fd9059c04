//! What an LLM call costs and whether the next one may be made. Input and output tokens are
//! priced separately per million tokens from a built-in table of list prices, which a YAML
//! file can extend or override. [`Meter`] is the per-step gate every call passes: it counts
//! calls against a hard bound and refuses a call whose *projected* cost (prompt estimate +
//! the full output allowance) does not fit the money left under `--max-dollars`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::LlmError;
use super::providers::LlmSpec;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input (prompt) tokens, USD per million.
    pub input: f64,
    /// Output (completion) tokens, USD per million.
    pub output: f64,
}

impl Price {
    /// Free (local servers).
    pub const FREE: Price = Price {
        input: 0.0,
        output: 0.0,
    };

    /// Cost of `usage`, USD.
    pub fn cost(&self, usage: &Usage) -> f64 {
        (usage.input_tokens as f64 * self.input + usage.output_tokens as f64 * self.output) / 1e6
    }
}

/// Date the built-in list prices were taken from public price pages (Anthropic: Claude
/// 4.5/4.6 pricing as summarised by deploybase.ai, 2026-03-21, and apidog.com,
/// 2026-02-18; OpenAI: deploybase.ai "OpenAI pricing", March 2026). Override them in a
/// price file; they are not fetched.
pub const PRICES_AS_OF: &str = "2026-03-21";

/// Built-in list prices, `provider/model` → (input, output) USD per million tokens.
pub const BUILTIN_PRICES: &[(&str, f64, f64)] = &[
    ("anthropic/claude-opus-4-6", 5.0, 25.0),
    ("anthropic/claude-opus-4-5", 5.0, 25.0),
    ("anthropic/claude-sonnet-4-6", 3.0, 15.0),
    ("anthropic/claude-sonnet-4-5", 3.0, 15.0),
    ("anthropic/claude-sonnet-4", 3.0, 15.0),
    ("anthropic/claude-haiku-4-5", 1.0, 5.0),
    ("openai/gpt-5", 1.25, 10.0),
    ("openai/gpt-5-mini", 0.25, 2.0),
    ("openai/gpt-5-nano", 0.05, 0.40),
    ("openai/gpt-4.1", 2.0, 8.0),
    ("openai/gpt-4.1-mini", 0.40, 1.60),
    ("openai/gpt-4.1-nano", 0.10, 0.40),
    ("openai/gpt-4o", 2.50, 10.0),
    ("openai/gpt-4o-mini", 0.15, 0.60),
];

/// Price assumed for a paid provider's model that no table lists: the dearest list price
/// forge knows (Claude Opus 4/4.1), so `--max-dollars` errs on the side of stopping early.
pub const CONSERVATIVE_PRICE: Price = Price {
    input: 15.0,
    output: 75.0,
};

/// Environment variable naming a price file (takes precedence over the default location).
pub const PRICES_ENV: &str = "FORGE_LLM_PRICES";

/// Where a price came from, for the banner.
#[derive(Debug, Clone, PartialEq)]
pub enum PriceSource {
    /// The user's price file.
    File(PathBuf),
    /// The built-in table.
    Builtin,
    /// A local server or custom endpoint nobody priced: free.
    Unpriced,
    /// Unknown paid model: [`CONSERVATIVE_PRICE`].
    Conservative,
}

/// Tokens a call used, as the provider reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

/// A generous token estimate for budgeting before a call (about 3 bytes a token, where
/// English text averages nearer 4), plus per-message framing.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(3) + 16
}

/// Prices read from a YAML file: `provider/model: {input: USD, output: USD}` per million
/// tokens; `provider/*` prices every model of a provider.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceFile {
    /// The file.
    pub path: PathBuf,
    /// Its entries.
    pub prices: BTreeMap<String, Price>,
}

impl PriceFile {
    /// Read and validate a price file; errors name the file, line and entry.
    pub fn load(path: &Path) -> Result<PriceFile, LlmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LlmError::Config(format!("{}: {e}", path.display())))?;
        PriceFile::parse(path, &text)
    }

    /// Parse price-file text.
    pub fn parse(path: &Path, text: &str) -> Result<PriceFile, LlmError> {
        let prices: BTreeMap<String, Price> = serde_norway::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(":{}", l.line()))
                .unwrap_or_default();
            LlmError::Config(format!("{}{at}: {e}", path.display()))
        })?;
        for (model, p) in &prices {
            let ok = |x: f64| x.is_finite() && x >= 0.0;
            if !ok(p.input) || !ok(p.output) || !model.contains('/') {
                let line = line_of(text, model);
                return Err(LlmError::Config(format!(
                    "{}:{line}: {model}: expected `provider/model: {{input: USD, output: USD}}` \
                     with non-negative prices per million tokens",
                    path.display()
                )));
            }
        }
        Ok(PriceFile {
            path: path.to_path_buf(),
            prices,
        })
    }

    fn get(&self, spec: &LlmSpec) -> Option<Price> {
        let wildcard = format!("{}/*", spec.provider);
        self.prices
            .get(&spec.label())
            .or_else(|| self.prices.get(&wildcard))
            .copied()
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.contains(key))
        .map_or(0, |i| i + 1)
}

/// The price file to use: `$FORGE_LLM_PRICES`, else `$XDG_CONFIG_HOME/forge/prices.yaml`
/// or `~/.config/forge/prices.yaml` when that file exists.
pub fn default_price_file(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(p) = env(PRICES_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let dir = env("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    let path = dir.join("forge").join("prices.yaml");
    path.is_file().then_some(path)
}

/// The price of `spec`: the price file, then the built-in table, then free for local and
/// custom endpoints, else [`CONSERVATIVE_PRICE`].
pub fn resolve_price(spec: &LlmSpec, file: Option<&PriceFile>) -> (Price, PriceSource) {
    if let Some(f) = file
        && let Some(p) = f.get(spec)
    {
        return (p, PriceSource::File(f.path.clone()));
    }
    let label = spec.label();
    if let Some((_, i, o)) = BUILTIN_PRICES.iter().find(|(m, _, _)| *m == label) {
        let p = Price {
            input: *i,
            output: *o,
        };
        return (p, PriceSource::Builtin);
    }
    if spec.local || spec.custom_base_url {
        return (Price::FREE, PriceSource::Unpriced);
    }
    (CONSERVATIVE_PRICE, PriceSource::Conservative)
}

/// The gate every call of one step (or one analysis) passes: a hard call bound and the
/// dollar cap, checked before the call.
#[derive(Debug, Clone)]
pub struct Meter {
    calls: u32,
    max_calls: u32,
    cap_usd: Option<f64>,
    spent_before_usd: f64,
    spent_usd: f64,
}

/// Slack for float rounding when a budget allows exactly N calls.
const EPS_USD: f64 = 1e-9;

impl Meter {
    /// A fresh gate: at most `max_calls` calls, and `spent_before_usd` already spent this
    /// run against `cap_usd`.
    pub fn new(max_calls: u32, cap_usd: Option<f64>, spent_before_usd: f64) -> Meter {
        Meter {
            calls: 0,
            max_calls,
            cap_usd,
            spent_before_usd,
            spent_usd: 0.0,
        }
    }

    /// Admit one call projected to cost `projected_usd`, or say why not. Counts the call.
    pub fn admit(&mut self, projected_usd: f64) -> Result<(), LlmError> {
        if self.calls >= self.max_calls {
            return Err(LlmError::CallLimit {
                limit: self.max_calls,
            });
        }
        if let Some(cap) = self.cap_usd {
            let spent = self.spent_before_usd + self.spent_usd;
            if spent + projected_usd > cap + EPS_USD {
                return Err(LlmError::BudgetExhausted {
                    spent_usd: spent,
                    cap_usd: cap,
                    projected_usd,
                });
            }
        }
        self.calls += 1;
        Ok(())
    }

    /// Record what an admitted call cost.
    pub fn charge(&mut self, usd: f64) {
        self.spent_usd += usd.max(0.0);
    }

    /// Calls admitted so far.
    pub fn calls(&self) -> u32 {
        self.calls
    }

    /// Spent through this gate, USD.
    pub fn spent_usd(&self) -> f64 {
        self.spent_usd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str, base: Option<&str>) -> LlmSpec {
        LlmSpec::parse(s, base).unwrap()
    }

    #[test]
    fn prices_input_and_output_separately() {
        let p = Price {
            input: 3.0,
            output: 15.0,
        };
        let u = Usage {
            input_tokens: 2000,
            output_tokens: 100,
        };
        assert!((p.cost(&u) - (0.006 + 0.0015)).abs() < 1e-12);
    }

    #[test]
    fn resolution_order() {
        let (p, src) = resolve_price(&spec("anthropic/claude-sonnet-4-6", None), None);
        assert_eq!((p.input, p.output, src), (3.0, 15.0, PriceSource::Builtin));
        let (p, src) = resolve_price(&spec("ollama/qwen3:8b", None), None);
        assert_eq!((p, src), (Price::FREE, PriceSource::Unpriced));
        let (p, src) = resolve_price(&spec("vllm/x", Some("http://127.0.0.1:1/v1")), None);
        assert_eq!((p, src), (Price::FREE, PriceSource::Unpriced));
        let (p, src) = resolve_price(&spec("groq/llama-3.3-70b", None), None);
        assert_eq!((p, src), (CONSERVATIVE_PRICE, PriceSource::Conservative));
        let file = PriceFile::parse(
            Path::new("p.yaml"),
            "groq/*: {input: 0.5, output: 0.8}\nollama/qwen3:8b: {input: 0.1, output: 0.2}\n",
        )
        .unwrap();
        let (p, src) = resolve_price(&spec("groq/llama-3.3-70b", None), Some(&file));
        assert_eq!(p.output, 0.8);
        assert_eq!(src, PriceSource::File(PathBuf::from("p.yaml")));
        let (p, _) = resolve_price(&spec("ollama/qwen3:8b", None), Some(&file));
        assert_eq!(p.input, 0.1);
    }

    #[test]
    fn price_file_errors_name_file_line_and_entry() {
        let e = PriceFile::parse(
            Path::new("p.yaml"),
            "a/b: {input: 1, output: 2}\nc/d: {input: -1, output: 2}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("p.yaml:2: c/d"), "{e}");
        let e = PriceFile::parse(Path::new("p.yaml"), "a/b: {input: 1, outptu: 2}\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("p.yaml:1"), "{e}");
    }

    #[test]
    fn meter_bounds_calls_and_dollars() {
        let mut m = Meter::new(2, None, 0.0);
        assert!(m.admit(1.0).is_ok() && m.admit(1.0).is_ok());
        assert!(matches!(
            m.admit(0.0),
            Err(LlmError::CallLimit { limit: 2 })
        ));
        // $0.003 cap, $0.001 a call: exactly three fit.
        let mut m = Meter::new(10, Some(0.003), 0.0);
        for _ in 0..3 {
            m.admit(0.001).unwrap();
            m.charge(0.001);
        }
        assert!(matches!(
            m.admit(0.001),
            Err(LlmError::BudgetExhausted { .. })
        ));
        assert_eq!(m.calls(), 3);
        // Spend restored from earlier experiments counts.
        let mut m = Meter::new(10, Some(1.0), 0.9995);
        assert!(m.admit(0.001).is_err());
    }

    #[test]
    fn estimates_err_high() {
        assert!(estimate_tokens(&"word ".repeat(400)) >= 500);
    }

    #[test]
    fn default_file_prefers_the_env_var() {
        let env = |k: &str| (k == PRICES_ENV).then(|| "/x/p.yaml".to_string());
        assert_eq!(default_price_file(&env), Some(PathBuf::from("/x/p.yaml")));
        let none = |_: &str| None;
        assert_eq!(default_price_file(&none), None);
    }
}
