//! Engine logs are untrusted input: whatever bytes an engine writes, classifying a failed
//! boot or a crash must never panic the run. 10,000 random logs per property, each line
//! arbitrary UTF-8 — alone, or behind the prefixes the classifiers parse (llama.cpp's
//! `0.00.011.801 E srv  ` timestamp, level and tag; vLLM's `ERROR 05-13 04:10:00 [x.py:1] `
//! header; the patterns that select hint lines) so the parsing paths are reached, not only
//! the fall-throughs.

use forge::engine::adapter::Engine;
use forge::engine::failure::{collect_hints, tail};
use forge::engine::llamacpp::adapter::LlamacppEngine;
use forge::engine::llamacpp::legal::RunLimits;
use forge::engine::vllm::VllmArgs;
use forge::engine::vllm::adapter::VllmEngine;
use forge::engine::vllm::flags::Version;
use forge::engine::{llamacpp, vllm};
use proptest::prelude::*;

/// A line as an engine might print it.
fn line() -> impl Strategy<Value = String> {
    let rest = "\\PC{0,60}";
    prop_oneof![
        rest.prop_map(|s| s),
        (rest, rest).prop_map(|(a, b)| format!("0.00.011.801 E {a}  {b}")),
        (rest).prop_map(|a| format!("0.00.011.801 I srv  {a}")),
        "[a-z]{3}  \\PC{0,20}".prop_map(|a| a),
        (rest).prop_map(|a| format!("ERROR 05-13 04:10:00 [core.py:12] {a}")),
        (rest).prop_map(|a| format!("(EngineCore_DP0 pid=1) ERROR [x.py:1] {a}")),
        (rest).prop_map(|a| format!("torch.OutOfMemoryError: CUDA out of memory. {a}")),
        (rest).prop_map(|a| format!("ValueError: {a}")),
        (rest).prop_map(|a| format!("llama_init_from_model: failed {a}")),
        (rest).prop_map(|a| format!("n_slots = {a}")),
        (rest).prop_map(|a| format!("INFO 05-13 [gpu_worker.py:1] Available KV cache memory: {a}")),
        (rest).prop_map(|a| format!("maximum model length is {a}")),
    ]
}

fn log() -> impl Strategy<Value = String> {
    proptest::collection::vec(line(), 0..12).prop_map(|v| v.join("\n"))
}

fn exit() -> impl Strategy<Value = (Option<i32>, Option<i32>)> {
    (
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i32>()),
    )
}

fn engines() -> Vec<Box<dyn Engine>> {
    vec![
        Box::new(VllmEngine::real(vec!["vllm".into()], Version::CURRENT)),
        Box::new(LlamacppEngine {
            launcher: vec!["llama-server".into()],
            probe: None,
            limits: RunLimits::default(),
            builds: None,
            quant: None,
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(10_000))]

    #[test]
    fn vllm_classifiers_never_panic(log in log(), (code, signal) in exit()) {
        let f = vllm::logs::classify_exit(code, signal, &log);
        prop_assert!(!f.summary.is_empty());
        let _ = vllm::logs::hints(&log);
        let _ = vllm::logs::startup_facts(&log);
        let _ = vllm::logs::mentions_missing_vllm(&log);
    }

    #[test]
    fn llamacpp_classifiers_never_panic(log in log(), (code, signal) in exit()) {
        let f = llamacpp::logs::classify_exit(code, signal, &log);
        prop_assert!(!f.summary.is_empty());
        let _ = llamacpp::logs::hints(&log);
        let _ = llamacpp::logs::startup_facts(&log);
        for l in log.lines() {
            let s = llamacpp::logs::strip_prefix(l);
            prop_assert!(l.contains(s.trim()));
        }
    }

    #[test]
    fn every_engine_behind_the_seam_classifies_any_log(log in log(), (code, signal) in exit()) {
        for e in engines() {
            let f = e.classify_boot_failure(code, signal, &log);
            prop_assert!(!f.summary.is_empty());
            for h in e.log_hints(&log) {
                prop_assert!(!h.contains('\n'));
            }
        }
        let _ = tail(&log, 3);
        let _ = collect_hints(&log, &["error", "é"], |_| true, |l| l);
    }
}

#[test]
fn the_reported_panic_is_gone() {
    let log = "0.00.011.801 E é€ failed to load model\né€ failed to load model";
    for e in engines() {
        let _ = e.classify_boot_failure(Some(1), None, log);
        let _ = e.log_hints(log);
    }
    let _ = VllmArgs::default();
}
