//! The built-in agent on llama.cpp recipes, with no simulator surrogate: the bundled
//! playbook's rules and exploration choose the moves (slots for the run's concurrency,
//! threads back to the cores), and the tuner's legality check refuses what llama.cpp would
//! clamp or could not serve before anything boots.

use std::collections::BTreeMap;
use std::path::Path;

use clap::Parser;
use forge::agent::builtin::BuiltinAgent;
use forge::agent::{Agent, AgentContext, Proposal};
use forge::cli::{Cli, Command};
use forge::engine::adapter::Engine;
use forge::engine::llamacpp::adapter::LlamacppEngine;
use forge::engine::llamacpp::help::HelpFlags;
use forge::engine::llamacpp::legal::RunLimits;
use forge::engine::llamacpp::{defaults, host};
use forge::playbook::Playbook;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Recipe};
use forge::record::settings::TuneSettings;
use forge::tune::context;
use forge::workload::stats::{self, WorkloadStats};
use serde_json::{Value, json};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/llamacpp")
        .join(name)
}

fn settings() -> TuneSettings {
    let argv = [
        "forge", "tune", "--engine", "llamacpp", "--device", "cpu", "-m", "/m.gguf", "-w",
        "w.jsonl", "--llm", "builtin",
    ];
    match Cli::parse_from(argv).command {
        Command::Tune(t) => forge::commands::tune::resolve(&t.args, None).unwrap(),
        _ => unreachable!(),
    }
}

fn workload() -> WorkloadStats {
    let p = fixture("workload.jsonl");
    let text = std::fs::read_to_string(&p).unwrap();
    stats::compute(&forge::workload::parse(&p, &text).unwrap())
}

fn cpu_recipe(config: &[(&str, Value)]) -> Recipe {
    let hw = Hardware {
        vendor: "cpu".into(),
        gpu_type: "cpu".into(),
        count: 0,
        memory_gb_per_gpu: 0.0,
    };
    let ch: BTreeMap<String, Value> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let base = Recipe::baseline(EngineKind::Llamacpp, "/m.gguf", hw);
    if ch.is_empty() {
        base
    } else {
        base.mutate(Layer::Config, &ch)
    }
}

/// The engine as `forge tune` builds it for a run whose longest request needs 600 tokens,
/// its flags from the recorded `--help`.
fn engine() -> LlamacppEngine {
    LlamacppEngine {
        launcher: vec!["llama-server".into()],
        probe: None,
        limits: RunLimits {
            need_tokens: Some(600),
            flags: Some(HelpFlags::parse(
                &std::fs::read_to_string(fixture("help.txt")).unwrap(),
            )),
        },
        builds: None,
        quant: None,
    }
}

/// What the built-in agent proposes from `inc` with no history.
fn propose(inc: &Recipe) -> Proposal {
    let s = settings();
    let pb = Playbook::bundled(EngineKind::Llamacpp).unwrap();
    let w = workload();
    let effective = defaults(inc);
    let e = engine();
    let facts = context::facts(&[], &effective, e.host_facts(), &w, &s);
    let ctx = AgentContext {
        settings: &s,
        playbook: &pb,
        layer: Layer::Config,
        incumbent: inc,
        effective,
        facts,
        workload: &w,
        history: &[],
        is_tried: &|_| false,
        legal: &|r| e.check(r),
        surrogate: None,
        gpu: None,
        spent_usd: 0.0,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(BuiltinAgent.propose(&ctx)).unwrap()
}

#[test]
fn slots_follow_the_runs_concurrency_first() {
    // Defaults: 4 slots (auto); forge tune's default concurrency is 8.
    let p = propose(&cpu_recipe(&[]));
    assert_eq!(p.changes.get("parallel"), Some(&json!(8)), "{p:?}");
    assert!(
        p.rationale.starts_with("parallel: 4 → 8.")
            && p.rationale
                .contains("Playbook: More requests arrive at once"),
        "{}",
        p.rationale
    );
}

#[test]
fn oversubscribed_threads_come_back_toward_the_cores() {
    let cores = host::physical_cores() as i64;
    let over = (cores * 4).clamp(4, 16);
    // 8 slots already match the concurrency, so the threads rule is the one that fires.
    let p = propose(&cpu_recipe(&[
        ("threads", json!(over)),
        ("parallel", json!(8)),
    ]));
    let to = p.changes.get("threads").and_then(Value::as_i64);
    assert!(to.is_some_and(|t| t < over), "{p:?}");
    assert!(
        p.rationale.contains("Oversubscribed cores"),
        "{}",
        p.rationale
    );
}

#[test]
fn illegal_combinations_are_refused_before_boot() {
    let e = engine();
    let legality = |c: &[(&str, Value)]| e.check(&cpu_recipe(c)).map_err(|e| e.why);
    assert_eq!(legality(&[]), Ok(()));
    assert_eq!(legality(&[("threads", json!(64))]), Ok(()));
    let err = legality(&[("ubatch_size", json!(512)), ("batch_size", json!(256))]).unwrap_err();
    assert!(err.contains("ubatch_size 512 > batch_size 256"), "{err}");
    // 2048 tokens over 8 slots: 256 per slot, less than the 600 the workload may need.
    let err = legality(&[("ctx_size", json!(2048)), ("parallel", json!(8))]).unwrap_err();
    assert!(
        err.contains("leaves 256 tokens of context per slot"),
        "{err}"
    );
    assert_eq!(
        legality(&[("ctx_size", json!(8192)), ("parallel", json!(8))]),
        Ok(())
    );
    let err = legality(&[("n_gpu_layers", json!(99))]).unwrap_err();
    assert!(err.contains("no GPU"), "{err}");
    let err = legality(&[("max_num_seqs", json!(8))]).unwrap_err();
    assert!(err.contains("max_num_seqs"), "{err}");
}
