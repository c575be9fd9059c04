//! One build step as a child process: argv only, its own process group (a timeout kills
//! the compilers under ninja too), stdout and stderr merged into one pipe that is streamed
//! to the attempt's log (opened append-only; a `$ argv` header first) and through the
//! [`ErrorScan`] on the way — the output is never held whole in memory.

use super::scan::{ErrorScan, MAX_LINE_BYTES};
use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a running step is checked against its deadline.
const POLL: Duration = Duration::from_millis(50);

/// A command to run: program, arguments, and the environment it gets on top of forge's.
#[derive(Debug, Clone)]
pub struct Step {
    /// The program (a resolved path).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// Variables set for it (on top of the inherited environment).
    pub env: Vec<(OsString, OsString)>,
    /// Where it runs.
    pub dir: PathBuf,
    /// Where its process group is recorded once started (`engines.pids`), so a campaign
    /// resumed after a `kill -9` reaps a build still running in the build directory.
    pub pids: Option<PathBuf>,
}

/// How a step ended.
#[derive(Debug)]
pub enum Ended {
    /// It exited (successfully or not); its first error lines.
    Exited {
        /// Its exit status.
        status: ExitStatus,
        /// What the [`ErrorScan`] kept.
        first_errors: Vec<String>,
    },
    /// It ran past the deadline and was killed with its process group.
    TimedOut,
}

impl Step {
    /// A step running `program` in `dir`.
    pub fn new(program: &Path, dir: &Path) -> Self {
        Step {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            dir: dir.to_path_buf(),
            pids: None,
        }
    }

    /// Record the step's process group in `pids` when it starts.
    pub fn recorded_in(mut self, pids: Option<&Path>) -> Self {
        self.pids = pids.map(Path::to_path_buf);
        self
    }

    /// Add arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Set an environment variable for the step.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// The `$ program args…` header written to the log before the output.
    fn header(&self) -> String {
        let mut words = Vec::new();
        for (k, v) in &self.env {
            words.push(format!("{}={}", k.to_string_lossy(), v.to_string_lossy()));
        }
        words.push(self.program.display().to_string());
        words.extend(self.args.iter().map(|a| a.to_string_lossy().into_owned()));
        format!("$ {}\n", words.join(" "))
    }

    /// Run until it exits or `deadline` passes, streaming its output to `log`.
    pub fn run(&self, log: &Path, deadline: Instant) -> io::Result<Ended> {
        let mut file = OpenOptions::new().create(true).append(true).open(log)?;
        file.write_all(self.header().as_bytes())?;
        let (reader, writer) = io::pipe()?;
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        let mut child = cmd.spawn()?;
        if let Some(pids) = &self.pids {
            record(pids, &child, &self.program)?;
        }
        // The write ends must close here, or the reader never sees the end.
        drop(cmd);
        let pump = std::thread::spawn(move || pump(reader, file));
        let waited = wait_until(&mut child, deadline);
        let scanned = pump.join().unwrap_or_else(|_| Ok(ErrorScan::new()));
        let first_errors = scanned?.finish();
        match waited? {
            Some(status) => Ok(Ended::Exited {
                status,
                first_errors,
            }),
            None => Ok(Ended::TimedOut),
        }
    }
}

/// Append the child's process group to `pids` (fsync'd); a failure kills the child.
fn record(pids: &Path, child: &Child, program: &Path) -> io::Result<()> {
    use crate::engine::process::{PidRecord, record_launch, start_ticks};
    let pgid = i32::try_from(child.id()).map_err(io::Error::other)?;
    let rec = PidRecord {
        pgid,
        start_ticks: start_ticks(pgid),
        program: program.display().to_string(),
    };
    record_launch(pids, &rec).inspect_err(|_| kill_group(child))
}

/// Wait for `child`; past `deadline` kill its process group and reap it (`None`).
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            kill_group(child);
            child.wait()?;
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// SIGKILL to the child's process group (the child leads it: `process_group(0)`).
fn kill_group(child: &Child) {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(child.id()) else {
        return;
    };
    // Already gone is fine: the wait that follows reaps it.
    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
}

/// Copy `reader` to `file` as it comes, feeding each line (clipped) to a scan.
fn pump(reader: impl Read, mut file: File) -> io::Result<ErrorScan> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    let mut scan = ErrorScan::new();
    let mut line: Vec<u8> = Vec::with_capacity(MAX_LINE_BYTES);
    loop {
        let chunk = reader.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        file.write_all(chunk)?;
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            let body = piece.strip_suffix(b"\n").unwrap_or(piece);
            line.extend_from_slice(&body[..body.len().min(room)]);
            if piece.ends_with(b"\n") {
                scan.feed(&String::from_utf8_lossy(&line));
                line.clear();
            }
        }
        let used = chunk.len();
        reader.consume(used);
    }
    if !line.is_empty() {
        scan.feed(&String::from_utf8_lossy(&line));
    }
    file.flush()?;
    Ok(scan)
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
