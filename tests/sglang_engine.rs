//! The real SGLang adapter end to end: the command lines it renders for two recorded
//! SGLang releases (snapshots), and `forge tune --engine sglang` against a fake `sglang`
//! (`tests/fixtures/fake-sglang/sglang`: recorded help texts, SGLang's own failure logs,
//! forge's simulated twin for the boots that succeed) meeting every failure class.

mod common;

use std::time::Duration;

use common::run::{class, fixture, journal, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use forge::engine::sglang::{flags, help};
use forge::recipe::{EngineKind, Hardware, Kernel, Recipe};
use serde_json::{Value, json};

fn recorded_help(version: &str) -> help::HelpSnapshot {
    let text = std::fs::read_to_string(fixture(&format!("sglang/help-{version}.txt"))).unwrap();
    help::parse_help(&text).unwrap()
}

/// A recipe that touches every kind of knob, including the drifting ones.
fn tuned() -> Recipe {
    let mut r = Recipe::baseline(EngineKind::Sglang, "Qwen/Qwen3-8B", Hardware::default());
    r.config = serde_json::from_value(json!({
        "chunked_prefill_size": 4096, "cuda_graph_max_bs": 160, "disable_radix_cache": false,
        "enable_mixed_chunk": true, "max_prefill_tokens": 8192, "max_running_requests": 128,
        "mem_fraction_static": 0.88, "schedule_conservativeness": 0.8, "schedule_policy": "lpm",
        "page_size": 16, "stream_interval": 2}))
    .unwrap();
    r.quant.kv_cache_quant = Some("fp8_e4m3".into());
    r.kernels.push(Kernel {
        name: "attention_backend".into(),
        value: "flashinfer".into(),
    });
    r
}

fn lines(argv: &[String]) -> String {
    argv.join(" ").replace(" --", "\n--")
}

#[test]
fn rendered_argv_for_sglang_0_5_23() {
    let argv = flags::render(
        &tuned(),
        30000,
        "forge-e0003-abc-c1",
        Some(&recorded_help("0.5.23")),
    );
    insta::assert_snapshot!("render_0_5_23", lines(&argv.unwrap()));
}

#[test]
fn rendered_argv_for_sglang_0_5_19() {
    let argv = flags::render(
        &tuned(),
        30000,
        "forge-e0003-abc-c1",
        Some(&recorded_help("0.5.19")),
    );
    insta::assert_snapshot!("render_0_5_19", lines(&argv.unwrap()));
}

#[test]
fn deploy_command_and_no_graphs_across_versions() {
    let mut r = tuned();
    r.config.remove("cuda_graph_max_bs");
    r.config.insert("disable_cuda_graph".into(), json!(true));
    insta::assert_snapshot!(
        "deploy",
        lines(&flags::deploy(&r, "0.0.0.0", 8080).unwrap())
    );
    // Every allowlisted schedule policy is one 0.5.19 lists too.
    let mut r = tuned();
    r.config.insert("schedule_policy".into(), json!("lof"));
    assert!(flags::knobs(&r, Some(&recorded_help("0.5.19"))).is_ok());
}

/// The common `forge tune` arguments against the fake `sglang` (`<fake> serve` as the
/// launcher, like `sglang serve`).
fn tune(sb: &mut Sandbox, extra: &[&str]) -> common::bin::Running {
    let fake = fixture("fake-sglang/sglang").display().to_string();
    let state = sb.path().join("state").display().to_string();
    sb.set("FAKE_SGLANG_FORGE", env!("CARGO_BIN_EXE_forge"))
        .set("FAKE_SGLANG_STATE", &state)
        .set(
            "FAKE_SGLANG_SIM_ARGS",
            "--sim-time-scale 0.01 --sim-boot-time-scale 0.001",
        )
        .set("FORGE_ENGINE_GRACE_S", "0.3");
    let wl = sim_small_workload().display().to_string();
    let mut args = sb.engine_tune_args("sglang", &format!("{fake} serve"), MODEL, &wl);
    args.extend(extra.iter().map(|a| a.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.start(&args)
}

fn failed_rows(sb: &Sandbox) -> Vec<Value> {
    journal(&sb.run_dir())
        .into_iter()
        .filter(|r| class(r).is_some())
        .collect()
}

/// Every boot failure SGLang can report, each as the baseline of its own short run: the
/// class, the root-cause summary in SGLang's words, and the hints it offered.
#[test]
fn every_boot_failure_class_from_sglangs_own_words() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "oom",
            "infeasible_oom",
            "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static",
        ),
        (
            "cudaoom",
            "infeasible_oom",
            "torch.OutOfMemoryError: CUDA out of memory",
        ),
        (
            "cudagraph",
            "infeasible_oom",
            "Exception: Capture cuda graph failed: CUDA out of memory",
        ),
        (
            "argparse",
            "infeasible_config",
            "sglang serve: error: unrecognized arguments: --bogus-flag 1",
        ),
        (
            "assertion",
            "infeasible_config",
            "AssertionError: chunked_prefill_size must be divisible by page_size",
        ),
        (
            "scheduler_died",
            "crashed_during_boot",
            "RuntimeError: Rank 0 scheduler died during initialization",
        ),
        (
            "model",
            "model_not_found",
            "huggingface_hub.errors.RepositoryNotFoundError",
        ),
        (
            "missing",
            "engine_missing",
            "ModuleNotFoundError: No module named 'sglang'",
        ),
        ("notfound", "engine_missing", "sh: 1: sglang: not found"),
        (
            "port",
            "foreign_server",
            "[Errno 98] error while attempting to bind on address",
        ),
        ("timeout", "boot_timeout", ""),
    ];
    for (fault, want, summary) in cases {
        let mut sb = Sandbox::new();
        sb.set("FAKE_SGLANG_ALWAYS", fault);
        let mut forge = tune(&mut sb, &["--max-experiments", "2", "--boot-timeout", "2"]);
        forge.wait(Duration::from_secs(120));
        sb.assert_nothing_survives();
        let rows = failed_rows(&sb);
        let first = rows
            .first()
            .unwrap_or_else(|| panic!("{fault}: no failure row\n{}", forge.stderr()));
        assert_eq!(class(first), Some(*want), "{fault}: {first}");
        let got = first
            .pointer("/failure/summary")
            .and_then(Value::as_str)
            .unwrap_or("");
        assert!(got.starts_with(summary), "{fault}: {got}");
        if *fault == "cudagraph" {
            let hints = first.pointer("/failure/hints").unwrap().to_string();
            assert!(
                hints.contains("set --cuda-graph-max-bs-decode to a smaller value"),
                "{hints}"
            );
        }
    }
}

/// The probe's answers are stored, and every boot is spelled as that release lists it.
#[test]
fn an_older_sglang_is_probed_and_rendered_for() {
    let mut sb = Sandbox::new();
    sb.set("FAKE_SGLANG_VERSION", "0.5.19")
        .set("FAKE_SGLANG_ALWAYS", "oom");
    let mut forge = tune(&mut sb, &["--max-experiments", "1", "--boot-timeout", "2"]);
    forge.wait(Duration::from_secs(60));
    let run = sb.run_dir();
    assert_eq!(
        std::fs::read_to_string(run.join("engine-version.txt")).unwrap(),
        "0.5.19\n",
        "{}",
        forge.stderr()
    );
    let saved = std::fs::read_to_string(run.join("engine-help.txt")).unwrap();
    assert!(saved.contains("--cuda-graph-max-bs CUDA_GRAPH_MAX_BS_DECODE"));
    assert!(
        !saved.contains("Help for Diffusion"),
        "only the LLM server's part is kept"
    );
    for argv in sb.state_lines("argv") {
        assert!(argv.contains("--host 127.0.0.1 --port "), "{argv}");
        assert!(argv.contains("--enable-metrics"), "{argv}");
    }
}

/// One run against the fake: a clean baseline (forge's twin), then candidates meeting
/// every failure class in turn; the infeasible ones are never retried, the run keeps going
/// and measures the clean candidate after them. Needs `forge sim serve --engine sglang`.
#[test]
fn one_run_meets_every_failure_class_and_keeps_going() {
    let mut sb = Sandbox::new();
    sb.set(
        "FAKE_SGLANG_PLAN",
        "oom cudagraph argparse scheduler_died timeout crash model missing ok",
    );
    let mut forge = tune(&mut sb, &["--max-experiments", "10", "--boot-timeout", "2"]);
    let status = forge.wait(Duration::from_secs(180));
    assert!(status.success(), "{}", forge.stderr());
    sb.assert_nothing_survives();
    let classes: Vec<String> = failed_rows(&sb)
        .iter()
        .filter_map(|r| class(r).map(String::from))
        .collect();
    for want in [
        "infeasible_oom",
        "infeasible_config",
        "crashed_during_boot",
        "boot_timeout",
        "crashed_during_bench",
        "model_not_found",
        "engine_missing",
    ] {
        assert!(classes.iter().any(|c| c == want), "{want}: {classes:?}");
    }
    let boots = sb.state_lines("boots");
    for fault in ["oom", "cudagraph", "argparse"] {
        let n = boots
            .iter()
            .filter(|b| b.ends_with(&format!(" {fault}")))
            .count();
        assert_eq!(n, 1, "{fault} is never retried: {boots:#?}");
    }
    let rows = journal(&sb.run_dir());
    let last = rows.last().unwrap();
    assert!(
        last.get("measurement").is_some_and(|m| !m.is_null()),
        "{last}"
    );
}
