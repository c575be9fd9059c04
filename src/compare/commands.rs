//! The commands a reader copies out of the gate: each candidate's launch command (rendered
//! by the same code as `forge recipe command`, through the framework's allowlist), and the
//! benchmark that reproduces its row — `forge bench`, and for the default random scenarios
//! that framework's own client with the flags its source defines (listed below with where
//! they were read), so a user can check forge's numbers with the tool they trust.

use std::path::Path;

use super::scenario::Scenario;
use super::settings::CompareSettings;
use crate::engine::deploy::{Deploy, Target, display, render};
use crate::recipe::{EngineKind, Recipe};

/// The port each framework listens on by default.
pub fn default_port(fw: EngineKind) -> u16 {
    match fw {
        EngineKind::Sglang => 30000,
        EngineKind::Llamacpp => 8080,
        EngineKind::Vllm | EngineKind::Trtllm => 8000,
    }
}

/// The launch command for `recipe`, as `forge recipe command` prints it (a trtllm YAML
/// first, as a here-document).
pub fn server_line(recipe: &Recipe) -> anyhow::Result<String> {
    let version = crate::engine::vllm::flags::Version::CURRENT.to_string();
    let a = Target {
        host: "127.0.0.1",
        port: default_port(recipe.engine),
        vllm_version: &version,
        source: "best_recipe.yaml",
    };
    Ok(display(&render(recipe, &a)?))
}

/// `forge bench` against the launched server, at the candidate's rate and cap.
pub fn forge_bench(
    s: &CompareSettings,
    sc: &Scenario,
    dir: &Path,
    fw: EngineKind,
    rate: Option<f64>,
    cap: Option<usize>,
) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "forge".into(),
        "bench".into(),
        "--base-url".into(),
        format!("http://127.0.0.1:{}", default_port(fw)),
        "--workload".into(),
        dir.join(&sc.path).display().to_string(),
        "--request-rate".into(),
        rate.map_or("inf".into(), fmt_rate),
        "--seed".into(),
        s.seed.to_string(),
    ];
    if let Some(c) = cap {
        v.extend(["--concurrency".into(), c.to_string()]);
    }
    v
}

/// Flags of `vllm bench serve` used below (vllm/benchmarks/serve.py and
/// vllm/benchmarks/datasets.py, v0.10 and later: random lengths are fixed at range ratio 0).
pub const VLLM_BENCH_FLAGS: &[&str] = &[
    "--backend",
    "--base-url",
    "--model",
    "--endpoint",
    "--dataset-name",
    "--random-input-len",
    "--random-output-len",
    "--num-prompts",
    "--request-rate",
    "--max-concurrency",
    "--ignore-eos",
    "--seed",
];

/// Flags of `python3 -m sglang.bench_serving` used below (its 0.5.23 `--help`, recorded in
/// `tests/fixtures/sglang/bench-serving-0.5.23-help.txt`; it ignores EOS unless told not to, and
/// `random-ids` needs no dataset download).
pub const SGLANG_BENCH_FLAGS: &[&str] = &[
    "--backend",
    "--base-url",
    "--model",
    "--dataset-name",
    "--random-input-len",
    "--random-output-len",
    "--random-range-ratio",
    "--num-prompts",
    "--request-rate",
    "--max-concurrency",
    "--seed",
];

/// Flags of TensorRT-LLM's `python3 -m tensorrt_llm.serve.scripts.benchmark_serving` used
/// below (its argparse in tensorrt_llm/serve/scripts/benchmark_serving.py, read at commit
/// 0228a71: range ratio 0 means fixed lengths; `--random-ids` needs no dataset download).
pub const TRTLLM_BENCH_FLAGS: &[&str] = &[
    "--backend",
    "--base-url",
    "--model",
    "--dataset-name",
    "--random-ids",
    "--random-input-len",
    "--random-output-len",
    "--num-prompts",
    "--request-rate",
    "--max-concurrency",
    "--ignore-eos",
    "--seed",
];

/// The framework's own benchmark client for a fixed-length scenario (`None` for a custom
/// workload or llama.cpp, which has no serving benchmark of its own).
pub fn native_bench(
    s: &CompareSettings,
    sc: &Scenario,
    fw: EngineKind,
    rate: Option<f64>,
    cap: Option<usize>,
) -> Option<Vec<String>> {
    let (input, output) = (sc.input_len?, sc.output_len?);
    let url = format!("http://127.0.0.1:{}", default_port(fw));
    let mut v: Vec<String> = match fw {
        EngineKind::Vllm => words(&[
            "vllm",
            "bench",
            "serve",
            "--backend",
            "vllm",
            "--base-url",
            &url,
            "--model",
            &s.model,
            "--endpoint",
            "/v1/completions",
            "--dataset-name",
            "random",
        ]),
        EngineKind::Sglang => words(&[
            "python3",
            "-m",
            "sglang.bench_serving",
            "--backend",
            "sglang-oai",
            "--base-url",
            &url,
            "--model",
            &s.model,
            "--dataset-name",
            "random-ids",
            "--random-range-ratio",
            "1",
        ]),
        EngineKind::Trtllm => words(&[
            "python3",
            "-m",
            "tensorrt_llm.serve.scripts.benchmark_serving",
            "--backend",
            "openai",
            "--base-url",
            &url,
            "--model",
            &s.model,
            "--dataset-name",
            "random",
            "--random-ids",
        ]),
        EngineKind::Llamacpp => return None,
    };
    v.extend(words(&[
        "--random-input-len",
        &input.to_string(),
        "--random-output-len",
        &output.to_string(),
        "--num-prompts",
        &super::scenario::fixed(&sc.name)?
            .spec(s.seed)
            .num_prompts
            .to_string(),
        "--request-rate",
        &rate.map_or("inf".into(), fmt_rate),
        "--seed",
        &s.seed.to_string(),
    ]));
    if fw != EngineKind::Sglang {
        v.push("--ignore-eos".into());
    }
    if let Some(c) = cap {
        v.extend(["--max-concurrency".into(), c.to_string()]);
    }
    Some(v)
}

/// The flags `fw`'s client is allowed (what [`native_bench`] may emit).
pub fn native_flags(fw: EngineKind) -> &'static [&'static str] {
    match fw {
        EngineKind::Vllm => VLLM_BENCH_FLAGS,
        EngineKind::Sglang => SGLANG_BENCH_FLAGS,
        EngineKind::Trtllm => TRTLLM_BENCH_FLAGS,
        EngineKind::Llamacpp => &[],
    }
}

/// Join argv for a POSIX shell (each word quoted when it needs it).
pub fn shell(argv: &[String]) -> String {
    display(&Deploy {
        env: Vec::new(),
        argv: argv.to_vec(),
        files: Vec::new(),
    })
}

fn fmt_rate(r: f64) -> String {
    format!("{r:.3}")
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_string()
}

fn words(w: &[&str]) -> Vec<String> {
    w.iter().map(|s| s.to_string()).collect()
}
