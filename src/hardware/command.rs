//! Running a short-lived tool (`nvidia-smi`, `rocm-smi`, `vllm --version`) as argv with a
//! deadline, capturing what it prints. Never a shell string. The tool runs in its own
//! process group so that on timeout everything it started is killed, not just the leader.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// What a finished tool printed, and how it exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Standard error, lossily decoded.
    pub stderr: String,
}

impl Captured {
    /// True for exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout and stderr together, for error messages and for tools that print their
    /// answer on either stream.
    pub fn all_text(&self) -> String {
        match (self.stdout.trim().is_empty(), self.stderr.trim().is_empty()) {
            (false, true) => self.stdout.clone(),
            (true, false) => self.stderr.clone(),
            _ => format!("{}{}", self.stdout, self.stderr),
        }
    }
}

/// Why a tool could not be run to completion. Callers branch on `NotFound` (the tool is
/// absent: try the next source) versus the others (present but broken).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// No such executable.
    #[error("`{program}` not found")]
    NotFound {
        /// Program as given.
        program: String,
    },
    /// It exists but could not be started (permissions, bad interpreter, ...).
    #[error("`{program}` could not be started: {source}")]
    Spawn {
        /// Program as given.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran past the deadline and was killed.
    #[error("`{program}` did not finish within {}s and was killed", after.as_secs_f64())]
    Timeout {
        /// Program as given.
        program: String,
        /// The deadline.
        after: Duration,
    },
    /// Waiting for it failed.
    #[error("waiting for `{program}` failed: {source}")]
    Wait {
        /// Program as given.
        program: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Run `program args...` with stdin closed, wait at most `timeout`, and return its output.
pub fn capture(
    program: &OsStr,
    args: &[&str],
    timeout: Duration,
) -> Result<Captured, CaptureError> {
    let name = program.to_string_lossy().into_owned();
    let mut child = spawn(program, args).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CaptureError::NotFound {
            program: name.clone(),
        },
        _ => CaptureError::Spawn {
            program: name.clone(),
            source: e,
        },
    })?;
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_with_deadline(&mut child, timeout).map_err(|source| CaptureError::Wait {
        program: name.clone(),
        source,
    })?;
    let (stdout, stderr) = (join(out), join(err));
    match status {
        Some(s) => Ok(Captured {
            code: s.code(),
            stdout,
            stderr,
        }),
        None => Err(CaptureError::Timeout {
            program: name,
            after: timeout,
        }),
    }
}

fn spawn(program: &OsStr, args: &[&str]) -> std::io::Result<Child> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> String {
    handle
        .and_then(|h| h.join().ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Poll until the child exits or the deadline passes; on timeout kill its whole group
/// (so pipes close and the readers finish) and return `None`.
fn wait_with_deadline(child: &mut Child, timeout: Duration) -> std::io::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where `program` would be found: itself when it names a path, else the first executable
/// of that name on `PATH`.
pub fn which(program: &OsStr) -> Option<PathBuf> {
    let path = Path::new(program);
    if path.components().count() > 1 {
        return is_executable(path).then(|| path.to_path_buf());
    }
    let dirs: OsString = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn captures_both_streams_and_the_exit_code() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "t", "echo out; echo err >&2; exit 3");
        let c = capture(p.as_os_str(), &[], Duration::from_secs(10)).unwrap();
        assert_eq!(
            c,
            Captured {
                code: Some(3),
                stdout: "out\n".into(),
                stderr: "err\n".into()
            }
        );
        assert_eq!(c.all_text(), "out\nerr\n");
    }

    #[test]
    fn args_are_passed_verbatim_not_through_a_shell() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "t", "printf '%s|' \"$@\"");
        let c = capture(
            p.as_os_str(),
            &["a b", "$HOME", ";ls"],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(c.stdout, "a b|$HOME|;ls|");
    }

    #[test]
    fn missing_program_is_not_found() {
        let e = capture(
            OsStr::new("/nonexistent/forge-test-tool"),
            &[],
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, CaptureError::NotFound { .. }), "{e}");
    }

    #[test]
    fn a_hung_tool_and_its_children_are_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pid");
        let p = script(
            dir.path(),
            "t",
            &format!("sleep 30 & echo $! > {}; wait", marker.display()),
        );
        let e = capture(p.as_os_str(), &[], Duration::from_millis(300)).unwrap_err();
        assert!(matches!(e, CaptureError::Timeout { .. }), "{e}");
        let pid: i32 = std::fs::read_to_string(&marker)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The grandchild `sleep` was in the tool's process group: it was killed. It may still
        // be finishing its exit, so allow it a moment to become gone or a zombie.
        let dead = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            stat.is_empty() || stat.contains(") Z ")
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !dead() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(dead(), "sleep {pid} survived the timeout");
    }

    #[test]
    fn which_finds_paths_and_path_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "forge-which-test", "true");
        assert_eq!(which(p.as_os_str()), Some(p.clone()));
        assert_eq!(which(OsStr::new("/nonexistent/x")), None);
        assert!(which(OsStr::new("sh")).is_some());
    }
}
