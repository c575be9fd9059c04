//! `forge sim serve` / `forge sim predict`: their argv (vLLM flags + forge's flags), help,
//! and the glue from a command line to the server or the offline predictor. Exit codes
//! are vLLM's: 2 for a command line argparse would reject, 1 for a config that cannot
//! boot, 0 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use super::boot::{self, VLLM_VERSION};
use super::options::{
    self, Found, OptionError, PREDICT_SPECS, PredictFlags, SIM_SPECS, SimOptions,
};
use super::serve::{self, ServeCommand};
use crate::bench::{self, Endpoint, LoadSpec, Timing};
use crate::cli::SimRawArgs;
use crate::engine::vllm::flags::{self, ParsedArgs};
use crate::workload::{self, Workload};

/// Extra help for `forge sim serve`.
pub const SERVE_HELP: &str = "\
Runs a simulated vLLM server: vLLM's CLI flags, startup log, HTTP API (/health,
/v1/models, /version, /metrics, /v1/completions, /v1/chat/completions with SSE) and
failure modes, on a simulated GPU. Connections are refused until the engine is up.

vLLM flags (the most used; `forge sim serve MODEL --help=all` lists every one):
  --max-num-seqs N  --max-num-batched-tokens N  --max-model-len N
  --gpu-memory-utilization F  --kv-cache-dtype {auto,bfloat16,float16,fp8,...}
  --enable-prefix-caching / --disable-prefix-caching  --block-size N
  -tp N  -pp N  -dp N  -q METHOD  --dtype D  --enforce-eager  -O0..-O3
  --speculative-config/-sc JSON  --served-model-name NAME...  --api-key KEY
  --host HOST (default 127.0.0.1)  --port PORT (default 8000; 0 = any free port)

Simulator flags:
  --sim-gpu NAME            GPU to simulate (default H100; e.g. A100-80GB, L4, H200)
  --sim-time-scale F        wall seconds per simulated second (default 1; 0.1 = 10x faster)
  --sim-boot-time-scale F   the same for the startup delay only (default: --sim-time-scale)
  --sim-seed N              seed for text and noise (default 0)
  --sim-noise PCT           run-to-run timing noise, percent (default 0)

Fault injection:
  --sim-fail-startup oom|config   fail at startup like vLLM (exit 1)
  --sim-slow-start S              S extra wall seconds before the port opens
  --sim-crash-after N             engine dies once N requests have started streaming
  --sim-garbage-after N           streams turn into invalid SSE after N chunks
  --sim-ignore-sigterm            ignore SIGTERM/SIGINT (only SIGKILL works)
  --sim-spawn-child               start a worker process that survives a SIGKILL of
                                  the server (only a process-group kill reaches it)

Exit codes: 2 bad command line, 1 config cannot boot or engine died, 0 on SIGTERM.";

/// Extra help for `forge sim predict`.
pub const PREDICT_HELP: &str = "\
Predicts `forge bench` metrics for a vLLM config and a workload without HTTP, in
milliseconds, with the same engine model `forge sim serve` runs. Prints the result JSON.

Takes the vLLM flags and --sim-gpu/--sim-seed/--sim-noise of `forge sim serve`, plus:
  --workload FILE            workload JSONL (required)
  --endpoint completions|chat
  --concurrency N            cap on requests in flight
  --request-rate R|inf       requests per second (default inf)
  --burstiness B             gamma shape of arrival gaps (default 1 = Poisson)
  --timing trace|rate        default: trace when the workload has arrival offsets and no
                             --request-rate is given, else rate
  --num-warmups N            warm-up requests, not measured
  --slo ttft_ms=..,tpot_ms=..,e2el_ms=..   goodput bounds
  --metric-percentiles 90,95,99
  --no-ignore-eos            let outputs end naturally instead of pinning their length
  --seed N                   seed for generated arrivals
  --output FILE              also write the JSON here (atomically)
  --save-detailed            include per-request lists

Exit codes: 2 bad command line, 1 config cannot boot (vLLM's message), 0 otherwise.";

/// `forge sim serve`.
pub fn serve_main(args: SimRawArgs) -> anyhow::Result<ExitCode> {
    let (parsed, found) = match parse_command(&args, SIM_SPECS, "serve") {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(ExitCode::SUCCESS),
        Err(code) => return Ok(code),
    };
    let sim = match SimOptions::from_found(&found, "serve") {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(&e)),
    };
    serve::run(ServeCommand { parsed, sim })
}

/// Split forge's flags from vLLM's and parse the latter. `Ok(None)`: help was printed.
fn parse_command(
    args: &SimRawArgs,
    specs: &[options::Spec],
    command: &'static str,
) -> Result<Option<(ParsedArgs, Found)>, ExitCode> {
    if let Some(key) = &args.help {
        print_help(command, key);
        return Ok(None);
    }
    let Some(model) = &args.model else {
        return Err(usage_error(&OptionError {
            command,
            message: "the following arguments are required: MODEL".into(),
        }));
    };
    let (rest, found) = options::split(&args.args, specs, command).map_err(|e| usage_error(&e))?;
    let mut argv = vec![model.clone()];
    argv.extend(rest);
    let parsed = flags::parse_full(&argv, VLLM_VERSION).map_err(|e| usage_error(&e))?;
    if let Some(key) = &parsed.help {
        print!("{}", flags::help_for(VLLM_VERSION, key));
        return Ok(None);
    }
    Ok(Some((parsed, found)))
}

/// `--help`: this command's help (clap's, with the text above); `--help=KEY`: vLLM's.
fn print_help(command: &str, key: &str) {
    use clap::CommandFactory;
    if !key.is_empty() {
        print!("{}", flags::help_for(VLLM_VERSION, key));
        return;
    }
    let mut cli = crate::cli::Cli::command();
    // Building propagates the binary name (`Usage: forge sim serve`) and the global flags.
    cli.build();
    let sub = cli
        .find_subcommand_mut("sim")
        .and_then(|s| s.find_subcommand_mut(command));
    if let Some(sub) = sub {
        let _ = sub.print_long_help();
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(2)
}

fn predict_error(message: String) -> ExitCode {
    usage_error(&OptionError {
        command: "predict",
        message,
    })
}

/// `forge sim predict`.
pub fn predict_main(args: SimRawArgs) -> anyhow::Result<ExitCode> {
    let specs: Vec<options::Spec> = SIM_SPECS.iter().chain(PREDICT_SPECS).copied().collect();
    let (parsed, found) = match parse_command(&args, &specs, "predict") {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(ExitCode::SUCCESS),
        Err(code) => return Ok(code),
    };
    let sim = match SimOptions::from_found(&found, "predict") {
        Ok(s) => s,
        Err(e) => return Ok(usage_error(&e)),
    };
    let flags = PredictFlags::from_found(&found);
    let Some(path) = flags.workload.clone() else {
        return Ok(predict_error(
            "the following arguments are required: --workload".into(),
        ));
    };
    let workload = match workload::load(&path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let load = match load_spec(&flags, &workload) {
        Ok(l) => l,
        Err(msg) => return Ok(predict_error(msg)),
    };
    let out = Output {
        path: flags.get("--output").map(PathBuf::from),
        detailed: flags.has("--save-detailed"),
    };
    predict(&parsed, &sim, &workload, &load, out)
}

/// Where and how much of the prediction to write.
struct Output {
    path: Option<PathBuf>,
    detailed: bool,
}

/// Build the [`LoadSpec`] from predict's flags (defaults as `forge bench`'s).
pub fn load_spec(f: &PredictFlags, workload: &Workload) -> Result<LoadSpec, String> {
    let mut load = LoadSpec {
        endpoint: endpoint(f)?,
        concurrency: concurrency(f)?,
        ..LoadSpec::default()
    };
    let rate = f.get("--request-rate");
    load.request_rate = bench::parse_rate(rate.unwrap_or("inf"))?;
    if let Some(b) = f.get("--burstiness") {
        load.burstiness = parse_num("--burstiness", b)?;
        if !(load.burstiness.is_finite() && load.burstiness > 0.0) {
            return Err("argument --burstiness: must be a positive number".into());
        }
    }
    load.timing = match f.get("--timing") {
        Some("trace") => Timing::Trace,
        Some("rate") => Timing::Rate,
        Some(t) => {
            return Err(format!(
                "argument --timing: invalid choice: '{t}' (choose from trace, rate)"
            ));
        }
        None if workload.has_arrival_offsets() && rate.is_none() => Timing::Trace,
        None => Timing::Rate,
    };
    if let Some(n) = f.get("--num-warmups") {
        load.num_warmups = parse_num("--num-warmups", n)?;
    }
    if let Some(s) = f.get("--slo") {
        load.slo = bench::parse_slo(s)?;
    }
    if let Some(p) = f.get("--metric-percentiles") {
        load.percentiles = bench::parse_percentiles(p)?;
    }
    load.pin_output = !f.has("--no-ignore-eos");
    if let Some(s) = f.get("--seed") {
        load.seed = parse_num("--seed", s)?;
    }
    Ok(load)
}

fn endpoint(f: &PredictFlags) -> Result<Endpoint, String> {
    match f.get("--endpoint") {
        None | Some("completions") => Ok(Endpoint::Completions),
        Some("chat") => Ok(Endpoint::Chat),
        Some(e) => Err(format!(
            "argument --endpoint: invalid choice: '{e}' (choose from completions, chat)"
        )),
    }
}

fn concurrency(f: &PredictFlags) -> Result<Option<usize>, String> {
    let Some(c) = f.get("--concurrency") else {
        return Ok(None);
    };
    match parse_num::<usize>("--concurrency", c)? {
        0 => Err("argument --concurrency: must be at least 1".into()),
        n => Ok(Some(n)),
    }
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("argument {flag}: invalid value: '{v}'"))
}

fn predict(
    parsed: &ParsedArgs,
    sim: &SimOptions,
    workload: &Workload,
    load: &LoadSpec,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let pid = std::process::id();
    if let Some(err) = boot::injected_failure(sim) {
        return Ok(boot::print_failure(&err, pid));
    }
    let setup = match boot::setup(parsed, sim) {
        Ok(s) => s,
        Err(e) => {
            boot::print_model_error(&e);
            return Ok(boot::exit_failure());
        }
    };
    let model_name = parsed
        .args
        .served_model_name
        .clone()
        .unwrap_or_else(|| parsed.args.model.clone());
    let result = match super::predict::predict_with(
        setup,
        &workload.requests,
        load,
        &model_name,
        output.detailed,
    ) {
        Ok(r) => r,
        Err(e) => return Ok(boot::print_failure(&e, pid)),
    };
    let text = serde_json::to_string_pretty(&result)? + "\n";
    crate::term::print(&text)?;
    if let Some(path) = output.path {
        crate::store::write_atomic(&path, text.as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags_of(s: &str) -> PredictFlags {
        let args: Vec<String> = s.split_whitespace().map(String::from).collect();
        let (_, found) = options::split(&args, PREDICT_SPECS, "predict").unwrap();
        PredictFlags::from_found(&found)
    }

    fn workload(offsets: bool) -> Workload {
        let line = if offsets {
            r#"{"prompt":"hi","expected_output_tokens":4,"arrival_offset_s":0.5}"#
        } else {
            r#"{"prompt":"hi","expected_output_tokens":4}"#
        };
        workload::parse(std::path::Path::new("w.jsonl"), line).unwrap()
    }

    #[test]
    fn timing_defaults_follow_the_workload() {
        let l = load_spec(&flags_of(""), &workload(true)).unwrap();
        assert_eq!(l.timing, Timing::Trace);
        assert_eq!(l.request_rate, None);
        let l = load_spec(&flags_of("--request-rate 4"), &workload(true)).unwrap();
        assert_eq!(l.timing, Timing::Rate);
        assert_eq!(l.request_rate, Some(4.0));
        let l = load_spec(&flags_of(""), &workload(false)).unwrap();
        assert_eq!(l.timing, Timing::Rate);
    }

    #[test]
    fn load_flags() {
        let l = load_spec(
            &flags_of("--endpoint chat --concurrency 8 --no-ignore-eos --seed 5 --slo ttft_ms=100"),
            &workload(false),
        )
        .unwrap();
        assert_eq!(l.endpoint, Endpoint::Chat);
        assert_eq!(l.concurrency, Some(8));
        assert!(!l.pin_output);
        assert_eq!(l.seed, 5);
        assert_eq!(l.slo.ttft_ms, Some(100.0));
        assert!(load_spec(&flags_of("--concurrency 0"), &workload(false)).is_err());
        assert!(load_spec(&flags_of("--endpoint grpc"), &workload(false)).is_err());
    }
}
