//! `forge profile`: torch-profiler traces of a serving engine at a scenario's lengths, and
//! their analysis. [`capture`] drives one capture against a running server (start the
//! profiler, send a batch of one shape, stop it, collect the traces it wrote); this module
//! runs the prefill and the decode capture, files the traces under `profiles/`, analyzes
//! each stage with [`crate::trace`] and keeps a manifest; [`campaign`] starts the
//! framework's best deployment of a `forge compare` campaign with its profiler on.
//!
//! Layout of an output directory (`CAMPAIGN/profiles/FRAMEWORK/`, or `--out`):
//! `prefill/` and `decode/` (the traces, `analysis.md`, `analysis.json`), `profile.json`
//! (what was captured, how, and what failed), `raw/` (where a server forge started writes
//! before the traces are filed), `server.log`.

pub mod campaign;
pub mod capture;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::store::atomic::write_atomic;
use crate::trace::{self, Framework, Options, Stage, Stages};
use capture::{Shape, Target};

/// `profile.json`.
pub const MANIFEST_FILE: &str = "profile.json";

/// What to capture.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The framework (where fused implementations are looked up).
    pub framework: Framework,
    /// The scenario's input length (the prefill capture's prompt).
    pub input_len: u32,
    /// The scenario's output length (the decode capture's output).
    pub output_len: u32,
    /// Requests per capture, sent at once.
    pub batch: usize,
    /// How long to wait for the traces after `/stop_profile`.
    pub wait: Duration,
    /// Layers per forward pass (`config.json`), when known.
    pub layers: Option<usize>,
    /// Where they came from (manifest).
    pub source: String,
}

/// One stage's capture, as the manifest records it.
#[derive(Debug, Clone, Serialize)]
pub struct StageRecord {
    /// The stage.
    pub stage: Stage,
    /// Prompt tokens per request.
    pub input_len: u32,
    /// Output tokens per request.
    pub output_len: u32,
    /// Requests.
    pub batch: usize,
    /// The traces filed (relative to the output directory).
    pub traces: Vec<PathBuf>,
    /// The analysis (relative), when there is one.
    pub analysis: Option<PathBuf>,
    /// Why the capture or its analysis failed.
    pub error: Option<String>,
}

/// `profile.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The server profiled.
    pub source: String,
    /// The framework.
    pub framework: Framework,
    /// Each stage.
    pub stages: Vec<StageRecord>,
}

/// Capture both stages from `t` into `out`, analyze them, write the manifest.
pub async fn run(t: &Target, out: &Path, plan: &Plan) -> anyhow::Result<Manifest> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()?;
    let mut manifest = Manifest {
        source: plan.source.clone(),
        framework: plan.framework,
        stages: Vec::new(),
    };
    for stage in [Stage::Prefill, Stage::Decode] {
        let shape = Shape::at(stage, plan.input_len, plan.output_len, plan.batch);
        let rec = one(&client, t, out, plan, shape).await;
        if let Some(e) = &rec.error {
            eprintln!("forge profile: {stage}: {e}");
        }
        manifest.stages.push(rec);
        write_atomic(
            &out.join(MANIFEST_FILE),
            serde_json::to_string_pretty(&manifest)?.as_bytes(),
        )?;
    }
    Ok(manifest)
}

async fn one(
    client: &reqwest::Client,
    t: &Target,
    out: &Path,
    plan: &Plan,
    shape: Shape,
) -> StageRecord {
    let mut rec = StageRecord {
        stage: shape.stage,
        input_len: shape.input_len,
        output_len: shape.output_len,
        batch: shape.batch,
        traces: Vec::new(),
        analysis: None,
        error: None,
    };
    let stage_dir = out.join(shape.stage.to_string());
    let filed = match capture::capture(client, t, shape, plan.wait).await {
        Ok(files) => file(&files, &stage_dir),
        Err(e) => Err(anyhow::Error::from(e)),
    };
    let filed = match filed {
        Ok(f) => f,
        Err(e) => {
            rec.error = Some(format!("{e:#}"));
            return rec;
        }
    };
    rec.traces = filed
        .iter()
        .map(|p| p.strip_prefix(out).unwrap_or(p).to_path_buf())
        .collect();
    match analyze(&stage_dir, shape.stage, plan) {
        Ok(p) => rec.analysis = Some(p.strip_prefix(out).unwrap_or(&p).to_path_buf()),
        Err(e) => rec.error = Some(format!("analysis: {e:#}")),
    }
    rec
}

/// Move (or, across file systems, copy) the server's traces into `dir`.
fn file(files: &[PathBuf], dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .ok_or_else(|| anyhow::anyhow!("{}: not a file", f.display()))?;
        let dst = dir.join(name);
        if std::fs::rename(f, &dst).is_err() {
            let tmp = dir.join(format!(".{}.part", name.to_string_lossy()));
            std::fs::copy(f, &tmp)?;
            std::fs::rename(&tmp, &dst)?;
        }
        out.push(dst);
    }
    Ok(out)
}

/// Analyze the stage's trace (lowest rank, newest) into `analysis.md` and `analysis.json`.
fn analyze(stage_dir: &Path, stage: Stage, plan: &Plan) -> anyhow::Result<PathBuf> {
    let picked = trace::input::traces(stage_dir)?;
    let first = picked
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no trace", stage_dir.display()))?;
    // The capture's own stage when the trace has it (a decode capture also holds the
    // prefill of its one-token prompts), else every stage found.
    let opts = |stages| Options {
        framework: Some(plan.framework),
        stages,
        layers: plan.layers,
        anchor: None,
    };
    let a = trace::analyze(&first.path, &opts(Stages::Only(stage)))
        .or_else(|_| trace::analyze(&first.path, &opts(Stages::Each)))?;
    let md = stage_dir.join("analysis.md");
    write_atomic(&md, trace::markdown(&a).as_bytes())?;
    write_atomic(
        &stage_dir.join("analysis.json"),
        serde_json::to_string_pretty(&a)?.as_bytes(),
    )?;
    Ok(md)
}

/// The human summary of a manifest.
pub fn summary(m: &Manifest, out: &Path) -> String {
    let mut s = format!("forge profile: {} → {}\n", m.source, out.display());
    for r in &m.stages {
        let what = match (&r.analysis, &r.error) {
            (Some(a), None) => format!(
                "{} trace(s); analysis {}",
                r.traces.len(),
                out.join(a).display()
            ),
            (_, Some(e)) => format!("failed: {e}"),
            (None, None) => "no trace".to_string(),
        };
        s.push_str(&format!(
            "  {:<7} {:>6} → {:<6} × {:<3} {what}\n",
            r.stage.to_string(),
            r.input_len,
            r.output_len,
            r.batch
        ));
    }
    s
}
