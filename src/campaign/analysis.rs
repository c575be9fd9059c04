//! A round's analysis, from the profiles `forge profile` filed (`profiles/F/{prefill,decode}`):
//! `analysis/root-cause.md` sets the target beside the leader per stage — where the
//! difference in GPU time is, by category and by matched kernel — and
//! `analysis/layer-pipeline.md` is the target's layer pipeline per stage (the forward pass
//! and layer a patch should look at, its hottest kernels, the Perfetto ranges).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::store::write_atomic;
use crate::trace::{self, Analysis, Framework, Options, Stages, compare, render};

/// `analysis/`.
pub const ANALYSIS_DIR: &str = "analysis";
/// The comparison.
pub const ROOT_CAUSE_FILE: &str = "root-cause.md";
/// The target's pipeline.
pub const PIPELINE_FILE: &str = "layer-pipeline.md";
/// GPU time by kernel category, target beside leader per stage (what the campaign page
/// charts).
pub const CATEGORIES_FILE: &str = "categories.json";

/// One stage's GPU time by kernel category, target beside leader.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StageCategories {
    /// The stage.
    pub stage: String,
    /// The target's framework.
    pub target: String,
    /// The leader's framework.
    pub leader: String,
    /// (category, target µs, leader µs), biggest difference first.
    pub categories: Vec<(String, f64, f64)>,
}

/// The breakdowns `write` left in `dir/analysis/` (none when no round was profiled).
pub fn read_categories(dir: &Path) -> Vec<StageCategories> {
    std::fs::read_to_string(dir.join(ANALYSIS_DIR).join(CATEGORIES_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

/// One side of the comparison: a framework and its profile directory.
#[derive(Debug, Clone)]
pub struct Side {
    /// The framework.
    pub framework: Framework,
    /// `profiles/F` (holding `prefill/` and `decode/`).
    pub profiles: PathBuf,
}

/// Write both reports for `target` against `leader` into `dir/analysis/`; their paths.
pub fn write(
    dir: &Path,
    target: &Side,
    leader: &Side,
    layers: Option<usize>,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let t = analyses(target, layers)?;
    let l = analyses(leader, layers)?;
    anyhow::ensure!(
        !t.is_empty(),
        "{}: no profile to analyze",
        target.profiles.display()
    );
    let out = dir.join(ANALYSIS_DIR);
    std::fs::create_dir_all(&out)?;
    let comparisons: Vec<compare::Comparison> = t
        .iter()
        .flat_map(|a| l.iter().flat_map(move |b| compare::compare(a, b)))
        .filter(|c| c.stage.is_some())
        .collect();
    let root = out.join(ROOT_CAUSE_FILE);
    write_atomic(&root, root_cause(&comparisons).as_bytes())?;
    let pipe = out.join(PIPELINE_FILE);
    write_atomic(&pipe, pipeline(&t).as_bytes())?;
    let cats: Vec<StageCategories> = comparisons
        .iter()
        .map(|c| StageCategories {
            stage: c.stage.map_or("all".to_string(), |s| s.to_string()),
            target: c.a_framework.to_string(),
            leader: c.b_framework.to_string(),
            categories: c
                .by_category
                .iter()
                .map(|s| (s.name.clone(), s.a_us, s.b_us))
                .collect(),
        })
        .collect();
    write_atomic(
        &out.join(CATEGORIES_FILE),
        serde_json::to_string_pretty(&cats)?.as_bytes(),
    )?;
    Ok((root, pipe))
}

/// Each stage's trace of one side, analyzed (the stage it was captured for only).
fn analyses(side: &Side, layers: Option<usize>) -> anyhow::Result<Vec<Analysis>> {
    let mut out = Vec::new();
    for stage in [trace::Stage::Prefill, trace::Stage::Decode] {
        let d = side.profiles.join(stage.to_string());
        if !d.is_dir() {
            continue;
        }
        let Some(first) = trace::input::traces(&d)?.into_iter().next() else {
            continue;
        };
        let opts = Options {
            framework: Some(side.framework),
            stages: Stages::Only(stage),
            layers,
            anchor: None,
        };
        out.push(trace::analyze(&first.path, &opts)?);
    }
    Ok(out)
}

/// The comparison, led by where the difference is.
fn root_cause(cs: &[compare::Comparison]) -> String {
    let mut s = String::from("# Root cause: target (A) against the leader (B)\n\n");
    for c in cs {
        let stage = c.stage.map_or("all".to_string(), |x| x.to_string());
        let _ = writeln!(
            s,
            "- {stage}: A {} vs B {} of GPU kernel time ({}).",
            render::time(c.a_us),
            render::time(c.b_us),
            lead(c)
        );
    }
    s.push('\n');
    s.push_str(&compare::markdown(cs));
    s
}

/// The categories where A spends most beyond B.
fn lead(c: &compare::Comparison) -> String {
    let mut worse: Vec<&compare::Side> = c.by_category.iter().filter(|x| x.a_us > x.b_us).collect();
    worse.sort_by(|x, y| (y.a_us - y.b_us).total_cmp(&(x.a_us - x.b_us)));
    if worse.is_empty() {
        return "A spends no more than B in any category".into();
    }
    let parts: Vec<String> = worse
        .iter()
        .take(3)
        .map(|x| format!("{} +{}", x.name, render::time(x.a_us - x.b_us)))
        .collect();
    format!("A spends more in {}", parts.join(", "))
}

/// The target's pipeline per stage.
fn pipeline(t: &[Analysis]) -> String {
    let mut s = String::from("# Layer pipeline of the target\n\n");
    for a in t {
        s.push_str(&render::markdown(a).replacen("# Trace analysis", "## Trace", 1));
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(dir: &Path, name: &str, fw: Framework, trace: &str, stage: &str) -> Side {
        let p = dir.join("profiles").join(name);
        std::fs::create_dir_all(p.join(stage)).unwrap();
        std::fs::copy(
            crate::trace::tests_fixture(trace),
            p.join(stage).join("x.trace.json.gz"),
        )
        .unwrap();
        Side {
            framework: fw,
            profiles: p,
        }
    }

    #[test]
    fn the_target_is_set_beside_the_leader_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        let t = side(
            dir.path(),
            "vllm",
            Framework::Vllm,
            "vllm-mi300-gptoss-decode-cudagraph.json.gz",
            "decode",
        );
        let l = side(
            dir.path(),
            "sglang",
            Framework::Sglang,
            "sglang-mi300x-qwen3-8b-decode.json.gz",
            "decode",
        );
        let (root, pipe) = write(dir.path(), &t, &l, None).unwrap();
        let r = std::fs::read_to_string(root).unwrap();
        assert!(
            r.contains("- decode: A 10.72 ms vs B 9.78 ms of GPU kernel time (A spends more in gemm +2.62 ms"),
            "{r}"
        );
        assert!(r.contains("### By matched kernel"), "{r}");
        let p = std::fs::read_to_string(pipe).unwrap();
        assert!(
            p.contains("### Layer pipeline") && p.contains("24 layers per pass"),
            "{p}"
        );
        // No profile on the target's side: an error naming it.
        let empty = Side {
            framework: Framework::Vllm,
            profiles: dir.path().join("profiles/none"),
        };
        let e = write(dir.path(), &empty, &l, None).unwrap_err().to_string();
        assert!(e.contains("no profile to analyze"), "{e}");
    }
}
