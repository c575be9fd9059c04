//! The real llama.cpp peers for end-to-end tests: `llama-server` and the SmolLM2-135M GGUF
//! model that `scripts/llama-server.sh` builds and caches (`scripts/test.sh` exports their
//! paths as `LLAMA_SERVER` and `SMOLLM2_GGUF`). Absent, a test skips with a message written
//! straight to stderr (past the test harness's capture), or fails when
//! `FORGE_REQUIRE_LLAMACPP=1` says they must be there (CI).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::Duration;

use super::procs::wait_until;

/// Paths of the real server and model.
pub struct Peers {
    /// The llama-server binary.
    pub server: PathBuf,
    /// SmolLM2-135M-Instruct Q4_1 GGUF.
    pub model: PathBuf,
}

fn cached(rel: &str) -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let root = std::env::var_os("FORGE_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(&home).join(".cache/forge-peers"));
    Some(root.join(rel))
}

/// The peers, or `None` after saying loudly why `test` is skipped.
pub fn peers(test: &str) -> Option<Peers> {
    let server = std::env::var_os("LLAMA_SERVER")
        .map(PathBuf::from)
        .or_else(|| cached("llama-build/bin/llama-server"));
    let model = std::env::var_os("SMOLLM2_GGUF")
        .map(PathBuf::from)
        .or_else(|| cached("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    match (server, model) {
        (Some(s), Some(m)) if s.is_file() && m.is_file() => Some(Peers {
            server: s,
            model: m,
        }),
        (s, m) => {
            let why = format!(
                "llama-server ({s:?}) or the SmolLM2 GGUF ({m:?}) is missing.\n*** Build them with scripts/llama-server.sh (scripts/test.sh does), or set LLAMA_SERVER and SMOLLM2_GGUF."
            );
            assert!(
                std::env::var("FORGE_REQUIRE_LLAMACPP").as_deref() != Ok("1"),
                "{test}: FORGE_REQUIRE_LLAMACPP=1 but {why}"
            );
            let msg = format!("\n*** SKIPPED {test}: {why}\n");
            let _ = std::io::stderr().write_all(msg.as_bytes());
            None
        }
    }
}

/// The campaign fixture's llama.cpp checkout (`scripts/llamacpp-campaign-fixture.sh`:
/// upstream + a deliberate slowdown, `main` on the slowdown commit) and the build directory
/// configured for it, made or put back once per test process; `None` after saying loudly
/// why `test` is skipped (no vendored llama.cpp sources).
pub fn campaign_fixture(test: &str) -> Option<(PathBuf, PathBuf)> {
    static ONCE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let vendored = cached("llama_cpp_python-0.3.36/vendor/llama.cpp")?;
    if !vendored.is_dir() {
        let why = format!(
            "{} is missing (scripts/llama-server.sh unpacks it)",
            vendored.display()
        );
        assert!(
            std::env::var("FORGE_REQUIRE_LLAMACPP").as_deref() != Ok("1"),
            "{test}: FORGE_REQUIRE_LLAMACPP=1 but {why}"
        );
        let msg = format!("\n*** SKIPPED {test}: {why}\n");
        let _ = std::io::stderr().write_all(msg.as_bytes());
        return None;
    }
    let checkout = ONCE
        .get_or_init(|| {
            let script = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/llamacpp-campaign-fixture.sh"
            );
            let out = std::process::Command::new(script).output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(PathBuf::from(String::from_utf8(out.stdout).unwrap().trim()))
        })
        .clone()?;
    Some((checkout, cached("campaign-llama/build")?))
}

/// Wait for `child` up to `limit`; past it, SIGTERM (forge stops its engines), then SIGKILL.
pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let mut status = None;
    if wait_until(limit, || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    }) {
        return status;
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_secs(15));
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The words every real llama.cpp tune of the tests starts with: `forge tune` of the SmolLM2
/// peer on the llama.cpp fixture workload, on this CPU, with the built-in agent, into
/// `store`.
pub fn tune_args(p: &Peers, store: &Path) -> Vec<String> {
    let workload = super::run::fixture("llamacpp/workload.jsonl");
    let words = [
        "tune", "--engine", "llamacpp", "--device", "cpu", "--llm", "builtin",
    ];
    let mut out: Vec<String> = words.map(str::to_string).to_vec();
    for (flag, value) in [
        ("--model", p.model.as_path()),
        ("--workload", workload.as_path()),
        ("--run-dir", store),
    ] {
        out.push(flag.to_string());
        out.push(value.display().to_string());
    }
    out
}
