//! `forge campaign` end to end on a real llama.cpp checkout (the campaign fixture: upstream
//! plus a deliberate 3 ms per-token sleep), rebuilt incrementally, served by the real
//! `llama-server` with SmolLM2-135M and measured against the stock `llama-server`: a flow
//! check of the machinery, not a benchmark. The campaign is killed with SIGKILL in the
//! middle of a build and again in the middle of a measurement, and resumed each time; it
//! must end with every attempt recorded once — the patch removing the slowdown kept with
//! its interval, the one that does not compile `build_failed` with the compiler's line, the
//! one that changes answers `incorrect`, the one that sleeps more `regressed` — the
//! ledgers, lineage and final report consistent, the checkout clean on the kept commit, and
//! nothing it started still running.
//!
//! The gap's tie threshold is ±5 %, not the contract's ±1 %: on two shared cores one pair of
//! measurements varies by σ ≈ 1 % on a quiet machine and 4 % on a busy one (the campaign's
//! pooled noise is printed in its reports), so ±1 % cannot be resolved in a few pairs here;
//! the reports say which threshold decided.
//!
//! Needs the llama.cpp sources and model scripts/llama-server.sh provides; skips loudly
//! without them and fails when FORGE_REQUIRE_LLAMACPP=1.

mod common;

use std::path::Path;
use std::time::Duration;

use common::bin::session;
use common::fake_engine::git;
use common::procs::{tagged, wait_until};
use forge::campaign::ledger::{Event, Ledger, Outcome};
use forge::patch::git;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[test]
fn a_campaign_killed_mid_build_and_mid_bench_resumes_to_its_end() {
    let Some(p) = common::llamacpp::peers("campaign_llamacpp") else {
        return;
    };
    let Some((co, build_dir)) = common::llamacpp::campaign_fixture("campaign_llamacpp") else {
        return;
    };
    // Branches an earlier, failed run of this test left behind go first.
    let branches = std::process::Command::new("git")
        .args([
            "branch",
            "--list",
            "forge-campaign-test-*",
            "--format=%(refname:short)",
        ])
        .current_dir(&co)
        .output()
        .unwrap();
    for old in String::from_utf8_lossy(&branches.stdout).lines() {
        git(&co, &["branch", "-q", "-D", old]);
    }
    let branch = format!("forge-campaign-test-{}", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("campaign");
    let series = Path::new(ROOT).join("tests/fixtures/campaign/llamacpp/patches");
    let tag = format!("campaign-llamacpp-{}", std::process::id());
    let s = |p: &Path| p.display().to_string();
    let (model, leader, co_s, build_s, series_s, dir_s) = (
        s(&p.model),
        s(&p.server),
        s(&co),
        s(&build_dir),
        s(&series),
        s(&dir),
    );
    let start = [
        "campaign",
        "--target",
        "llamacpp",
        "--model",
        &model,
        "--source",
        &co_s,
        "--build-dir",
        &build_s,
        "--leader-server",
        &leader,
        "--patches",
        &series_s,
        "--dir",
        &dir_s,
        "--branch",
        &branch,
        "--flow-check",
        "--gap-pairs",
        "16",
        "--tie-threshold",
        "5",
    ];
    let resume = ["campaign", "resume", &dir_s];
    let started_at = git::head(&co).unwrap();

    // 1: killed while r1-a1 (remove the slowdown) is being compiled.
    let mut s1 = session(&start, &tag, tmp.path(), "s1");
    s1.kill_at("forge: r1-a1: building", Duration::from_secs(3));
    let builders = tagged(&tag);
    let names: Vec<&str> = builders
        .iter()
        .filter_map(|(_, cmd)| cmd.split_whitespace().next())
        .collect();
    eprintln!("left running after the kill: {names:?}");

    // 2: resumed (the leftover build reaped, r1-a1 tried again), killed mid-measurement.
    let mut s2 = session(&resume, &tag, tmp.path(), "s2");
    s2.kill_at(
        "forge: r1-a1: measuring pair 1",
        Duration::from_millis(1500),
    );
    let err2 = s2.stderr();
    assert!(err2.contains("r1-a1 was interrupted"), "{err2}");
    if !builders.is_empty() {
        assert!(err2.contains("reaped"), "{err2}");
    }

    // 3: resumed to the end.
    let mut s3 = session(&resume, &tag, tmp.path(), "s3");
    let status = s3.wait(Duration::from_secs(1200));
    let err3 = s3.stderr();
    assert!(err3.contains("r1-a1 was interrupted"), "{err3}");
    let out = s3.stdout();
    eprintln!("{err3}\n{out}");
    assert!(
        status.code() == Some(0),
        "the campaign must stop tied or ahead ({status:?}):\n{out}"
    );

    let ledger = Ledger::read(&dir).unwrap();
    let rows: Vec<(&str, &str)> = ledger
        .attempts()
        .map(|a| (a.id.as_str(), a.outcome.code()))
        .collect();
    assert_eq!(
        rows,
        [
            ("r1-a1", "kept"),
            ("r1-a2", "build_failed"),
            ("r1-a3", "incorrect"),
            ("r1-a4", "regressed"),
        ]
    );
    let r1a1_starts = ledger
        .events
        .iter()
        .filter(|e| matches!(e, Event::AttemptStarted { id, .. } if id == "r1-a1"))
        .count();
    assert_eq!(r1a1_starts, 3, "started in each session, recorded once");
    let by_id = |id: &str| ledger.attempts().find(|a| a.id == id).unwrap();
    let kept = by_id("r1-a1");
    let g = kept.gain.unwrap();
    assert!(g.lo > 1.0, "{g:?}");
    assert!(
        by_id("r1-a2")
            .reason
            .contains("error: 'tkn_text' was not declared"),
        "{}",
        by_id("r1-a2").reason
    );
    assert!(by_id("r1-a4").gain.unwrap().hi < -1.0);

    // The checkout: clean, on the campaign branch, at the kept commit over the start.
    assert!(git::status_clean(&co).unwrap());
    let head = git::head(&co).unwrap();
    assert_eq!(Some(head.as_str()), kept.commit.as_deref());
    assert_eq!(
        git::changed_files(&co, &started_at, &head).unwrap(),
        ["tools/server/server-context.cpp"]
    );

    // Only the kept patch in the optimization ledger; the final report's paths exist.
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let opt = read("ledgers/optimization-ledger.md");
    for a in ledger.attempts() {
        assert_eq!(
            opt.contains(&format!("| {} |", a.id)),
            a.outcome == Outcome::Kept
        );
    }
    let report = read("final_report.md");
    assert!(report.contains("**Flow check**"), "{report}");
    assert!(report.contains("reached the best: yes"), "{report}");
    assert!(
        report.contains("Tie threshold: ±5 % (set for this machine"),
        "{report}"
    );
    let paths = report.split("## Paths").nth(1).unwrap();
    for line in paths.lines().filter(|l| l.starts_with("- `")) {
        let p = line.trim_start_matches("- `").split('`').next().unwrap();
        assert!(dir.join(p).exists(), "{p}");
    }
    let cmds = read("benchmark/winning-commands.md");
    assert!(cmds.contains("builds/base/llama-server"), "{cmds}");
    // `forge report` on the campaign: its page rendered afresh from the ledger (the gap
    // over both rounds, every attempt), and its final report as written.
    let page = common::bin::run(&mut common::bin::forge(&[
        "report",
        &s(&dir),
        "--format",
        "html",
    ]));
    assert!(page.success(), "{}", page.stderr);
    assert!(
        page.stdout
            .contains("Gap to llama.cpp (stock) at the start of each round"),
        "{}",
        page.stdout
    );
    assert!(page.stdout.contains("<td>r1-a4</td>"), "{}", page.stdout);
    assert_eq!(page.stdout, read("report.html"));
    let md = common::bin::run(&mut common::bin::forge(&["report", &s(&dir)]));
    assert_eq!(md.stdout, report);

    // Nothing the campaign started is still running.
    assert!(
        wait_until(Duration::from_secs(10), || tagged(&tag).is_empty()),
        "{:?}",
        tagged(&tag)
    );
    git(&co, &["switch", "-q", "main"]);
    git(&co, &["branch", "-q", "-D", &branch]);
}
