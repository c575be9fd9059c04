//! Parser, renderer and round-trip tests for the `vllm serve` flag surface. Expected
//! error texts are Python 3.12 argparse's, worked out by hand from its source.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::engine::vllm::{KvCacheDtype, PerformanceMode, SchedulingPolicy};

const V33: Version = Version::V0_33;
const V10: Version = Version::V0_10;

fn argv(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn ok(s: &str) -> VllmArgs {
    parse(&argv(s), V33).unwrap().0
}

fn err(s: &str, v: Version) -> String {
    let e = parse(&argv(s), v).unwrap_err();
    let text = e.to_string();
    let (usage, rest) = text.split_once('\n').unwrap();
    assert_eq!(usage, "usage: vllm serve [model_tag] [options]");
    rest.strip_prefix("vllm serve: error: ")
        .unwrap()
        .to_string()
}

#[test]
fn unknown_flags_are_collected_and_reported_together() {
    assert_eq!(err("m --foo 1", V33), "unrecognized arguments: --foo 1");
    assert_eq!(
        err("m --foo=1 --max-num-seqs 4 extra", V33),
        "unrecognized arguments: --foo=1 extra"
    );
    assert_eq!(ArgparseError::EXIT_CODE, 2);
}

#[test]
fn removed_flags_are_unknown_now_but_accepted_in_0_10() {
    for flag in ["--swap-space 4", "--max-num-partial-prefills 2"] {
        let msg = err(&format!("m {flag}"), V33);
        assert_eq!(msg, format!("unrecognized arguments: {flag}"));
    }
    let (a, ignored) = parse(&argv("m --swap-space 4 --disable-log-requests"), V10).unwrap();
    assert_eq!(a.model, "m");
    assert_eq!(ignored, vec!["--swap-space", "--disable-log-requests"]);
    assert_eq!(
        err("m --disable-chunked-prefill", V10),
        "unrecognized arguments: --disable-chunked-prefill"
    );
    assert_eq!(
        err("m --disable-prefix-caching", V10),
        "unrecognized arguments: --disable-prefix-caching"
    );
}

#[test]
fn disable_spellings_are_negations_in_0_33() {
    // The shared notes call these removed; vLLM 0.33's own help lists them as the
    // negative half of --enable-x (EnableDisableAction).
    let a = ok("m --disable-chunked-prefill --disable-prefix-caching");
    assert_eq!(a.enable_chunked_prefill, Some(false));
    assert_eq!(a.enable_prefix_caching, Some(false));
    let p = parse_full(&argv("m --disable-log-requests"), V33).unwrap();
    assert!(!p.server.enable_log_requests);
    let p = parse_full(&argv("m --enable-log-requests"), V33).unwrap();
    assert!(p.server.enable_log_requests);
    // The old --no-enable-x spelling is still accepted (hidden from help).
    assert_eq!(
        ok("m --no-enable-prefix-caching").enable_prefix_caching,
        Some(false)
    );
    assert_eq!(
        ok("m --device-memory-utilization 0.5").gpu_memory_utilization,
        Some(0.5)
    );
}

#[test]
fn conversion_errors_name_the_type_as_argparse_does() {
    assert_eq!(
        err("m --max-num-seqs abc", V33),
        "argument --max-num-seqs: invalid int value: 'abc'"
    );
    assert_eq!(
        err("m --max-num-batched-tokens lots", V33),
        "argument --max-num-batched-tokens: invalid human_readable_int value: 'lots'"
    );
    assert_eq!(
        err("m --seed x", V33),
        "argument --seed: Value x cannot be converted to <class 'int'>."
    );
    assert_eq!(
        err("m --gpu-memory-utilization high", V33),
        "argument --gpu-memory-utilization/--device-memory-utilization: invalid float value: 'high'"
    );
    assert_eq!(
        err("m -tp two", V33),
        "argument --tensor-parallel-size/-tp: invalid int value: 'two'"
    );
}

#[test]
fn invalid_choices_list_the_choices_unquoted() {
    assert_eq!(
        err("m --kv-cache-dtype bf16", V33),
        "argument --kv-cache-dtype: invalid choice: 'bf16' (choose from auto, bfloat16, \
         float16, fp8, fp8_e4m3, fp8_e5m2)"
    );
    assert_eq!(
        err("m --block-size 12", V33),
        "argument --block-size: invalid choice: '12' (choose from 1, 8, 16, 32, 64, 128, 256)"
    );
    assert_eq!(
        err("m -q gguf", V33).split(" (choose").next().unwrap(),
        "argument --quantization/-q: invalid choice: 'gguf'"
    );
    assert_eq!(ok("m -q awq").quantization.as_deref(), Some("awq"));
    assert_eq!(
        parse(&argv("m -q gguf"), V10)
            .unwrap()
            .0
            .quantization
            .as_deref(),
        Some("gguf")
    );
}

#[test]
fn missing_values_and_explicit_switch_values() {
    assert_eq!(
        err("m --max-num-seqs", V33),
        "argument --max-num-seqs: expected one argument"
    );
    assert_eq!(
        err("m --max-num-seqs --port 1", V33),
        "argument --max-num-seqs: expected one argument"
    );
    assert_eq!(
        err("m --served-model-name", V33),
        "argument --served-model-name: expected at least one argument"
    );
    assert_eq!(
        err("m --enforce-eager=1", V33),
        "argument --enforce-eager/--no-enforce-eager: ignored explicit argument '1'"
    );
    assert_eq!(
        err("m --disable-log-stats=yes", V33),
        "argument --disable-log-stats: ignored explicit argument 'yes'"
    );
}

#[test]
fn equals_form_aliases_and_underscores() {
    let a = ok("m --max-num-seqs=64 -tp 2 -pp=2 -dp 1 --max_num_batched_tokens 8k");
    assert_eq!(a.max_num_seqs, Some(64));
    assert_eq!(a.tensor_parallel_size, Some(2));
    assert_eq!(a.pipeline_parallel_size, Some(2));
    assert_eq!(a.data_parallel_size, Some(1));
    assert_eq!(a.max_num_batched_tokens, Some(8000));
    assert_eq!(ok("m --max-model-len 32K").max_model_len, Some(32768));
    assert_eq!(
        ok("m --max-num-seqs 8 --max-num-seqs 16").max_num_seqs,
        Some(16)
    );
}

#[test]
fn optimization_levels() {
    for s in ["m -O3", "m -O 3", "m -O=3", "m --optimization-level 3"] {
        assert_eq!(ok(s).optimization_level, Some(3), "{s}");
    }
    assert_eq!(ok("m -O0").optimization_level, Some(0));
    assert_eq!(
        err("m -O5", V33),
        "argument --optimization-level: invalid choice: '5' (choose from 0, 1, 2, 3)"
    );
    let old = parse(&argv("m -O3"), V10).unwrap().0;
    assert_eq!(old.optimization_level, Some(3));
    let old = parse(&argv("m -O {\"level\":1}"), V10).unwrap().0;
    assert_eq!(old.optimization_level, Some(1));
}

#[test]
fn boolean_optional_actions() {
    let a = ok("m --no-enable-prefix-caching --enable-chunked-prefill --enforce-eager");
    assert_eq!(a.enable_prefix_caching, Some(false));
    assert_eq!(a.enable_chunked_prefill, Some(true));
    assert_eq!(a.enforce_eager, Some(true));
    assert_eq!(ok("m --no-async-scheduling").async_scheduling, Some(false));
    assert_eq!(ok("m").async_scheduling, None);
}

#[test]
fn json_flags_and_dotted_keys() {
    let a = ok("m -sc {\"method\":\"ngram\",\"num_speculative_tokens\":3}");
    assert_eq!(
        a.speculative_config,
        Some(serde_json::json!({"method": "ngram", "num_speculative_tokens": 3}))
    );
    let b = ok("m --speculative-config.method ngram --speculative-config.num_speculative_tokens=3");
    assert_eq!(b.speculative_config, a.speculative_config);
    let c = ok("m -cc {\"cudagraph_capture_sizes\":[1,2,4],\"max_cudagraph_capture_size\":4}");
    assert_eq!(c.cudagraph_capture_sizes, Some(vec![1, 2, 4]));
    assert_eq!(c.max_cudagraph_capture_size, Some(4));
    assert_eq!(
        err("m -sc {bad", V33),
        "argument --speculative-config/-sc: Value {bad cannot be converted to <function loads>."
    );
}

#[test]
fn abbreviations_follow_argparse() {
    assert_eq!(ok("m --max-num-se 8").max_num_seqs, Some(8));
    assert_eq!(
        err("m --max-num 8", V33),
        "ambiguous option: --max-num could match --max-num-batched-tokens, --max-num-seqs"
    );
    assert_eq!(ok("m -qawq").quantization.as_deref(), Some("awq"));
}

#[test]
fn lists_negatives_and_positionals() {
    let p = parse_full(&argv("m --served-model-name a b --port 9000"), V33).unwrap();
    assert_eq!(p.server.served_model_names, vec!["a", "b"]);
    assert_eq!(p.args.served_model_name.as_deref(), Some("a"));
    assert_eq!(p.args.port, Some(9000));
    assert_eq!(
        ok("m --cudagraph-capture-sizes 1 2 4").cudagraph_capture_sizes,
        Some(vec![1, 2, 4])
    );
    assert_eq!(ok("--max-num-seqs 4 m").model, "m");
    assert_eq!(
        err("m --long-prefill-token-threshold -5", V33),
        "argument --long-prefill-token-threshold: invalid int value: '-5'"
    );
}

#[test]
fn version_differences() {
    assert_eq!(
        err("m --performance-mode throughput", V10),
        "unrecognized arguments: --performance-mode throughput"
    );
    assert_eq!(
        ok("m --performance-mode throughput").performance_mode,
        Some(PerformanceMode::Throughput)
    );
    let old = parse(&argv("m --cuda-graph-sizes 1 2"), V10).unwrap().0;
    assert_eq!(old.cudagraph_capture_sizes, Some(vec![1, 2]));
    assert_eq!(
        err("m --kv-cache-dtype bfloat16", V10),
        "argument --kv-cache-dtype: invalid choice: 'bfloat16' (choose from auto, fp8, \
         fp8_e4m3, fp8_e5m2)"
    );
}

#[test]
fn server_options_and_non_default_line_never_show_the_key() {
    let p = parse_full(
        &argv("m --api-key s3cret --enable-prompt-tokens-details --max-num-seqs 8"),
        V33,
    )
    .unwrap();
    assert_eq!(p.server.api_key.as_deref(), Some("s3cret"));
    assert!(p.server.prompt_tokens_details);
    let line = p.non_default_repr();
    assert_eq!(
        line,
        "{'model_tag': 'm', 'enable_prompt_tokens_details': True, 'max_num_seqs': 8, \
         'model': 'm'}"
    );
    assert!(!line.contains("s3cret"));
}

#[test]
fn help_requests_stop_parsing() {
    let p = parse_full(&argv("m --bogus --help=all"), V33).unwrap();
    assert_eq!(p.help.as_deref(), Some("all"));
    assert_eq!(
        parse_full(&argv("-h"), V33).unwrap().help.as_deref(),
        Some("")
    );
}

#[test]
fn render_is_deterministic_and_checked() {
    let a = VllmArgs {
        model: "meta-llama/Llama-3.1-8B-Instruct".into(),
        max_num_seqs: Some(128),
        tensor_parallel_size: Some(2),
        enable_prefix_caching: Some(false),
        kv_cache_dtype: Some(KvCacheDtype::Fp8),
        optimization_level: Some(3),
        gpu_memory_utilization: Some(0.9),
        ..VllmArgs::default()
    };
    assert_eq!(
        render(&a, V33).unwrap(),
        argv(
            "meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 \
             --gpu-memory-utilization 0.9 --kv-cache-dtype fp8 --disable-prefix-caching \
             --max-num-seqs 128 -O3"
        )
    );
    let bad_tp = VllmArgs {
        tensor_parallel_size: Some(0),
        ..a.clone()
    };
    assert!(matches!(
        render(&bad_tp, V33),
        Err(RenderError::Invalid {
            flag: "--tensor-parallel-size",
            ..
        })
    ));
    let bf16 = VllmArgs {
        kv_cache_dtype: Some(KvCacheDtype::Bfloat16),
        ..a.clone()
    };
    assert!(render(&bf16, V33).is_ok());
    assert!(matches!(
        render(&bf16, V10),
        Err(RenderError::Invalid { .. })
    ));
    let perf = VllmArgs {
        performance_mode: Some(PerformanceMode::Throughput),
        ..a.clone()
    };
    assert_eq!(
        render(&perf, V10),
        Err(RenderError::NotInVersion {
            flag: "--performance-mode",
            version: V10
        })
    );
    let sneaky = VllmArgs {
        served_model_name: Some("--api-key".into()),
        ..a.clone()
    };
    assert!(render(&sneaky, V33).is_err());
    let util = VllmArgs {
        gpu_memory_utilization: Some(1.5),
        ..a
    };
    assert!(render(&util, V33).is_err());
}

#[test]
fn render_uses_the_old_spelling_for_old_versions() {
    let a = VllmArgs {
        model: "m".into(),
        cudagraph_capture_sizes: Some(vec![1, 2, 4]),
        optimization_level: Some(2),
        ..VllmArgs::default()
    };
    assert_eq!(
        render(&a, V10).unwrap(),
        argv("m --cuda-graph-sizes 1 2 4 -O2")
    );
    assert_eq!(
        render(&a, V33).unwrap(),
        argv("m --cudagraph-capture-sizes 1 2 4 -O2")
    );
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn maybe<T>(rng: &mut ChaCha8Rng, f: impl FnOnce(&mut ChaCha8Rng) -> T) -> Option<T> {
    rng.random_bool(0.5).then(|| f(rng))
}

/// A random `VllmArgs` that `version` can express.
fn random_args(rng: &mut ChaCha8Rng, version: Version) -> VllmArgs {
    let new = version >= Version::new(0, 30, 0);
    let kv: &[KvCacheDtype] = if new {
        &[
            KvCacheDtype::Auto,
            KvCacheDtype::Bfloat16,
            KvCacheDtype::Float16,
            KvCacheDtype::Fp8,
        ]
    } else {
        &[KvCacheDtype::Auto, KvCacheDtype::Fp8, KvCacheDtype::Fp8E5m2]
    };
    VllmArgs {
        model: pick(rng, &["m", "org/Model-7B", "/models/x"]).to_string(),
        served_model_name: maybe(rng, |r| pick(r, &["a", "b c", "srv"]).to_string()),
        host: maybe(rng, |r| pick(r, &["127.0.0.1", "::1"]).to_string()),
        port: maybe(rng, |r| r.random_range(0..=u16::MAX)),
        max_num_seqs: maybe(rng, |r| r.random_range(1..4096)),
        max_num_batched_tokens: maybe(rng, |r| r.random_range(1..100_000)),
        enable_prefix_caching: maybe(rng, |r| r.random_bool(0.5)),
        enable_chunked_prefill: maybe(rng, |r| r.random_bool(0.5)),
        gpu_memory_utilization: maybe(rng, |r| r.random_range(0.01..=1.0)),
        block_size: maybe(rng, |r| pick(r, &[8, 16, 32])),
        kv_cache_dtype: maybe(rng, |r| pick(r, kv)),
        quantization: maybe(rng, |r| pick(r, &["awq", "fp8", "gptq_marlin"]).to_string()),
        dtype: maybe(rng, |r| pick(r, &["auto", "bfloat16", "half"]).to_string()),
        max_model_len: maybe(rng, |r| r.random_range(1..200_000)),
        tensor_parallel_size: maybe(rng, |r| pick(r, &[1, 2, 4, 8])),
        pipeline_parallel_size: maybe(rng, |r| pick(r, &[1, 2])),
        data_parallel_size: maybe(rng, |r| pick(r, &[1, 2])),
        enforce_eager: maybe(rng, |r| r.random_bool(0.5)),
        optimization_level: maybe(rng, |r| r.random_range(0..=3)),
        cudagraph_capture_sizes: maybe(rng, |r| {
            (0..r.random_range(1..5)).map(|i| 1 << i).collect()
        }),
        max_cudagraph_capture_size: if new {
            maybe(rng, |r| r.random_range(1..1024))
        } else {
            None
        },
        performance_mode: if new {
            maybe(rng, |r| {
                pick(r, &[PerformanceMode::Balanced, PerformanceMode::Throughput])
            })
        } else {
            None
        },
        async_scheduling: maybe(rng, |r| r.random_bool(0.5)),
        long_prefill_token_threshold: maybe(rng, |r| r.random_range(0..10_000)),
        scheduling_policy: maybe(rng, |r| {
            pick(r, &[SchedulingPolicy::Fcfs, SchedulingPolicy::Priority])
        }),
        speculative_config: maybe(
            rng,
            |r| serde_json::json!({"method": "ngram", "num_speculative_tokens": r.random_range(1..8)}),
        ),
        attention_backend: if new {
            maybe(rng, |r| pick(r, &["FLASH_ATTN", "FLASHINFER"]).to_string())
        } else {
            None
        },
        seed: maybe(rng, |r| r.random_range(0..i64::MAX as u64)),
    }
}

#[test]
fn parse_of_render_is_identity() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for version in [V10, V33] {
        for _ in 0..2000 {
            let a = random_args(&mut rng, version);
            let argv = render(&a, version).unwrap_or_else(|e| panic!("{a:?}: {e}"));
            let (back, ignored) = parse(&argv, version).unwrap_or_else(|e| panic!("{argv:?}: {e}"));
            assert_eq!(back, a, "{argv:?}");
            assert!(ignored.is_empty());
        }
    }
}
