//! Reading `trtllm-serve`'s log: why a boot failed (failure class, hint lines) and what a
//! good boot reported about its KV cache. Every pattern is TensorRT-LLM's (or click's,
//! pydantic's, Python's) own text; the comment beside each says where it comes from.
//!
//! Log shapes: the Python logger prints `[MM/DD/YYYY-HH:MM:SS] [TRT-LLM] [I] …` (with
//! `[RANK n]` on multi-rank runs), the C++ runtime `[TensorRT-LLM][INFO] …`.

use serde::{Deserialize, Serialize};

use crate::engine::failure::{
    Failure, FailureClass, LogStyle, collect_hints, is_traceback_or_access, log_has_any,
};

/// "Does not fit in memory".
const OOM_PATTERNS: &[&str] = &[
    // _torch/pyexecutor/py_executor_creator.py, _ExecutorMemoryMonitor._maybe_explain_if_oom
    "Executor creation failed due to insufficient GPU memory.",
    // torch's allocator (`torch.OutOfMemoryError: CUDA out of memory. Tried to allocate …`)
    "torch.OutOfMemoryError",
    "CUDA out of memory",
];
/// "The arguments are invalid".
const CONFIG_PATTERNS: &[&str] = &[
    // click (exit 2): `Error: No such option: --bogus`, `Error: Invalid value for '--backend'`
    "Error: No such option",
    "Error: Invalid value for",
    "Error: Missing argument",
    // pydantic on LlmArgs (StrictBaseModel, extra="forbid"; tensorrt_llm/llmapi/llm_args.py)
    "Extra inputs are not permitted",
    "validation error for",
    // llm_args.py validators raise ValueError (e.g. "Please don't set both cuda_graph_config…")
    "ValueError",
];
/// "TensorRT-LLM is not installed".
const MISSING_PATTERNS: &[&str] = &[
    "No module named 'tensorrt_llm'",
    "No module named tensorrt_llm",
    "trtllm-serve: command not found",
    "trtllm-serve: not found",
];
/// "The model cannot be found or opened".
const MODEL_PATTERNS: &[&str] = &[
    // huggingface_hub / transformers, raised while tensorrt_llm downloads or opens the model
    "RepositoryNotFoundError",
    "is not a local folder and is not a valid model identifier",
    "GatedRepoError",
    "Cannot access gated repo",
    // llm_args.py::get_model_format
    "Failed to infer model format because no config.json exists in",
];
/// "The port was taken" (serve.py `launch_server`, 1.2 on: `Failed to bind socket to …`;
/// uvicorn before it).
const PORT_TAKEN_PATTERNS: &[&str] = &["Failed to bind socket to", "Address already in use"];
/// The executor's own report of a failed start (tensorrt_llm/executor/worker.py,
/// `worker_main`: `logger.error(f"Failed to initialize executor on rank {mpi_rank()}: {e}")`).
const EXECUTOR_FAILED: &str = "Failed to initialize executor on rank";
/// Lines worth keeping with a failure.
const HINT_PATTERNS: &[&str] = &[
    "Executor creation failed",
    // the rest of _maybe_explain_if_oom's message: the component and the GiB table
    "The following component could not be created:",
    "Total GPU memory (GiB):",
    "Free GPU memory before component creation attempt (GiB):",
    "Possible options include",
    ": reduce ",
    EXECUTOR_FAILED,
    "out of memory",
    "Error:",
    "Error",
    "Extra inputs are not permitted",
    // _torch/pyexecutor/_util.py KvCacheCreator
    "Peak memory during memory usage profiling",
    "Adjusted max_seq_len to",
];

/// True when the text says the `tensorrt_llm` package (or the launcher) is absent.
pub fn mentions_missing_trtllm(text: &str) -> bool {
    log_has_any(text, MISSING_PATTERNS)
}

/// How this engine's log reads.
const STYLE: LogStyle = LogStyle {
    explains: is_explanation,
    strip: strip_prefix,
};

/// Classify a boot that ended without becoming ready. The summary is the first line that
/// decided the class (the root cause, not the `RuntimeError: Executor worker returned
/// error` that follows it in the server), else the last explanatory line.
pub fn classify_exit(code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
    let (class, patterns) = class_of(code, log);
    STYLE.failure(class, patterns, hints(log), (code, signal, log))
}

fn class_of(code: Option<i32>, log: &str) -> (FailureClass, &'static [&'static str]) {
    if code == Some(127) || mentions_missing_trtllm(log) {
        (FailureClass::EngineMissing, MISSING_PATTERNS)
    } else if log_has_any(log, MODEL_PATTERNS) {
        (FailureClass::ModelNotFound, MODEL_PATTERNS)
    } else if log_has_any(log, PORT_TAKEN_PATTERNS) {
        (FailureClass::ForeignServer, PORT_TAKEN_PATTERNS)
    } else if log_has_any(log, OOM_PATTERNS) {
        (FailureClass::InfeasibleOom, OOM_PATTERNS)
    } else if code == Some(2) || log_has_any(log, CONFIG_PATTERNS) {
        (FailureClass::InfeasibleConfig, CONFIG_PATTERNS)
    } else if log.contains(EXECUTOR_FAILED) {
        (FailureClass::CrashedDuringBoot, &[EXECUTOR_FAILED])
    } else {
        (FailureClass::CrashedDuringBoot, &[])
    }
}

/// Not a traceback's source line or an access-log line.
fn is_explanation(line: &str) -> bool {
    let t = strip_prefix(line);
    !(is_traceback_or_access(t) || t.starts_with("Traceback"))
}

/// The engine's own explanatory lines (deduplicated, at most 8, prefixes stripped).
pub fn hints(log: &str) -> Vec<String> {
    collect_hints(log, HINT_PATTERNS, is_explanation, strip_prefix)
}

/// Remove `[12/20/2025-04:21:10] [TRT-LLM] [RANK 0] [E] ` / `[TensorRT-LLM][INFO] `.
fn strip_prefix(line: &str) -> &str {
    let mut s = line.trim();
    loop {
        let Some(rest) = s.strip_prefix('[') else {
            return s;
        };
        let Some(end) = rest.find(']') else {
            return s;
        };
        if end > 40 {
            return s;
        }
        s = rest[end + 1..].trim_start();
    }
}

/// What a successful boot printed about its KV cache and limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupFacts {
    /// `[MemUsageChange] Allocated X GiB for max tokens in paged KV cache (N).` — the last
    /// one (the final cache; the estimation pass prints one for its temporary cache first).
    /// cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp.
    pub kv_cache_gib: Option<f64>,
    /// Its token count N.
    pub kv_cache_tokens: Option<u64>,
    /// `Number of tokens per block: N.` (kvCacheManager.cpp).
    pub tokens_per_block: Option<u64>,
    /// `available KV cache memory when calculating max tokens: X GiB`
    /// (_torch/pyexecutor/_util.py, KvCacheCreator).
    pub available_kv_gib: Option<f64>,
    /// `Peak memory during memory usage profiling (torch + non-torch): X GiB` (_util.py).
    pub peak_gib: Option<f64>,
    /// `max_seq_len=N, max_num_requests=…, max_num_tokens=…, max_batch_size=…`
    /// (_util.py, create_py_executor_instance): the limits the executor really uses.
    pub max_seq_len: Option<u64>,
    /// Its `max_num_tokens`.
    pub max_num_tokens: Option<u64>,
    /// Its `max_batch_size`.
    pub max_batch_size: Option<u64>,
}

/// Parse the startup lines.
pub fn startup_facts(log: &str) -> StartupFacts {
    const ALLOC: &str = "for max tokens in paged KV cache (";
    let alloc_line = log.lines().rev().find(|l| l.contains(ALLOC));
    StartupFacts {
        kv_cache_gib: alloc_line.and_then(|l| number_after(l, "Allocated ")),
        kv_cache_tokens: alloc_line
            .and_then(|l| number_after(l, ALLOC))
            .map(|x| x as u64),
        tokens_per_block: last_number(log, "Number of tokens per block: ").map(|x| x as u64),
        available_kv_gib: last_number(
            log,
            "available KV cache memory when calculating max tokens: ",
        ),
        peak_gib: last_number(
            log,
            "Peak memory during memory usage profiling (torch + non-torch): ",
        ),
        max_seq_len: last_number(log, "] max_seq_len=").map(|x| x as u64),
        max_num_tokens: last_number(log, ", max_num_tokens=").map(|x| x as u64),
        max_batch_size: last_number(log, ", max_batch_size=").map(|x| x as u64),
    }
}

/// The number after `marker` on the last line containing it.
fn last_number(log: &str, marker: &str) -> Option<f64> {
    number_after(log.lines().rev().find(|l| l.contains(marker))?, marker)
}

fn number_after(line: &str, marker: &str) -> Option<f64> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    num.trim_end_matches('.').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trtllm");

    fn log(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn kv_cache_oom_is_infeasible_with_the_gib_table() {
        let f = classify_exit(Some(1), None, &log("boot-kvcache-oom.log"));
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert_eq!(
            f.summary,
            "Failed to initialize executor on rank 0: Executor creation failed due to insufficient GPU memory."
        );
        let h = f.hints.join("\n");
        assert!(
            h.contains("The following component could not be created: KV cache"),
            "{h}"
        );
        assert!(h.contains("Total GPU memory (GiB): 79.19"), "{h}");
        assert!(
            h.contains("kv_cache: reduce free_gpu_memory_fraction"),
            "{h}"
        );
    }

    #[test]
    fn a_cuda_oom_while_loading_is_infeasible() {
        let f = classify_exit(Some(1), None, &log("boot-cuda-oom.log"));
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert!(
            f.summary
                .starts_with("Failed to initialize executor on rank 0: CUDA out of memory"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn an_executor_failure_without_oom_crashed_with_its_cause() {
        let f = classify_exit(Some(1), None, &log("boot-executor-failed.log"));
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert_eq!(
            f.summary,
            "Failed to initialize executor on rank 0: tuple index out of range"
        );
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("tuple index out of range"))
        );
    }

    #[test]
    fn click_and_pydantic_refusals_are_infeasible_config() {
        let f = classify_exit(Some(2), None, &log("boot-click-no-such-option.log"));
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(f.summary, "Error: No such option: --bogus");
        let f = classify_exit(Some(2), None, &log("boot-click-invalid-backend.log"));
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert!(
            f.summary
                .starts_with("Error: Invalid value for '--backend'"),
            "{}",
            f.summary
        );
        let f = classify_exit(Some(1), None, &log("boot-yaml-extra.log"));
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("Extra inputs are not permitted")),
            "{:?}",
            f.hints
        );
    }

    #[test]
    fn missing_engine_and_model() {
        let f = classify_exit(Some(1), None, &log("boot-missing.log"));
        assert_eq!(f.class, FailureClass::EngineMissing);
        assert_eq!(
            f.summary,
            "ModuleNotFoundError: No module named 'tensorrt_llm'"
        );
        assert_eq!(
            classify_exit(Some(127), None, "sh: trtllm-serve: not found").class,
            FailureClass::EngineMissing
        );
        let f = classify_exit(Some(1), None, &log("boot-model-not-found.log"));
        assert_eq!(f.class, FailureClass::ModelNotFound);
    }

    #[test]
    fn a_silent_death_crashed() {
        let f = classify_exit(None, Some(9), "[TRT-LLM] [I] Loading model");
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert_eq!(f.summary, "engine exited during boot (killed by signal 9)");
    }

    #[test]
    fn startup_facts_come_from_the_last_allocation() {
        let f = startup_facts(&log("boot-ok.log"));
        assert_eq!(f.kv_cache_gib, Some(61.86));
        assert_eq!(f.kv_cache_tokens, Some(579_232));
        assert_eq!(f.tokens_per_block, Some(32));
        assert_eq!(f.available_kv_gib, Some(61.87));
        assert_eq!(f.peak_gib, Some(10.42));
        assert_eq!(
            (f.max_seq_len, f.max_num_tokens, f.max_batch_size),
            (Some(40960), Some(8192), Some(2048))
        );
        assert_eq!(startup_facts("nothing"), StartupFacts::default());
    }

    #[test]
    fn prefixes_are_stripped() {
        assert_eq!(
            strip_prefix("[12/20/2025-04:21:10] [TRT-LLM] [RANK 0] [E] boom"),
            "boom"
        );
        assert_eq!(
            strip_prefix("[TensorRT-LLM][INFO] Number of tokens per block: 32."),
            "Number of tokens per block: 32."
        );
        assert_eq!(
            strip_prefix("Error: No such option: --bogus"),
            "Error: No such option: --bogus"
        );
    }
}
