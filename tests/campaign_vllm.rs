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
    let ideas: Vec<_> = ledger.ideas().collect();
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

/// A dry-run `forge compare` of the simulated vLLM and TensorRT-LLM twins and `forge gap
/// --target vllm` in `root/gate`: a fair gate of real forge processes, no GPU.
fn gate(root: &Path) -> PathBuf {
    let w = common::compare::synth_workload(root, 20);
    let dir = root.join("gate");
    let compare = run(common::compare::dry_compare(&dir, &w).args(["--frameworks", "vllm,trtllm"]));
    assert!(compare.success(), "{}", compare.stderr);
    let gap = run(forge(&["gap", "--campaign"])
        .arg(&dir)
        .args(["--target", "vllm"]));
    assert!(gap.code != 2, "{}", gap.stderr);
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_campaign_from_a_fair_gate_serves_its_leader_and_the_targets_winning_flags() {
    use forge::compare::gap::Gap;
    use forge::compare::standing::GapFile;
    let tmp = tempfile::tempdir().unwrap();
    let co = checkout(tmp.path());
    let gate_dir = tokio::task::spawn_blocking({
        let root = tmp.path().to_path_buf();
        move || gate(&root)
    })
    .await
    .unwrap();
    // The simulated frameworks' noise may call the gap anything; a campaign starts where the
    // target is behind, so the test makes it so (the rest of the gate is as measured).
    let path = gate_dir.join("gap.json");
    let mut gap: GapFile = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let sc = &mut gap.scenarios[0];
    assert_eq!(sc.leader_framework.as_deref(), Some("trtllm"), "{sc:?}");
    if let Gap::Ahead { interval } | Gap::Tied { interval } = &sc.gap {
        sc.gap = Gap::Behind {
            interval: *interval,
        };
    }
    std::fs::write(&path, serde_json::to_string(&gap).unwrap()).unwrap();

    let series = tmp.path().join("series");
    std::fs::create_dir_all(&series).unwrap();
    std::fs::write(
        series.join("01-shorter-step.diff"),
        "--- a/vllm/scheduler.py\n+++ b/vllm/scheduler.py\n@@ -3,3 +3,3 @@\n # Seconds per decode step; every running request advances one token per step.\n-DECODE_STEP_S = 0.004\n+DECODE_STEP_S = 0.0025\n \n",
    )
    .unwrap();
    let dir = tmp.path().join("campaign");
    let s = |p: &Path| p.display().to_string();
    let (co_s, dir_s, python, gate_s, series_s) = (
        s(&co),
        s(&dir),
        s(&fixture("fake-python")),
        s(&gate_dir),
        s(&series),
    );
    let campaign = |target: &str, model: &str, dir: &str| {
        forge(&[
            "campaign",
            "--target",
            target,
            "--model",
            model,
            "--source",
            &co_s,
            "--python",
            &python,
            "--compare",
            &gate_s,
            "--patches",
            &series_s,
            "--dir",
            dir,
        ])
    };
    let mut cmd = campaign("vllm", "meta-llama/Llama-3.1-8B-Instruct", &dir_s);
    cmd.args(["--max-rounds", "1", "--gap-pairs", "2"])
        .args(["--output-tokens", "24", "--answer-tokens", "8"])
        .env(
            "FORGE_FAKE_TRACES",
            Path::new(ROOT).join("tests/fixtures/traces"),
        );
    let out = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    assert!(
        out.code != 2 && out.code != 1,
        "{}\n{}",
        out.stdout,
        out.stderr
    );

    // The settings: the gate's leader launched as the gate launched it, the target's flags.
    let settings = forge::campaign::settings::Settings::load(&dir).unwrap();
    let g = settings.gate.as_ref().unwrap();
    assert_eq!(g.leader_framework, "trtllm");
    assert!(
        g.leader_argv.iter().any(|a| a == "{port}"),
        "{:?}",
        g.leader_argv
    );
    assert!(
        g.leader_argv.iter().any(|a| a == "trtllm"),
        "{:?}",
        g.leader_argv
    );
    assert_eq!(
        g.target_args[..1],
        ["--max-model-len".to_string()],
        "{:?}",
        g.target_args
    );
    assert_eq!(g.leader_files.len(), 1, "trtllm-serve's YAML");
    // Both sides booted and answered the campaign's measurements.
    let ledger = Ledger::read(&dir).unwrap();
    let decided = ledger
        .events
        .iter()
        .any(|e| matches!(e, Event::RoundStarted { .. }));
    assert!(decided, "{}", out.stderr);
    let logs: String = std::fs::read_dir(dir.join("logs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        logs.contains(&format!("(max_model_len={})", g.target_args[1])),
        "the target serves the gate's flags:\n{logs}"
    );
    // The final report carries the gate's table.
    let report = std::fs::read_to_string(dir.join("final_report.md")).unwrap();
    assert!(report.contains("## Gate ("), "{report}");
    assert!(report.contains("| trtllm | trtllm-e"), "{report}");
    assert!(report.contains("| vllm | vllm-e"), "{report}");

    // A gate for another model, or a llama.cpp target, is refused before anything is written.
    let other = tmp.path().join("other");
    let o = s(&other);
    let bad = run(&mut campaign("vllm", "Qwen/Qwen3-8B", &o));
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(
        bad.stderr.contains("only measured on the same weights"),
        "{}",
        bad.stderr
    );
    let bad = run(&mut campaign("llamacpp", "m.gguf", &o));
    assert_eq!(bad.code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("--target vllm"), "{}", bad.stderr);
    assert!(!other.exists());
}
