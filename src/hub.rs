//! Pre-quantized checkpoints of a model (layer 2 on vLLM, SGLang, TensorRT-LLM): found in
//! the local Hugging Face cache first, then on the Hub — its model search for repositories
//! tagged `base_model:quantized:BASE`, and the names well-known publishers give them
//! (`BASE-AWQ`, `-FP8`, `-FP8-dynamic`, `-GPTQ-Int4`, `-w4a16`, `-quantized.w8a8`). Each
//! candidate is read from its own `config.json` before it becomes a legal value: it must
//! carry a `quantization_config` (method, bits, group size, what is quantized) and the base
//! model's architecture; anything else is refused with the reason. None found means the
//! model must be calibrated (llm-compressor on the user's prompts).
//!
//! The Hub is `$HF_ENDPOINT` (as `huggingface_hub` reads it) or the public one; `HF_TOKEN`
//! is read from the environment into memory, sent as a bearer token, never written
//! anywhere (no error message carries a URL or a header). A Hub that
//! cannot be reached is a note (the cache was still searched), not a failure.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::sim::hf_cache;

/// The public Hub, when `$HF_ENDPOINT` is not set.
const PUBLIC_HUB: &str = "https://huggingface.co";
/// Suffixes well-known publishers give quantized copies of a model.
const NAMED: &[&str] = &[
    "-AWQ",
    "-FP8",
    "-FP8-dynamic",
    "-GPTQ-Int4",
    "-GPTQ-Int8",
    "-w4a16",
    "-quantized.w8a8",
    "-quantized.w4a16",
];
/// Most repositories taken from the Hub's search.
const SEARCH_LIMIT: usize = 50;

/// Where a candidate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The local Hugging Face cache.
    Cache,
    /// The Hub.
    Hub,
    /// The simulator's catalogue of published copies (a dry run).
    Published,
}

/// A pre-quantized checkpoint forge may serve.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// `org/name`.
    pub repo: String,
    /// `quantization_config.quant_method`, lower case.
    pub method: String,
    /// Weight bits.
    pub bits: u32,
    /// Activation bits, when activations are quantized too (W8A8).
    pub activation_bits: Option<u32>,
    /// `group_size`, when given.
    pub group_size: Option<u64>,
    /// Floating-point weights (FP8/FP4) rather than integers.
    pub float: bool,
    /// Where it was found.
    pub found: Found,
}

impl Checkpoint {
    /// Its precision scheme, as the hardware gates name it.
    pub fn scheme(&self) -> Option<crate::engine::gates::Scheme> {
        crate::engine::gates::Scheme::of_checkpoint(
            &self.method,
            self.bits,
            self.activation_bits,
            self.float,
        )
    }

    /// `awq W4 g128`, `fp8 W8A8`.
    pub fn describe(&self) -> String {
        let mut s = format!("{} W{}", self.method, self.bits);
        if let Some(a) = self.activation_bits {
            s.push_str(&format!("A{a}"));
        }
        if let Some(g) = self.group_size {
            s.push_str(&format!(" g{g}"));
        }
        s
    }
}

impl Found {
    /// Where, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Found::Cache => "from the local cache",
            Found::Hub => "from the Hub",
            Found::Published => "published; the simulator serves its shape",
        }
    }
}

/// A published quantized copy the simulator knows (`…-AWQ`, `…-FP8`), as a checkpoint; `None`
/// when the simulator cannot shape it.
pub fn published(repo: &str) -> Option<Checkpoint> {
    let q = crate::sim::catalog::lookup(repo)?.quant?;
    Some(Checkpoint {
        repo: repo.to_string(),
        method: q.method,
        bits: q.weight_bits,
        activation_bits: q.activation_bits,
        group_size: None,
        float: q.float_weights,
        found: Found::Published,
    })
}

/// What the search found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolution {
    /// Checkpoints that passed the checks, cache first.
    pub candidates: Vec<Checkpoint>,
    /// Repositories refused, with why.
    pub refused: Vec<(String, String)>,
    /// Things worth saying (offline, no base config).
    pub notes: Vec<String>,
}

impl Resolution {
    /// No checkpoint: the model must be calibrated.
    pub fn needs_calibration(&self) -> bool {
        self.candidates.is_empty()
    }
}

/// The Hub's HTTP side.
pub struct Hub {
    client: reqwest::Client,
    endpoint: String,
    /// `HF_TOKEN`, held in memory for the requests only.
    token: Option<String>,
}

impl Hub {
    /// The Hub the environment names (`$HF_ENDPOINT`, else the public one), with
    /// `$HF_TOKEN` if set.
    pub fn from_env() -> Hub {
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| PUBLIC_HUB.to_string());
        Hub::at(
            &endpoint,
            std::env::var("HF_TOKEN").ok().filter(|t| !t.is_empty()),
        )
    }

    /// The Hub at `endpoint`, sending `token` (if any) as a bearer token.
    pub fn at(endpoint: &str, token: Option<String>) -> Hub {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        Hub {
            client,
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
        }
    }

    /// GET `path` as JSON: `Ok(None)` for a 404 (no such repository or file), `Err` when
    /// the Hub cannot be reached or answers otherwise.
    async fn get(&self, path: &str) -> Result<Option<Value>, HubError> {
        let mut req = self.client.get(format!("{}{path}", self.endpoint));
        if let Some(token) = &self.token {
            req = req.bearer_auth(token);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| HubError::Unreachable(without_url(&e)))?;
        match resp.status().as_u16() {
            404 => Ok(None),
            401 | 403 => Err(HubError::Answered(
                "gated or private: set HF_TOKEN to a token that may read it".into(),
            )),
            s if !(200..300).contains(&s) => Err(HubError::Answered(format!("HTTP {s}"))),
            _ => resp
                .json()
                .await
                .map(Some)
                .map_err(|e| HubError::Answered(without_url(&e))),
        }
    }

    async fn config(&self, repo: &str) -> Result<Option<Value>, HubError> {
        self.get(&format!("/{repo}/resolve/main/config.json")).await
    }

    async fn search(&self, base: &str) -> Result<Vec<String>, HubError> {
        let path = format!("/api/models?filter=base_model:quantized:{base}&limit={SEARCH_LIMIT}");
        let Some(Value::Array(models)) = self.get(&path).await? else {
            return Ok(Vec::new());
        };
        Ok(models
            .iter()
            .filter_map(|m| m.get("id").or_else(|| m.get("modelId")))
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect())
    }
}

/// Why the Hub gave nothing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HubError {
    /// No answer at all (offline, DNS, a timeout).
    #[error("{0}")]
    Unreachable(String),
    /// An answer that is not the file (gated, an error status, not JSON).
    #[error("{0}")]
    Answered(String),
}

/// An HTTP error in words, without the URL (it may carry a path a user did not type).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "cannot connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_decode() {
        "not JSON"
    } else {
        "request failed"
    };
    kind.to_string()
}

/// The pre-quantized checkpoints of `base` (`org/name`): the local cache at `cache` (if
/// any), then `hub` (if any).
pub async fn resolve(base: &str, cache: Option<&std::path::Path>, hub: Option<&Hub>) -> Resolution {
    let mut r = Resolution::default();
    let mut offline = hub.is_none();
    let base_config = match cache.and_then(|c| read_cached(c, base)) {
        Some(v) => Some(v),
        None => match hub {
            Some(h) => match h.config(base).await {
                Ok(v) => v,
                Err(HubError::Unreachable(e)) => {
                    offline = true;
                    r.notes.push(self::offline(&e));
                    None
                }
                Err(HubError::Answered(e)) => {
                    r.notes.push(format!("{base}: its config.json: {e}"));
                    None
                }
            },
            None => None,
        },
    };
    let Some(arch) = base_config.as_ref().map(architectures) else {
        r.notes.push(format!(
            "{base}: no config.json in the cache{}: a checkpoint's architecture cannot be checked, so none is used",
            if offline { "" } else { " or on the Hub" }
        ));
        return r;
    };
    let mut seen = BTreeSet::new();
    if let Some(c) = cache {
        for repo in cached_repos(c, base) {
            if let Some(cfg) = read_cached(c, &repo) {
                judge(&mut r, &repo, &cfg, &arch, Found::Cache);
                seen.insert(repo);
            }
        }
    }
    if let (Some(h), false) = (hub, offline) {
        from_hub(&mut r, h, base, &arch, &mut seen).await;
    }
    r
}

/// The Hub's candidates of `base`: its search, then the well-known names.
async fn from_hub(
    r: &mut Resolution,
    h: &Hub,
    base: &str,
    arch: &[String],
    seen: &mut BTreeSet<String>,
) {
    let mut ids = match h.search(base).await {
        Ok(ids) => ids,
        Err(HubError::Unreachable(e)) => return r.notes.push(offline(&e)),
        Err(HubError::Answered(e)) => {
            r.notes.push(format!(
                "the Hub's model search failed ({e}); trying well-known names only"
            ));
            Vec::new()
        }
    };
    ids.extend(NAMED.iter().map(|s| format!("{base}{s}")));
    for repo in ids {
        if repo == base || !seen.insert(repo.clone()) || !crate::recipe::is_safe_model_id(&repo) {
            continue;
        }
        match h.config(&repo).await {
            Ok(Some(cfg)) => judge(r, &repo, &cfg, arch, Found::Hub),
            Ok(None) => {}
            Err(HubError::Unreachable(e)) => return r.notes.push(offline(&e)),
            Err(HubError::Answered(e)) => r
                .refused
                .push((repo, format!("its config.json could not be read: {e}"))),
        }
    }
}

/// The note for a Hub that does not answer.
fn offline(e: &str) -> String {
    format!("offline: the Hub could not be reached ({e}); only the local cache was searched")
}

/// Add `repo` to the candidates if its config is a quantized copy of `arch`, else say why.
fn judge(r: &mut Resolution, repo: &str, cfg: &Value, arch: &[String], found: Found) {
    let theirs = architectures(cfg);
    if theirs != arch {
        r.refused.push((
            repo.to_string(),
            format!(
                "its architecture ({}) is not the base model's ({})",
                theirs.join(", "),
                arch.join(", ")
            ),
        ));
        return;
    }
    let Some(q) = cfg.get("quantization_config") else {
        if found == Found::Hub {
            r.refused.push((
                repo.to_string(),
                "no quantization_config: not a quantized checkpoint".into(),
            ));
        }
        return;
    };
    let Some(method) = q.get("quant_method").and_then(Value::as_str) else {
        r.refused.push((
            repo.to_string(),
            "quantization_config has no quant_method".into(),
        ));
        return;
    };
    let method = method.to_ascii_lowercase();
    let (bits, activation_bits) = crate::sim::model::quant_bits(q, &method);
    r.candidates.push(Checkpoint {
        repo: repo.to_string(),
        group_size: q
            .get("group_size")
            .or_else(|| q.pointer("/config_groups/group_0/weights/group_size"))
            .and_then(Value::as_u64),
        float: crate::sim::model::float_weights(q, &method),
        method,
        bits,
        activation_bits,
        found,
    });
}

/// `architectures` of a config, sorted.
fn architectures(cfg: &Value) -> Vec<String> {
    let mut a: Vec<String> = cfg
        .get("architectures")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    a.sort();
    a
}

fn read_cached(cache: &std::path::Path, repo: &str) -> Option<Value> {
    let file = hf_cache::config_in(cache, repo)?;
    serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()
}

/// Repositories in the cache whose name extends the base model's (`org/Name-AWQ`, any org).
fn cached_repos(cache: &std::path::Path, base: &str) -> Vec<String> {
    let name = base.rsplit('/').next().unwrap_or(base).to_ascii_lowercase();
    let mut out: Vec<String> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let dir = e.file_name().to_string_lossy().to_string();
            let rest = dir.strip_prefix("models--")?;
            let (org, repo) = rest.split_once("--")?;
            let id = format!("{org}/{repo}");
            (id != base && repo.to_ascii_lowercase().starts_with(&name)).then_some(id)
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_says_what_is_quantized() {
        let c = Checkpoint {
            repo: "a/b".into(),
            method: "awq".into(),
            bits: 4,
            activation_bits: None,
            group_size: Some(128),
            float: false,
            found: Found::Hub,
        };
        assert_eq!(c.describe(), "awq W4 g128");
        let c = Checkpoint {
            method: "fp8".into(),
            bits: 8,
            activation_bits: Some(8),
            group_size: None,
            float: true,
            ..c
        };
        assert_eq!(c.describe(), "fp8 W8A8");
        assert_eq!(c.scheme(), Some(crate::engine::gates::Scheme::Fp8W8A8));
    }
}
