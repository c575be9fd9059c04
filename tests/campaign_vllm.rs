//! `forge campaign --target vllm` end to end without a GPU: a fake vLLM checkout (a git
//! repository whose `python -m vllm.entrypoints.openai.api_server` is a tiny server whose
//! decode step the patch changes), installed by its environment's (fake) pip the way vLLM's
//! Python-only build is, measured against a stock competitor, with the patches proposed by
//! the LLM agent in a recorded conversation (wiremock): it reads the source it asks for,
//! proposes a shorter decode step (kept, committed) and a sampling change (incorrect,
//! reverted); the next round finds the target ahead. Round 1 profiles the target and the
//! competitor through their torch-profiler routes (the fake writes recorded traces) and
//! the model is shown their comparison. The API key reaches the provider and
//! nothing else.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::bin::{Outcome, forge, run};
use common::fake_engine::git;
use common::llm_mock::{ScriptedLlm, Shape, load_conversation};
use forge::campaign::ledger::{Event, Ledger};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const KEY: &str = "sk-forge-test-key-7d1f";

fn fixture(p: &str) -> PathBuf {
    Path::new(ROOT).join("tests/fixtures/campaign/vllm").join(p)
}

/// The fake checkout in a git repository of its own under `root`.
fn checkout(root: &Path) -> PathBuf {
    let co = root.join("vllm");
    let status = Command::new("cp")
        .arg("-r")
        .arg(fixture("checkout"))
        .arg(&co)
        .status()
        .unwrap();
    assert!(status.success());
    git(&co, &["init", "-q", "-b", "main"]);
    git(&co, &["add", "."]);
    git(&co, &["commit", "-q", "-m", "fake vLLM"]);
    co
}

/// `forge campaign --target vllm` on the fake checkout `co` against the stock competitor,
/// the LLM at `base_url`, plus `extra` flags; how it ended.
async fn campaign(co: &Path, dir: &Path, base_url: &str, extra: &[&str]) -> Outcome {
    let s = |p: &Path| p.display().to_string();
    let (co_s, dir_s, python, stock, tree) = (
        s(co),
        s(dir),
        s(&fixture("fake-python")),
        s(&fixture("stock-server")),
        s(&fixture("checkout")),
    );
    let mut args = vec![
        "campaign",
        "--target",
        "vllm",
        "--model",
        "fake/model",
        "--source",
        &co_s,
        "--python",
        &python,
        "--leader-server",
        &stock,
        "--leader-arg",
        &tree,
        "--leader-arg",
        "--model",
        "--leader-arg",
        "fake/model",
        "--leader-arg",
        "--served-model-name",
        "--leader-arg",
        "forge-campaign",
        "--leader-arg",
        "--port",
        "--leader-arg",
        "{port}",
        "--llm",
        "openai/gpt-4o",
        "--llm-base-url",
        base_url,
        "--output-tokens",
        "24",
        "--answer-tokens",
        "8",
        "--dir",
        &dir_s,
    ];
    args.extend_from_slice(extra);
    let mut cmd = forge(&args);
    cmd.env(Shape::OpenAi.key_env(), KEY)
        .env("NO_COLOR", "1")
        .env(
            "FORGE_FAKE_TRACES",
            Path::new(ROOT).join("tests/fixtures/traces"),
        );
    tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap()
}

/// Every file under `dir`, as text where it is text.
fn all_text(dir: &Path, out: &mut String) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            all_text(&p, out);
        } else if let Ok(t) = std::fs::read_to_string(&p) {
            out.push_str(&t);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_llm_driven_vllm_campaign_keeps_one_patch_and_reverts_the_other() {
    let tmp = tempfile::tempdir().unwrap();
    let co = checkout(tmp.path());
    let start = git(&co, &["rev-parse", "HEAD"]);
    let conv = load_conversation(&fixture("conversation.json"));
    let llm = ScriptedLlm::start(Shape::OpenAi, conv.replies).await;
    let dir = tmp.path().join("campaign");
    let extra = [
        "--leader-framework",
        "sglang",
        "--leader-name",
        "stock (fake)",
        "--attempts-per-round",
        "2",
    ];
    let out = campaign(&co, &dir, &llm.base_url(), &extra).await;
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("vLLM: ahead"), "{}", out.stdout);

    let ledger = Ledger::read(&dir).unwrap();
    let rows: Vec<(&str, &str)> = ledger
        .attempts()
        .map(|a| (a.id.as_str(), a.outcome.code()))
        .collect();
    assert_eq!(rows, [("r1-a1", "kept"), ("r1-a2", "incorrect")]);
    // Both ideas recorded with their evidence and provenance, each tested once.
    let ideas: Vec<_> = ledger
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Idea(i) => Some(i),
            _ => None,
        })
        .collect();
    assert_eq!(ideas.len(), 2);
    assert!(ideas[0].title.contains("decode step"));
    assert!(ideas[0].provenance[0].contains("vllm/scheduler.py"));
    let idea_md = std::fs::read_to_string(dir.join("ledgers/source-idea-ledger.md")).unwrap();
    assert!(
        idea_md.contains("r1-a1 kept") && idea_md.contains("r1-a2 incorrect"),
        "{idea_md}"
    );

    // Round 1 profiled both sides (prefill and decode, through their profiler routes) and
    // compared them; the model was shown that comparison.
    for side in ["vllm", "sglang"] {
        for stage in ["prefill", "decode"] {
            let d = dir.join("profiles/r1").join(side).join(stage);
            let n = std::fs::read_dir(&d).map_or(0, |r| r.count());
            let why =
                std::fs::read_to_string(dir.join("analysis/root-cause.md")).unwrap_or_default();
            assert!(
                n > 0,
                "{} holds no trace: {why}\n{}",
                d.display(),
                out.stderr
            );
        }
    }
    let profiled = ledger
        .events
        .iter()
        .filter(|e| matches!(e, Event::Profiled { round: 1, .. }))
        .count();
    assert_eq!(profiled, 2);
    let root = std::fs::read_to_string(dir.join("analysis/root-cause.md")).unwrap();
    assert!(
        root.starts_with("# Root cause: target (A) against the leader (B)"),
        "{root}"
    );
    let first = llm.bodies().await[0].to_string();
    assert!(
        first.contains("Root cause: target (A) against the leader (B)"),
        "{first}"
    );

    // Three calls: a READ, then one diff per attempt; the excerpt went back to the model.
    assert_eq!(llm.calls(), 3);
    let bodies = llm.bodies().await;
    assert!(
        bodies[1].to_string().contains("DECODE_STEP_S = 0.004"),
        "{}",
        bodies[1]
    );
    let auth = llm.requests().await[0]
        .headers
        .get("authorization")
        .map(|v| v.to_str().unwrap().to_string());
    assert_eq!(auth.as_deref(), Some(format!("Bearer {KEY}").as_str()));

    // The kept patch is the checkout's one commit over the start; the tree is clean.
    assert_eq!(git(&co, &["rev-parse", "HEAD~1"]), start);
    assert_eq!(git(&co, &["status", "--porcelain"]), "");
    let scheduler = std::fs::read_to_string(co.join("vllm/scheduler.py")).unwrap();
    assert!(scheduler.contains("DECODE_STEP_S = 0.0025"), "{scheduler}");
    // The base snapshot the base server ran from is the start's package.
    let base = std::fs::read_to_string(dir.join("builds/base/vllm/scheduler.py")).unwrap();
    assert!(
        base.contains("DECODE_STEP_S = 0.0025"),
        "the kept build is the new base"
    );

    // The key is nowhere in the campaign directory or the checkout.
    let mut text = String::new();
    all_text(&dir, &mut text);
    all_text(&co, &mut text);
    assert!(!text.contains(KEY));
    let report = std::fs::read_to_string(dir.join("final_report.md")).unwrap();
    assert!(report.contains("vLLM reached the best: yes"), "{report}");
    assert!(report.contains("PYTHONPATH="), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_provider_that_fails_ends_the_campaign_behind_with_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let co = checkout(tmp.path());
    let llm = ScriptedLlm::start(Shape::OpenAi, Vec::new()).await;
    let dir = tmp.path().join("campaign");
    let out = campaign(&co, &dir, &llm.base_url(), &[]).await;
    assert_eq!(out.code, 10, "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("vLLM: exhausted"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("the agent proposed no patch in round 1"),
        "{}",
        out.stdout
    );
    assert_eq!(Ledger::read(&dir).unwrap().attempts().count(), 0);
    assert_eq!(git(&co, &["status", "--porcelain"]), "");
    let report = std::fs::read_to_string(dir.join("final_report.md")).unwrap();
    assert!(report.contains("vLLM reached the best: no"), "{report}");
    // No --leader-framework: the round says why the competitor was not profiled.
    let root = std::fs::read_to_string(dir.join("analysis/root-cause.md")).unwrap();
    assert!(root.contains("--leader-framework"), "{root}");
}
