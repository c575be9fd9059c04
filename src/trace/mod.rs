//! `forge trace analyze`: where the GPU time goes in a torch-profiler trace, as the
//! campaign contract's analysis reports it (`../shared/notes/sota-loop.md`, "Trace
//! analysis"). [`read`] streams the trace event by event (never held whole) into the
//! compact records of [`collect`]; [`input`] picks the traces of a profile directory.
//!
//! Per stage ([`stage`]: prefill, decode, mixed): the kernel table ([`kernels`], with launch
//! sites from [`sites`]), the overlap-opportunity table ([`overlap`]), the fuse-opportunity
//! table ([`fuse`]) and the layer pipeline ([`pipeline`]); [`compare`] sets two analyses
//! side by side and [`render`] prints them.

pub mod collect;
pub mod compare;
pub mod fuse;
pub mod input;
pub mod kernels;
pub mod overlap;
pub mod pipeline;
pub mod read;
pub mod render;
pub mod sites;
pub mod stage;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use read::TraceError;
pub use render::markdown;
pub use stage::Stage;

/// The serving framework a trace comes from (where fused implementations are looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    /// Read it from the trace's Python frames and step annotations.
    Auto,
    /// vLLM.
    Vllm,
    /// SGLang.
    Sglang,
    /// TensorRT-LLM.
    Trtllm,
}

/// Which stages to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stages {
    /// Each stage found, one section each.
    #[default]
    Each,
    /// One stage.
    Only(Stage),
    /// Every kernel in one section.
    All,
}

/// How to analyze.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Framework (`Auto` reads it from the trace).
    pub framework: Option<Framework>,
    /// Stages to report.
    pub stages: Stages,
    /// Layers per forward pass (`config.json`'s `num_hidden_layers`).
    pub layers: Option<usize>,
    /// Anchor kernel name substring for the layer pipeline.
    pub anchor: Option<String>,
}

/// What a trace says.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The trace.
    pub path: PathBuf,
    /// Events read.
    pub events: u64,
    /// The process analyzed (the one with the most kernel time).
    pub pid: String,
    /// The framework (given, or read from the trace; `auto` when it could not be).
    pub framework: Framework,
    /// One section per stage reported.
    pub stages: Vec<StageAnalysis>,
}

/// The tables of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageAnalysis {
    /// The stage (`None`: every kernel of the trace).
    pub stage: Option<Stage>,
    /// Kernel time, µs.
    pub kernel_us: f64,
    /// Per kernel, longest first.
    pub kernels: Vec<kernels::KernelRow>,
    /// Overlap opportunities.
    pub overlap: Vec<overlap::OverlapRow>,
    /// Fusion opportunities.
    pub fusions: Vec<fuse::FuseRow>,
    /// The layer pipeline.
    pub pipeline: Option<pipeline::Pipeline>,
    /// Why there is none.
    pub no_pipeline: Option<String>,
}

/// Analyze the trace at `path`.
pub fn analyze(path: &Path, opts: &Options) -> Result<Analysis, TraceError> {
    let mut c = collect::Collected::default();
    let events = read::for_each_event(path, |e| c.add(e))?;
    c.finish();
    let pid = c.busiest_pid().ok_or_else(|| TraceError {
        path: path.to_path_buf(),
        what: format!("no GPU kernel among its {events} events (a CPU-only trace?)"),
    })?;
    let framework = match opts.framework {
        Some(f) if f != Framework::Auto => f,
        _ => detect(&c),
    };
    let mine: Vec<collect::Kernel> = c.kernels.iter().filter(|k| k.pid == pid).copied().collect();
    let staged = stage::assign(&c, &mine, path);
    let mut sections: Vec<(Option<Stage>, Vec<collect::Kernel>)> = Vec::new();
    match opts.stages {
        Stages::All => sections.push((None, mine)),
        Stages::Only(s) => {
            let ks = pick(&mine, &staged, s);
            if ks.is_empty() {
                return Err(TraceError {
                    path: path.to_path_buf(),
                    what: format!("no {s} kernels (stages found: {})", found(&staged)),
                });
            }
            sections.push((Some(s), ks));
        }
        Stages::Each => {
            let mut kinds: Vec<Stage> = staged.clone();
            kinds.sort();
            kinds.dedup();
            for s in kinds {
                sections.push((Some(s), pick(&mine, &staged, s)));
            }
        }
    }
    let start = c.start.unwrap_or(0.0);
    let stages = sections
        .into_iter()
        .map(|(stage, ks)| stage_tables(&c, stage, &ks, framework, opts, start))
        .collect();
    Ok(Analysis {
        path: path.to_path_buf(),
        events,
        pid: c.names.get(pid).to_string(),
        framework,
        stages,
    })
}

fn pick(ks: &[collect::Kernel], staged: &[Stage], s: Stage) -> Vec<collect::Kernel> {
    ks.iter()
        .zip(staged)
        .filter(|(_, st)| **st == s)
        .map(|(k, _)| *k)
        .collect()
}

fn found(staged: &[Stage]) -> String {
    let mut v: Vec<String> = staged.iter().map(ToString::to_string).collect();
    v.sort();
    v.dedup();
    v.join(", ")
}

fn stage_tables(
    c: &collect::Collected,
    stage: Option<Stage>,
    ks: &[collect::Kernel],
    framework: Framework,
    opts: &Options,
    start: f64,
) -> StageAnalysis {
    let mut rows = kernels::table(ks.iter().map(|k| (c.names.get(k.name), k.dur)));
    let found = sites::resolve(c, ks.iter());
    for r in &mut rows {
        if let Some(site) = found.get(&r.canonical) {
            r.site_share = site.python.as_ref().map(|_| site.python_share);
            r.python_location = site.python.clone();
            r.cpu_op = site.cpu_op.clone();
        }
    }
    let (pipeline, no_pipeline) =
        match pipeline::build(c, ks, opts.layers, opts.anchor.as_deref(), start) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        };
    StageAnalysis {
        stage,
        kernel_us: rows.iter().map(|r| r.gpu_us).sum(),
        overlap: overlap::table(c, ks, &found),
        fusions: fuse::table(&rows, framework),
        kernels: rows,
        pipeline,
        no_pipeline,
    }
}

/// A bad `config.json`, with the file and the field.
#[derive(Debug, thiserror::Error)]
#[error("{}: {what}", path.display())]
pub struct ConfigError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub what: String,
}

/// The layer count of a Hugging Face `config.json`: `num_hidden_layers`, or that of its
/// `text_config` (multimodal models).
pub fn layers_in_config(path: &Path) -> Result<usize, ConfigError> {
    let err = |what: String| ConfigError {
        path: path.to_path_buf(),
        what,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        err(format!(
            "not JSON at line {} column {}: {e}",
            e.line(),
            e.column()
        ))
    })?;
    let field = v.get("num_hidden_layers").or_else(|| {
        v.get("text_config")
            .and_then(|t| t.get("num_hidden_layers"))
    });
    match field {
        Some(n) => n
            .as_u64()
            .filter(|n| *n > 0)
            .map(|n| n as usize)
            .ok_or_else(|| {
                err(format!(
                    "field `num_hidden_layers` is {n}, not a positive integer"
                ))
            }),
        None => Err(err(
            "no field `num_hidden_layers` (nor `text_config.num_hidden_layers`)".into(),
        )),
    }
}

/// A framework's word on the command line and in directory names (`vllm`, `sglang`, …).
pub fn framework_id(f: Framework) -> &'static str {
    match f {
        Framework::Auto => "auto",
        Framework::Vllm => "vllm",
        Framework::Sglang => "sglang",
        Framework::Trtllm => "trtllm",
    }
}

/// A framework's name in reports.
pub fn framework_name(f: Framework) -> &'static str {
    match f {
        Framework::Auto => "unknown",
        Framework::Vllm => "vLLM",
        Framework::Sglang => "SGLang",
        Framework::Trtllm => "TensorRT-LLM",
    }
}

/// The framework whose paths and step names dominate the trace.
fn detect(c: &collect::Collected) -> Framework {
    let [v, s, t] = c.hints;
    if v == 0 && s == 0 && t == 0 {
        Framework::Auto
    } else if s >= v && s >= t {
        Framework::Sglang
    } else if v >= t {
        Framework::Vllm
    } else {
        Framework::Trtllm
    }
}

/// Rows under this share of GPU time are summarized in one line, not listed.
pub const HIDE_BELOW: f64 = 0.01;

/// A shared trace under `tests/fixtures/traces/` (unit tests).
#[cfg(test)]
pub(crate) fn tests_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/traces")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vllm_b200_prefill_trace_has_the_reference_all_reduce_row() {
        let a = analyze(
            &tests_fixture("vllm-b200-gptoss-prefill.json.gz"),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(a.framework, Framework::Vllm);
        assert_eq!(a.stages.len(), 1);
        assert_eq!(a.stages[0].stage, Some(Stage::Prefill));
        let r = a.stages[0]
            .kernels
            .iter()
            .find(|r| r.kernel == "multimem_all_reduce_kernel")
            .unwrap();
        assert_eq!(r.category, "communication");
        assert_eq!(format!("{:.2} ms", r.gpu_us / 1000.0), "2.12 ms");
        assert_eq!(format!("{:.1}%", r.share * 100.0), "18.2%");
        assert_eq!(r.launches, 73);
        let md = markdown(&a);
        assert!(
            md.contains("| multimem_all_reduce_kernel | communication | 2.12 ms | 18.2% | 73 | vllm/distributed/device_communicators/symm_mem.py:127 all_reduce (100%) |"),
            "{md}"
        );
    }

    #[test]
    fn every_shared_trace_has_kernels_and_shares_that_add_up() {
        for t in [
            "vllm-b200-gptoss-prefill.json.gz",
            "vllm-mi300-gptoss-decode-cudagraph.json.gz",
            "sglang-mi300x-qwen3-8b-decode.json.gz",
            "hta-triton-example.json.gz",
        ] {
            let a = analyze(&tests_fixture(t), &Options::default()).unwrap();
            for s in &a.stages {
                assert!(!s.kernels.is_empty(), "{t}");
                let share: f64 = s.kernels.iter().map(|r| r.share).sum();
                assert!((share - 1.0).abs() < 1e-9, "{t}: {share}");
                assert!(s.kernels.windows(2).all(|w| w[0].gpu_us >= w[1].gpu_us));
            }
        }
    }
}
