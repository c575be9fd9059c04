//! `forge campaign` refuses bad input before it writes anything: a missing or dirty
//! checkout, no source of patches, a branch another campaign left, a campaign directory
//! already in use, a directory that is not a campaign to resume — each with a message that
//! names the flag or file.

mod common;

use std::path::Path;

use common::bin::{forge, run};
use common::fake_engine::engine_repo;

fn campaign(args: &[&str]) -> common::bin::Outcome {
    let mut all = vec!["campaign"];
    all.extend_from_slice(args);
    run(&mut forge(&all))
}

#[test]
fn bad_input_is_refused_with_the_flag_or_file_named_and_nothing_written() {
    let tmp = tempfile::tempdir().unwrap();
    let (co, _) = engine_repo(tmp.path());
    let model = tmp.path().join("m.gguf");
    std::fs::write(&model, "gguf").unwrap();
    let leader = tmp.path().join("llama-server");
    std::fs::write(&leader, "#!/bin/sh\n").unwrap();
    let patches = tmp.path().join("patches");
    std::fs::create_dir_all(&patches).unwrap();
    std::fs::write(patches.join("01-x.diff"), "x").unwrap();
    let dir = tmp.path().join("camp");
    let s = |p: &Path| p.display().to_string();
    let (co_s, model_s, leader_s, patches_s, dir_s) =
        (s(&co), s(&model), s(&leader), s(&patches), s(&dir));
    let base = [
        "--target",
        "llamacpp",
        "--model",
        &model_s,
        "--source",
        &co_s,
        "--leader-server",
        &leader_s,
        "--dir",
        &dir_s,
    ];
    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        campaign(&a)
    };

    let o = with(&[]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("--patches DIR") && o.stderr.contains("--llm"),
        "{}",
        o.stderr
    );

    let missing = tmp.path().join("nowhere").display().to_string();
    let o = with(&["--patches", &missing]);
    assert!(
        o.stderr.contains("--patches") && o.stderr.contains("nowhere"),
        "{}",
        o.stderr
    );

    std::fs::write(co.join("stray.txt"), "x").unwrap();
    let o = with(&["--patches", &patches_s]);
    assert!(
        o.stderr.contains("--source") && o.stderr.contains("stray.txt"),
        "{}",
        o.stderr
    );
    std::fs::remove_file(co.join("stray.txt")).unwrap();

    common::fake_engine::git(&co, &["branch", "forge-campaign", "HEAD"]);
    std::fs::write(co.join("engine.conf"), "speed=1\nanswer=x\n").unwrap();
    common::fake_engine::git(&co, &["commit", "-qam", "moved on"]);
    let o = with(&["--patches", &patches_s]);
    assert!(
        o.stderr.contains("--branch forge-campaign") && o.stderr.contains("already exists"),
        "{}",
        o.stderr
    );
    assert!(
        !dir.exists(),
        "nothing is written before the input is valid"
    );

    // A checkout another campaign is patching (its git directory locked) is refused.
    let held = forge::store::RunLock::acquire(&co.join(".git")).unwrap();
    let o = with(&["--patches", &patches_s, "--branch", "fresh"]);
    assert!(
        o.stderr.contains("another campaign is patching it"),
        "{}",
        o.stderr
    );
    drop(held);
    std::fs::remove_dir_all(&dir).unwrap();

    let o = campaign(&["resume", &s(tmp.path())]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("not a campaign directory"),
        "{}",
        o.stderr
    );

    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("campaign.json"), "{}").unwrap();
    let o = with(&["--patches", &patches_s, "--branch", "other"]);
    assert!(
        o.stderr.contains("already holds a campaign"),
        "{}",
        o.stderr
    );
    let o = campaign(&["resume", &dir_s]);
    assert!(o.stderr.contains("campaign.json:1:"), "{}", o.stderr);
}
