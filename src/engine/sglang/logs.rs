//! Reading SGLang's log: why a boot failed (failure class, summary, hint lines) and what a
//! good boot resolved (the scheduler's `max_total_num_tokens=…` line). Every pattern is
//! SGLang's own text (paths relative to the 0.5.23 wheel's `sglang/`), or, where named,
//! Python's, argparse's, huggingface_hub's or uvicorn's.
//!
//! A CUDA-graph capture failure is `infeasible_oom` when its cause is memory (the usual
//! one: SGLang's own "Possible solutions" are all about memory) and `infeasible_config`
//! otherwise (a kernel the GPU or model cannot run). Both are properties of the recipe,
//! never retried; the class tells the agent whether to shrink memory or change kernels.

use serde::{Deserialize, Serialize};

use crate::engine::failure::log_has_any as has_any;
use crate::engine::failure::{
    Failure, FailureClass, LogStyle, collect_hints, is_traceback_or_access,
};

/// "Does not fit in memory".
const OOM_PATTERNS: &[&str] = &[
    // srt/model_executor/pool_configurator.py, MemoryPoolConfig.__post_init__
    "Not enough memory. Please try to increase --mem-fraction-static",
    // srt/mem_cache/kv_cache_configurator.py, _profile_available_bytes
    "Loaded weights leave no GPU memory for the KV cache",
    // PyTorch's allocator
    "torch.OutOfMemoryError",
    "CUDA out of memory",
    "HIP out of memory",
];
/// A CUDA-graph capture failed (srt/model_executor/runner/decode_cuda_graph_runner.py and
/// the EAGLE draft runners: `f"Capture cuda graph failed: {e}\n{CUDA_GRAPH_CAPTURE_FAILED_MSG}"`).
const CAPTURE_FAILED: &str = "Capture cuda graph failed";
/// "The arguments are invalid": argparse's exit-2 messages (prog `sglang serve`,
/// srt/server_args.py `prepare_server_args`), and the validation hooks' asserts and
/// ValueErrors (srt/arg_groups/validation_hook.py and siblings).
const CONFIG_PATTERNS: &[&str] = &[
    "error: unrecognized arguments",
    "error: ambiguous option",
    "error: argument ",
    "invalid choice",
    "AssertionError",
    "ValueError",
    "NotImplementedError",
    "is not supported",
];
/// "SGLang is not installed" (Python's import error, the shell's).
const MISSING_PATTERNS: &[&str] = &[
    "No module named 'sglang'",
    "sglang: command not found",
    "sglang: not found",
];
/// "The model cannot be found or opened" (huggingface_hub and transformers; SGLang's
/// sglang/cli/utils.py `get_model_path` for a missing --model-path).
const MODEL_PATTERNS: &[&str] = &[
    "is not a local folder and is not a valid model identifier",
    "RepositoryNotFoundError",
    "GatedRepoError",
    "Cannot access gated repo",
    "Repo id must be in the form",
    "Error: --model-path is required",
    "unknown model `",
];
/// "The port was taken" (uvicorn's bind error; srt/utils/network.py
/// `wait_port_available`: `f"{port_name} at {port} is not available …"`).
const PORT_TAKEN_PATTERNS: &[&str] = &[
    "error while attempting to bind on address",
    "Address already in use",
    "address already in use",
    "is not available in",
];
/// The scheduler died or reported failure (srt/entrypoints/engine.py
/// `_scheduler_died_error`, `_wait_for_scheduler_ready`): the cause is elsewhere.
const DIED_PATTERNS: &[&str] = &[
    "scheduler died during initialization",
    "Initialization failed. Please see the error messages above.",
];
/// Lines worth keeping with a failure.
const HINT_PATTERNS: &[&str] = &[
    "Not enough memory",
    "out of memory",
    "OutOfMemoryError",
    "Capture cuda graph failed",
    // CUDA_GRAPH_CAPTURE_FAILED_MSG, srt/model_executor/runner_backend_utils/__init__.py
    "Possible solutions",
    "set --mem-fraction-static to a smaller value",
    "set --cuda-graph-max-bs-decode to a smaller value",
    "set --cuda-graph-max-bs to a smaller value",
    "disable decode CUDA graph",
    "disable cuda graph by --disable-cuda-graph",
    "scheduler died during initialization",
    "Initialization failed",
    // srt/managers/scheduler.py (runtime)
    "Prefill out of memory",
    "Decode out of memory",
    "KV cache pool is full",
    "max_total_num_tokens=",
    "Error",
    "error:",
];

/// True when the text says the `sglang` package itself cannot be imported (not one of its
/// dependencies, not `sglang.srt.something`).
pub fn mentions_missing_sglang(text: &str) -> bool {
    crate::engine::failure::mentions_missing_module(text, "sglang", MISSING_PATTERNS)
}

/// How this engine's log reads.
const STYLE: LogStyle = LogStyle {
    explains: is_explanation,
    strip: strip_prefix,
};

/// Classify a boot that ended without becoming ready. The summary is the root cause line
/// (the CUDA OOM, not the `Initialization failed` that follows it).
pub fn classify_exit(code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
    let (class, patterns) = class_of(code, log);
    STYLE.failure(class, patterns, hints(log), (code, signal, log))
}

/// The class and the patterns whose first line is the summary.
fn class_of(code: Option<i32>, log: &str) -> (FailureClass, &'static [&'static str]) {
    if code == Some(127) || mentions_missing_sglang(log) {
        (
            FailureClass::EngineMissing,
            &["No module named", "not found"],
        )
    } else if has_any(log, MODEL_PATTERNS) {
        (FailureClass::ModelNotFound, MODEL_PATTERNS)
    } else if has_any(log, PORT_TAKEN_PATTERNS) {
        (FailureClass::ForeignServer, PORT_TAKEN_PATTERNS)
    } else if log.contains(CAPTURE_FAILED) {
        let class = if has_any(log, OOM_PATTERNS) {
            FailureClass::InfeasibleOom
        } else {
            FailureClass::InfeasibleConfig
        };
        (class, &[CAPTURE_FAILED])
    } else if has_any(log, OOM_PATTERNS) {
        (FailureClass::InfeasibleOom, OOM_PATTERNS)
    } else if code == Some(2) || has_any(log, CONFIG_PATTERNS) {
        (FailureClass::InfeasibleConfig, CONFIG_PATTERNS)
    } else if has_any(log, DIED_PATTERNS) {
        // A scheduler killed (the OS OOM killer, -9) or failing for a reason this table
        // does not know: worth one retry, with the cause lines as hints.
        (FailureClass::CrashedDuringBoot, DIED_PATTERNS)
    } else {
        (FailureClass::CrashedDuringBoot, &[])
    }
}

/// Not a traceback's source line, not an access-log line, not the settings dump.
fn is_explanation(line: &str) -> bool {
    let t = strip_prefix(line);
    !(is_traceback_or_access(t) || t.starts_with("server_args="))
}

/// SGLang's own explanatory lines (deduplicated, at most 8, log prefixes stripped); the
/// exception line that ended a traceback is kept even when no pattern names it (the cause
/// of `Initialization failed`).
pub fn hints(log: &str) -> Vec<String> {
    let mut patterns: Vec<&str> = HINT_PATTERNS.to_vec();
    let causes = exception_lines(log);
    patterns.extend(causes.iter().map(String::as_str));
    collect_hints(log, &patterns, is_explanation, strip_prefix)
}

/// `SomeError: message` lines (the last line of each Python traceback).
fn exception_lines(log: &str) -> Vec<String> {
    log.lines()
        .map(strip_prefix)
        .filter(|l| {
            l.split_once(": ").is_some_and(|(ty, _)| {
                !ty.contains(' ')
                    && (ty.ends_with("Error") || ty.ends_with("Exception") || ty == "Exception")
            })
        })
        .map(str::to_string)
        .collect()
}

/// Remove SGLang's `[2026-05-13 04:10:00 TP0] ` prefix (srt/utils/common.py
/// `configure_logger`: `f"[%(asctime)s{maybe_ms}{prefix}] %(message)s"`) and uvicorn's
/// `INFO:     `.
fn strip_prefix(line: &str) -> &str {
    let mut s = line.trim();
    if s.starts_with('[')
        && let Some(i) = s.find("] ")
        && i < 60
        && s[1..i].starts_with(|c: char| c.is_ascii_digit())
    {
        s = s[i + 2..].trim_start();
    }
    for level in ["INFO:", "ERROR:", "WARNING:"] {
        if let Some(rest) = s.strip_prefix(level) {
            s = rest.trim_start();
        }
    }
    s
}

/// What the scheduler resolved at startup (srt/managers/scheduler.py, logged by TP rank 0:
/// `max_total_num_tokens=…, chunked_prefill_size=…, max_prefill_tokens=…,
/// max_running_requests=…, context_len=…, available_gpu_mem=… GB`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// Tokens the KV pool holds.
    pub max_total_num_tokens: Option<u64>,
    /// The prefill chunk (-1: chunking off).
    pub chunked_prefill_size: Option<i64>,
    /// Token budget of one prefill batch.
    pub max_prefill_tokens: Option<u64>,
    /// Requests decoded together.
    pub max_running_requests: Option<u64>,
    /// The context limit.
    pub context_len: Option<u64>,
    /// GPU memory left after the pool and graphs, GB (`available_cpu_mem` on CPU).
    pub available_gpu_mem_gb: Option<f64>,
}

/// The last resolved-values line of a log, parsed; `None` when there is none.
pub fn resolved(log: &str) -> Option<Resolved> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("max_total_num_tokens=") && l.contains("context_len="))?;
    let field = |key: &str| -> Option<&str> {
        let at = line.find(&format!("{key}="))? + key.len() + 1;
        line[at..].split([',', ' ']).next()
    };
    let mem = field("available_gpu_mem").or_else(|| field("available_cpu_mem"));
    Some(Resolved {
        max_total_num_tokens: field("max_total_num_tokens").and_then(|v| v.parse().ok()),
        chunked_prefill_size: field("chunked_prefill_size").and_then(|v| v.parse().ok()),
        max_prefill_tokens: field("max_prefill_tokens").and_then(|v| v.parse().ok()),
        max_running_requests: field("max_running_requests").and_then(|v| v.parse().ok()),
        context_len: field("context_len").and_then(|v| v.parse().ok()),
        available_gpu_mem_gb: mem.and_then(|v| v.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str) -> String {
        let p = format!(
            "{}/tests/fixtures/sglang/logs/{name}.log",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(p).unwrap()
    }

    fn class(code: i32, name: &str) -> Failure {
        classify_exit(Some(code), None, &log(name))
    }

    #[test]
    fn startup_oom_and_cuda_oom() {
        let f = class(1, "oom-startup");
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert_eq!(
            f.summary,
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static. Current value: mem_fraction_static=0.3"
        );
        let f = class(1, "cuda-oom");
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert!(
            f.summary
                .starts_with("torch.OutOfMemoryError: CUDA out of memory"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn cuda_graph_capture_keeps_sglangs_solutions() {
        let f = class(1, "cudagraph-oom");
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert!(
            f.summary
                .starts_with("Exception: Capture cuda graph failed: CUDA out of memory"),
            "{}",
            f.summary
        );
        for h in [
            "Possible solutions:",
            "1. set --mem-fraction-static to a smaller value (e.g., 0.8 or 0.7)",
            "2. set --cuda-graph-max-bs-decode to a smaller value (e.g., 16)",
        ] {
            assert!(f.hints.iter().any(|x| x == h), "{h}: {:?}", f.hints);
        }
        let f = class(1, "cudagraph-kernel");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert!(f.summary.contains("no kernel image"), "{}", f.summary);
    }

    #[test]
    fn dead_schedulers_are_crashes_with_their_cause() {
        let f = class(1, "scheduler-died");
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert!(
            f.summary.starts_with(
                "RuntimeError: Rank 0 scheduler died during initialization (exit code: -9)"
            ),
            "{}",
            f.summary
        );
        let f = class(1, "init-failed");
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert!(
            f.summary
                .starts_with("RuntimeError: Initialization failed."),
            "{}",
            f.summary
        );
        assert!(
            f.hints
                .iter()
                .any(|h| h.starts_with("torch.distributed.DistNetworkError: The server socket")),
            "{:?}",
            f.hints
        );
        assert!(
            !f.hints.iter().any(|h| h.starts_with("File \"")),
            "{:?}",
            f.hints
        );
    }

    #[test]
    fn argparse_and_validation_are_config() {
        for (name, summary) in [
            (
                "argparse-unrecognized",
                "sglang serve: error: unrecognized arguments: --bogus-flag 1",
            ),
            (
                "argparse-choice",
                "sglang serve: error: argument --schedule-policy: invalid choice: 'foo'",
            ),
            (
                "argparse-ambiguous",
                "sglang serve: error: ambiguous option: --cuda-graph-max-bs could match",
            ),
        ] {
            let f = class(2, name);
            assert_eq!(f.class, FailureClass::InfeasibleConfig, "{name}");
            assert!(f.summary.starts_with(summary), "{name}: {}", f.summary);
            assert_eq!(f.exit_code, Some(2));
        }
        let f = class(1, "assertion");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(
            f.summary,
            "AssertionError: chunked_prefill_size must be divisible by page_size"
        );
    }

    #[test]
    fn missing_engine_model_and_port() {
        let f = class(1, "missing");
        assert_eq!(f.class, FailureClass::EngineMissing);
        assert_eq!(f.summary, "ModuleNotFoundError: No module named 'sglang'");
        assert_eq!(
            classify_exit(Some(127), None, "").class,
            FailureClass::EngineMissing
        );
        assert!(mentions_missing_sglang(
            "/usr/bin/python3: No module named sglang.launch_server\n"
        ));
        assert!(!mentions_missing_sglang(
            "ModuleNotFoundError: No module named 'sglang_router'\n"
        ));
        let f = class(1, "model-not-found");
        assert_eq!(f.class, FailureClass::ModelNotFound);
        assert!(
            f.summary.contains("RepositoryNotFoundError"),
            "{}",
            f.summary
        );
        assert_eq!(class(1, "port-taken").class, FailureClass::ForeignServer);
        let f = classify_exit(None, Some(9), "[2026-05-13 04:09:50] starting\n");
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert_eq!(f.summary, "engine exited during boot (killed by signal 9)");
    }

    #[test]
    fn the_resolved_line() {
        let r = resolved(&log("ready")).unwrap();
        assert_eq!(
            r,
            Resolved {
                max_total_num_tokens: Some(413_184),
                chunked_prefill_size: Some(8192),
                max_prefill_tokens: Some(16384),
                max_running_requests: Some(4096),
                context_len: Some(40960),
                available_gpu_mem_gb: Some(13.2),
            }
        );
        let cpu = "[x] max_total_num_tokens=10, chunked_prefill_size=-1, max_prefill_tokens=16384, max_running_requests=5, context_len=2048, available_cpu_mem=3.50 GB";
        let r = resolved(cpu).unwrap();
        assert_eq!(r.chunked_prefill_size, Some(-1));
        assert_eq!(r.available_gpu_mem_gb, Some(3.5));
        assert_eq!(resolved("nothing"), None);
        assert!(
            hints(&log("ready"))
                .iter()
                .any(|h| h.starts_with("max_total_num_tokens=413184"))
        );
    }
}
