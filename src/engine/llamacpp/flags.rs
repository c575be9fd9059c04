//! A llama.cpp recipe as `llama-server` argv. Every knob value passes the allowlist
//! ([`crate::engine::llamacpp::knobs::LLAMACPP_KNOBS`]) and every flag is checked against the
//! binary's own `--help` when it is known. The serving flags forge always adds: loopback
//! host and port, the served name as an alias (so `/v1/models` lists it), `--metrics`, no
//! web UI, and no prompt cache (`--cache-ram 0 --no-cache-prompt`) so a repeated
//! measurement never hits a warm cache.
//!
//! [`render`] is what forge boots; [`render_deploy`] is what a user deploys
//! (`forge recipe command`): the same serving flags on the user's host and port and the
//! same knobs, without the flags that exist only for measuring — `--metrics` (forge reads
//! `/metrics` while it measures), `--no-webui`, and `--cache-ram 0 --no-cache-prompt`
//! (measurement hygiene, not a tuned value: a deployment keeps llama-server's prompt
//! cache, which can only save work on a repeated prefix).

use serde_json::Value;

use super::help::HelpFlags;
use super::knobs::LLAMACPP_KNOBS;
use crate::engine::knobs;
use crate::recipe::Layer;
use crate::recipe::{EngineKind, Recipe};

/// The long flag of each numeric or choice knob.
pub const KNOB_FLAGS: &[(&str, &str)] = &[
    ("batch_size", "--batch-size"),
    ("cache_reuse", "--cache-reuse"),
    ("cache_type_k", "--cache-type-k"),
    ("cache_type_v", "--cache-type-v"),
    ("ctx_size", "--ctx-size"),
    ("flash_attn", "--flash-attn"),
    ("n_gpu_layers", "--n-gpu-layers"),
    ("parallel", "--parallel"),
    ("threads", "--threads"),
    ("threads_batch", "--threads-batch"),
    ("ubatch_size", "--ubatch-size"),
];

/// Flags (with their values) forge always passes; a binary without one of them cannot be
/// measured the way forge measures.
const REQUIRED: &[&str] = &["--model", "--alias", "--host", "--port", "--metrics"];
/// Always-on flags a build may lack; then the feature they turn off does not exist in it
/// (older builds have no host-RAM prompt cache and no web UI), so they are left out.
pub const OPTIONAL: &[(&str, Option<&str>)] = &[
    ("--no-webui", None),
    ("--cache-ram", Some("0")),
    ("--no-cache-prompt", None),
];

/// Why a recipe cannot become a llama-server command line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// A field or value outside the allowlist.
    #[error("{field}: {why}")]
    NotAllowed {
        /// Dotted recipe field (`config.parallel`).
        field: String,
        /// Why.
        why: String,
    },
    /// The binary's `--help` does not list the flag a knob needs.
    #[error(
        "{field}: this llama-server has no `{flag}` option (checked against its --help, saved as engine-help.txt); the knob is refused"
    )]
    MissingFlag {
        /// Dotted recipe field.
        field: String,
        /// The flag.
        flag: String,
    },
}

fn not_allowed(field: &str, why: impl Into<String>) -> RenderError {
    RenderError::NotAllowed {
        field: field.to_string(),
        why: why.into(),
    }
}

/// The knob values a recipe sets, as `(knob, value)`: its `config`, and `quant.kv_cache_quant`
/// as both cache types. Weight quantization and kernels have no llama-server flag (the GGUF
/// file fixes the weights' format: `quant.method`, a GGUF type, picks the requantized file,
/// [`super::quant`]; `kernels.patch` picks the program, [`super::source`]; both are checked
/// against what the run can make by the engine, not rendered as flags).
pub fn knob_values(r: &Recipe) -> Result<Vec<(String, Value, Layer)>, RenderError> {
    if let Some(m) = &r.quant.method {
        // The GGUF type picks the model file (`super::quant`), not a flag.
        knobs::check_in(
            EngineKind::Llamacpp,
            LLAMACPP_KNOBS,
            Layer::Quant,
            "method",
            &Value::from(m.as_str()),
        )
        .map_err(|e| not_allowed("quant.method", e.why))?;
    }
    if r.quant.checkpoint.is_some() {
        return Err(not_allowed(
            "quant.checkpoint",
            "use the GGUF file as the model",
        ));
    }
    for k in &r.kernels {
        let field = format!("kernels.{}", k.name);
        if k.name != "patch" {
            return Err(not_allowed(
                &field,
                "llama-server has no kernel flags (layer 3 is `kernels.patch`, a patch of the source)",
            ));
        }
        knobs::check_in(
            EngineKind::Llamacpp,
            LLAMACPP_KNOBS,
            Layer::Kernel,
            &k.name,
            &Value::from(k.value.as_str()),
        )
        .map_err(|e| not_allowed(&field, e.why))?;
    }
    let mut out: Vec<(String, Value, Layer)> = r
        .config
        .iter()
        .map(|(k, v)| (k.clone(), v.clone(), Layer::Config))
        .collect();
    if let Some(t) = &r.quant.kv_cache_quant {
        for k in ["cache_type_k", "cache_type_v"] {
            out.push((k.to_string(), Value::from(t.as_str()), Layer::Quant));
        }
    }
    Ok(out)
}

/// Flag and value(s) of one knob, after the allowlist check.
fn knob_args(name: &str, v: &Value, layer: Layer) -> Result<Vec<String>, RenderError> {
    let field = format!("{}.{name}", section(layer));
    knobs::check_in(EngineKind::Llamacpp, LLAMACPP_KNOBS, layer, name, v)
        .map_err(|e| not_allowed(&field, e.why))?;
    if v.is_null() {
        return Ok(Vec::new());
    }
    if name == "cont_batching" {
        let on = v.as_bool().unwrap_or(true);
        return Ok(vec![
            if on {
                "--cont-batching"
            } else {
                "--no-cont-batching"
            }
            .to_string(),
        ]);
    }
    let flag = flag_of(name).ok_or_else(|| not_allowed(&field, "no llama-server flag"))?;
    let value = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(vec![flag.to_string(), value])
}

fn section(layer: Layer) -> &'static str {
    match layer {
        Layer::Config => "config",
        Layer::Quant => "quant",
        Layer::Kernel => "kernels",
    }
}

/// The long flag of a knob (`parallel` → `--parallel`).
pub fn flag_of(knob: &str) -> Option<&'static str> {
    KNOB_FLAGS.iter().find(|(k, _)| *k == knob).map(|(_, f)| *f)
}

/// Every flag a knob's rendering uses must be in `help` (when known).
fn check_flags(field: &str, args: &[String], help: Option<&HelpFlags>) -> Result<(), RenderError> {
    let Some(h) = help else { return Ok(()) };
    match args.iter().find(|a| a.starts_with("--") && !h.has(a)) {
        Some(flag) => Err(RenderError::MissingFlag {
            field: field.to_string(),
            flag: flag.clone(),
        }),
        None => Ok(()),
    }
}

/// The tuning flags of a recipe (no always-on flags), each checked against `help`.
pub fn render_knobs(r: &Recipe, help: Option<&HelpFlags>) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::new();
    for (name, v, layer) in knob_values(r)? {
        let args = knob_args(&name, &v, layer)?;
        check_flags(&format!("{}.{name}", section(layer)), &args, help)?;
        out.extend(args);
    }
    Ok(out)
}

/// The full argv after the program: always-on flags, then the recipe's knobs in name order.
pub fn render(
    r: &Recipe,
    port: u16,
    served_name: &str,
    help: Option<&HelpFlags>,
) -> Result<Vec<String>, RenderError> {
    let mut out = serving_flags(r, "127.0.0.1", port, served_name)?;
    out.push("--metrics".into());
    for flag in REQUIRED {
        check_flags("always-on flags", &[flag.to_string()], help)?;
    }
    for (flag, value) in OPTIONAL {
        if help.is_none_or(|h| h.has(flag)) {
            out.push(flag.to_string());
            out.extend(value.map(str::to_string));
        }
    }
    out.extend(render_knobs(r, help)?);
    Ok(out)
}

/// The argv after `llama-server` that deploys `r` on `host:port`: what [`render`] boots
/// without the measurement-only flags, served under the model file's stem
/// (`/models/SmolLM2-135M-Instruct.Q4_1.gguf` → `SmolLM2-135M-Instruct.Q4_1`). No binary
/// is at hand, so flags are not checked against a `--help`.
pub fn render_deploy(r: &Recipe, host: &str, port: u16) -> Result<Vec<String>, RenderError> {
    let name = deploy_name(&r.model);
    let mut out = serving_flags(r, host, port, &name)?;
    out.extend(render_knobs(r, None)?);
    Ok(out)
}

/// [`render_deploy`] serving the model file `file` (a requantized copy of `r`'s model,
/// [`super::quant`]) under the name of `r`'s own model.
pub fn render_deploy_file(
    r: &Recipe,
    file: &std::path::Path,
    host: &str,
    port: u16,
) -> Result<Vec<String>, RenderError> {
    let served = super::quant::served_as(r, file);
    let mut out = serving_flags(&served, host, port, &deploy_name(&r.model))?;
    out.extend(render_knobs(&served, None)?);
    Ok(out)
}

/// The name a deployment serves `model` under: the file's stem.
fn deploy_name(model: &str) -> String {
    std::path::Path::new(model)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(model)
        .to_string()
}

/// `--model M --alias NAME --host H --port P`, each value checked: a model path and a name
/// forge may pass, a host name or address that cannot read as an option.
fn serving_flags(
    r: &Recipe,
    host: &str,
    port: u16,
    served_name: &str,
) -> Result<Vec<String>, RenderError> {
    if !knobs::is_safe_model_id(&r.model) {
        return Err(not_allowed(
            "model",
            format!(
                "`{}` is not a path forge passes to an engine (letters, digits and -_./:@+ only, not starting with -)",
                r.model
            ),
        ));
    }
    if !knobs::is_safe_model_id(served_name) {
        return Err(not_allowed("served name", served_name.to_string()));
    }
    if !is_host(host) {
        return Err(not_allowed(
            "host",
            format!("`{host}` is not a host name or IP address"),
        ));
    }
    let port = port.to_string();
    let words = [
        "--model",
        &r.model,
        "--alias",
        served_name,
        "--host",
        host,
        "--port",
        &port,
    ];
    Ok(words.iter().map(|s| s.to_string()).collect())
}

/// A host name, IPv4 or IPv6 address (letters, digits and `.-:_[]%`, not starting with `-`).
fn is_host(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('-')
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:_[]%".contains(c))
}

/// Always-on flags this binary lacks (left out, with a warning at the start of the run).
pub fn missing_optional(help: &HelpFlags) -> Vec<&'static str> {
    OPTIONAL
        .iter()
        .filter(|(f, _)| !help.has(f))
        .map(|(f, _)| *f)
        .collect()
}

/// Short spellings llama-server accepts for the knob flags.
const SHORT: &[(&str, &str)] = &[
    ("-c", "--ctx-size"),
    ("-np", "--parallel"),
    ("-b", "--batch-size"),
    ("-ub", "--ubatch-size"),
    ("-t", "--threads"),
    ("-tb", "--threads-batch"),
    ("-ngl", "--n-gpu-layers"),
    ("-fa", "--flash-attn"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
];

/// The recipe config that `argv` (llama-server flags) sets: base engine arguments a user
/// passes every experiment (`forge tune --engine-args`). Only the knob flags are taken,
/// each checked by the allowlist; anything else is refused with its name.
pub fn config_from_args(
    argv: &[String],
) -> Result<std::collections::BTreeMap<String, Value>, crate::recipe::Illegal> {
    let refuse = |why: String| crate::recipe::Illegal::recipe(why);
    let mut out = std::collections::BTreeMap::new();
    let mut words = argv.iter();
    while let Some(w) = words.next() {
        let flag = SHORT
            .iter()
            .find(|(s, _)| s == w)
            .map_or(w.as_str(), |(_, l)| l);
        let (knob, value) = match flag {
            "--cont-batching" => ("cont_batching", Value::from(true)),
            "--no-cont-batching" => ("cont_batching", Value::from(false)),
            _ => {
                let Some((knob, _)) = KNOB_FLAGS.iter().find(|(_, f)| *f == flag) else {
                    return Err(refuse(format!(
                        "{w} is not a llama-server flag a recipe carries (knob flags: {})",
                        KNOB_FLAGS
                            .iter()
                            .map(|(_, f)| *f)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                };
                let raw = words
                    .next()
                    .ok_or_else(|| refuse(format!("{w} needs a value")))?;
                (
                    *knob,
                    raw.parse::<i64>()
                        .map_or_else(|_| Value::from(raw.as_str()), Value::from),
                )
            }
        };
        knobs::check_in(
            EngineKind::Llamacpp,
            LLAMACPP_KNOBS,
            Layer::Config,
            knob,
            &value,
        )
        .map_err(|e| refuse(e.why))?;
        out.insert(knob.to_string(), value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_engine_arguments_take_long_and_short_knob_flags() {
        let w = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let m = config_from_args(&w("-c 4096 -np 2 --no-cont-batching -fa on")).unwrap();
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            serde_json::json!({"ctx_size": 4096, "parallel": 2, "cont_batching": false,
                "flash_attn": "on"})
        );
        for (argv, says) in [
            (
                "--model x.gguf",
                "--model is not a llama-server flag a recipe carries",
            ),
            ("-c", "-c needs a value"),
            ("-np 0", "parallel"),
        ] {
            let e = config_from_args(&w(argv)).unwrap_err();
            assert!(e.to_string().contains(says), "{argv}: {e}");
        }
    }
    use crate::recipe::Hardware;
    use serde_json::json;

    const MODEL: &str = "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

    fn recipe(config: &[(&str, Value)]) -> Recipe {
        let base = Recipe::baseline(EngineKind::Llamacpp, MODEL, Hardware::default());
        let changes = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        base.mutate(Layer::Config, &changes)
    }

    fn help() -> HelpFlags {
        HelpFlags::parse(include_str!("../../../tests/fixtures/llamacpp/help.txt"))
    }

    #[test]
    fn baseline_is_only_the_always_on_flags() {
        let argv = render(&recipe(&[]), 8123, "forge-e0001-baseline", Some(&help())).unwrap();
        assert_eq!(
            argv.join(" "),
            format!(
                "--model {MODEL} --alias forge-e0001-baseline --host 127.0.0.1 --port 8123 --metrics --no-webui --cache-ram 0 --no-cache-prompt"
            )
        );
    }

    #[test]
    fn a_deployment_has_the_knobs_and_none_of_the_measurement_flags() {
        let r = recipe(&[("parallel", json!(8)), ("flash_attn", json!("on"))]);
        let argv = render_deploy(&r, "0.0.0.0", 8080).unwrap();
        assert_eq!(
            argv.join(" "),
            format!(
                "--model {MODEL} --alias SmolLM2-135M-Instruct.Q4_1 --host 0.0.0.0 --port 8080 --flash-attn on --parallel 8"
            )
        );
        // The boot is the same command on loopback plus the measurement-only flags.
        let local = render_deploy(&r, "127.0.0.1", 8080).unwrap();
        let mut boot = render(&r, 8080, "SmolLM2-135M-Instruct.Q4_1", Some(&help())).unwrap();
        let measuring: Vec<String> = boot.drain(8..13).collect();
        assert_eq!(
            measuring,
            [
                "--metrics",
                "--no-webui",
                "--cache-ram",
                "0",
                "--no-cache-prompt"
            ]
        );
        assert_eq!(boot, local);
        for host in ["::", "[::1]", "my-box.local", "fe80::1%eth0"] {
            assert!(render_deploy(&r, host, 1).is_ok(), "{host}");
        }
        for host in ["", "--api-key", "a b", "x;y"] {
            let e = render_deploy(&r, host, 1).unwrap_err();
            assert!(e.to_string().starts_with("host: "), "{host}: {e}");
        }
    }

    #[test]
    fn knobs_render_in_name_order_with_llama_spelling() {
        let r = recipe(&[
            ("threads", json!(2)),
            ("parallel", json!(8)),
            ("ctx_size", json!(4096)),
            ("cont_batching", json!(false)),
            ("flash_attn", json!("on")),
            ("ubatch_size", json!(256)),
            ("batch_size", json!(1024)),
            ("threads_batch", json!(1)),
        ]);
        assert_eq!(
            render_knobs(&r, Some(&help())).unwrap().join(" "),
            "--batch-size 1024 --no-cont-batching --ctx-size 4096 --flash-attn on --parallel 8 --threads 2 --threads-batch 1 --ubatch-size 256"
        );
        let on = recipe(&[("cont_batching", json!(true)), ("cache_reuse", json!(256))]);
        assert_eq!(
            render_knobs(&on, None).unwrap(),
            vec!["--cache-reuse", "256", "--cont-batching"]
        );
    }

    #[test]
    fn kv_cache_quant_sets_both_cache_types() {
        let mut r = recipe(&[("flash_attn", json!("on"))]);
        r.quant.kv_cache_quant = Some("q8_0".into());
        assert_eq!(
            render_knobs(&r, Some(&help())).unwrap().join(" "),
            "--flash-attn on --cache-type-k q8_0 --cache-type-v q8_0"
        );
        r.quant.kv_cache_quant = Some("fp8".into());
        let e = render_knobs(&r, None).unwrap_err();
        assert!(e.to_string().starts_with("quant.cache_type_k: "), "{e}");
        r.quant.kv_cache_quant = None;
        r.quant.method = Some("awq".into());
        let e = render_knobs(&r, None).unwrap_err().to_string();
        assert!(
            e.starts_with("quant.method: ") && e.contains("not one of"),
            "{e}"
        );
        // A GGUF type picks the model file, not a flag.
        r.quant.method = Some("q4_k_m".into());
        assert_eq!(render_knobs(&r, None).unwrap().join(" "), "--flash-attn on");
    }

    #[test]
    fn values_outside_the_allowlist_are_refused() {
        for (k, v) in [
            ("parallel", json!(0)),
            ("threads", json!("2")),
            ("flash_attn", json!("maybe")),
            ("max_num_seqs", json!(8)),
            ("ctx_size", json!(-1)),
        ] {
            let e = render_knobs(&recipe(&[(k, v.clone())]), None).unwrap_err();
            assert!(
                matches!(&e, RenderError::NotAllowed { field, .. } if *field == format!("config.{k}")),
                "{k}={v}: {e}"
            );
        }
        let mut r = recipe(&[]);
        r.model = "--hf-repo x/y".into();
        assert!(
            render(&r, 1, "s", None)
                .unwrap_err()
                .to_string()
                .starts_with("model: ")
        );
    }

    #[test]
    fn a_flag_the_binary_lacks_is_refused_and_optional_ones_are_left_out() {
        let old = HelpFlags::parse(
            "-m,    --model FNAME\n-a,    --alias STRING\n--host HOST\n--port PORT\n--metrics   x\n-np,   --parallel N\n",
        );
        let e = render_knobs(&recipe(&[("cache_reuse", json!(64))]), Some(&old)).unwrap_err();
        assert_eq!(
            e,
            RenderError::MissingFlag {
                field: "config.cache_reuse".into(),
                flag: "--cache-reuse".into()
            }
        );
        assert!(e.to_string().contains("engine-help.txt"));
        let argv = render(&recipe(&[("parallel", json!(2))]), 9, "s", Some(&old)).unwrap();
        assert_eq!(
            argv.join(" "),
            format!("--model {MODEL} --alias s --host 127.0.0.1 --port 9 --metrics --parallel 2")
        );
        assert_eq!(
            missing_optional(&old),
            vec!["--no-webui", "--cache-ram", "--no-cache-prompt"]
        );
        assert!(missing_optional(&help()).is_empty());
        let no_metrics = HelpFlags::parse("-m,    --model FNAME\n");
        assert!(render(&recipe(&[]), 9, "s", Some(&no_metrics)).is_err());
    }
}
