//! Layer 3 from source, end to end: `forge tune --engine llamacpp --source CHECKOUT
//! --patches DIR --start-layer 3` on the campaign fixture (upstream llama.cpp plus a
//! deliberate 3 ms per-token sleep) with the campaign's patch series, served by the real
//! `llama-server` with SmolLM2-135M. The run builds the checkout as its baseline, then each
//! patch once into the run directory: the one removing the slowdown is kept with its
//! interval, the one that does not compile fails `build_failed` with the compiler's line,
//! the one that changes answers falls under the accuracy floor, the one that sleeps more is
//! reverted. forge is killed with SIGKILL in the middle of the first patch's build (the
//! checkout patched, the compiler running) and resumed: the checkout is put back, the build
//! is made again, every patch is tried once, the checkout ends clean on its commit, the
//! printed deploy command runs the kept build, and nothing forge started is still running.
//!
//! Needs the llama.cpp sources and model scripts/llama-server.sh provides; skips loudly
//! without them and fails when FORGE_REQUIRE_LLAMACPP=1.

mod common;

use std::path::Path;
use std::time::Duration;

use common::bin::session;
use common::procs::{tagged, wait_until};
use common::run::only_run_dir;
use forge::patch::git;
use forge::record::{ExperimentRow, Status};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn rows(run: &Path) -> Vec<ExperimentRow> {
    forge::store::read_journal(&run.join("experiments.jsonl"))
        .unwrap()
        .rows
}

/// The patch a row tried, if any.
fn patch_of(r: &ExperimentRow) -> Option<&str> {
    r.changes.get("patch").and_then(|v| v.as_str())
}

#[test]
fn a_tune_builds_each_patch_once_keeps_the_fix_and_survives_a_kill_mid_build() {
    let Some(p) = common::llamacpp::peers("tune_source_llamacpp") else {
        return;
    };
    let Some((co, build_dir)) = common::llamacpp::campaign_fixture("tune_source_llamacpp") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let series = Path::new(ROOT).join("tests/fixtures/campaign/llamacpp/patches");
    let tag = format!("tune-source-{}", std::process::id());
    let s = |p: &Path| p.display().to_string();
    let (co_s, build_s, series_s) = (s(&co), s(&build_dir), s(&series));
    let started_at = git::head(&co).unwrap();
    let mut start = common::llamacpp::tune_args(&p, &store);
    start.extend(
        [
            "--source",
            &co_s,
            "--build-dir",
            &build_s,
            "--patches",
            &series_s,
            "--start-layer",
            "3",
            "--max-experiments",
            "6",
            "--max-repeats",
            "3",
            // llama.cpp's greedy answers shift with batch composition (~5 % of tokens on
            // this model for an unchanged build): the floor catches a patch that changes
            // them wholesale (03 swaps every fourth token), not that noise.
            "--accuracy-floor",
            "0.5",
        ]
        .map(str::to_string),
    );
    let start: Vec<&str> = start.iter().map(String::as_str).collect();

    // 1: killed while the first patch is being compiled into the patched checkout.
    let mut s1 = session(&start, &tag, tmp.path(), "s1");
    s1.kill_at(
        "forge: building llama-server with 01-remove-slowdown.diff",
        Duration::from_secs(2),
    );
    let run = only_run_dir(&store);
    assert!(
        run.join("builds/applying").exists(),
        "the kill left the checkout patched, and said so:\n{}",
        s1.stderr()
    );

    // 2: resumed to the end.
    let run_s = s(&run);
    let mut s2 = session(&["tune", "resume", &run_s], &tag, tmp.path(), "s2");
    let status = s2.wait(Duration::from_secs(1200));
    let err = s2.stderr();
    eprintln!("{err}");
    assert!(status.success(), "{status:?}:\n{err}");
    assert!(err.contains("an interrupted build had patched it"), "{err}");

    let rows = rows(&run);
    let tried: Vec<(&str, Status)> = rows
        .iter()
        .filter(|r| r.status.is_experiment())
        .filter_map(|r| Some((patch_of(r)?, r.status)))
        .collect();
    let patches: Vec<&str> = tried.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        patches,
        [
            "01-remove-slowdown.diff",
            "02-does-not-compile.diff",
            "03-changes-answers.diff",
            "04-slower.diff"
        ],
        "each patch once, in series order: {tried:?}"
    );
    let row = |name: &str| rows.iter().find(|r| patch_of(r) == Some(name)).unwrap();
    let fix = row("01-remove-slowdown.diff");
    assert_eq!(fix.status, Status::Kept);
    let gain = fix.interval.as_ref().unwrap();
    assert!(gain.lo_pct > 1.0, "{gain:?}");
    let broken = row("02-does-not-compile.diff");
    assert_eq!(broken.status, Status::Failed);
    let f = broken.failure.as_ref().unwrap();
    assert_eq!(f.class.as_str(), "build_failed");
    assert!(
        f.hints
            .iter()
            .any(|h| h.contains("error: 'tkn_text' was not declared")),
        "{f:?}"
    );
    let wrong = row("03-changes-answers.diff");
    assert_ne!(wrong.status, Status::Kept);
    let accuracy = wrong.measurement.as_ref().and_then(|m| m.accuracy).unwrap();
    assert!(accuracy < 0.5, "{accuracy}");
    let slower = row("04-slower.diff");
    assert_eq!(slower.status, Status::Reverted);
    assert!(slower.interval.as_ref().unwrap().hi_pct < 0.0);

    // The checkout: clean, on the commit the run started from, no marker left.
    assert!(git::status_clean(&co).unwrap());
    assert_eq!(git::head(&co).unwrap(), started_at);
    assert!(!run.join("builds/applying").exists());

    // The deploy command runs the kept build.
    let best = s(&run.join("best_recipe.yaml"));
    let out = common::bin::run(&mut common::bin::forge(&["recipe", "command", &best]));
    assert!(out.success(), "{}", out.stderr);
    let kept = run.join("builds/01-remove-slowdown.diff");
    assert!(
        out.stdout.starts_with(&format!(
            "env LD_LIBRARY_PATH={} {}/llama-server --model ",
            kept.display(),
            kept.display()
        )),
        "{}",
        out.stdout
    );

    // Nothing the run started (servers, compilers) is still running.
    assert!(
        wait_until(Duration::from_secs(10), || tagged(&tag).is_empty()),
        "{:?}",
        tagged(&tag)
    );
}
