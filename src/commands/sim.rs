//! `forge sim serve` / `forge sim predict`: their argv (vLLM flags + forge's flags), help,
//! and the glue from a command line to the server or the offline predictor. Exit codes
//! are vLLM's: 2 for a command line argparse would reject, 1 for a config that cannot
//! boot, 0 otherwise. A model that names no shape is vLLM's traceback from `serve` (it
//! stands in for vLLM) and a plain `error:` from `predict` (a forge command). Predict's load flags are `forge bench`'s ([`LoadArgs`]), resolved by
//! the same [`LoadSpec::resolve`], so both commands accept and refuse the same values with
//! the same words.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use super::runtime;
use crate::bench::{LoadArgs, LoadSpec};
use crate::cli::SimRawArgs;
use crate::engine::vllm::flags::{self, ParsedArgs};
use crate::recipe::EngineKind;
use crate::sim::boot::{self, VLLM_VERSION};
use crate::sim::options::{self, Found, OptionError, SIM_SPECS, SimOptions};
use crate::sim::serve::{self, ServeCommand};
use crate::sim::twin::{self, Twin};
use crate::sim::{faults, predict};
use crate::workload::{self, Workload};

/// The twin a command line asks for (`--engine sglang|trtllm`), parsed for the GPU its
/// `--sim-gpu` names. `Ok(None)`: vLLM. `Err`: the framework's own parser refused the
/// command line (exit 2), or `--engine llamacpp`.
fn twin_command(
    args: &SimRawArgs,
    command: &'static str,
) -> Result<Option<(Twin, Vec<String>)>, ExitCode> {
    let framework = match args.engine {
        None | Some(EngineKind::Vllm) => return Ok(None),
        Some(f) => f,
    };
    let known = forge_flags(command);
    let all: Vec<String> = args.model.iter().chain(&args.args).cloned().collect();
    let (rest, ours) = split_flags(&all, &known);
    let sim = sim_options(&ours, command)?;
    let twin = twin::parse(framework, &rest, sim.gpu).map_err(|e| usage_error(&e))?;
    Ok(Some((twin, ours)))
}

/// `forge sim serve`.
pub fn serve_main(args: SimRawArgs) -> anyhow::Result<ExitCode> {
    if args.help.is_none() {
        match twin_command(&args, "serve") {
            Ok(Some((twin, ours))) => {
                let sim = match sim_options(&ours, "serve") {
                    Ok(s) => s,
                    Err(code) => return Ok(code),
                };
                return serve_twin(twin, sim);
            }
            Ok(None) => {}
            Err(code) => return Ok(code),
        }
    }
    let (parsed, rest) = match parse_command(&args, "serve") {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(ExitCode::SUCCESS),
        Err(code) => return Ok(code),
    };
    let sim = match sim_options(&rest, "serve") {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    if sim.faults.ignore_sigterm {
        faults::ignore_termination()?;
    }
    Ok(runtime(Some(2))?.block_on(serve::run(ServeCommand {
        parsed,
        sim,
        twin: None,
    })))
}

fn serve_twin(twin: Twin, sim: SimOptions) -> anyhow::Result<ExitCode> {
    if sim.faults.ignore_sigterm {
        faults::ignore_termination()?;
    }
    let parsed = twin.parsed_args();
    Ok(runtime(Some(2))?.block_on(serve::run(ServeCommand {
        parsed,
        sim,
        twin: Some(twin),
    })))
}

/// Split forge's own flags from vLLM's and parse the latter. `Ok(None)`: help was printed.
/// Returns the vLLM parse and the forge flags (`--sim-*`, predict's) in order.
fn parse_command(
    args: &SimRawArgs,
    command: &'static str,
) -> Result<Option<(ParsedArgs, Vec<String>)>, ExitCode> {
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
    let known = forge_flags(command);
    let (rest, ours) = split_flags(&args.args, &known);
    let mut argv = vec![model.clone()];
    argv.extend(rest);
    let parsed = flags::parse_full(&argv, VLLM_VERSION).map_err(|e| usage_error(&e))?;
    if let Some(key) = &parsed.help {
        print!("{}", flags::help_for(VLLM_VERSION, key));
        return Ok(None);
    }
    Ok(Some((parsed, ours)))
}

/// forge's own flags on `command` (`--sim-*`, and predict's), with whether each takes a
/// value.
fn forge_flags(command: &str) -> Vec<(String, bool)> {
    let mut known: Vec<(String, bool)> = SIM_SPECS
        .iter()
        .map(|s| (s.name.to_string(), s.takes_value))
        .collect();
    if command == "predict" {
        known.extend(predict_flag_names());
    }
    known
}

/// `--help`: this command's help (clap's, with the text above); `--help=KEY`: vLLM's.
fn print_help(command: &str, key: &str) {
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

/// The `--sim-*` flags among `ours`, as [`SimOptions`] (argparse-style error, exit 2).
fn sim_options(ours: &[String], command: &'static str) -> Result<SimOptions, ExitCode> {
    let (_, found): (Vec<String>, Found) =
        options::split(ours, SIM_SPECS, command).map_err(|e| usage_error(&e))?;
    SimOptions::from_found(&found, command).map_err(|e| usage_error(&e))
}

/// Split `args` into the flags named in `known` (`(name, takes a value)`), with their
/// values, and everything else (for vLLM's parser), each keeping its order.
fn split_flags(args: &[String], known: &[(String, bool)]) -> (Vec<String>, Vec<String>) {
    let (mut rest, mut ours) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < args.len() {
        let name = args[i].split_once('=').map_or(args[i].as_str(), |(n, _)| n);
        match known.iter().find(|(k, _)| k == name) {
            Some((_, takes_value)) => {
                ours.push(args[i].clone());
                let next = args.get(i + 1).filter(|v| !v.starts_with("--"));
                if *takes_value && !args[i].contains('=') && next.is_some() {
                    ours.extend(next.cloned());
                    i += 1;
                }
            }
            None => rest.push(args[i].clone()),
        }
        i += 1;
    }
    (rest, ours)
}

/// `forge sim predict`'s own flags: the load flags of `forge bench`, the workload, the seed
/// for generated arrivals and where to write the result.
#[derive(Debug, Parser)]
#[command(
    name = "forge sim predict",
    no_binary_name = true,
    disable_help_flag = true
)]
struct PredictArgs {
    /// Workload JSONL (required).
    #[arg(long)]
    workload: Option<PathBuf>,
    /// How the load is offered.
    #[command(flatten)]
    load: LoadArgs,
    /// Seed for generated arrivals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also write the JSON here (atomically).
    #[arg(long, short = 'o')]
    output: Option<PathBuf>,
    /// Include per-request lists.
    #[arg(long)]
    save_detailed: bool,
    /// An offline benchmark: no API server between the benchmark and the engine.
    #[arg(long)]
    offline: bool,
}

/// Long names (and aliases) of [`PredictArgs`], with whether each takes a value.
fn predict_flag_names() -> Vec<(String, bool)> {
    let cmd = PredictArgs::command();
    let mut v = Vec::new();
    for a in cmd.get_arguments() {
        let takes = a.get_action().takes_values();
        for long in a
            .get_long()
            .into_iter()
            .chain(a.get_all_aliases().into_iter().flatten())
        {
            v.push((format!("--{long}"), takes));
        }
        if let Some(c) = a.get_short() {
            v.push((format!("-{c}"), takes));
        }
    }
    v
}

fn predict_error(message: String) -> ExitCode {
    usage_error(&OptionError {
        command: "predict",
        message,
    })
}

/// `forge sim predict`.
pub fn predict_main(args: SimRawArgs) -> anyhow::Result<ExitCode> {
    let twin = if args.help.is_none() {
        match twin_command(&args, "predict") {
            Ok(t) => t,
            Err(code) => return Ok(code),
        }
    } else {
        None
    };
    if let Some((t, ours)) = twin {
        return predict_parsed(&t.parsed_args(), Some(&t), &ours);
    }
    match parse_command(&args, "predict") {
        Ok(Some((parsed, ours))) => predict_parsed(&parsed, None, &ours),
        Ok(None) => Ok(ExitCode::SUCCESS),
        Err(code) => Ok(code),
    }
}

fn predict_parsed(
    parsed: &ParsedArgs,
    twin: Option<&Twin>,
    ours: &[String],
) -> anyhow::Result<ExitCode> {
    let sim = match sim_options(ours, "predict") {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let sim_names: Vec<(String, bool)> = SIM_SPECS
        .iter()
        .map(|s| (s.name.to_string(), s.takes_value))
        .collect();
    let (mine, _) = split_flags(ours, &sim_names);
    let p = match PredictArgs::try_parse_from(&mine) {
        Ok(p) => p,
        Err(e) => return Ok(usage_error(&e.render())),
    };
    let Some(path) = p.workload.clone() else {
        return Ok(predict_error(
            "the following arguments are required: --workload".into(),
        ));
    };
    let workload = workload::load(&path)?;
    let load = LoadSpec::resolve(&p.load, &workload, p.seed)?;
    let out = Output {
        path: p.output,
        detailed: p.save_detailed,
        offline: p.offline,
    };
    run_predict(parsed, twin, &sim, &workload, &load, out)
}

/// Where and how much of the prediction to write, and what was benchmarked.
struct Output {
    path: Option<PathBuf>,
    detailed: bool,
    /// No API server (`--offline`).
    offline: bool,
}

fn run_predict(
    parsed: &ParsedArgs,
    twin: Option<&Twin>,
    sim: &SimOptions,
    workload: &Workload,
    load: &LoadSpec,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let pid = std::process::id();
    // A failure to boot reads as the framework's own: vLLM's engine-core traceback, or the
    // twin's exception.
    let fail = |e: &crate::sim::engine::BootError| match twin {
        Some(_) => twin::print_failure(&e.to_string()),
        None => boot::print_failure(e, pid),
    };
    if let Some(err) = boot::injected_failure(sim) {
        return Ok(fail(&err));
    }
    // An unknown model is the user's typo, not an engine failure: a plain forge error
    // (`forge sim serve` prints vLLM's traceback instead, as the engine it stands in for).
    let setup = match twin {
        Some(t) => {
            if let Some(e) = &t.startup_error {
                return Ok(twin::print_failure(e));
            }
            let model = crate::sim::model::ModelShape::resolve(&t.model)?;
            match twin::sized_setup(t, model, twin::Run::of(sim)) {
                Ok(s) => s,
                Err(e) => return Ok(fail(&e)),
            }
        }
        None => boot::setup(parsed, sim)?,
    };
    let mut setup = setup;
    setup.policy.api_server = !output.offline;
    for why in &setup.model.unmodelled {
        eprintln!("warning: config.json {why}");
    }
    let model_name = parsed
        .args
        .served_model_name
        .clone()
        .unwrap_or_else(|| parsed.args.model.clone());
    let result = match predict::predict_with(
        setup,
        &workload.requests,
        load,
        &model_name,
        output.detailed,
    ) {
        Ok(r) => r,
        Err(e) => return Ok(fail(&e)),
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

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn predict_flags_are_picked_out_in_order() {
        let (rest, ours) = split_flags(
            &argv("--workload w.jsonl --seed 3 --max-num-seqs 4 --no-ignore-eos --concurrency=2"),
            &predict_flag_names(),
        );
        assert_eq!(rest, argv("--max-num-seqs 4"));
        let p = PredictArgs::try_parse_from(&ours).unwrap();
        assert_eq!(p.workload, Some(PathBuf::from("w.jsonl")));
        assert_eq!(p.seed, 3);
        assert!(p.load.no_ignore_eos);
        assert_eq!(p.load.concurrency, Some(2));
        let (_, ours) = split_flags(&argv("--max-concurrency 5"), &predict_flag_names());
        assert_eq!(
            PredictArgs::try_parse_from(&ours).unwrap().load.concurrency,
            Some(5)
        );
    }

    #[test]
    fn the_help_text_lists_every_predict_flag() {
        for (name, _) in predict_flag_names() {
            if name == "--max-concurrency" || !name.starts_with("--") {
                continue;
            }
            assert!(
                crate::cli::SIM_PREDICT_HELP.contains(&name),
                "{name} missing from the predict help"
            );
        }
    }
}
