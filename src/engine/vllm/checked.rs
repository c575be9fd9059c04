//! Rendering for the vLLM that is actually installed: forge's flag table renders the
//! arguments for the detected version, then every flag is checked against that engine's
//! own help snapshot before anything boots. A flag the snapshot does not list is respelled
//! when the snapshot lists the same field under another name (a rename across versions,
//! the negative spelling of a boolean, `-O<n>` versus `--optimization-level`), and
//! otherwise refused with the recipe field it came from — never silently dropped, so an
//! unchanged server is never scored as if the change had been made.
//!
//! One field has a second spelling: the attention backend. vLLM chose it with the
//! environment variable `VLLM_ATTENTION_BACKEND` until 0.13.0 added `--attention-backend`
//! (and deprecated the variable), so for a vLLM without the flag [`serve_command`] sets
//! the variable instead — its value checked against the same knob table as a flag's.

use serde_json::Value;

use super::VllmArgs;
use super::flags::{self, FLAGS, Flag, Kind, Piece, RenderError, Target, Version};
use super::help::{HelpEntry, HelpSnapshot};
use super::knobs::VLLM_KNOBS;
use crate::engine::knobs::check_in;
use crate::recipe::{EngineKind, Layer};

/// The variable vLLM before 0.13 read for the attention backend (`vllm/envs.py`).
pub const ATTENTION_BACKEND_ENV: &str = "VLLM_ATTENTION_BACKEND";

/// A `vllm serve` command for one installed vLLM: the words after `vllm serve` and the
/// environment the recipe needs (argv only; the variables are set on the process).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeCommand {
    /// The words after `vllm serve`, model first.
    pub args: Vec<String>,
    /// `(name, value)` to set: `VLLM_ATTENTION_BACKEND` where the version has no flag.
    pub env: Vec<(String, String)>,
}

/// Why a recipe cannot be rendered for the installed vLLM. Every variant names the recipe
/// field, so the experiment is recorded as an `infeasible_config` the agent can read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FlagCheckError {
    /// The version has no flag for the field.
    #[error("recipe field `{field}` has no flag in vLLM {version}: {why}")]
    NoFlag {
        /// Recipe field (`performance_mode`, `kernels.attention_backend`).
        field: &'static str,
        /// Installed version.
        version: Version,
        /// What is missing.
        why: String,
    },
    /// The version's help lists choices and the value is not one of them.
    #[error(
        "recipe field `{field}`: vLLM {version} does not accept `{flag} {value}` (its help \
         lists: {choices})"
    )]
    BadValue {
        /// Recipe field.
        field: &'static str,
        /// Installed version.
        version: Version,
        /// The flag as the help spells it.
        flag: String,
        /// The refused value.
        value: String,
        /// The listed choices.
        choices: String,
    },
    /// forge's own allowlist refuses the value (range, shape, unknown choice).
    #[error("recipe field `{field}`: {source}")]
    Invalid {
        /// Recipe field.
        field: &'static str,
        /// The table's reason.
        source: RenderError,
    },
    /// The knob table refuses a value bound for an environment variable.
    #[error("recipe field `{field}`: {why}")]
    NotAllowed {
        /// Recipe field.
        field: &'static str,
        /// The table's reason.
        why: String,
    },
}

/// The `vllm serve` command for `args` on vLLM `version`: [`render_checked`]'s argv, with
/// the attention backend moved into `VLLM_ATTENTION_BACKEND` when this vLLM has no
/// `--attention-backend` (by forge's table, or by its own help when that lists flags).
pub fn serve_command(
    args: &VllmArgs,
    version: Version,
    help: Option<&HelpSnapshot>,
) -> Result<ServeCommand, FlagCheckError> {
    let mut args = args.clone();
    let by_env = args
        .attention_backend
        .take_if(|_| !has_backend_flag(version, help));
    let env = match by_env {
        Some(b) => backend_env(&b)?,
        None => Vec::new(),
    };
    Ok(ServeCommand {
        args: render_checked(&args, version, help)?,
        env,
    })
}

/// Whether this vLLM takes `--attention-backend`: forge's table says the version has it,
/// and the engine's own help (when it lists flags) lists it.
fn has_backend_flag(version: Version, help: Option<&HelpSnapshot>) -> bool {
    let in_table = flags::flags_for(version).any(|f| f.target == Target::AttentionBackend);
    let listed = help
        .filter(|h| h.lists_flags())
        .is_none_or(|h| h.has("--attention-backend"));
    in_table && listed
}

/// `VLLM_ATTENTION_BACKEND=<backend>` after the knob table's check (`auto`: vLLM's own
/// choice, nothing to set).
fn backend_env(backend: &str) -> Result<Vec<(String, String)>, FlagCheckError> {
    let field = field_of(Target::AttentionBackend);
    check_in(
        EngineKind::Vllm,
        VLLM_KNOBS,
        Layer::Kernel,
        "attention_backend",
        &Value::from(backend),
    )
    .map_err(|e| FlagCheckError::NotAllowed { field, why: e.why })?;
    if backend == "auto" {
        return Ok(Vec::new());
    }
    Ok(vec![(
        ATTENTION_BACKEND_ENV.to_string(),
        backend.to_string(),
    )])
}

/// The argv after `vllm serve` for `args` on vLLM `version`, checked against `help` when
/// it lists flags (a snapshot that lists none — a group summary — checks nothing; it is
/// never read as "every flag is gone").
pub fn render_checked(
    args: &VllmArgs,
    version: Version,
    help: Option<&HelpSnapshot>,
) -> Result<Vec<String>, FlagCheckError> {
    let pieces = flags::render_pieces(args, version).map_err(|e| table_error(e, version))?;
    let help = help.filter(|h| h.lists_flags());
    let mut out = vec![args.model.clone()];
    for piece in pieces {
        match help {
            Some(h) => out.extend(check_piece(&piece, h, version)?),
            None => out.extend(piece.words),
        }
    }
    Ok(out)
}

/// A table refusal, named by the recipe field of the flag it concerns.
fn table_error(e: RenderError, version: Version) -> FlagCheckError {
    let flag = match &e {
        RenderError::NotInVersion { flag, .. } | RenderError::Invalid { flag, .. } => *flag,
    };
    let field = FLAGS
        .iter()
        .find(|f| f.long == flag)
        .map_or("model", |f| field_of(f.target));
    match e {
        RenderError::NotInVersion { flag, .. } => FlagCheckError::NoFlag {
            field,
            version,
            why: format!("forge knows `{flag}` only in other vLLM versions"),
        },
        source => FlagCheckError::Invalid { field, source },
    }
}

/// Check (and respell) one piece against the snapshot.
fn check_piece(
    p: &Piece,
    help: &HelpSnapshot,
    version: Version,
) -> Result<Vec<String>, FlagCheckError> {
    let field = field_of(p.target);
    let missing = |why: String| FlagCheckError::NoFlag {
        field,
        version,
        why,
    };
    if p.target == Target::OptimizationLevel {
        return level(p, help, version);
    }
    let Some((name, entry)) = listed_name(p, help) else {
        return Err(missing(format!(
            "`{}` is not in its `vllm serve --help=all`",
            p.flag.long
        )));
    };
    if p.flag.kind == Kind::BoolOpt {
        return switch(p, name, entry, version).ok_or_else(|| {
            missing(format!(
                "its help lists `{name}` but no spelling that turns it off"
            ))
        });
    }
    let values = p.words.get(1..).unwrap_or_default();
    check_values(field, name, entry, values, version)?;
    let mut out = vec![name.to_string()];
    out.extend(values.iter().cloned());
    Ok(out)
}

/// The first spelling of the piece's field the snapshot lists: the flag itself, its
/// aliases, then the names the same field has in other versions (renames).
fn listed_name<'h>(p: &Piece, help: &'h HelpSnapshot) -> Option<(&'h str, &'h HelpEntry)> {
    let same_field = FLAGS
        .iter()
        .filter(|f| f.target == p.target && !std::ptr::eq(*f, p.flag));
    std::iter::once(p.flag)
        .chain(same_field)
        .flat_map(names)
        .find_map(|n| {
            let entry = help.entry(n)?;
            let name = entry.names.iter().find(|x| *x == n)?;
            Some((name.as_str(), entry))
        })
}

fn names(f: &'static Flag) -> impl Iterator<Item = &'static str> {
    std::iter::once(f.long).chain(f.short.iter().copied())
}

/// A boolean: the listed positive name, or the snapshot's own negative spelling.
fn switch(p: &Piece, name: &str, entry: &HelpEntry, version: Version) -> Option<Vec<String>> {
    let word = p.words.first()?;
    let off = p.flag.is_negative(word, version);
    let spelled = if off {
        entry.negation()?.to_string()
    } else {
        name.to_string()
    };
    Some(vec![spelled])
}

/// `-O<n>`: `--optimization-level n` where the help lists it, `-O<n>` where `-O` is
/// listed (the compilation config's alias before 0.12).
fn level(p: &Piece, help: &HelpSnapshot, version: Version) -> Result<Vec<String>, FlagCheckError> {
    let field = field_of(p.target);
    let n = p
        .words
        .first()
        .and_then(|w| w.strip_prefix("-O"))
        .unwrap_or_default()
        .to_string();
    if let Some(entry) = help.entry("--optimization-level") {
        check_values(
            field,
            "--optimization-level",
            entry,
            std::slice::from_ref(&n),
            version,
        )?;
        return Ok(vec!["--optimization-level".into(), n]);
    }
    if help.has("-O") {
        return Ok(p.words.clone());
    }
    Err(FlagCheckError::NoFlag {
        field,
        version,
        why: "neither `--optimization-level` nor `-O` is in its `vllm serve --help=all`".into(),
    })
}

fn check_values(
    field: &'static str,
    name: &str,
    entry: &HelpEntry,
    values: &[String],
    version: Version,
) -> Result<(), FlagCheckError> {
    let refused = values.iter().find(|v| !entry.accepts(v));
    match (refused, &entry.choices) {
        (Some(v), Some(choices)) => Err(FlagCheckError::BadValue {
            field,
            version,
            flag: name.to_string(),
            value: v.clone(),
            choices: choices.join(", "),
        }),
        _ => Ok(()),
    }
}

/// The recipe field a rendered target comes from (`crate::recipe::vllm` reads these).
pub fn field_of(target: Target) -> &'static str {
    match target {
        Target::Quantization => "quant.method",
        Target::KvCacheDtype => "quant.kv_cache_quant",
        Target::AttentionBackend => "kernels.attention_backend",
        Target::SpeculativeConfig => "speculative_method",
        other => config_field(other),
    }
}

fn config_field(target: Target) -> &'static str {
    match target {
        Target::ServedModelName => "served_model_name",
        Target::Host => "host",
        Target::Port => "port",
        Target::MaxNumSeqs => "max_num_seqs",
        Target::MaxNumBatchedTokens => "max_num_batched_tokens",
        Target::EnablePrefixCaching => "enable_prefix_caching",
        Target::EnableChunkedPrefill => "enable_chunked_prefill",
        Target::GpuMemoryUtilization => "gpu_memory_utilization",
        Target::BlockSize => "block_size",
        Target::Dtype => "dtype",
        Target::MaxModelLen => "max_model_len",
        Target::TensorParallelSize => "tensor_parallel_size",
        Target::PipelineParallelSize => "pipeline_parallel_size",
        Target::DataParallelSize => "data_parallel_size",
        Target::EnforceEager => "enforce_eager",
        Target::OptimizationLevel => "optimization_level",
        Target::CudagraphCaptureSizes => "cudagraph_capture_sizes",
        Target::MaxCudagraphCaptureSize => "max_cudagraph_capture_size",
        Target::PerformanceMode => "performance_mode",
        Target::AsyncScheduling => "async_scheduling",
        Target::LongPrefillTokenThreshold => "long_prefill_token_threshold",
        Target::SchedulingPolicy => "scheduling_policy",
        Target::Seed => "seed",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::vllm::{KvCacheDtype, PerformanceMode};

    const HELP_ALL_0_33: &str = include_str!("../../../tests/fixtures/vllm/help-all-0.33.0.txt");
    const HELP_0_10: &str = include_str!("../../../tests/fixtures/vllm/help-0.10.2.txt");
    const HELP_0_33: &str = include_str!("../../../tests/fixtures/vllm/help-0.33.0.txt");
    const V10: Version = Version::new(0, 10, 2);

    fn args() -> VllmArgs {
        VllmArgs {
            model: "m".into(),
            ..VllmArgs::default()
        }
    }

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn negations_come_from_the_snapshot() {
        let a = VllmArgs {
            enable_prefix_caching: Some(false),
            enable_chunked_prefill: Some(false),
            enforce_eager: Some(false),
            ..args()
        };
        let new = HelpSnapshot::parse(HELP_ALL_0_33);
        let old = HelpSnapshot::parse(HELP_0_10);
        assert_eq!(
            render_checked(&a, Version::V0_33, Some(&new)).unwrap(),
            words("m --no-enforce-eager --disable-prefix-caching --disable-chunked-prefill")
        );
        assert_eq!(
            render_checked(&a, V10, Some(&old)).unwrap(),
            words("m --no-enforce-eager --no-enable-prefix-caching --no-enable-chunked-prefill")
        );
        // A version between the two: the table guesses `--no-enable-x`, the installed
        // engine's help (here 0.33's) decides.
        let between = Version::new(0, 25, 0);
        assert_eq!(
            render_checked(&a, between, Some(&new)).unwrap(),
            words("m --no-enforce-eager --disable-prefix-caching --disable-chunked-prefill")
        );
    }

    #[test]
    fn a_field_without_a_flag_is_refused_by_name() {
        let a = VllmArgs {
            performance_mode: Some(PerformanceMode::Throughput),
            ..args()
        };
        let old = HelpSnapshot::parse(HELP_0_10);
        let e = render_checked(&a, V10, Some(&old)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recipe field `performance_mode` has no flag in vLLM 0.10.2: forge knows \
             `--performance-mode` only in other vLLM versions"
        );
        // The table believes 0.30+ has it; a snapshot without it still refuses.
        let e = render_checked(&a, Version::new(0, 30, 0), Some(&old)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "recipe field `performance_mode` has no flag in vLLM 0.30.0: `--performance-mode` \
             is not in its `vllm serve --help=all`"
        );
    }

    #[test]
    fn values_are_checked_against_listed_choices() {
        let a = VllmArgs {
            kv_cache_dtype: Some(KvCacheDtype::Bfloat16),
            ..args()
        };
        let old = HelpSnapshot::parse(HELP_0_10);
        // The table (0.11+) allows bfloat16; 0.10.2's help does not list it.
        let e = render_checked(&a, Version::new(0, 11, 0), Some(&old)).unwrap_err();
        assert!(
            matches!(
                e,
                FlagCheckError::BadValue {
                    field: "quant.kv_cache_quant",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("fp8_inc"), "{e}");
    }

    #[test]
    fn optimization_level_and_renames() {
        let a = VllmArgs {
            optimization_level: Some(3),
            cudagraph_capture_sizes: Some(vec![1, 2, 4]),
            ..args()
        };
        let new = HelpSnapshot::parse(HELP_ALL_0_33);
        let old = HelpSnapshot::parse(HELP_0_10);
        assert_eq!(
            render_checked(&a, Version::V0_33, Some(&new)).unwrap(),
            words("m --cudagraph-capture-sizes 1 2 4 --optimization-level 3")
        );
        assert_eq!(
            render_checked(&a, V10, Some(&old)).unwrap(),
            words("m --cuda-graph-sizes 1 2 4 -O3")
        );
        // The table says 0.11 renamed it; an engine whose help still lists the old name
        // gets the old name.
        let sizes_only = VllmArgs {
            cudagraph_capture_sizes: Some(vec![8]),
            ..args()
        };
        assert_eq!(
            render_checked(&sizes_only, Version::new(0, 11, 0), Some(&old)).unwrap(),
            words("m --cuda-graph-sizes 8")
        );
    }

    #[test]
    fn a_group_summary_checks_nothing() {
        let summary = HelpSnapshot::parse(HELP_0_33);
        let a = VllmArgs {
            enable_prefix_caching: Some(false),
            attention_backend: Some("FLASHINFER".into()),
            ..args()
        };
        assert_eq!(
            render_checked(&a, Version::V0_33, Some(&summary)).unwrap(),
            render_checked(&a, Version::V0_33, None).unwrap()
        );
    }

    #[test]
    fn an_attention_backend_without_a_flag_goes_by_environment() {
        let a = VllmArgs {
            attention_backend: Some("FLASHINFER".into()),
            enable_prefix_caching: Some(false),
            ..args()
        };
        let old = HelpSnapshot::parse(HELP_0_10);
        let env = vec![(ATTENTION_BACKEND_ENV.to_string(), "FLASHINFER".to_string())];
        for (version, help) in [
            (V10, Some(&old)),
            (V10, None),
            // 0.11 and 0.12 had no flag either; 0.13.0 added it.
            (Version::new(0, 12, 0), None),
        ] {
            let cmd = serve_command(&a, version, help).unwrap();
            assert_eq!(cmd.env, env, "{version}");
            assert!(!cmd.args.iter().any(|w| w.contains("attention")), "{cmd:?}");
            assert!(cmd.args.iter().any(|w| w.ends_with("prefix-caching")));
        }
        let new = HelpSnapshot::parse(HELP_ALL_0_33);
        for (version, help) in [(Version::new(0, 13, 0), None), (Version::V0_33, Some(&new))] {
            let cmd = serve_command(&a, version, help).unwrap();
            assert!(cmd.env.is_empty(), "{version}");
            assert!(
                cmd.args
                    .join(" ")
                    .contains("--attention-backend FLASHINFER")
            );
        }
        // The table says 0.33 has the flag; an engine whose help lacks it gets the variable.
        let cmd = serve_command(&a, Version::V0_33, Some(&old)).unwrap();
        assert_eq!(cmd.env, env);
        // No backend, no variable; `auto` is vLLM's own choice.
        assert!(serve_command(&args(), V10, None).unwrap().env.is_empty());
        let auto = VllmArgs {
            attention_backend: Some("auto".into()),
            ..args()
        };
        assert!(serve_command(&auto, V10, None).unwrap().env.is_empty());
    }

    #[test]
    fn an_environment_value_passes_the_knob_table() {
        for bad in ["FLASHINFER; rm -rf /", "flashinfer", "", "XFORMERS"] {
            let a = VllmArgs {
                attention_backend: Some(bad.into()),
                ..args()
            };
            let e = serve_command(&a, V10, None).unwrap_err();
            assert!(
                matches!(
                    e,
                    FlagCheckError::NotAllowed {
                        field: "kernels.attention_backend",
                        ..
                    }
                ),
                "{bad}: {e}"
            );
        }
        // Fields without an environment spelling are still refused by name.
        let a = VllmArgs {
            performance_mode: Some(PerformanceMode::Throughput),
            attention_backend: Some("FLASHINFER".into()),
            ..args()
        };
        let e = serve_command(&a, V10, None).unwrap_err();
        assert!(
            e.to_string().contains("`performance_mode` has no flag"),
            "{e}"
        );
    }

    #[test]
    fn table_refusals_name_the_field() {
        let a = VllmArgs {
            max_num_seqs: Some(0),
            ..args()
        };
        let e = render_checked(&a, Version::V0_33, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("recipe field `max_num_seqs`: --max-num-seqs 0"),
            "{e}"
        );
    }
}
