//! The simulator's torch profiler: `/start_profile` and `/stop_profile` record the engine
//! steps the simulator runs and write them as a Chrome trace of *predicted* kernels, so
//! the capture path (and `forge trace analyze`, and Perfetto) runs end to end without a GPU.
//!
//! This module owns when a capture runs and where it goes ([`Recorder`]: enabling, the
//! step cap, file names, the atomic gzip write); [`trace`] owns what a step looks like as
//! kernels (the split of the roofline's GPU time, kernel names, CPU-side events).
//!
//! Enabling follows the real servers:
//! - vLLM: the routes exist only with `--profiler-config '{"profiler":"torch",
//!   "torch_profiler_dir":DIR}'` (`vllm/entrypoints/serve/profile/api_router.py`
//!   `attach_router`; `vllm/config/profiler.py` `ProfilerConfig` — the dir is required with
//!   `"torch"` and made absolute); otherwise 404. `POST` only, empty 200 replies. One trace
//!   per capture, named as torch's `tensorboard_trace_handler` names it with the worker
//!   name vLLM's GPU worker passes (`get_worker_rank_suffix`):
//!   `dp0_pp0_tp0_dcp0_ep0_rank0.{time_ns}.pt.trace.json.gz`. `max_iterations` (> 0) stops
//!   recording after that many steps, as `WorkerProfiler.step` does.
//! - SGLang twin: always mounted, `GET` or `POST`; the JSON body's `output_dir` (default
//!   env `SGLANG_TORCH_PROFILER_DIR`, else `/tmp`), `num_steps` (stop and write after that
//!   many steps) and `profile_by_stage` (one file per stage) are honoured
//!   (`sglang/srt/managers/scheduler_profiler_mixin.py` `init_profile`/`stop_profile`): the
//!   file is `{profile_id}-TP-0[-EXTEND|-DECODE].trace.json.gz`, `profile_id` being
//!   `str(time.time())`. A second start while one runs, or a stop with none running, is
//!   refused with SGLang's message.
//! - TensorRT-LLM twin: no profiling route (404), as `trtllm-serve` has none.
//!
//! Bounded: at most [`MAX_STEPS`] steps are kept per capture (the first ones after the
//! start; later steps are counted, not drawn), so a forgotten capture cannot grow without
//! limit. Times are the simulator's clock (predicted µs), offset to the wall clock of the
//! start.

pub mod trace;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::roofline::{BatchShape, StepModel};
use crate::recipe::EngineKind;

pub use trace::{Kernel, Op, TraceModel};

/// Steps kept per capture at most.
pub const MAX_STEPS: usize = 64;

/// Why a profiler request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A capture is already running (SGLang's message).
    #[error("Profiling is already in progress. Call /stop_profile first.")]
    AlreadyRunning,
    /// No capture is running (SGLang's message).
    #[error("Profiling is not in progress. Call /start_profile first.")]
    NotRunning,
    /// The trace could not be written.
    #[error("could not write the trace {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The `--profiler-config` value is not usable.
    #[error("{0}")]
    Config(String),
}

/// vLLM's `--profiler-config`, the keys the simulator reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct VllmProfilerConfig {
    /// `"torch"` or `"cuda"` (`None`: profiling off).
    #[serde(default)]
    pub profiler: Option<String>,
    /// Where torch traces go.
    #[serde(default)]
    pub torch_profiler_dir: String,
    /// Stop after this many steps (0: no limit but the simulator's cap).
    #[serde(default)]
    pub max_iterations: u32,
}

impl VllmProfilerConfig {
    /// Read and check the JSON the way `ProfilerConfig._validate_profiler_config` does.
    /// `Ok(None)` when profiling is off.
    pub fn from_json(v: &serde_json::Value) -> Result<Option<(PathBuf, u32)>, ProfileError> {
        let c: VllmProfilerConfig = serde_json::from_value(v.clone())
            .map_err(|e| ProfileError::Config(format!("Invalid profiler config: {e}")))?;
        match c.profiler.as_deref() {
            None if !c.torch_profiler_dir.is_empty() => Err(ProfileError::Config(
                "ValueError: torch_profiler_dir is only applicable when profiler is set to 'torch'"
                    .into(),
            )),
            None => Ok(None),
            Some("torch") if c.torch_profiler_dir.is_empty() => Err(ProfileError::Config(
                "ValueError: torch_profiler_dir must be set when profiler is 'torch'".into(),
            )),
            Some("torch") => {
                let dir = PathBuf::from(&c.torch_profiler_dir);
                let dir = std::path::absolute(&dir).unwrap_or(dir);
                Ok(Some((dir, c.max_iterations)))
            }
            // The CUDA profiler (nsys ranges) writes no torch trace: nothing to simulate.
            Some(_) => Ok(None),
        }
    }
}

/// How a server enables profiling.
#[derive(Debug, Clone, PartialEq)]
pub enum Enabling {
    /// vLLM with `--profiler-config`: the trace directory and `max_iterations`.
    Vllm {
        /// `torch_profiler_dir`.
        dir: PathBuf,
        /// `max_iterations` (0: none).
        max_iterations: u32,
    },
    /// SGLang: per request.
    Sglang,
}

/// `/start_profile`'s body (SGLang's `ProfileReqInput`, the fields honoured).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StartRequest {
    /// Where to write (SGLang's default: `SGLANG_TORCH_PROFILER_DIR` or `/tmp`).
    #[serde(default)]
    pub output_dir: Option<String>,
    /// Stop after this many steps.
    #[serde(default)]
    pub num_steps: Option<u32>,
    /// One trace per stage (EXTEND, DECODE).
    #[serde(default)]
    pub profile_by_stage: bool,
}

/// One recorded engine step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepRecord {
    /// Simulated start, seconds.
    pub start_s: f64,
    /// What it computed.
    pub shape: BatchShape,
    /// The factor the engine applied to the roofline's times.
    pub factor: f64,
}

impl StepRecord {
    /// Prefill (extend) step: some request is not decoding.
    pub fn is_extend(&self) -> bool {
        self.shape.decode_seqs < self.shape.seqs
    }
}

/// A running capture.
#[derive(Debug)]
struct Capture {
    dir: PathBuf,
    /// Unix seconds at the start (SGLang's profile id).
    started_unix: f64,
    /// Simulated time at the start, seconds.
    sim_start: Option<f64>,
    limit: Option<u32>,
    by_stage: bool,
    /// With `profile_by_stage`: the stage of the trace being recorded (true: extend).
    stage: Option<bool>,
    /// Stages whose trace is written.
    done: Vec<bool>,
    seen: u32,
    steps: Vec<StepRecord>,
}

/// A trace written.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The file.
    pub path: PathBuf,
    /// Steps drawn.
    pub steps: usize,
    /// Events in it.
    pub events: usize,
}

/// The engine thread's profiler state.
#[derive(Debug)]
pub struct Recorder {
    framework: EngineKind,
    capture: Option<Capture>,
}

impl Recorder {
    /// An idle recorder for `framework`.
    pub fn new(framework: EngineKind) -> Recorder {
        Recorder {
            framework,
            capture: None,
        }
    }

    /// True while a capture runs.
    pub fn is_recording(&self) -> bool {
        self.capture.is_some()
    }

    /// Start a capture. vLLM ignores a start while one runs (`WorkerProfiler.start`);
    /// SGLang refuses it.
    pub fn start(&mut self, how: &Enabling, req: &StartRequest) -> Result<(), ProfileError> {
        if self.capture.is_some() {
            return match how {
                Enabling::Vllm { .. } => Ok(()),
                Enabling::Sglang => Err(ProfileError::AlreadyRunning),
            };
        }
        let (dir, limit, by_stage) = match how {
            Enabling::Vllm {
                dir,
                max_iterations,
            } => (
                dir.clone(),
                (*max_iterations > 0).then_some(*max_iterations),
                false,
            ),
            Enabling::Sglang => {
                let dir = req.output_dir.clone().unwrap_or_else(|| {
                    std::env::var("SGLANG_TORCH_PROFILER_DIR").unwrap_or_else(|_| "/tmp".into())
                });
                (
                    PathBuf::from(dir),
                    req.num_steps.filter(|n| *n > 0),
                    req.profile_by_stage,
                )
            }
        };
        self.capture = Some(Capture {
            dir,
            started_unix: unix_now(),
            sim_start: None,
            limit,
            by_stage,
            stage: None,
            done: Vec::new(),
            seen: 0,
            steps: Vec::new(),
        });
        Ok(())
    }

    /// Note one engine step; returns the traces written when the capture ended by itself
    /// (its step limit, or a stage change with `profile_by_stage`).
    pub fn record(
        &mut self,
        step: StepRecord,
        model: &StepModel,
        tm: &TraceModel,
    ) -> Vec<Result<Written, ProfileError>> {
        let mut out = Vec::new();
        let extend = step.is_extend();
        let Some(c) = self.capture.as_mut() else {
            return out;
        };
        if c.by_stage {
            // SGLang (`_profile_batch_predicate`): a stage's trace starts at its first
            // batch; the first decode batch ends the extend trace; each stage stops after
            // `num_steps` batches of its own; other batches in between are still recorded.
            let done = |c: &Capture, e: bool| c.done.contains(&e);
            match c.stage {
                None if done(c, extend) => return out,
                None => c.stage = Some(extend),
                Some(true) if !extend && !done(c, false) => {
                    out.push(self.finish(model, tm));
                    let Some(c) = self.capture.as_mut() else {
                        return out;
                    };
                    c.done.push(true);
                    c.stage = Some(false);
                    c.seen = 0;
                }
                Some(_) => {}
            }
        }
        let Some(c) = self.capture.as_mut() else {
            return out;
        };
        c.sim_start.get_or_insert(step.start_s);
        if !c.by_stage || c.stage == Some(extend) {
            c.seen += 1;
        }
        if c.steps.len() < MAX_STEPS {
            c.steps.push(step);
        }
        if c.limit.is_some_and(|n| c.seen >= n) {
            out.push(self.finish(model, tm));
            if let Some(c) = self.capture.as_mut() {
                if let Some(stage) = c.stage.take() {
                    c.done.push(stage);
                }
                c.seen = 0;
                if !c.by_stage || c.done.len() >= 2 {
                    self.capture = None;
                }
            }
        }
        out
    }

    /// Write what was captured so far and keep the capture's settings (stage changes).
    fn finish(&mut self, model: &StepModel, tm: &TraceModel) -> Result<Written, ProfileError> {
        let Some(c) = self.capture.as_mut() else {
            return Err(ProfileError::NotRunning);
        };
        let steps = std::mem::take(&mut c.steps);
        let stage = c.by_stage.then_some(c.stage).flatten();
        let name = file_name(self.framework, c.started_unix, stage);
        let path = c.dir.join(name);
        let base_us = c.started_unix * 1e6;
        let sim0 = c.sim_start.unwrap_or(0.0);
        write_trace(&path, &steps, model, tm, base_us, sim0)
    }

    /// `/stop_profile`: write the trace (vLLM writes one even with no step recorded).
    pub fn stop(
        &mut self,
        model: &StepModel,
        tm: &TraceModel,
    ) -> Result<Option<Written>, ProfileError> {
        let Some(c) = self.capture.as_ref() else {
            return match self.framework {
                EngineKind::Sglang => Err(ProfileError::NotRunning),
                _ => Ok(None),
            };
        };
        // A by-stage capture that already wrote its stages has nothing left to write.
        let nothing_left = c.by_stage && c.steps.is_empty();
        let written = if nothing_left {
            None
        } else {
            Some(self.finish(model, tm)?)
        };
        self.capture = None;
        Ok(written)
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The file name the real framework gives a capture started at `unix` seconds; `stage`
/// (SGLang by stage): `Some(true)` extend, `Some(false)` decode.
pub fn file_name(framework: EngineKind, unix: f64, stage: Option<bool>) -> String {
    match framework {
        EngineKind::Sglang => {
            let suffix = match stage {
                Some(true) => "-EXTEND",
                Some(false) => "-DECODE",
                None => "",
            };
            format!("{}-TP-0{suffix}.trace.json.gz", py_float(unix))
        }
        _ => {
            let ns = (unix * 1e9) as u128;
            format!("dp0_pp0_tp0_dcp0_ep0_rank0.{ns}.pt.trace.json.gz")
        }
    }
}

/// Python's `str(float)` for a Unix time (`1733425000.123456`).
fn py_float(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0');
    if s.ends_with('.') {
        format!("{s}0")
    } else {
        s.to_string()
    }
}

/// Render `steps` and write them to `path` atomically (a temporary file beside it, then a
/// rename), gzip-compressed.
pub fn write_trace(
    path: &Path,
    steps: &[StepRecord],
    model: &StepModel,
    tm: &TraceModel,
    base_us: f64,
    sim0: f64,
) -> Result<Written, ProfileError> {
    let doc = trace::render(steps, model, tm, base_us, sim0);
    let events = doc
        .get("traceEvents")
        .and_then(|e| e.as_array())
        .map_or(0, Vec::len);
    let err = |source| ProfileError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::fast(),
        );
        serde_json::to_writer(&mut gz, &doc)?;
        gz.finish()?.flush()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })?;
    Ok(Written {
        path: path.to_path_buf(),
        steps: steps.len(),
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_follow_the_frameworks() {
        let v = file_name(EngineKind::Vllm, 1_733_425_000.5, None);
        assert!(
            v.starts_with("dp0_pp0_tp0_dcp0_ep0_rank0.1733425000"),
            "{v}"
        );
        assert!(v.ends_with(".pt.trace.json.gz"));
        assert_eq!(
            file_name(EngineKind::Sglang, 1_733_425_000.25, None),
            "1733425000.25-TP-0.trace.json.gz"
        );
        assert_eq!(
            file_name(EngineKind::Sglang, 1_733_425_000.0, Some(false)),
            "1733425000.0-TP-0-DECODE.trace.json.gz"
        );
    }

    fn rec(start_s: f64, shape: BatchShape) -> StepRecord {
        StepRecord {
            start_s,
            shape,
            factor: 1.0,
        }
    }

    #[test]
    fn sglang_by_stage_writes_one_trace_per_stage_after_num_steps() {
        use trace::tests::{decode, prefill, setup};
        let (tm, sm, _) = setup("Qwen/Qwen3-0.6B", 1, false);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Recorder::new(EngineKind::Sglang);
        let req = StartRequest {
            output_dir: Some(dir.path().display().to_string()),
            num_steps: Some(2),
            profile_by_stage: true,
        };
        r.start(&Enabling::Sglang, &req).expect("start");
        assert!(matches!(
            r.start(&Enabling::Sglang, &req),
            Err(ProfileError::AlreadyRunning)
        ));
        let mut written = Vec::new();
        let steps = [prefill(64), decode(1), decode(1), decode(1), decode(1)];
        for (i, b) in steps.into_iter().enumerate() {
            written.extend(r.record(rec(i as f64 * 0.01, b), &sm, &tm));
        }
        let names: Vec<String> = written
            .into_iter()
            .map(|w| w.expect("written").path.display().to_string())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names[0].ends_with("-TP-0-EXTEND.trace.json.gz"),
            "{names:?}"
        );
        assert!(
            names[1].ends_with("-TP-0-DECODE.trace.json.gz"),
            "{names:?}"
        );
        assert!(!r.is_recording());
        assert!(matches!(r.stop(&sm, &tm), Err(ProfileError::NotRunning)));
    }

    #[test]
    fn vllm_caps_the_steps_and_stops_at_max_iterations() {
        use trace::tests::{decode, setup};
        let (tm, sm, _) = setup("Qwen/Qwen3-0.6B", 1, false);
        let dir = tempfile::tempdir().expect("tempdir");
        let how = Enabling::Vllm {
            dir: dir.path().to_path_buf(),
            max_iterations: 0,
        };
        let mut r = Recorder::new(EngineKind::Vllm);
        r.start(&how, &StartRequest::default()).expect("start");
        for i in 0..(MAX_STEPS + 10) {
            assert!(
                r.record(rec(i as f64 * 0.01, decode(4)), &sm, &tm)
                    .is_empty()
            );
        }
        let w = r.stop(&sm, &tm).expect("stop").expect("a trace");
        assert_eq!(w.steps, MAX_STEPS);
        // A stop with nothing running is ignored, as vLLM's WorkerProfiler.stop does.
        assert!(matches!(r.stop(&sm, &tm), Ok(None)));
        let how = Enabling::Vllm {
            dir: dir.path().to_path_buf(),
            max_iterations: 3,
        };
        r.start(&how, &StartRequest::default()).expect("start");
        let mut n = 0;
        for i in 0..5 {
            n += r.record(rec(f64::from(i), decode(4)), &sm, &tm).len();
        }
        assert_eq!(n, 1);
        assert!(!r.is_recording());
    }

    #[test]
    fn vllm_profiler_config_is_checked_like_vllms() {
        let ok = serde_json::json!({"profiler": "torch", "torch_profiler_dir": "/x/y"});
        assert_eq!(
            VllmProfilerConfig::from_json(&ok).ok().flatten(),
            Some((PathBuf::from("/x/y"), 0))
        );
        let no_dir = serde_json::json!({"profiler": "torch"});
        assert!(VllmProfilerConfig::from_json(&no_dir).is_err());
        let off = serde_json::json!({});
        assert_eq!(VllmProfilerConfig::from_json(&off).ok().flatten(), None);
    }
}
