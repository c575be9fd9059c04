//! One attempt, start to end: apply the diff safely ([`crate::patch::try_apply`]), rebuild,
//! check the answers against the engine's own variation ([`super::correct`]), measure the
//! patched build against its base in interleaved pairs ([`super::verdict`]), then commit it
//! with its evidence (kept) or reset the checkout to its base (anything else). The ledger
//! gets `attempt_started` before the checkout is touched and the outcome at the end, so a
//! killed campaign redoes the attempt once and never records it twice.
//!
//! What differs per engine — how it builds, serves, answers and is measured — is the
//! [`Executor`] seam (llama.cpp for real on a CPU, vLLM on a GPU host, fakes in tests).

use std::future::Future;
use std::path::{Path, PathBuf};

use super::ledger::{Attempt, Event, Gain, Ledger, Outcome, Source};
use super::verdict::{self, Next};
use crate::patch::{self, Limits, Rejected, git};
use crate::tune::verdict::NoisePool;

/// Which build of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The commit the attempt was applied on.
    Base,
    /// The checkout with the patch applied.
    Patched,
}

/// A build that failed, with the compiler's first error lines.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildFailed {
    /// The first error lines.
    pub first_errors: Vec<String>,
}

impl From<&crate::build::BuildFailure> for BuildFailed {
    fn from(e: &crate::build::BuildFailure) -> BuildFailed {
        let mut first_errors = e.first_errors().to_vec();
        if first_errors.is_empty() {
            first_errors.push(e.to_string());
        }
        BuildFailed { first_errors }
    }
}

/// Run `builder` on `checkout` (off the async workers; the log's directory made first):
/// what it built, the patch's failure (`Ok(Err)`: a `build_failed` attempt) or the
/// machine's (`Err`: the campaign stops).
pub fn rebuild(
    builder: &impl crate::build::Builder,
    checkout: &Path,
    log: &Path,
    timeout: std::time::Duration,
) -> anyhow::Result<Result<crate::build::Built, BuildFailed>> {
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match tokio::task::block_in_place(|| builder.build(checkout, log, timeout)) {
        Ok(b) => Ok(Ok(b)),
        Err(e) if e.is_patch_fault() => Ok(Err(BuildFailed::from(&e))),
        Err(e) => Err(e.into()),
    }
}

/// How one engine is rebuilt, asked and measured.
pub trait Executor: Send {
    /// Build the checkout as it is now as `which` (a base build is kept for later
    /// measurements; its log under `log`). The inner error is the patch's fault (a
    /// `build_failed` attempt); the outer one the machine's (the campaign stops).
    fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> impl Future<Output = anyhow::Result<Result<(), BuildFailed>>> + Send;

    /// `which`'s answers at temperature 0 to the reference prompts, in order (an empty
    /// string for a request that failed).
    fn answers(&mut self, which: Build)
    -> impl Future<Output = anyhow::Result<Vec<String>>> + Send;

    /// One measurement of `which` (higher is better: output tokens/s under the workload).
    fn measure(&mut self, which: Build) -> impl Future<Output = anyhow::Result<f64>> + Send;

    /// One measurement of the competitor's deployment, the same way (the gap decision).
    fn measure_leader(&mut self) -> impl Future<Output = anyhow::Result<f64>> + Send;

    /// Profiles of the target's base build and of the leader for `round`, filed under
    /// `dir/profiles/`, or why there are none.
    fn profile(
        &mut self,
        dir: &Path,
        round: u32,
    ) -> impl Future<Output = anyhow::Result<Profiles>> + Send;

    /// The command that serves `which` (`None`: the leader), runnable as printed.
    fn command(&self, which: Option<Build>) -> Vec<String>;
}

/// A round's profiles.
#[derive(Debug, Clone)]
pub enum Profiles {
    /// Both sides were profiled.
    Captured {
        /// The target's (`profiles/F`).
        target: super::analysis::Side,
        /// The leader's.
        leader: super::analysis::Side,
    },
    /// Neither could be (why, for the reports).
    Unavailable(String),
}

/// What one attempt needs.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The campaign directory.
    pub dir: &'a Path,
    /// The engine's checkout (on the campaign branch, clean).
    pub checkout: &'a Path,
    /// `rN-aM`.
    pub id: String,
    /// The round.
    pub round: u32,
    /// Where the diff came from.
    pub source: Source,
    /// The diff.
    pub diff: &'a str,
    /// The source idea it tests.
    pub idea: Option<String>,
    /// Safety limits.
    pub limits: Limits,
}

/// Run one attempt and record it; its ledger row.
pub async fn run(
    plan: &Plan<'_>,
    exec: &mut impl Executor,
    ledger: &mut Ledger,
    pool: &mut NoisePool,
) -> anyhow::Result<Attempt> {
    let base = git::head(plan.checkout)?;
    let patch = write_patch(plan)?;
    ledger.record(
        plan.dir,
        Event::AttemptStarted {
            id: plan.id.clone(),
            base: base.clone(),
            source: plan.source.clone(),
        },
    )?;
    let log = PathBuf::from("patches").join(format!("{}.log", plan.id));
    let mut row = Attempt {
        id: plan.id.clone(),
        round: plan.round,
        source: plan.source.clone(),
        patch,
        idea: plan.idea.clone(),
        base: base.clone(),
        files: Vec::new(),
        outcome: Outcome::Inconclusive,
        reason: String::new(),
        gain: None,
        commit: None,
        log: Some(log.clone()),
        pairs: Vec::new(),
        secs: 0.0,
    };
    let started = std::time::Instant::now();
    let (outcome, reason, gain) = trial(plan, exec, &mut row, &plan.dir.join(&log), pool).await?;
    row.outcome = outcome;
    row.reason = reason;
    row.gain = gain;
    if row.outcome == Outcome::Kept {
        let msg = format!(
            "forge campaign {}: {}\n\n{}\nFiles: {}\n",
            row.id,
            plan.idea.as_deref().unwrap_or("patch"),
            row.reason,
            row.files.join(", ")
        );
        row.commit = Some(git::commit(plan.checkout, &msg)?);
        // The kept build is the base of what comes next (the checkout did not change
        // since it was built: an incremental build with nothing to do).
        if let Err(b) = exec
            .build(plan.checkout, Build::Base, &plan.dir.join(&log))
            .await?
        {
            anyhow::bail!(
                "the kept commit does not build as the new base: {}",
                b.first_errors.join(" ⏎ ")
            );
        }
    } else if git::head(plan.checkout)? != base || !git::status_clean(plan.checkout)? {
        git::revert_to(plan.checkout, &base)?;
    }
    row.secs = started.elapsed().as_secs_f64();
    ledger.record(plan.dir, Event::Attempt(row.clone()))?;
    Ok(row)
}

/// The attempt's outcome, the checkout left patched only when kept.
async fn trial(
    plan: &Plan<'_>,
    exec: &mut impl Executor,
    row: &mut Attempt,
    log: &Path,
    pool: &mut NoisePool,
) -> anyhow::Result<(Outcome, String, Option<Gain>)> {
    let applied = match patch::try_apply(plan.checkout, plan.diff, &plan.limits) {
        Ok(a) => a,
        Err(Rejected::Checkout(e)) => return Err(e.into()),
        Err(r) => {
            let outcome = match r.code() {
                "apply_failed" => Outcome::ApplyFailed,
                code => Outcome::Rejected(code.to_string()),
            };
            return Ok((outcome, r.to_string(), None));
        }
    };
    row.files = applied.files.clone();
    eprintln!("forge: {}: building", plan.id);
    if let Err(b) = exec.build(plan.checkout, Build::Patched, log).await? {
        return Ok((Outcome::BuildFailed, b.first_errors.join(" ⏎ "), None));
    }
    eprintln!("forge: {}: checking answers", plan.id);
    let reference = exec.answers(Build::Base).await?;
    let rerun = exec.answers(Build::Base).await?;
    // The base served a moment ago: a patched build that does not is the patch's doing.
    let patched = match exec.answers(Build::Patched).await {
        Ok(a) => a,
        Err(e) => {
            return Ok((
                Outcome::Crashed,
                format!("the patched engine did not serve: {e:#}"),
                None,
            ));
        }
    };
    let v = super::correct::judge(&reference, &rerun, &patched);
    if !v.correct {
        return Ok((Outcome::Incorrect, v.reason, None));
    }
    let rule = verdict::rule();
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    loop {
        eprintln!("forge: {}: measuring pair {}", plan.id, pairs.len() + 1);
        // Alternate which build runs first, so drift falls on both sides.
        let (p, c) = if pairs.len().is_multiple_of(2) {
            let p = exec.measure(Build::Patched).await;
            (p, exec.measure(Build::Base).await?)
        } else {
            let c = exec.measure(Build::Base).await?;
            (exec.measure(Build::Patched).await, c)
        };
        let p = match p {
            Ok(p) => p,
            Err(e) => {
                let why = format!("the patched engine failed under load: {e:#}");
                return Ok((Outcome::Crashed, why, None));
            }
        };
        pairs.push((p, c));
        row.pairs = pairs.clone();
        if let Next::Done {
            outcome,
            gain,
            reason,
        } = verdict::judge(&pairs, pool, &rule)
        {
            pool.absorb(&verdict::ratios(&pairs));
            return Ok((outcome, reason, Some(gain)));
        }
    }
}

/// After a kill: the attempt that started and never ended, if any — the checkout is put
/// back to its base (whatever the kill left: a half-applied diff, a build's files) and its
/// id and source returned, to be tried again under the same id.
pub fn recover(ledger: &Ledger, checkout: &Path) -> anyhow::Result<Option<(String, Source)>> {
    let Some((id, base, source)) = ledger.unfinished() else {
        return Ok(None);
    };
    git::revert_to(checkout, base)?;
    Ok(Some((id.to_string(), source.clone())))
}

/// Keep the diff as tried under `patches/` (atomic); its path relative to the campaign.
fn write_patch(plan: &Plan<'_>) -> anyhow::Result<PathBuf> {
    let rel = PathBuf::from("patches").join(format!("{}.diff", plan.id));
    let full = plan.dir.join(&rel);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::store::write_atomic(&full, plan.diff.as_bytes())?;
    Ok(rel)
}
