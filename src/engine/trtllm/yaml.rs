//! The `--extra_llm_api_options` YAML of a recipe: every knob that has no `trtllm-serve`
//! option, at its `LlmArgs` path, plus the two keys forge's metrics need.
//!
//! `LlmArgs` is strict (`StrictBaseModel`, `extra = "forbid"` in
//! `tensorrt_llm/llmapi/llm_args.py`): a key the installed release does not know fails the
//! boot with pydantic's `Extra inputs are not permitted`. So each key here is emitted only
//! for the releases whose `llm_args.py` declares it ([`Keys::for_version`]).
//!
//! Paths and defaults, from `llm_args.py`:
//! - `kv_cache_config` (`KvCacheConfig`): `enable_block_reuse` True, `dtype` "auto",
//!   `free_gpu_memory_fraction` 0.9 (None in 1.0, applied later), `tokens_per_block` 32
//!   (1.1 on; absent from 1.0's `KvCacheConfig`).
//! - `scheduler_config.capacity_scheduler_policy` (`CapacitySchedulerPolicy`):
//!   GUARANTEED_NO_EVICT, MAX_UTILIZATION, STATIC_BATCH.
//! - `cuda_graph_config` (`TorchLlmArgs`, `default_factory=CudaGraphConfig`: on unless
//!   `null`): `max_batch_size` (0 → 128), `enable_padding` False, `batch_sizes` (never set
//!   by forge: setting both it and `max_batch_size` is a ValueError unless they agree).
//! - `disable_overlap_scheduler` False, `stream_interval` 1, `attn_backend` "TRTLLM"
//!   (`TorchLlmArgs`).
//! - `return_perf_metrics` (`BaseLlmArgs`, 1.1 on): mounts `/prometheus/metrics`
//!   (`OpenAIServer.register_routes` → `mount_metrics`, `tensorrt_llm/serve/openai_server.py`);
//!   `enable_iter_perf_stats` (`TorchLlmArgs`): without it the server's iteration-stats
//!   collector never starts (`lifespan`: `getattr(args, "enable_iter_perf_stats", True)`),
//!   so the KV-cache and queue gauges stay empty.

use serde_json::{Map, Value};

use super::help::Version;

/// Which optional keys the installed release's `LlmArgs` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// `kv_cache_config.tokens_per_block` (1.1 on).
    pub tokens_per_block: bool,
    /// `return_perf_metrics` (1.1 on; the `/prometheus/metrics` mount).
    pub perf_metrics: bool,
}

impl Keys {
    /// The keys `version` accepts. Both first appear in the 1.1 line: the stored 1.0-era
    /// `llm_args.py` (with `enable_mixed_sampler`) declares neither, the 1.1-era one both.
    pub fn for_version(version: &Version) -> Keys {
        let since_1_1 = version.at_least(1, 1);
        Keys {
            tokens_per_block: since_1_1,
            perf_metrics: since_1_1,
        }
    }
}

/// A YAML document under construction (insertion order is kept).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Doc {
    root: Map<String, Value>,
}

impl Doc {
    /// Set `path` (`["kv_cache_config", "dtype"]`) to `value`, creating sections.
    pub fn set(&mut self, path: &[&str], value: Value) {
        let Some((last, parents)) = path.split_last() else {
            return;
        };
        let mut map = &mut self.root;
        for p in parents {
            let slot = map
                .entry(p.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(inner) = slot else {
                return;
            };
            map = inner;
        }
        map.insert(last.to_string(), value);
    }

    /// True when a top-level section `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.root.contains_key(key)
    }

    /// The value at `path`, if set.
    pub fn get(&self, path: &[&str]) -> Option<&Value> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.root.get(*first)?, |v, k| v.as_object()?.get(*k))
    }

    /// True when nothing was set.
    pub fn is_empty(&self) -> bool {
        self.root.is_empty()
    }

    /// Every leaf as (dotted path, value), for tests and the no-knob-twice rule.
    pub fn leaves(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        walk("", &self.root, &mut out);
        out
    }

    /// The YAML text, with a comment saying who wrote it.
    pub fn to_text(&self, recipe_id: &str) -> String {
        let body = serde_norway::to_string(&self.root).unwrap_or_default();
        format!(
            "# trtllm-serve --extra_llm_api_options, written by forge for recipe {recipe_id}\n{body}"
        )
    }
}

fn walk(prefix: &str, map: &Map<String, Value>, out: &mut Vec<(String, Value)>) {
    for (k, v) in map {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() => walk(&path, inner, out),
            _ => out.push((path, v.clone())),
        }
    }
}

/// Add the keys forge's measurements read (`/prometheus/metrics` and its gauges), where
/// the release has them.
pub fn add_metrics(doc: &mut Doc, keys: Keys) {
    if keys.perf_metrics {
        doc.set(&["return_perf_metrics"], Value::Bool(true));
        doc.set(&["enable_iter_perf_stats"], Value::Bool(true));
    }
}

/// Parse a YAML text back (tests, and the twin's reader).
pub fn parse(text: &str) -> Result<Value, String> {
    serde_norway::from_str(text).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_nest_and_round_trip() {
        let mut d = Doc::default();
        d.set(
            &["kv_cache_config", "enable_block_reuse"],
            Value::Bool(false),
        );
        d.set(&["kv_cache_config", "dtype"], Value::from("fp8"));
        d.set(&["cuda_graph_config"], Value::Null);
        add_metrics(&mut d, Keys::for_version(&Version::new(1, 2, 0)));
        let text = d.to_text("abcd1234");
        assert!(text.starts_with("# trtllm-serve"), "{text}");
        let back = parse(&text).unwrap();
        assert_eq!(back["kv_cache_config"]["dtype"], "fp8");
        assert!(back["cuda_graph_config"].is_null());
        assert_eq!(back["return_perf_metrics"], true);
        assert_eq!(
            d.get(&["kv_cache_config", "enable_block_reuse"]),
            Some(&Value::Bool(false))
        );
        let paths: Vec<String> = d.leaves().into_iter().map(|(p, _)| p).collect();
        assert_eq!(
            paths,
            [
                "kv_cache_config.enable_block_reuse",
                "kv_cache_config.dtype",
                "cuda_graph_config",
                "return_perf_metrics",
                "enable_iter_perf_stats"
            ]
        );
    }

    #[test]
    fn old_releases_get_no_newer_keys() {
        let k = Keys::for_version(&Version::new(1, 0, 0));
        assert!(!k.tokens_per_block && !k.perf_metrics);
        let mut d = Doc::default();
        add_metrics(&mut d, k);
        assert!(d.is_empty());
        assert!(Keys::for_version(&Version::parse("1.1.0rc2").unwrap()).perf_metrics);
    }
}
