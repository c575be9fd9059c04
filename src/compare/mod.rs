//! `forge compare` and `forge gap`: the fair cross-framework gate of the campaign contract
//! (`../shared/notes/sota-loop.md`, phase 1). For one model on one box, each framework gets
//! its own bounded search ([`search`]: a `forge tune` run over its knobs); the gate
//! ([`gate`]) then finds, for each candidate in each scenario ([`scenario`]), the highest
//! request rate ([`rate`]) at which it meets the SLA ([`sla`]), holds every candidate to the
//! same weights and GPUs ([`fairness`]), and records it ([`candidate`]) in the artifacts
//! users compare ([`summary`], [`artifacts`], [`commands`]). [`gap`] decides where the
//! target framework stands against the best rival from paired measurements ([`duel`]);
//! [`rank`] says how sure each scenario's order is; [`standing`] is `forge gap`. Everything
//! lives in one campaign directory whose settings ([`settings`]) make a killed campaign
//! resume where it stopped.

pub mod artifacts;
pub mod candidate;
pub mod commands;
pub mod duel;
pub mod fairness;
pub mod gap;
pub mod gate;
pub mod html;
pub mod rank;
pub mod rate;
pub mod scenario;
pub mod search;
pub mod settings;
pub mod sla;
pub mod standing;
pub mod summary;

use std::path::Path;
use std::process::ExitCode;

use settings::{CompareSettings, SETTINGS_FILE};

/// Start or continue the campaign in `dir` with `s` (the settings must match the ones it
/// started with).
pub async fn run(
    s: CompareSettings,
    dir: &Path,
    starter: &dyn search::Starter,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir.join("benchmark"))
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let _lock = crate::store::RunLock::acquire(dir)?;
    let path = dir.join(SETTINGS_FILE);
    if path.exists() {
        let before = settings::load(dir)?;
        anyhow::ensure!(
            before == s,
            "{}: this campaign was started with other settings; continue it with `forge compare resume {}`, or choose another --campaign-dir",
            path.display(),
            dir.display()
        );
    } else {
        crate::store::write_atomic(&path, serde_json::to_string_pretty(&s)?.as_bytes())?;
    }
    reap(dir, &s);
    let mut searches = Vec::new();
    let mut found = Vec::new();
    let mut reference: Option<fairness::Reference> = None;
    for &fw in &s.frameworks {
        let searched = match search::run(&s, dir, fw, starter).await? {
            Ok(x) => x,
            Err(search::Stop::Interrupted(code)) => return Ok(interrupted(dir, code)),
        };
        artifacts::help(dir, fw, &searched)?;
        searches.push((fw, searched.command.clone()));
        artifacts::manifest(dir, &s, &searches)?;
        let (_, done) = gate::done(dir)?;
        let reference = reference.get_or_insert_with(|| {
            let first = searched.picks.first().map_or_else(
                || crate::recipe::Recipe::baseline(fw, &s.model, Default::default()),
                |p| p.recipe.clone(),
            );
            fairness::Reference::of(&s.model, &first)
        });
        if let Err(code) = gate::framework(&s, dir, fw, &searched, &done, reference).await? {
            return Ok(interrupted(dir, code));
        }
        let (rows, _) = gate::done(dir)?;
        artifacts::results(dir, &s, &rows, &[])?;
        found.push((fw, searched));
    }
    let (rows, _) = gate::done(dir)?;
    let notes = tokio::select! {
        r = rank::notes(&s, dir, &rows, &found) => r?,
        code = crate::tune::launch::interrupted() => {
            reap(dir, &s);
            return Ok(interrupted(dir, ExitCode::from(code)));
        }
    };
    for n in &notes {
        eprintln!("forge compare: {}: {}", n.scenario, n.text);
    }
    artifacts::results(dir, &s, &rows, &notes)?;
    eprintln!(
        "forge compare: done. Summary: {}",
        dir.join(artifacts::SUMMARY_FILE).display()
    );
    crate::term::println(&summary::render(&rows, &notes))?;
    Ok(ExitCode::SUCCESS)
}

/// Continue the campaign in `dir` with the settings it started with.
pub async fn resume(dir: &Path, starter: &dyn search::Starter) -> anyhow::Result<ExitCode> {
    run(settings::load(dir)?, dir, starter).await
}

/// Stop engine servers a killed campaign left behind (their process groups are recorded
/// under each framework's gate directory).
fn reap(dir: &Path, s: &CompareSettings) {
    for &fw in &s.frameworks {
        let pids = gate::gate_dir(dir, fw).join(crate::store::PIDS_FILE);
        let reaped = crate::engine::process::reap_recorded(&pids);
        if !reaped.is_empty() {
            eprintln!(
                "forge compare: stopped {} {} server(s) left by an interrupted campaign",
                reaped.len(),
                fw.display_name()
            );
        }
    }
}

fn interrupted(dir: &Path, code: ExitCode) -> ExitCode {
    eprintln!(
        "forge compare: interrupted; every engine process was stopped. Resume with: forge compare resume {}",
        dir.display()
    );
    code
}
