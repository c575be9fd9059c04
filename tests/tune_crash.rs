//! Crash safety: a dry run killed with SIGKILL at 20 random moments, each followed by
//! `forge tune resume`, always completes; no journal row is lost, changed or duplicated;
//! and no simulator process outlives the forge process that started it.

mod common;

use std::path::Path;
use std::process::Child;
use std::time::Duration;

use common::procs::wait_until;
use common::run::{journal, journal_lines, latest_run_dir, read_json, small_workload};
use common::sandbox::Sandbox;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

const KILLS: usize = 20;

fn start_args(workload: &Path) -> Vec<String> {
    [
        "tune",
        "--dry-run",
        "--model",
        "Qwen/Qwen3-0.6B",
        "--workload",
        workload.to_str().unwrap(),
        "--max-experiments",
        "8",
        "--max-repeats",
        "2",
        "--sim-time-scale",
        "0.05",
        "--llm",
        "builtin",
        "--seed",
        "7",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Wait up to `after` for the child; SIGKILL it if still running. True when it was killed.
fn kill_after(child: &mut Child, after: Duration) -> bool {
    if wait_until(after, || child.try_wait().unwrap().is_some()) {
        return false;
    }
    let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    child.wait().unwrap();
    true
}

fn assert_prefix(before: &[String], after: &[String], when: &str) {
    assert!(
        after.len() >= before.len(),
        "{when}: rows lost ({} → {})",
        before.len(),
        after.len()
    );
    for (i, (a, b)) in before.iter().zip(after).enumerate() {
        assert_eq!(a, b, "{when}: row {i} changed");
    }
}

fn assert_run_consistent(run: &Path) {
    let rows = journal(run);
    let seqs: Vec<u64> = rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (0..rows.len() as u64).collect::<Vec<_>>(),
        "seq not contiguous"
    );
    let exps: Vec<u64> = rows.iter().filter_map(|r| r["exp"].as_u64()).collect();
    assert_eq!(
        exps,
        (0..exps.len() as u64).collect::<Vec<_>>(),
        "experiment numbers lost or duplicated"
    );
    assert_eq!(rows.iter().filter(|r| r["status"] == "baseline").count(), 1);
    assert!(run.join("completed.json").exists());
    let done = read_json(&run.join("completed.json"));
    assert_eq!(done["experiments"].as_u64().unwrap() as usize, exps.len());
}

#[test]
fn killed_twenty_times_and_resumed_the_run_completes_intact() {
    let sb = Sandbox::new();
    let workload = small_workload(sb.dir.path(), 12);
    let args = start_args(&workload);
    let mut rng = ChaCha8Rng::seed_from_u64(20261122);
    let mut kills = 0;
    let mut runs_checked = 0;
    let mut fresh = true;
    let mut seen: Vec<String> = Vec::new();
    while kills < KILLS {
        let mut cmd = if fresh {
            sb.forge(&args.iter().map(String::as_str).collect::<Vec<_>>())
        } else {
            sb.forge(&["tune", "resume"])
        };
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().unwrap();
        let at = Duration::from_millis(rng.random_range(200..1800));
        let killed = kill_after(&mut child, at);
        let run = latest_run_dir(&sb.store());
        let lines = journal_lines(&run);
        if fresh {
            seen.clear();
        }
        assert_prefix(&seen, &lines, &format!("kill {kills}"));
        seen = lines;
        // The kernel takes every engine down with the process that started it.
        let left = sb.survivors_after(Duration::from_secs(3));
        assert!(left.is_empty(), "after kill {kills}: {left:?}");
        if killed {
            kills += 1;
            fresh = false;
        } else {
            // That run finished before its moment came: check it and start another.
            assert_run_consistent(&run);
            runs_checked += 1;
            fresh = true;
        }
    }
    // The last interrupted run resumes to completion.
    let out = sb.run(&["tune", "resume"]);
    assert!(out.success(), "{}", out.stderr);
    let run = latest_run_dir(&sb.store());
    assert_prefix(&seen, &journal_lines(&run), "final resume");
    assert_run_consistent(&run);
    assert!(sb.survivors_after(Duration::from_secs(5)).is_empty());
    eprintln!("{kills} kills, {} runs completed", runs_checked + 1);
}
