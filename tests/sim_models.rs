//! Models a 2026 user serves — gpt-oss, DeepSeek-V3, Qwen3-235B, Llama-4, GLM-4.5 — from their public
//! `config.json` (the fields that size them,
//! copied from the Hugging Face repositories named beside each): `forge sim predict` boots
//! them where their weights and one full-context request fit, and refuses them with vLLM's
//! error where they do not. And a model this machine has downloaded is shaped from the
//! Hugging Face cache with no flag.

mod common;

use std::path::Path;

use common::bin::forge;

/// deepseek-ai/DeepSeek-V3 `config.json` (FP8 block-quantized checkpoint, MLA, 256 routed
/// experts + 1 shared, first 3 layers dense, one MTP layer).
const DEEPSEEK_V3: &str = r#"{
  "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
  "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
  "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
  "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
  "first_k_dense_replace": 3, "kv_lora_rank": 512, "q_lora_rank": 1536,
  "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
  "vocab_size": 129280, "max_position_embeddings": 163840, "num_nextn_predict_layers": 1,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3",
                          "quant_method": "fp8", "weight_block_size": [128, 128]}
}"#;

/// Qwen/Qwen3-235B-A22B `config.json` (BF16, 128 experts, 8 active, GQA with 4 KV heads).
const QWEN3_235B: &str = r#"{
  "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
  "hidden_size": 4096, "intermediate_size": 12288, "moe_intermediate_size": 1536,
  "num_hidden_layers": 94, "num_attention_heads": 64, "num_key_value_heads": 4,
  "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1,
  "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16"
}"#;

/// openai/gpt-oss-120b `config.json` (MXFP4 experts, BF16 attention, alternating
/// 128-token sliding-window and full-attention layers).
const GPT_OSS_120B: &str = r#"{
  "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
  "num_hidden_layers": 36, "hidden_size": 2880, "num_attention_heads": 64,
  "num_key_value_heads": 8, "head_dim": 64, "vocab_size": 201088, "intermediate_size": 2880,
  "num_local_experts": 128, "num_experts_per_tok": 4, "sliding_window": 128,
  "layer_types": [
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention",
    "sliding_attention", "full_attention", "sliding_attention", "full_attention"
  ],
  "max_position_embeddings": 131072, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "quantization_config": {"quant_method": "mxfp4",
    "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router",
                               "model.embed_tokens", "lm_head"]}
}"#;

/// deepseek-ai/DeepSeek-V2-Lite-Chat `config.json` (MLA, 64 experts).
const DEEPSEEK_V2_LITE: &str = r#"{
  "hidden_size": 2048, "intermediate_size": 10944, "moe_intermediate_size": 1408,
  "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16,
  "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
  "first_k_dense_replace": 1, "kv_lora_rank": 512, "qk_rope_head_dim": 64,
  "qk_nope_head_dim": 128, "v_head_dim": 128, "vocab_size": 102400,
  "max_position_embeddings": 163840, "torch_dtype": "bfloat16"
}"#;

/// meta-llama/Llama-4-Scout-17B-16E-Instruct `config.json`, its `text_config` (the values
/// are transformers' `Llama4TextConfig` defaults, which are Scout's): 16 routed experts, top
/// 1, and a shared expert in every MoE layer; 10M-token context, chunked attention.
const LLAMA4_SCOUT: &str = r#"{
  "architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
  "text_config": {"model_type": "llama4_text", "hidden_size": 5120,
    "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_hidden_layers": 48,
    "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
    "vocab_size": 202048, "num_local_experts": 16, "num_experts_per_tok": 1,
    "interleave_moe_layer_step": 1, "attention_chunk_size": 8192,
    "max_position_embeddings": 10485760, "tie_word_embeddings": false,
    "torch_dtype": "bfloat16"}
}"#;

/// zai-org/GLM-4.5-Air `config.json`: 128 routed experts + 1 shared, top 8, the first
/// layer dense, one MTP layer.
const GLM45_AIR: &str = r#"{
  "architectures": ["Glm4MoeForCausalLM"], "model_type": "glm4_moe", "hidden_size": 4096,
  "intermediate_size": 10944, "moe_intermediate_size": 1408, "num_hidden_layers": 46,
  "num_attention_heads": 96, "num_key_value_heads": 8, "head_dim": 128,
  "vocab_size": 151552, "n_routed_experts": 128, "n_shared_experts": 1,
  "num_experts_per_tok": 8, "first_k_dense_replace": 1, "max_position_embeddings": 131072,
  "num_nextn_predict_layers": 1, "partial_rotary_factor": 0.5,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16"
}"#;

fn model_dir(root: &Path, name: &str, config: &str) -> String {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("config.json"), config).unwrap();
    d.display().to_string()
}

fn workload(root: &Path) -> String {
    let w = root.join("w.jsonl");
    std::fs::write(
        &w,
        "{\"prompt\":\"hello there\",\"expected_output_tokens\":4}\n",
    )
    .unwrap();
    w.display().to_string()
}

/// `forge sim predict MODEL --sim-gpu GPU -tp TP`: (exit code, stdout and stderr — the
/// engine core's error lines go to stdout, as vLLM's do).
fn predict(model: &str, gpu: &str, tp: &str, w: &str) -> (i32, String) {
    let o = forge(&[
        "sim",
        "predict",
        model,
        "--sim-gpu",
        gpu,
        "-tp",
        tp,
        "--workload",
        w,
    ])
    .output()
    .unwrap();
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn deepseek_v3_fits_eight_h200_or_b200_not_eight_h100() {
    let dir = tempfile::tempdir().unwrap();
    let m = model_dir(dir.path(), "DeepSeek-V3", DEEPSEEK_V3);
    let w = workload(dir.path());
    // ~671 GB of FP8 weights: 84 GB a GPU over eight.
    for gpu in ["H200", "B200"] {
        let (code, err) = predict(&m, gpu, "8", &w);
        assert_eq!(code, 0, "{gpu}: {err}");
    }
    let (code, err) = predict(&m, "H200", "8", &w);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("num_nextn_predict_layers"),
        "MTP is named as unmodelled: {err}"
    );
    // 78 GiB of weights a GPU load, and nothing is left for the cache: vLLM's refusal.
    let (code, err) = predict(&m, "H100", "8", &w);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("No available memory for the cache blocks"),
        "{err}"
    );
}

#[test]
fn qwen3_235b_fits_eight_h100_four_h200_or_b200_not_four_h100() {
    let dir = tempfile::tempdir().unwrap();
    let m = model_dir(dir.path(), "Qwen3-235B-A22B", QWEN3_235B);
    let w = workload(dir.path());
    // ~470 GB of BF16 weights.
    for (gpu, tp) in [("H100", "8"), ("H200", "4"), ("B200", "4")] {
        let (code, err) = predict(&m, gpu, tp, &w);
        assert_eq!(code, 0, "{gpu} x{tp}: {err}");
    }
    let (code, err) = predict(&m, "H100", "4", &w);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CUDA out of memory"), "{err}");
}

#[test]
fn gpt_oss_120b_fits_one_80_gb_gpu_not_an_l4() {
    // OpenAI's model card: the 120b runs on a single 80 GB GPU (MXFP4 experts, ~61 GB).
    let dir = tempfile::tempdir().unwrap();
    let m = model_dir(dir.path(), "gpt-oss-120b", GPT_OSS_120B);
    let w = workload(dir.path());
    for gpu in ["H100", "H200", "B200"] {
        let (code, err) = predict(&m, gpu, "1", &w);
        assert_eq!(code, 0, "{gpu}: {err}");
        // Its alternating sliding-window layers are modelled (half the layers cache at
        // most 128 tokens), so nothing about them is named as unmodelled.
        assert!(!err.contains("sliding_window"), "{gpu}: {err}");
    }
    let (code, err) = predict(&m, "L4", "1", &w);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CUDA out of memory"), "{err}");
}

#[test]
fn a_model_in_the_hugging_face_cache_needs_no_flag() {
    let dir = tempfile::tempdir().unwrap();
    let w = workload(dir.path());
    let repo = "deepseek-ai/DeepSeek-V2-Lite-Chat";
    let run = |hub: Option<&Path>| {
        let mut c = forge(&[
            "sim",
            "predict",
            repo,
            "--sim-gpu",
            "H100",
            "--workload",
            &w,
        ]);
        c.env_remove("HF_HOME").env("HOME", dir.path());
        match hub {
            Some(h) => c.env("HF_HUB_CACHE", h),
            None => c.env_remove("HF_HUB_CACHE"),
        };
        c.output().unwrap()
    };
    // Not in the catalogue, not downloaded: unknown.
    let o = run(None);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model"));
    // Downloaded (huggingface_hub's layout): shaped from the snapshot `refs/main` names.
    let hub = dir.path().join("hub");
    let snap = hub.join("models--deepseek-ai--DeepSeek-V2-Lite-Chat/snapshots/0123abc");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(snap.join("config.json"), DEEPSEEK_V2_LITE).unwrap();
    std::fs::create_dir_all(hub.join("models--deepseek-ai--DeepSeek-V2-Lite-Chat/refs")).unwrap();
    std::fs::write(
        hub.join("models--deepseek-ai--DeepSeek-V2-Lite-Chat/refs/main"),
        "0123abc",
    )
    .unwrap();
    let o = run(Some(&hub));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["completed"], 1, "{v}");
}

/// The shape of `config`, as `forge sim` reads it.
fn shape(config: &str) -> forge::sim::model::ModelShape {
    let json: serde_json::Value = serde_json::from_str(config).unwrap();
    forge::sim::model::ModelShape::from_config_json(&json, Path::new("config.json"), "m").unwrap()
}

#[test]
fn llama4_scout_and_glm45_air_have_their_published_sizes() {
    // Meta: Scout has 17B active of 109B total parameters (the vision encoder included);
    // Z.ai: GLM-4.5-Air has 12B active of 106B total.
    let b = |n: u64| n as f64 / 1e9;
    let scout = shape(LLAMA4_SCOUT);
    assert!(
        (104.0..=110.0).contains(&b(scout.total_params())),
        "{}",
        b(scout.total_params())
    );
    assert!(
        (15.5..=18.0).contains(&b(scout.active_params())),
        "{}",
        b(scout.active_params())
    );
    let air = shape(GLM45_AIR);
    assert!(
        (101.0..=111.0).contains(&b(air.total_params())),
        "{}",
        b(air.total_params())
    );
    assert!(
        (11.0..=13.5).contains(&b(air.active_params())),
        "{}",
        b(air.active_params())
    );
    // gpt-oss-120b's alternating layers: half slide over 128 tokens.
    let oss = shape(GPT_OSS_120B);
    assert_eq!(oss.full_attention_layers(), 18);
}

#[test]
fn llama4_scout_needs_a_shorter_context_glm45_air_boots_on_two_h100() {
    let dir = tempfile::tempdir().unwrap();
    let w = workload(dir.path());
    let scout = model_dir(dir.path(), "Llama-4-Scout", LLAMA4_SCOUT);
    // ~218 GB of BF16 weights on 4 x H200: the 10M-token default context does not fit,
    // and vLLM's own hint names the longest that does.
    let (code, err) = predict(&scout, "H200", "4", &w);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("estimated maximum model length is"), "{err}");
    assert!(
        err.contains("attention_chunk_size"),
        "named as unmodelled: {err}"
    );
    let air = model_dir(dir.path(), "GLM-4.5-Air", GLM45_AIR);
    let (code, err) = predict(&air, "H100", "4", &w);
    assert_eq!(code, 0, "{err}");
    let (code, err) = predict(&air, "H100", "1", &w);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("CUDA out of memory"), "{err}");
}

#[test]
fn sglang_and_trtllm_twins_start_where_one_full_context_request_does_not_fit() {
    // Qwen3-32B BF16 on one H100: vLLM refuses its 40,960-token default context (the KV
    // left holds fewer tokens); SGLang and TensorRT-LLM start anyway and cap the longest
    // request at the pool (SGLang's max_req_input_len, trtllm's "Adjusted max_seq_len").
    let dir = tempfile::tempdir().unwrap();
    let w = workload(dir.path());
    for argv in [
        vec!["--engine", "sglang", "--model-path", "Qwen/Qwen3-32B"],
        vec!["--engine", "trtllm", "Qwen/Qwen3-32B"],
    ] {
        let mut args = vec!["sim", "predict"];
        args.extend(&argv);
        args.extend(["--sim-gpu", "H100", "--workload", &w]);
        let o = forge(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{argv:?}: {err}");
    }
}
