//! vLLM's log format on stdout: `INFO 01-15 10:23:45 [api_server.py:1885] message`,
//! engine-core lines prefixed `(EngineCore_DP0 pid=N) `, uvicorn lines `INFO:     ...`.
//! forge parses these lines from real servers, so the simulator prints the same ones.

use std::io::Write;

/// Log level names as vLLM prints them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `INFO`.
    Info,
    /// `WARNING`.
    Warning,
    /// `ERROR`.
    Error,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// Which process a line claims to come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proc {
    /// The API server process (no prefix).
    Api,
    /// The engine core process with this pid.
    Engine(u32),
}

/// One formatted line (without newline). `src` is vLLM's `file.py:line`.
pub fn format_line(proc_: Proc, level: Level, src: &str, msg: &str) -> String {
    let time = chrono::Local::now().format("%m-%d %H:%M:%S");
    let line = format!("{} {time} [{src}] {msg}", level.as_str());
    match proc_ {
        Proc::Api => line,
        Proc::Engine(pid) => format!("(EngineCore_DP0 pid={pid}) {line}"),
    }
}

/// Print one line to stdout and flush (a supervisor reads it as it happens).
pub fn emit(proc_: Proc, level: Level, src: &str, msg: &str) {
    raw(&format_line(proc_, level, src, msg));
}

/// API-server INFO line.
pub fn info(src: &str, msg: &str) {
    emit(Proc::Api, Level::Info, src, msg);
}

/// uvicorn's `INFO:     message`.
pub fn uvicorn(msg: &str) {
    raw(&format!("INFO:     {msg}"));
}

/// Print a line to stdout as is.
pub fn raw(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Print a line to stderr as is (tracebacks go there).
pub fn raw_err(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_look_like_vllm() {
        let l = format_line(Proc::Api, Level::Info, "api_server.py:1885", "hello");
        let (head, rest) = l.split_at(4);
        assert_eq!(head, "INFO");
        // " MM-DD HH:MM:SS [api_server.py:1885] hello"
        assert_eq!(
            rest.len(),
            " 01-15 10:23:45 [api_server.py:1885] hello".len()
        );
        assert!(rest.ends_with(" [api_server.py:1885] hello"));
        let e = format_line(Proc::Engine(42), Level::Error, "core.py:1", "x");
        assert!(e.starts_with("(EngineCore_DP0 pid=42) ERROR "));
    }
}
