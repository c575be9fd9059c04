//! The `forge` binary under test, started one way: `forge(args)` builds the command (the
//! binary cargo built, no agent API keys and no `LLAMA_ARG_*` in its environment, stdin
//! from `/dev/null`); `forge_in_group` puts it in a process group of its own so a group kill
//! reaches everything it starts; `forge_async` hands it to tokio. Then run it to completion
//! (`run`, `run_async`) or in the background with its output in files (`Running`).
//!
//! (Named `bin`, not `forge`, so that `forge::…` in a test always means the library.)

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::procs::wait_until;

/// The binary cargo built for these tests.
pub const FORGE: &str = env!("CARGO_BIN_EXE_forge");

/// `forge args...`, stdin from `/dev/null`, without the variables of the test's own
/// environment that would change what it does: agent API keys (one would pick an LLM
/// agent) and `LLAMA_ARG_*` (they change llama-server's defaults).
pub fn forge(args: &[&str]) -> Command {
    let mut c = Command::new(FORGE);
    c.args(args).stdin(Stdio::null());
    let stray = |k: &str| k.ends_with("_API_KEY") || k.starts_with("LLAMA_ARG_");
    for (k, _) in std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(stray)) {
        c.env_remove(k);
    }
    c
}

/// `forge(args)` in a new process group (its id is the child's pid).
pub fn forge_in_group(args: &[&str]) -> Command {
    let mut c = forge(args);
    c.process_group(0);
    c
}

/// `forge(args)` for tokio, killed if the test drops it.
pub fn forge_async(args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::from(forge(args));
    c.kill_on_drop(true);
    c
}

/// How a finished `forge` ended and what it printed.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Outcome {
    /// True when it exited 0.
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl From<Output> for Outcome {
    fn from(out: Output) -> Outcome {
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Run `cmd` to completion, capturing its output.
pub fn run(cmd: &mut Command) -> Outcome {
    cmd.output().unwrap().into()
}

/// Run `forge args...` to completion on the test's runtime, with `NO_COLOR=1`.
pub async fn run_async(args: &[&str]) -> Outcome {
    let mut c = forge_async(args);
    c.env("NO_COLOR", "1");
    c.output().await.unwrap().into()
}

/// A `forge` started in a process group of its own, its output appended to `forge.out`
/// and `forge.err` in a directory. Dropped while still running, its group is killed.
pub struct Running {
    /// The child.
    pub child: Child,
    /// Its pid (and process group id).
    pub pid: i32,
    dir: PathBuf,
}

impl Running {
    /// Start `cmd` (from `forge_in_group`), logging into `dir`.
    pub fn start(mut cmd: Command, dir: &Path) -> Running {
        cmd.stdout(log_file(dir, "forge.out"))
            .stderr(log_file(dir, "forge.err"));
        let child = cmd.spawn().unwrap();
        Running {
            pid: child.id() as i32,
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// Wait for exit (panics with its stderr after `limit`).
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut status = None;
        wait_until(limit, || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap_or_else(|| panic!("forge did not exit within {limit:?}\n{}", self.stderr()))
    }

    /// Everything written to `forge.out` so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.dir.join("forge.out")).unwrap_or_default()
    }

    /// Everything written to `forge.err` so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("forge.err")).unwrap_or_default()
    }

    /// Send `sig` to the process (not its group).
    pub fn signal(&self, sig: Signal) {
        kill(Pid::from_raw(self.pid), sig).unwrap();
    }

    /// Wait for `line` on stderr, then `after`, then SIGKILL forge alone (what it started
    /// is left as a real kill leaves it).
    pub fn kill_at(&mut self, line: &str, after: Duration) {
        let seen = wait_until(Duration::from_secs(900), || self.stderr().contains(line));
        assert!(seen, "never saw {line:?}:\n{}", self.stderr());
        std::thread::sleep(after);
        self.signal(Signal::SIGKILL);
        self.wait(Duration::from_secs(30));
    }
}

/// `forge args…` in a group of its own with `TAG_VAR=tag` (so what it starts can be found),
/// logging into `dir/name`.
pub fn session(args: &[&str], tag: &str, dir: &Path, name: &str) -> Running {
    let logs = dir.join(name);
    std::fs::create_dir_all(&logs).unwrap();
    let mut cmd = forge_in_group(args);
    cmd.env(super::procs::TAG_VAR, tag).env("NO_COLOR", "1");
    Running::start(cmd, &logs)
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

/// `dir/name`, opened for appending (created if missing).
fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .unwrap()
}
