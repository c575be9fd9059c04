//! The individual doctor checks. Each takes what it needs (arguments, the hardware
//! report, an environment lookup) and returns a [`Check`]; none prints.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Check;
use super::Options;
use crate::hardware::command::{self, CaptureError};
use crate::hardware::{Device, HardwareReport, NvmlStatus, Source, gpus, group_summary};
use crate::recipe::EngineKind;

/// Deadline for `<engine> --version` (vLLM imports torch first: seconds, not millis).
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(120);

/// Providers the agent can use, and the variable holding each one's key (`None`: local,
/// no key).
pub const PROVIDERS: &[(&str, Option<&str>)] = &[
    ("anthropic", Some("ANTHROPIC_API_KEY")),
    ("openai", Some("OPENAI_API_KEY")),
    ("openrouter", Some("OPENROUTER_API_KEY")),
    ("together", Some("TOGETHER_API_KEY")),
    ("groq", Some("GROQ_API_KEY")),
    ("fireworks", Some("FIREWORKS_API_KEY")),
    ("deepinfra", Some("DEEPINFRA_API_KEY")),
    ("mistral", Some("MISTRAL_API_KEY")),
    ("ollama", None),
    ("lmstudio", None),
];

/// Every check, in the order printed.
pub fn all(
    args: &Options,
    report: &HardwareReport,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let mut out = vec![
        engine(args.engine, args.engine_cmd.as_deref()),
        installed(&|p| command::which(OsStr::new(p))),
        gpu(report),
    ];
    if report.device == Device::Cuda {
        out.push(nvml(report));
    }
    out.push(api_key(&args.llm, env));
    out.push(disk(&args.run_dir, args.min_free_gib));
    out
}

/// The serving frameworks' launchers forge knows, for the cross-framework comparison.
const FRAMEWORKS: &[(&str, &str)] = &[
    ("vLLM", "vllm"),
    ("SGLang", "sglang"),
    ("TensorRT-LLM", "trtllm-serve"),
    ("llama.cpp", "llama-server"),
];

/// Which frameworks' launchers are on PATH (found by `which`, nothing is run).
pub fn installed(which: &dyn Fn(&str) -> Option<std::path::PathBuf>) -> Check {
    let found: Vec<String> = FRAMEWORKS
        .iter()
        .filter_map(|(name, cmd)| which(cmd).map(|p| format!("{name} ({})", p.display())))
        .collect();
    let missing: Vec<&str> = FRAMEWORKS
        .iter()
        .filter(|(_, cmd)| which(cmd).is_none())
        .map(|(name, _)| *name)
        .collect();
    let detail = match (found.is_empty(), missing.is_empty()) {
        (true, _) => "none of vllm, sglang, trtllm-serve, llama-server is on PATH".to_string(),
        (false, true) => found.join(", "),
        (false, false) => format!("{}; not on PATH: {}", found.join(", "), missing.join(", ")),
    };
    Check::ok("engines", detail)
}

/// The engine's launcher argv (as `forge tune` builds it).
fn launcher(kind: EngineKind, engine_cmd: Option<&str>) -> Vec<String> {
    match engine_cmd {
        Some(c) => c.split_whitespace().map(str::to_string).collect(),
        None => match kind {
            EngineKind::Vllm => vec!["vllm".into()],
            EngineKind::Llamacpp => vec!["llama-server".into()],
            EngineKind::Sglang => vec!["sglang".into()],
            EngineKind::Trtllm => vec!["trtllm-serve".into()],
        },
    }
}

fn install_hint(kind: EngineKind) -> &'static str {
    match kind {
        EngineKind::Vllm => {
            "install vLLM (pip install vllm) so `vllm` is on PATH, or pass --engine-cmd \
             \"python -m vllm.entrypoints.cli.main\""
        }
        EngineKind::Llamacpp => {
            "build llama.cpp's llama-server and put it on PATH, or pass --engine-cmd \
             /path/to/llama-server"
        }
        EngineKind::Sglang => {
            "install SGLang (pip install sglang) so `sglang` is on PATH, or pass --engine-cmd \
             \"python -m sglang.launch_server\""
        }
        EngineKind::Trtllm => {
            "install TensorRT-LLM (NVIDIA's wheel or container) so `trtllm-serve` is on PATH, \
             or pass --engine-cmd"
        }
    }
}

/// Engine found, and its version.
pub fn engine(kind: EngineKind, engine_cmd: Option<&str>) -> Check {
    let argv = launcher(kind, engine_cmd);
    let Some(program) = argv.first() else {
        return Check::fail("engine", "--engine-cmd is empty", install_hint(kind));
    };
    let Some(path) = command::which(OsStr::new(program)) else {
        return Check::fail(
            "engine",
            format!("`{program}` not found on PATH"),
            install_hint(kind),
        );
    };
    let asked = version_argv(kind, &argv);
    let args: Vec<&str> = asked[1..].iter().map(String::as_str).collect();
    let shown = asked.join(" ");
    match command::capture(path.as_os_str(), &args, VERSION_TIMEOUT) {
        Ok(out) if out.success() => version_check(kind, &out.all_text(), &path, &shown),
        Ok(out) => Check::fail(
            "engine",
            format!(
                "`{shown}` exited with status {}: {}",
                out.code.map_or("(signal)".into(), |c| c.to_string()),
                last_line(&out.all_text())
            ),
            format!(
                "run `{shown}` yourself to see what is broken (the install, or its CUDA libraries)"
            ),
        ),
        Err(e @ CaptureError::Timeout { .. }) => Check::fail(
            "engine",
            e.to_string(),
            format!("run `{shown}` yourself; it may be waiting on a GPU or a network drive"),
        ),
        Err(e) => Check::fail("engine", e.to_string(), install_hint(kind)),
    }
}

/// The command that makes the engine say its version: `--version` (vLLM, llama.cpp),
/// `sglang version` (SGLang has no `--version`), `trtllm-serve --help` (TensorRT-LLM has
/// none either; its import banner names the version).
fn version_argv(kind: EngineKind, launcher: &[String]) -> Vec<String> {
    match kind {
        EngineKind::Sglang => {
            let l = crate::engine::sglang::help::normalize_launcher(launcher.to_vec());
            crate::engine::sglang::help::version_command(&l).unwrap_or(l)
        }
        EngineKind::Trtllm => [launcher, &["--help".to_string()]].concat(),
        _ => [launcher, &["--version".to_string()]].concat(),
    }
}

fn version_check(kind: EngineKind, text: &str, path: &Path, shown: &str) -> Check {
    let name = match kind {
        EngineKind::Vllm => "vllm",
        EngineKind::Llamacpp => "llama-server",
        EngineKind::Sglang => "sglang",
        EngineKind::Trtllm => "trtllm-serve",
    };
    match parse_version(kind, text) {
        Some(v) => Check::ok("engine", format!("{name} {v} at {}", path.display())),
        None => Check::warn(
            "engine",
            format!("`{shown}` printed no version: {}", last_line(text)),
            format!("check that {} is {name}", path.display()),
        ),
    }
}

fn last_line(text: &str) -> &str {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
}

/// The version in `<engine> --version` output. vLLM prints the bare version (after any log
/// lines its import emits); llama-server prints `version: N (commit)` on stderr.
pub fn parse_version(kind: EngineKind, text: &str) -> Option<String> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match kind {
        EngineKind::Sglang => {
            crate::engine::sglang::help::parse_version_output(text, "").map(|(_, t)| t)
        }
        EngineKind::Trtllm => {
            crate::engine::trtllm::help::version_from_banner(text).map(|(v, _)| v.to_string())
        }
        EngineKind::Vllm => lines
            .rfind(|l| {
                l.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && !l.contains(char::is_whitespace)
            })
            .map(str::to_string),
        EngineKind::Llamacpp => lines
            .find_map(|l| l.strip_prefix("version:"))
            .map(|v| v.trim().to_string()),
    }
}

/// GPUs: detected, visible, identical, known to the spec table.
pub fn gpu(r: &HardwareReport) -> Check {
    if r.device == Device::Cpu {
        return cpu(r);
    }
    let Some(first) = r.recipe_gpu() else {
        return no_gpu(r);
    };
    let driver = first
        .driver_version
        .as_deref()
        .map(|d| format!(", driver {d}"))
        .unwrap_or_default();
    let spec = first.spec.map_or("not in forge's GPU table", |s| s.name);
    let detail = format!("{}{driver} → {spec} [{}]", group_summary(&r.gpus), r.source);
    let notes = r.warnings.clone();
    let hint = if r.mixed {
        Some(format!(
            "tuning assumes identical GPUs: set {}={} (or a list of identical GPUs)",
            visibility_var(r.device),
            first.index
        ))
    } else if first.spec.is_none() {
        Some(format!(
            "forge's memory model and simulator know {}; others tune with generic defaults \
             (dry runs need --sim-gpu)",
            gpus::names().join(", ")
        ))
    } else if !notes.is_empty() {
        Some("see the notes above".to_string())
    } else {
        None
    };
    let status = if hint.is_some() {
        super::Status::Warn
    } else {
        super::Status::Ok
    };
    Check {
        name: "gpu",
        status,
        detail,
        notes,
        hint,
    }
}

fn visibility_var(d: Device) -> &'static str {
    match d {
        Device::Rocm => "HIP_VISIBLE_DEVICES",
        _ => "CUDA_VISIBLE_DEVICES",
    }
}

fn no_gpu(r: &HardwareReport) -> Check {
    if r.detected > 0 {
        return Check::fail(
            "gpu",
            format!("{} GPU(s) detected, none visible", r.detected),
            format!("fix or unset {}", visibility_var(r.device)),
        )
        .with_notes(r.warnings.clone());
    }
    // Each reason names its tool already (`nvidia-smi cannot talk ...`, `rocm-smi ...`).
    let reasons: Vec<String> = r.failures.iter().map(|f| f.reason.clone()).collect();
    let vendor = if r.device == Device::Rocm {
        "AMD"
    } else {
        "NVIDIA"
    };
    let tool = if r.device == Device::Rocm {
        "rocm-smi"
    } else {
        "nvidia-smi"
    };
    Check::fail(
        "gpu",
        format!("no {vendor} GPU found"),
        format!(
            "install and load the {vendor} driver until `{tool}` lists the GPUs; without a GPU \
             use --device cpu, or `forge tune --dry-run` (simulator)"
        ),
    )
    .with_notes(reasons)
}

fn cpu(r: &HardwareReport) -> Check {
    match &r.host {
        Some(h) => {
            let model = h
                .model
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default();
            let avail = h
                .memory_available_mib
                .map(|a| format!(", {a} MiB available"))
                .unwrap_or_default();
            Check::ok(
                "gpu",
                format!(
                    "--device cpu: {} logical CPUs{model}, {} MiB memory{avail}; no GPU needed",
                    h.cpus, h.memory_total_mib
                ),
            )
        }
        None => Check::warn(
            "gpu",
            "--device cpu: cannot read CPU and memory facts",
            "forge reads /proc/cpuinfo and /proc/meminfo; run on Linux",
        )
        .with_notes(r.warnings.clone()),
    }
}

/// NVML: used, or which fallback detection used instead.
pub fn nvml(r: &HardwareReport) -> Check {
    let fallback = match r.source {
        Source::None => "and no fallback found a GPU".to_string(),
        s => format!("using {s} instead"),
    };
    match &r.nvml {
        NvmlStatus::Used => Check::ok("nvml", "NVML loaded; GPUs and memory read through it"),
        NvmlStatus::Disabled => {
            Check::ok("nvml", format!("disabled by FORGE_NVML=off; {fallback}"))
        }
        NvmlStatus::NotTried => Check::ok("nvml", "not used for this device"),
        NvmlStatus::Unavailable(why) => Check::warn(
            "nvml",
            format!("NVML unavailable ({why}); {fallback}"),
            "NVML ships with the NVIDIA driver as libnvidia-ml.so.1; install the driver, or set \
             FORGE_NVML_LIB to the library's path (nvidia-smi is slower but works)",
        ),
    }
}

/// The agent LLM's API key: set or not. The value is never read into the output.
pub fn api_key(llm: &str, env: &dyn Fn(&str) -> Option<String>) -> Check {
    let Some((provider, _)) = llm
        .split_once('/')
        .filter(|(p, m)| !p.is_empty() && !m.is_empty())
    else {
        return Check::fail(
            "api key",
            format!("--llm `{llm}` is not provider/model"),
            "pass --llm like anthropic/claude-sonnet-4-6",
        );
    };
    let Some((_, var)) = PROVIDERS.iter().find(|(p, _)| *p == provider) else {
        let known: Vec<&str> = PROVIDERS.iter().map(|(p, _)| *p).collect();
        return Check::fail(
            "api key",
            format!("unknown LLM provider `{provider}`"),
            format!("use one of: {}", known.join(", ")),
        );
    };
    let Some(var) = var else {
        return Check::ok(
            "api key",
            format!("{provider} runs locally; no API key needed"),
        );
    };
    let set = env(var).is_some_and(|v| !v.trim().is_empty());
    if set {
        Check::ok("api key", format!("{var} is set ({llm})"))
    } else {
        Check::warn(
            "api key",
            format!("{var} is not set ({llm})"),
            format!(
                "export {var}=<your key> to use the LLM agent; without it forge tunes with its \
                 built-in agent"
            ),
        )
    }
}

/// Free space (and write access) where the run directory is or will be.
pub fn disk(run_dir: &Path, min_free_gib: f64) -> Check {
    let (dir, exists) = existing_ancestor(run_dir);
    let stat = match nix::sys::statvfs::statvfs(&dir) {
        Ok(s) => s,
        Err(e) => {
            return Check::fail(
                "disk",
                format!("cannot check free space of {}: {e}", dir.display()),
                "pass --run-dir on a mounted, readable disk",
            );
        }
    };
    let free = stat.blocks_available() as f64 * stat.fragment_size() as f64;
    let gib = free / (1u64 << 30) as f64;
    let place = if exists {
        format!("{}", run_dir.display())
    } else {
        format!(
            "{} (will be created in {})",
            run_dir.display(),
            dir.display()
        )
    };
    if nix::unistd::access(&dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Check::fail(
            "disk",
            format!("{} is not writable", dir.display()),
            "pass --run-dir to a directory you can write",
        );
    }
    let detail = format!("{gib:.1} GiB free for {place}");
    if gib < min_free_gib {
        Check::warn(
            "disk",
            format!("{detail}, below {min_free_gib} GiB"),
            "free space or pass --run-dir on a larger disk: every experiment keeps an engine \
             log, and quantized checkpoints are cached under the run directory",
        )
    } else {
        Check::ok("disk", detail)
    }
}

/// `path` itself if it exists, else its nearest existing ancestor (`.` for a relative path
/// none of whose parts exist).
fn existing_ancestor(path: &Path) -> (PathBuf, bool) {
    if path.exists() {
        return (path.to_path_buf(), true);
    }
    let found = path
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    (found, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    #[test]
    fn versions() {
        let v = |k, t| parse_version(k, t);
        assert_eq!(v(EngineKind::Vllm, "0.10.2\n").as_deref(), Some("0.10.2"));
        assert_eq!(
            v(
                EngineKind::Vllm,
                "INFO 03-13 09:00:22 [__init__.py:256] Automatically detected platform cuda.\n0.7.4.dev390+gdebd6bbf0\n"
            )
            .as_deref(),
            Some("0.7.4.dev390+gdebd6bbf0")
        );
        assert_eq!(v(EngineKind::Vllm, "usage: vllm [-h]\n"), None);
        let recorded = "version: 0.5.0-dev (build 1, commit 0c1e570)\nbuilt with GNU 12.2.0 for Linux x86_64\n";
        assert_eq!(
            v(EngineKind::Llamacpp, recorded).as_deref(),
            Some("0.5.0-dev (build 1, commit 0c1e570)")
        );
    }

    #[test]
    fn installed_frameworks_are_listed_by_name() {
        let which = |c: &str| {
            ["vllm", "llama-server"]
                .contains(&c)
                .then(|| std::path::PathBuf::from(format!("/usr/bin/{c}")))
        };
        let c = installed(&which);
        assert_eq!(
            c.detail,
            "vLLM (/usr/bin/vllm), llama.cpp (/usr/bin/llama-server); not on PATH: SGLang, \
             TensorRT-LLM"
        );
        let none = installed(&|_| None);
        assert!(none.detail.starts_with("none of vllm, sglang"));
    }

    #[test]
    fn launchers() {
        assert_eq!(launcher(EngineKind::Vllm, None), ["vllm"]);
        assert_eq!(launcher(EngineKind::Llamacpp, None), ["llama-server"]);
        assert_eq!(
            launcher(
                EngineKind::Vllm,
                Some("python -m vllm.entrypoints.cli.main")
            ),
            ["python", "-m", "vllm.entrypoints.cli.main"]
        );
        let c = engine(EngineKind::Vllm, Some("   "));
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Fail, "--engine-cmd is empty")
        );
    }

    #[test]
    fn api_keys_say_set_or_not_set_only() {
        let secret = "sk-test-0123456789abcdef";
        let env = |k: &str| (k == "OPENAI_API_KEY").then(|| secret.to_string());
        let c = api_key("openai/gpt-5", &env);
        assert_eq!(
            (c.status, c.detail.as_str()),
            (Status::Ok, "OPENAI_API_KEY is set (openai/gpt-5)")
        );
        let c = api_key("anthropic/claude-sonnet-4-6", &env);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.detail,
            "ANTHROPIC_API_KEY is not set (anthropic/claude-sonnet-4-6)"
        );
        let blank = |_: &str| Some("  ".to_string());
        assert_eq!(api_key("groq/llama", &blank).status, Status::Warn);
        assert_eq!(api_key("ollama/qwen3", &env).status, Status::Ok);
        assert_eq!(
            api_key("lmstudio/x", &env).detail,
            "lmstudio runs locally; no API key needed"
        );
        assert_eq!(api_key("acme/x", &env).status, Status::Fail);
        assert_eq!(api_key("anthropic", &env).status, Status::Fail);
        for p in PROVIDERS {
            let c = api_key(&format!("{}/m", p.0), &env);
            let text = format!("{} {:?}", c.detail, c.hint);
            assert!(!text.contains("0123"), "{text}");
        }
    }

    #[test]
    fn every_provider_names_its_variable() {
        let var = |p: &str| {
            PROVIDERS
                .iter()
                .find(|(q, _)| *q == p)
                .and_then(|(_, v)| *v)
        };
        assert_eq!(var("together"), Some("TOGETHER_API_KEY"));
        assert_eq!(var("fireworks"), Some("FIREWORKS_API_KEY"));
        assert_eq!(var("deepinfra"), Some("DEEPINFRA_API_KEY"));
        assert_eq!(var("mistral"), Some("MISTRAL_API_KEY"));
        assert_eq!(var("openrouter"), Some("OPENROUTER_API_KEY"));
        assert_eq!(var("ollama"), None);
    }

    #[test]
    fn disk_thresholds_and_missing_run_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let c = disk(dir.path(), 0.0);
        assert_eq!(c.status, Status::Ok, "{c:?}");
        let c = disk(dir.path(), 1e12);
        assert_eq!(c.status, Status::Warn);
        assert!(
            c.detail.ends_with(", below 1000000000000 GiB"),
            "{}",
            c.detail
        );
        let missing = dir.path().join("a/b/.forge");
        let c = disk(&missing, 0.0);
        assert!(
            c.detail
                .ends_with(&format!("(will be created in {})", dir.path().display())),
            "{}",
            c.detail
        );
        assert_eq!(
            existing_ancestor(Path::new("no-such-dir/x")),
            (PathBuf::from("."), false)
        );
    }
}
