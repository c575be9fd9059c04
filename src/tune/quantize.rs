//! Layer 2 on llama.cpp for real: the user's model requantized to each GGUF type the run
//! tries (`quant.method: q4_k_m`), with an importance matrix computed on prompts sampled
//! from the user's own workload. Made before the recipe boots, by llama.cpp's own tools:
//!
//! 1. `llama-quantize --allow-requantize MODEL f16.gguf F16` — an F16 reference (from an
//!    already quantized file this is a dequantization: the candidates cannot be better
//!    than the file given, and the report's accuracy says how much worse they are);
//! 2. `llama-imatrix -m f16.gguf -f prompts.txt` — the importance matrix, on the
//!    calibration prompts (the workload's, spread over its prompt lengths);
//! 3. `llama-quantize --imatrix imatrix.gguf f16.gguf TYPE.gguf TYPE`.
//!
//! Everything is cached under the store (`gguf-cache/MODEL-HASH/`, keyed by the model's
//! content and the calibration prompts), so a later run on the same model reuses it, and
//! hard-linked into the run (`quant/TYPE.gguf`, what `forge recipe command` deploys). Each
//! tool's process group is recorded in the run's `engines.pids`; files appear only by an
//! atomic rename. A tool that fails is the recipe's `build_failed` with the tool's own
//! error lines, and the run goes on.

use std::hash::Hasher;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::measure::Prepare;
use crate::build::run::{Ended, Step};
use crate::engine::failure::{Failure, MAX_HINTS};
use crate::engine::llamacpp::quant::{QuantFiles, method_of};
use crate::recipe::Recipe;
use crate::record::settings::{QuantSettings, TuneSettings};
use crate::store::{LOGS_DIR, PIDS_FILE};
use crate::workload::Workload;

/// Longest one tool may run.
const TOOL_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Largest context the importance matrix is computed with.
const MAX_IMATRIX_CTX: u64 = 512;

/// The requantized models of one run.
pub struct QuantBuilds {
    s: QuantSettings,
    model: PathBuf,
    files: QuantFiles,
    /// `gguf-cache/MODEL-HASH`, found when first needed (hashing a large model takes a
    /// while, and a run that never reaches layer 2 has no use for it).
    cache_dir: OnceLock<Result<PathBuf, String>>,
    /// The calibration prompts, one file's text, and their tag (hash).
    prompts: String,
    tag: String,
    /// The importance matrix's context (tokens per chunk).
    ctx: u64,
    logs: PathBuf,
    pids: PathBuf,
}

impl QuantBuilds {
    /// The quantized candidates of a llama.cpp run in `run_dir`, if it makes any.
    pub fn open(s: &TuneSettings, w: &Workload, run_dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(q) = &s.quantize else {
            return Ok(None);
        };
        let (prompts, tokens) = calibration(w, q.calibration_prompts);
        Ok(Some(QuantBuilds {
            s: q.clone(),
            files: QuantFiles::of_run(run_dir, q.types.clone()),
            cache_dir: OnceLock::new(),
            tag: crate::text::content_hash(prompts.as_bytes())[..12].to_string(),
            prompts,
            ctx: imatrix_ctx(tokens),
            model: PathBuf::from(&s.model),
            logs: run_dir.join(LOGS_DIR),
            pids: run_dir.join(PIDS_FILE),
        }))
    }

    /// The run's files, for the engine.
    pub fn files(&self) -> &QuantFiles {
        &self.files
    }

    /// `gguf-cache/MODEL-HASH` (the model's content hash, computed once).
    fn cache(&self) -> Result<&Path, Failure> {
        let dir = self.cache_dir.get_or_init(|| {
            let hash =
                file_hash(&self.model).map_err(|e| format!("{}: {e}", self.model.display()))?;
            let dir = self.s.cache.join(hash);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            Ok(dir)
        });
        dir.as_deref().map_err(|e| machine(e))
    }

    /// Make `RUN/quant/TY.gguf` unless it exists.
    fn make(&self, ty: &str) -> Result<(), Failure> {
        let target = self.files.path_of(ty);
        if target.is_file() {
            return Ok(());
        }
        let log = self.logs.join(format!("quantize-{ty}.log"));
        std::fs::create_dir_all(&self.logs).map_err(|e| machine(&e))?;
        let cached = self.cached(self.cache()?, ty, &log)?;
        std::fs::create_dir_all(&self.files.dir).map_err(|e| machine(&e))?;
        link(&cached, &target).map_err(|e| machine(&e))
    }

    /// The model of type `ty` in `cache`, made now if missing.
    fn cached(&self, cache: &Path, ty: &str, log: &Path) -> Result<PathBuf, Failure> {
        let f16 = cache.join("f16.gguf");
        if !f16.is_file() {
            eprintln!(
                "forge: converting {} to F16, the reference the quantized candidates are made from (log: {})",
                self.model.display(),
                log.display()
            );
            let args = [os(&self.model), "".into(), "F16".into()];
            self.tool(
                &self.s.quantize,
                &["--allow-requantize".into()],
                &args,
                &f16,
                1,
                log,
            )?;
        }
        if ty == "f16" {
            return Ok(f16);
        }
        let out = cache.join(format!("{ty}.imatrix-{}.gguf", self.tag));
        if out.is_file() {
            eprintln!("forge: reusing the cached {ty} model ({})", out.display());
            return Ok(out);
        }
        let imatrix = self.imatrix(cache, &f16, log)?;
        eprintln!(
            "forge: quantizing the model to {} with the workload's importance matrix (log: {})",
            ty.to_ascii_uppercase(),
            log.display()
        );
        let flags = ["--imatrix".into(), os(&imatrix)];
        let args = [os(&f16), "".into(), ty.to_ascii_uppercase().into()];
        self.tool(&self.s.quantize, &flags, &args, &out, 1, log)?;
        Ok(out)
    }

    /// The importance matrix of the calibration prompts in `cache`, made now if missing.
    fn imatrix(&self, cache: &Path, f16: &Path, log: &Path) -> Result<PathBuf, Failure> {
        let out = cache.join(format!("imatrix-{}.gguf", self.tag));
        if out.is_file() {
            return Ok(out);
        }
        let prompts = cache.join(format!("prompts-{}.txt", self.tag));
        crate::store::write_atomic(&prompts, self.prompts.as_bytes()).map_err(|e| machine(&e))?;
        eprintln!(
            "forge: computing the importance matrix on {} calibration prompts from the workload",
            self.prompts.split("\n\n").count()
        );
        let run = |ctx: u64| {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let flags: Vec<std::ffi::OsString> = vec![
                "-m".into(),
                os(f16),
                "-f".into(),
                os(&prompts),
                "-c".into(),
                ctx.to_string().into(),
                "-t".into(),
                threads.to_string().into(),
                "-o".into(),
            ];
            self.tool(&self.s.imatrix, &flags, &["".into()], &out, 0, log)
        };
        // forge's stand-in tokenizer only estimates the model's: when llama-imatrix counts
        // fewer tokens than two chunks need, it says how many, and the context follows.
        if let Err(f) = run(self.ctx) {
            match f.hints.iter().find_map(|h| counted_tokens(h)) {
                Some(n) if imatrix_ctx(n) < self.ctx => run(imatrix_ctx(n))?,
                _ => return Err(f),
            }
        }
        Ok(out)
    }

    /// Run `program flags… args…` writing `out` atomically: the empty word of `args` at
    /// `at` is replaced by a temporary name, renamed to `out` once the tool succeeded.
    fn tool(
        &self,
        program: &Path,
        flags: &[std::ffi::OsString],
        args: &[std::ffi::OsString],
        out: &Path,
        at: usize,
        log: &Path,
    ) -> Result<(), Failure> {
        let tmp = out.with_extension(format!("tmp-{}", std::process::id()));
        let mut words: Vec<std::ffi::OsString> = flags.to_vec();
        let mut rest = args.to_vec();
        rest[at] = os(&tmp);
        words.extend(rest);
        let dir = out.parent().unwrap_or(Path::new("."));
        let step = Step::new(program, dir)
            .args(words)
            .recorded_in(Some(&self.pids));
        let ended = step
            .run(log, Instant::now() + TOOL_TIMEOUT)
            .map_err(|e| machine(&e))?;
        let name = program
            .file_name()
            .map_or("tool".into(), |n| n.to_string_lossy());
        match ended {
            Ended::Exited { status, .. } if status.success() && tmp.is_file() => {
                std::fs::rename(&tmp, out).map_err(|e| machine(&e))
            }
            Ended::Exited { status, .. } => {
                let _ = std::fs::remove_file(&tmp);
                Err(Failure::build_failed(
                    format!("{name} failed ({status}); log: {}", log.display()),
                    tool_errors(log),
                ))
            }
            Ended::TimedOut => {
                let _ = std::fs::remove_file(&tmp);
                Err(Failure::build_failed(
                    format!(
                        "{name} ran past {} s; log: {}",
                        TOOL_TIMEOUT.as_secs(),
                        log.display()
                    ),
                    Vec::new(),
                ))
            }
        }
    }
}

impl Prepare for QuantBuilds {
    fn prepare(&self, recipe: &Recipe) -> Result<(), Failure> {
        match method_of(recipe) {
            Some(ty) => self.make(ty),
            None => Ok(()),
        }
    }
}

/// Up to `n` prompts of the workload spread evenly over its prompt lengths (shortest to
/// longest), as one text; and their tokens by forge's stand-in tokenizer.
pub fn calibration(w: &Workload, n: usize) -> (String, u64) {
    let mut prompts: Vec<String> = w
        .requests
        .iter()
        .map(|r| r.input.as_prompt_text())
        .collect();
    prompts.sort_by_key(|p| p.len());
    prompts.dedup();
    let take = n.min(prompts.len()).max(1);
    let picked: Vec<&str> = (0..take)
        .filter_map(|i| prompts.get(i * prompts.len() / take).map(String::as_str))
        .collect();
    let text = picked.join("\n\n");
    let tokens = crate::tokenize::count(&text) as u64;
    (text, tokens)
}

/// The importance matrix's context: llama-imatrix needs at least two chunks of it, so the
/// largest power of two up to half the calibration tokens (16 … 512).
pub fn imatrix_ctx(tokens: u64) -> u64 {
    let mut ctx = 16;
    while ctx * 2 <= MAX_IMATRIX_CTX && ctx * 4 <= tokens {
        ctx *= 2;
    }
    ctx
}

/// The token count of llama-imatrix's "the data file you provided tokenizes to only N
/// tokens".
fn counted_tokens(line: &str) -> Option<u64> {
    let rest = line.split("tokenizes to only ").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

/// The last lines of a tool's log that say what went wrong.
fn tool_errors(log: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<String> = text
        .lines()
        .filter(|l| {
            let low = l.to_ascii_lowercase();
            low.contains("error") || low.contains("failed") || l.contains(" E ")
        })
        .map(|l| l.trim().to_string())
        .collect();
    let n = lines.len();
    lines[n.saturating_sub(MAX_HINTS)..].to_vec()
}

/// Hard-link `from` as `to` (the cache and the run share a filesystem under the store),
/// copying when they do not.
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)
}

/// XxHash64 of a file's bytes, streamed.
fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = twox_hash::XxHash64::with_seed(0);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(format!("{:016x}", h.finish()))
}

fn os(p: &Path) -> std::ffi::OsString {
    p.as_os_str().to_os_string()
}

fn machine(e: &dyn std::fmt::Display) -> Failure {
    Failure::build_failed(
        format!("could not make the quantized model (the machine's fault): {e}"),
        Vec::new(),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_importance_matrix_context_leaves_two_chunks() {
        // llama-imatrix needs at least twice the context in tokens.
        assert_eq!(imatrix_ctx(107), 32);
        assert_eq!(imatrix_ctx(128), 64);
        assert_eq!(imatrix_ctx(300), 128);
        assert_eq!(imatrix_ctx(1_000_000), 512);
        assert_eq!(imatrix_ctx(0), 16);
    }

    #[test]
    fn a_short_calibration_set_reads_its_token_count_from_the_tool() {
        let line = "0.00.276.786 E compute_imatrix: the data file you provided tokenizes to only 118 tokens";
        assert_eq!(counted_tokens(line), Some(118));
        assert_eq!(counted_tokens("no count here"), None);
    }

    /// A workload of `n` prompts of 1 to `n` words.
    pub(crate) fn growing(n: usize) -> Workload {
        let lines: Vec<String> = (1..=n)
            .map(|i| {
                format!(
                    r#"{{"prompt":"{}","expected_output_tokens":4}}"#,
                    "w ".repeat(i)
                )
            })
            .collect();
        crate::workload::parse(Path::new("w"), &lines.join("\n")).unwrap()
    }

    #[test]
    fn calibration_prompts_span_the_lengths() {
        let w = growing(10);
        let (text, tokens) = calibration(&w, 3);
        let picked: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(picked.len(), 3);
        assert_eq!(picked[0].trim(), "w");
        assert!(picked[2].len() > picked[1].len());
        assert!(tokens > 0);
        let (all, _) = calibration(&w, 100);
        assert_eq!(all.split("\n\n").count(), 10);
    }
}
