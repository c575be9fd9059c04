//! Ctrl-C and SIGTERM to a running `forge tune`: exit 130 / 143, every engine process
//! group stopped (servers that ignore SIGTERM and their worker grandchildren included),
//! the run left resumable, and `forge tune resume` finishing it.

mod common;

use std::path::Path;
use std::time::Duration;

use common::bin::Running;
use common::procs::wait_until;
use common::run::{journal, journal_text, sim_small_workload};
use common::sandbox::Sandbox;
use common::sim_proc::MODEL;
use nix::sys::signal::Signal;

/// Journal lines, as written (a torn last line included).
fn written_lines(run: &Path) -> Vec<String> {
    journal_text(run).lines().map(String::from).collect()
}

fn boots(run: &Path) -> usize {
    std::fs::read_to_string(run.join("engines.pids")).map_or(0, |t| t.lines().count())
}

/// Wait until the run directory exists.
fn wait_for_a_live_run(sb: &Sandbox) -> std::path::PathBuf {
    let runs = sb.store().join("runs");
    assert!(wait_until(Duration::from_secs(60), || {
        std::fs::read_dir(&runs).is_ok_and(|mut d| d.next().is_some())
    }));
    sb.run_dir()
}

/// Interrupt once `ready` holds, check the exit code and that nothing survives; then
/// resume to the end.
fn interrupt_and_resume(
    sb: &mut Sandbox,
    mut forge: Running,
    (sig, code): (Signal, i32),
    ready: impl Fn(&Sandbox) -> bool,
    resume_env: &[(&str, &str)],
) {
    let run = wait_for_a_live_run(sb);
    assert!(
        wait_until(Duration::from_secs(60), || ready(sb)),
        "{}",
        forge.stderr()
    );
    forge.signal(sig);
    let status = forge.wait(Duration::from_secs(60));
    assert_eq!(status.code(), Some(code), "{}", forge.stderr());
    assert!(
        forge
            .stderr()
            .contains("interrupted; every engine process was stopped"),
        "{}",
        forge.stderr()
    );
    sb.assert_nothing_survives();
    assert!(!run.join("completed.json").exists());
    let before = written_lines(&run);
    assert!(!before.is_empty());

    // Resume with servers that stop when asked (the interruption was the point).
    for (k, v) in resume_env {
        sb.set(k, v);
    }
    let store = sb.store().display().to_string();
    let mut resumed = sb.start(&["tune", "resume", "--run-dir", &store]);
    let status = resumed.wait(Duration::from_secs(120));
    assert!(status.success(), "{}", resumed.stderr());
    assert!(
        resumed.stderr().contains("forge: resuming"),
        "{}",
        resumed.stderr()
    );
    sb.assert_nothing_survives();
    assert!(run.join("completed.json").exists());
    let after = written_lines(&run);
    assert!(
        after.len() > before.len(),
        "{} rows → {}",
        before.len(),
        after.len()
    );
    // The journal was continued, not rewritten (the last pre-signal row may have been torn
    // and redone).
    let kept = before.len() - 1;
    assert_eq!(after[..kept], before[..kept]);
}

#[test]
fn ctrl_c_stops_a_dry_run_and_resume_finishes_it() {
    let mut sb = Sandbox::new();
    sb.set(
        "FORGE_SIM_EXTRA_ARGS",
        "--sim-spawn-child --sim-ignore-sigterm",
    );
    let store = sb.store().display().to_string();
    let wl = sim_small_workload().display().to_string();
    let forge = sb.start(&[
        "tune",
        "--dry-run",
        "-m",
        MODEL,
        "-w",
        &wl,
        "--llm",
        "builtin",
        "--max-experiments",
        "4",
        "--max-repeats",
        "1",
        "--sim-time-scale",
        "0.01",
        "--sim-boot-time-scale",
        "0.001",
        "--run-dir",
        &store,
    ]);
    // A server is up, or going down, when the signal lands.
    let ready = |sb: &Sandbox| {
        let run = sb.run_dir();
        !journal(&run).is_empty() && boots(&run) >= 3
    };
    let resume_env = [("FORGE_SIM_EXTRA_ARGS", "--sim-spawn-child")];
    interrupt_and_resume(&mut sb, forge, (Signal::SIGINT, 130), ready, &resume_env);
}

#[test]
fn sigterm_during_a_servers_grace_period_stops_it_too() {
    // Servers ignore SIGTERM and leave a worker that survives it; the signal is sent
    // while forge is waiting out the grace period of a server it is replacing — the
    // moment a group is neither the current server nor gone.
    let mut sb = Sandbox::new();
    sb.set(
        "FAKE_VLLM_SIM_ARGS",
        "--sim-time-scale 0.01 --sim-boot-time-scale 0.001 --sim-spawn-child \
         --sim-ignore-sigterm",
    )
    .set("FORGE_ENGINE_GRACE_S", "2")
    .set("FAKE_VLLM_STUBBORN", "1");
    let forge = sb.tune_fake(&["--max-experiments", "4", "--boot-timeout", "10"]);
    let ready = |sb: &Sandbox| !sb.state_lines("terms").is_empty();
    let resume_env = [(
        "FAKE_VLLM_SIM_ARGS",
        "--sim-time-scale 0.01 --sim-boot-time-scale 0.001 --sim-spawn-child",
    )];
    interrupt_and_resume(&mut sb, forge, (Signal::SIGTERM, 143), ready, &resume_env);
}
