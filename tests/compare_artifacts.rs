//! Golden files of the gate's artifacts: `candidates.jsonl` carries exactly the campaign
//! contract's keys (`../shared/notes/sota-loop.md`), and `summary.md` has its title, its
//! three sections in order and their columns.

use forge::compare::candidate::*;
use forge::compare::summary::{Note, render};

fn candidate(
    fw: &str,
    id: &str,
    scenario: &str,
    status: Status,
    passed: bool,
    rps: f64,
) -> Candidate {
    let ok = status == Status::Ok;
    Candidate {
        framework: fw.into(),
        framework_version: Some("1.0".into()),
        framework_commit: None,
        candidate_id: id.into(),
        model: "Qwen/Qwen3-8B".into(),
        status,
        failure_reason: if ok {
            String::new()
        } else {
            "CUDA out of memory | while capturing".into()
        },
        hardware: Hardware {
            gpu_model: "NVIDIA H100 80GB HBM3".into(),
            gpu_count: 1,
            visible_devices: Some("0".into()),
        },
        workload: Workload {
            kind: "random".into(),
            scenario: scenario.into(),
            dataset_path: Some(format!("workloads/{scenario}.jsonl")),
            input_len: Some(1000),
            output_len: Some(1000),
            input_len_p50: Some(1000.0),
            input_len_p95: Some(1000.0),
            output_len_p50: Some(1000.0),
            output_len_p95: Some(1000.0),
            num_prompts: 80,
            request_rate: ok.then_some(rps),
            max_concurrency: None,
            endpoint: "/v1/completions".into(),
        },
        sla: SlaResult {
            max_p50_ttft_ms: Some(1500.0),
            max_p50_tpot_ms: Some(30.0),
            min_success_rate: 0.99,
            max_p50_e2e_ms: None,
            passed,
        },
        metrics: if ok {
            Metrics {
                request_throughput: Some(rps),
                output_token_throughput: Some(rps * 1000.0),
                total_token_throughput: Some(rps * 2000.0),
                p50_ttft_ms: Some(210.5),
                mean_ttft_ms: Some(230.0),
                p99_ttft_ms: Some(900.0),
                p50_tpot_ms: Some(21.25),
                mean_tpot_ms: Some(22.0),
                p99_tpot_ms: Some(29.0),
                p50_e2e_ms: Some(21_400.0),
                mean_e2e_ms: Some(21_500.0),
                p99_e2e_ms: Some(30_000.0),
                success_rate: Some(1.0),
            }
        } else {
            Metrics::default()
        },
        spec_decode: SpecDecode::default(),
        cache: Cache::default(),
        memory: Memory::default(),
        normalization: Normalization {
            same_gpu_count: true,
            same_model_weights: true,
            same_tokenizer: true,
            same_endpoint: true,
            notes: vec![],
        },
        server_command: format!("{fw} serve Qwen/Qwen3-8B --port 8000"),
        benchmark_command: "forge bench --base-url http://127.0.0.1:8000 --workload w.jsonl".into(),
        validated_cli_flags: ValidatedFlags::default(),
        artifacts: Artifacts {
            server_log: Some(format!("logs/{id}.log")),
            raw_result: ok.then(|| format!("results/{id}.json")),
            server_help: Some(format!("help/{fw}.txt")),
            benchmark_help: None,
        },
    }
}

fn sample() -> Vec<Candidate> {
    vec![
        candidate("vllm", "vllm-c01", "chat", Status::Ok, true, 2.5),
        candidate("vllm", "vllm-c00", "chat", Status::Ok, true, 2.0),
        candidate("sglang", "sglang-c00", "chat", Status::Ok, true, 2.75),
        candidate("sglang", "sglang-c01", "chat", Status::Ok, false, 3.0),
        candidate("trtllm", "trtllm-c00", "chat", Status::Oom, false, 0.0),
        candidate("vllm", "vllm-c00", "summarization", Status::Ok, true, 0.5),
    ]
}

/// The contract's keys, in its order, with the nested objects' keys.
const KEYS: &[&str] = &[
    "framework",
    "framework_version",
    "framework_commit",
    "candidate_id",
    "model",
    "status",
    "failure_reason",
    "hardware",
    "workload",
    "sla",
    "metrics",
    "spec_decode",
    "cache",
    "memory",
    "normalization",
    "server_command",
    "benchmark_command",
    "validated_cli_flags",
    "artifacts",
];
const NESTED: &[(&str, &[&str])] = &[
    ("hardware", &["gpu_model", "gpu_count", "visible_devices"]),
    (
        "workload",
        &[
            "kind",
            "scenario",
            "dataset_path",
            "input_len",
            "output_len",
            "input_len_p50",
            "input_len_p95",
            "output_len_p50",
            "output_len_p95",
            "num_prompts",
            "request_rate",
            "max_concurrency",
            "endpoint",
        ],
    ),
    (
        "sla",
        &[
            "max_p50_ttft_ms",
            "max_p50_tpot_ms",
            "min_success_rate",
            "max_p50_e2e_ms",
            "passed",
        ],
    ),
    (
        "metrics",
        &[
            "request_throughput",
            "output_token_throughput",
            "total_token_throughput",
            "p50_ttft_ms",
            "mean_ttft_ms",
            "p99_ttft_ms",
            "p50_tpot_ms",
            "mean_tpot_ms",
            "p99_tpot_ms",
            "p50_e2e_ms",
            "mean_e2e_ms",
            "p99_e2e_ms",
            "success_rate",
        ],
    ),
    (
        "cache",
        &[
            "prefix_cache_enabled",
            "prefix_cache_hit_rate",
            "kv_cache_tokens",
            "kv_cache_utilization",
        ],
    ),
    (
        "normalization",
        &[
            "same_gpu_count",
            "same_model_weights",
            "same_tokenizer",
            "same_endpoint",
            "notes",
        ],
    ),
    ("validated_cli_flags", &["server", "benchmark"]),
    (
        "artifacts",
        &["server_log", "raw_result", "server_help", "benchmark_help"],
    ),
];

#[test]
fn candidates_jsonl_rows_carry_exactly_the_contracts_keys_in_order() {
    for c in sample() {
        let line = serde_json::to_string(&c).unwrap();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, KEYS, "top-level keys");
        for (obj, want) in NESTED {
            let got: Vec<&str> = v[obj]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(&got, want, "{obj}");
        }
        assert!(
            ["ok", "failed", "oom", "timeout", "skipped"].contains(&v["status"].as_str().unwrap())
        );
        // Unknown values are written as null, never left out.
        assert!(v["framework_commit"].is_null());
        let back: Candidate = serde_json::from_str(&line).unwrap();
        assert_eq!(back, c);
    }
}

#[test]
fn ranking_follows_the_contract() {
    let s = sample();
    let r = ranked(&s);
    let ids: Vec<&str> = r.iter().map(|c| c.candidate_id.as_str()).collect();
    // ok+SLA first by request throughput; the SLA-failing one after every passing one;
    // the OOM last.
    assert_eq!(ids[0], "sglang-c00");
    assert_eq!(*ids.last().unwrap(), "trtllm-c00");
    let sla_fail = ids.iter().position(|i| *i == "sglang-c01").unwrap();
    assert!(r[..sla_fail].iter().all(|c| c.eligible()));
}

#[test]
fn summary_md_has_the_three_sections_and_their_columns() {
    let notes = [Note {
        scenario: "chat".into(),
        text: "sglang vs vllm: sglang ahead by 9.8 % [+7.1, +12.6] % (95 % confidence, 4 pairs)"
            .into(),
    }];
    let md = render(&sample(), &notes);
    let heads: Vec<&str> = md.lines().filter(|l| l.starts_with("#")).collect();
    assert_eq!(
        heads,
        [
            "# Benchmark Summary",
            "## Best Commands By Framework",
            "### sglang",
            "### trtllm",
            "### vllm",
            "## Cross-Framework Best Comparison",
            "## Failed Or SLA-Failing Candidates"
        ]
    );
    assert!(md.contains(
        "| Scenario | Candidate | Status | SLA | Req/s | Output tok/s | Total tok/s | P50 TTFT ms | P50 TPOT ms | Success rate |"
    ));
    assert!(md.contains("| Scenario | Rank | Framework | Candidate | SLA | Req/s | Output tok/s | P50 TTFT ms | P50 TPOT ms |"));
    assert!(md.contains("| Framework | Candidate | Scenario | Status | SLA | Reason |"));
    // `|` inside a cell is escaped; floats are %.2f.
    assert!(md.contains("CUDA out of memory \\| while capturing"));
    assert!(md.contains("| 2.75 | 2750.00 |"));
    insta::assert_snapshot!(md);
}
