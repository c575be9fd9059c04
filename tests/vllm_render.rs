//! The vLLM adapter's command lines, snapshot-tested: several recipes rendered for vLLM
//! 0.33.0 and 0.10.2, each checked against that release's recorded help — boolean
//! negations spelled as each release lists them, `-O`, renames, recipe fields the older
//! release has no flag for (refused by name, never dropped), and the one it reads from the
//! environment instead (the attention backend, shown as a `NAME=value` prefix).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use forge::engine::adapter::Engine;
use forge::engine::vllm::adapter::VllmEngine;
use forge::engine::vllm::checked::render_checked;
use forge::engine::vllm::flags::Version;
use forge::engine::vllm::help::HelpSnapshot;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Recipe};
use serde_json::{Value, json};

const HELP_ALL_0_33: &str = include_str!("fixtures/vllm/help-all-0.33.0.txt");
const HELP_0_33: &str = include_str!("fixtures/vllm/help-0.33.0.txt");
const HELP_0_10: &str = include_str!("fixtures/vllm/help-0.10.2.txt");

fn baseline() -> Recipe {
    let h100 = Hardware {
        vendor: "nvidia".into(),
        gpu_type: "H100".into(),
        count: 1,
        memory_gb_per_gpu: 79.6,
    };
    Recipe::baseline(EngineKind::Vllm, "meta-llama/Llama-3.1-8B-Instruct", h100)
}

fn with(layer: Layer, changes: Value) -> Recipe {
    let changes: BTreeMap<String, Value> = serde_json::from_value(changes).unwrap();
    baseline().mutate(layer, &changes)
}

/// The recipes, named.
fn recipes() -> Vec<(&'static str, Recipe)> {
    use Layer::{Config, Kernel, Quant};
    vec![
        ("baseline", baseline()),
        (
            "booleans off",
            with(
                Config,
                json!({"enable_prefix_caching": false, "enable_chunked_prefill": false,
                       "enforce_eager": false, "async_scheduling": false}),
            ),
        ),
        (
            "booleans on",
            with(
                Config,
                json!({"enable_prefix_caching": true, "enforce_eager": true,
                       "async_scheduling": true}),
            ),
        ),
        (
            "throughput config",
            with(
                Config,
                json!({"max_num_seqs": 512, "max_num_batched_tokens": 16384,
                       "gpu_memory_utilization": 0.95, "block_size": 32,
                       "long_prefill_token_threshold": 2048}),
            ),
        ),
        (
            "optimization level",
            with(Config, json!({"optimization_level": 3})),
        ),
        (
            "cuda-graph cap",
            with(Config, json!({"max_cudagraph_capture_size": 256})),
        ),
        (
            "performance mode",
            with(Config, json!({"performance_mode": "throughput"})),
        ),
        (
            "speculative ngram",
            with(
                Config,
                json!({"speculative_method": "ngram", "num_speculative_tokens": 3}),
            ),
        ),
        (
            "fp8 weights and kv",
            with(Quant, json!({"method": "fp8", "kv_cache_quant": "fp8"})),
        ),
        (
            "bfloat16 kv",
            with(Quant, json!({"kv_cache_quant": "bfloat16"})),
        ),
        (
            "attention backend",
            with(Kernel, json!({"attention_backend": "FLASHINFER"})),
        ),
    ]
}

/// `vllm serve ...` for every recipe, or the refusal. Variables other than the one every
/// launch sets (`VLLM_SERVER_DEV_MODE=1`) come first, as `NAME=value`.
fn listing(version: Version, help: &str) -> String {
    let mut engine = VllmEngine::real(vec!["vllm".into()], version);
    engine.help = Some(Arc::new(HelpSnapshot::parse(help)));
    let mut out = String::new();
    for (name, recipe) in recipes() {
        let line = match engine.launch_spec(&recipe, 8000, "forge-e0001-x-c1", Path::new("l"), 1) {
            Ok(spec) => {
                let env: String = spec
                    .env
                    .iter()
                    .filter(|(k, _)| k != "VLLM_SERVER_DEV_MODE")
                    .map(|(k, v)| format!("{k}={v} "))
                    .collect();
                assert!(
                    spec.env
                        .contains(&("VLLM_SERVER_DEV_MODE".into(), "1".into()))
                );
                format!("{env}{} {}", spec.program.display(), spec.args.join(" "))
            }
            Err(e) => format!("refused: {e}"),
        };
        out.push_str(&format!("{name}:\n  {line}\n"));
    }
    out
}

#[test]
fn vllm_0_33_command_lines() {
    insta::assert_snapshot!(listing(Version::V0_33, HELP_ALL_0_33));
}

#[test]
fn vllm_0_10_2_command_lines() {
    insta::assert_snapshot!(listing(Version::new(0, 10, 2), HELP_0_10));
}

/// Defect 4 of the original: it filtered flags by plain `vllm serve --help`, which on
/// current vLLM lists only groups, so prefix caching, chunked prefill, the attention
/// backend and speculative decoding were silently dropped — and the unchanged server was
/// scored as if they had been applied. A group summary must never remove a flag.
#[test]
fn defect_4_a_group_summary_never_drops_flags() {
    let summary = HelpSnapshot::parse(HELP_0_33);
    let full = HelpSnapshot::parse(HELP_ALL_0_33);
    assert!(!summary.lists_flags() && full.lists_flags());
    let recipe = with(
        Layer::Config,
        json!({"enable_prefix_caching": false, "enable_chunked_prefill": false,
               "speculative_method": "ngram"}),
    )
    .mutate(
        Layer::Kernel,
        &serde_json::from_value(json!({"attention_backend": "FLASHINFER"})).unwrap(),
    );
    let args = forge::engine::vllm::recipe::to_vllm_args(&recipe).unwrap();
    for help in [Some(&summary), Some(&full), None] {
        let argv = render_checked(&args, Version::V0_33, help)
            .unwrap()
            .join(" ");
        for flag in [
            "--disable-prefix-caching",
            "--disable-chunked-prefill",
            "--attention-backend FLASHINFER",
            "--speculative-config {\"method\":\"ngram\"",
        ] {
            assert!(argv.contains(flag), "{flag} missing from {argv}");
        }
    }
}
