//! What the first contact with forge prints when an input is wrong: each command run by
//! the real binary on a bad file or value, its exit code and stderr snapshot-tested with
//! `insta`. Every message says each thing once and puts the place in front
//! (`FILE:LINE: field: why`) where the input has a line; a forge command never prints a
//! Python traceback (only `forge sim serve`, which stands in for vLLM, does).
//! `forge recipe command` is here too: what it prints for each engine and vLLM version.

mod common;

use std::path::Path;

use common::bin::{forge, run};
use common::run::fixture;

/// Files the cases read, written into `dir`.
fn inputs(dir: &Path) {
    let good = std::fs::read_to_string(fixture("sim_small.jsonl")).unwrap();
    std::fs::write(dir.join("good.jsonl"), good).unwrap();
    std::fs::write(
        dir.join("bad.jsonl"),
        b"{\"prompt\":\"hi\",\"expected_output_tokens\":4}\n{\"prompt\":\"a\xff\xfeb\",\"expected_output_tokens\":4}\n",
    )
    .unwrap();
    let files: &[(&str, &[u8])] = &[
        ("bad.yaml", b"engine: vllm\nmodel: [unclosed\n"),
        ("engine.yaml", b"engine: tgi\nmodel: m\n"),
        ("binary.yaml", b"engine: vllm\nmodel: \xff\xfe\n"),
        (
            "bad.md",
            b"# x\n\nengine: vllm\n\n## Search space\n```yaml\nconfig:\n  max_num_seqs: [a\n```\n",
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// `$ forge ARGS`, the exit code and stderr of each command, run in `dir`.
fn transcript(dir: &Path, cases: &[&[&str]]) -> String {
    let mut out = String::new();
    for args in cases {
        let o = run(forge(args).current_dir(dir).env("NO_COLOR", "1"));
        out.push_str(&format!(
            "$ forge {}\nexit {}\n{}\n",
            args.join(" "),
            o.code,
            o.stderr
        ));
    }
    out
}

#[test]
fn bad_inputs_are_named_once_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    inputs(dir.path());
    let tune = |gpu: &'static str, workload: &'static str, extra: &[&'static str]| {
        let mut v = vec!["tune", "--dry-run", "--llm", "builtin", "--sim-gpu", gpu];
        v.extend(["--model", "Qwen/Qwen3-0.6B", "--workload", workload]);
        v.extend(extra);
        v
    };
    let tune_bad = tune("H100", "bad.jsonl", &[]);
    let tune_gpu = tune("Z100", "good.jsonl", &[]);
    let tune_slo = tune("H100", "good.jsonl", &["--slo", "p99_ttft_ms"]);
    let cases: Vec<&[&str]> = vec![
        &["workload", "stats", "bad.jsonl"],
        &["workload", "stats", "missing.jsonl"],
        &[
            "bench",
            "--workload",
            "bad.jsonl",
            "--base-url",
            "http://127.0.0.1:9",
        ],
        &tune_bad,
        &[
            "sim",
            "predict",
            "Qwen/Qwen3-0.6B",
            "--workload",
            "bad.jsonl",
        ],
        &[
            "sim",
            "predict",
            "unknown/model",
            "--workload",
            "good.jsonl",
        ],
        &["recipe", "command", "missing.yaml"],
        &["recipe", "command", "bad.yaml"],
        &["recipe", "command", "engine.yaml"],
        &["recipe", "command", "binary.yaml"],
        &["playbook", "validate", "bad.md"],
        &["playbook", "validate", "missing.md"],
        &["playbook", "gates", "--gpu", "A200"],
        &["playbook", "gates", "--engine", "llamacpp"],
        &tune_gpu,
        &tune_slo,
        &[
            "workload",
            "synth",
            "--input-len",
            "8",
            "--output-len",
            "4",
            "--num-prompts",
            "2",
            "--output",
            "no/such/dir/w.jsonl",
        ],
    ];
    let text = transcript(dir.path(), &cases);
    assert!(!text.contains("Traceback"), "{text}");
    assert!(!text.contains("No such file or directory (os error 2): No such"));
    assert!(
        !dir.path().join(".forge").exists(),
        "a bad input started a run"
    );
    insta::assert_snapshot!(text);
}

/// `forge sim serve` stands in for vLLM: an unknown model is vLLM's `ValueError` traceback,
/// the simulator's reason on its last line.
#[test]
fn sim_serve_keeps_vllms_traceback_for_an_unknown_model() {
    let o = run(&mut forge(&[
        "sim",
        "serve",
        "unknown/model",
        "--port",
        "0",
    ]));
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("Traceback (most recent call last):\n"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains(
            "\nValueError: Invalid repository ID or local directory specified: 'unknown/model'.\n"
        ),
        "{}",
        o.stderr
    );
    let last = o.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("(forge simulator: unknown model `unknown/model`"),
        "{last}"
    );
}

fn recipe_command(dir: &Path, name: &str, yaml: &str, extra: &[&str]) -> String {
    std::fs::write(dir.join(name), yaml).unwrap();
    let mut args = vec!["recipe", "command", name];
    args.extend(extra);
    let o = run(forge(&args).current_dir(dir));
    format!("exit {}\n{}{}", o.code, o.stdout, o.stderr)
}

#[test]
fn recipe_command_prints_what_a_user_deploys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let llama = "# best recipe so far (score 1.2000); deploy with: forge recipe command x\n\
                 engine: llamacpp\nmodel: /models/SmolLM2-135M-Instruct.Q4_1.gguf\n\
                 config:\n  parallel: 8\n  threads: 2\n  flash_attn: 'on'\n\
                 quant:\n  kv_cache_quant: q8_0\n";
    assert_eq!(
        recipe_command(
            d,
            "llama.yaml",
            llama,
            &["--host", "0.0.0.0", "--port", "8080"]
        ),
        "exit 0\nllama-server --model /models/SmolLM2-135M-Instruct.Q4_1.gguf \
         --alias SmolLM2-135M-Instruct.Q4_1 --host 0.0.0.0 --port 8080 --flash-attn on \
         --parallel 8 --threads 2 --cache-type-k q8_0 --cache-type-v q8_0\n"
    );
    let backend = "engine: vllm\nmodel: Qwen/Qwen3-0.6B\nconfig:\n  max_num_seqs: 64\n\
                   kernels:\n- name: attention_backend\n  value: FLASHINFER\n";
    let old = recipe_command(d, "fi.yaml", backend, &["--vllm-version", "0.10.2"]);
    assert_eq!(
        old,
        "exit 0\nVLLM_ATTENTION_BACKEND=FLASHINFER vllm serve Qwen/Qwen3-0.6B --host 127.0.0.1 \
         --port 8000 --max-num-seqs 64\n"
    );
    // 0.12 had no flag either; 0.13.0 added `--attention-backend`.
    assert!(
        recipe_command(d, "fi.yaml", backend, &["--vllm-version", "0.12.0"])
            .contains("VLLM_ATTENTION_BACKEND=FLASHINFER vllm serve")
    );
    assert_eq!(
        recipe_command(d, "fi.yaml", backend, &["--vllm-version", "0.13.0"]),
        "exit 0\nvllm serve Qwen/Qwen3-0.6B --host 127.0.0.1 --port 8000 --max-num-seqs 64 \
         --attention-backend FLASHINFER\n"
    );
    let perf = "engine: vllm\nmodel: m\nconfig:\n  performance_mode: throughput\n";
    assert_eq!(
        recipe_command(d, "perf.yaml", perf, &["--vllm-version", "0.10.2"]),
        "exit 1\nerror: perf.yaml: recipe field `performance_mode` has no flag in vLLM 0.10.2: \
         forge knows `--performance-mode` only in other vLLM versions\n"
    );
}
