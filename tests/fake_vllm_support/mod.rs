//! Harness for the tests that run `forge tune` against the fake `vllm`
//! (`tests/fixtures/fake-vllm/vllm`, forge's simulator behind vLLM's CLI) or the
//! simulator directly. Every process a test starts carries a marker in its environment
//! (children inherit it), so the test can list — and must find no — survivors afterwards:
//! engines, their `--sim-spawn-child` grandchildren, servers ignoring SIGTERM.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;

/// A small model in the simulator's catalogue.
pub const MODEL: &str = "Qwen/Qwen3-0.6B";
/// Environment variable holding the per-test marker.
pub const MARKER_VAR: &str = "FORGE_TEST_MARKER";

/// The repository's fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The fake `vllm` launcher.
pub fn fake_vllm() -> PathBuf {
    fixtures().join("fake-vllm/vllm")
}

/// The tiny workload every test replays.
pub fn workload() -> PathBuf {
    fixtures().join("sim_small.jsonl")
}

/// One test's sandbox: a temp dir (run store, fake state) and a unique marker.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub marker: String,
    env: Vec<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!(
            "forge-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let state = dir.path().join("state").display().to_string();
        let env = vec![
            (MARKER_VAR.into(), marker.clone()),
            ("FAKE_VLLM_FORGE".into(), env!("CARGO_BIN_EXE_forge").into()),
            ("FAKE_VLLM_STATE".into(), state),
            (
                "FAKE_VLLM_SIM_ARGS".into(),
                "--sim-time-scale 0.01 --sim-boot-time-scale 0.001".into(),
            ),
        ];
        Sandbox { dir, marker, env }
    }

    /// Set (or replace) an environment variable for every process started from here.
    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.retain(|(x, _)| x != k);
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The run store (`--run-dir`).
    pub fn store(&self) -> PathBuf {
        self.path().join("store")
    }

    /// The only run directory in the store.
    pub fn run(&self) -> PathBuf {
        let runs = self.store().join("runs");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        dirs.sort();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs.pop().unwrap()
    }

    /// A file the fake wrote (`boots`, `argv`), as lines.
    pub fn state_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join("state").join(name))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// `forge args...` with the sandbox's environment, in its own process group.
    pub fn forge(&self, args: &[&str]) -> Running {
        let mut c = Command::new(env!("CARGO_BIN_EXE_forge"));
        c.args(args)
            .current_dir(self.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log_file(self.path(), "forge.out")))
            .stderr(Stdio::from(log_file(self.path(), "forge.err")))
            .process_group(0);
        let child = c.spawn().unwrap();
        Running {
            pid: child.id() as i32,
            child,
            dir: self.path().to_path_buf(),
        }
    }

    /// `forge tune` against the fake vLLM with the common flags plus `extra`.
    pub fn tune_fake(&self, extra: &[&str]) -> Running {
        let store = self.store().display().to_string();
        let fake = fake_vllm().display().to_string();
        let wl = workload().display().to_string();
        let mut args = vec![
            "tune",
            "-m",
            MODEL,
            "-w",
            &wl,
            "--engine",
            "vllm",
            "--engine-cmd",
            &fake,
            "--device",
            "cpu",
            "--llm",
            "builtin",
            "--max-repeats",
            "1",
            "--run-dir",
            &store,
        ];
        args.extend_from_slice(extra);
        self.forge(&args)
    }

    /// Processes carrying this sandbox's marker that are still alive: `(pid, cmdline)`.
    pub fn survivors(&self) -> Vec<(i32, String)> {
        survivors(&self.marker)
    }

    /// Wait (bounded) until nothing this test started is alive; kill and report what is.
    pub fn assert_nothing_survives(&self) {
        let end = Instant::now() + Duration::from_secs(10);
        let mut left = self.survivors();
        while !left.is_empty() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
            left = self.survivors();
        }
        for (pid, _) in &left {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
        assert!(left.is_empty(), "processes survived the test: {left:?}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for (pid, _) in survivors(&self.marker) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap()
}

/// Live (non-zombie) processes whose environment holds `MARKER_VAR=marker`.
pub fn survivors(marker: &str) -> Vec<(i32, String)> {
    let needle = format!("{MARKER_VAR}={marker}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let marked = env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes());
        if marked && alive(pid) {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            out.push((pid, cmd));
        }
    }
    out
}

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// A running forge.
pub struct Running {
    pub child: Child,
    pub pid: i32,
    dir: PathBuf,
}

impl Running {
    /// Wait for exit (panics with the output after `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("forge did not exit within {limit:?}\n{}", self.stderr());
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("forge.out")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("forge.err")).unwrap_or_default()
    }

    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// The run's journal rows.
pub fn journal(run: &Path) -> Vec<Value> {
    std::fs::read_to_string(run.join("experiments.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The failure class of a row, if it failed.
pub fn class(row: &Value) -> Option<&str> {
    row.pointer("/failure/class").and_then(Value::as_str)
}

/// Wait until `cond` holds (bounded).
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}
