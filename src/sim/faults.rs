//! Process-level behaviour of a vLLM server that forge's supervisor must survive: a worker
//! process (vLLM's engine core) that outlives a SIGKILL of the server, a server that
//! ignores SIGTERM, and startup failures (CUDA OOM, invalid config) printed as vLLM
//! prints them.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{SigHandler, Signal, kill, signal};
use nix::unistd::Pid;

use super::vlog::{self, Level, Proc};

/// The hidden subcommand the worker runs as (`forge sim worker`).
pub const WORKER_ARGS: &[&str] = &["sim", "worker"];

/// Start the worker: this binary again, in the server's process group (so a group kill
/// reaches it), not tied to the server's life (so a SIGKILL of the server alone orphans it,
/// as it orphans vLLM's engine core).
pub fn spawn_worker() -> std::io::Result<Child> {
    let exe = std::env::current_exe()?;
    Command::new(exe)
        .args(WORKER_ARGS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

/// Stop the worker the way vLLM's shutdown does: SIGTERM, then reap it (SIGKILL if it
/// has not gone within a second).
pub fn stop_worker(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGTERM);
    for _ in 0..100 {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `forge sim worker`: sleep until signalled. Signal dispositions set to "ignore" survive
/// `exec`, so the defaults are restored first: the worker always dies on SIGTERM.
pub fn worker_main() -> ! {
    // SAFETY: installing the default disposition runs no handler code.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::SigDfl);
        let _ = signal(Signal::SIGINT, SigHandler::SigDfl);
    }
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `--sim-ignore-sigterm`: SIGTERM and SIGINT do nothing; only SIGKILL stops the server.
pub fn ignore_termination() -> nix::Result<()> {
    // SAFETY: SIG_IGN runs no handler code.
    unsafe {
        signal(Signal::SIGTERM, SigHandler::SigIgn)?;
        signal(Signal::SIGINT, SigHandler::SigIgn)?;
    }
    Ok(())
}

const SITE: &str = "/usr/local/lib/python3.12/dist-packages/vllm";

/// A Python traceback ending in `last` (which carries its exception class).
pub fn traceback(frames: &[(&str, u32, &str, &str)], last: &str) -> Vec<String> {
    let mut out = vec!["Traceback (most recent call last):".to_string()];
    for (file, line, func, code) in frames {
        out.push(format!("  File \"{file}\", line {line}, in {func}"));
        out.push(format!("    {code}"));
    }
    out.extend(last.lines().map(String::from));
    out
}

/// `msg` with an exception class: kept if it has one (`torch.OutOfMemoryError: ...`),
/// else `default` is put in front.
pub fn with_class(msg: &str, default: &str) -> String {
    let head = msg.split(':').next().unwrap_or_default();
    let has_class = !head.is_empty()
        && !head.contains(' ')
        && (head.ends_with("Error") || head.ends_with("Exception"));
    if has_class {
        msg.to_string()
    } else if msg.contains("CUDA out of memory") {
        format!("torch.OutOfMemoryError: {msg}")
    } else {
        format!("{default}: {msg}")
    }
}

/// An invalid configuration: the API server's uncaught `ValueError` on stderr.
pub fn print_config_error(msg: &str) {
    let frames = [
        ("/usr/local/bin/vllm", 10, "<module>", "sys.exit(main())"),
        (
            &format!("{SITE}/entrypoints/cli/main.py")[..],
            73,
            "main",
            "args.dispatch_function(args)",
        ),
        (
            &format!("{SITE}/entrypoints/cli/serve.py")[..],
            60,
            "cmd",
            "uvloop.run(run_server(args))",
        ),
        (
            &format!("{SITE}/engine/arg_utils.py")[..],
            1428,
            "create_engine_config",
            "scheduler_config = SchedulerConfig(",
        ),
    ];
    for line in traceback(&frames, &with_class(msg, "ValueError")) {
        vlog::raw_err(&line);
    }
}

/// Engine-core startup failure (OOM): the engine core's ERROR block on stdout, then the
/// API server's `RuntimeError` on stderr.
pub fn print_engine_failure(engine_pid: u32, msg: &str) {
    let pid = Proc::Engine(engine_pid);
    let core = format!("{SITE}/v1/engine/core.py");
    let frames = [
        (
            &core[..],
            699,
            "run_engine_core",
            "engine_core = EngineCoreProc(*args, **kwargs)",
        ),
        (
            &core[..],
            498,
            "__init__",
            "super().__init__(vllm_config, executor_class, log_stats,",
        ),
        (
            &core[..],
            92,
            "__init__",
            "self._initialize_kv_caches(vllm_config)",
        ),
    ];
    vlog::emit(
        pid,
        Level::Error,
        "core.py:708",
        "EngineCore failed to start.",
    );
    for line in traceback(&frames, &with_class(msg, "ValueError")) {
        vlog::emit(pid, Level::Error, "core.py:708", &line);
    }
    print_startup_runtime_error();
}

/// The API server's side of a failed engine start.
fn print_startup_runtime_error() {
    let utils = format!("{SITE}/v1/engine/utils.py");
    let api = [
        ("/usr/local/bin/vllm", 10, "<module>", "sys.exit(main())"),
        (
            &utils[..],
            887,
            "wait_for_engine_startup",
            "raise RuntimeError(",
        ),
    ];
    let last = "RuntimeError: Engine core initialization failed. See root cause above. Failed core \
                proc(s): {}";
    for line in traceback(&api, last) {
        vlog::raw_err(&line);
    }
}

/// The CUDA OOM text `--sim-fail-startup oom` reports.
pub fn fake_oom(gpu_gib: f64) -> String {
    format!(
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a \
         total capacity of {gpu_gib:.2} GiB of which 1.12 GiB is free. Including non-PyTorch \
         memory, this process has {:.2} GiB memory in use. Of the allocated memory \
         {:.2} GiB is allocated by PyTorch, and 312.45 MiB is reserved by PyTorch but \
         unallocated.",
        gpu_gib - 1.12,
        gpu_gib - 2.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_classes() {
        assert_eq!(
            with_class("bad combo", "ValueError"),
            "ValueError: bad combo"
        );
        assert_eq!(
            with_class("torch.OutOfMemoryError: CUDA out of memory.", "ValueError"),
            "torch.OutOfMemoryError: CUDA out of memory."
        );
        assert_eq!(
            with_class("CUDA out of memory. Tried", "ValueError"),
            "torch.OutOfMemoryError: CUDA out of memory. Tried"
        );
        assert_eq!(
            with_class(
                "No available memory for the cache blocks: try x",
                "ValueError"
            ),
            "ValueError: No available memory for the cache blocks: try x"
        );
    }

    #[test]
    fn tracebacks() {
        let t = traceback(&[("a.py", 3, "f", "g()")], "ValueError: x");
        assert_eq!(
            t,
            vec![
                "Traceback (most recent call last):",
                "  File \"a.py\", line 3, in f",
                "    g()",
                "ValueError: x"
            ]
        );
    }
}
