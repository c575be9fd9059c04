//! The llama.cpp campaign fixture (issue 14's CI campaign): the checkout
//! `scripts/llamacpp-campaign-fixture.sh` makes (upstream llama.cpp + a deliberate
//! slowdown) and the patch series under `tests/fixtures/campaign/llamacpp/patches/`. Each
//! patch must pass `forge::patch::try_apply` (parser, safety checks, git) in the order a
//! campaign tries them: 01 on the slowdown commit (kept, committed), then 02–04 each on
//! top of 01 (and each reverted after); 01 must undo the slowdown exactly.
//!
//! Works on a clone of the fixture checkout, so the cached one is never changed. Needs the
//! llama.cpp sources the llama-cpp-python sdist vendors (scripts/llama-server.sh unpacks
//! them); without them the test skips loudly, and fails when FORGE_REQUIRE_LLAMACPP=1.

mod common;

use forge::patch::{Limits, git, try_apply};
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SERVER: &str = "tools/server/server-context.cpp";

/// The fixture checkout (see `common::llamacpp::campaign_fixture`).
fn fixture_checkout() -> Option<PathBuf> {
    common::llamacpp::campaign_fixture("campaign_llamacpp_fixture").map(|(c, _)| c)
}

/// A clone of `checkout` at `rev` (detached), in `dir`.
fn clone_at(checkout: &Path, rev: &str, dir: &Path) {
    let ok = Command::new("git")
        .args(["clone", "-q", "--no-checkout"])
        .arg(checkout)
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "advice.detachedHead=false", "checkout", "-q", rev])
        .status()
        .unwrap()
        .success();
    assert!(ok, "checkout {rev}");
}

fn read(name: &str) -> String {
    let path = format!("{ROOT}/tests/fixtures/campaign/llamacpp/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn patch_names() -> Vec<String> {
    let dir = format!("{ROOT}/tests/fixtures/campaign/llamacpp/patches");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".diff"))
        .collect();
    names.sort();
    names
}

#[test]
fn the_series_is_the_four_patches_in_campaign_order_each_one_server_file() {
    let names = patch_names();
    assert_eq!(
        names,
        [
            "01-remove-slowdown.diff",
            "02-does-not-compile.diff",
            "03-changes-answers.diff",
            "04-slower.diff"
        ]
    );
    for name in names
        .iter()
        .map(|n| format!("patches/{n}"))
        .chain(["slowdown.diff".to_string()])
    {
        let diff = forge::patch::diff::parse(&read(&name)).unwrap();
        let paths: Vec<&str> = diff.files.iter().flat_map(|f| f.paths()).collect();
        assert_eq!(paths, [SERVER], "{name}");
        assert!(diff.changed_lines() < 20, "{name} is small");
    }
}

#[test]
fn each_patch_passes_try_apply_in_campaign_order() {
    let Some(checkout) = fixture_checkout() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("llama.cpp");
    clone_at(&checkout, "slowdown", &clone);
    let limits = Limits::default();
    let names = patch_names();

    // Each applies on the slowdown commit itself.
    for name in &names {
        let applied = try_apply(&clone, &read(&format!("patches/{name}")), &limits)
            .unwrap_or_else(|e| panic!("{name} on the slowdown commit: {} {e}", e.code()));
        assert_eq!(applied.files, [SERVER]);
        applied.revert(&clone).unwrap();
    }

    // The campaign: 01 is kept; 02–04 are tried on top of it and reverted.
    let first = try_apply(&clone, &read(&format!("patches/{}", names[0])), &limits).unwrap();
    git::commit(&clone, "01-remove-slowdown").unwrap();
    let kept = git::head(&clone).unwrap();
    assert!(
        git::changed_files(&clone, "upstream", &kept)
            .unwrap()
            .is_empty(),
        "01 must undo the slowdown exactly"
    );
    assert_ne!(first.base, kept);
    for name in &names[1..] {
        let applied = try_apply(&clone, &read(&format!("patches/{name}")), &limits)
            .unwrap_or_else(|e| panic!("{name} on top of 01: {} {e}", e.code()));
        applied.revert(&clone).unwrap();
        assert!(git::status_clean(&clone).unwrap());
        assert_eq!(git::head(&clone).unwrap(), kept);
    }
}

#[test]
fn the_slowdown_commit_is_slowdown_diff_on_upstream() {
    let Some(checkout) = fixture_checkout() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let clone = tmp.path().join("llama.cpp");
    clone_at(&checkout, "upstream", &clone);
    try_apply(&clone, &read("slowdown.diff"), &Limits::default()).unwrap();
    git::commit(&clone, "slowdown").unwrap();
    let mine = git::head(&clone).unwrap();
    let out = Command::new("git")
        .arg("-C")
        .arg(&clone)
        .args(["diff", "--quiet", &mine, "origin/main"])
        .status()
        .unwrap();
    assert!(
        out.success(),
        "the fixture's slowdown commit differs from slowdown.diff"
    );
}

/// One variant's measurement (measure.py's JSON).
#[derive(Debug, serde::Deserialize)]
struct Measured {
    client_tok_s: f64,
    server_tok_s: f64,
    answers: Vec<String>,
}

fn measure(server: &Path, model: &Path, port: u16) -> Measured {
    let script = format!("{ROOT}/tests/fixtures/campaign/llamacpp/measure.py");
    // A snapshot's libraries are beside its binary (RUNPATH names the build directory;
    // LD_LIBRARY_PATH comes first).
    let libs = server.parent().unwrap();
    let out = Command::new("python3")
        .env("LD_LIBRARY_PATH", libs)
        .arg(script)
        .arg(server)
        .arg(model)
        .arg(port.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The hand check behind README.md's numbers (slow: the first build of llama-server takes
/// about 12 minutes on 2 cores; later runs are incremental). Builds the cached fixture
/// checkout with `forge::build::LlamaCpp` into `campaign-llama/build`, then plays the
/// campaign: 01 kept, 02 fails to compile, 03 changes the answers, 04 is slower; each
/// build timed and each server measured by measure.py. Restores the checkout after.
///
///     cargo test --test campaign_llamacpp_fixture -- --ignored --nocapture
#[test]
#[ignore = "builds llama-server (minutes); run by hand, see README.md next to the fixtures"]
fn hand_check_builds_and_measures_each_variant() {
    use forge::build::{BuildFailure, Builder, LlamaCpp};
    use std::time::Duration;
    let Some(checkout) = fixture_checkout() else {
        return;
    };
    let model = std::env::var_os("SMOLLM2_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| checkout.join("../../models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let build_dir = checkout.join("../build");
    let log = checkout.join("../hand-check.log");
    let builder = LlamaCpp::new(&build_dir);
    let limit = Duration::from_secs(3600);
    let limits = Limits::default();
    let variants = checkout.join("../variants");
    let mut port = 18500;
    let mut run = |what: &str| -> Result<Measured, BuildFailure> {
        let built = builder.build(&checkout, &log, limit)?;
        snapshot(
            &build_dir.join("bin"),
            &variants.join(what.replace(' ', "-")),
        );
        port += 1;
        let m = measure(&built.program, &model, port);
        println!(
            "{what:<12} build {:>6.1}s  client {:>6.1} tok/s  server {:>6.1} tok/s",
            built.took.as_secs_f64(),
            m.client_tok_s,
            m.server_tok_s
        );
        Ok(m)
    };
    let slowdown = run("slowdown").unwrap();
    let patch = |name: &str| read(&format!("patches/{name}"));

    try_apply(&checkout, &patch("01-remove-slowdown.diff"), &limits).unwrap();
    let fixed = run("01").unwrap();
    git::commit(&checkout, "01-remove-slowdown").unwrap();
    assert_eq!(fixed.answers, slowdown.answers);

    let applied = try_apply(&checkout, &patch("02-does-not-compile.diff"), &limits).unwrap();
    let start = std::time::Instant::now();
    let err = run("02").unwrap_err();
    println!(
        "02           failed after {:.1}s: {err}",
        start.elapsed().as_secs_f64()
    );
    let BuildFailure::Compile { first_errors } = &err else {
        panic!("{err:?}")
    };
    assert!(
        first_errors[0].contains("'tkn_text' was not declared"),
        "{first_errors:?}"
    );
    applied.revert(&checkout).unwrap();

    let applied = try_apply(&checkout, &patch("03-changes-answers.diff"), &limits).unwrap();
    let wrong = run("03").unwrap();
    assert_ne!(wrong.answers, fixed.answers);
    applied.revert(&checkout).unwrap();

    let applied = try_apply(&checkout, &patch("04-slower.diff"), &limits).unwrap();
    let slower = run("04").unwrap();
    assert!(slower.client_tok_s < fixed.client_tok_s * 0.9);
    assert_eq!(slower.answers, fixed.answers);
    applied.revert(&checkout).unwrap();

    let back = run("01 again").unwrap();
    assert_eq!(back.answers, fixed.answers);
    assert!(slowdown.client_tok_s < fixed.client_tok_s * 0.9);
    remeasure_interleaved(&variants, &model);
    // Back to the slowdown commit (the build directory follows on its next build).
    assert!(
        Command::new(format!("{ROOT}/scripts/llamacpp-campaign-fixture.sh"))
            .status()
            .unwrap()
            .success()
    );
}

/// A copy of a build's `bin/` (the server and its shared libraries).
fn snapshot(bin: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    let ok = Command::new("cp")
        .arg("-a")
        .arg(bin.join("."))
        .arg(to)
        .status()
        .unwrap()
        .success();
    assert!(ok, "snapshot {}", bin.display());
}

/// Speed of every snapshot and the stock server, three passes taking turns (other load
/// on the machine hits them all alike); the median per variant.
fn remeasure_interleaved(variants: &Path, model: &Path) {
    let stock = checkout_peers().join("llama-build/bin/llama-server");
    let mut servers = vec![("stock".to_string(), stock)];
    for name in ["slowdown", "01", "03", "04"] {
        servers.push((name.to_string(), variants.join(name).join("llama-server")));
    }
    let mut speeds: Vec<Vec<f64>> = vec![Vec::new(); servers.len()];
    let mut answers: Vec<Vec<String>> = vec![Vec::new(); servers.len()];
    for pass in 0..3u16 {
        for (i, (_, server)) in servers.iter().enumerate() {
            let m = measure(server, model, 18600 + pass * 10 + i as u16);
            speeds[i].push(m.client_tok_s);
            answers[i] = m.answers;
        }
    }
    for (i, (name, _)) in servers.iter().enumerate() {
        speeds[i].sort_by(f64::total_cmp);
        println!(
            "interleaved {name:<9} median {:>6.1} tok/s  (passes {:?})  answers = stock's: {}",
            speeds[i][1],
            speeds[i],
            answers[i] == answers[0]
        );
    }
}

fn checkout_peers() -> PathBuf {
    std::env::var_os("FORGE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").unwrap()).join(".cache/forge-peers"))
}
