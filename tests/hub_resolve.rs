//! Pre-quantized checkpoints of a model, resolved against a recorded Hub (wiremock): a
//! model with AWQ, FP8 and GPTQ copies (from the Hub's search and the publishers' names),
//! one with none (→ calibration), a "quantized" repository of another architecture
//! (refused with the reason), a gated one, the local cache searched first, and an offline
//! Hub (a note, not a failure). The token is sent as a bearer token and appears in no
//! result.

use forge::hub::{Found, Hub, resolve};
use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "hf_test_token_4f9a";

fn llama(q: Option<serde_json::Value>) -> serde_json::Value {
    let mut c = json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 4096});
    if let Some(q) = q {
        c["quantization_config"] = q;
    }
    c
}

async fn config(server: &MockServer, repo: &str, body: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(format!("/{repo}/resolve/main/config.json")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

async fn search(server: &MockServer, base: &str, ids: &[&str]) {
    let body: Vec<_> = ids.iter().map(|i| json!({"id": i})).collect();
    Mock::given(method("GET"))
        .and(path("/api/models"))
        .and(query_param(
            "filter",
            format!("base_model:quantized:{base}").as_str(),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test]
async fn awq_fp8_and_gptq_copies_are_found_and_another_architecture_is_refused() {
    let server = MockServer::start().await;
    let base = "acme/Llama-3-8B";
    config(&server, base, llama(None)).await;
    search(
        &server,
        base,
        &[
            "someone/Llama-3-8B-FP8",
            "evil/Llama-3-8B-4bit",
            "acme/Llama-3-8B-AWQ",
        ],
    )
    .await;
    let awq = json!({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm"});
    config(&server, "acme/Llama-3-8B-AWQ", llama(Some(awq))).await;
    let fp8 = json!({"quant_method": "fp8", "activation_scheme": "dynamic"});
    config(&server, "someone/Llama-3-8B-FP8", llama(Some(fp8))).await;
    let gptq = json!({"quant_method": "gptq", "bits": 4, "group_size": 128});
    config(&server, "acme/Llama-3-8B-GPTQ-Int4", llama(Some(gptq))).await;
    let other = json!({"architectures": ["MistralForCausalLM"],
        "quantization_config": {"quant_method": "awq", "bits": 4}});
    config(&server, "evil/Llama-3-8B-4bit", other).await;
    // Gated: the Hub answers 401 without a token that may read it.
    Mock::given(method("GET"))
        .and(path("/acme/Llama-3-8B-w4a16/resolve/main/config.json"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;

    let hub = Hub::at(&server.uri(), Some(TOKEN.into()));
    let r = resolve(base, None, Some(&hub)).await;
    let got: Vec<(&str, String)> = r
        .candidates
        .iter()
        .map(|c| (c.repo.as_str(), c.describe()))
        .collect();
    assert_eq!(
        got,
        [
            ("someone/Llama-3-8B-FP8", "fp8 W8A8".to_string()),
            ("acme/Llama-3-8B-AWQ", "awq W4 g128".to_string()),
            ("acme/Llama-3-8B-GPTQ-Int4", "gptq W4 g128".to_string()),
        ]
    );
    assert!(r.candidates.iter().all(|c| c.found == Found::Hub));
    assert!(!r.needs_calibration());
    let refused: Vec<&str> = r.refused.iter().map(|(repo, _)| repo.as_str()).collect();
    assert_eq!(
        refused,
        ["evil/Llama-3-8B-4bit", "acme/Llama-3-8B-w4a16"],
        "{r:?}"
    );
    assert!(r.refused[0].1.contains("MistralForCausalLM"), "{r:?}");
    assert!(r.refused[0].1.contains("LlamaForCausalLM"), "{r:?}");
    assert!(r.refused[1].1.contains("HF_TOKEN"), "{r:?}");
    assert!(!format!("{r:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_model_without_quantized_copies_needs_calibration() {
    let server = MockServer::start().await;
    let base = "acme/Tiny-1B";
    config(&server, base, llama(None)).await;
    search(&server, base, &[]).await;
    let r = resolve(
        base,
        None,
        Some(&Hub::at(&server.uri(), Some(TOKEN.into()))),
    )
    .await;
    assert!(r.needs_calibration(), "{r:?}");
    assert!(r.refused.is_empty() && r.notes.is_empty(), "{r:?}");
}

/// A Hugging Face cache with `repo`'s config.
fn cached(hub: &std::path::Path, repo: &str, cfg: serde_json::Value) {
    let (org, name) = repo.split_once('/').unwrap();
    let snap = hub.join(format!("models--{org}--{name}/snapshots/abc"));
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("config.json"), cfg.to_string()).unwrap();
}

#[tokio::test]
async fn offline_the_cache_is_still_searched_and_the_hub_is_a_note() {
    let cache = tempfile::tempdir().unwrap();
    let base = "acme/Llama-3-8B";
    cached(cache.path(), base, llama(None));
    let awq = json!({"quant_method": "awq", "bits": 4, "group_size": 128});
    cached(cache.path(), "acme/Llama-3-8B-AWQ", llama(Some(awq)));
    cached(cache.path(), "acme/Llama-3-8B-Instruct", llama(None));
    // Nothing listens on port 1.
    let hub = Hub::at("http://127.0.0.1:1", None);
    let r = resolve(base, Some(cache.path()), Some(&hub)).await;
    assert_eq!(r.candidates.len(), 1, "{r:?}");
    assert_eq!(r.candidates[0].repo, "acme/Llama-3-8B-AWQ");
    assert_eq!(r.candidates[0].found, Found::Cache);
    // The base config came from the cache; the Hub's search could not be reached.
    assert!(r.notes.iter().any(|n| n.starts_with("offline")), "{r:?}");
    assert!(r.refused.is_empty(), "{r:?}");

    // Neither cache nor Hub knows the model: a note, nothing else.
    let r = resolve("acme/Unknown-7B", Some(cache.path()), Some(&hub)).await;
    assert!(r.candidates.is_empty());
    assert!(r.notes.iter().any(|n| n.contains("offline")), "{r:?}");
}
