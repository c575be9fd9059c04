//! One attempt after another on a real llama.cpp checkout (the campaign fixture:
//! upstream + a deliberate 3 ms per-token sleep), rebuilt incrementally and served by the
//! real `llama-server` with SmolLM2-135M: the patch removing the slowdown is kept with its
//! interval, the one that does not compile is `build_failed` with the compiler's line, the
//! one that changes answers is `incorrect`, the one that sleeps more is `regressed`; the
//! checkout ends on the kept commit, clean. A flow check of the machinery, not a benchmark.
//!
//! Needs the llama.cpp sources and model scripts/llama-server.sh provides; skips loudly
//! without them and fails when FORGE_REQUIRE_LLAMACPP=1.

use std::path::{Path, PathBuf};
use std::process::Command;

use forge::campaign::attempt::{Build, Executor, Plan, run};
use forge::campaign::ledger::{Ledger, Source};
use forge::campaign::llamacpp::{LlamaCppExecutor, Load};
use forge::patch::{Limits, git};
use forge::tune::verdict::NoisePool;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn peers() -> PathBuf {
    std::env::var_os("FORGE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/forge-peers"))
}

fn skip(why: &str) -> bool {
    assert!(
        std::env::var("FORGE_REQUIRE_LLAMACPP").as_deref() != Ok("1"),
        "FORGE_REQUIRE_LLAMACPP=1 but {why}"
    );
    eprintln!("\n*** SKIPPED campaign_llamacpp: {why}\n");
    true
}

#[tokio::test(flavor = "multi_thread")]
async fn a_patch_series_on_a_real_llama_cpp_checkout() {
    let vendored = peers().join("llama_cpp_python-0.3.36/vendor/llama.cpp");
    let model = std::env::var_os("SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| peers().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if (!vendored.is_dir() && skip("the vendored llama.cpp sources are missing"))
        || (!model.is_file() && skip("the SmolLM2 model is missing"))
    {
        return;
    }
    let out = Command::new(format!("{ROOT}/scripts/llamacpp-campaign-fixture.sh"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let co = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    // The fixture's own build directory (configured for this checkout's path).
    let build_dir = peers().join("campaign-llama/build");
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
