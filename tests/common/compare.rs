//! A fair gate without a GPU: a synthetic workload and a dry-run `forge compare` of forge's
//! simulated twins (Llama-3.1-8B on a simulated H100, a two-candidate search each), as the
//! compare and campaign tests start one.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::bin::forge;

/// `forge workload synth`: `n` requests of 256 prompt and 48 output tokens in `dir/w.jsonl`.
pub fn synth_workload(dir: &Path, n: usize) -> PathBuf {
    let p = dir.join("w.jsonl");
    let out = forge(&[
        "workload",
        "synth",
        "--input-len",
        "256",
        "--output-len",
        "48",
    ])
    .args(["--num-prompts", &n.to_string(), "-o"])
    .arg(&p)
    .output()
    .unwrap();
    assert!(out.status.success(), "{out:?}");
    p
}

/// The dry-run compare of workload `w` into `campaign`, every process it starts tagged with
/// the campaign's path (add `--frameworks …` to narrow it).
pub fn dry_compare(campaign: &Path, w: &Path) -> Command {
    let mut c = forge(&[
        "compare",
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--sim-gpu",
        "H100",
        "--budget",
        "2",
        "--max-repeats",
        "2",
        "--sim-noise",
        "2",
        "--sla",
        "p50_ttft_ms=300,p50_tpot_ms=15",
    ]);
    c.arg("--workload")
        .arg(w)
        .arg("--campaign-dir")
        .arg(campaign);
    c.env(super::procs::TAG_VAR, campaign.display().to_string());
    c
}
