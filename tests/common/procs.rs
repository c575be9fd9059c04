//! What runs on this machine, read from `/proc`: processes carrying a test's tag in their
//! environment (children inherit it, so engines and their grandchildren carry it too),
//! members of a process group, whether a pid is alive; a free loopback port; and
//! `wait_until`, the one bounded polling loop every wait in the tests builds on.

use std::time::{Duration, Instant};

/// Environment variable carrying a test's tag into every process it starts.
pub const TAG_VAR: &str = "FORGE_TEST_TAG";

/// How often `wait_until` looks again.
const POLL: Duration = Duration::from_millis(20);

/// Poll `cond` until it holds or `limit` has passed; its last answer.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    cond()
}

/// True while `pid` is a live process (not a zombie, not dead).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

/// Wait (bounded) until `pid` is gone; true when it is.
pub fn wait_gone(pid: i32, limit: Duration) -> bool {
    wait_until(limit, || !alive(pid))
}

/// Live processes whose environment holds `TAG_VAR=tag`: `(pid, command line)`.
pub fn tagged(tag: &str) -> Vec<(i32, String)> {
    let needle = format!("{TAG_VAR}={tag}");
    pids()
        .filter(|pid| has_env(*pid, needle.as_bytes()) && alive(*pid))
        .map(|pid| (pid, cmdline(pid)))
        .collect()
}

/// Live pids of a process group (zombies excluded), as forge itself counts them.
pub fn group_members(pgid: i32) -> Vec<i32> {
    forge::engine::process::group_members(pgid)
}

/// Every pid in `/proc`.
fn pids() -> impl Iterator<Item = i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
}

/// True when `pid`'s environment has the entry `kv` (`KEY=VALUE`).
fn has_env(pid: i32, kv: &[u8]) -> bool {
    std::fs::read(format!("/proc/{pid}/environ"))
        .is_ok_and(|env| env.split(|b| *b == 0).any(|entry| entry == kv))
}

/// `pid`'s environment as raw `KEY=VALUE` entries (empty when it is gone).
pub fn environ(pid: i32) -> Vec<Vec<u8>> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).map(<[u8]>::to_vec).collect())
        .unwrap_or_default()
}

/// `pid`'s command line, arguments separated by spaces.
fn cmdline(pid: i32) -> String {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(&cmd).replace('\0', " ")
}

/// A loopback port nothing listens on (bound, then released; racy by nature, fine for
/// tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
