//! End to end: the recorded conversation (`tests/fixtures/llm/conversation.json`, plus one
//! recorded analysis reply) served by a scripted OpenAI-shaped provider drives a complete
//! `forge tune --dry-run` through real `forge sim serve` processes. Every proposal in the
//! journal is the LLM's (no fallback), with the recorded rationale and changes; the rate
//! limit and the rejected value are absorbed inside their steps; the calls stay within the
//! per-step bound; each row's spend is its replies' usage at gpt-4o's list price; the
//! analysis is requested once and shown by `forge report`; the key appears nowhere on disk
//! or in the output; and no process survives.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::bin::{Outcome, run};
use common::llm_mock::{Scripted, ScriptedLlm, Shape, load_conversation, reply};
use common::procs::{environ, tagged};
use common::run::{fixture, journal, read_json, small_workload};
use common::sandbox::Sandbox;
use forge::agent::llm::cost::BUILTIN_PRICES;
use forge::agent::llm::parse::extract_json;
use forge::agent::llm::prompt::{ANALYSIS_SYSTEM, SYSTEM};
use forge::agent::llm::{MAX_CALLS_PER_ANALYSIS, MAX_CALLS_PER_STEP};
use serde_json::Value;

const MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";
/// A key that must never be written anywhere.
const KEY: &str = "sk-e2e-7f3a9c1d-never-on-disk";
const ANALYSIS: &str = "Lowering max_num_seqs to 256 ended the preemptions; fp8 KV added \
                        capacity. Re-check with a longer trace before deploying.";

/// Which recorded replies each proposal step consumed, in journal order: reply 2 is a
/// rate limit (retried inside step 3), reply 6 proposes an illegal value (bf16) and is
/// re-prompted inside step 6. The last reply of the script is the analysis.
const STEPS: [&[usize]; 9] = [&[0], &[1], &[2, 3], &[4], &[5], &[6, 7], &[8], &[9], &[10]];

/// What a step's accepted reply said: layer, changes, rationale.
fn accepted(r: &Scripted) -> (String, Value, String) {
    let Scripted::Reply { text, .. } = r else {
        panic!("not a reply: {r:?}")
    };
    let v = extract_json(text).unwrap();
    (
        v["mutation"]["layer"].as_str().unwrap().to_string(),
        v["mutation"]["changes"].clone(),
        v["rationale"].as_str().unwrap().to_string(),
    )
}

/// USD of a reply at gpt-4o's list price; errors cost nothing.
fn cost(r: &Scripted) -> f64 {
    let (_, pi, po) = BUILTIN_PRICES
        .iter()
        .find(|(m, _, _)| *m == "openai/gpt-4o")
        .unwrap();
    assert_eq!((*pi, *po), (2.5, 10.0), "gpt-4o list price changed");
    match r {
        Scripted::Reply {
            input_tokens,
            output_tokens,
            ..
        } => (*input_tokens as f64 * pi + *output_tokens as f64 * po) / 1e6,
        Scripted::Status { .. } => 0.0,
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn script() -> Vec<Scripted> {
    let mut replies = load_conversation(&fixture("llm/conversation.json")).replies;
    assert!(matches!(replies[2], Scripted::Status { status: 429, .. }));
    assert!(matches!(&replies[6], Scripted::Reply { text, .. } if text.contains("\"bf16\"")));
    assert_eq!(replies.len(), 11);
    replies.push(reply(ANALYSIS, 4100, 150));
    replies
}

/// `forge tune --dry-run` with the LLM agent against `mock`, in `sb`.
async fn tune(sb: &Sandbox, mock: &ScriptedLlm) -> Outcome {
    let w = small_workload(sb.dir.path(), 8);
    let base = mock.base_url();
    let mut cmd = sb.forge(&[
        "tune",
        "--dry-run",
        "--sim-gpu",
        "H100",
        "--model",
        MODEL,
        "--workload",
        w.to_str().unwrap(),
        "--max-experiments",
        "8",
        "--max-repeats",
        "2",
        "--sim-time-scale",
        "0.01",
        "--llm",
        "openai/gpt-4o",
        "--llm-base-url",
        &base,
    ]);
    // The key; no price file from the developer's machine.
    cmd.env("OPENAI_API_KEY", KEY)
        .env("HOME", sb.dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("FORGE_LLM_PRICES");
    tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_conversation_drives_a_full_dry_run() {
    let replies = script();
    let mock = ScriptedLlm::start(Shape::OpenAi, replies.clone()).await;
    let sb = Sandbox::new();
    let started = Instant::now();
    let run_fut = tune(&sb, &mock);
    tokio::pin!(run_fut);
    // While it runs: every engine forge spawns (`forge sim serve`, tagged by the sandbox)
    // has an environment without the provider's key; forge itself has it.
    let mut engines_seen = std::collections::BTreeSet::new();
    let out = loop {
        tokio::select! {
            out = &mut run_fut => break out,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                for (pid, cmd) in tagged(&sb.tag) {
                    if !cmd.contains("sim serve") {
                        continue;
                    }
                    let env = environ(pid);
                    if env.is_empty() {
                        continue;
                    }
                    assert!(
                        !env.iter().any(|e| e.starts_with(b"OPENAI_API_KEY=")
                            || e.windows(KEY.len()).any(|w| w == KEY.as_bytes())),
                        "engine {pid} ({cmd}) has the provider key in its environment"
                    );
                    engines_seen.insert(pid);
                }
            }
        }
    };
    assert!(out.success(), "{}", out.stderr);
    assert!(
        !engines_seen.is_empty(),
        "no engine process was observed during the run"
    );
    let (stdout, stderr) = (out.stdout, out.stderr);
    eprintln!("forge tune took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        stderr.contains(&format!(
            "agent: openai/gpt-4o via {} ($2.5/$10 per Mtok in/out, list prices",
            mock.base_url()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("done (every layer converged)"), "{stderr}");
    let run = sb.run_dir();
    let rows = journal(&run);

    // Every row is the LLM's; none fell back to the built-in agent.
    for r in &rows {
        assert_eq!(r["agent"], "openai/gpt-4o", "{r}");
        let why = r["rationale"].as_str().unwrap();
        assert!(!why.contains("[fallback"), "{why}");
    }
    assert_eq!(rows[0]["status"], "baseline");
    assert_eq!(rows[0]["cost_usd"], 0.0);
    // The refused reply (bf16, re-prompted inside step 6) is a `rej-*` row of its own,
    // before the step's accepted proposal; it spends no experiment.
    let refused: Vec<&Value> = rows.iter().filter(|r| r["status"] == "rejected").collect();
    assert_eq!(refused.len(), 1, "{rows:#?}");
    assert!(
        refused[0]["id"].as_str().unwrap().starts_with("rej-"),
        "{}",
        refused[0]
    );
    assert!(refused[0]["exp"].is_null(), "{}", refused[0]);
    let summary = refused[0]["failure"]["summary"].as_str().unwrap();
    assert!(summary.starts_with("agent reply refused: "), "{summary}");
    assert!(summary.contains("bf16"), "{summary}");
    let proposals: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            !matches!(
                r["status"].as_str(),
                Some("baseline" | "confirmation" | "rejected")
            )
        })
        .collect();
    assert_eq!(proposals.len(), STEPS.len(), "{rows:#?}");

    // Each step's row holds the recorded reply it accepted, and what its replies cost.
    for (row, used) in proposals.iter().zip(STEPS) {
        let (layer, changes, rationale) = accepted(&replies[*used.last().unwrap()]);
        assert_eq!(row["layer"], layer.as_str(), "{row}");
        assert_eq!(row["changes"], changes, "{row}");
        let why = row["rationale"].as_str().unwrap();
        // The loop may append a measurement note in brackets.
        assert!(why.starts_with(&rationale), "{why} / {rationale}");
        let converged = changes.as_object().unwrap().is_empty();
        let status = row["status"].as_str().unwrap();
        if converged {
            assert_eq!(status, "converged", "{row}");
        } else {
            assert!(
                ["kept", "reverted", "inconclusive"].contains(&status),
                "{row}"
            );
            assert!(row["exp"].is_u64(), "{row}");
        }
        let want: f64 = used.iter().map(|i| cost(&replies[*i])).sum();
        let got = row["cost_usd"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-12, "{row}: cost {got}, want {want}");
    }
    let experiments = rows.iter().filter(|r| r["exp"].is_u64()).count();
    assert_eq!(experiments, 1 + 6, "baseline and six measured moves");

    // One request per recorded reply (the 429 and the re-prompt included), within bounds.
    assert_eq!(mock.calls(), replies.len());
    let bound = MAX_CALLS_PER_STEP as usize * STEPS.len() + MAX_CALLS_PER_ANALYSIS as usize;
    assert!(mock.calls() <= bound, "{} > {bound}", mock.calls());
    let bodies = mock.bodies().await;
    assert_eq!(bodies.len(), replies.len());
    for b in &bodies[..bodies.len() - 1] {
        assert_eq!(b["messages"][0]["content"], SYSTEM);
        assert_eq!(b["model"], "gpt-4o");
    }
    // The re-prompt carries the rejected reply and the reason.
    let reprompt = bodies[7]["messages"].as_array().unwrap();
    assert_eq!(reprompt.len(), 4, "system, prompt, rejected reply, retry");
    assert!(reprompt[3]["content"].as_str().unwrap().contains("bf16"));

    // The post-run analysis was requested last, saved, and is in the report.
    let last = bodies.last().unwrap();
    assert_eq!(last["messages"][0]["content"], ANALYSIS_SYSTEM);
    let saved = read_json(&run.join("analysis.json"));
    assert_eq!(saved["text"], ANALYSIS);
    let analysis_cost = cost(replies.last().unwrap());
    assert!((saved["cost_usd"].as_f64().unwrap() - analysis_cost).abs() < 1e-12);
    let report = sb.run(&["report"]);
    assert!(report.success());
    let table = report.stdout;
    assert!(
        table.lines().any(|l| l == format!("Analysis: {ANALYSIS}")),
        "{table}"
    );
    assert!(table.contains("agent: openai/gpt-4o"), "{table}");

    // The run's total spend is every reply's usage at list price.
    let completed = read_json(&run.join("completed.json"));
    let total: f64 = replies.iter().map(cost).sum();
    let spent = completed["spent_usd"].as_f64().unwrap();
    assert!((spent - total).abs() < 1e-12, "spent {spent}, want {total}");
    let rows_total: f64 = rows.iter().map(|r| r["cost_usd"].as_f64().unwrap()).sum();
    assert!((rows_total + analysis_cost - total).abs() < 1e-12);

    // The run's own JSON view is the final report, not a snapshot from before completion.
    let json = sb.run(&["report", "--format", "json"]);
    let json = json.stdout;
    let view = std::fs::read_to_string(run.join("experiments.json")).unwrap();
    let summary = |t: &str| serde_json::from_str::<Value>(t).unwrap()["summary"].clone();
    assert_eq!(summary(&view), summary(&json));
    assert_eq!(summary(&view)["state"], "completed");
    assert!(
        view == json,
        "experiments.json is not `forge report --format json`"
    );

    // The key was sent, in its header only, and written nowhere.
    for r in mock.requests().await {
        let auth = r.headers.get("authorization").unwrap().to_str().unwrap();
        assert_eq!(auth, format!("Bearer {KEY}"));
        assert!(!String::from_utf8_lossy(&r.body).contains(KEY));
    }
    assert!(!stdout.contains(KEY) && !stderr.contains(KEY));
    let mut files = Vec::new();
    files_under(sb.dir.path(), &mut files);
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
            "{} contains the key",
            f.display()
        );
    }

    assert!(
        sb.survivors_after(Duration::from_secs(5)).is_empty(),
        "{:?}",
        sb.survivors()
    );
}
