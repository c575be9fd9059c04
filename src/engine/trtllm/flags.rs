//! A TensorRT-LLM recipe as `trtllm-serve serve`'s command line plus its
//! `--extra_llm_api_options` YAML ([`render`], [`deploy`]), and base engine arguments
//! (`--engine-args`) back into recipe config values ([`config_from_args`]).
//!
//! Where each knob goes is one table ([`PLACES`]): six have options of their own, the rest
//! live in the YAML, and no knob is ever written in both places — which of the two wins
//! changed across releases (`update_llm_args_with_extra_dict`: the YAML in 1.1/1.2,
//! explicit options on the newest main). Options are spelled the old short way
//! (`--tp_size`, `--kv_cache_free_gpu_memory_fraction`, `--extra_llm_api_options`), which
//! every release's `serve.py` accepts; the newer long names are aliases of the same options.
//!
//! One exception keeps the KV fraction from being lost: serve.py merges the YAML with
//! `llm_args | llm_args_dict` (`llm_args.py::update_llm_args_with_extra_dict`), which
//! replaces the whole `kv_cache_config` the options built. When the YAML carries a
//! `kv_cache_config` section, `kv_cache_free_gpu_memory_fraction` goes into it
//! (`free_gpu_memory_fraction`) instead of onto the command line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::help::{ServeHelp, Version};
use super::knobs::TRTLLM_KNOBS;
use super::yaml::{self, Doc, Keys};
use crate::engine::knobs::{Kind, check_in};
use crate::recipe::{EngineKind, Illegal, Layer, Recipe};

/// The default launcher: `trtllm-serve serve` (serve.py's `DefaultGroup` would also take
/// the model as the first word; naming `serve` is explicit).
pub const LAUNCHER: &[&str] = &["trtllm-serve", "serve"];
/// The YAML's file name on a `forge recipe command` line.
pub const DEPLOY_YAML: &str = "extra_llm_api_options.yaml";
/// The only backend forge drives (`--backend`'s choices are pytorch, tensorrt,
/// _autodeploy; serve.py).
pub const BACKEND: &str = "pytorch";

/// Where a knob is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A `trtllm-serve serve` option with a value.
    Option(&'static str),
    /// A click flag, present when true (serve.py: `is_flag=True, default=False`).
    Switch(&'static str),
    /// A key path in the YAML.
    Yaml(&'static [&'static str]),
    /// `cuda_graph_config` itself: `null` when false.
    CudaGraph,
    /// The positional MODEL (a pre-quantized checkpoint replaces the model).
    Model,
}

/// Every knob of [`TRTLLM_KNOBS`] and where it goes.
pub const PLACES: &[(&str, Place)] = &[
    ("max_batch_size", Place::Option("--max_batch_size")),
    ("max_num_tokens", Place::Option("--max_num_tokens")),
    ("max_seq_len", Place::Option("--max_seq_len")),
    ("tp_size", Place::Option("--tp_size")),
    (
        "kv_cache_free_gpu_memory_fraction",
        Place::Option("--kv_cache_free_gpu_memory_fraction"),
    ),
    (
        "enable_chunked_prefill",
        Place::Switch("--enable_chunked_prefill"),
    ),
    (
        "enable_block_reuse",
        Place::Yaml(&["kv_cache_config", "enable_block_reuse"]),
    ),
    (
        "tokens_per_block",
        Place::Yaml(&["kv_cache_config", "tokens_per_block"]),
    ),
    ("kv_cache_quant", Place::Yaml(&["kv_cache_config", "dtype"])),
    (
        "capacity_scheduler_policy",
        Place::Yaml(&["scheduler_config", "capacity_scheduler_policy"]),
    ),
    ("enable_cuda_graph", Place::CudaGraph),
    (
        "cuda_graph_max_batch_size",
        Place::Yaml(&["cuda_graph_config", "max_batch_size"]),
    ),
    (
        "cuda_graph_padding",
        Place::Yaml(&["cuda_graph_config", "enable_padding"]),
    ),
    (
        "disable_overlap_scheduler",
        Place::Yaml(&["disable_overlap_scheduler"]),
    ),
    ("stream_interval", Place::Yaml(&["stream_interval"])),
    ("attn_backend", Place::Yaml(&["attn_backend"])),
    ("checkpoint", Place::Model),
];

/// Where `knob` goes.
pub fn place(knob: &str) -> Option<Place> {
    PLACES.iter().find(|(k, _)| *k == knob).map(|(_, p)| *p)
}

/// What the command line is rendered for: the release and, when it was read, its help.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The release (its `LlmArgs` keys).
    pub version: &'a Version,
    /// Its `serve --help`; every option rendered must be listed there.
    pub help: Option<&'a ServeHelp>,
}

/// A rendered launch: the arguments after the launcher, and the YAML `(path, text)`.
pub type Rendered = (Vec<String>, Option<(PathBuf, String)>);

/// `recipe` as the arguments after `trtllm-serve serve`: `MODEL --backend pytorch --host H
/// --port P`, its options, and `--extra_llm_api_options <yaml_path>` with the YAML text.
pub fn render(
    recipe: &Recipe,
    host: &str,
    port: u16,
    yaml_path: &Path,
    target: Target<'_>,
) -> Result<Rendered, Illegal> {
    let keys = Keys::for_version(target.version);
    let mut argv = vec![
        model_arg(recipe),
        "--backend".into(),
        BACKEND.into(),
        "--host".into(),
        host.into(),
        "--port".into(),
        port.to_string(),
    ];
    let mut doc = Doc::default();
    let mut options = Vec::new();
    for (layer, name, value) in recipe.fields() {
        check_in(EngineKind::Trtllm, TRTLLM_KNOBS, layer, &name, &value)?;
        if !value.is_null() {
            place_one(&name, &value, keys, &mut options, &mut doc)?;
        }
    }
    move_fraction_into_yaml(&mut options, &mut doc);
    yaml::add_metrics(&mut doc, keys);
    for (flag, value) in options {
        allowed_by_help(target.help, flag, value.as_deref())?;
        argv.push(flag.to_string());
        argv.extend(value);
    }
    if doc.is_empty() {
        return Ok((argv, None));
    }
    allowed_by_help(target.help, "--extra_llm_api_options", None)?;
    argv.push("--extra_llm_api_options".into());
    argv.push(yaml_path.display().to_string());
    Ok((
        argv,
        Some((yaml_path.to_path_buf(), doc.to_text(&recipe.id))),
    ))
}

/// The positional MODEL: the pre-quantized checkpoint when the recipe names one.
pub fn model_arg(recipe: &Recipe) -> String {
    recipe
        .quant
        .checkpoint
        .clone()
        .unwrap_or_else(|| recipe.model.clone())
}

type Options = Vec<(&'static str, Option<String>)>;

fn place_one(
    name: &str,
    value: &Value,
    keys: Keys,
    options: &mut Options,
    doc: &mut Doc,
) -> Result<(), Illegal> {
    match place(name) {
        Some(Place::Option(flag)) => options.push((flag, Some(scalar(value)))),
        Some(Place::Switch(flag)) => {
            if value.as_bool() == Some(true) {
                options.push((flag, None));
            }
        }
        Some(Place::Yaml(path)) => {
            if name == "tokens_per_block" && !keys.tokens_per_block {
                return Err(Illegal::knob(
                    name,
                    value,
                    "this TensorRT-LLM (before 1.1) has no kv_cache_config.tokens_per_block, and \
                     its LlmArgs reject unknown keys",
                ));
            }
            doc.set(path, value.clone());
        }
        Some(Place::CudaGraph) => {
            if value.as_bool() == Some(false) {
                doc.set(&["cuda_graph_config"], Value::Null);
            }
        }
        Some(Place::Model) => {}
        None => {
            return Err(Illegal::knob(
                name,
                value,
                "forge has no place for this knob",
            ));
        }
    }
    Ok(())
}

/// serve.py's merge replaces the options' `kv_cache_config` with the YAML's; keep the
/// fraction with the rest of that section when there is one.
fn move_fraction_into_yaml(options: &mut Options, doc: &mut Doc) {
    if !doc.has("kv_cache_config") {
        return;
    }
    let at = options
        .iter()
        .position(|(f, _)| *f == "--kv_cache_free_gpu_memory_fraction");
    if let Some((_, Some(v))) = at.map(|i| options.remove(i)) {
        let number = v.parse::<f64>().map(Value::from).unwrap_or(Value::from(v));
        doc.set(&["kv_cache_config", "free_gpu_memory_fraction"], number);
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn allowed_by_help(
    help: Option<&ServeHelp>,
    flag: &str,
    value: Option<&str>,
) -> Result<(), Illegal> {
    let Some(h) = help else {
        return Ok(());
    };
    match h.option(flag) {
        None => Err(Illegal::recipe(format!(
            "the installed trtllm-serve lists no {flag} in `serve --help`"
        ))),
        Some(o) if value.is_some_and(|v| !o.accepts(v)) => Err(Illegal::recipe(format!(
            "the installed trtllm-serve does not accept {flag} {}",
            value.unwrap_or_default()
        ))),
        Some(_) => Ok(()),
    }
}

/// `recipe` as a complete command for `forge recipe command`: `trtllm-serve serve MODEL
/// ... --extra_llm_api_options extra_llm_api_options.yaml`, and that file's text (for the
/// newest release forge knows).
pub fn deploy(
    recipe: &Recipe,
    host: &str,
    port: u16,
) -> Result<(Vec<String>, Option<String>), Illegal> {
    let target = Target {
        version: &Version::NEWEST,
        help: None,
    };
    let (args, yaml) = render(recipe, host, port, Path::new(DEPLOY_YAML), target)?;
    let mut argv: Vec<String> = LAUNCHER.iter().map(|s| s.to_string()).collect();
    argv.extend(args);
    Ok((argv, yaml.map(|(_, text)| text)))
}

/// Option spellings `--engine-args` may use, both releases' (serve.py), and the knob each
/// sets.
const ARG_NAMES: &[(&str, &str)] = &[
    ("--max_batch_size", "max_batch_size"),
    ("--max_num_tokens", "max_num_tokens"),
    ("--max_seq_len", "max_seq_len"),
    ("--tp_size", "tp_size"),
    ("--tensor_parallel_size", "tp_size"),
    (
        "--kv_cache_free_gpu_memory_fraction",
        "kv_cache_free_gpu_memory_fraction",
    ),
    (
        "--free_gpu_memory_fraction",
        "kv_cache_free_gpu_memory_fraction",
    ),
    ("--enable_chunked_prefill", "enable_chunked_prefill"),
];

/// The recipe config values `argv` (`--engine-args`, e.g. `--max_seq_len 8192
/// --kv_cache_free_gpu_memory_fraction 0.85`) set. `--backend pytorch` is accepted and
/// sets nothing; any other backend, a YAML of the user's, a positional word or an option
/// forge does not tune is refused, naming it.
pub fn config_from_args(argv: &[String]) -> Result<BTreeMap<String, Value>, Illegal> {
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (argv[i].as_str(), None),
        };
        i += 1;
        if flag == "--enable_chunked_prefill" {
            out.insert("enable_chunked_prefill".into(), Value::Bool(true));
            continue;
        }
        let mut value = || -> Result<String, Illegal> {
            if let Some(v) = inline.clone() {
                return Ok(v);
            }
            let v = argv
                .get(i)
                .cloned()
                .ok_or_else(|| Illegal::recipe(format!("--engine-args: {flag} needs a value")))?;
            i += 1;
            Ok(v)
        };
        match flag {
            "--backend" => refuse_backend(&value()?)?,
            "--extra_llm_api_options" | "--config" => {
                return Err(Illegal::recipe(format!(
                    "--engine-args: {flag} is not taken: forge writes the YAML itself from the \
                     recipe (set its knobs in the recipe instead)"
                )));
            }
            _ => {
                let knob = knob_of(flag)?;
                let v = typed(knob, &value()?)?;
                check_in(EngineKind::Trtllm, TRTLLM_KNOBS, Layer::Config, knob, &v)?;
                out.insert(knob.to_string(), v);
            }
        }
    }
    Ok(out)
}

fn refuse_backend(v: &str) -> Result<(), Illegal> {
    if v == BACKEND {
        return Ok(());
    }
    Err(Illegal::knob(
        "backend",
        &Value::from(v),
        format!("--engine-args: --backend {v}: forge drives only trtllm-serve's pytorch backend"),
    ))
}

fn knob_of(flag: &str) -> Result<&'static str, Illegal> {
    if !flag.starts_with('-') {
        return Err(Illegal::recipe(format!(
            "--engine-args: unexpected word `{flag}` (the model comes from --model)"
        )));
    }
    ARG_NAMES
        .iter()
        .find(|(f, _)| *f == flag)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let known: Vec<&str> = ARG_NAMES.iter().map(|(f, _)| *f).collect();
            Illegal::recipe(format!(
                "--engine-args: {flag} is not a trtllm-serve option forge tunes (known: {})",
                known.join(", ")
            ))
        })
}

fn typed(knob: &str, text: &str) -> Result<Value, Illegal> {
    let kind = TRTLLM_KNOBS
        .iter()
        .find(|k| k.name == knob && k.layer == Layer::Config)
        .map(|k| &k.kind);
    let bad = || {
        Illegal::knob(
            knob,
            &Value::from(text),
            format!("{knob}: `{text}` is not a number"),
        )
    };
    match kind {
        Some(Kind::Int(..)) => text.parse::<i64>().map(Value::from).map_err(|_| bad()),
        Some(Kind::Float(..)) => text.parse::<f64>().map(Value::from).map_err(|_| bad()),
        _ => Ok(Value::from(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Hardware;

    fn recipe(config: serde_json::Value) -> Recipe {
        let config: BTreeMap<String, Value> = serde_json::from_value(config).unwrap();
        Recipe::baseline_with(
            EngineKind::Trtllm,
            "Qwen/Qwen3-0.6B",
            Hardware::default(),
            config,
        )
    }

    static NEWEST: Version = Version::NEWEST;

    fn newest() -> Target<'static> {
        Target {
            version: &NEWEST,
            help: None,
        }
    }

    #[test]
    fn every_knob_has_exactly_one_place() {
        for k in TRTLLM_KNOBS {
            assert!(place(k.name).is_some(), "{}", k.name);
        }
        assert_eq!(PLACES.len(), TRTLLM_KNOBS.len());
    }

    #[test]
    fn baseline_is_model_backend_host_port_and_the_metrics_yaml() {
        let (argv, yaml) = render(
            &recipe(serde_json::json!({})),
            "127.0.0.1",
            8123,
            Path::new("x.yaml"),
            newest(),
        )
        .unwrap();
        assert_eq!(
            argv.join(" "),
            "Qwen/Qwen3-0.6B --backend pytorch --host 127.0.0.1 --port 8123 --extra_llm_api_options x.yaml"
        );
        let (path, text) = yaml.unwrap();
        assert_eq!(path, Path::new("x.yaml"));
        let v = yaml::parse(&text).unwrap();
        assert_eq!(v["return_perf_metrics"], true);
        assert_eq!(v["enable_iter_perf_stats"], true);
    }

    #[test]
    fn the_fraction_follows_a_kv_cache_section_into_the_yaml() {
        let r = recipe(serde_json::json!({"kv_cache_free_gpu_memory_fraction": 0.8}));
        let (argv, _) = render(&r, "h", 1, Path::new("y"), newest()).unwrap();
        assert!(
            argv.join(" ")
                .contains("--kv_cache_free_gpu_memory_fraction 0.8")
        );
        let r = recipe(
            serde_json::json!({"kv_cache_free_gpu_memory_fraction": 0.8, "enable_block_reuse": false}),
        );
        let (argv, yaml) = render(&r, "h", 1, Path::new("y"), newest()).unwrap();
        assert!(!argv.join(" ").contains("fraction"), "{argv:?}");
        let v = yaml::parse(&yaml.unwrap().1).unwrap();
        assert_eq!(v["kv_cache_config"]["free_gpu_memory_fraction"], 0.8);
        assert_eq!(v["kv_cache_config"]["enable_block_reuse"], false);
    }

    #[test]
    fn old_releases_refuse_tokens_per_block_and_get_no_metrics_keys() {
        let v1_0 = Version::new(1, 0, 0);
        let old = Target {
            version: &v1_0,
            help: None,
        };
        let e = render(
            &recipe(serde_json::json!({"tokens_per_block": 64})),
            "h",
            1,
            Path::new("y"),
            old,
        )
        .unwrap_err();
        assert_eq!(e.knob.as_deref(), Some("tokens_per_block"));
        let (argv, yaml) = render(
            &recipe(serde_json::json!({"max_batch_size": 64})),
            "h",
            1,
            Path::new("y"),
            old,
        )
        .unwrap();
        assert!(yaml.is_none());
        assert!(!argv.contains(&"--extra_llm_api_options".to_string()));
    }

    #[test]
    fn engine_args_read_both_spellings_and_refuse_the_rest() {
        let argv = |s: &str| shlex::split(s).unwrap();
        let c = config_from_args(&argv("--max_seq_len 8192 --kv_cache_free_gpu_memory_fraction=0.85 --tensor_parallel_size 2 --enable_chunked_prefill --backend pytorch")).unwrap();
        assert_eq!(c["max_seq_len"], 8192);
        assert_eq!(c["kv_cache_free_gpu_memory_fraction"], 0.85);
        assert_eq!(c["tp_size"], 2);
        assert_eq!(c["enable_chunked_prefill"], true);
        let e = config_from_args(&argv("--backend tensorrt")).unwrap_err();
        assert!(
            e.why.contains("only trtllm-serve's pytorch backend"),
            "{}",
            e.why
        );
        let e = config_from_args(&argv("--bogus 1")).unwrap_err();
        assert!(
            e.why.contains("--bogus is not a trtllm-serve option"),
            "{}",
            e.why
        );
        let e = config_from_args(&argv("--config my.yaml")).unwrap_err();
        assert!(e.why.contains("forge writes the YAML"), "{}", e.why);
        assert!(config_from_args(&argv("--max_seq_len")).is_err());
        assert!(config_from_args(&argv("--max_seq_len lots")).is_err());
        assert!(config_from_args(&argv("Qwen/Qwen3-0.6B")).is_err());
    }

    #[test]
    fn deploy_names_the_yaml_next_to_the_command() {
        let (argv, yaml) = deploy(
            &recipe(serde_json::json!({"enable_cuda_graph": false})),
            "0.0.0.0",
            8000,
        )
        .unwrap();
        assert_eq!(&argv[..3], ["trtllm-serve", "serve", "Qwen/Qwen3-0.6B"]);
        assert_eq!(argv.last().unwrap(), DEPLOY_YAML);
        assert!(yaml.unwrap().contains("cuda_graph_config: null"));
    }
}
