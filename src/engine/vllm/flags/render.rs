//! [`VllmArgs`] → `vllm serve` argv for a given vLLM version: the model tag first, then
//! every set field in table order, each value checked against the flag's allowlist
//! (choices, ranges, shapes) so nothing reaches a command line that vLLM would reject at
//! argparse time — or that could be read as another option.

use super::table::{FLAGS, Flag, Kind, Target, Version, flags_for};
use crate::engine::vllm::{PerformanceMode, SchedulingPolicy, VllmArgs};

/// Why a [`VllmArgs`] cannot be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The field's flag does not exist in that vLLM version.
    #[error("{flag} does not exist in vLLM {version}")]
    NotInVersion {
        /// The flag's long name (in the version that has it).
        flag: &'static str,
        /// The version asked for.
        version: Version,
    },
    /// The value is outside what the flag accepts.
    #[error("{flag} {value}: {why}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// The offending value as it would be rendered.
        value: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Render `args` as the argv after `vllm serve` (never a shell string).
pub fn render(args: &VllmArgs, version: Version) -> Result<Vec<String>, RenderError> {
    let mut out = vec![args.model.clone()];
    out.extend(
        render_pieces(args, version)?
            .into_iter()
            .flat_map(|p| p.words),
    );
    Ok(out)
}

/// One set field as [`render`] emits it.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    /// The field.
    pub target: Target,
    /// The table's flag for it in the version (`--compilation-config` for `-O<n>` before
    /// 0.12).
    pub flag: &'static Flag,
    /// Its argv words: the option (or `-O<n>`) first, then the values.
    pub words: Vec<String>,
}

/// [`render`] before flattening: the model tag is checked, then each set field becomes a
/// [`Piece`], in table order — so a caller can check or respell each against what the
/// installed engine lists.
pub fn render_pieces(args: &VllmArgs, version: Version) -> Result<Vec<Piece>, RenderError> {
    check_word("model", &args.model)?;
    let mut pieces: Vec<(usize, Piece)> = Vec::new();
    for target in ENGINE_TARGETS {
        if let Some(words) = value_words(args, *target, version)? {
            let (index, flag) = position(*target, version)?;
            let words = with_flag(flag, *target, words, version);
            let piece = Piece {
                target: *target,
                flag,
                words,
            };
            pieces.push((index, piece));
        }
    }
    pieces.sort_by_key(|(i, _)| *i);
    Ok(pieces.into_iter().map(|(_, p)| p).collect())
}

/// Every target [`render`] knows, i.e. every `VllmArgs` field but `model`.
const ENGINE_TARGETS: &[Target] = &[
    Target::ServedModelName,
    Target::Host,
    Target::Port,
    Target::MaxNumSeqs,
    Target::MaxNumBatchedTokens,
    Target::EnablePrefixCaching,
    Target::EnableChunkedPrefill,
    Target::GpuMemoryUtilization,
    Target::BlockSize,
    Target::KvCacheDtype,
    Target::Quantization,
    Target::Dtype,
    Target::MaxModelLen,
    Target::TensorParallelSize,
    Target::PipelineParallelSize,
    Target::DataParallelSize,
    Target::EnforceEager,
    Target::OptimizationLevel,
    Target::CudagraphCaptureSizes,
    Target::MaxCudagraphCaptureSize,
    Target::PerformanceMode,
    Target::AsyncScheduling,
    Target::LongPrefillTokenThreshold,
    Target::SchedulingPolicy,
    Target::SpeculativeConfig,
    Target::AttentionBackend,
    Target::Seed,
];

/// Where the target's flag sits in the table for `version`. `-O<n>` sits with
/// `--compilation-config` before 0.12 (where `-O` was that flag's alias).
fn position(target: Target, version: Version) -> Result<(usize, &'static Flag), RenderError> {
    let find = |t: Target| {
        FLAGS
            .iter()
            .enumerate()
            .find(|(_, f)| f.target == t && f.exists_in(version))
    };
    let found = find(target).or_else(|| {
        (target == Target::OptimizationLevel)
            .then(|| find(Target::CompilationConfig))
            .flatten()
    });
    found.ok_or_else(|| RenderError::NotInVersion {
        flag: FLAGS
            .iter()
            .find(|f| f.target == target)
            .map_or("?", |f| f.long),
        version,
    })
}

/// Argv words for one flag: switches become `--x` or the version's negative spelling
/// (`--no-x`, `--disable-x`), levels `-O<n>`, the rest `--flag value...`.
fn with_flag(flag: &Flag, target: Target, words: Vec<String>, version: Version) -> Vec<String> {
    if target == Target::OptimizationLevel {
        return words.into_iter().map(|w| format!("-O{w}")).collect();
    }
    if flag.kind == Kind::BoolOpt {
        let on = words.first().is_some_and(|w| w == "true");
        let name = match flag.negation(version) {
            Some(neg) if !on => neg,
            _ => flag.long.to_string(),
        };
        return vec![name];
    }
    let mut out = vec![flag.long.to_string()];
    out.extend(words);
    out
}

type Words = Result<Option<Vec<String>>, RenderError>;

/// The checked value words for a set field (`None` when unset).
fn value_words(a: &VllmArgs, target: Target, version: Version) -> Words {
    if let Some((name, v)) = count_field(a, target) {
        return v.map(|v| positive_u32(name, v)).transpose();
    }
    if let Some(v) = switch_field(a, target) {
        return Ok(v.map(|b| vec![b.to_string()]));
    }
    match target {
        Target::ServedModelName => word("--served-model-name", a.served_model_name.as_deref()),
        Target::Host => word("--host", a.host.as_deref()),
        Target::Port => Ok(a.port.map(|p| vec![p.to_string()])),
        Target::LongPrefillTokenThreshold => {
            Ok(a.long_prefill_token_threshold.map(|v| vec![v.to_string()]))
        }
        Target::GpuMemoryUtilization => a.gpu_memory_utilization.map(utilization).transpose(),
        Target::BlockSize => a.block_size.map(|b| block_size(b, version)).transpose(),
        Target::KvCacheDtype => {
            optional_choice(target, a.kv_cache_dtype.map(|d| d.as_flag()), version)
        }
        Target::Quantization => optional_choice(target, a.quantization.as_deref(), version),
        Target::Dtype => optional_choice(target, a.dtype.as_deref(), version),
        Target::OptimizationLevel => a.optimization_level.map(level).transpose(),
        Target::CudagraphCaptureSizes => {
            a.cudagraph_capture_sizes.as_deref().map(sizes).transpose()
        }
        Target::PerformanceMode => Ok(a.performance_mode.map(|m| vec![perf_mode(m).into()])),
        Target::SchedulingPolicy => Ok(a.scheduling_policy.map(|p| vec![policy(p).into()])),
        Target::SpeculativeConfig => a.speculative_config.as_ref().map(spec).transpose(),
        Target::AttentionBackend => a.attention_backend.as_deref().map(backend).transpose(),
        Target::Seed => a.seed.map(seed).transpose(),
        _ => Ok(None),
    }
}

/// Fields that must be positive integers, with their flag.
fn count_field(a: &VllmArgs, target: Target) -> Option<(&'static str, Option<u32>)> {
    Some(match target {
        Target::MaxNumSeqs => ("--max-num-seqs", a.max_num_seqs),
        Target::MaxNumBatchedTokens => ("--max-num-batched-tokens", a.max_num_batched_tokens),
        Target::MaxModelLen => ("--max-model-len", a.max_model_len),
        Target::TensorParallelSize => ("--tensor-parallel-size", a.tensor_parallel_size),
        Target::PipelineParallelSize => ("--pipeline-parallel-size", a.pipeline_parallel_size),
        Target::DataParallelSize => ("--data-parallel-size", a.data_parallel_size),
        Target::MaxCudagraphCaptureSize => {
            ("--max-cudagraph-capture-size", a.max_cudagraph_capture_size)
        }
        _ => return None,
    })
}

/// `--x` / `--no-x` fields.
fn switch_field(a: &VllmArgs, target: Target) -> Option<Option<bool>> {
    Some(match target {
        Target::EnablePrefixCaching => a.enable_prefix_caching,
        Target::EnableChunkedPrefill => a.enable_chunked_prefill,
        Target::EnforceEager => a.enforce_eager,
        Target::AsyncScheduling => a.async_scheduling,
        _ => return None,
    })
}

fn word(flag: &'static str, v: Option<&str>) -> Words {
    match v {
        Some(s) => check_word(flag, s).map(|_| Some(vec![s.to_string()])),
        None => Ok(None),
    }
}

fn optional_choice(target: Target, v: Option<&str>, version: Version) -> Words {
    v.map(|s| choice(target, s, version)).transpose()
}

fn seed(s: u64) -> Result<Vec<String>, RenderError> {
    if i64::try_from(s).is_err() {
        return Err(invalid("--seed", s, "above 2^63 - 1"));
    }
    Ok(vec![s.to_string()])
}

fn invalid(flag: &'static str, value: impl ToString, why: &str) -> RenderError {
    RenderError::Invalid {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// A free-text value must be non-empty and must not read as an option.
fn check_word(flag: &'static str, s: &str) -> Result<(), RenderError> {
    if s.is_empty() || s.starts_with('-') || s.contains(['\n', '\0']) {
        return Err(invalid(
            flag,
            s,
            "must be non-empty, single-line and must not start with '-'",
        ));
    }
    Ok(())
}

fn positive_u32(flag: &'static str, v: u32) -> Result<Vec<String>, RenderError> {
    if v == 0 {
        return Err(invalid(flag, v, "must be a positive integer"));
    }
    Ok(vec![v.to_string()])
}

fn utilization(v: f64) -> Result<Vec<String>, RenderError> {
    if !(v.is_finite() && v > 0.0 && v <= 1.0) {
        return Err(invalid("--gpu-memory-utilization", v, "must be in (0, 1]"));
    }
    Ok(vec![v.to_string()])
}

fn block_size(b: u32, version: Version) -> Result<Vec<String>, RenderError> {
    let ok = flags_for(version).any(|f| match f.kind {
        Kind::IntChoice(c) => f.target == Target::BlockSize && c.contains(&i64::from(b)),
        _ => false,
    });
    if !ok {
        return Err(invalid("--block-size", b, "not a block size vLLM accepts"));
    }
    Ok(vec![b.to_string()])
}

/// A choice flag's value must be one of the version's choices (`None` excluded).
fn choice(target: Target, value: &str, version: Version) -> Result<Vec<String>, RenderError> {
    let (_, flag) = position(target, version)?;
    let choices: &[&str] = match flag.kind {
        Kind::Choice(c) => c,
        _ => &[],
    };
    if value == "None" || !choices.contains(&value) {
        let listed: Vec<&str> = choices.iter().copied().filter(|c| *c != "None").collect();
        let why = format!("choose from {}", listed.join(", "));
        return Err(invalid(flag.long, value, &why));
    }
    Ok(vec![value.to_string()])
}

fn level(l: u8) -> Result<Vec<String>, RenderError> {
    if l > 3 {
        return Err(invalid("--optimization-level", l, "must be 0, 1, 2 or 3"));
    }
    Ok(vec![l.to_string()])
}

fn sizes(s: &[u32]) -> Result<Vec<String>, RenderError> {
    if s.is_empty() || s.contains(&0) {
        let shown: Vec<String> = s.iter().map(|x| x.to_string()).collect();
        return Err(invalid(
            "--cudagraph-capture-sizes",
            shown.join(" "),
            "needs one or more positive sizes",
        ));
    }
    Ok(s.iter().map(|x| x.to_string()).collect())
}

fn spec(v: &serde_json::Value) -> Result<Vec<String>, RenderError> {
    if !v.is_object() {
        return Err(invalid("--speculative-config", v, "must be a JSON object"));
    }
    Ok(vec![v.to_string()])
}

fn backend(b: &str) -> Result<Vec<String>, RenderError> {
    let ok = !b.is_empty() && b.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_');
    if !ok {
        return Err(invalid(
            "--attention-backend",
            b,
            "must be a backend name like FLASH_ATTN",
        ));
    }
    Ok(vec![b.to_string()])
}

fn perf_mode(m: PerformanceMode) -> &'static str {
    m.as_str()
}

fn policy(p: SchedulingPolicy) -> &'static str {
    p.as_str()
}
