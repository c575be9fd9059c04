//! `forge tune --engine vllm` end to end against a fake `vllm` (forge's simulator behind
//! vLLM's CLI, answering `--version` and `serve --help=all` from recorded real help texts):
//! one run meets every failure class, records each with its evidence, retries only the
//! infrastructure ones, keeps going, and leaves no process behind — not the grandchild of
//! `--sim-spawn-child`, not a server that ignores SIGTERM, not a worker that survives it.

mod common;

use std::time::{Duration, Instant};

use common::procs::{TAG_VAR, wait_until};
use common::run::{class, journal, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use serde_json::Value;

/// The candidate experiments' faults, in order, then a clean one.
const PLAN: &str = "oom kvshort config argparse timeout crash missing foreign ok";

#[test]
fn one_run_meets_every_failure_class_and_keeps_going() {
    let started = Instant::now();
    let mut sb = Sandbox::new();
    sb.set("FAKE_VLLM_PLAN", PLAN)
        .set(
            "FAKE_VLLM_SIM_ARGS",
            "--sim-time-scale 0.01 --sim-boot-time-scale 0.001 --sim-spawn-child \
             --sim-ignore-sigterm",
        )
        .set("FORGE_ENGINE_GRACE_S", "0.3")
        .set("FAKE_VLLM_STUBBORN", "1");
    let mut forge = sb.tune_fake(&["--max-experiments", "10", "--boot-timeout", "2"]);
    let status = forge.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", forge.stderr());
    sb.assert_nothing_survives();

    let run = sb.run_dir();
    let rows = journal(&run);
    let failed: Vec<&Value> = rows.iter().filter(|r| class(r).is_some()).collect();
    let classes: Vec<&str> = failed.iter().filter_map(|r| class(r)).collect();
    assert_eq!(
        classes,
        [
            "infeasible_oom",
            "infeasible_oom",
            "infeasible_config",
            "infeasible_config",
            "boot_timeout",
            "crashed_during_bench",
            "engine_missing",
            "foreign_server",
        ],
        "{}",
        forge.stderr()
    );
    // It kept going: the clean candidate after the failures was measured.
    let last = rows.last().unwrap();
    assert!(
        last.get("measurement").is_some_and(|m| !m.is_null()),
        "{last}"
    );
    assert!(run.join("completed.json").exists());

    evidence_is_recorded(&failed);
    only_infrastructure_failures_are_retried(&sb);
    the_foreign_server_was_never_benchmarked(&run, failed[7]);
    the_report_lists_failures_by_kind(&sb, &run);
    engines_had_worker_grandchildren(&run);
    assert_eq!(
        std::fs::read_to_string(run.join("engine-version.txt")).unwrap(),
        "0.33.0\n"
    );
    let help = std::fs::read_to_string(run.join("engine-help.txt")).unwrap();
    assert!(help.contains("--enable-prefix-caching, --disable-prefix-caching"));
    // Every boot's argv is spelled as 0.33 lists it.
    for argv in sb.state_lines("argv") {
        assert!(!argv.contains("--no-enable-"), "{argv}");
        assert!(argv.contains("--host 127.0.0.1 --port "), "{argv}");
    }
    eprintln!(
        "one run, every class: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// Infeasible rows carry the engine's own lines; exit codes are kept.
fn evidence_is_recorded(failed: &[&Value]) {
    let f = |i: usize, key: &str| failed[i].pointer(&format!("/failure/{key}")).cloned();
    let hints = |i: usize| f(i, "hints").unwrap_or_default().to_string();
    let summary = |i: usize| f(i, "summary").unwrap().as_str().unwrap().to_string();
    assert!(hints(0).contains("CUDA out of memory"), "{}", hints(0));
    assert!(
        summary(0).starts_with("torch.OutOfMemoryError"),
        "{}",
        summary(0)
    );
    // H100, Qwen3-0.6B at 5 % of memory: ~1 GiB of KV, 9,248 tokens of 40,960.
    assert!(
        hints(1).contains("the estimated maximum model length is 9248"),
        "{}",
        hints(1)
    );
    assert!(
        summary(1).starts_with("ValueError: To serve at least one request"),
        "{}",
        summary(1)
    );
    assert_eq!(f(2, "exit_code"), Some(Value::from(1)));
    assert!(hints(2).contains("ValueError"), "{}", hints(2));
    assert_eq!(f(3, "exit_code"), Some(Value::from(2)));
    assert_eq!(
        summary(3),
        "vllm serve: error: unrecognized arguments: --swap-space 4"
    );
    assert_eq!(summary(6), "ModuleNotFoundError: No module named 'vllm'");
}

/// boot_timeout, crashed_during_bench and foreign_server get one more boot (`-retry`);
/// the infeasible ones and the missing engine are never booted again.
fn only_infrastructure_failures_are_retried(sb: &Sandbox) {
    let boots = sb.state_lines("boots");
    let faults_retried: Vec<&str> = boots
        .iter()
        .filter(|b| b.split(' ').next().unwrap().contains("-retry-"))
        .map(|b| b.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        faults_retried,
        ["timeout", "crash", "foreign"],
        "{boots:#?}"
    );
    for fault in ["oom", "kvshort", "config", "argparse", "missing"] {
        let n = boots
            .iter()
            .filter(|b| b.ends_with(&format!(" {fault}")))
            .count();
        assert_eq!(n, 1, "{fault}: {boots:#?}");
    }
}

/// The server that answered for another model got probed, never a completion request.
fn the_foreign_server_was_never_benchmarked(run: &std::path::Path, row: &Value) {
    let id = row["id"].as_str().unwrap();
    let logs: Vec<String> = std::fs::read_dir(run.join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.display().to_string().contains(id))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert_eq!(logs.len(), 2, "first boot and its retry");
    for log in logs {
        assert!(log.contains("\"GET /v1/models HTTP/1.1\" 200"), "{log}");
        assert!(!log.contains("/v1/completions HTTP"), "{log}");
        assert!(!log.contains("/v1/chat/completions HTTP"), "{log}");
    }
}

/// `--sim-spawn-child`: the engine core ran in a worker process of its own (its pid in
/// the log prefix differs from the server's), so the survivor check above covered
/// grandchildren.
fn engines_had_worker_grandchildren(run: &std::path::Path) {
    let log = std::fs::read_to_string(run.join("logs/e0000-baseline.log")).unwrap();
    let pid_after = |marker: &str, end: char| -> i32 {
        let rest = &log[log.find(marker).unwrap() + marker.len()..];
        rest[..rest.find(end).unwrap()].parse().unwrap()
    };
    let worker = pid_after("(EngineCore_DP0 pid=", ')');
    let server = pid_after("Started server process [", ']');
    assert_ne!(worker, server);
}

fn the_report_lists_failures_by_kind(sb: &Sandbox, run: &std::path::Path) {
    let mut report = sb.start(&["report", &run.display().to_string()]);
    assert!(report.wait(Duration::from_secs(30)).success());
    let out = report.stdout();
    assert!(
        out.contains(
            "Failures by kind: infeasible_oom 2, infeasible_config 2, boot_timeout 1, \
             crashed_during_bench 1, engine_missing 1, foreign_server 1"
        ),
        "{out}"
    );
}

/// On vLLM 0.10.2 a field with no flag and no other spelling is refused by name before
/// anything boots; the attention backend, which that vLLM reads from
/// `VLLM_ATTENTION_BACKEND`, boots with the variable set.
#[test]
fn fields_without_a_flag_in_an_old_vllm_are_infeasible_config() {
    let mut sb = Sandbox::new();
    sb.set("FAKE_VLLM_VERSION", "0.10.2");
    let playbook = sb.path().join("playbook.md");
    std::fs::write(&playbook, PLAYBOOK).unwrap();
    let pb = playbook.display().to_string();
    let mut forge = sb.tune_fake(&[
        "--max-experiments",
        "5",
        "--boot-timeout",
        "10",
        "--skip-quant",
        "--playbook",
        &pb,
    ]);
    let status = forge.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", forge.stderr());
    sb.assert_nothing_survives();
    let err = forge.stderr();
    assert!(
        err.contains("listed no flags (a keyword search in this vLLM)"),
        "{err}"
    );
    let run = sb.run_dir();
    let rows = journal(&run);
    let refused: Vec<String> = rows
        .iter()
        .filter(|r| class(r) == Some("infeasible_config"))
        .map(|r| {
            r.pointer("/failure/summary")
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // `performance_mode` has no spelling in 0.10.2 at all; the attention backend has one
    // in the environment (`VLLM_ATTENTION_BACKEND`, before `--attention-backend` in 0.13).
    assert_eq!(
        refused,
        ["recipe field `performance_mode` has no \
          flag in vLLM 0.10.2: forge knows `--performance-mode` only in other vLLM versions"]
    );
    // Refused before booting, as `rej-*` rows that do not spend the experiment budget.
    for r in rows
        .iter()
        .filter(|r| class(r) == Some("infeasible_config"))
    {
        assert_eq!(r["status"], "rejected", "{r}");
        assert!(r["exp"].is_null(), "{r}");
        assert!(r["id"].as_str().unwrap().starts_with("rej-"), "{r}");
    }
    // The refused recipe was not booted; the boolean was spelled the 0.10 way; the
    // attention backend's candidate booted with the variable set (and no flag), the runs
    // around it without.
    let boots = sb.state_lines("boots");
    assert_eq!(
        boots.len(),
        5,
        "baseline, two candidates, each with its incumbent: {boots:?}"
    );
    let argv = sb.state_lines("argv");
    assert!(argv[1].ends_with("--no-enable-prefix-caching"), "{argv:?}");
    assert!(argv.iter().all(|a| !a.contains("attention")), "{argv:?}");
    let env = sb.state_lines("env");
    let backends: Vec<&str> = env.iter().map(|l| l.rsplit(' ').next().unwrap()).collect();
    assert_eq!(backends, ["-", "-", "-", "FLASHINFER", "-"], "{env:?}");
    assert!(env[3].contains("-c1-"), "{env:?}");
    let help = std::fs::read_to_string(run.join("engine-help.txt")).unwrap();
    assert!(help.contains("--swap-space"));
}

/// A search space with a flag 0.10.2 has (spelled differently), one it lacks, and a kernel
/// it takes from the environment instead of a flag.
const PLAYBOOK: &str = "# Test playbook

engine: vllm

## What to try first
Anything.

## Heuristics
None.

## Search space
```yaml
config:
  enable_prefix_caching: [false]
  performance_mode: [throughput]
kernel:
  attention_backend: [auto, FLASHINFER]
```

## Rules
```yaml
[]
```
";

#[test]
fn a_missing_engine_is_classified_at_boot_and_before_the_run() {
    // The launcher runs but the shell cannot find vllm behind it: exit 127.
    let mut sb = Sandbox::new();
    sb.set("FAKE_VLLM_ALWAYS", "notfound");
    let mut forge = sb.tune_fake(&["--max-experiments", "3"]);
    // Nothing measured: exit 3.
    assert_eq!(forge.wait(Duration::from_secs(60)).code(), Some(3));
    let rows = journal(&sb.run_dir());
    assert_eq!(rows.len(), 1);
    assert_eq!(class(&rows[0]), Some("engine_missing"));
    assert_eq!(
        rows[0].pointer("/failure/exit_code"),
        Some(&Value::from(127))
    );
    assert!(
        forge
            .stderr()
            .contains("the baseline could not be measured (engine_missing")
    );
    sb.assert_nothing_survives();

    // No launcher at all: forge says so before measuring anything.
    let sb = Sandbox::new();
    let store = sb.store().display().to_string();
    let wl = sim_small_workload().display().to_string();
    let mut forge = sb.start(&[
        "tune",
        "-m",
        MODEL,
        "-w",
        &wl,
        "--engine",
        "vllm",
        "--engine-cmd",
        "/nonexistent/bin/vllm",
        "--device",
        "cpu",
        "--llm",
        "builtin",
        "--run-dir",
        &store,
    ]);
    let status = forge.wait(Duration::from_secs(60));
    assert!(!status.success());
    let err = forge.stderr();
    assert!(
        err.contains("engine_missing: `/nonexistent/bin/vllm --version`"),
        "{err}"
    );
    assert!(err.contains("hint: install vLLM"), "{err}");
}

#[test]
fn the_survivor_check_sees_a_marked_process() {
    let sb = Sandbox::new();
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .env(TAG_VAR, &sb.tag)
        .spawn()
        .unwrap();
    // Until it has exec'd, the child's environment is still the test's.
    wait_until(Duration::from_secs(5), || !sb.survivors().is_empty());
    let found = sb.survivors();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, child.id() as i32);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(sb.survivors().is_empty());
}
