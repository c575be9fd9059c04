//! One attempt at a time against a fake engine whose checkout is a real git repository: its
//! `engine.conf` says how fast it serves and what it answers, and a line `#error` makes it
//! fail to build, so each outcome of the ledger comes out of a real diff: kept (committed
//! with its evidence), build_failed (the compiler's first lines), incorrect, regressed,
//! rej-path and apply_failed (the checkout back at its base, clean), every attempt once.

use std::path::{Path, PathBuf};
use std::process::Command;

use forge::campaign::attempt::{Build, BuildFailed, Executor, Plan, recover, run};
use forge::campaign::ledger::{Event, Ledger, Outcome, Source};
use forge::patch::Limits;
use forge::tune::verdict::NoisePool;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

const CONF: &str = "speed=100\nanswer=the cat sat on the mat\n";

/// The fake engine: reads its configuration from the checkout when built.
struct Fake {
    base: (f64, String),
    patched: (f64, String),
    n: u32,
}

fn read_conf(checkout: &Path) -> Result<(f64, String), BuildFailed> {
    let text = std::fs::read_to_string(checkout.join("engine.conf")).unwrap();
    if let Some(line) = text.lines().find(|l| l.starts_with("#error")) {
        return Err(BuildFailed {
            first_errors: vec![format!("engine.conf:3:1: error: {line}")],
        });
    }
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    Ok((get("speed").parse().unwrap(), get("answer")))
}

impl Executor for Fake {
    async fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> anyhow::Result<Result<(), BuildFailed>> {
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(log, "building\n").unwrap();
        let conf = match read_conf(checkout) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match which {
            Build::Base => self.base = conf,
            Build::Patched => self.patched = conf,
        }
        Ok(Ok(()))
    }

    async fn answers(&mut self, which: Build) -> anyhow::Result<Vec<String>> {
        let a = match which {
            Build::Base => &self.base.1,
            Build::Patched => &self.patched.1,
        };
        Ok(vec![format!(" {a}"); 8])
    }

    async fn measure(&mut self, which: Build) -> anyhow::Result<f64> {
        // ±0.5 % of run-to-run wobble.
        self.n += 1;
        let wobble = if self.n.is_multiple_of(3) {
            1.005
        } else {
            0.995
        };
        Ok(match which {
            Build::Base => self.base.0,
            Build::Patched => self.patched.0,
        } * wobble)
    }
}

/// The fake engine's checkout under `root`: a git repository with `engine.conf`
/// committed; its path and that commit.
fn engine_repo(root: &Path) -> (PathBuf, String) {
    let co = root.join("engine");
    std::fs::create_dir_all(&co).unwrap();
    std::fs::write(co.join("engine.conf"), CONF).unwrap();
    git(&co, &["init", "-q", "-b", "main"]);
    git(&co, &["add", "."]);
    git(&co, &["commit", "-q", "-m", "engine"]);
    let base = git(&co, &["rev-parse", "HEAD"]);
    (co, base)
}

fn diff(from: &str, to: &str) -> String {
    let mut d = format!(
        "diff --git a/engine.conf b/engine.conf\n--- a/engine.conf\n+++ b/engine.conf\n@@ -1,{} +1,{} @@\n",
        from.lines().count(),
        to.lines().count()
    );
    for l in from.lines() {
        d.push_str(&format!("-{l}\n"));
    }
    for l in to.lines() {
        d.push_str(&format!("+{l}\n"));
    }
    d
}

#[tokio::test]
async fn every_outcome_comes_from_a_real_diff_and_is_recorded_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, base) = engine_repo(tmp.path());
    let dir = tmp.path().join("campaign");
    std::fs::create_dir_all(&dir).unwrap();
    let mut exec = Fake {
        base: read_conf(&co).unwrap(),
        patched: (0.0, String::new()),
        n: 0,
    };
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
            _ => {}
        }
        assert!(dir.join(&row.patch).is_file());
    }
    assert_eq!(git(&co, &["rev-parse", "HEAD~1"]), base);
    assert!(kept.is_some());
    // The ledgers: six attempts once each, one optimization, nothing unfinished.
    let back = Ledger::read(&dir).unwrap();
    assert_eq!(back.attempts().count(), 6);
    assert!(back.unfinished().is_none());
    let read = |f: &str| std::fs::read_to_string(dir.join("ledgers").join(f)).unwrap();
    assert_eq!(read("attempt-ledger.md").matches("| 1 | r1-a").count(), 6);
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
        6
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
