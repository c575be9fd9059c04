//! Turning argparse occurrences into forge's types: [`VllmArgs`] for what shapes the
//! engine, [`ServerOptions`] for what shapes the HTTP server.

use super::ParsedArgs;
use super::argparse::{ArgparseError, Occurrence};
use super::table::{ServerField, Target};
use super::value::{Value, py_repr_str};
use crate::engine::vllm::{KvCacheDtype, PerformanceMode, SchedulingPolicy, VllmArgs};

/// Server options `vllm serve` takes that are not engine arguments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerOptions {
    /// Every `--served-model-name` (empty: the model tag).
    pub served_model_names: Vec<String>,
    /// `--api-key` (the first one; never logged).
    pub api_key: Option<String>,
    /// `--enable-prompt-tokens-details`.
    pub prompt_tokens_details: bool,
    /// `--enable-force-include-usage`.
    pub force_include_usage: bool,
    /// `--disable-log-stats`.
    pub disable_log_stats: bool,
    /// `--enable-log-requests`.
    pub enable_log_requests: bool,
    /// `--disable-uvicorn-access-log`.
    pub disable_access_log: bool,
    /// `--profiler-config` (JSON as given).
    pub profiler_config: Option<serde_json::Value>,
}

/// Apply one occurrence (later occurrences win, as in argparse).
pub(super) fn apply(out: &mut ParsedArgs, occ: &Occurrence) -> Result<(), ArgparseError> {
    let flag = occ.flag;
    match flag.target {
        Target::Server(field) => apply_server(&mut out.server, field, &occ.value),
        Target::Ignored => out.ignored.push(occ.option.clone()),
        Target::ServedModelName => {
            if let Value::StrList(names) = &occ.value {
                out.server.served_model_names = names.clone();
                out.args.served_model_name = names.first().cloned();
            }
        }
        Target::CompilationConfig => apply_compilation(&mut out.args, &occ.value),
        target => apply_engine(&mut out.args, target, &occ.display, &occ.value)?,
    }
    if flag.target != Target::Server(ServerField::ApiKey) {
        let dest = flag.long.trim_start_matches("--").replace('-', "_");
        out.set.retain(|(d, _)| *d != dest);
        out.set.push((dest, occ.value.clone()));
    }
    Ok(())
}

fn apply_server(s: &mut ServerOptions, field: ServerField, v: &Value) {
    let on = matches!(v, Value::Bool(true));
    match field {
        ServerField::ApiKey => {
            if let Value::StrList(keys) = v {
                s.api_key = keys.first().cloned();
            }
        }
        ServerField::PromptTokensDetails => s.prompt_tokens_details = on,
        ServerField::ForceIncludeUsage => s.force_include_usage = on,
        ServerField::DisableLogStats => s.disable_log_stats = on,
        ServerField::EnableLogRequests => s.enable_log_requests = on,
        ServerField::DisableAccessLog => s.disable_access_log = on,
        ServerField::ProfilerConfig => {
            if let Value::Json(j) = v {
                s.profiler_config = Some(j.clone());
            }
        }
    }
}

/// `--compilation-config` / `-O`: an integer is the level (vLLM before 0.12); a dict may
/// carry `level`, `cudagraph_capture_sizes` and `max_cudagraph_capture_size`.
fn apply_compilation(a: &mut VllmArgs, v: &Value) {
    let Value::Json(j) = v else { return };
    if let Some(level) = j.as_u64().filter(|l| *l <= 3) {
        a.optimization_level = Some(level as u8);
        return;
    }
    if let Some(level) = j.get("level").and_then(|l| l.as_u64()).filter(|l| *l <= 3) {
        a.optimization_level = Some(level as u8);
    }
    if let Some(sizes) = j.get("cudagraph_capture_sizes").and_then(|s| s.as_array()) {
        let sizes: Option<Vec<u32>> = sizes
            .iter()
            .map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()))
            .collect();
        a.cudagraph_capture_sizes = sizes;
    }
    if let Some(max) = j.get("max_cudagraph_capture_size").and_then(|m| m.as_u64()) {
        a.max_cudagraph_capture_size = u32::try_from(max).ok();
    }
}

fn apply_engine(
    a: &mut VllmArgs,
    target: Target,
    flag: &str,
    v: &Value,
) -> Result<(), ArgparseError> {
    match target {
        Target::Host => a.host = string(v),
        Target::Port => a.port = int(flag, v)?,
        Target::MaxNumSeqs => a.max_num_seqs = int(flag, v)?,
        Target::MaxNumBatchedTokens => a.max_num_batched_tokens = int(flag, v)?,
        Target::EnablePrefixCaching => a.enable_prefix_caching = boolean(v),
        Target::EnableChunkedPrefill => a.enable_chunked_prefill = boolean(v),
        Target::GpuMemoryUtilization => a.gpu_memory_utilization = float(v),
        Target::BlockSize => a.block_size = int(flag, v)?,
        Target::KvCacheDtype => {
            a.kv_cache_dtype = string(v).and_then(|s| KvCacheDtype::from_flag(&s));
        }
        Target::Quantization => a.quantization = string(v),
        Target::Dtype => a.dtype = string(v),
        Target::MaxModelLen => a.max_model_len = int(flag, v)?,
        Target::TensorParallelSize => a.tensor_parallel_size = int(flag, v)?,
        Target::PipelineParallelSize => a.pipeline_parallel_size = int(flag, v)?,
        Target::DataParallelSize => a.data_parallel_size = int(flag, v)?,
        Target::EnforceEager => a.enforce_eager = boolean(v),
        Target::OptimizationLevel => a.optimization_level = int(flag, v)?,
        Target::MaxCudagraphCaptureSize => a.max_cudagraph_capture_size = int(flag, v)?,
        Target::PerformanceMode => a.performance_mode = string(v).and_then(|s| perf_mode(&s)),
        Target::AsyncScheduling => a.async_scheduling = boolean(v),
        Target::LongPrefillTokenThreshold => a.long_prefill_token_threshold = int(flag, v)?,
        Target::SchedulingPolicy => a.scheduling_policy = string(v).and_then(|s| policy(&s)),
        Target::SpeculativeConfig => a.speculative_config = json(v),
        Target::AttentionBackend => a.attention_backend = string(v),
        Target::Seed => a.seed = int(flag, v)?,
        Target::CudagraphCaptureSizes => a.cudagraph_capture_sizes = int_list(flag, v)?,
        _ => {}
    }
    Ok(())
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) => Some(s.clone()),
        _ => None,
    }
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => None,
    }
}

fn float(v: &Value) -> Option<f64> {
    match v {
        Value::Float(f) => Some(*f),
        _ => None,
    }
}

fn json(v: &Value) -> Option<serde_json::Value> {
    match v {
        Value::Json(j) => Some(j.clone()),
        _ => None,
    }
}

/// An integer that must fit forge's field type; argparse itself would accept any int,
/// but forge cannot represent e.g. a negative TP, so it is reported the argparse way.
fn int<T: TryFrom<i64>>(flag: &str, v: &Value) -> Result<Option<T>, ArgparseError> {
    match v {
        Value::Int(i) => T::try_from(*i)
            .map(Some)
            .map_err(|_| out_of_range(flag, *i)),
        _ => Ok(None),
    }
}

fn int_list(flag: &str, v: &Value) -> Result<Option<Vec<u32>>, ArgparseError> {
    match v {
        Value::IntList(list) => list
            .iter()
            .map(|i| u32::try_from(*i).map_err(|_| out_of_range(flag, *i)))
            .collect::<Result<Vec<u32>, _>>()
            .map(Some),
        _ => Ok(None),
    }
}

fn out_of_range(flag: &str, i: i64) -> ArgparseError {
    ArgparseError::new(format!(
        "argument {}: invalid int value: {}",
        flag,
        py_repr_str(&i.to_string())
    ))
}

fn perf_mode(s: &str) -> Option<PerformanceMode> {
    Some(match s {
        "balanced" => PerformanceMode::Balanced,
        "interactivity" => PerformanceMode::Interactivity,
        "throughput" => PerformanceMode::Throughput,
        _ => return None,
    })
}

fn policy(s: &str) -> Option<SchedulingPolicy> {
    Some(match s {
        "fcfs" => SchedulingPolicy::Fcfs,
        "priority" => SchedulingPolicy::Priority,
        _ => return None,
    })
}
