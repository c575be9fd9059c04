//! Unit tests of the engine: memory plan numbers, boot error texts, request validation,
//! async scheduling lag, output lengths and determinism.

use super::*;
use crate::engine::vllm::{KvCacheDtype, VllmArgs};
use crate::hardware::gpus::lookup;

fn setup(model: &str, gpu: &str, args: VllmArgs) -> SimSetup {
    let g = lookup(gpu).unwrap();
    SimSetup {
        model: ModelShape::resolve(model).unwrap(),
        gpu: g,
        config: VllmArgs {
            model: model.into(),
            ..args
        }
        .resolve(g),
        seed: 7,
        noise_pct: 0.0,
        vllm: crate::engine::vllm::flags::Version::CURRENT,
        policy: Default::default(),
    }
}

fn boot_err(model: &str, gpu: &str, args: VllmArgs) -> BootError {
    SimEngine::boot(setup(model, gpu, args)).unwrap_err()
}

fn req(id: u64, len: u32, out: u32) -> SimRequest {
    SimRequest {
        id,
        prompt: (0..len).map(|i| i * 7 + id as u32).collect(),
        max_tokens: out,
        min_tokens: 0,
        ignore_eos: true,
        choice: 0,
        stop_at: None,
    }
}

/// Llama-3.1-8B on one H100 SXM with vLLM's defaults (util 0.92, 8192 batched tokens,
/// 1024 seqs, block 16, -O2), by hand:
/// - total = 81559 MiB = 85,520,809,984 B; requested = 0.92 × total = 78,679,145,185 B
/// - weights = 6,979,321,856 linear params × 2 B + 2 × 525,336,576 (embedding, head) × 2 B
///   = 16,059,990,016 B = 14.957 GiB
/// - activations = 8192 × (2·4096 + 48·128 + 3·14336) × 2 B + 1024 × 128,256 × 4 B × 2
///   = 939,524,096 + 1,050,673,152 = 1,990,197,248 B
/// - runtime 0.35 GiB = 375,809,638 B; CUDA graphs 0.00049 GiB × 51 sizes × 32 layers ×
///   4096/5120 = 686,919,889 B
/// - kv = 59,566,228,393 B = 55.475 GiB → ⌊kv / (16 × 131,072 B)⌋ = 28,403 blocks
///   = 454,448 tokens; 454,448 / 131,072 = 3.467x concurrency at the full context.
#[test]
fn memory_plan_llama31_8b_h100() {
    let (_, info) = SimEngine::boot(setup(
        "meta-llama/Llama-3.1-8B-Instruct",
        "H100",
        VllmArgs::default(),
    ))
    .unwrap();
    assert!(
        (info.weights_gib - 14.957).abs() < 0.001,
        "{}",
        info.weights_gib
    );
    assert!(
        (info.kv_cache_gib - 55.475).abs() < 0.001,
        "{}",
        info.kv_cache_gib
    );
    assert_eq!(info.num_gpu_blocks, 28_403);
    assert_eq!(info.kv_cache_tokens, 454_448);
    assert_eq!(info.max_model_len, 131_072);
    assert!((info.max_concurrency - 3.467).abs() < 0.001);
    assert_eq!(info.cudagraph_capture_sizes.len(), 51);
    assert!(info.startup_seconds > info.graph_capture_seconds + info.load_seconds);
}

#[test]
fn weights_beyond_the_card_are_a_torch_oom() {
    let e = boot_err(
        "meta-llama/Llama-3.1-70B-Instruct",
        "A100-40GB",
        VllmArgs::default(),
    );
    assert!(matches!(e, BootError::Oom(_)));
    let t = e.to_string();
    assert!(
        t.starts_with("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate "),
        "{t}"
    );
    assert!(t.contains("GPU 0 has a total capacity of 40.00 GiB"), "{t}");
}

#[test]
fn no_room_for_kv_blocks() {
    // L4: 22.49 GiB × 0.5 = 11.2 GiB < 14.96 GiB of weights (which do fit the card).
    let e = boot_err(
        "meta-llama/Llama-3.1-8B",
        "L4",
        VllmArgs {
            gpu_memory_utilization: Some(0.5),
            ..Default::default()
        },
    );
    assert_eq!(
        e,
        BootError::Oom(
            "ValueError: No available memory for the cache blocks. Try increasing \
             `gpu_memory_utilization` when initializing the engine. See \
             https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
                .into()
        )
    );
}

#[test]
fn max_model_len_beyond_the_kv_cache() {
    let args = VllmArgs {
        gpu_memory_utilization: Some(0.3),
        ..Default::default()
    };
    let e = boot_err("meta-llama/Llama-3.1-8B", "H100", args.clone());
    let t = e.to_string();
    assert!(
        t.starts_with(
            "ValueError: To serve at least one request with the model's max seq len (131072), \
             (16.0 GiB KV cache is needed, which is larger than the available KV cache memory ("
        ),
        "{t}"
    );
    // The estimate is the KV capacity itself: booting at that length succeeds.
    let m: u32 = t
        .split("estimated maximum model length is ")
        .nth(1)
        .and_then(|s| s.split('.').next())
        .unwrap()
        .parse()
        .unwrap();
    let ok = SimEngine::boot(setup(
        "meta-llama/Llama-3.1-8B",
        "H100",
        VllmArgs {
            max_model_len: Some(m),
            ..args
        },
    ));
    assert_eq!(ok.unwrap().1.kv_cache_tokens, u64::from(m));
}

#[test]
fn invalid_combinations_use_vllm_texts() {
    let m = "meta-llama/Llama-3.1-8B";
    let e = boot_err(
        m,
        "H100",
        VllmArgs {
            enable_chunked_prefill: Some(false),
            max_model_len: Some(16384),
            ..Default::default()
        },
    );
    assert_eq!(
        e.to_string(),
        "ValueError: max_num_batched_tokens (8192) is smaller than max_model_len (16384). This \
         effectively limits the maximum sequence length to max_num_batched_tokens and makes \
         vLLM reject longer sequences. Please increase max_num_batched_tokens or decrease \
         max_model_len."
    );
    let e = boot_err(
        m,
        "H100",
        VllmArgs {
            max_num_batched_tokens: Some(512),
            ..Default::default()
        },
    );
    assert_eq!(
        e.to_string(),
        "ValueError: max_num_batched_tokens (512) must be greater than or equal to max_num_seqs (1024)."
    );
    let e = boot_err(
        m,
        "H100",
        VllmArgs {
            tensor_parallel_size: Some(3),
            ..Default::default()
        },
    );
    assert_eq!(
        e.to_string(),
        "ValueError: Total number of attention heads (32) must be divisible by tensor parallel size (3)."
    );
}

#[test]
fn model_and_hardware_limits_use_vllm_texts() {
    let m = "meta-llama/Llama-3.1-8B";
    let e = boot_err(
        "Qwen/Qwen3-8B",
        "H100",
        VllmArgs {
            max_model_len: Some(65536),
            ..Default::default()
        },
    );
    assert!(e.to_string().starts_with(
        "ValueError: User-specified max_model_len (65536) is greater than the derived \
         max_model_len (max_position_embeddings=40960.0 or model_max_length=None in model's config.json)."
    ));
    assert!(matches!(e, BootError::Config(_)));
    let e = boot_err(
        m,
        "T4",
        VllmArgs {
            dtype: Some("bfloat16".into()),
            ..Default::default()
        },
    );
    assert!(
        e.to_string()
            .contains("Your Tesla T4 GPU has compute capability 7.5.")
    );
    let e = boot_err(
        "Qwen/Qwen3-0.6B",
        "T4",
        VllmArgs {
            quantization: Some("mxfp4".into()),
            ..Default::default()
        },
    );
    assert!(
        e.to_string()
            .contains("Cannot find the config file for mxfp4")
    );
    let e = boot_err(
        "Qwen/Qwen3-0.6B",
        "T4",
        VllmArgs {
            kv_cache_dtype: Some(KvCacheDtype::Fp8),
            ..Default::default()
        },
    );
    assert!(
        e.to_string()
            .contains("KV cache dtype fp8 is not supported on T4")
    );
}

#[test]
fn quantization_below_the_minimum_capability() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
            "intermediate_size": 512, "vocab_size": 1000, "max_position_embeddings": 4096,
            "quantization_config": {"quant_method": "mxfp4"}}"#,
    )
    .unwrap();
    let e = boot_err(
        dir.path().to_str().unwrap(),
        "T4",
        VllmArgs {
            dtype: Some("half".into()),
            ..Default::default()
        },
    );
    assert_eq!(
        e.to_string(),
        "ValueError: The quantization method mxfp4 is not supported for the current GPU. \
         Minimum capability: 80. Current capability: 75."
    );
}

#[test]
fn over_long_requests_get_vllms_400_text() {
    let (mut e, _) = SimEngine::boot(setup(
        "Qwen/Qwen3-0.6B",
        "H100",
        VllmArgs {
            max_model_len: Some(1000),
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(
        e.submit(req(1, 990, 20)).unwrap_err(),
        "This model's maximum context length is 1000 tokens. However, you requested 20 output \
         tokens and your prompt contains 990 input tokens, for a total of 1010 tokens. Please \
         reduce the length of the input prompt or the number of requested output tokens."
    );
    assert!(e.submit(req(2, 980, 20)).is_ok());
    assert_eq!(
        e.submit(req(2, 10, 20)).unwrap_err(),
        "Request id 2 already running."
    );
    assert!(
        e.submit(req(3, 0, 20))
            .unwrap_err()
            .contains("prompt cannot be empty")
    );
}

/// Run to completion; returns (time, outputs) of every step with outputs.
fn drain(e: &mut SimEngine) -> Vec<(f64, Vec<TokenOutput>)> {
    let mut t = e.clock();
    let mut out = Vec::new();
    while !e.is_idle() {
        let r = e.step(t);
        t += r.duration_s;
        if !r.outputs.is_empty() {
            out.push((t, r.outputs));
        }
    }
    out
}

#[test]
fn async_scheduling_admits_mid_step_arrivals_one_step_later() {
    for (asynchronous, lag) in [(false, 1), (true, 2)] {
        let (mut e, _) = SimEngine::boot(setup(
            "Qwen/Qwen3-0.6B",
            "H100",
            VllmArgs {
                async_scheduling: Some(asynchronous),
                ..Default::default()
            },
        ))
        .unwrap();
        e.submit_at(req(1, 64, 50), 0.0).unwrap();
        let mut t = 0.0;
        while e.stats().running == 0 {
            t += e.step(t).duration_s;
        }
        // Request 2 arrives early in a decode step of request 1 (its API-server intake is
        // done before the step ends); count steps to its first token.
        let d = e.step(t).duration_s;
        t += d;
        e.submit_at(req(2, 8, 5), t - 0.9 * d).unwrap();
        let mut steps = 0;
        loop {
            let r = e.step(t);
            t += r.duration_s;
            if r.scheduled_tokens > 0 {
                steps += 1;
            }
            if r.outputs.iter().any(|o| o.id == 2) {
                break;
            }
        }
        assert_eq!(steps, lag, "async={asynchronous}");
    }
}

#[test]
fn natural_lengths_are_bounded_and_deterministic() {
    let mut r = req(1, 30, 400);
    r.ignore_eos = false;
    r.min_tokens = 20;
    let a = output_target(3, &r);
    assert_eq!(a, output_target(3, &r));
    assert!((20..=400).contains(&a.0));
    assert_eq!(a.1 == FinishReason::Length, a.0 == 400);
    let lens: Vec<u32> = (0..200).map(|s| output_target(s, &r).0).collect();
    let stops = lens.iter().filter(|&&l| l < 400).count();
    assert!(stops > 100, "most natural lengths end before 400: {stops}");
    r.ignore_eos = true;
    assert_eq!(output_target(3, &r), (400, FinishReason::Length));
}

#[test]
fn outputs_count_every_token_once() {
    let (mut e, _) =
        SimEngine::boot(setup("Qwen/Qwen3-0.6B", "H100", VllmArgs::default())).unwrap();
    for i in 0..20 {
        e.submit_at(req(i, 100 + 10 * i as u32, 30), 0.0).unwrap();
    }
    let steps = drain(&mut e);
    let total: u32 = steps
        .iter()
        .flat_map(|(_, o)| o.iter().map(|x| x.new_tokens))
        .sum();
    assert_eq!(total, 20 * 30);
    let s = e.stats();
    assert_eq!((s.generation_tokens, s.requests_finished), (600, 20));
    assert_eq!(s.prompt_tokens, (0..20).map(|i| 100 + 10 * i).sum::<u64>());
    assert_eq!((s.running, s.waiting), (0, 0));
}

#[test]
fn same_seed_same_timing_and_noise_differs_by_seed() {
    let run = |seed: u64, noise: f64| {
        let mut s = setup("Qwen/Qwen3-0.6B", "H100", VllmArgs::default());
        s.seed = seed;
        s.noise_pct = noise;
        let (mut e, _) = SimEngine::boot(s).unwrap();
        for i in 0..8 {
            e.submit_at(req(i, 200, 40), 0.0).unwrap();
        }
        drain(&mut e).last().map(|(t, _)| *t).unwrap()
    };
    assert_eq!(run(1, 5.0), run(1, 5.0));
    assert_ne!(run(1, 5.0), run(2, 5.0));
    assert_eq!(run(1, 0.0), run(2, 0.0));
}

#[test]
fn abort_releases_everything() {
    let (mut e, _) =
        SimEngine::boot(setup("Qwen/Qwen3-0.6B", "H100", VllmArgs::default())).unwrap();
    e.submit_at(req(1, 100, 1000), 0.0).unwrap();
    let mut t = 0.0;
    for _ in 0..5 {
        t += e.step(t).duration_s;
    }
    assert!(e.stats().kv_usage > 0.0);
    e.abort(1);
    assert!(e.is_idle());
    assert_eq!(e.stats().kv_usage, 0.0);
}

#[test]
fn stop_at_ends_a_sequence_early_even_with_ignore_eos() {
    let r = SimRequest {
        stop_at: Some(7),
        ..req(1, 30, 400)
    };
    assert_eq!(output_target(3, &r), (7, FinishReason::Stop));
    // A stop past max_tokens (or past the natural end) changes nothing.
    let r = SimRequest {
        stop_at: Some(401),
        ..req(1, 30, 400)
    };
    assert_eq!(output_target(3, &r), (400, FinishReason::Length));
    let mut natural = req(1, 30, 400);
    natural.ignore_eos = false;
    let (n, _) = output_target(3, &natural);
    natural.stop_at = Some(n + 1);
    assert_eq!(output_target(3, &natural).0, n);
}

#[test]
fn later_choices_draw_their_own_lengths() {
    let mut r = req(1, 30, 4000);
    r.ignore_eos = false;
    let first = output_target(3, &r);
    let lens: Vec<u32> = (1..20)
        .map(|c| {
            output_target(
                3,
                &SimRequest {
                    choice: c,
                    ..r.clone()
                },
            )
            .0
        })
        .collect();
    assert!(lens.iter().any(|&l| l != first.0), "{first:?} {lens:?}");
    assert_eq!(
        output_target(
            3,
            &SimRequest {
                choice: 0,
                ..r.clone()
            }
        ),
        first
    );
}

#[test]
fn n_sequences_of_one_prompt_share_its_prefix_cache() {
    let (mut e, _) =
        SimEngine::boot(setup("Qwen/Qwen3-0.6B", "H100", VllmArgs::default())).unwrap();
    let prompt = req(1, 256, 30).prompt;
    for choice in 0..3u32 {
        let r = SimRequest {
            id: 10 + u64::from(choice),
            prompt: prompt.clone(),
            choice,
            stop_at: Some(5 + choice),
            ..req(0, 0, 30)
        };
        e.submit_at(r, 0.0).unwrap();
    }
    let steps = drain(&mut e);
    let last: Vec<(u64, u32)> = steps
        .iter()
        .flat_map(|(_, o)| {
            o.iter()
                .filter(|x| x.finish.is_some())
                .map(|x| (x.id, x.total_tokens))
        })
        .collect();
    assert_eq!(last.len(), 3);
    for (id, total) in last {
        assert_eq!(total, 5 + (id - 10) as u32);
    }
    let s = e.stats();
    // The second and third sequences find the first one's full prompt blocks (all but the
    // last token's block).
    assert!(s.prefix_cache_hits >= 2 * 240, "{s:?}");
}

#[test]
fn cuda_graph_memory_counts_against_the_kv_budget_from_vllm_0_21() {
    // Before 0.21 vLLM sized the KV cache without the CUDA graphs (captured afterwards,
    // `gpu_worker.determine_available_memory`); from 0.21 it charges its estimate of them
    // ("CUDA graph memory profiling is enabled (default since v0.21.0)"). Qwen3-32B on one
    // H100: the difference is the graph estimate, 64 layers x 67 captured sizes.
    use crate::engine::vllm::flags::Version;
    let kv = |v: Version| {
        let mut s = setup(
            "Qwen/Qwen3-32B",
            "H100",
            VllmArgs {
                max_model_len: Some(8192),
                ..VllmArgs::default()
            },
        );
        s.vllm = v;
        SimEngine::boot(s).unwrap().1.kv_cache_gib
    };
    let (old, current) = (kv(Version::new(0, 11, 0)), kv(Version::CURRENT));
    assert!(
        old - current > 1.5 && old - current < 2.5,
        "0.11: {old} GiB, current: {current} GiB"
    );
    assert_eq!(kv(Version::new(0, 20, 9)), old);
    assert_eq!(kv(Version::new(0, 21, 0)), current);
}

/// The engine of `framework`'s twin for `args` (`sglang serve` / `trtllm-serve serve` words).
fn twin_engine(framework: crate::recipe::EngineKind, args: &str) -> SimEngine {
    let argv: Vec<String> = args.split_whitespace().map(str::to_string).collect();
    let gpu = lookup("H100").unwrap();
    let t = crate::sim::twin::parse(framework, &argv, gpu).unwrap();
    let run = crate::sim::twin::Run {
        gpu,
        seed: 7,
        noise_pct: 0.0,
    };
    let model = ModelShape::resolve(&t.model).unwrap();
    let setup = crate::sim::twin::sized_setup(&t, model, run).unwrap();
    SimEngine::boot(setup).unwrap().0
}

#[test]
fn each_twin_answers_an_over_long_request_as_its_framework_does() {
    use crate::recipe::EngineKind;
    let m = "Qwen/Qwen3-0.6B";
    // SGLang refuses it with its tokenizer manager's words.
    let mut e = twin_engine(
        EngineKind::Sglang,
        &format!("--model-path {m} --context-length 1024"),
    );
    let err = e.submit(req(1, 1000, 100)).unwrap_err();
    assert!(err.starts_with("Requested token count exceeds the model's maximum context length of 1024 tokens. You requested a total of 1100 tokens"), "{err}");
    let err = e.submit(req(2, 1024, 1)).unwrap_err();
    assert_eq!(
        err,
        "The input (1024 tokens) is longer than the model's context length (1024 tokens)."
    );
    // TensorRT-LLM lowers max_tokens to what the context holds, and refuses only a prompt
    // that leaves no room.
    let mut e = twin_engine(EngineKind::Trtllm, &format!("{m} --max_seq_len 1024"));
    e.submit(req(1, 1000, 100)).unwrap();
    let mut t = 0.0;
    let mut generated = 0;
    while !e.is_idle() {
        let r = e.step(t);
        t += r.duration_s.max(1e-6);
        generated += r.outputs.iter().map(|o| o.new_tokens).sum::<u32>();
    }
    assert_eq!(generated, 24, "max_tokens 100 clamped to 1024 - 1000");
    let err = e.submit(req(2, 1024, 1)).unwrap_err();
    assert!(
        err.starts_with("`default_max_tokens` (0) must be greater than 0"),
        "{err}"
    );
    // Without chunked prefill, a prompt over max_num_tokens is refused (trtllm's 400).
    let mut e = twin_engine(EngineKind::Trtllm, &format!("{m} --max_num_tokens 512"));
    let err = e.submit(req(3, 600, 1)).unwrap_err();
    assert!(
        err.contains("should not exceed max_num_tokens (512)"),
        "{err}"
    );
}
