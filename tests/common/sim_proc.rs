//! `forge` as a child process the test talks to — mostly `forge sim serve`: start the real
//! binary in its own process group, follow its output, wait for readiness, and kill the
//! whole group when the test ends, so no process a test started outlives it (grandchildren
//! included). Plus what the HTTP tests read back: SSE events, per-run fields normalized.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::bin::forge_in_group;
use super::procs::wait_until;

/// The model most tests serve or tune (small, in the simulator's catalogue).
pub const MODEL: &str = "Qwen/Qwen3-0.6B";

/// A running `forge` process and everything it printed so far.
pub struct Proc {
    /// The child.
    pub child: Child,
    /// Its pid (and process group id).
    pub pid: i32,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    status: Option<ExitStatus>,
}

/// Append every line `stream` yields to `sink`, on a thread of its own.
fn follow(stream: impl Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let reader = BufReader::new(stream);
        for line in reader.lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

/// Start `forge args...` in its own process group, following its output.
pub fn spawn(args: &[&str]) -> Proc {
    let mut child = forge_in_group(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn forge");
    let pid = child.id() as i32;
    let out = Arc::new(Mutex::new(String::new()));
    let err = Arc::new(Mutex::new(String::new()));
    follow(child.stdout.take().unwrap(), out.clone());
    follow(child.stderr.take().unwrap(), err.clone());
    Proc {
        child,
        pid,
        out,
        err,
        status: None,
    }
}

/// Start `forge sim serve MODEL --port 0 --sim-time-scale 0.01 extra...`.
pub fn serve(extra: &[&str]) -> Proc {
    let mut args = vec![
        "sim",
        "serve",
        MODEL,
        "--port",
        "0",
        "--sim-time-scale",
        "0.01",
    ];
    args.extend_from_slice(extra);
    spawn(&args)
}

impl Proc {
    /// Everything it printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    /// Everything it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// The first stdout line containing `needle`, if any yet.
    fn line(&self, needle: &str) -> Option<String> {
        self.stdout()
            .lines()
            .find(|l| l.contains(needle))
            .map(String::from)
    }

    /// Wait until stdout has a line containing `needle` (or the process exits); returns
    /// that line.
    pub fn wait_line(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        wait_until(timeout, || self.line(needle).is_some() || self.exited());
        // One last look: the line may have landed just before exit.
        self.line(needle)
    }

    /// Wait for "Application startup complete." and return the bound port.
    pub fn ready(&mut self) -> u16 {
        let line = self
            .wait_line(
                "Starting vLLM API server 0 on http://",
                Duration::from_secs(60),
            )
            .unwrap_or_else(|| {
                panic!(
                    "server never started\nstdout:\n{}\nstderr:\n{}",
                    self.stdout(),
                    self.stderr()
                )
            });
        self.wait_line("Application startup complete.", Duration::from_secs(10))
            .expect("startup complete");
        let port = line.rsplit(':').next().unwrap().trim();
        port.parse().expect("port")
    }

    /// Peek at the exit status without reaping: while the leader is an unreaped zombie its
    /// pid — the group id — cannot be reused, so the group kill in `Drop` can never hit
    /// another test's server.
    fn exited(&mut self) -> bool {
        use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid};
        use std::os::unix::process::ExitStatusExt;
        if self.status.is_none() {
            let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::WNOHANG;
            self.status = match waitid(Id::Pid(Pid::from_raw(self.pid)), flags) {
                Ok(WaitStatus::Exited(_, code)) => Some(ExitStatus::from_raw((code & 0xff) << 8)),
                Ok(WaitStatus::Signaled(_, sig, _)) => Some(ExitStatus::from_raw(sig as i32)),
                _ => None,
            };
        }
        self.status.is_some()
    }

    /// Wait for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if !wait_until(timeout, || self.exited()) {
            return None;
        }
        // Let the output threads drain.
        std::thread::sleep(Duration::from_millis(50));
        self.status
    }

    /// Send `sig` to the process (not its group).
    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid), sig);
    }

    /// The pid in the engine-core log prefix (`(EngineCore_DP0 pid=N)`).
    pub fn engine_pid(&mut self) -> i32 {
        let line = self
            .wait_line("(EngineCore_DP0 pid=", Duration::from_secs(30))
            .expect("engine core line");
        let rest = line.split("pid=").nth(1).unwrap();
        rest[..rest.find(')').unwrap()].parse().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // The leader is not reaped before this point (see `exited`), so the group id is
        // still ours.
        let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

/// Start `forge sim serve ARGS` (a twin: `--engine sglang|trtllm …`) on a free port, at
/// fast simulated clocks; its port once uvicorn says where it runs.
pub fn start_twin(args: &[&str]) -> (Proc, u16) {
    let mut all = vec!["sim", "serve"];
    all.extend_from_slice(args);
    all.extend([
        "--port",
        "0",
        "--sim-time-scale",
        "0.01",
        "--sim-boot-time-scale",
        "0.001",
    ]);
    let p = spawn(&all);
    let marker = "Uvicorn running on http://";
    assert!(
        wait_until(Duration::from_secs(30), || p.stderr().contains(marker)),
        "never ready:\n{}",
        p.stderr()
    );
    let err = p.stderr();
    let port = err
        .lines()
        .find_map(|l| l.split(marker).nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    (p, port)
}

/// `data:` payloads of an SSE body, in order.
pub fn sse_events(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter(|f| !f.is_empty())
        .map(|f| f.strip_prefix("data: ").unwrap_or(f).to_string())
        .collect()
}

/// An HTTP client.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// Replace the parts of a JSON text that change per run (id, created) with fixed values.
pub fn normalize(json: &str) -> String {
    let mut out = String::new();
    let mut rest = json;
    while let Some(i) = rest.find("\"created\":") {
        out.push_str(&rest[..i]);
        out.push_str("\"created\":0");
        rest = &rest[i + "\"created\":".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    let mut s = out;
    for prefix in ["\"chatcmpl-", "\"cmpl-", "\"modelperm-"] {
        while let Some(i) = s.find(prefix) {
            let start = i + prefix.len();
            let end = start + s[start..].find('"').unwrap();
            let tag = prefix
                .trim_start_matches('"')
                .trim_end_matches('-')
                .to_uppercase();
            s.replace_range(i..end + 1, &format!("\"<{tag}>\""));
        }
    }
    s
}

/// The text of a JSON string field, replaced by `"T"` (generated text differs per seed).
pub fn blank_text(json: &str, field: &str) -> String {
    let key = format!("\"{field}\":\"");
    let mut s = json.to_string();
    let mut from = 0;
    while let Some(i) = s[from..].find(&key).map(|i| i + from) {
        let start = i + key.len();
        let mut end = start;
        let bytes = s.as_bytes();
        while bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        s.replace_range(start..end, "T");
        from = start + 1;
    }
    s
}
