//! `forge compare` / `forge compare resume`: the command line resolved into
//! [`CompareSettings`] (every input checked before a campaign directory exists), then
//! handed to [`crate::compare::run`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::runtime;
use crate::cli::{Cli, Command, CompareAction, CompareArgs, CompareCli, GapArgs};
use crate::compare::search::Starter;
use crate::compare::settings::{CompareSettings, RateBounds, SETTINGS_VERSION};
use crate::compare::sla::Sla;
use crate::compare::{self, scenario};
use crate::hardware::gpus;
use crate::recipe::EngineKind;
use futures::future::BoxFuture;

/// Run `forge compare`.
pub fn main(cli: CompareCli) -> anyhow::Result<ExitCode> {
    runtime(None)?.block_on(async move {
        match cli.action {
            Some(CompareAction::Resume { dir }) => compare::resume(&dir, &TuneStarter).await,
            None => {
                let dir = campaign_dir(&cli.args);
                let s = resolve(&cli.args, &dir)?;
                eprintln!("forge compare: campaign {}", dir.display());
                compare::run(s, &dir, &TuneStarter).await
            }
        }
    })
}

/// Each framework's search, started as `forge tune` with the command line the campaign
/// wrote (parsed here, at the edge, like any other).
pub struct TuneStarter;

impl Starter for TuneStarter {
    fn start(&self, argv: Vec<String>) -> BoxFuture<'_, anyhow::Result<ExitCode>> {
        Box::pin(async move {
            let cli = <Cli as clap::Parser>::try_parse_from(&argv)
                .map_err(|e| anyhow::anyhow!("the search's command line: {e}"))?;
            let Command::Tune(t) = cli.command else {
                anyhow::bail!("the search's command line is not `forge tune`");
            };
            super::tune::start(t.args).await
        })
    }
}

/// Run `forge gap`.
pub fn gap_main(a: GapArgs) -> anyhow::Result<ExitCode> {
    let target = EngineKind::parse(&a.target).ok_or_else(|| {
        anyhow::anyhow!(
            "--target: unknown framework `{}` (vllm, sglang, trtllm, llamacpp)",
            a.target
        )
    })?;
    runtime(None)?.block_on(compare::standing::run(&a.campaign, target, a.max_pairs))
}

fn campaign_dir(a: &CompareArgs) -> PathBuf {
    a.campaign_dir.clone().unwrap_or_else(|| {
        PathBuf::from(".forge/campaigns").join(
            chrono::Utc::now()
                .format("compare_%Y-%m-%dT%H-%M-%S")
                .to_string(),
        )
    })
}

/// Resolve and check the command line; the scenarios are written into `dir`.
pub fn resolve(a: &CompareArgs, dir: &Path) -> anyhow::Result<CompareSettings> {
    let model = a
        .model
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--model is required (or `forge compare resume DIR`)"))?;
    let frameworks = frameworks(&a.frameworks)?;
    let sla = Sla::parse(&a.sla)?;
    let rates = rate_bounds(&a.rate_bounds)?;
    let max_concurrency = caps(&a.max_concurrency)?;
    let engine_cmds = engine_cmds(&a.engine_cmds, &frameworks)?;
    let dry_run = a.dry_run || a.sim_gpu.is_some();
    if let Some(g) = &a.sim_gpu {
        anyhow::ensure!(
            gpus::lookup(g).is_some(),
            "--sim-gpu: unknown GPU `{g}` (known: {})",
            gpus::names().join(", ")
        );
    }
    anyhow::ensure!(
        !(dry_run && frameworks.contains(&EngineKind::Llamacpp)),
        "--frameworks: llamacpp has no simulated twin; compare it for real (without --dry-run)"
    );
    let names: Vec<String> = a
        .scenarios
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let scenarios = scenario::materialize(dir, &names, a.workload.as_deref(), a.seed)?;
    anyhow::ensure!(!scenarios.is_empty(), "--scenarios: give at least one");
    Ok(CompareSettings {
        version: SETTINGS_VERSION,
        model,
        frameworks,
        scenarios,
        sla,
        budget: a.budget,
        candidates_per_framework: a.candidates,
        dry_run,
        sim_gpu: a.sim_gpu.clone(),
        sim_noise: a.sim_noise,
        device: a.device,
        engine_cmds,
        rates,
        max_concurrency,
        seed: a.seed,
        boot_timeout_s: a.boot_timeout,
        accuracy_floor: a.accuracy_floor,
        max_repeats: a.max_repeats,
    })
}

fn frameworks(text: &str) -> anyhow::Result<Vec<EngineKind>> {
    let mut out = Vec::new();
    for w in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let fw = EngineKind::parse(w).ok_or_else(|| {
            anyhow::anyhow!(
                "--frameworks: unknown framework `{w}` (vllm, sglang, trtllm, llamacpp)"
            )
        })?;
        anyhow::ensure!(!out.contains(&fw), "--frameworks: `{w}` is given twice");
        out.push(fw);
    }
    anyhow::ensure!(!out.is_empty(), "--frameworks: give at least one");
    Ok(out)
}

fn rate_bounds(text: &str) -> anyhow::Result<RateBounds> {
    let bad = || anyhow::anyhow!("--rate-bounds: `{text}` is not LO,HI with 0 < LO < HI");
    let (lo, hi) = text.split_once(',').ok_or_else(bad)?;
    let (lo, hi): (f64, f64) = (
        lo.trim().parse().map_err(|_| bad())?,
        hi.trim().parse().map_err(|_| bad())?,
    );
    anyhow::ensure!(lo > 0.0 && hi > lo && hi.is_finite(), bad());
    Ok(RateBounds {
        lo,
        hi,
        ..RateBounds::default()
    })
}

fn caps(text: &str) -> anyhow::Result<Vec<Option<usize>>> {
    let mut out = Vec::new();
    for w in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let cap = if w.eq_ignore_ascii_case("none") {
            None
        } else {
            match w.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => anyhow::bail!("--max-concurrency: `{w}` is not a positive count or `none`"),
            }
        };
        if !out.contains(&cap) {
            out.push(cap);
        }
    }
    anyhow::ensure!(
        !out.is_empty(),
        "--max-concurrency: give at least one cap (or `none`)"
    );
    Ok(out)
}

fn engine_cmds(
    items: &[String],
    frameworks: &[EngineKind],
) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let (fw, cmd) = item
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--engine-cmd: `{item}` is not FRAMEWORK=COMMAND"))?;
        let kind = EngineKind::parse(fw.trim())
            .ok_or_else(|| anyhow::anyhow!("--engine-cmd: unknown framework `{fw}`"))?;
        anyhow::ensure!(
            frameworks.contains(&kind),
            "--engine-cmd: {fw} is not among --frameworks"
        );
        anyhow::ensure!(
            !cmd.trim().is_empty(),
            "--engine-cmd: {fw}'s command is empty"
        );
        out.insert(kind.as_str().to_string(), cmd.trim().to_string());
    }
    Ok(out)
}
