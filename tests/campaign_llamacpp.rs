//! One attempt after another on a real llama.cpp checkout (the campaign fixture:
//! upstream + a deliberate 3 ms per-token sleep), rebuilt incrementally and served by the
//! real `llama-server` with SmolLM2-135M: the patch removing the slowdown is kept with its
//! interval, the one that does not compile is `build_failed` with the compiler's line, the
//! one that changes answers is `incorrect`, the one that sleeps more is `regressed`; the
//! checkout ends on the kept commit, clean. A flow check of the machinery, not a benchmark.
//!
//! Needs the llama.cpp sources and model scripts/llama-server.sh provides; skips loudly
//! without them and fails when FORGE_REQUIRE_LLAMACPP=1.

mod common;

use std::path::Path;

use forge::campaign::attempt::{Build, Executor, Plan, run};
use forge::campaign::ledger::{Ledger, Source};
use forge::campaign::llamacpp::{LlamaCppExecutor, Load};
use forge::patch::{Limits, git};
use forge::tune::verdict::NoisePool;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_series_on_a_real_llama_cpp_checkout() {
    let Some(p) = common::llamacpp::peers("campaign_llamacpp") else {
        return;
    };
    let Some((co, build_dir)) = common::llamacpp::campaign_fixture("campaign_llamacpp") else {
        return;
    };
    let model = p.model;
    // The script leaves `main` on the slowdown commit; a campaign branch from there (reset:
    // an earlier run's kept commit must not carry over).
    let base = git::head(&co).unwrap();
    git::start_branch(&co, "forge-campaign-test").unwrap();
    git::revert_to(&co, &base).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let load = Load {
        prompts: vec![
            "The capital of France is".into(),
            "List three colours:".into(),
            "Water boils at".into(),
            "A haiku about servers:".into(),
        ],
        answer_tokens: 16,
        concurrent: 4,
        output_tokens: 48,
    };
    let mut exec = LlamaCppExecutor::new(&build_dir, dir, &model, load);
    let built = exec
        .build(&co, Build::Base, &dir.join("patches/base.log"))
        .await
        .unwrap();
    assert!(built.is_ok(), "{built:?}");
    let mut ledger = Ledger::read(dir).unwrap();
    let mut pool = NoisePool::default();
    let series = Path::new(ROOT).join("tests/fixtures/campaign/llamacpp/patches");
    let want = [
        ("01-remove-slowdown.diff", "kept"),
        ("02-does-not-compile.diff", "build_failed"),
        ("03-changes-answers.diff", "incorrect"),
        ("04-slower.diff", "regressed"),
    ];
    let mut rows = Vec::new();
    for (k, (file, outcome)) in want.iter().enumerate() {
        let diff = std::fs::read_to_string(series.join(file)).unwrap();
        let plan = Plan {
            dir,
            checkout: &co,
            id: format!("r1-a{}", k + 1),
            round: 1,
            source: Source::Series {
                file: file.to_string(),
            },
            diff: &diff,
            idea: None,
            limits: Limits::default(),
        };
        let row = run(&plan, &mut exec, &mut ledger, &mut pool).await.unwrap();
        assert_eq!(row.outcome.code(), *outcome, "{file}: {}", row.reason);
        assert!(git::status_clean(&co).unwrap());
        rows.push(row);
    }
    let kept = &rows[0];
    let g = kept.gain.unwrap();
    assert!(g.lo > 1.0, "{g:?}");
    assert!(rows[1].reason.contains("error:"), "{}", rows[1].reason);
    assert_eq!(git::head(&co).unwrap(), kept.commit.clone().unwrap());
    assert_eq!(
        git::changed_files(&co, &base, kept.commit.as_deref().unwrap()).unwrap(),
        ["tools/server/server-context.cpp"]
    );
    eprintln!(
        "{}",
        std::fs::read_to_string(dir.join("ledgers/attempt-ledger.md")).unwrap()
    );
    // Put the fixture back as the script leaves it.
    git::revert_to(&co, &base).unwrap();
}
