//! The twins' command lines, parsed the way each framework's parser does, with its own
//! errors (exit 2): SGLang's argparse (options from the `sglang serve --help` listing of
//! the release the twin stands in for; unambiguous prefixes accepted, an ambiguous one
//! refused, unknown options collected and reported together) and TensorRT-LLM's click
//! (exact option names only, the first unknown one refused, one positional `MODEL`).

use std::collections::BTreeMap;

use crate::engine::vllm::help::HelpSnapshot;

/// A parsed command line: each option's destination (`max_running_requests`) with its
/// last value (`"true"` for a switch), and the positionals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// `dest → value`.
    pub values: BTreeMap<String, String>,
    /// Positional words, in order.
    pub positionals: Vec<String>,
}

impl Parsed {
    /// The value of `dest`.
    pub fn get(&self, dest: &str) -> Option<&str> {
        self.values.get(dest).map(String::as_str)
    }

    /// True when the switch `dest` was given.
    pub fn flag(&self, dest: &str) -> bool {
        self.values.get(dest).is_some_and(|v| v == "true")
    }
}

/// A command line the framework's parser rejects: the text it prints (exit 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// SGLang's `sglang serve` options (0.5.23, the newest release the adapter knows), from
/// its recorded help listing.
pub fn sglang_help() -> HelpSnapshot {
    crate::engine::sglang::help::newest_help()
}

/// SGLang options whose argparse `type` is `int` or `float` (the help prints no types).
const SGLANG_INTS: &[&str] = &[
    "--max-running-requests",
    "--max-total-tokens",
    "--chunked-prefill-size",
    "--max-prefill-tokens",
    "--page-size",
    "--context-length",
    "--tp-size",
    "--dp-size",
    "--pp-size",
    "--ep-size",
    "--port",
    "--stream-interval",
    "--cuda-graph-max-bs-decode",
    "--cuda-graph-max-bs-prefill",
    "--random-seed",
];
const SGLANG_FLOATS: &[&str] = &["--mem-fraction-static", "--schedule-conservativeness"];

fn sglang_usage() -> String {
    let text = crate::engine::sglang::help::HELP_0_5_23;
    text.split("\n\n")
        .next()
        .unwrap_or("usage: sglang serve")
        .to_string()
}

fn sglang_error(message: &str) -> UsageError {
    UsageError(format!(
        "{}\nsglang serve: error: {message}",
        sglang_usage()
    ))
}

/// Parse `argv` (the words after `sglang serve`) as SGLang's argparse does.
pub fn parse_sglang(argv: &[String]) -> Result<Parsed, UsageError> {
    let help = sglang_help();
    let mut out = Parsed::default();
    let mut unknown: Vec<String> = Vec::new();
    let mut i = 0;
    while i < argv.len() {
        let word = &argv[i];
        i += 1;
        if !word.starts_with("--") {
            unknown.push(word.clone());
            continue;
        }
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word.as_str(), None),
        };
        let Some(entry) = resolve_prefix(&help, name)? else {
            unknown.push(word.clone());
            if inline.is_none() && argv.get(i).is_some_and(|v| !v.starts_with("--")) {
                unknown.push(argv[i].clone());
                i += 1;
            }
            continue;
        };
        let shown = entry.names.join("/");
        let value = if entry.takes_value {
            match inline {
                Some(v) => v,
                None => match argv.get(i).filter(|v| !v.starts_with("--")) {
                    Some(v) => {
                        i += 1;
                        v.clone()
                    }
                    None => {
                        return Err(sglang_error(&format!(
                            "argument {shown}: expected one argument"
                        )));
                    }
                },
            }
        } else {
            "true".to_string()
        };
        check_sglang_value(entry.primary(), &shown, &value, entry.choices.as_deref())?;
        out.values.insert(dest(entry.primary()), value);
    }
    if !unknown.is_empty() {
        return Err(sglang_error(&format!(
            "unrecognized arguments: {}",
            unknown.join(" ")
        )));
    }
    if out.get("model_path").is_none() {
        return Err(sglang_error(
            "the following arguments are required: --model-path/--model",
        ));
    }
    Ok(out)
}

/// The entry `name` means: an exact option string, else the only one it prefixes.
fn resolve_prefix<'a>(
    help: &'a HelpSnapshot,
    name: &str,
) -> Result<Option<&'a crate::engine::vllm::help::HelpEntry>, UsageError> {
    if let Some(e) = help.entry(name) {
        return Ok(Some(e));
    }
    let matches: Vec<(&str, &crate::engine::vllm::help::HelpEntry)> = help
        .entries()
        .iter()
        .flat_map(|e| e.names.iter().map(move |n| (n.as_str(), e)))
        .filter(|(n, _)| n.starts_with(name))
        .collect();
    match matches.as_slice() {
        [] => Ok(None),
        [(_, e)] => Ok(Some(*e)),
        many => {
            let names: Vec<&str> = many.iter().map(|(n, _)| *n).collect();
            Err(sglang_error(&format!(
                "ambiguous option: {name} could match {}",
                names.join(", ")
            )))
        }
    }
}

fn check_sglang_value(
    option: &str,
    shown: &str,
    value: &str,
    choices: Option<&[String]>,
) -> Result<(), UsageError> {
    if let Some(c) = choices
        && !c.iter().any(|x| x == value)
    {
        let list: Vec<String> = c.iter().map(|x| format!("'{x}'")).collect();
        return Err(sglang_error(&format!(
            "argument {shown}: invalid choice: '{value}' (choose from {})",
            list.join(", ")
        )));
    }
    if SGLANG_INTS.contains(&option) && value.parse::<i64>().is_err() {
        return Err(sglang_error(&format!(
            "argument {shown}: invalid int value: '{value}'"
        )));
    }
    if SGLANG_FLOATS.contains(&option) && value.parse::<f64>().is_err() {
        return Err(sglang_error(&format!(
            "argument {shown}: invalid float value: '{value}'"
        )));
    }
    Ok(())
}

/// argparse's destination of an option string (`--tp-size` → `tp_size`).
pub fn dest(option: &str) -> String {
    option.trim_start_matches('-').replace('-', "_")
}

/// How a `trtllm-serve serve` option is read.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ClickType {
    Int,
    Float,
    Text,
    Flag,
    Choice(&'static [&'static str]),
}

/// `trtllm-serve serve`'s options (newest release: long and short parallel names, `--config`
/// beside `--extra_llm_api_options`), `(names, dest, type)`.
const TRTLLM_OPTIONS: &[(&[&str], &str, ClickType)] = &[
    (&["--tokenizer"], "tokenizer", ClickType::Text),
    (&["--custom_tokenizer"], "custom_tokenizer", ClickType::Text),
    (&["--host"], "host", ClickType::Text),
    (&["--port"], "port", ClickType::Int),
    (
        &["--backend"],
        "backend",
        ClickType::Choice(&["pytorch", "tensorrt", "_autodeploy", "trt"]),
    ),
    (&["--log_level"], "log_level", ClickType::Text),
    (&["--max_beam_width"], "max_beam_width", ClickType::Int),
    (&["--max_batch_size"], "max_batch_size", ClickType::Int),
    (&["--max_num_tokens"], "max_num_tokens", ClickType::Int),
    (&["--max_seq_len"], "max_seq_len", ClickType::Int),
    (
        &["--tensor_parallel_size", "--tp_size"],
        "tp_size",
        ClickType::Int,
    ),
    (
        &["--pipeline_parallel_size", "--pp_size"],
        "pp_size",
        ClickType::Int,
    ),
    (
        &["--context_parallel_size", "--cp_size"],
        "cp_size",
        ClickType::Int,
    ),
    (
        &["--moe_expert_parallel_size", "--ep_size"],
        "ep_size",
        ClickType::Int,
    ),
    (
        &["--moe_cluster_parallel_size", "--cluster_size"],
        "cluster_size",
        ClickType::Int,
    ),
    (&["--gpus_per_node"], "gpus_per_node", ClickType::Int),
    (
        &[
            "--free_gpu_memory_fraction",
            "--kv_cache_free_gpu_memory_fraction",
        ],
        "kv_cache_free_gpu_memory_fraction",
        ClickType::Float,
    ),
    (
        &["--num_postprocess_workers"],
        "num_postprocess_workers",
        ClickType::Int,
    ),
    (
        &["--trust_remote_code"],
        "trust_remote_code",
        ClickType::Flag,
    ),
    (&["--revision"], "revision", ClickType::Text),
    (
        &["--config", "--extra_llm_api_options"],
        "extra_llm_api_options",
        ClickType::Text,
    ),
    (&["--reasoning_parser"], "reasoning_parser", ClickType::Text),
    (&["--tool_parser"], "tool_parser", ClickType::Text),
    (
        &["--enable_chunked_prefill"],
        "enable_chunked_prefill",
        ClickType::Flag,
    ),
    (&["--chat_template"], "chat_template", ClickType::Text),
];

const TRTLLM_USAGE: &str =
    "Usage: trtllm-serve serve [OPTIONS] MODEL\nTry 'trtllm-serve serve --help' for help.\n";

fn click_error(message: &str) -> UsageError {
    UsageError(format!("{TRTLLM_USAGE}\nError: {message}"))
}

/// Parse `argv` (the words after `trtllm-serve serve`) as click does.
pub fn parse_trtllm(argv: &[String]) -> Result<Parsed, UsageError> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let word = &argv[i];
        i += 1;
        if !word.starts_with("--") {
            out.positionals.push(word.clone());
            continue;
        }
        let (name, inline) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word.as_str(), None),
        };
        let Some((_, dest, ty)) = TRTLLM_OPTIONS.iter().find(|(n, _, _)| n.contains(&name)) else {
            return Err(click_error(&format!("No such option: {name}")));
        };
        let value = if *ty == ClickType::Flag {
            "true".to_string()
        } else {
            match inline.or_else(|| argv.get(i).cloned()) {
                Some(v) => {
                    if !word.contains('=') {
                        i += 1;
                    }
                    v
                }
                None => {
                    return Err(click_error(&format!(
                        "Option '{name}' requires an argument."
                    )));
                }
            }
        };
        check_click_value(name, *ty, &value)?;
        out.values.insert(dest.to_string(), value);
    }
    match out.positionals.len() {
        0 => Err(click_error("Missing argument 'MODEL'.")),
        1 => Ok(out),
        _ => Err(click_error(&format!(
            "Got unexpected extra argument ({})",
            out.positionals[1..].join(" ")
        ))),
    }
}

fn check_click_value(name: &str, ty: ClickType, value: &str) -> Result<(), UsageError> {
    let bad = |what: &str| {
        click_error(&format!(
            "Invalid value for '{name}': '{value}' is not {what}."
        ))
    };
    match ty {
        ClickType::Int if value.parse::<i64>().is_err() => Err(bad("a valid integer")),
        ClickType::Float if value.parse::<f64>().is_err() => Err(bad("a valid float")),
        ClickType::Choice(c) if !c.contains(&value) => {
            let list: Vec<String> = c
                .iter()
                .filter(|x| **x != "trt")
                .map(|x| format!("'{x}'"))
                .collect();
            Err(bad(&format!("one of {}", list.join(", "))))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn sglang_reads_full_names_prefixes_and_switches() {
        let p = parse_sglang(&argv(
            "--model-path m --mem-fraction-static 0.8 --max-running 64 --disable-radix-cache",
        ))
        .unwrap();
        assert_eq!(p.get("model_path"), Some("m"));
        assert_eq!(p.get("mem_fraction_static"), Some("0.8"));
        assert_eq!(p.get("max_running_requests"), Some("64"));
        assert!(p.flag("disable_radix_cache"));
    }

    #[test]
    fn sglang_errors_are_argparse_s() {
        let e = parse_sglang(&argv("--model-path m --cuda-graph-max-bs 8")).unwrap_err();
        assert!(
            e.0.ends_with("sglang serve: error: ambiguous option: --cuda-graph-max-bs could match --cuda-graph-max-bs-decode, --cuda-graph-max-bs-prefill"),
            "{e}"
        );
        assert!(
            e.0.starts_with("usage: sglang serve [-h] --model-path MODEL_PATH"),
            "{e}"
        );
        let e = parse_sglang(&argv("--model-path m --bogus-flag 1")).unwrap_err();
        assert!(
            e.0.ends_with("error: unrecognized arguments: --bogus-flag 1"),
            "{e}"
        );
        let e = parse_sglang(&argv("--model-path m --schedule-policy foo")).unwrap_err();
        assert!(e.0.contains("argument --schedule-policy: invalid choice: 'foo' (choose from 'lpm', 'random', 'fcfs'"), "{e}");
        let e = parse_sglang(&argv("--max-running-requests 4")).unwrap_err();
        assert!(
            e.0.ends_with("the following arguments are required: --model-path/--model"),
            "{e}"
        );
        let e = parse_sglang(&argv("--model-path m --max-running-requests x")).unwrap_err();
        assert!(e.0.contains("invalid int value: 'x'"), "{e}");
    }

    #[test]
    fn trtllm_is_click() {
        let p = parse_trtllm(&argv(
            "m --backend pytorch --tp_size 2 --enable_chunked_prefill",
        ))
        .unwrap();
        assert_eq!(p.positionals, vec!["m"]);
        assert_eq!(p.get("tp_size"), Some("2"));
        assert!(p.flag("enable_chunked_prefill"));
        let e = parse_trtllm(&argv("m --bogus 1")).unwrap_err();
        assert_eq!(
            e.0,
            "Usage: trtllm-serve serve [OPTIONS] MODEL\nTry 'trtllm-serve serve --help' for help.\n\nError: No such option: --bogus"
        );
        let e = parse_trtllm(&argv("m --backend foo")).unwrap_err();
        assert!(e.0.ends_with("Error: Invalid value for '--backend': 'foo' is not one of 'pytorch', 'tensorrt', '_autodeploy'."), "{e}");
        assert!(
            parse_trtllm(&argv("--tp_size 2"))
                .unwrap_err()
                .0
                .ends_with("Missing argument 'MODEL'.")
        );
        // click has no abbreviations.
        assert!(parse_trtllm(&argv("m --max_batch 4")).is_err());
    }
}
