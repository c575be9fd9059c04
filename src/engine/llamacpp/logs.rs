//! Reading llama-server's log: why a boot failed (failure class and the engine's own hint
//! lines) and what a good boot reported (slots, per-slot context, threads).
//!
//! The strings below were recorded from real failing boots of the llama.cpp build forge is
//! tested against (`tests/fixtures/llamacpp/*.log`, re-recorded by `record.sh` there) and
//! checked against llama.cpp's source (`common/arg.cpp`, `tools/server/server.cpp`,
//! `src/llama-context.cpp`, `ggml/src/ggml.c`).

use crate::engine::failure::log_has_any as has_any;
use crate::engine::failure::{Failure, FailureClass};

/// Lines that mean "does not fit in memory" (`ggml_aligned_malloc`, the CPU and GPU buffer
/// allocators in `ggml-backend.cpp`/`ggml-alloc.c`, `cudaMalloc failed: out of memory`, the
/// KV-cache and compute-buffer allocations in `llama-kv-cache.cpp`/`llama-context.cpp`,
/// weights in `llama-model.cpp`: "unable to allocate CPU buffer").
const OOM_PATTERNS: &[&str] = &[
    "insufficient memory",
    "failed to allocate buffer for kv cache",
    "failed to allocate buffer of size",
    "failed to allocate CPU buffer",
    "failed to allocate CUDA",
    "failed to allocate compute",
    "out of memory",
    "std::bad_alloc",
    "unable to allocate",
];
/// Lines that mean "the arguments (or the model file they name) are unusable": the
/// argument parser (`error: invalid argument: --x`, `error while handling argument "-t":
/// stoi`), context creation (`quantized V cache requires flash_attn to be enabled`), the
/// model loader (`failed to load model`) and assertions on the parameters (`GGML_ASSERT`).
const CONFIG_PATTERNS: &[&str] = &[
    "error: invalid argument:",
    "error while handling argument",
    "invalid value for",
    "unknown value for",
    "failed to create context",
    "failed to load model",
    "GGML_ASSERT",
    "requires flash_attn",
];
/// Lines that mean "llama-server is not installed (or cannot start)".
const MISSING_PATTERNS: &[&str] = &[
    "error while loading shared libraries",
    "llama-server: command not found",
    "llama-server: not found",
];
/// Lines that mean "the model file cannot be opened" (missing, unreadable).
const MODEL_PATTERNS: &[&str] = &["failed to open GGUF file"];
/// Lines worth showing to a human and an agent.
const HINT_PATTERNS: &[&str] = &[
    "error",
    "GGML_ASSERT",
    "failed",
    "insufficient memory",
    "requires",
    "couldn't bind",
    "n_ctx_seq",
    "rounding down",
];

/// Classify a boot that ended without becoming ready.
pub fn classify_exit(code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
    let class = if code == Some(127) || has_any(log, MISSING_PATTERNS) {
        FailureClass::EngineMissing
    } else if has_any(log, MODEL_PATTERNS) {
        FailureClass::ModelNotFound
    } else if has_any(log, OOM_PATTERNS) {
        FailureClass::InfeasibleOom
    } else if has_any(log, CONFIG_PATTERNS) {
        FailureClass::InfeasibleConfig
    } else {
        // Killed (the kernel's OOM killer sends SIGKILL too), a taken port, or a crash
        // without a message: not a property of the config as far as forge can tell.
        FailureClass::CrashedDuringBoot
    };
    let hints = hints(log);
    let summary = match hints.iter().rev().find(|h| !is_generic(h)) {
        Some(h) => h.clone(),
        None => format!(
            "llama-server exited during boot ({})",
            crate::engine::failure::describe_exit(code, signal)
        ),
    };
    Failure {
        class,
        exit_code: code,
        signal,
        summary,
        hints,
    }
}

/// Lines every failed model load ends with; a summary names the cause instead.
fn is_generic(line: &str) -> bool {
    line.contains("exiting due to")
        || line.contains("failed to create_context")
        || line.contains("failed to create context with model")
        || line.contains("common_init_")
}

/// The engine's own explanatory lines (at most 8; a repeated line counts where it last
/// appeared; timestamps, levels and component tags stripped; debugger backtraces skipped).
pub fn hints(log: &str) -> Vec<String> {
    crate::engine::failure::collect_hints(log, HINT_PATTERNS, |l| !is_backtrace(l), strip_prefix)
}

/// gdb output ggml prints after an abort (`#3 0x... in ggml_abort`, `[Inferior 1 ...]`).
fn is_backtrace(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('#') || t.starts_with('[') || t.starts_with("0x") || t.starts_with("Using host")
}

/// Remove the `0.00.011.801 E srv  ` timestamp, level and component tag llama.cpp's
/// logger prints.
pub fn strip_prefix(line: &str) -> &str {
    let t = line.trim();
    let mut parts = t.splitn(3, ' ');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(ts), Some(level), Some(rest))
            if is_timestamp(ts) && matches!(level, "I" | "W" | "E" | "D" | "T") =>
        {
            strip_tag(rest.trim_start())
        }
        _ => t,
    }
}

/// `srv    load_model: ...` → `load_model: ...` (a three-letter tag, then two spaces).
/// Decided on bytes: the five are ASCII when it matches, so the cut is a char boundary
/// whatever the line holds (`é€ failed…` must not panic a run).
fn strip_tag(s: &str) -> &str {
    match s.as_bytes() {
        [a, b, c, b' ', b' ', ..] if [a, b, c].iter().all(|x| x.is_ascii_lowercase()) => {
            s[5..].trim_start()
        }
        _ => s,
    }
}

fn is_timestamp(s: &str) -> bool {
    s.contains('.') && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// What a successful boot printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartupFacts {
    /// `n_slots = N`.
    pub slots: Option<u64>,
    /// `n_ctx_slot = N`: the context one request can use.
    pub ctx_per_slot: Option<u64>,
    /// `llama threadpool init, n_threads = N`.
    pub threads: Option<u64>,
    /// `listening on http://...` was printed.
    pub listening: bool,
}

/// Parse the startup lines.
pub fn startup_facts(log: &str) -> StartupFacts {
    StartupFacts {
        slots: number_after(log, "n_slots = "),
        ctx_per_slot: number_after(log, "n_ctx_slot = "),
        threads: number_after(log, "threadpool init, n_threads = "),
        listening: log.contains("llama_server: listening on"),
    }
}

/// The integer that follows `marker` on the last line containing it.
fn number_after(log: &str, marker: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.contains(marker))?;
    let rest = &line[line.find(marker)? + marker.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multibyte_character_at_the_tag_does_not_panic() {
        // `é` is 2 bytes and `€` 3: byte 3 falls inside `€`.
        assert_eq!(
            strip_tag("é€ failed to load model"),
            "é€ failed to load model"
        );
        assert_eq!(
            strip_prefix("0.00.011.801 E é€ failed to load model"),
            "é€ failed to load model"
        );
        assert_eq!(strip_tag("srv  load_model: x"), "load_model: x");
    }

    /// A recorded log and the exit code its last line gives.
    fn fixture(name: &str) -> (String, i32) {
        let path = format!(
            "{}/tests/fixtures/llamacpp/{name}.log",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("exit: "))
            .unwrap()
            .parse()
            .unwrap();
        (text, code)
    }

    fn classify(name: &str) -> Failure {
        let (log, code) = fixture(name);
        // A shell reports a death by signal N as 128 + N.
        if code > 128 {
            classify_exit(None, Some(code - 128), &log)
        } else {
            classify_exit(Some(code), None, &log)
        }
    }

    #[test]
    fn argument_errors_are_infeasible_config() {
        let f = classify("unknown_argument");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(f.summary, "error: invalid argument: --bogus-flag");
        let f = classify("invalid_threads");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(f.summary, "error while handling argument \"-t\": stoi");
        let f = classify("invalid_flash_attn");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert!(
            f.summary
                .contains("unknown value for --flash-attn: 'maybe'")
        );
        let f = classify("invalid_parallel");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert!(f.summary.contains("invalid value for n_parallel"));
    }

    #[test]
    fn model_and_context_errors() {
        let f = classify("model_missing");
        assert_eq!(f.class, FailureClass::ModelNotFound);
        assert_eq!(f.exit_code, Some(1));
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("failed to open GGUF file '/nonexistent/model.gguf'")),
            "{:?}",
            f.hints
        );
        assert_eq!(
            f.summary,
            "load_model: failed to load model, '/nonexistent/model.gguf'"
        );
        let f = classify("quantized_v_without_fa");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(
            f.summary,
            "llama_init_from_model: quantized V cache requires flash_attn to be enabled"
        );
    }

    #[test]
    fn kv_cache_that_does_not_fit_is_oom() {
        let f = classify("kv_cache_oom");
        assert_eq!(f.class, FailureClass::InfeasibleOom);
        assert!(
            f.hints
                .iter()
                .any(|h| h.contains("failed to allocate buffer for kv cache")),
            "{:?}",
            f.hints
        );
        assert_eq!(
            f.summary,
            "llama_init_from_model: failed to initialize the context: failed to allocate buffer for kv cache"
        );
    }

    #[test]
    fn assertion_abort_is_config_and_backtraces_are_not_hints() {
        let f = classify("assert_abort");
        assert_eq!(f.class, FailureClass::InfeasibleConfig);
        assert_eq!(f.signal, Some(6));
        assert!(
            f.summary.contains("GGML_ASSERT(n_outputs_max"),
            "{}",
            f.summary
        );
        assert!(f.hints.iter().all(|h| !h.starts_with('#')), "{:?}", f.hints);
    }

    #[test]
    fn taken_port_and_missing_engine() {
        let f = classify("port_in_use");
        assert_eq!(f.class, FailureClass::CrashedDuringBoot);
        assert!(f.summary.contains("couldn't bind HTTP server socket"));
        assert_eq!(
            classify_exit(Some(127), None, "").class,
            FailureClass::EngineMissing
        );
        let f = classify_exit(
            Some(127),
            None,
            "llama-server: error while loading shared libraries: libllama.so.0: cannot open shared object file: No such file or directory\n",
        );
        assert_eq!(f.class, FailureClass::EngineMissing);
        assert_eq!(
            classify_exit(
                None,
                Some(9),
                "0.00.001.000 I srv  llama_server: initializing ...\n"
            )
            .class,
            FailureClass::CrashedDuringBoot
        );
    }

    #[test]
    fn startup_lines_of_a_good_boot() {
        let (log, _) = fixture("boot_ok");
        let f = startup_facts(&log);
        assert_eq!(f.slots, Some(4));
        assert_eq!(f.ctx_per_slot, Some(8192));
        assert!(f.threads.is_some());
        assert!(f.listening);
        assert_eq!(
            strip_prefix("0.00.011.801 E cmn  common_init_: failed"),
            "common_init_: failed"
        );
        assert_eq!(
            strip_prefix("error: invalid argument: -x"),
            "error: invalid argument: -x"
        );
    }
}
