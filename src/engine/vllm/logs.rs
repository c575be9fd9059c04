//! Reading vLLM's log: why a boot failed (failure class and hint lines) and what a good
//! boot reported (KV cache size, maximum concurrency, load and capture times).

use serde::{Deserialize, Serialize};

use crate::engine::failure::log_has_any as has_any;
use crate::engine::failure::{Failure, FailureClass, LogStyle, is_traceback_or_access};

/// Lines that mean "does not fit in memory".
const OOM_PATTERNS: &[&str] = &[
    "No available memory for the cache blocks",
    "larger than the available KV cache memory",
    "larger than the maximum number of tokens that can be stored in KV cache",
    "estimated maximum model length is",
    "is less than desired GPU memory utilization",
    "torch.OutOfMemoryError",
    "CUDA out of memory",
    "HIP out of memory",
];
/// Lines that mean "the arguments are invalid".
const CONFIG_PATTERNS: &[&str] = &[
    "error: unrecognized arguments",
    "error: argument ",
    "ValueError",
    "is not supported for the current GPU",
    "ValidationError",
    "TypeError",
];
/// Lines that mean "vLLM is not installed" (`No module named vllm` is matched by
/// [`mentions_missing_vllm`], which tells it from `No module named vllm_flash_attn`).
const MISSING_PATTERNS: &[&str] = &[
    "No module named 'vllm'",
    "vllm: command not found",
    "vllm: not found",
];
/// Lines that mean "the model cannot be found or opened": vLLM's own message (0.6 on), the
/// transformers and huggingface_hub errors before it, gated repositories, the simulator's.
const MODEL_PATTERNS: &[&str] = &[
    "Invalid repository ID or local directory specified",
    "is not a local folder and is not a valid model identifier",
    "RepositoryNotFoundError",
    "GatedRepoError",
    "Cannot access gated repo",
    "unknown model `",
];
/// Lines that mean "the port was taken": something else listens there.
const PORT_TAKEN_PATTERNS: &[&str] = &[
    "error while attempting to bind on address",
    "Address already in use",
    "address already in use",
];

/// True when the text says the `vllm` package (not one of its parts) cannot be imported.
pub fn mentions_missing_vllm(text: &str) -> bool {
    crate::engine::failure::mentions_missing_module(text, "vllm", MISSING_PATTERNS)
}
/// Lines worth showing to a human and an agent.
const HINT_PATTERNS: &[&str] = &[
    "estimated maximum model length is",
    "Available KV cache memory",
    "GPU KV cache size",
    "Maximum concurrency",
    "Minimum capability",
    "No available memory",
    "Try increasing",
    "Free memory on device",
    "out of memory",
    "Error",
    "error:",
];

/// How this engine's log reads.
const STYLE: LogStyle = LogStyle {
    explains: is_explanation,
    strip: strip_prefix,
};

/// Classify a boot that ended without becoming ready. The summary is the first line that
/// decided the class (the root cause, e.g. the CUDA OOM, not the `Engine core
/// initialization failed` that follows it), else the last explanatory line.
pub fn classify_exit(code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
    let (class, patterns): (FailureClass, &[&str]) =
        if code == Some(127) || mentions_missing_vllm(log) {
            (FailureClass::EngineMissing, MISSING_SUMMARY)
        } else if has_any(log, MODEL_PATTERNS) {
            (FailureClass::ModelNotFound, MODEL_PATTERNS)
        } else if has_any(log, PORT_TAKEN_PATTERNS) {
            (FailureClass::ForeignServer, PORT_TAKEN_PATTERNS)
        } else if has_any(log, OOM_PATTERNS) {
            (FailureClass::InfeasibleOom, OOM_PATTERNS)
        } else if code == Some(2) || has_any(log, CONFIG_PATTERNS) {
            (FailureClass::InfeasibleConfig, CONFIG_PATTERNS)
        } else {
            // Died during boot for no stated reason (killed, segfault): an infrastructure
            // failure as far as forge can tell.
            (FailureClass::CrashedDuringBoot, &[])
        };
    STYLE.failure(class, patterns, hints(log), (code, signal, log))
}

/// Summary lines for a missing engine.
const MISSING_SUMMARY: &[&str] = &["No module named", "not found"];

/// Not a traceback's source line (`raise X(`, `File "..."`) or an access-log line.
fn is_explanation(line: &str) -> bool {
    let t = strip_prefix(line);
    !is_traceback_or_access(t)
}

/// The engine's own explanatory lines (deduplicated, at most 8, log prefixes stripped).
pub fn hints(log: &str) -> Vec<String> {
    crate::engine::failure::collect_hints(log, HINT_PATTERNS, is_explanation, strip_prefix)
}

/// Remove vLLM's `INFO 05-13 04:10:00 [file.py:12] ` / `(EngineCore pid=1) ` prefixes.
fn strip_prefix(line: &str) -> &str {
    let mut s = line.trim();
    if let Some(i) = s.find("] ")
        && s[..i].contains('[')
        && s[..i].len() < 80
    {
        s = &s[i + 2..];
    }
    s
}

/// What a successful boot printed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StartupFacts {
    /// "GPU KV cache size: N tokens".
    pub kv_cache_tokens: Option<u64>,
    /// "Available KV cache memory: X GiB".
    pub kv_cache_gib: Option<f64>,
    /// "Maximum concurrency for L tokens per request: Cx".
    pub max_concurrency: Option<f64>,
    /// "Model loading took X GiB memory".
    pub weights_gib: Option<f64>,
    /// "Graph capturing finished in N secs".
    pub graph_capture_s: Option<f64>,
}

/// Parse the startup lines.
pub fn startup_facts(log: &str) -> StartupFacts {
    StartupFacts {
        kv_cache_tokens: number_after(log, "GPU KV cache size: ").map(|x| x as u64),
        kv_cache_gib: number_after(log, "Available KV cache memory: "),
        max_concurrency: number_after(log, "tokens per request: "),
        weights_gib: number_after(log, "Model loading took "),
        graph_capture_s: number_after(log, "Graph capturing finished in "),
    }
}

/// The number that follows `marker` on the last line containing it (commas allowed).
fn number_after(log: &str, marker: &str) -> Option<f64> {
    let line = log.lines().rev().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    let num: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    num.trim_end_matches('.').parse().ok()
}

/// The context length vLLM says would fit ("… the estimated maximum model length is
/// 77824."), when a line says it.
pub fn estimated_max_model_len(line: &str) -> Option<u64> {
    const MARK: &str = "estimated maximum model length is ";
    let rest = &line[line.find(MARK)? + MARK.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KV_TOO_SMALL: &str = "INFO 05-13 04:10:00 [gpu_model_runner.py:2000] Model loading took 14.99 GiB memory and 5.1 seconds\n\
ERROR 05-13 04:10:09 [core.py:700] ValueError: To serve at least one request with the models's max seq len (131072), (16.00 GiB KV cache is needed, which is larger than the available KV cache memory (9.50 GiB). Based on the available memory, the estimated maximum model length is 77824. Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.\n\
RuntimeError: Engine core initialization failed. See root cause above.\n";

    #[test]
    fn kv_too_small_is_oom_with_the_hint() {
        let f = classify_exit(Some(1), None, KV_TOO_SMALL);
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("estimated maximum model length is 77824")),
            "{:?}",
            f.hints
        );
        assert!(!f.hints[0].starts_with("INFO"));
        assert!(
            f.summary
                .starts_with("ValueError: To serve at least one request"),
            "{}",
            f.summary
        );
    }

    #[test]
    fn the_root_cause_is_the_summary_and_code_lines_are_no_hints() {
        let log = "(EngineCore_DP0 pid=7) ERROR 05-13 04:10:09 [core.py:708] torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.\n\
  File \"/usr/lib/vllm/v1/engine/utils.py\", line 887, in wait_for_engine_startup\n\
    raise RuntimeError(\n\
RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}\n\
INFO:     127.0.0.1:1 - \"GET /health HTTP/1.1\" 500 Internal Server Error\n";
        let f = classify_exit(Some(1), None, log);
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert_eq!(
            f.summary,
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB."
        );
        assert_eq!(f.hints.len(), 2, "{:?}", f.hints);
        assert!(f.hints[1].starts_with("RuntimeError: Engine core"));
    }

    #[test]
    fn argparse_and_value_errors_are_config() {
        let f = classify_exit(
            Some(2),
            None,
            "usage: vllm serve [model_tag] [options]\nvllm serve: error: unrecognized arguments: --swap-space 4\n",
        );
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(
            f.summary,
            "vllm serve: error: unrecognized arguments: --swap-space 4"
        );
        let f = classify_exit(
            Some(1),
            None,
            "ValueError: max_num_batched_tokens (64) must be greater than or equal to max_num_seqs (128).\n",
        );
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
    }

    #[test]
    fn missing_engine_and_unknown_deaths() {
        assert_eq!(
            classify_exit(Some(127), None, "").class,
            FailureClass::EngineMissing
        );
        assert_eq!(
            classify_exit(Some(1), None, "/usr/bin/python3: No module named vllm\n").class,
            FailureClass::EngineMissing
        );
        assert_eq!(
            classify_exit(None, Some(9), "INFO starting\n").class,
            FailureClass::CrashedDuringBoot
        );
        for typo in [
            "ValueError: Invalid repository ID or local directory specified: 'Qwen/Qwen2.5-7B-Instrct'.",
            "OSError: Qwen/x is not a local folder and is not a valid model identifier listed on 'https://huggingface.co/models'",
            "huggingface_hub.errors.GatedRepoError: 403 Client Error. Cannot access gated repo for url",
        ] {
            let f = classify_exit(Some(1), None, &format!("INFO starting\n{typo}\n"));
            assert_eq!(f.class, FailureClass::ModelNotFound, "{typo}");
            assert!(
                typo.contains(&f.summary) || f.summary.contains("Cannot access"),
                "{}",
                f.summary
            );
        }
        // A part of vLLM missing is a broken install, not a missing engine.
        let broken = "Failed to import from vllm._C: ModuleNotFoundError(\"No module named 'vllm._C'\")\n\
            ModuleNotFoundError: No module named vllm_flash_attn\n";
        assert!(!mentions_missing_vllm(broken));
        assert!(mentions_missing_vllm(
            "ModuleNotFoundError: No module named 'vllm'\n"
        ));
        assert!(mentions_missing_vllm(
            "/usr/bin/python3: No module named vllm\n"
        ));
        assert!(mentions_missing_vllm(
            "No module named vllm.entrypoints.cli.main\n"
        ));
    }

    #[test]
    fn a_taken_port_is_a_foreign_server() {
        let log = "ERROR:    [Errno 98] error while attempting to bind on address \
                   ('127.0.0.1', 8000): address already in use\n";
        assert_eq!(
            classify_exit(Some(1), None, log).class,
            FailureClass::ForeignServer
        );
    }

    #[test]
    fn startup_numbers() {
        let log = "INFO 05-13 04:10:00 [gpu_worker.py:1] Available KV cache memory: 54.12 GiB\n\
INFO 05-13 04:10:00 [kv_cache_utils.py:1] GPU KV cache size: 443,328 tokens\n\
INFO 05-13 04:10:00 [kv_cache_utils.py:1] Maximum concurrency for 131,072 tokens per request: 3.38x\n\
INFO 05-13 04:10:00 [gpu_model_runner.py:1] Graph capturing finished in 12 secs, took 0.55 GiB\n";
        let f = startup_facts(log);
        assert_eq!(f.kv_cache_tokens, Some(443_328));
        assert_eq!(f.kv_cache_gib, Some(54.12));
        assert_eq!(f.max_concurrency, Some(3.38));
        assert_eq!(f.graph_capture_s, Some(12.0));
        assert_eq!(f.weights_gib, None);
    }
}
