//! Engine processes: spawn as argv in a fresh process group bound to loopback, wait until
//! ready, and tear the whole group down (SIGTERM → grace → SIGKILL) — so no worker process
//! is ever left holding a GPU.
//!
//! Children get `PR_SET_PDEATHSIG(SIGKILL)`: if forge itself is killed (even `kill -9`), the
//! kernel kills the process forge started — one generation only, so a server a launcher
//! keeps as its own child survives until a resume. Each launch is recorded in the run's
//! `engines.pids`, and a resumed run reaps every recorded group that still has members.
//! Engines never inherit the LLM provider's keys ([`is_agent_secret`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// How one launch is done.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// Program (resolved path or name on PATH).
    pub program: PathBuf,
    /// Arguments (never a shell string).
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go.
    pub log_path: PathBuf,
    /// Files the command reads, written (atomically) before it starts: `(path, content)`
    /// (trtllm-serve's `--extra_llm_api_options` YAML).
    pub files: Vec<(PathBuf, String)>,
}

impl LaunchSpec {
    /// `launcher` (the program, then its own words) followed by `args`, output to `log`, no
    /// extra environment or files.
    pub fn from_launcher(
        launcher: &[String],
        args: Vec<String>,
        log: &Path,
    ) -> Result<LaunchSpec, crate::recipe::Illegal> {
        let Some((program, rest)) = launcher.split_first() else {
            return Err(crate::recipe::Illegal::recipe("empty engine launcher"));
        };
        let mut all = rest.to_vec();
        all.extend(args);
        Ok(LaunchSpec {
            program: PathBuf::from(program),
            args: all,
            env: Vec::new(),
            log_path: log.to_path_buf(),
            files: Vec::new(),
        })
    }
}

/// Environment variable that shortens the SIGTERM → SIGKILL grace of a real engine
/// (seconds; tests use it with servers that ignore SIGTERM).
pub const GRACE_ENV: &str = "FORGE_ENGINE_GRACE_S";

/// The SIGTERM → SIGKILL grace of a real engine: [`GRACE_ENV`] when set to a valid
/// number of seconds, else `default`.
pub fn grace_or(default: Duration) -> Duration {
    std::env::var(GRACE_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(default, Duration::from_secs_f64)
}

/// A running engine process group.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Process-group id (= the leader's pid).
    pub pgid: i32,
    /// When it was spawned.
    pub started: Instant,
    /// Its log.
    pub log_path: PathBuf,
}

/// One recorded launch in `engines.pids`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PidRecord {
    /// Process group.
    pub pgid: i32,
    /// Kernel start time of the leader (from /proc), to tell a recycled pid apart.
    pub start_ticks: Option<u64>,
    /// Program name, for messages.
    pub program: String,
}

/// Whether an environment variable holds an LLM provider's key (`ANTHROPIC_API_KEY`,
/// `OPENAI_API_KEY`, …, `FORGE_LLM_API_KEY`: every `*_API_KEY`). An engine never gets one:
/// it has no use for it, and a model's remote code or a plugin could read it. `HF_TOKEN`
/// stays (gated models are downloaded with it).
pub fn is_agent_secret(name: &str) -> bool {
    name.to_ascii_uppercase().ends_with("_API_KEY")
}

/// Spawn `spec` in its own process group with its output in the log file, without the
/// agent's keys in its environment.
pub fn spawn(spec: &LaunchSpec) -> std::io::Result<ServerProcess> {
    for (path, content) in &spec.files {
        crate::store::write_atomic(path, content.as_bytes()).map_err(std::io::Error::other)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log_path)?;
    let mut cmd = Command::new(&spec.program);
    for (k, _) in std::env::vars_os() {
        if k.to_str().is_some_and(is_agent_secret) {
            cmd.env_remove(k);
        }
    }
    cmd.args(&spec.args)
        .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure only calls prctl(2), which is async-signal-safe, between fork
    // and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn()?;
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| std::io::Error::other("spawned process has no pid"))?;
    Ok(ServerProcess {
        child,
        pgid: pid,
        started: Instant::now(),
        log_path: spec.log_path.clone(),
    })
}

impl ServerProcess {
    /// Exit status if the leader has exited (non-blocking).
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The leader's record for `engines.pids`.
    pub fn record(&self, program: &str) -> PidRecord {
        PidRecord {
            pgid: self.pgid,
            start_ticks: start_ticks(self.pgid),
            program: program.to_string(),
        }
    }

    /// Stop the whole group: SIGTERM, wait up to `grace` for the leader, SIGKILL the group,
    /// then wait until no member of the group is left (bounded). Returns the leader's
    /// exit status when it was collected.
    pub async fn stop(mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
        let status = tokio::time::timeout(grace, self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        kill_group(self.pgid);
        let status = match status {
            Some(s) => Some(s),
            None => self.child.wait().await.ok(),
        };
        wait_group_gone(self.pgid, Duration::from_secs(5)).await;
        status
    }
}

/// SIGKILL every member of a process group (ignores "no such group").
pub fn kill_group(pgid: i32) {
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
}

/// Pids whose process group is `pgid` (scans /proc; zombies excluded).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            proc_stat(*pid).is_some_and(|f| {
                f.get(2) != Some(&"Z".to_string()) && f.get(4) == Some(&pgid.to_string())
            })
        })
        .collect()
}

async fn wait_group_gone(pgid: i32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !group_members(pgid).is_empty() && Instant::now() < deadline {
        kill_group(pgid);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Fields of /proc/PID/stat after the command name (index 2 = state, 4 = pgrp, 21 = start).
fn proc_stat(pid: i32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    let mut fields = vec![pid.to_string(), text[..close].to_string()];
    fields.extend(text[close + 1..].split_whitespace().map(str::to_string));
    Some(fields)
}

pub(crate) fn start_ticks(pid: i32) -> Option<u64> {
    proc_stat(pid)?.get(21)?.parse().ok()
}

/// Append a launch record to `engines.pids` (fsync'd).
pub fn record_launch(pids_file: &Path, rec: &PidRecord) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(pids_file)?;
    let line = serde_json::to_string(rec).map_err(std::io::Error::other)?;
    writeln!(f, "{line}")?;
    f.sync_data()
}

/// How many launches `pids_file` records (a run's boots so far: a resumed run goes on
/// numbering its logs and simulator seeds from there).
pub fn launches_recorded(pids_file: &Path) -> u64 {
    std::fs::read_to_string(pids_file).map_or(0, |t| t.lines().count() as u64)
}

/// Kill every recorded group that still has members, when its leader is the process that
/// was recorded (or is gone, leaving orphans in the group). Returns the groups reaped.
pub fn reap_recorded(pids_file: &Path) -> Vec<i32> {
    let Ok(text) = std::fs::read_to_string(pids_file) else {
        return Vec::new();
    };
    let mut reaped = Vec::new();
    for rec in text
        .lines()
        .filter_map(|l| serde_json::from_str::<PidRecord>(l).ok())
    {
        let members = group_members(rec.pgid);
        if members.is_empty() {
            continue;
        }
        let leader_alive = members.contains(&rec.pgid);
        let same_leader = start_ticks(rec.pgid) == rec.start_ticks;
        if !leader_alive || same_leader {
            kill_group(rec.pgid);
            reaped.push(rec.pgid);
        }
    }
    reaped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(dir: &Path, script: &str) -> LaunchSpec {
        LaunchSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![],
            log_path: dir.join("log"),
            files: Vec::new(),
        }
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group_including_term_ignorers() {
        let dir = tempfile::tempdir().unwrap();
        // Leader ignores TERM and has a grandchild that also ignores it.
        let p = spawn(&spec(
            dir.path(),
            "trap '' TERM; (trap '' TERM; sleep 60) & sleep 60",
        ))
        .unwrap();
        let pgid = p.pgid;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(group_members(pgid).len() >= 2);
        p.stop(Duration::from_millis(200)).await;
        assert!(group_members(pgid).is_empty());
    }

    #[tokio::test]
    async fn output_goes_to_the_log_and_exit_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let mut p = spawn(&spec(dir.path(), "echo hello; echo oops >&2; exit 3")).unwrap();
        let mut status = None;
        for _ in 0..100 {
            status = p.try_exit();
            if status.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(status.unwrap().code(), Some(3));
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.contains("hello") && log.contains("oops"));
    }

    #[tokio::test]
    async fn recorded_orphans_are_reaped() {
        let dir = tempfile::tempdir().unwrap();
        let p = spawn(&spec(dir.path(), "sleep 60 & sleep 60")).unwrap();
        let pids = dir.path().join("engines.pids");
        record_launch(&pids, &p.record("sh")).unwrap();
        let pgid = p.pgid;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Kill only the leader: its child stays in the group, orphaned.
        let _ = nix::sys::signal::kill(Pid::from_raw(pgid), Signal::SIGKILL);
        drop(p);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!group_members(pgid).is_empty());
        assert_eq!(reap_recorded(&pids), vec![pgid]);
        for _ in 0..50 {
            if group_members(pgid).is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(group_members(pgid).is_empty());
    }
}
