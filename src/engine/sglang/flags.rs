//! A SGLang recipe as `sglang serve` argv ([`render`], [`deploy`]), base engine arguments
//! (`--engine-args`) back into recipe config ([`config_from_args`]), and the cross-field
//! rules SGLang would enforce at boot, decided before anything boots ([`legal`]).
//!
//! Always full option names: SGLang's argparse accepts unambiguous prefixes, so a prefix
//! that is unique today becomes an `ambiguous option` error when a release adds a flag
//! (`--cuda-graph-max-bs` in 0.5.20). Every value passes the allowlist, and — when the
//! installed help is known — every option must be listed there and every value be one of
//! its choices. Version drift is decided from the help: the decode CUDA-graph limit is
//! `--cuda-graph-max-bs-decode` where listed (0.5.14 on; the canonical name, its alias
//! `--cuda-graph-max-bs` is deprecated from 0.5.14 and gone from 0.5.20), else
//! `--cuda-graph-max-bs` (≤ 0.5.13); "no CUDA graphs" is
//! `--cuda-graph-backend-decode disabled --cuda-graph-backend-prefill disabled` where
//! listed (`--disable-cuda-graph` says "Deprecated. Use
//! --cuda-graph-backend-{decode,prefill}=disabled instead." in 0.5.19 and 0.5.23), else
//! `--disable-cuda-graph`. Without a help listing the newest names are used.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use super::help::{HelpSnapshot, newest_help};
use super::knobs::SGLANG_KNOBS;
use crate::engine::knobs::{Kind, check_in};
use crate::recipe::{EngineKind, Illegal, Layer, Recipe};

/// Config knobs whose flag takes the value as is.
pub const VALUE_FLAGS: &[(&str, &str)] = &[
    ("chunked_prefill_size", "--chunked-prefill-size"),
    ("context_length", "--context-length"),
    ("max_prefill_tokens", "--max-prefill-tokens"),
    ("max_running_requests", "--max-running-requests"),
    ("mem_fraction_static", "--mem-fraction-static"),
    ("page_size", "--page-size"),
    ("schedule_conservativeness", "--schedule-conservativeness"),
    ("schedule_policy", "--schedule-policy"),
    ("stream_interval", "--stream-interval"),
    ("tp_size", "--tp-size"),
];
/// Boolean config knobs: the switch when true, nothing when false (SGLang's default).
pub const SWITCHES: &[(&str, &str)] = &[
    ("disable_overlap_schedule", "--disable-overlap-schedule"),
    ("disable_radix_cache", "--disable-radix-cache"),
    ("enable_mixed_chunk", "--enable-mixed-chunk"),
    ("enable_torch_compile", "--enable-torch-compile"),
];
/// The decode CUDA-graph limit: canonical, then the ≤ 0.5.13 spelling.
const MAX_BS_FLAGS: [&str; 2] = ["--cuda-graph-max-bs-decode", "--cuda-graph-max-bs"];
/// Per-phase graph backends (0.5.14 on) and the older switch.
const GRAPH_BACKENDS: [&str; 2] = [
    "--cuda-graph-backend-decode",
    "--cuda-graph-backend-prefill",
];
const DISABLE_GRAPHS: &str = "--disable-cuda-graph";
/// Options whose values are secrets: never taken from `--engine-args`, never echoed.
const SECRETS: &[&str] = &["--api-key", "--admin-api-key", "--ssl-keyfile-password"];

/// The argv after the launcher that serves `recipe` on 127.0.0.1:`port` as `served_name`
/// with Prometheus metrics on, checked against `help` when known.
pub fn render(
    recipe: &Recipe,
    port: u16,
    served_name: &str,
    help: Option<&HelpSnapshot>,
) -> Result<Vec<String>, Illegal> {
    let mut out = serving("127.0.0.1", port, recipe)?;
    out.extend(["--served-model-name".into(), served_name.to_string()]);
    out.push("--enable-metrics".into());
    check_always(&out, help)?;
    out.extend(knobs(recipe, help)?);
    Ok(out)
}

/// The full command a user deploys (`forge recipe command`): `sglang serve`, the model,
/// `host`:`port`, the recipe's knobs, rendered for the newest SGLang forge knows (0.5.23).
/// Without the flags that exist for measuring (`--served-model-name`, `--enable-metrics`).
pub fn deploy(recipe: &Recipe, host: &str, port: u16) -> Result<Vec<String>, Illegal> {
    let help = newest_help();
    let mut out: Vec<String> = vec!["sglang".into(), "serve".into()];
    let serve = serving(host, port, recipe)?;
    check_always(&serve, Some(&help))?;
    out.extend(serve);
    out.extend(knobs(recipe, Some(&help))?);
    Ok(out)
}

/// `--model-path M --host H --port P` (the quantized checkpoint when the recipe names one).
fn serving(host: &str, port: u16, recipe: &Recipe) -> Result<Vec<String>, Illegal> {
    let model = recipe.quant.checkpoint.as_deref().unwrap_or(&recipe.model);
    if model.starts_with('-') {
        return Err(Illegal::recipe(format!(
            "model `{model}` looks like a flag"
        )));
    }
    Ok(vec![
        "--model-path".into(),
        model.to_string(),
        "--host".into(),
        host.to_string(),
        "--port".into(),
        port.to_string(),
    ])
}

fn check_always(args: &[String], help: Option<&HelpSnapshot>) -> Result<(), Illegal> {
    let Some(h) = help else { return Ok(()) };
    match args.iter().find(|a| a.starts_with("--") && !h.has(a)) {
        Some(f) => Err(Illegal::recipe(format!(
            "this SGLang has no `{f}` option (checked against its --help, saved as engine-help.txt); forge cannot measure it"
        ))),
        None => Ok(()),
    }
}

/// The tuning flags of `recipe`: config knobs in name order, then quantization, then
/// kernels; every value on the allowlist, the cross-field rules met, every option and
/// value in `help`.
pub fn knobs(recipe: &Recipe, help: Option<&HelpSnapshot>) -> Result<Vec<String>, Illegal> {
    for (layer, name, value) in recipe.fields() {
        check_in(EngineKind::Sglang, SGLANG_KNOBS, layer, &name, &value)?;
    }
    legal(recipe)?;
    let mut out = Vec::new();
    for (layer, name, value) in recipe.fields() {
        let args = knob_args(layer, &name, &value, help)?;
        check_in_help(&name, &value, &args, help)?;
        out.extend(args);
    }
    Ok(out)
}

/// The flag and value of one allowlisted knob (nothing for a default or a reset).
fn knob_args(
    layer: Layer,
    name: &str,
    value: &Value,
    help: Option<&HelpSnapshot>,
) -> Result<Vec<String>, Illegal> {
    let text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let on = value.as_bool() == Some(true);
    let pair = |flag: &str| vec![flag.to_string(), text.clone()];
    Ok(match (layer, name) {
        (_, _) if value.is_null() => Vec::new(),
        (Layer::Quant, "checkpoint") => Vec::new(), // the model path
        (Layer::Quant, "method") if text == "none" => Vec::new(),
        (Layer::Quant, "method") => pair("--quantization"),
        (Layer::Quant, "kv_cache_quant") if text == "auto" => Vec::new(),
        (Layer::Quant, "kv_cache_quant") => pair("--kv-cache-dtype"),
        (Layer::Kernel, "attention_backend") if text == "auto" => Vec::new(),
        (Layer::Kernel, "attention_backend") => pair("--attention-backend"),
        (Layer::Config, "cuda_graph_max_bs") => pair(max_bs_flag(help)),
        (Layer::Config, "disable_cuda_graph") if on => no_graphs(help),
        (Layer::Config, "disable_cuda_graph") => Vec::new(),
        (Layer::Config, n) => match (flag_of(VALUE_FLAGS, n), flag_of(SWITCHES, n)) {
            (Some(f), _) => pair(f),
            (None, Some(f)) if on => vec![f.to_string()],
            (None, Some(_)) => Vec::new(),
            (None, None) => {
                return Err(Illegal::knob(
                    name,
                    value,
                    format!("{name}: no SGLang flag"),
                ));
            }
        },
        _ => {
            return Err(Illegal::knob(
                name,
                value,
                format!("{name}: no SGLang flag"),
            ));
        }
    })
}

fn flag_of(table: &[(&str, &'static str)], knob: &str) -> Option<&'static str> {
    table.iter().find(|(k, _)| *k == knob).map(|(_, f)| *f)
}

/// `--cuda-graph-max-bs-decode` where the help lists it (or is unknown), else
/// `--cuda-graph-max-bs`.
pub fn max_bs_flag(help: Option<&HelpSnapshot>) -> &'static str {
    match help {
        Some(h) if !h.has(MAX_BS_FLAGS[0]) && h.has(MAX_BS_FLAGS[1]) => MAX_BS_FLAGS[1],
        _ => MAX_BS_FLAGS[0],
    }
}

/// Both phases' graphs disabled, in the spelling the help lists.
fn no_graphs(help: Option<&HelpSnapshot>) -> Vec<String> {
    let per_phase = help.is_none_or(|h| {
        GRAPH_BACKENDS
            .iter()
            .all(|f| h.entry(f).is_some_and(|e| e.accepts("disabled")))
    });
    if per_phase || help.is_some_and(|h| !h.has(DISABLE_GRAPHS)) {
        GRAPH_BACKENDS
            .iter()
            .flat_map(|f| [f.to_string(), "disabled".to_string()])
            .collect()
    } else {
        vec![DISABLE_GRAPHS.to_string()]
    }
}

/// Every option of `args` listed in `help`, every value among its choices.
fn check_in_help(
    name: &str,
    value: &Value,
    args: &[String],
    help: Option<&HelpSnapshot>,
) -> Result<(), Illegal> {
    let Some(h) = help else { return Ok(()) };
    let mut it = args.iter().peekable();
    while let Some(flag) = it.next() {
        let Some(e) = h.entry(flag) else {
            return Err(Illegal::knob(
                name,
                value,
                format!(
                    "{name}: this SGLang has no `{flag}` option (checked against its --help, saved as engine-help.txt)"
                ),
            ));
        };
        if e.takes_value {
            let v = it.next().map_or("", String::as_str);
            if !e.accepts(v) {
                let choices = e.choices.as_deref().unwrap_or_default().join(", ");
                return Err(Illegal::knob(
                    name,
                    value,
                    format!(
                        "{name}: this SGLang's `{flag}` does not accept `{v}` (it accepts {choices})"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The cross-field rules SGLang enforces at boot, decided from the recipe (and the model's
/// `config.json` when the model is a local directory).
pub fn legal(recipe: &Recipe) -> Result<(), Illegal> {
    let c = &recipe.config;
    let int = |k: &str| c.get(k).and_then(Value::as_i64);
    chunk_rule(int("chunked_prefill_size"), int("page_size").unwrap_or(1))?;
    if c.get("disable_cuda_graph").and_then(Value::as_bool) == Some(true)
        && let Some(v) = c.get("cuda_graph_max_bs").filter(|v| !v.is_null())
    {
        return Err(Illegal::knob(
            "cuda_graph_max_bs",
            v,
            "cuda_graph_max_bs has no effect with disable_cuda_graph: true (no graph is captured); set one of them",
        ));
    }
    if let Some(tp) = int("tp_size") {
        tp_fits_hardware(tp, recipe)?;
        if let Some(cfg) = model_config(recipe) {
            tp_divides_heads(tp, &cfg)?;
        }
    }
    if let (Some(len), Some(cfg)) = (int("context_length"), model_config(recipe)) {
        context_fits_model(len, &cfg)?;
    }
    Ok(())
}

/// `chunked_prefill_size`: -1 disables chunking; a chunk must be a positive multiple of
/// `page_size` (srt/arg_groups/validation_hook.py: `assert cfg.chunked_prefill_size %
/// cfg.page_size == 0, "chunked_prefill_size must be divisible by page_size"`). SGLang
/// sets no other minimum.
fn chunk_rule(chunk: Option<i64>, page: i64) -> Result<(), Illegal> {
    let Some(chunk) = chunk else { return Ok(()) };
    let v = Value::from(chunk);
    if chunk == 0 {
        return Err(Illegal::knob(
            "chunked_prefill_size",
            &v,
            "chunked_prefill_size: 0 is no chunk; -1 disables chunked prefill, a chunk is at least 1 token",
        ));
    }
    if chunk > 0 && page > 0 && chunk % page != 0 {
        return Err(Illegal::knob(
            "chunked_prefill_size",
            &v,
            format!(
                "chunked_prefill_size {chunk} is not a multiple of page_size {page} (SGLang: \"chunked_prefill_size must be divisible by page_size\")"
            ),
        ));
    }
    Ok(())
}

fn tp_fits_hardware(tp: i64, recipe: &Recipe) -> Result<(), Illegal> {
    let count = i64::from(recipe.hardware.count);
    if count > 0 && tp > count {
        return Err(Illegal::knob(
            "tp_size",
            &Value::from(tp),
            format!("tp_size {tp} needs {tp} GPUs; the recipe's hardware has {count}"),
        ));
    }
    Ok(())
}

/// SGLang's attention layers assert `total_num_heads % tp_size == 0`, and KV heads either
/// divisible by TP or dividing it (srt/models/llama.py `LlamaAttention.__init__`).
fn tp_divides_heads(tp: i64, cfg: &Value) -> Result<(), Illegal> {
    let get = |k: &str| {
        cfg.get(k)
            .or_else(|| cfg.pointer(&format!("/text_config/{k}")))?
            .as_i64()
    };
    let Some(heads) = get("num_attention_heads").filter(|h| *h > 0) else {
        return Ok(());
    };
    let kv = get("num_key_value_heads")
        .filter(|k| *k > 0)
        .unwrap_or(heads);
    let v = Value::from(tp);
    if tp <= 0 || heads % tp != 0 {
        return Err(Illegal::knob(
            "tp_size",
            &v,
            format!("tp_size {tp} does not divide the model's {heads} attention heads"),
        ));
    }
    let kv_ok = if kv >= tp { kv % tp == 0 } else { tp % kv == 0 };
    if !kv_ok {
        return Err(Illegal::knob(
            "tp_size",
            &v,
            format!("tp_size {tp} and the model's {kv} KV heads: one must divide the other"),
        ));
    }
    Ok(())
}

/// A context beyond the model's `max_position_embeddings` is refused by SGLang unless
/// `SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1` (srt/configs/model_config.py: "…
/// context_length (…) is greater than the derived context_length (…)").
fn context_fits_model(len: i64, cfg: &Value) -> Result<(), Illegal> {
    let max = cfg
        .get("max_position_embeddings")
        .or_else(|| cfg.pointer("/text_config/max_position_embeddings"))
        .and_then(Value::as_i64);
    match max {
        Some(m) if len > m => Err(Illegal::knob(
            "context_length",
            &Value::from(len),
            format!(
                "context_length {len} is greater than the model's {m} (max_position_embeddings); SGLang refuses it"
            ),
        )),
        _ => Ok(()),
    }
}

/// The model's `config.json` when the model is a local directory that has one.
fn model_config(recipe: &Recipe) -> Option<Value> {
    let model = recipe.quant.checkpoint.as_deref().unwrap_or(&recipe.model);
    let text = std::fs::read_to_string(Path::new(model).join("config.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The recipe config that `argv` (SGLang flags as typed after `sglang serve --model-path
/// M`) sets: base engine arguments every experiment gets (`forge tune --engine-args`).
/// Only flags a recipe carries in its config layer are taken, full names only, each value
/// on the allowlist and the whole meeting [`legal`]; anything else is refused naming the
/// flag (and never echoing a secret's value).
pub fn config_from_args(argv: &[String]) -> Result<BTreeMap<String, Value>, Illegal> {
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < argv.len() {
        let (flag, inline) = match argv[i].split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (argv[i].as_str(), None),
        };
        let (knob, value, used) = read_flag(flag, inline, argv.get(i + 1))?;
        check_in(
            EngineKind::Sglang,
            SGLANG_KNOBS,
            Layer::Config,
            knob,
            &value,
        )?;
        m.insert(knob.to_string(), value);
        i += 1 + used;
    }
    let mut r = Recipe::baseline(
        EngineKind::Sglang,
        "model",
        crate::recipe::Hardware::default(),
    );
    r.config = m.clone();
    legal(&r)?;
    Ok(m)
}

/// One flag of `--engine-args`: its knob, value, and how many following words it took.
fn read_flag(
    flag: &str,
    inline: Option<String>,
    next: Option<&String>,
) -> Result<(&'static str, Value, usize), Illegal> {
    if SECRETS.contains(&flag) {
        return Err(Illegal::recipe(format!(
            "{flag} is never taken: base engine arguments are recorded in config.json, and a secret must not be"
        )));
    }
    let Some((knob, takes_value)) = knob_of_flag(flag) else {
        return Err(Illegal::recipe(not_carried(flag)));
    };
    if !takes_value {
        return match inline {
            Some(_) => Err(Illegal::recipe(format!(
                "{flag} is a switch and takes no value"
            ))),
            None => Ok((knob, Value::Bool(true), 0)),
        };
    }
    let (text, used) = match (inline, next) {
        (Some(v), _) => (v, 0),
        (None, Some(v)) if !v.starts_with("--") => (v.clone(), 1),
        _ => return Err(Illegal::recipe(format!("{flag} expects a value"))),
    };
    Ok((knob, typed(knob, flag, &text)?, used))
}

/// The knob a flag sets and whether it takes a value.
fn knob_of_flag(flag: &str) -> Option<(&'static str, bool)> {
    let aliases: [(&str, &'static str, bool); 4] = [
        ("--tensor-parallel-size", "tp_size", true),
        ("--cuda-graph-max-bs-decode", "cuda_graph_max_bs", true),
        ("--cuda-graph-max-bs", "cuda_graph_max_bs", true),
        (DISABLE_GRAPHS, "disable_cuda_graph", false),
    ];
    VALUE_FLAGS
        .iter()
        .map(|(k, f)| (*f, *k, true))
        .chain(SWITCHES.iter().map(|(k, f)| (*f, *k, false)))
        .chain(aliases)
        .find(|(f, _, _)| *f == flag)
        .map(|(_, k, v)| (k, v))
}

/// Why a flag forge does not read from `--engine-args` is refused.
fn not_carried(flag: &str) -> String {
    let help = newest_help();
    if help.has(flag) {
        return format!(
            "{flag}: only serving flags a recipe carries may be given (forge picks model, host, port and served name itself, and tunes quantization and kernels in their own layers)"
        );
    }
    let full: Vec<&str> = help
        .entries()
        .iter()
        .flat_map(|e| e.names.iter().map(String::as_str))
        .filter(|n| flag.len() > 2 && n.starts_with(flag))
        .collect();
    match full.as_slice() {
        [one] => format!("{flag}: give the full option name ({one})"),
        _ => format!(
            "{flag} is not an `sglang serve` option (SGLang {})",
            super::help::Version::NEWEST
        ),
    }
}

/// A typed value for `knob` from the text given to `flag`.
fn typed(knob: &str, flag: &str, text: &str) -> Result<Value, Illegal> {
    let kind = SGLANG_KNOBS
        .iter()
        .find(|k| k.layer == Layer::Config && k.name == knob)
        .map(|k| &k.kind);
    let bad = |what: &str| Illegal::recipe(format!("{flag} {text}: expected {what}"));
    Ok(match kind {
        Some(Kind::Int(..)) => Value::from(text.parse::<i64>().map_err(|_| bad("an integer"))?),
        Some(Kind::Float(..)) => Value::from(text.parse::<f64>().map_err(|_| bad("a number"))?),
        _ => Value::from(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sglang::help::parse_help;
    use crate::recipe::{Hardware, Kernel};
    use serde_json::json;

    fn help(v: &str) -> HelpSnapshot {
        let p = format!(
            "{}/tests/fixtures/sglang/help-{v}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        parse_help(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn recipe(config: serde_json::Value) -> Recipe {
        let mut r = Recipe::baseline(EngineKind::Sglang, "Qwen/Qwen3-8B", Hardware::default());
        r.config = serde_json::from_value(config).unwrap();
        r
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn baseline_renders_the_serving_flags() {
        let r = recipe(json!({}));
        for v in ["0.5.23", "0.5.19"] {
            assert_eq!(
                render(&r, 31000, "forge-e0001-x", Some(&help(v)))
                    .unwrap()
                    .join(" "),
                "--model-path Qwen/Qwen3-8B --host 127.0.0.1 --port 31000 --served-model-name forge-e0001-x --enable-metrics"
            );
        }
    }

    #[test]
    fn knobs_quant_and_kernels_in_both_versions() {
        let mut r = recipe(
            json!({"max_running_requests": 64, "mem_fraction_static": 0.85,
            "schedule_policy": "lpm", "disable_radix_cache": true, "enable_mixed_chunk": false,
            "chunked_prefill_size": -1}),
        );
        r.quant.method = Some("fp8".into());
        r.quant.kv_cache_quant = Some("fp8_e4m3".into());
        r.kernels.push(Kernel {
            name: "attention_backend".into(),
            value: "fa3".into(),
        });
        let want = "--chunked-prefill-size -1 --disable-radix-cache --max-running-requests 64 \
            --mem-fraction-static 0.85 --schedule-policy lpm --quantization fp8 \
            --kv-cache-dtype fp8_e4m3 --attention-backend fa3";
        for v in ["0.5.23", "0.5.19"] {
            assert_eq!(
                knobs(&r, Some(&help(v))).unwrap().join(" "),
                words(want).join(" "),
                "{v}"
            );
        }
        let mut r = recipe(json!({}));
        r.quant.method = Some("none".into());
        r.quant.kv_cache_quant = Some("auto".into());
        r.quant.checkpoint = Some("org/m-fp8".into());
        assert!(knobs(&r, None).unwrap().is_empty());
        assert_eq!(render(&r, 1, "s", None).unwrap()[1], "org/m-fp8");
    }

    #[test]
    fn cuda_graph_drift_follows_the_help() {
        let r = recipe(json!({"cuda_graph_max_bs": 128}));
        let new = help("0.5.23");
        let old = help("0.5.19");
        assert_eq!(
            knobs(&r, Some(&new)).unwrap(),
            words("--cuda-graph-max-bs-decode 128")
        );
        // 0.5.19 lists both; the canonical name wins over the deprecated alias.
        assert_eq!(
            knobs(&r, Some(&old)).unwrap(),
            words("--cuda-graph-max-bs-decode 128")
        );
        // ≤ 0.5.13: only `--cuda-graph-max-bs` exists.
        let ancient = HelpSnapshot::parse(
            "options:\n  --model-path MODEL_PATH\n  --cuda-graph-max-bs CUDA_GRAPH_MAX_BS\n  --disable-cuda-graph  Disable cuda graph.\n",
        );
        assert_eq!(
            knobs(&r, Some(&ancient)).unwrap(),
            words("--cuda-graph-max-bs 128")
        );
        assert_eq!(
            knobs(&r, None).unwrap(),
            words("--cuda-graph-max-bs-decode 128")
        );
        let off = recipe(json!({"disable_cuda_graph": true}));
        let per_phase =
            "--cuda-graph-backend-decode disabled --cuda-graph-backend-prefill disabled";
        assert_eq!(knobs(&off, Some(&new)).unwrap(), words(per_phase));
        assert_eq!(knobs(&off, Some(&old)).unwrap(), words(per_phase));
        assert_eq!(
            knobs(&off, Some(&ancient)).unwrap(),
            words("--disable-cuda-graph")
        );
        assert!(
            knobs(&recipe(json!({"disable_cuda_graph": false})), Some(&new))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_help_refuses_what_this_version_cannot_take() {
        let r = recipe(json!({"schedule_policy": "lof"}));
        let narrow = HelpSnapshot::parse("options:\n  --schedule-policy {lpm,fcfs}\n");
        let e = knobs(&r, Some(&narrow)).unwrap_err();
        assert_eq!(e.knob.as_deref(), Some("schedule_policy"));
        assert!(e.why.contains("does not accept `lof`"), "{e}");
        let e = knobs(&recipe(json!({"page_size": 16})), Some(&narrow)).unwrap_err();
        assert!(e.why.contains("no `--page-size` option"), "{e}");
        let e = render(&recipe(json!({})), 1, "s", Some(&narrow)).unwrap_err();
        assert!(e.why.contains("no `--model-path` option"), "{e}");
        let mut r = recipe(json!({}));
        r.quant.method = Some("gguf".into());
        assert!(knobs(&r, None).unwrap_err().why.contains("not one of"));
    }

    #[test]
    fn cross_field_rules() {
        for (cfg, says) in [
            (
                json!({"chunked_prefill_size": 0}),
                "-1 disables chunked prefill",
            ),
            (
                json!({"chunked_prefill_size": 100, "page_size": 16}),
                "not a multiple of page_size 16",
            ),
            (
                json!({"disable_cuda_graph": true, "cuda_graph_max_bs": 8}),
                "no effect",
            ),
        ] {
            let e = knobs(&recipe(cfg.clone()), None).unwrap_err();
            assert!(e.why.contains(says), "{cfg}: {e}");
        }
        assert!(
            knobs(
                &recipe(json!({"chunked_prefill_size": 4096, "page_size": 16})),
                None
            )
            .is_ok()
        );
        let mut r = recipe(json!({"tp_size": 4}));
        r.hardware.count = 2;
        assert!(
            knobs(&r, None)
                .unwrap_err()
                .why
                .contains("the recipe's hardware has 2")
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"),
            r#"{"num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 40960}"#).unwrap();
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join("config.json"),
            r#"{"text_config": {"num_attention_heads": 24, "num_key_value_heads": 6}}"#,
        )
        .unwrap();
        let at = |dir: &std::path::Path, cfg: serde_json::Value| {
            let mut r = recipe(cfg);
            r.model = dir.display().to_string();
            r.hardware.count = 64;
            r
        };
        let local = |cfg: serde_json::Value| at(dir.path(), cfg);
        assert!(
            knobs(&local(json!({"tp_size": 3})), None)
                .unwrap_err()
                .why
                .contains("32 attention heads")
        );
        assert!(
            knobs(&local(json!({"tp_size": 16})), None).is_ok(),
            "KV heads replicated"
        );
        assert!(knobs(&local(json!({"tp_size": 8})), None).is_ok());
        let e = knobs(&at(other.path(), json!({"tp_size": 4})), None).unwrap_err();
        assert!(e.why.contains("6 KV heads"), "{e}");
        let e = knobs(&local(json!({"context_length": 131072})), None).unwrap_err();
        assert!(e.why.contains("greater than the model's 40960"), "{e}");
    }

    #[test]
    fn deploy_is_the_newest_sglang_command() {
        let r = recipe(json!({"cuda_graph_max_bs": 64, "mem_fraction_static": 0.8}));
        assert_eq!(
            deploy(&r, "0.0.0.0", 30000).unwrap().join(" "),
            "sglang serve --model-path Qwen/Qwen3-8B --host 0.0.0.0 --port 30000 --cuda-graph-max-bs-decode 64 --mem-fraction-static 0.8"
        );
    }

    #[test]
    fn base_engine_arguments_become_config_or_are_refused_by_name() {
        let m = config_from_args(&words(
            "--context-length 8192 --mem-fraction-static=0.85 --disable-radix-cache --cuda-graph-max-bs 32 --tensor-parallel-size 2",
        ))
        .unwrap();
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"context_length": 8192, "mem_fraction_static": 0.85, "disable_radix_cache": true,
                   "cuda_graph_max_bs": 32, "tp_size": 2})
        );
        for (argv, says) in [
            (
                "--quantization fp8",
                "--quantization: only serving flags a recipe carries",
            ),
            ("--port 9000", "--port: only serving flags"),
            (
                "--mem-fraction 0.8",
                "--mem-fraction: give the full option name (--mem-fraction-static)",
            ),
            (
                "--bogus-flag 1",
                "--bogus-flag is not an `sglang serve` option",
            ),
            (
                "--max-running-requests",
                "--max-running-requests expects a value",
            ),
            (
                "--max-running-requests lots",
                "--max-running-requests lots: expected an integer",
            ),
            ("--max-running-requests 0", "outside"),
            ("--schedule-policy priority", "not one of"),
            (
                "--disable-radix-cache=1",
                "--disable-radix-cache is a switch",
            ),
            ("--chunked-prefill-size 0", "-1 disables"),
            ("--api-key sk-secret", "--api-key is never taken"),
            ("--api-key=sk-secret", "--api-key is never taken"),
        ] {
            let e = config_from_args(&words(argv)).unwrap_err();
            assert!(e.to_string().contains(says), "{argv}: {e}");
            assert!(!e.to_string().contains("sk-secret"), "{e}");
        }
    }
}
