//! Layer 2 on a GPU engine finds its candidates for real: `forge tune --engine vllm` (the
//! fake `vllm`, forge's simulator behind vLLM's CLI) on Qwen/Qwen3-0.6B, with the Hub
//! recorded (wiremock at `$HF_ENDPOINT`) and a Hugging Face cache of its own: an AWQ copy in
//! the cache and on the Hub becomes a value of `quant.checkpoint`, a "quantized" repository
//! of another architecture is refused with the reason, and the quant layer serves and
//! measures the AWQ checkpoint like any candidate.

mod common;

use std::time::Duration;

use common::run::{journal, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AWQ: &str = "acme/Qwen3-0.6B-AWQ";

/// Qwen3-0.6B's shape (its published config.json), with `extra` fields.
fn qwen3(extra: serde_json::Value) -> serde_json::Value {
    let mut c = json!({
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
        "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
        "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128,
        "vocab_size": 151936, "max_position_embeddings": 40960,
        "torch_dtype": "bfloat16", "tie_word_embeddings": true
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    c
}

async fn serve_config(server: &MockServer, repo: &str, body: serde_json::Value) {
    Mock::given(method("GET"))
        .and(path(format!("/{repo}/resolve/main/config.json")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .mount(server)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_from_the_cache_and_the_hub_is_a_layer_two_candidate() {
    let server = MockServer::start().await;
    let awq = json!({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}});
    serve_config(&server, MODEL, qwen3(json!({}))).await;
    serve_config(&server, AWQ, qwen3(awq.clone())).await;
    let llama = json!({"architectures": ["LlamaForCausalLM"],
        "quantization_config": {"quant_method": "gptq", "bits": 4}});
    serve_config(&server, "evil/Qwen3-0.6B-GPTQ", llama).await;
    Mock::given(method("GET"))
        .and(path("/api/models"))
        .and(query_param(
            "filter",
            format!("base_model:quantized:{MODEL}").as_str(),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([{"id": AWQ}, {"id": "evil/Qwen3-0.6B-GPTQ"}])),
        )
        .mount(&server)
        .await;

    let mut sb = Sandbox::new();
    // The AWQ copy was downloaded before (the simulator shapes it from the cache).
    let hub = sb.path().join("hf-hub"); // the sandbox's own cache (HF_HUB_CACHE)
    let snap = hub.join("models--acme--Qwen3-0.6B-AWQ/snapshots/abc");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("config.json"), qwen3(awq).to_string()).unwrap();
    sb.set("HF_ENDPOINT", &server.uri()).set(
        "FAKE_VLLM_SIM_ARGS",
        "--sim-time-scale 0.01 --sim-boot-time-scale 0.001",
    );
    let wl = sim_small_workload().display().to_string();
    let mut args = sb.fake_tune_args(MODEL, &wl);
    args.extend(["--start-layer", "2", "--max-experiments", "6"].map(str::to_string));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut forge = sb.start(&args);
    let status = tokio::task::spawn_blocking(move || {
        let s = forge.wait(Duration::from_secs(180));
        (s, forge.stderr())
    })
    .await
    .unwrap();
    let (status, err) = status;
    assert!(status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "layer 2 candidate: {AWQ} (awq W4 g128, from the local cache)"
        )),
        "{err}"
    );
    assert!(
        err.contains("not a candidate: evil/Qwen3-0.6B-GPTQ: its architecture (LlamaForCausalLM)"),
        "{err}"
    );
    let rows = journal(&sb.run_dir());
    let tried = rows
        .iter()
        .find(|r| {
            r.pointer("/recipe/quant/checkpoint")
                .and_then(|v| v.as_str())
                == Some(AWQ)
        })
        .unwrap_or_else(|| panic!("the checkpoint was never tried:\n{err}"));
    assert!(
        tried.get("measurement").is_some_and(|m| !m.is_null()),
        "served and measured: {tried}"
    );
    sb.assert_nothing_survives();
}
