//! `forge compare` end to end through the real binary:
//! - a dry run of all three simulated twins (real `forge sim serve` processes over HTTP):
//!   every artifact, one row per candidate and scenario, commands that parse back through
//!   each framework's own parser and client allowlist;
//! - `kill -9` in the middle of a compare, then `forge compare resume`: the same artifacts,
//!   no candidate measured or written twice, no server left behind;
//! - llama.cpp's real server on the CPU through the same gate (needs the peers, as the
//!   other llama.cpp tests).

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::bin::forge;
use common::compare::{dry_compare, synth_workload};
use common::llamacpp;
use common::procs::wait_until;
use forge::compare::candidate::Candidate;
use forge::compare::commands::native_flags;
use forge::recipe::EngineKind;

const LIMIT: Duration = Duration::from_secs(15 * 60);

/// The tag every process of one campaign carries in its environment.
fn tag(campaign: &Path) -> String {
    campaign.display().to_string()
}

fn rows(campaign: &Path) -> Vec<Candidate> {
    let text = std::fs::read_to_string(campaign.join("benchmark/candidates.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Every command in `winning-commands.md`'s code blocks, one string per block.
fn blocks(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<String> = None;
    for line in md.lines() {
        match (&mut cur, line.starts_with("```")) {
            (None, true) => cur = Some(String::new()),
            (Some(b), true) => {
                out.push(std::mem::take(b));
                cur = None;
            }
            (Some(b), false) => {
                b.push_str(line);
                b.push('\n');
            }
            (None, false) => {}
        }
    }
    out
}

/// The last line of a block as argv (the launch line after a here-document).
fn argv(block: &str) -> Vec<String> {
    shlex::split(block.lines().last().unwrap()).unwrap()
}

/// A launch command parses with its framework's own parser (vLLM's argparse table, the
/// twins' SGLang argparse and trtllm click), and a client command uses only its allowlist.
fn validate(block: &str) {
    let a = argv(block);
    let rest: Vec<String> = a.iter().skip(2).cloned().collect();
    match (a[0].as_str(), a[1].as_str()) {
        ("vllm", "serve") => {
            forge::engine::vllm::flags::parse_full(
                &rest,
                forge::engine::vllm::flags::Version::CURRENT,
            )
            .unwrap();
        }
        ("sglang", "serve") => {
            forge::sim::twin::cli::parse_sglang(&rest).unwrap();
        }
        ("trtllm-serve", "serve") => {
            assert!(block.contains("cat > extra_llm_api_options.yaml <<'EOF'"));
            forge::sim::twin::cli::parse_trtllm(&rest).unwrap();
        }
        ("forge", "bench") => {
            let out = forge(&["bench", "--help"]).output().unwrap();
            let help = String::from_utf8_lossy(&out.stdout);
            for f in a.iter().filter(|w| w.starts_with("--")) {
                assert!(help.contains(f.as_str()), "forge bench has no {f}");
            }
        }
        (p, m) => {
            let fw = match (p, m) {
                ("vllm", "bench") => EngineKind::Vllm,
                ("python3", "-m") if a[2] == "sglang.bench_serving" => EngineKind::Sglang,
                ("python3", "-m") => EngineKind::Trtllm,
                _ => panic!("unexpected command: {block}"),
            };
            let allowed = native_flags(fw);
            for f in a.iter().filter(|w| w.starts_with("--")) {
                assert!(allowed.contains(&f.as_str()), "{fw:?} client: {f}");
            }
            if fw == EngineKind::Sglang {
                let help = std::fs::read_to_string(common::run::fixture(
                    "sglang/bench-serving-0.5.23-help.txt",
                ))
                .unwrap();
                for f in a.iter().filter(|w| w.starts_with("--")) {
                    assert!(help.contains(f.as_str()), "sglang.bench_serving: {f}");
                }
            }
        }
    }
}

fn assert_artifacts(campaign: &Path, frameworks: &[&str]) -> Vec<Candidate> {
    for f in [
        "manifest.md",
        "compare.json",
        "benchmark/candidates.jsonl",
        "benchmark/summary.md",
        "benchmark/winning-commands.md",
    ] {
        assert!(campaign.join(f).is_file(), "{f} missing");
    }
    for fw in frameworks {
        assert!(campaign.join(format!("help/{fw}.txt")).is_file());
    }
    let rows = rows(campaign);
    let keys: BTreeSet<(String, String)> = rows
        .iter()
        .map(|c| (c.candidate_id.clone(), c.workload.scenario.clone()))
        .collect();
    assert_eq!(keys.len(), rows.len(), "a candidate was written twice");
    for fw in frameworks {
        assert!(
            rows.iter().any(|c| c.framework == *fw && c.eligible()),
            "{fw} has no SLA-passing candidate: {rows:#?}"
        );
    }
    let summary = std::fs::read_to_string(campaign.join("benchmark/summary.md")).unwrap();
    for h in [
        "## Best Commands By Framework",
        "## Cross-Framework Best Comparison",
        "## Failed Or SLA-Failing Candidates",
    ] {
        assert!(summary.contains(h), "{h}");
    }
    rows
}

#[test]
fn dry_run_compare_of_three_twins_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let w = synth_workload(dir.path(), 12);
    let campaign = dir.path().join("c");
    let out = dry_compare(&campaign, &w).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let rows = assert_artifacts(&campaign, &["vllm", "sglang", "trtllm"]);
    // Each framework's search ran as a forge tune run inside the campaign.
    for fw in ["vllm", "sglang", "trtllm"] {
        assert!(campaign.join(format!("search/{fw}/runs")).is_dir());
    }
    // Every row's server command is the one its winning block launches.
    let md = std::fs::read_to_string(campaign.join("benchmark/winning-commands.md")).unwrap();
    let bs = blocks(&md);
    assert!(bs.len() >= 3 * 2, "{md}");
    for b in &bs {
        validate(b);
    }
    // The order is said with its evidence.
    let summary = std::fs::read_to_string(campaign.join("benchmark/summary.md")).unwrap();
    assert!(
        summary.contains(" vs ") || summary.contains(" ahead of "),
        "{summary}"
    );
    // The pinned floor reached every framework's command line.
    // 256 + 48 tokens: the sequence-length floor reached every launch command.
    assert!(
        rows.iter().all(|c| c.server_command.contains(" 304")),
        "{rows:#?}"
    );
    // `forge gap` decides vLLM's standing from interleaved pairs and says it in its exit
    // status, gap.json and final_report.md.
    let out = forge(&["gap", "--target", "vllm", "--max-pairs", "3", "--campaign"])
        .arg(&campaign)
        .env(common::procs::TAG_VAR, tag(&campaign))
        .output()
        .unwrap();
    let gap: serde_json::Value =
        serde_json::from_slice(&std::fs::read(campaign.join("gap.json")).unwrap()).unwrap();
    let verdict = gap["scenarios"][0]["gap"]["verdict"]
        .as_str()
        .unwrap()
        .to_string();
    let code = out.status.code().unwrap();
    let want = match verdict.as_str() {
        "ahead" | "tied" | "only_target_passes" => 0,
        "behind" => 10,
        "target_fails_sla" => 11,
        "unresolved" => 12,
        _ => 13,
    };
    assert_eq!(
        code,
        want,
        "{verdict}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if !matches!(verdict.as_str(), "target_fails_sla" | "only_target_passes") {
        assert!(gap["scenarios"][0]["log_ratios"].as_array().unwrap().len() >= 2);
    }
    let report = std::fs::read_to_string(campaign.join("final_report.md")).unwrap();
    assert!(
        report.contains("## Gap") && report.contains("| w | vllm-"),
        "{report}"
    );
    // `forge profile` boots each twin's best deployment with its profiler on, captures
    // both stages at the scenario's lengths and analyzes them; TensorRT-LLM has no
    // profiler over HTTP and says so.
    for fw in ["vllm", "sglang"] {
        let out = forge(&["profile", "--framework", fw, "--batch", "2", "--campaign"])
            .arg(&campaign)
            .env(common::procs::TAG_VAR, tag(&campaign))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{fw}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("256 → 1") && text.contains("1 → 48"),
            "{text}"
        );
        for stage in ["prefill", "decode"] {
            let md = campaign.join(format!("profiles/{fw}/{stage}/analysis.md"));
            let md = std::fs::read_to_string(&md).unwrap();
            assert!(md.contains(&format!("## Stage: {stage}")), "{md}");
            assert!(md.contains("### Layer pipeline"), "{md}");
        }
    }
    let out = forge(&["profile", "--framework", "trtllm", "--campaign"])
        .arg(&campaign)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has no torch profiler"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!campaign.join("profiles/trtllm").exists());
    // Nothing is left running.
    assert!(common::procs::tagged(&tag(&campaign)).is_empty());
}

#[test]
fn killed_with_sigkill_and_resumed_the_campaign_completes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let w = synth_workload(dir.path(), 12);
    let campaign = dir.path().join("c");
    let mut child = dry_compare(&campaign, &w)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the first row is on disk (the gate of the first framework).
    let first_row = wait_until(LIMIT, || {
        std::fs::read_to_string(campaign.join("benchmark/candidates.jsonl"))
            .is_ok_and(|t| !t.is_empty())
    });
    assert!(first_row, "no row was written");
    child.kill().unwrap();
    child.wait().unwrap();
    let before = rows(&campaign);
    let out = forge(&["compare", "resume"])
        .arg(&campaign)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let after = assert_artifacts(&campaign, &["vllm", "sglang", "trtllm"]);
    // What was recorded before the kill is kept as it was.
    assert_eq!(&after[..before.len()], &before[..]);
    assert!(common::procs::tagged(&tag(&campaign)).is_empty());
    // Re-running the finished campaign measures nothing new.
    let again = forge(&["compare", "resume"])
        .arg(&campaign)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert_eq!(rows(&campaign).len(), after.len());
}

#[test]
fn llamacpp_compare_on_the_cpu_end_to_end() {
    let Some(p) = llamacpp::peers("llamacpp_compare_on_the_cpu_end_to_end") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let campaign = dir.path().join("c");
    let mut child = forge(&[
        "compare",
        "--frameworks",
        "llamacpp",
        "--device",
        "cpu",
        "--budget",
        "2",
        "--max-repeats",
        "2",
        "--candidates",
        "2",
        "--accuracy-floor",
        "0.5",
        "--rate-bounds",
        "0.25,4",
        "--sla",
        "p50_ttft_ms=5000,p50_tpot_ms=500",
    ])
    .arg("--engine-cmd")
    .arg(format!("llamacpp={}", p.server.display()))
    .arg("--model")
    .arg(&p.model)
    .arg("--workload")
    .arg(common::run::fixture("llamacpp/workload.jsonl"))
    .arg("--campaign-dir")
    .arg(&campaign)
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
    .spawn()
    .unwrap();
    let status = llamacpp::wait_with_deadline(&mut child, Duration::from_secs(20 * 60));
    let stderr = std::fs::read_to_string(dir.path().join("err")).unwrap_or_default();
    assert!(status.is_some_and(|s| s.success()), "{status:?}\n{stderr}");
    let rows = assert_artifacts(&campaign, &["llamacpp"]);
    let best = rows.iter().find(|c| c.eligible()).unwrap();
    assert!(best.metrics.request_throughput.unwrap() > 0.0);
    assert!(best.server_command.starts_with("llama-server "));
    let md = std::fs::read_to_string(campaign.join("benchmark/winning-commands.md")).unwrap();
    assert!(
        md.contains("forge bench --base-url http://127.0.0.1:8080"),
        "{md}"
    );
}
