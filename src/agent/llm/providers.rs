//! Which LLM the agent calls and where: `--llm provider/model` (plus `--llm-base-url`)
//! resolved to an API shape (Anthropic Messages or OpenAI chat completions), a base URL and
//! the environment variable that holds the key. Keys come only from the environment and
//! live in [`ApiKey`], whose `Debug` and `Display` never show them.

use std::fmt;

use super::LlmError;

/// The two wire formats forge speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Anthropic Messages API (`POST {base}/v1/messages`, `x-api-key`).
    Anthropic,
    /// OpenAI chat completions (`POST {base}/chat/completions`, `Authorization: Bearer`).
    OpenAi,
}

/// A provider forge knows by name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Provider {
    /// The name typed before the `/` in `--llm`.
    pub name: &'static str,
    /// Wire format.
    pub api: Api,
    /// Fixed base URL (Anthropic: without `/v1`; OpenAI-compatible: with the version path).
    pub base_url: &'static str,
    /// Environment variable holding the key; `None` for local servers that need none.
    pub key_env: Option<&'static str>,
    /// A server on this machine (free unless priced).
    pub local: bool,
}

const fn remote(
    name: &'static str,
    api: Api,
    base_url: &'static str,
    env: &'static str,
) -> Provider {
    Provider {
        name,
        api,
        base_url,
        key_env: Some(env),
        local: false,
    }
}

const fn local(name: &'static str, base_url: &'static str) -> Provider {
    Provider {
        name,
        api: Api::OpenAi,
        base_url,
        key_env: None,
        local: true,
    }
}

/// Every named provider, with the base URLs their documentation gives.
pub const PROVIDERS: &[Provider] = &[
    remote(
        "anthropic",
        Api::Anthropic,
        "https://api.anthropic.com",
        "ANTHROPIC_API_KEY",
    ),
    remote(
        "openai",
        Api::OpenAi,
        "https://api.openai.com/v1",
        "OPENAI_API_KEY",
    ),
    remote(
        "openrouter",
        Api::OpenAi,
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    ),
    remote(
        "together",
        Api::OpenAi,
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
    ),
    remote(
        "groq",
        Api::OpenAi,
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
    ),
    remote(
        "fireworks",
        Api::OpenAi,
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
    ),
    remote(
        "deepinfra",
        Api::OpenAi,
        "https://api.deepinfra.com/v1/openai",
        "DEEPINFRA_API_KEY",
    ),
    remote(
        "mistral",
        Api::OpenAi,
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
    ),
    local("ollama", "http://127.0.0.1:11434/v1"),
    local("lmstudio", "http://127.0.0.1:1234/v1"),
];

/// Key variable for a provider name forge does not know, reached through `--llm-base-url`
/// (a vLLM server, a gateway). Optional: most local endpoints need no key.
pub const CUSTOM_KEY_ENV: &str = "FORGE_LLM_API_KEY";

/// The `--llm` value that asks for the built-in agent explicitly.
pub const BUILTIN: &str = "builtin";

/// `--llm` and `--llm-base-url`, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmSpec {
    /// Provider name as typed.
    pub provider: String,
    /// Model id as the provider spells it (may contain `/` and `:`).
    pub model: String,
    /// Wire format.
    pub api: Api,
    /// Base URL, without a trailing slash.
    pub base_url: String,
    /// Environment variable to read the key from, if any.
    pub key_env: Option<String>,
    /// True when a call cannot succeed without a key (named remote provider, default URL).
    pub key_required: bool,
    /// A local server (ollama, lmstudio).
    pub local: bool,
    /// True when `--llm-base-url` replaced the provider's URL.
    pub custom_base_url: bool,
}

impl LlmSpec {
    /// Parse `provider/model`; `base_url` overrides the provider's fixed URL (and admits
    /// provider names forge does not know, which then speak the OpenAI shape).
    pub fn parse(llm: &str, base_url: Option<&str>) -> Result<LlmSpec, LlmError> {
        let (provider, model) = llm.split_once('/').ok_or_else(|| {
            LlmError::Config(format!(
                "--llm: expected provider/model (e.g. anthropic/claude-sonnet-4-6), got `{llm}`"
            ))
        })?;
        let (provider, model) = (provider.trim(), model.trim());
        if provider.is_empty() || model.is_empty() || model.chars().any(char::is_control) {
            return Err(LlmError::Config(format!(
                "--llm: both provider and model are needed, got `{llm}`"
            )));
        }
        let known = PROVIDERS.iter().find(|p| p.name == provider);
        let custom = base_url.map(check_base_url).transpose()?;
        match (known, custom) {
            (Some(p), custom) => Ok(from_known(p, model, custom)),
            (None, Some(url)) => Ok(LlmSpec {
                provider: provider.to_string(),
                model: model.to_string(),
                api: Api::OpenAi,
                base_url: url,
                key_env: Some(CUSTOM_KEY_ENV.to_string()),
                key_required: false,
                local: false,
                custom_base_url: true,
            }),
            (None, None) => Err(LlmError::Config(format!(
                "--llm: unknown provider `{provider}` (known: {}); for any other \
                 OpenAI-compatible endpoint give --llm-base-url",
                PROVIDERS
                    .iter()
                    .map(|p| p.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// `provider/model`, as the journal and the banner show it.
    pub fn label(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }

    /// The endpoint a request goes to.
    pub fn endpoint(&self) -> String {
        match self.api {
            Api::Anthropic => format!("{}/v1/messages", self.base_url),
            Api::OpenAi => format!("{}/chat/completions", self.base_url),
        }
    }
}

fn from_known(p: &Provider, model: &str, custom: Option<String>) -> LlmSpec {
    LlmSpec {
        provider: p.name.to_string(),
        model: model.to_string(),
        api: p.api,
        key_required: p.key_env.is_some() && custom.is_none(),
        base_url: custom.clone().unwrap_or_else(|| p.base_url.to_string()),
        key_env: p.key_env.map(str::to_string),
        local: p.local,
        custom_base_url: custom.is_some(),
    }
}

/// An http(s) URL with no credentials in it (those belong in the environment).
fn check_base_url(url: &str) -> Result<String, LlmError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| LlmError::Config(format!("--llm-base-url: not a URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(LlmError::Config(
            "--llm-base-url: only http:// and https:// are supported".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(LlmError::Config(
            "--llm-base-url: no query or fragment (keys belong in the environment)".into(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(LlmError::Config(format!(
            "--llm-base-url: put credentials in {CUSTOM_KEY_ENV} or the provider's key \
             variable, not in the URL"
        )));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A secret. Formatting it shows `<redacted>`; only the HTTP layer reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key; empty or blank values are no key at all.
    pub fn new(value: String) -> Option<ApiKey> {
        let v = value.trim().to_string();
        (!v.is_empty()).then_some(ApiKey(v))
    }

    /// The secret itself, for the request header only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced (for provider error messages that
    /// echo what they were sent).
    pub fn scrub(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Read the key for `spec` through `env` (the process environment in production, a map in
/// tests).
pub fn key_from_env(spec: &LlmSpec, env: &dyn Fn(&str) -> Option<String>) -> Option<ApiKey> {
    spec.key_env.as_deref().and_then(env).and_then(ApiKey::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_provider_key_reaches_an_engine() {
        for p in PROVIDERS {
            if let Some(k) = p.key_env {
                assert!(crate::engine::process::is_agent_secret(k), "{k}");
            }
        }
        assert!(crate::engine::process::is_agent_secret(CUSTOM_KEY_ENV));
        assert!(!crate::engine::process::is_agent_secret("HF_TOKEN"));
    }

    #[test]
    fn parses_named_providers_and_models_with_slashes() {
        let s = LlmSpec::parse("anthropic/claude-sonnet-4-6", None).unwrap();
        assert_eq!(s.api, Api::Anthropic);
        assert_eq!(s.endpoint(), "https://api.anthropic.com/v1/messages");
        assert_eq!(s.key_env.as_deref(), Some("ANTHROPIC_API_KEY"));
        assert!(s.key_required);
        let s = LlmSpec::parse("openrouter/meta-llama/llama-3.1-70b", None).unwrap();
        assert_eq!(s.model, "meta-llama/llama-3.1-70b");
        assert_eq!(
            s.endpoint(),
            "https://openrouter.ai/api/v1/chat/completions"
        );
        let s = LlmSpec::parse("ollama/qwen3:8b", None).unwrap();
        assert!(s.local && !s.key_required);
        assert_eq!(s.endpoint(), "http://127.0.0.1:11434/v1/chat/completions");
    }

    #[test]
    fn base_url_overrides_and_admits_custom_providers() {
        let s = LlmSpec::parse(
            "vllm/meta-llama/Llama-3.1-8B",
            Some("http://127.0.0.1:8000/v1/"),
        )
        .unwrap();
        assert_eq!(s.api, Api::OpenAi);
        assert_eq!(s.endpoint(), "http://127.0.0.1:8000/v1/chat/completions");
        assert_eq!(s.key_env.as_deref(), Some(CUSTOM_KEY_ENV));
        assert!(!s.key_required && s.custom_base_url);
        let s = LlmSpec::parse("anthropic/claude-x", Some("http://127.0.0.1:9")).unwrap();
        assert_eq!(s.endpoint(), "http://127.0.0.1:9/v1/messages");
        assert!(!s.key_required);
    }

    #[test]
    fn refuses_bad_specs() {
        for bad in ["claude", "/m", "anthropic/", "nosuch/model"] {
            assert!(LlmSpec::parse(bad, None).is_err(), "{bad}");
        }
        assert!(LlmSpec::parse("openai/m", Some("ftp://x")).is_err());
        let e = LlmSpec::parse("openai/m", Some("https://user:pw@host/v1")).unwrap_err();
        assert!(!e.to_string().contains("pw"), "{e}");
    }

    #[test]
    fn keys_never_show() {
        let k = ApiKey::new("sk-secret-123".into()).unwrap();
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{k}"), "<redacted>");
        assert_eq!(k.scrub("bad key sk-secret-123!"), "bad key <redacted>!");
        assert!(ApiKey::new("  ".into()).is_none());
        let spec = LlmSpec::parse("openai/gpt-4o", None).unwrap();
        let env = |v: &str| (v == "OPENAI_API_KEY").then(|| "k".to_string());
        assert!(key_from_env(&spec, &env).is_some());
        let spec = LlmSpec::parse("groq/llama", None).unwrap();
        assert!(key_from_env(&spec, &env).is_none());
    }
}
