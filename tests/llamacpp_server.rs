//! The llama.cpp adapter against the real llama-server: a baseline boot becomes ready under
//! forge's readiness rules (503 while loading, then `/health` 200 and the alias in
//! `/v1/models`), and a boot llama.cpp refuses is classified from its real log.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::llamacpp;
use forge::engine::adapter::Engine;
use forge::engine::failure::FailureClass;
use forge::engine::health::{Readiness, free_port, wait_ready};
use forge::engine::llamacpp::adapter::LlamacppEngine;
use forge::engine::process;
use forge::recipe::Layer;
use forge::recipe::{EngineKind, Hardware, Recipe};
use serde_json::json;

fn recipe(model: &str, config: &[(&str, serde_json::Value)]) -> Recipe {
    let ch: BTreeMap<String, serde_json::Value> = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let base = Recipe::baseline(EngineKind::Llamacpp, model, Hardware::default());
    if ch.is_empty() {
        base
    } else {
        base.mutate(Layer::Config, &ch)
    }
}

/// Boot `r`, wait for readiness, and return what happened with the log text.
async fn boot(
    e: &LlamacppEngine,
    r: &Recipe,
    dir: &std::path::Path,
    name: &str,
) -> (Readiness, String, Vec<String>) {
    let port = free_port().unwrap();
    let log = dir.join(format!("{name}.log"));
    let spec = e.launch_spec(r, port, name, &log, 1).unwrap();
    let mut proc = process::spawn(&spec).unwrap();
    let pgid = proc.pgid;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_ready(&mut proc, &client, &base, name, Duration::from_secs(120)).await;
    let models = forge::engine::health::list_models(&client, &base)
        .await
        .unwrap_or_default();
    proc.stop(e.grace()).await;
    assert!(process::group_members(pgid).is_empty(), "{name} survived");
    (
        ready,
        std::fs::read_to_string(&log).unwrap_or_default(),
        models,
    )
}

/// What `forge recipe command` prints for a llama.cpp recipe is a command llama-server
/// runs: started as printed (on a free port), it becomes ready and serves the alias.
#[tokio::test]
async fn the_deployment_command_boots_a_real_llama_server() {
    let Some(p) = llamacpp::peers("the_deployment_command_boots_a_real_llama_server") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let r = recipe(
        &p.model.display().to_string(),
        &[("threads", json!(1)), ("parallel", json!(2))],
    );
    let file = dir.path().join("best_recipe.yaml");
    std::fs::write(&file, r.to_yaml()).unwrap();
    let port = free_port().unwrap();
    let (file_arg, port_arg) = (file.display().to_string(), port.to_string());
    let out = common::bin::forge(&["recipe", "command", &file_arg, "--port", &port_arg])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).unwrap();
    // No word needed quoting, so splitting at spaces is how a shell reads it.
    assert!(!line.contains('\''), "{line}");
    let words: Vec<String> = line.split_whitespace().map(String::from).collect();
    assert_eq!(words[0], "llama-server");
    let alias = "SmolLM2-135M-Instruct.Q4_1";
    let spec = process::LaunchSpec {
        program: p.server.clone(),
        args: words[1..].to_vec(),
        env: Vec::new(),
        log_path: dir.path().join("deploy.log"),
        files: Vec::new(),
    };
    let mut proc = process::spawn(&spec).unwrap();
    let pgid = proc.pgid;
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let ready = wait_ready(&mut proc, &client, &base, alias, Duration::from_secs(120)).await;
    let models = forge::engine::health::list_models(&client, &base)
        .await
        .unwrap_or_default();
    proc.stop(Duration::from_secs(10)).await;
    assert!(process::group_members(pgid).is_empty(), "survived");
    let log = std::fs::read_to_string(dir.path().join("deploy.log")).unwrap_or_default();
    assert!(matches!(ready, Readiness::Ready { .. }), "{ready:?}\n{log}");
    assert!(models.iter().any(|m| m == alias), "{models:?}");
}

#[tokio::test]
async fn a_real_boot_is_ready_and_a_refused_one_is_classified() {
    let Some(p) = llamacpp::peers("a_real_boot_is_ready_and_a_refused_one_is_classified") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = LlamacppEngine::probe(vec![p.server.display().to_string()], dir.path());
    assert!(
        e.describe().starts_with("llama.cpp llama-server "),
        "{}",
        e.describe()
    );
    let model = p.model.display().to_string();
    // The GGUF header gives llama-server's default context (SmolLM2: llama, 8192, 30 layers).
    let g = forge::engine::llamacpp::gguf::read(&p.model).unwrap();
    assert_eq!(g.architecture.as_deref(), Some("llama"));
    assert_eq!((g.context_length, g.block_count), (Some(8192), Some(30)));

    let (ready, log, models) = boot(
        &e,
        &recipe(&model, &[("threads", json!(1))]),
        dir.path(),
        "forge-ok",
    )
    .await;
    assert!(matches!(ready, Readiness::Ready { .. }), "{ready:?}\n{log}");
    assert_eq!(models, vec!["forge-ok".to_string()]);
    let facts = forge::engine::llamacpp::logs::startup_facts(&log);
    assert_eq!((facts.slots, facts.threads), (Some(4), Some(1)), "{log}");

    // A quantized V cache with flash attention off: rendered fine, refused by llama.cpp.
    let mut bad = recipe(&model, &[("flash_attn", json!("off"))]);
    bad.quant.kv_cache_quant = Some("q8_0".into());
    let (ready, log, _) = boot(&e, &bad, dir.path(), "forge-bad").await;
    let Readiness::Exited { code, signal } = ready else {
        panic!("{ready:?}\n{log}")
    };
    let f = e.classify_boot_failure(code, signal, &log);
    assert_eq!(f.class, FailureClass::InfeasibleConfig, "{f:?}");
    assert!(
        f.summary.contains("quantized V cache requires flash_attn"),
        "{f:?}"
    );
}
