//! `forge profile --campaign DIR --framework F`: the framework's best deployment of a
//! `forge compare` campaign, booted with its torch profiler on (the engine's own way for
//! its version: [`crate::engine::adapter::Engine::profiler`]), profiled at the slow
//! scenario's lengths into `DIR/profiles/F/`, then stopped.
//!
//! The slow scenario is the one with the longest requests (`--scenario` picks another);
//! the deployment is the framework's best gated candidate in it (its search's baseline
//! when the gate has none yet).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::Plan;
use super::capture::Target;
use crate::compare::candidate::best_per_framework;
use crate::compare::settings::CompareSettings;
use crate::compare::{gate, scenario, search};
use crate::engine::adapter::Engine;
use crate::engine::health::{Readiness, engine_port, wait_ready};
use crate::engine::process;
use crate::recipe::{EngineKind, Recipe};

/// What the campaign says to profile.
pub struct Chosen {
    /// The scenario.
    pub scenario: String,
    /// Its median input and output lengths.
    pub lengths: (u32, u32),
    /// The candidate (`FRAMEWORK-eNNN`).
    pub candidate: String,
    /// Its recipe.
    pub recipe: Recipe,
    /// The engine that serves it, as the search booted it.
    pub engine: Arc<dyn Engine>,
    /// Boot timeout.
    pub boot_timeout: Duration,
}

/// The scenario, candidate and engine to profile `fw` with.
pub fn choose(
    s: &CompareSettings,
    dir: &Path,
    fw: EngineKind,
    scenario_name: Option<&str>,
    out: &Path,
) -> anyhow::Result<Chosen> {
    anyhow::ensure!(
        s.frameworks.contains(&fw),
        "--framework: {} was not compared in {}",
        fw.as_str(),
        dir.display()
    );
    let mut lengths = Vec::new();
    for sc in &s.scenarios {
        let w = sc.load(dir)?;
        let l = scenario::lengths(&w);
        let input = sc.input_len.unwrap_or(l.input_p50.round() as u32);
        let output = sc.output_len.unwrap_or(l.output_p50.round() as u32);
        lengths.push((sc.name.clone(), (input, output)));
    }
    let (name, lens) = match scenario_name {
        Some(n) => lengths
            .iter()
            .find(|(x, _)| x == n)
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("--scenario: no scenario `{n}` in {}", dir.display()))?,
        None => lengths
            .iter()
            .max_by_key(|(_, (i, o))| u64::from(*i) + u64::from(*o))
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("{}: the campaign has no scenario", dir.display()))?,
    };
    let searched = search::load(s, dir, fw)?;
    let (rows, _) = gate::done(dir)?;
    let best = best_per_framework(&rows, &name, false)
        .into_iter()
        .find(|c| c.framework == fw.as_str())
        .map(|c| c.candidate_id.clone());
    let pick = best
        .as_ref()
        .and_then(|id| searched.picks.iter().find(|p| &p.id == id))
        .or_else(|| searched.picks.first())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the {} search kept no recipe",
                dir.display(),
                fw.as_str()
            )
        })?;
    let engine = crate::tune::launch::engine_of(&searched.settings, out)?;
    Ok(Chosen {
        scenario: name,
        lengths: lens,
        candidate: pick.id.clone(),
        recipe: pick.recipe.clone(),
        engine,
        boot_timeout: Duration::from_secs_f64(s.boot_timeout_s),
    })
}

/// Boot `c` with its profiler writing under `out/raw`, capture both stages, stop it.
pub async fn run(c: &Chosen, out: &Path, plan: &Plan) -> anyhow::Result<super::Manifest> {
    let raw = std::path::absolute(out.join("raw"))?;
    let setup = c
        .engine
        .profiler(&raw)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::create_dir_all(&raw).with_context(|| raw.display().to_string())?;
    let port = engine_port()?;
    let served = c.engine.served_name(&c.recipe, "forge-profile");
    let log = out.join("server.log");
    let mut spec = c
        .engine
        .launch_spec(&c.recipe, port, &served, &log, 1)
        .map_err(|e| anyhow::anyhow!("{}: {e}", c.candidate))?;
    spec.args.extend(setup.args.iter().cloned());
    spec.env.extend(setup.env.iter().cloned());
    let mut proc = process::spawn(&spec).with_context(|| spec.program.display().to_string())?;
    let _ = process::record_launch(
        &out.join(crate::store::PIDS_FILE),
        &proc.record(&spec.program.display().to_string()),
    );
    let base_url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let ready = wait_ready(&mut proc, &client, &base_url, &served, c.boot_timeout).await;
    if !matches!(ready, Readiness::Ready { .. }) {
        proc.stop(c.engine.grace()).await;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let f = match ready {
            Readiness::Exited { code, signal } => {
                c.engine.classify_boot_failure(code, signal, &text)
            }
            _ => c.engine.classify_boot_failure(None, None, &text),
        };
        anyhow::bail!(
            "{} did not become ready ({}): {}{}",
            c.candidate,
            f.class.as_str(),
            f.summary,
            f.hints
                .first()
                .map(|h| format!(" — {h}"))
                .unwrap_or_default()
        );
    }
    let target = Target {
        base_url,
        model: served,
        start_body: setup.start_body.clone(),
        trace_dir: raw,
    };
    let pgid = proc.pgid;
    let work = super::run(&target, out, plan);
    let result = tokio::select! {
        r = work => r,
        code = crate::tune::launch::interrupted() => {
            process::kill_group(pgid);
            anyhow::bail!("interrupted (signal exit {code}); the server was stopped")
        }
    };
    proc.stop(c.engine.grace()).await;
    result
}

/// Where a framework's profiles go in a campaign.
pub fn profiles_dir(dir: &Path, fw: EngineKind) -> PathBuf {
    dir.join("profiles").join(fw.as_str())
}
