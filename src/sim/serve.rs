//! `forge sim serve`'s lifecycle: banner → (injected) failure or boot with vLLM's startup
//! log on the scaled clock → bind only then (connections are refused until the engine is
//! up) → serve → stop. SIGTERM/SIGINT stop gracefully with exit 0 (vLLM's behaviour);
//! an engine death answers `/health` with 503 for a moment, then exits 1. The worker of
//! `--sim-spawn-child` is stopped on every exit path this process controls.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::boot::{self, VLLM_VERSION};
use super::driver::{Driver, DriverConfig};
use super::engine::{BootInfo, SimEngine};
use super::faults;
use super::options::SimOptions;
use super::profile::{Enabling, VllmProfilerConfig};
use super::sampling::LogprobLimits;
use super::server::{AppState, router};
use super::tokenize_api::Vocab;
use super::twin::Twin;
use super::vlog;
use crate::engine::vllm::flags::ParsedArgs;
use crate::engine::vllm::flags::Value;

/// Where the simulator listens unless told otherwise (vLLM's default is 0.0.0.0; forge
/// never binds that by default).
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// vLLM's default port.
pub const DEFAULT_PORT: u16 = 8000;
/// How long a dead engine keeps answering `/health` with 503 before the process exits.
const DEATH_GRACE: Duration = Duration::from_secs(1);
/// How long a graceful stop may wait for open streams.
const FORCE_AFTER: Duration = Duration::from_secs(5);

/// A parsed `forge sim serve` command line.
#[derive(Debug, Clone)]
pub struct ServeCommand {
    /// The vLLM flags.
    pub parsed: ParsedArgs,
    /// The `--sim-*` flags.
    pub sim: SimOptions,
    /// Set when this is SGLang's or TensorRT-LLM's twin (`parsed` then holds only the
    /// model, address and served names).
    pub twin: Option<Twin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Signal,
    EngineDied,
}

/// Run the server to completion; the exit status is vLLM's.
pub async fn run(cmd: ServeCommand) -> ExitCode {
    let stop = signal_watch(cmd.sim.faults.ignore_sigterm);
    let mut worker = if cmd.sim.faults.spawn_child {
        match faults::spawn_worker() {
            Ok(c) => Some(c),
            Err(e) => {
                vlog::raw_err(&format!(
                    "RuntimeError: could not start the engine process: {e}"
                ));
                return boot::exit_failure();
            }
        }
    } else {
        None
    };
    let engine_pid = worker.as_ref().map_or(std::process::id(), |c| c.id());
    let code = lifecycle(&cmd, engine_pid, stop).await;
    if let Some(w) = worker.as_mut() {
        faults::stop_worker(w);
    }
    code
}

/// A watch that turns true on SIGTERM or SIGINT (never, with `--sim-ignore-sigterm`).
fn signal_watch(ignore: bool) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    if ignore {
        std::mem::forget(tx);
        return rx;
    }
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::spawn(async move {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                let _ = tx.send(true);
            });
        }
        _ => std::mem::forget(tx),
    }
    rx
}

async fn lifecycle(
    cmd: &ServeCommand,
    engine_pid: u32,
    mut stop: watch::Receiver<bool>,
) -> ExitCode {
    let started = tokio::select! {
        r = start(cmd, engine_pid) => r,
        _ = stop.wait_for(|s| *s) => {
            log_shutdown();
            return ExitCode::SUCCESS;
        }
    };
    match started {
        Ok((engine, info, listener, vocab_size)) => {
            let booted = Booted {
                engine,
                info,
                listener,
                vocab_size,
            };
            serve(cmd, booted, engine_pid, stop).await
        }
        Err(code) => code,
    }
}

async fn start(
    cmd: &ServeCommand,
    engine_pid: u32,
) -> Result<(SimEngine, BootInfo, TcpListener, u64), ExitCode> {
    if let Some(t) = &cmd.twin {
        return start_twin(cmd, t, engine_pid).await;
    }
    boot::print_banner(&cmd.parsed);
    let waiting = "Waiting for init message from front-end.";
    vlog::emit(
        vlog::Proc::Engine(engine_pid),
        vlog::Level::Info,
        "core.py:644",
        waiting,
    );
    if let Some(err) = boot::injected_failure(&cmd.sim) {
        return Err(boot::fail(&err, &cmd.sim, engine_pid).await);
    }
    if let Some(msg) = profiler_config_error(cmd) {
        vlog::raw_err(&msg);
        return Err(boot::exit_failure());
    }
    let setup = boot::setup(&cmd.parsed, &cmd.sim).map_err(|e| {
        boot::print_model_error(&cmd.parsed.args.model, &e);
        boot::exit_failure()
    })?;
    let vocab_size = setup.model.vocab_size;
    for why in &setup.model.unmodelled {
        vlog::emit(
            vlog::Proc::Api,
            vlog::Level::Warning,
            "forge_sim.py:1",
            &format!("forge simulator: config.json {why}"),
        );
    }
    let (engine, info) = boot::boot(setup, &cmd.sim, engine_pid).await?;
    let slow = cmd.sim.faults.slow_start_s;
    if slow > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(slow)).await;
    }
    let listener = bind(&cmd.parsed).await?;
    Ok((engine, info, listener, vocab_size))
}

/// A twin's start: its own failure texts and start-up lines, on the scaled clock.
async fn start_twin(
    cmd: &ServeCommand,
    t: &Twin,
    _engine_pid: u32,
) -> Result<(SimEngine, BootInfo, TcpListener, u64), ExitCode> {
    if let Some(err) = boot::injected_failure(&cmd.sim) {
        return Err(twin_failure(&err.to_string(), &cmd.sim).await);
    }
    if let Some(e) = &t.startup_error {
        return Err(twin_failure(e, &cmd.sim).await);
    }
    let model = crate::sim::model::ModelShape::resolve(&t.model).map_err(|e| {
        vlog::raw_err(&format!(
            "OSError: {} (forge simulator)",
            crate::term::error_text(&e)
        ));
        boot::exit_failure()
    })?;
    let vocab_size = model.vocab_size;
    for why in &model.unmodelled {
        vlog::raw_err(&format!("WARNING forge simulator: config.json {why}"));
    }
    let (engine, booted) = match crate::sim::twin::boot(t, model, &cmd.sim) {
        Ok(ok) => ok,
        Err(e) => return Err(twin_failure(&e.to_string(), &cmd.sim).await),
    };
    let info = booted.info.clone();
    boot::sim_sleep(info.load_seconds, cmd.sim.boot_scale()).await;
    for line in t.startup_lines(&booted) {
        vlog::raw_err(&line);
    }
    boot::sim_sleep(
        info.startup_seconds - info.load_seconds,
        cmd.sim.boot_scale(),
    )
    .await;
    let slow = cmd.sim.faults.slow_start_s;
    if slow > 0.0 {
        tokio::time::sleep(Duration::from_secs_f64(slow)).await;
    }
    let listener = bind(&cmd.parsed).await?;
    Ok((engine, info, listener, vocab_size))
}

/// A twin that cannot start: the framework's error, after the time it takes to get there.
async fn twin_failure(msg: &str, sim: &SimOptions) -> ExitCode {
    boot::sim_sleep(2.0, sim.boot_scale()).await;
    crate::sim::twin::print_failure(msg)
}

fn host(parsed: &ParsedArgs) -> &str {
    parsed.args.host.as_deref().unwrap_or(DEFAULT_HOST)
}

async fn bind(parsed: &ParsedArgs) -> Result<TcpListener, ExitCode> {
    let host = host(parsed);
    let port = parsed.args.port.unwrap_or(DEFAULT_PORT);
    TcpListener::bind((host, port)).await.map_err(|e| {
        let errno = e.raw_os_error().unwrap_or(0);
        vlog::raw(&format!(
            "ERROR:    [Errno {errno}] error while attempting to bind on address \
             ('{host}', {port}): {}",
            e.to_string().to_lowercase()
        ));
        boot::exit_failure()
    })
}

fn url(host: &str, addr: SocketAddr) -> String {
    if host.contains(':') {
        format!("http://[{host}]:{}", addr.port())
    } else {
        format!("http://{host}:{}", addr.port())
    }
}

fn log_ready(cmd: &ServeCommand, addr: SocketAddr) {
    if let Some(t) = &cmd.twin {
        for line in t.ready_lines(addr.port()) {
            vlog::raw_err(&line);
        }
        return;
    }
    let url = url(host(&cmd.parsed), addr);
    vlog::info(
        "api_server.py:1818",
        &format!("Starting vLLM API server 0 on {url}"),
    );
    if let Some(Enabling::Vllm { dir, .. }) = profiling(cmd) {
        vlog::emit(
            vlog::Proc::Api,
            vlog::Level::Warning,
            "api_router.py:48",
            "Profiler with mode 'torch' is enabled in the API server. This should ONLY be used \
             for local development!",
        );
        vlog::info(
            "wrapper.py:196",
            &format!(
                "Torch profiling enabled. Traces will be saved to: {}",
                dir.display()
            ),
        );
    }
    vlog::info("launcher.py:29", "Available routes are:");
    let profile_routes: &[(&str, &str)] = if profiling(cmd).is_some() {
        &[("/start_profile", "POST"), ("/stop_profile", "POST")]
    } else {
        &[]
    };
    for (path, method) in ROUTES.iter().chain(profile_routes) {
        vlog::info(
            "launcher.py:37",
            &format!("Route: {path}, Methods: {method}"),
        );
    }
    vlog::uvicorn(&format!("Started server process [{}]", std::process::id()));
    vlog::uvicorn("Waiting for application startup.");
    vlog::uvicorn("Application startup complete.");
}

const ROUTES: &[(&str, &str)] = &[
    ("/health", "GET"),
    ("/metrics", "GET"),
    ("/tokenize", "POST"),
    ("/detokenize", "POST"),
    ("/version", "GET"),
    ("/v1/models", "GET"),
    ("/v1/chat/completions", "POST"),
    ("/v1/completions", "POST"),
];

fn log_shutdown() {
    vlog::uvicorn("Shutting down");
    vlog::uvicorn("Waiting for application shutdown.");
    vlog::uvicorn("Application shutdown complete.");
    vlog::uvicorn(&format!("Finished server process [{}]", std::process::id()));
}

/// A booted engine, ready to serve.
struct Booted {
    engine: SimEngine,
    info: BootInfo,
    listener: TcpListener,
    vocab_size: u64,
}

async fn serve(
    cmd: &ServeCommand,
    booted: Booted,
    engine_pid: u32,
    stop: watch::Receiver<bool>,
) -> ExitCode {
    let Booted {
        engine,
        info,
        listener,
        vocab_size,
    } = booted;
    let max_model_len = info.max_model_len;
    let config = DriverConfig {
        time_scale: cmd.sim.time_scale,
        crash_after: cmd.sim.faults.crash_after,
        engine_pid,
        log_stats: cmd.twin.is_none() && !cmd.parsed.server.disable_log_stats,
        framework: cmd
            .twin
            .as_ref()
            .map_or(crate::recipe::EngineKind::Vllm, |t| t.framework),
    };
    let (driver, _thread) = match Driver::start(engine, config) {
        Ok(d) => d,
        Err(e) => {
            vlog::raw_err(&format!("RuntimeError: engine thread: {e}"));
            return boot::exit_failure();
        }
    };
    let state = Arc::new(app_state(cmd, driver.clone(), max_model_len, vocab_size));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    log_ready(cmd, addr);
    let reason = run_http(listener, state, &driver, stop).await;
    driver.shutdown();
    log_shutdown();
    match reason {
        Stop::Signal => ExitCode::SUCCESS,
        Stop::EngineDied => boot::exit_failure(),
    }
}

/// The served checkpoint's own quantization (a pre-quantized model), if any.
fn checkpoint_quant(cmd: &ServeCommand) -> Option<crate::sim::model::QuantConfig> {
    let model = cmd
        .twin
        .as_ref()
        .map_or(&cmd.parsed.args.model, |t| &t.model);
    crate::sim::model::ModelShape::resolve(model).ok()?.quant
}

fn app_state(cmd: &ServeCommand, driver: Driver, max_model_len: u32, vocab: u64) -> AppState {
    let p = &cmd.parsed;
    let served = if let Some(t) = &cmd.twin {
        t.served.clone()
    } else if p.server.served_model_names.is_empty() {
        vec![p.args.model.clone()]
    } else {
        p.server.served_model_names.clone()
    };
    AppState {
        driver,
        served,
        root: p.args.model.clone(),
        max_model_len,
        options: p.server.clone(),
        seed: cmd.sim.seed,
        perturb_rate: crate::sim::quant::text_perturbation(&p.args, checkpoint_quant(cmd).as_ref()),
        garbage_after: cmd.sim.faults.garbage_after,
        created: chrono::Utc::now().timestamp(),
        version: match &cmd.twin {
            Some(t) => t.version().to_string(),
            None => VLLM_VERSION.to_string(),
        },
        framework: cmd
            .twin
            .as_ref()
            .map_or(crate::recipe::EngineKind::Vllm, |t| t.framework),
        metrics: cmd.twin.as_ref().is_none_or(|t| t.metrics),
        logprob_limits: LogprobLimits {
            max_logprobs: max_logprobs(p),
            vocab_size: vocab,
        },
        vocab: Vocab::default(),
        profiling: profiling(cmd),
    }
}

/// How profiling is enabled: SGLang always, vLLM with a valid `--profiler-config` naming
/// the torch profiler, TensorRT-LLM never.
fn profiling(cmd: &ServeCommand) -> Option<Enabling> {
    match cmd.twin.as_ref().map(|t| t.framework) {
        Some(crate::recipe::EngineKind::Sglang) => Some(Enabling::Sglang),
        Some(_) => None,
        None => {
            let json = cmd.parsed.server.profiler_config.as_ref()?;
            let (dir, max_iterations) = VllmProfilerConfig::from_json(json).ok()??;
            Some(Enabling::Vllm {
                dir,
                max_iterations,
            })
        }
    }
}

/// A `--profiler-config` vLLM would refuse at startup (pydantic's ValueError), as its
/// message.
pub fn profiler_config_error(cmd: &ServeCommand) -> Option<String> {
    if cmd.twin.is_some() {
        return None;
    }
    let json = cmd.parsed.server.profiler_config.as_ref()?;
    VllmProfilerConfig::from_json(json)
        .err()
        .map(|e| e.to_string())
}

/// `--max-logprobs` (vLLM's default 20).
fn max_logprobs(p: &ParsedArgs) -> i64 {
    p.set
        .iter()
        .rev()
        .find(|(dest, _)| dest == "max_logprobs")
        .and_then(|(_, v)| match v {
            Value::Int(n) => Some(*n),
            _ => None,
        })
        .unwrap_or(20)
}

/// Serve until a signal or an engine death, then stop gracefully (bounded).
async fn run_http(
    listener: TcpListener,
    state: Arc<AppState>,
    driver: &Driver,
    mut stop: watch::Receiver<bool>,
) -> Stop {
    let (reason_tx, reason_rx) = watch::channel(None::<Stop>);
    let shared = driver.shared.clone();
    tokio::spawn(async move {
        let signalled = async {
            let _ = stop.wait_for(|s| *s).await;
        };
        let reason = tokio::select! {
            _ = signalled => Stop::Signal,
            _ = shared.died.notified() => {
                tokio::time::sleep(DEATH_GRACE).await;
                Stop::EngineDied
            }
        };
        let _ = reason_tx.send(Some(reason));
    });
    let mut graceful_rx = reason_rx.clone();
    let graceful = async move {
        let _ = graceful_rx.wait_for(|r| r.is_some()).await;
    };
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    // vLLM's server (uvicorn on asyncio) sets TCP_NODELAY on every connection; without it
    // Nagle holds each SSE chunk until the last is ACKed and token timings coalesce.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(graceful)
        .into_future();
    let mut force_rx = reason_rx.clone();
    let force = async move {
        let _ = force_rx.wait_for(|r| r.is_some()).await;
        tokio::time::sleep(FORCE_AFTER).await;
    };
    tokio::select! {
        _ = server => {}
        _ = force => {}
    }
    let reason = *reason_rx.borrow();
    reason.unwrap_or(Stop::Signal)
}
