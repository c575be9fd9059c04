//! Layer 2 on a GPU engine when the model has no pre-quantized checkpoint: forge calibrates
//! one itself with llm-compressor, on prompts sampled from the user's own workload.
//!
//! At start ([`plan`]) each scheme the GPU runs natively (AWQ W4A16, GPTQ W4A16, W8A8
//! SmoothQuant+GPTQ, FP8 dynamic) becomes a planned checkpoint directory under the store,
//! `calibrated/KEY/NAME-SUFFIX`, keyed by (model revision, recipe, calibration sample), and
//! a value of `quant.checkpoint` — so the agent predicts it by its name's scheme before
//! anything is spent. Before a recipe naming one boots ([`Calibrations`], a
//! [`Prepare`]), forge writes the llm-compressor recipe, the prompts and a short driver
//! beside it and runs `PYTHON calibrate.py …` in the engine's own Python environment
//! (argv only; its process group in the run's `engines.pids`; `HF_TOKEN` stays in the
//! environment). The checkpoint appears by an atomic rename only once its `config.json`
//! carries a `quantization_config`; later runs reuse it. A failed calibration is the
//! recipe's `build_failed`, its summary naming the cause read from the log (out of GPU
//! memory, a missing package, an architecture llm-compressor or Transformers does not
//! know) with the log's own lines as hints, and the run goes on.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::measure::Prepare;
use crate::build::run::{Ended, Step};
use crate::engine::failure::{Failure, collect_hints};
use crate::engine::gates::{self, Scheme};
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Recipe};
use crate::record::settings::{CalibrationSettings, Planned};
use crate::workload::Workload;

/// Longest one calibration may run.
const CALIBRATION_TIMEOUT: Duration = Duration::from_secs(6 * 3600);
/// Longest calibration sample, in tokens.
const MAX_SEQ_LEN: u64 = 2048;

/// A calibration scheme: its llm-compressor recipe and the name suffix of its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CalScheme {
    /// forge's name (`awq-w4a16`).
    pub name: &'static str,
    /// What the hardware gates call it.
    pub gate: Scheme,
    /// Appended to the model's name (a suffix the simulator's catalogue reads).
    pub suffix: &'static str,
    /// The llm-compressor recipe (YAML).
    pub recipe: &'static str,
}

/// The schemes, in the order they are offered. Modifiers and schemes as llm-compressor's
/// own examples write them (`AWQModifier`, `GPTQModifier`, `SmoothQuantModifier`,
/// `QuantizationModifier`; `W4A16_ASYM`, `W4A16`, `W8A8`, `FP8_DYNAMIC`).
pub const SCHEMES: &[CalScheme] = &[
    CalScheme {
        name: "awq-w4a16",
        gate: Scheme::Int4W4A16,
        suffix: "-AWQ-W4A16",
        recipe: "default_stage:\n  default_modifiers:\n    AWQModifier:\n      targets: [Linear]\n      scheme: W4A16_ASYM\n      ignore: [lm_head]\n",
    },
    CalScheme {
        name: "gptq-w4a16",
        gate: Scheme::Int4W4A16,
        suffix: "-GPTQ-W4A16",
        recipe: "default_stage:\n  default_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W4A16\n      ignore: [lm_head]\n",
    },
    CalScheme {
        name: "w8a8-int8",
        gate: Scheme::Int8W8A8,
        suffix: "-quantized.w8a8",
        recipe: "default_stage:\n  default_modifiers:\n    SmoothQuantModifier:\n      smoothing_strength: 0.8\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W8A8\n      ignore: [lm_head]\n",
    },
    CalScheme {
        name: "fp8-dynamic",
        gate: Scheme::Fp8W8A8,
        suffix: "-FP8-dynamic",
        recipe: "default_stage:\n  default_modifiers:\n    QuantizationModifier:\n      targets: [Linear]\n      scheme: FP8_DYNAMIC\n      ignore: [lm_head]\n",
    },
];

/// The driver forge runs with the engine's Python: llm-compressor's `oneshot` on the
/// prompts, saved compressed (compressed-tensors, what vLLM and SGLang load).
const DRIVER: &str = r#""""forge: calibrate a model with an llm-compressor recipe on prompts from the workload."""
import argparse
import json

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--recipe", required=True)
p.add_argument("--prompts", required=True)
p.add_argument("--output", required=True)
p.add_argument("--max-seq-length", type=int, default=2048)
a = p.parse_args()

from datasets import Dataset
from llmcompressor import oneshot
from transformers import AutoModelForCausalLM, AutoTokenizer

tok = AutoTokenizer.from_pretrained(a.model)
with open(a.prompts) as f:
    texts = [json.loads(line)["text"] for line in f if line.strip()]
ds = Dataset.from_dict({"text": texts}).map(
    lambda x: tok(x["text"], truncation=True, max_length=a.max_seq_length, add_special_tokens=False),
    remove_columns=["text"],
)
model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype="auto", device_map="auto")
oneshot(model=model, dataset=ds, recipe=a.recipe, max_seq_length=a.max_seq_length,
        num_calibration_samples=len(texts))
model.save_pretrained(a.output, save_compressed=True)
tok.save_pretrained(a.output)
print("forge: calibrated checkpoint saved to", a.output)
"#;

/// The schemes `engine` runs natively on `gpu` (all of them when the GPU is unknown), each
/// with its planned directory under `store`; the notes to say about the others.
pub fn plan(
    model: &str,
    engine: EngineKind,
    gpu: Option<&GpuSpec>,
    store: &Path,
    w: &Workload,
    prompts: usize,
) -> (Vec<Planned>, Vec<String>) {
    let sample = sample_hash(w, prompts);
    let revision = revision_of(model);
    let name = model
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(model);
    let mut planned = Vec::new();
    let mut notes = Vec::new();
    for s in SCHEMES {
        let gate = gpu.map_or(gates::Gate::Native, |g| gates::check(engine, s.gate, g));
        if gate != gates::Gate::Native {
            let (gates::Gate::Fallback(why) | gates::Gate::Refused(why)) = gate else {
                continue;
            };
            notes.push(format!("not calibrating {}: {why}", s.name));
            continue;
        }
        let key_text = format!("{model}\n{revision}\n{}\n{sample}", s.recipe);
        let key = &crate::text::content_hash(key_text.as_bytes())[..16];
        planned.push(Planned {
            scheme: s.name.to_string(),
            dir: store
                .join("calibrated")
                .join(key)
                .join(format!("{name}{}", s.suffix)),
        });
    }
    (planned, notes)
}

/// The model's revision for the cache key: the Hugging Face cache's `refs/main` of a repo
/// id, the hash of a local directory's `config.json`; `unresolved` when neither is there.
fn revision_of(model: &str) -> String {
    let p = Path::new(model);
    if p.is_dir() {
        let cfg = std::fs::read(p.join("config.json")).unwrap_or_default();
        return crate::text::content_hash(&cfg)[..16].to_string();
    }
    let cache = crate::sim::hf_cache::hub_dir();
    let refs = cache.map(|c| {
        c.join(format!("models--{}", model.replace('/', "--")))
            .join("refs/main")
    });
    refs.and_then(|r| std::fs::read_to_string(r).ok())
        .map_or("unresolved".to_string(), |s| s.trim().to_string())
}

/// The calibration prompts as JSON lines (`{"text": …}`), stratified by length.
fn prompts_jsonl(w: &Workload, n: usize) -> String {
    let (text, _) = super::quantize::calibration(w, n);
    text.split("\n\n")
        .map(|t| serde_json::json!({ "text": t }).to_string() + "\n")
        .collect()
}

fn sample_hash(w: &Workload, n: usize) -> String {
    crate::text::content_hash(prompts_jsonl(w, n).as_bytes())[..12].to_string()
}

/// The run's calibrations, made before a recipe that names one boots.
pub struct Calibrations {
    s: CalibrationSettings,
    model: String,
    prompts: String,
    logs: PathBuf,
    pids: PathBuf,
}

impl Calibrations {
    /// The calibrations of a run in `run_dir`, if it plans any.
    pub fn open(
        s: Option<&CalibrationSettings>,
        model: &str,
        w: &Workload,
        run_dir: &Path,
    ) -> Option<Self> {
        let s = s.filter(|s| !s.planned.is_empty())?;
        Some(Calibrations {
            prompts: prompts_jsonl(w, s.prompts),
            s: s.clone(),
            model: model.to_string(),
            logs: run_dir.join(crate::store::LOGS_DIR),
            pids: run_dir.join(crate::store::PIDS_FILE),
        })
    }

    /// Make `planned` unless its checkpoint is there.
    fn make(&self, planned: &Planned) -> Result<(), Failure> {
        if planned.dir.join("config.json").is_file() {
            eprintln!(
                "forge: reusing the calibrated {} checkpoint ({})",
                planned.scheme,
                planned.dir.display()
            );
            return Ok(());
        }
        let scheme = SCHEMES
            .iter()
            .find(|s| s.name == planned.scheme)
            .ok_or_else(|| machine(&format!("unknown scheme {}", planned.scheme)))?;
        let key_dir = planned.dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(key_dir).map_err(|e| machine(&e))?;
        std::fs::create_dir_all(&self.logs).map_err(|e| machine(&e))?;
        let files = [
            ("recipe.yaml", scheme.recipe),
            ("prompts.jsonl", self.prompts.as_str()),
            ("calibrate.py", DRIVER),
        ];
        for (name, text) in files {
            crate::store::write_atomic(&key_dir.join(name), text.as_bytes())
                .map_err(|e| machine(&e))?;
        }
        let log = self.logs.join(format!("calibrate-{}.log", scheme.name));
        eprintln!(
            "forge: calibrating {} as {} with llm-compressor on {} workload prompts (log: {})",
            self.model,
            scheme.name,
            self.prompts.lines().count(),
            log.display()
        );
        self.run(key_dir, &planned.dir, &log)
    }

    /// Run the driver into a temporary directory; rename it into place when it holds a
    /// quantized checkpoint.
    fn run(&self, key_dir: &Path, out: &Path, log: &Path) -> Result<(), Failure> {
        let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let mut args: Vec<std::ffi::OsString> = vec![key_dir.join("calibrate.py").into()];
        for (flag, value) in [
            ("--model", std::ffi::OsString::from(&self.model)),
            ("--recipe", key_dir.join("recipe.yaml").into()),
            ("--prompts", key_dir.join("prompts.jsonl").into()),
            ("--output", tmp.clone().into()),
            ("--max-seq-length", MAX_SEQ_LEN.to_string().into()),
        ] {
            args.push(flag.into());
            args.push(value);
        }
        let step = Step::new(&self.s.python, key_dir)
            .args(args)
            .recorded_in(Some(&self.pids));
        let ended = step
            .run(log, Instant::now() + CALIBRATION_TIMEOUT)
            .map_err(|e| machine(&e))?;
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let result = match ended {
            Ended::Exited { status, .. } if status.success() && quantized(&tmp) => {
                std::fs::rename(&tmp, out).map_err(|e| machine(&e))
            }
            Ended::Exited { status, .. } => Err(Failure::build_failed(
                format!(
                    "calibration failed ({status}): {}; log: {}",
                    cause(&text, status.success()),
                    log.display()
                ),
                error_lines(&text),
            )),
            Ended::TimedOut => Err(Failure::build_failed(
                format!(
                    "calibration ran past {} s; log: {}",
                    CALIBRATION_TIMEOUT.as_secs(),
                    log.display()
                ),
                error_lines(&text),
            )),
        };
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }
}

impl Prepare for Calibrations {
    fn prepare(&self, recipe: &Recipe) -> Result<(), Failure> {
        let Some(c) = recipe.quant.checkpoint.as_deref() else {
            return Ok(());
        };
        match self.s.planned.iter().find(|p| p.dir == Path::new(c)) {
            Some(p) => self.make(p),
            None => Ok(()),
        }
    }
}

/// A directory holding a quantized checkpoint: `config.json` with a `quantization_config`.
fn quantized(dir: &Path) -> bool {
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .is_some_and(|v| v.get("quantization_config").is_some())
}

/// Why a calibration failed, read from its log as engine failures are.
pub fn cause(log: &str, exited_ok: bool) -> String {
    let has = |s: &str| log.contains(s);
    if has("OutOfMemoryError") || has("CUDA out of memory") {
        "out of GPU memory (calibrate on a larger GPU, or fewer/shorter prompts with --calibration-prompts)".into()
    } else if let Some(m) = missing_module(log) {
        format!(
            "the Python environment lacks `{m}` (install llmcompressor where the engine runs, or point --calibration-python at an environment that has it)"
        )
    } else if has("Unrecognized configuration class")
        || has("does not recognize this architecture")
        || has("is not supported for")
        || has("NotImplementedError")
    {
        "the model's architecture is not supported by llm-compressor or this Transformers".into()
    } else if exited_ok {
        "it exited without writing a quantized checkpoint (no quantization_config in its config.json)".into()
    } else {
        "see the log's last lines".into()
    }
}

/// `llmcompressor` of "ModuleNotFoundError: No module named 'llmcompressor'".
fn missing_module(log: &str) -> Option<String> {
    let rest = log.split("No module named '").nth(1)?;
    Some(rest.split('\'').next()?.to_string())
}

/// The log's last lines that say what went wrong (Python's exception lines).
fn error_lines(log: &str) -> Vec<String> {
    collect_hints(log, &["Error", "error:", "Traceback"], |_| true, str::trim)
}

/// The engine's Python: the interpreter of the launcher's script when it is a Python (a
/// venv's `vllm` console script), else a `python3` beside the launcher.
pub fn engine_python(launcher: &[String]) -> Option<PathBuf> {
    let first = launcher.first()?;
    let exe =
        crate::hardware::command::which(first.as_ref()).unwrap_or_else(|| PathBuf::from(first));
    if is_python(&exe) {
        return Some(exe);
    }
    let text = std::fs::read(&exe).ok()?;
    let head = String::from_utf8_lossy(&text[..text.len().min(256)]).to_string();
    let shebang = head.lines().next()?.strip_prefix("#!")?.trim().to_string();
    let interp = PathBuf::from(shebang.split_whitespace().next()?);
    if is_python(&interp) && interp.is_file() {
        return Some(interp);
    }
    let beside = exe.parent()?.join("python3");
    beside.is_file().then_some(beside)
}

fn is_python(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("python"))
}

fn machine(e: &dyn std::fmt::Display) -> Failure {
    Failure::build_failed(
        format!("could not calibrate (the machine's fault): {e}"),
        Vec::new(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_from_their_real_strings() {
        let oom = "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB";
        assert!(cause(oom, false).starts_with("out of GPU memory"));
        let missing = "Traceback (most recent call last):\n  File \"calibrate.py\", line 14, in <module>\nModuleNotFoundError: No module named 'llmcompressor'";
        assert!(cause(missing, false).contains("lacks `llmcompressor`"));
        assert_eq!(error_lines(missing).len(), 2);
        let arch = "ValueError: Unrecognized configuration class <class 'transformers.models.x.XConfig'> for this kind of AutoModel: AutoModelForCausalLM.";
        assert!(cause(arch, false).contains("architecture is not supported"));
        assert!(cause("done", true).contains("without writing a quantized checkpoint"));
    }

    #[test]
    fn each_scheme_is_gated_and_keyed_by_revision_recipe_and_sample() {
        let w = crate::tune::quantize::tests::growing(6);
        let store = Path::new("/s");
        let a100 = crate::hardware::gpus::lookup("A100-80GB");
        let (p, notes) = plan("Qwen/Qwen3-0.6B", EngineKind::Vllm, a100, store, &w, 4);
        let names: Vec<&str> = p.iter().map(|x| x.scheme.as_str()).collect();
        assert_eq!(names, ["awq-w4a16", "gptq-w4a16", "w8a8-int8"]);
        assert!(
            notes[0].starts_with("not calibrating fp8-dynamic: FP8 W8A8"),
            "{notes:?}"
        );
        assert!(p[0].dir.ends_with("Qwen3-0.6B-AWQ-W4A16"));
        assert!(p[0].dir.starts_with("/s/calibrated"));
        assert_ne!(p[0].dir.parent(), p[1].dir.parent());
        let (q, _) = plan("Qwen/Qwen3-0.6B", EngineKind::Vllm, a100, store, &w, 4);
        assert_eq!(p, q, "the same inputs plan the same directories");
        let (r, _) = plan("Qwen/Qwen3-0.6B", EngineKind::Vllm, a100, store, &w, 3);
        assert_ne!(p[0].dir, r[0].dir, "another sample is another checkpoint");
        // The simulator reads the planned name's scheme before anything is calibrated.
        let shape = crate::sim::model::ModelShape::resolve(p[0].dir.to_str().unwrap()).unwrap();
        assert_eq!(shape.quant.unwrap().weight_bits, 4);
    }
}
