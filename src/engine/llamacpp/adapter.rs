//! llama.cpp's `llama-server` behind the `Engine` trait. Built once per run: the binary's
//! `--help` and `--version` are captured into the run directory, the workload's longest
//! request fixes the smallest legal per-slot context, and every launch renders the recipe
//! against that help. Readiness is the shared one (`/health` answers 503 while the model
//! loads, then 200; `/v1/models` lists the served name, passed as `--alias`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::help::{self, HelpFlags, Probe};
use super::legal::{self, RunLimits};
use super::quant::{self, QuantFiles};
use super::source::{self, Builds};
use super::{flags, logs};
use crate::engine::adapter::{BenchQuirks, Engine};
use crate::engine::failure::Failure;
use crate::engine::process::LaunchSpec;
use crate::hardware::GpuSpec;
use crate::recipe::{EngineKind, Illegal, Recipe};

/// Environment variables llama-server reads as flags (`LLAMA_ARG_THREADS`, ...) or as its
/// API key; set in forge's environment, they would change the baseline or refuse the
/// benchmark's requests.
const ENV_PREFIXES: &[&str] = &["LLAMA_ARG_", "LLAMA_API_KEY"];

/// llama-server.
#[derive(Debug, Clone)]
pub struct LlamacppEngine {
    /// Launcher argv prefix (`["llama-server"]`, `["/path/to/llama-server"]`).
    pub launcher: Vec<String>,
    /// What the binary said about itself (`None` when it could not be run: every boot then
    /// fails as the spawn does, `engine_missing`).
    pub probe: Option<Probe>,
    /// What this run's recipes must fit (the workload's longest request, the binary's
    /// flags).
    pub limits: RunLimits,
    /// The builds of the source checkout this run serves (`forge tune --source`), which
    /// make `kernels.patch` legal; `None`: the launcher serves every recipe.
    pub builds: Option<Builds>,
    /// The requantized models this run makes (layer 2), which make `quant.method` legal.
    pub quant: Option<QuantFiles>,
}

impl LlamacppEngine {
    /// Probe `launcher` (saving its help and version into `run_dir`) and return the engine
    /// with warnings for the user: a binary that cannot be probed, always-on flags it
    /// lacks, `LLAMA_ARG_*` variables that would change its defaults.
    pub fn probe(launcher: Vec<String>, run_dir: &Path) -> (LlamacppEngine, Vec<String>) {
        let mut warnings = Vec::new();
        let probe = match help::probe(&launcher, run_dir) {
            Ok(p) => Some(p),
            Err(e) => {
                warnings.push(format!("{e}; flags are not checked against the binary"));
                None
            }
        };
        if let Some(p) = &probe {
            for f in flags::missing_optional(&p.flags) {
                warnings.push(format!(
                    "this llama-server has no `{f}`; it is left out of every launch"
                ));
            }
        }
        warnings.extend(env_warnings(std::env::vars().map(|(k, _)| k)));
        let limits = RunLimits {
            need_tokens: None,
            flags: probe.as_ref().map(|p| p.flags.clone()),
        };
        (
            LlamacppEngine {
                launcher,
                probe,
                limits,
                builds: None,
                quant: None,
            },
            warnings,
        )
    }

    /// The engine for a run of `forge tune` serving the GGUF file `model` to `workload`:
    /// probe the binary (warnings go to stderr), and fix the run's legality limits (the
    /// workload's longest request, the binary's flags).
    pub fn for_run(
        launcher: Vec<String>,
        model: &str,
        workload: &Path,
        run_dir: &Path,
    ) -> anyhow::Result<LlamacppEngine> {
        super::check_model(model)?;
        let stats = crate::workload::stats::compute(&crate::workload::load(workload)?);
        let need = (stats.prompt_tokens.max + stats.output_tokens.max).ceil() as u64;
        let (mut engine, mut warnings) = LlamacppEngine::probe(launcher, run_dir);
        if let Some(train) = super::model_context_length(model)
            && need > train
        {
            warnings.push(format!(
                "the workload's longest request may need {need} tokens, more than {model}'s context ({train}); such requests will fail"
            ));
        }
        for w in warnings {
            eprintln!("forge: warning: {w}");
        }
        engine.limits.need_tokens = Some(need);
        Ok(engine)
    }

    /// Serve the builds of a source checkout: `kernels.patch` picks the build.
    pub fn with_builds(mut self, builds: Builds) -> LlamacppEngine {
        self.builds = Some(builds);
        self
    }

    /// Serve the requantized models of `files`: `quant.method` picks the file.
    pub fn with_quant(mut self, files: QuantFiles) -> LlamacppEngine {
        self.quant = Some(files);
        self
    }

    /// What llama-server is given for `recipe`: its model, or the requantized file of its
    /// `quant.method`.
    fn served_recipe(&self, recipe: &Recipe) -> Result<Recipe, Illegal> {
        let Some(ty) = quant::method_of(recipe) else {
            return Ok(recipe.clone());
        };
        let why = match &self.quant {
            None => "this run makes no requantized model (layer 2 on llama.cpp needs llama-quantize and llama-imatrix beside llama-server or on PATH)".to_string(),
            Some(q) => match q.check(ty) {
                Ok(()) => return Ok(quant::served_as(recipe, &q.path_of(ty))),
                Err(why) => why,
            },
        };
        Err(Illegal::knob("method", &Value::from(ty), why))
    }

    /// The launcher of `recipe`: the build of its patch, or the run's launcher.
    fn launcher_of(&self, recipe: &Recipe) -> Result<Vec<String>, Illegal> {
        let Some(patch) = source::patch_of(recipe) else {
            return Ok(self.launcher.clone());
        };
        let why = match &self.builds {
            None => "this run serves no source checkout (start it with --source and --patches)"
                .to_string(),
            Some(b) => match b.check(patch) {
                Ok(()) => return Ok(source::launcher(&b.dir_of(Some(patch)))),
                Err(why) => why,
            },
        };
        Err(Illegal::knob("patch", &Value::from(patch), why))
    }

    /// The binary's options, when known.
    pub fn flags(&self) -> Option<&HelpFlags> {
        self.probe.as_ref().map(|p| &p.flags)
    }
}

/// One warning per variable llama-server would read (names only: values may be secrets).
fn env_warnings(names: impl Iterator<Item = String>) -> Vec<String> {
    let mut set: Vec<String> = names
        .filter(|k| ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
        .collect();
    set.sort();
    set.into_iter()
        .map(|k| {
            format!("{k} is set: llama-server reads it, so the baseline is not the binary's own defaults")
        })
        .collect()
}

impl Engine for LlamacppEngine {
    fn describe(&self) -> String {
        let version = self
            .probe
            .as_ref()
            .and_then(|p| p.version.clone())
            .unwrap_or_else(|| "version unknown".into());
        format!(
            "llama.cpp llama-server {version} ({})",
            self.launcher.join(" ")
        )
    }

    fn recipe_engine(&self) -> EngineKind {
        EngineKind::Llamacpp
    }

    fn check(&self, recipe: &Recipe) -> Result<(), Illegal> {
        legal::check(
            recipe,
            &self.limits,
            super::model_context_length(&recipe.model),
        )?;
        self.launch_spec(recipe, 8000, "forge-check", Path::new("check.log"), 0)
            .map(|_| ())
    }

    fn effective(&self, recipe: &Recipe, _gpu: Option<&GpuSpec>) -> BTreeMap<String, Value> {
        super::defaults(recipe)
    }

    fn launch_spec(
        &self,
        recipe: &Recipe,
        port: u16,
        served_name: &str,
        log: &Path,
        _boot_seq: u64,
    ) -> Result<LaunchSpec, Illegal> {
        let served = self.served_recipe(recipe)?;
        let rendered = flags::render(&served, port, served_name, self.flags())
            .map_err(|e| Illegal::recipe(e.to_string()))?;
        LaunchSpec::from_launcher(&self.launcher_of(recipe)?, rendered, log)
    }

    fn classify_boot_failure(&self, code: Option<i32>, signal: Option<i32>, log: &str) -> Failure {
        logs::classify_exit(code, signal, log)
    }

    fn log_hints(&self, log: &str) -> Vec<String> {
        logs::hints(log)
    }

    fn host_facts(&self) -> BTreeMap<String, f64> {
        let cores = super::host::physical_cores();
        BTreeMap::from([("cpu_cores".to_string(), cores as f64)])
    }

    fn grace(&self) -> Duration {
        // llama-server finishes the running step and exits within a second of SIGTERM.
        Duration::from_secs(10)
    }

    fn reset_path(&self) -> Option<&'static str> {
        // Nothing to reset: every launch has `--cache-ram 0 --no-cache-prompt`.
        None
    }

    fn bench_quirks(&self) -> BenchQuirks {
        BenchQuirks {
            closes_connections: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::Hardware;
    use crate::recipe::Layer;
    use serde_json::json;
    use std::path::PathBuf;

    fn fake_server(dir: &Path) -> String {
        let script = dir.join("llama-server");
        let help = format!(
            "{}/tests/fixtures/llamacpp/help.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'version: 0.5.0-dev (build 1, commit 0c1e570)' >&2; else cat '{help}'; fi\n"
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        script.display().to_string()
    }

    #[test]
    fn launch_spec_is_argv_with_the_served_name_as_alias() {
        let dir = tempfile::tempdir().unwrap();
        let exe = fake_server(dir.path());
        let (e, warnings) = LlamacppEngine::probe(vec![exe.clone()], dir.path());
        assert!(
            warnings.iter().all(|w| w.contains("is set")),
            "{warnings:?}"
        );
        assert_eq!(
            e.describe(),
            format!("llama.cpp llama-server 0.5.0-dev (build 1, commit 0c1e570) ({exe})")
        );
        assert!(dir.path().join(help::HELP_FILE).is_file());
        let mut ch = std::collections::BTreeMap::new();
        ch.insert("parallel".to_string(), json!(8));
        let r = Recipe::baseline(EngineKind::Llamacpp, "/m/x.gguf", Hardware::default())
            .mutate(Layer::Config, &ch);
        let spec = e
            .launch_spec(&r, 4321, "forge-e0002-abc", &dir.path().join("l.log"), 2)
            .unwrap();
        assert_eq!(spec.program, PathBuf::from(&exe));
        assert_eq!(
            spec.args.join(" "),
            "--model /m/x.gguf --alias forge-e0002-abc --host 127.0.0.1 --port 4321 --metrics --no-webui --cache-ram 0 --no-cache-prompt --parallel 8"
        );
        assert!(spec.env.is_empty());
        assert!(e.bench_quirks().closes_connections);
        assert_eq!(e.reset_path(), None);
    }

    #[test]
    fn an_unrunnable_binary_still_renders_and_warns() {
        let dir = tempfile::tempdir().unwrap();
        let (e, warnings) =
            LlamacppEngine::probe(vec!["/nonexistent/llama-server".into()], dir.path());
        assert!(e.probe.is_none());
        assert!(
            warnings[0].contains("cannot run `/nonexistent/llama-server`"),
            "{warnings:?}"
        );
        assert!(e.describe().contains("version unknown"));
        let r = Recipe::baseline(EngineKind::Llamacpp, "/m/x.gguf", Hardware::default());
        assert!(e.launch_spec(&r, 1, "s", &dir.path().join("l"), 1).is_ok());
    }

    #[test]
    fn environment_that_changes_defaults_is_named_not_shown() {
        let w = env_warnings(
            ["PATH", "LLAMA_ARG_THREADS", "LLAMA_API_KEY", "HOME"]
                .iter()
                .map(|s| s.to_string()),
        );
        assert_eq!(w.len(), 2);
        assert!(w[0].starts_with("LLAMA_API_KEY is set"));
        assert!(w[1].starts_with("LLAMA_ARG_THREADS is set"));
    }
}
