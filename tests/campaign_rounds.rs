//! The campaign's round loop against the fake engine (a real git checkout whose speed and
//! answers a diff changes): a series with a patch that closes the gap, one that does not
//! build, one that changes the answers and one that is slower runs to "ahead", with the
//! ledgers, lineage, checkpoint and final report consistent; budgets and an exhausted
//! series stop it still behind; a campaign that crashes mid-attempt resumes without a
//! duplicate attempt and ends on a clean checkout.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::fake_engine::{CONF, Fake, diff, engine_repo, git, read_conf};
use forge::campaign::ledger::{Event, Ledger, Outcome};
use forge::campaign::rounds::{Proposer, drive};
use forge::campaign::settings::{Budget, LoadSettings, Settings, Target, smoke_prompts};
use forge::campaign::stop::StopCode;
use forge::patch::series;

const ANSWER: &str = "answer=the cat sat on the mat\n";

/// The four patches of the flow check, written into `root/patches`: with the fix, it comes
/// first and the others apply on top of it (the order a campaign tries them); without it,
/// the others apply on the base.
fn series_dir(root: &Path, with_fix: bool) -> PathBuf {
    let p = root.join("patches");
    std::fs::create_dir_all(&p).unwrap();
    let faster = format!("speed=130\n{ANSWER}");
    let on = if with_fix {
        std::fs::write(p.join("01-faster.diff"), diff(CONF, &faster)).unwrap();
        faster.as_str()
    } else {
        CONF
    };
    let broken = format!("speed=140\n{ANSWER}#error missing ;\n");
    std::fs::write(p.join("02-does-not-compile.diff"), diff(on, &broken)).unwrap();
    let answers = "speed=150\nanswer=a dog ran in the park\n";
    std::fs::write(p.join("03-changes-answers.diff"), diff(on, answers)).unwrap();
    let slower = format!("speed=80\n{ANSWER}");
    std::fs::write(p.join("04-slower.diff"), diff(on, &slower)).unwrap();
    p
}

fn settings(co: &Path, patches: &Path, start: &str) -> Settings {
    Settings {
        target: Target::Llamacpp,
        model: "fake.gguf".into(),
        source: co.to_path_buf(),
        branch: "forge-campaign".into(),
        start_commit: start.into(),
        build_dir: co.with_file_name("build"),
        leader: "/stock/fake-engine".into(),
        leader_args: Vec::new(),
        leader_name: "fake (stock)".into(),
        leader_framework: None,
        python: None,
        uv: None,
        flow_check: true,
        patches: Some(patches.to_path_buf()),
        llm: None,
        llm_base_url: None,
        attempts_per_round: 4,
        gap_pairs: 6,
        tie_threshold_pct: 1.0,
        load: LoadSettings {
            prompts: smoke_prompts(),
            prompts_from: "forge's built-in smoke prompts".into(),
            answer_tokens: 16,
            concurrent: 4,
            output_tokens: 48,
        },
        budget: Budget::default(),
        gate: None,
    }
}

/// Everything the ledgers, lineage and reports must agree on.
fn assert_consistent(dir: &Path, co: &Path) {
    let ledger = Ledger::read(dir).unwrap();
    // Every attempt once; every started attempt ended.
    let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
    for a in ledger.attempts() {
        *ids.entry(a.id.as_str()).or_default() += 1;
    }
    assert!(ids.values().all(|n| *n == 1), "{ids:?}");
    assert!(ledger.unfinished().is_none());
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let attempts_md = read("ledgers/attempt-ledger.md");
    for id in ids.keys() {
        assert_eq!(attempts_md.matches(&format!("| {id} |")).count(), 1, "{id}");
    }
    // Only kept patches in the optimization ledger, each with its commit in the checkout.
    let opt = read("ledgers/optimization-ledger.md");
    for a in ledger.attempts() {
        let listed = opt.contains(&format!("| {} |", a.id));
        assert_eq!(listed, a.outcome == Outcome::Kept, "{}: {opt}", a.id);
        if let Some(c) = &a.commit {
            git(co, &["cat-file", "-e", c]);
        }
    }
    // The final report's paths exist; it names every kept commit.
    let report = read("final_report.md");
    let paths = report.split("## Paths").nth(1).expect("a Paths section");
    let mut n = 0;
    for line in paths.lines().filter(|l| l.starts_with("- `")) {
        let p = line.trim_start_matches("- `").split('`').next().unwrap();
        assert!(
            dir.join(p).exists(),
            "{p} listed in final_report.md is missing"
        );
        n += 1;
    }
    assert!(n >= 8 + 2 * ids.len(), "{paths}");
    for a in ledger.attempts().filter(|a| a.outcome == Outcome::Kept) {
        let c = a.commit.as_deref().unwrap();
        assert!(report.contains(&c[..10]), "{report}");
    }
    // A clean checkout on the campaign branch.
    assert_eq!(git(co, &["status", "--porcelain"]), "");
    assert_eq!(
        git(co, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "forge-campaign"
    );
}

#[tokio::test]
async fn a_series_closes_the_gap_and_every_file_agrees() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = series_dir(tmp.path(), true);
    let dir = tmp.path().join("campaign");
    let s = settings(&co, &patches, &start);
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    // +4 % ahead truly; two pairs already show it not behind, which is all the campaign
    // acts on (more pairs would only tell tied from ahead).
    assert_eq!(stop.code, StopCode::NotBehind, "{stop:?}");
    assert!(stop.reason.contains("tied or ahead"), "{}", stop.reason);
    let ledger = Ledger::read(&dir).unwrap();
    let outcomes: Vec<(&str, &str)> = ledger
        .attempts()
        .map(|a| (a.id.as_str(), a.outcome.code()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("r1-a1", "kept"),
            ("r1-a2", "build_failed"),
            ("r1-a3", "incorrect"),
            ("r1-a4", "regressed"),
        ]
    );
    assert_eq!(ledger.round(), 2);
    let gap1 = &ledger.decision(Some(1)).unwrap().gap;
    assert!(gap1.describe().starts_with("behind by 2"), "{gap1:?}");
    assert_consistent(&dir, &co);
    let report = std::fs::read_to_string(dir.join("final_report.md")).unwrap();
    for want in [
        "**Flow check**",
        "reached the best: yes",
        "## Fixed benchmark (round 1",
        "## Post-patch benchmark (round 2)",
        "fake-engine --serve leader",
        "- `engine.conf`",
        "| r1-a3 | incorrect |",
    ] {
        assert!(report.contains(want), "{want} not in:\n{report}");
    }
    let checkpoint = std::fs::read_to_string(dir.join("checkpoint.md")).unwrap();
    assert!(
        checkpoint.contains("Stopped: tied_or_ahead"),
        "{checkpoint}"
    );
    assert!(
        checkpoint
            .contains("Rejected attempts: r1-a2 build_failed, r1-a3 incorrect, r1-a4 regressed"),
        "{checkpoint}"
    );
    let root = std::fs::read_to_string(dir.join("analysis/root-cause.md")).unwrap();
    assert!(
        root.contains("No profile: the fake engine has no profiler"),
        "{root}"
    );
    // The page: the gap over the rounds (behind, then not), every measured attempt with
    // its interval, the ledger; its charts also as files, linked from the final report.
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    for want in [
        "aria-label=\"Gap to fake (stock) at the start of each round\"",
        "aria-label=\"Attempts: each patch",
        "<td>r1-a3</td>",
        "class=\"reverted\">incorrect</td>",
        "Stopped: tied_or_ahead",
    ] {
        assert!(page.contains(want), "{want} not in:\n{page}");
    }
    assert!(!page.contains("<script") && !page.contains("href="));
    let gap = std::fs::read_to_string(dir.join("charts/gap.svg")).unwrap();
    assert_eq!(gap.matches("<g class=\"point\">").count(), 2, "{gap}");
    assert!(report.contains("![gap](charts/gap.svg)"), "{report}");
    // A stopped campaign run again changes nothing.
    let again = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert_eq!(again, stop);
    assert_eq!(Ledger::read(&dir).unwrap().events, ledger.events);
}

#[tokio::test]
async fn an_exhausted_series_and_a_round_budget_stop_it_still_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = series_dir(tmp.path(), false);
    let dir = tmp.path().join("campaign");
    let mut s = settings(&co, &patches, &start);
    s.attempts_per_round = 2;
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert_eq!(stop.code, StopCode::Exhausted, "{stop:?}");
    assert_eq!(stop.code.exit_code(), 10);
    // Two rounds: two attempts, the gap decided again, then the third.
    assert_eq!(Ledger::read(&dir).unwrap().round(), 2);
    assert_consistent(&dir, &co);
    let report = std::fs::read_to_string(dir.join("final_report.md")).unwrap();
    assert!(report.contains("reached the best: no"), "{report}");
    assert!(report.contains("## Patches kept\n\nNone."), "{report}");
    assert_eq!(git(&co, &["rev-parse", "HEAD"]), start);

    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = series_dir(tmp.path(), false);
    let dir = tmp.path().join("campaign");
    let mut s = settings(&co, &patches, &start);
    s.attempts_per_round = 1;
    s.budget.max_rounds = Some(2);
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert_eq!(stop.code, StopCode::Budget, "{stop:?}");
    assert!(stop.reason.contains("--max-rounds"), "{}", stop.reason);
    assert_eq!(Ledger::read(&dir).unwrap().attempts().count(), 2);

    // Hours: any recorded work passes a budget of a millisecond's worth.
    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = series_dir(tmp.path(), false);
    let dir = tmp.path().join("campaign");
    let mut s = settings(&co, &patches, &start);
    s.budget.max_hours = Some(1e-9);
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert_eq!(stop.code, StopCode::Budget, "{stop:?}");
    assert!(stop.reason.contains("--max-hours"), "{}", stop.reason);
    assert_eq!(Ledger::read(&dir).unwrap().attempts().count(), 0);
}

#[tokio::test]
async fn a_series_spent_after_a_keep_decides_the_gap_once_more() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = tmp.path().join("only-fix");
    std::fs::create_dir_all(&patches).unwrap();
    let faster = format!("speed=130\n{ANSWER}");
    std::fs::write(patches.join("01-faster.diff"), diff(CONF, &faster)).unwrap();
    let dir = tmp.path().join("campaign");
    let s = settings(&co, &patches, &start);
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert_eq!(stop.code, StopCode::Ahead, "{stop:?}");
    assert_eq!(Ledger::read(&dir).unwrap().round(), 2);
    assert_consistent(&dir, &co);
}

#[tokio::test]
async fn a_crash_mid_attempt_resumes_without_a_duplicate() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, start) = engine_repo(tmp.path());
    let patches = series_dir(tmp.path(), true);
    let dir = tmp.path().join("campaign");
    let s = settings(&co, &patches, &start);
    let mut proposer = Proposer::Series(series::list(&patches).unwrap());
    // Measurements: 4 for the gap (2 pairs), 4 for r1-a1 (kept), then r1-a4 (slower)
    // measures; the crash comes in it.
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    exec.crash_at = Some(10);
    let e = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap_err();
    assert!(e.to_string().contains("went away"), "{e}");
    let ledger = Ledger::read(&dir).unwrap();
    let (id, _, _) = ledger.unfinished().expect("an attempt left unfinished");
    assert_eq!(id, "r1-a4");
    // The crash left the patch applied; resume puts it back and tries it again.
    assert_ne!(git(&co, &["status", "--porcelain"]), "");
    let mut exec = Fake::new(read_conf(&co).unwrap(), 125.0);
    let stop = drive(&dir, &s, &mut exec, &mut proposer).await.unwrap();
    assert!(stop.code.reached(), "{stop:?}");
    let ledger = Ledger::read(&dir).unwrap();
    let started = ledger
        .events
        .iter()
        .filter(|e| matches!(e, Event::AttemptStarted { id, .. } if id == "r1-a4"))
        .count();
    assert_eq!(started, 2, "tried twice, recorded once");
    assert_eq!(ledger.attempts().count(), 4);
    assert_consistent(&dir, &co);
}
