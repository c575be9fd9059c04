//! One test's sandbox: a temporary directory (the run store `.forge`, the fake `vllm`'s
//! state, forge's logs) and a unique tag in the environment of every process started from
//! it (children inherit it), so the test can list — and must find no — survivors:
//! engines, their `--sim-spawn-child` grandchildren, servers ignoring SIGTERM. Whatever
//! still carries the tag when the sandbox drops is SIGKILLed.
//!
//! The environment also points the fake `vllm` (`tests/fixtures/fake-vllm/vllm`, forge's
//! simulator behind vLLM's CLI) at this binary and this sandbox's state; tests that never
//! start it are unaffected.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::bin::{FORGE, Outcome, Running, forge_in_group, run};
use super::procs::{TAG_VAR, tagged, wait_until};
use super::run::{fixture, only_run_dir, sim_small_workload};
use super::sim_proc::MODEL;

/// A temporary store plus a unique tag.
pub struct Sandbox {
    /// The temporary directory (the store is `<dir>/.forge`, the fake's state `<dir>/state`).
    pub dir: tempfile::TempDir,
    /// The unique tag (`TAG_VAR`'s value).
    pub tag: String,
    env: Vec<(String, String)>,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl Sandbox {
    /// A fresh sandbox.
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!(
            "forge-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        std::fs::create_dir_all(dir.path().join("state")).unwrap();
        let state = dir.path().join("state").display().to_string();
        let hf_cache = dir.path().join("hf-hub").display().to_string();
        let env = vec![
            // Hermetic layer 2: an empty Hugging Face cache of its own, and a Hub that does
            // not answer (a test that wants one points HF_ENDPOINT at its wiremock).
            ("HF_HUB_CACHE".into(), hf_cache),
            ("HF_ENDPOINT".into(), "http://127.0.0.1:9".into()),
            (TAG_VAR.into(), tag.clone()),
            ("FAKE_VLLM_FORGE".into(), FORGE.into()),
            ("FAKE_VLLM_STATE".into(), state),
            (
                "FAKE_VLLM_SIM_ARGS".into(),
                "--sim-time-scale 0.01 --sim-boot-time-scale 0.001".into(),
            ),
        ];
        Sandbox { dir, tag, env }
    }

    /// Set (or replace) an environment variable for every process started from here.
    pub fn set(&mut self, k: &str, v: &str) -> &mut Self {
        self.env.retain(|(x, _)| x != k);
        self.env.push((k.into(), v.into()));
        self
    }

    /// The temporary directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The run store (forge's default in this working directory; `--run-dir`).
    pub fn store(&self) -> PathBuf {
        self.path().join(".forge")
    }

    /// The only run directory in the store.
    pub fn run_dir(&self) -> PathBuf {
        only_run_dir(&self.store())
    }

    /// A file the fake `vllm` wrote (`boots`, `argv`, `terms`), as lines.
    pub fn state_lines(&self, name: &str) -> Vec<String> {
        std::fs::read_to_string(self.path().join("state").join(name))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// `forge args...` in the sandbox (its working directory), tagged, in its own process
    /// group.
    pub fn forge(&self, args: &[&str]) -> Command {
        let mut c = forge_in_group(args);
        c.current_dir(self.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        c
    }

    /// Run `forge args...` in the sandbox to completion.
    pub fn run(&self, args: &[&str]) -> Outcome {
        run(&mut self.forge(args))
    }

    /// Start `forge args...` in the sandbox, its output in `forge.out` / `forge.err` there.
    pub fn start(&self, args: &[&str]) -> Running {
        Running::start(self.forge(args), self.path())
    }

    /// `forge tune` of `model` on `workload` against the fake `vllm`, with the common flags.
    pub fn fake_tune_args(&self, model: &str, workload: &str) -> Vec<String> {
        let fake = fixture("fake-vllm/vllm").display().to_string();
        self.engine_tune_args("vllm", &fake, model, workload)
    }

    /// `forge tune --engine engine --engine-cmd launcher` of `model` on `workload`, with
    /// the common flags (CPU device, built-in agent, one repeat, this sandbox's store).
    pub fn engine_tune_args(
        &self,
        engine: &str,
        launcher: &str,
        model: &str,
        workload: &str,
    ) -> Vec<String> {
        let store = self.store().display().to_string();
        [
            "tune",
            "-m",
            model,
            "-w",
            workload,
            "--engine",
            engine,
            "--engine-cmd",
            launcher,
            "--device",
            "cpu",
            "--llm",
            "builtin",
            "--max-repeats",
            "1",
            "--run-dir",
            &store,
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// Start `forge tune` against the fake `vllm` with the common flags plus `extra`.
    pub fn tune_fake(&self, extra: &[&str]) -> Running {
        let wl = sim_small_workload().display().to_string();
        let mut args = self.fake_tune_args(MODEL, &wl);
        args.extend(extra.iter().map(|a| a.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.start(&args)
    }

    /// Live processes carrying this sandbox's tag: `(pid, command line)`.
    pub fn survivors(&self) -> Vec<(i32, String)> {
        tagged(&self.tag)
    }

    /// Wait up to `limit` for every tagged process to be gone; return the survivors.
    pub fn survivors_after(&self, limit: Duration) -> Vec<(i32, String)> {
        let mut left = Vec::new();
        wait_until(limit, || {
            left = self.survivors();
            left.is_empty()
        });
        left
    }

    /// Wait (bounded) until nothing this test started is alive; kill and report what is.
    pub fn assert_nothing_survives(&self) {
        let left = self.survivors_after(Duration::from_secs(10));
        kill_all(&left);
        assert!(left.is_empty(), "processes survived the test: {left:?}");
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        // Whatever a failed test left behind must not outlive it.
        kill_all(&self.survivors());
    }
}

/// SIGKILL every listed process.
fn kill_all(procs: &[(i32, String)]) {
    for (pid, _) in procs {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}
