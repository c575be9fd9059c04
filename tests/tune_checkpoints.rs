//! Layer 2 on a GPU engine finds its candidates for real: `forge tune --engine vllm` (the
//! fake `vllm`, forge's simulator behind vLLM's CLI) on Qwen/Qwen3-0.6B, with the Hub
//! recorded (wiremock at `$HF_ENDPOINT`) and a Hugging Face cache of its own: an AWQ copy in
//! the cache and on the Hub becomes a value of `quant.checkpoint`, a "quantized" repository
//! of another architecture is refused with the reason, and the quant layer serves and
//! measures the AWQ checkpoint like any candidate.

mod common;

use std::time::Duration;

use common::hub::qwen3;
use common::run::{journal, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use serde_json::json;
use wiremock::matchers::{method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const AWQ: &str = "acme/Qwen3-0.6B-AWQ";

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

/// A fake `nvidia-smi` in the sandbox printing a recorded file, and `--device cuda` in
/// place of the common `--device cpu`.
fn on_gpu(sb: &mut Sandbox, recorded: &str, args: &mut [String]) {
    use std::os::unix::fs::PermissionsExt;
    let f = common::run::fixture("hardware/nvidia-smi").join(recorded);
    let smi = sb.path().join("nvidia-smi");
    std::fs::write(&smi, format!("#!/bin/sh\n/bin/cat '{}'\n", f.display())).unwrap();
    std::fs::set_permissions(&smi, std::fs::Permissions::from_mode(0o755)).unwrap();
    sb.set("FORGE_NVIDIA_SMI", &smi.display().to_string())
        .set("FORGE_NVML", "off");
    let i = args.iter().position(|a| a == "cpu").unwrap();
    args[i] = "cuda".into();
}

/// The hardware gates decide what becomes a candidate: on an A100 the FP8 W8A8 copy is
/// refused (vLLM would only run it weight-only, which `quant.method=fp8` already is), on an
/// H100 the NVFP4 copy is (no FP4 tensor cores before Blackwell); the AWQ copy is a
/// candidate on both, and each refusal says what the GPU lacks.
#[tokio::test(flavor = "multi_thread")]
async fn the_hardware_gates_refuse_fp8_on_an_a100_and_nvfp4_on_an_h100() {
    let server = MockServer::start().await;
    serve_config(&server, MODEL, qwen3(json!({}))).await;
    let awq = json!({"quantization_config": {"quant_method": "awq", "bits": 4, "group_size": 128}});
    serve_config(&server, AWQ, qwen3(awq)).await;
    let fp8 = json!({"quantization_config": {"quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 8, "type": "float"},
                                      "input_activations": {"num_bits": 8, "type": "float"}}}}});
    serve_config(&server, &format!("{MODEL}-FP8"), qwen3(fp8)).await;
    let nvfp4 = json!({"quantization_config": {"quant_method": "modelopt", "quant_algo": "NVFP4"}});
    serve_config(&server, "acme/Qwen3-0.6B-NVFP4", qwen3(nvfp4)).await;
    let ids = json!([{"id": AWQ}, {"id": format!("{MODEL}-FP8")}, {"id": "acme/Qwen3-0.6B-NVFP4"}]);
    Mock::given(method("GET"))
        .and(path("/api/models"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ids))
        .mount(&server)
        .await;
    for (recorded, refused, why, also_refused) in [
        (
            "a100-sxm4-80gb-x4_580.105.08.csv",
            format!("{MODEL}-FP8"),
            "FP8 W8A8 on vLLM needs SM 8.9 for native kernels and A100-80GB is SM 8.0: it would run as weight-only FP8",
            "acme/Qwen3-0.6B-NVFP4",
        ),
        (
            "h100-sxm_590.48.01.csv",
            "acme/Qwen3-0.6B-NVFP4".to_string(),
            "NVFP4 W4A4 on vLLM needs SM 10.0 for native kernels and H100 is SM 9.0",
            "",
        ),
    ] {
        let mut sb = Sandbox::new();
        sb.set("HF_ENDPOINT", &server.uri()).set(
            "FAKE_VLLM_SIM_ARGS",
            "--sim-time-scale 0.01 --sim-boot-time-scale 0.001",
        );
        let wl = sim_small_workload().display().to_string();
        let mut args = sb.fake_tune_args(MODEL, &wl);
        on_gpu(&mut sb, recorded, &mut args);
        args.extend(["--max-experiments", "1"].map(str::to_string));
        let out = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            sb.run(&args)
        })
        .await
        .unwrap();
        let err = &out.stderr;
        assert!(
            err.contains(&format!(
                "layer 2 candidate: {AWQ} (awq W4 g128, from the Hub)"
            )),
            "{recorded}: {err}"
        );
        assert!(
            err.contains(&format!("not a candidate: {refused}: {why}")),
            "{recorded}: {err}"
        );
        assert!(
            err.contains("forge playbook gates --engine vllm --gpu"),
            "{err}"
        );
        if !also_refused.is_empty() {
            // On an A100 the NVFP4 copy would run weight-only too: refused as well.
            assert!(
                err.contains(&format!("not a candidate: {also_refused}: NVFP4")),
                "{err}"
            );
        }
        if recorded.starts_with("h100") {
            assert!(
                err.contains(&format!(
                    "layer 2 candidate: {MODEL}-FP8 (compressed-tensors W8A8"
                )),
                "the FP8 copy runs natively on an H100: {err}"
            );
        }
    }
}
