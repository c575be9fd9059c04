//! One attempt at a time against a fake engine whose checkout is a real git repository: its
//! `engine.conf` says how fast it serves and what it answers, and a line `#error` makes it
//! fail to build, so each outcome of the ledger comes out of a real diff: kept (committed
//! with its evidence), build_failed (the compiler's first lines), incorrect, regressed,
//! rej-path, apply_failed and crashed (the checkout back at its base, clean), every attempt once.

mod common;

use std::path::PathBuf;

use common::fake_engine::{CONF, Fake, diff, engine_repo, git, read_conf};
use forge::campaign::attempt::{Plan, recover, run};
use forge::campaign::ledger::{Event, Ledger, Outcome, Source};
use forge::patch::Limits;
use forge::tune::verdict::NoisePool;

#[tokio::test]
async fn every_outcome_comes_from_a_real_diff_and_is_recorded_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, base) = engine_repo(tmp.path());
    let dir = tmp.path().join("campaign");
    std::fs::create_dir_all(&dir).unwrap();
    let mut exec = Fake::new(read_conf(&co).unwrap(), 100.0);
    let mut ledger = Ledger::read(&dir).unwrap();
    let mut pool = NoisePool::default();
    let faster = "speed=130\nanswer=the cat sat on the mat\n";
    let cases: Vec<(&str, String, &str)> = vec![
        ("01-faster.diff", diff(CONF, faster), "kept"),
        (
            "02-broken.diff",
            diff(faster, "speed=140\nanswer=the cat sat on the mat\n#error missing ;\n"),
            "build_failed",
        ),
        (
            "03-answers.diff",
            diff(faster, "speed=150\nanswer=a dog ran in the park\n"),
            "incorrect",
        ),
        (
            "04-slower.diff",
            diff(faster, "speed=90\nanswer=the cat sat on the mat\n"),
            "regressed",
        ),
        (
            "05-escape.diff",
            "diff --git a/../../outside b/../../outside\nnew file mode 100644\n--- /dev/null\n+++ b/../../outside\n@@ -0,0 +1 @@\n+x\n".to_string(),
            "rej-path",
        ),
        ("06-stale.diff", diff(CONF, faster), "apply_failed"),
        (
            "07-crash.diff",
            diff(faster, "speed=200\nanswer=CRASH\n"),
            "crashed",
        ),
    ];
    let mut kept: Option<String> = None;
    for (k, (file, d, want)) in cases.iter().enumerate() {
        let plan = Plan {
            dir: &dir,
            checkout: &co,
            id: format!("r1-a{}", k + 1),
            round: 1,
            source: Source::Series {
                file: file.to_string(),
            },
            diff: d,
            idea: None,
            limits: Limits::default(),
        };
        let row = run(&plan, &mut exec, &mut ledger, &mut pool).await.unwrap();
        assert_eq!(row.outcome.code(), *want, "{file}: {}", row.reason);
        // Anything but a keep leaves the checkout at its base, clean.
        assert_eq!(git(&co, &["status", "--porcelain"]), "", "{file}");
        if row.outcome == Outcome::Kept {
            let g = row.gain.unwrap();
            assert!(g.lo > 1.0, "{g:?}");
            kept = row.commit.clone();
            assert_eq!(
                kept.as_deref(),
                Some(git(&co, &["rev-parse", "HEAD"]).as_str())
            );
            let msg = git(&co, &["log", "-1", "--format=%B"]);
            assert!(
                msg.contains("faster:") && msg.contains("engine.conf"),
                "{msg}"
            );
            // The patched build is the base of what comes next.
            exec.base = exec.patched.clone();
        } else {
            assert_eq!(row.commit, None);
        }
        match *want {
            "build_failed" => assert!(
                row.reason.contains("error: #error missing ;"),
                "{}",
                row.reason
            ),
            "rej-path" => assert!(row.reason.contains("outside"), "{}", row.reason),
            "crashed" => assert!(row.reason.contains("status 139"), "{}", row.reason),
            _ => {}
        }
        assert!(dir.join(&row.patch).is_file());
    }
    assert_eq!(git(&co, &["rev-parse", "HEAD~1"]), base);
    assert!(kept.is_some());
    // The ledgers: seven attempts once each, one optimization, nothing unfinished.
    let back = Ledger::read(&dir).unwrap();
    assert_eq!(back.attempts().count(), 7);
    assert!(back.unfinished().is_none());
    let read = |f: &str| std::fs::read_to_string(dir.join("ledgers").join(f)).unwrap();
    assert_eq!(read("attempt-ledger.md").matches("| 1 | r1-a").count(), 7);
    assert_eq!(
        read("optimization-ledger.md").matches("| 1 | r1-a").count(),
        1
    );
    let lineage: PathBuf = dir.join("ledgers/lineage.jsonl");
    assert_eq!(
        std::fs::read_to_string(lineage)
            .unwrap()
            .matches("\"event\":\"attempt_started\"")
            .count(),
        7
    );
}

#[test]
fn an_attempt_killed_midway_is_reset_to_its_base_and_named_for_a_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, base) = engine_repo(tmp.path());
    let dir = tmp.path().join("campaign");
    let mut ledger = Ledger::read(&dir).unwrap();
    assert_eq!(recover(&ledger, &co).unwrap(), None);
    let source = Source::Series {
        file: "01-faster.diff".into(),
    };
    ledger
        .record(
            &dir,
            Event::AttemptStarted {
                id: "r1-a1".into(),
                base: base.clone(),
                source: source.clone(),
            },
        )
        .unwrap();
    // What a kill -9 mid-build leaves: the diff applied and staged, a build file.
    std::fs::write(co.join("engine.conf"), "speed=130\n").unwrap();
    git(&co, &["add", "engine.conf"]);
    std::fs::write(co.join("engine.o"), "obj").unwrap();
    let back = Ledger::read(&dir).unwrap();
    assert_eq!(
        recover(&back, &co).unwrap(),
        Some(("r1-a1".to_string(), source))
    );
    assert_eq!(git(&co, &["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(co.join("engine.conf")).unwrap(),
        CONF
    );
    assert_eq!(git(&co, &["rev-parse", "HEAD"]), base);
}
