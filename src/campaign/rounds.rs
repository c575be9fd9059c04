//! The campaign's loop, as one resumable program. Each round: decide the gap against the
//! competitor ([`super::gap`]); stop when the target is ahead, tied within 1 %, not more
//! than 1 % behind with confidence (tied or ahead, the interval too wide to say which), or
//! when a gap cannot be shown either way; else profile both sides and analyze them ([`super::analysis`]), then
//! try proposals ([`Proposer`]: the patch series, or the LLM agent) one attempt at a time
//! ([`super::attempt::run`], each on the latest kept commit) until the round's attempts are
//! spent (`--attempts-per-round`; 1 is the seed's one patch per round). Budgets
//! (rounds, hours, dollars) are checked before each piece of work; `checkpoint.md` is
//! rewritten after each and `final_report.md` when the campaign stops.
//!
//! Everything the loop needs to go on is in the ledger: a resumed campaign reaps the
//! processes a `kill -9` left (`engines.pids`), resets the checkout from an attempt that
//! never ended and retries it under the same id, rebuilds its base, and continues the open
//! round or starts the next one.

use std::path::{Path, PathBuf};

use super::attempt::{self, Build, Executor, Plan, Profiles};
use super::gap::{CONFIDENCE, Decision};
use super::ledger::{Event, Idea, Ledger, Outcome, Source};
use super::propose::{self, Proposal};
use super::settings::Settings;
use super::stop::{Stop, StopCode, stopped};
use super::{analysis, report};
use crate::agent::llm::LlmError;
use crate::agent::llm::cost::Meter;
use crate::agent::llm::http::Client;
use crate::compare::gap::{self, Gap, Step};
use crate::patch::series;
use crate::patch::{Limits, git};
use crate::store::PIDS_FILE;
use crate::tune::verdict::NoisePool;

/// Where proposals come from.
pub enum Proposer {
    /// A patch series, tried in order.
    Series(Vec<series::Candidate>),
    /// The LLM agent.
    Llm(Box<Agent>),
}

/// The LLM agent that proposes patches.
pub struct Agent {
    /// The provider's client.
    pub client: Client,
    /// Calls and spend so far.
    pub meter: Meter,
    /// `provider/model`.
    pub model: String,
    /// Per-round bounds.
    pub limits: propose::Limits,
}

/// What one pass of the loop does next.
enum Next {
    Go,
    Stop(Stop),
}

/// Run (or resume) the campaign in `dir` to its stop.
pub async fn drive(
    dir: &Path,
    settings: &Settings,
    exec: &mut impl Executor,
    proposer: &mut Proposer,
) -> anyhow::Result<Stop> {
    let mut ledger = Ledger::read(dir)?;
    if let Some(stop) = stopped(&ledger) {
        report::final_report(dir, settings, &ledger, exec)?;
        return Ok(stop);
    }
    let mut retry = match prepare(dir, settings, exec, &ledger).await? {
        Ok(retry) => retry,
        Err(why) => return finish(dir, settings, &mut ledger, exec, StopCode::External, why),
    };
    let mut pool = super::verdict::noise_pool(&ledger);
    let mut decide_again = false;
    loop {
        if let Some((code, why)) = over_budget(&ledger, settings) {
            return finish(dir, settings, &mut ledger, exec, code, why);
        }
        let open = open_round(&ledger, settings).filter(|_| !decide_again);
        decide_again = false;
        let round = match open {
            Some(r) => r,
            None => match new_round(dir, settings, exec, &mut ledger, &mut pool).await? {
                Next::Go => ledger.round(),
                Next::Stop(s) => return finish(dir, settings, &mut ledger, exec, s.code, s.reason),
            },
        };
        if let Some((code, why)) = over_budget(&ledger, settings) {
            return finish(dir, settings, &mut ledger, exec, code, why);
        }
        let proposal = match retry.take() {
            Some((id, source)) => Ok(retried(dir, &ledger, id, source)?),
            None => propose_next(dir, settings, &mut ledger, proposer, round).await?,
        };
        let p = match proposal {
            Ok(p) => p,
            Err(None) if kept_since_decision(&ledger) => {
                // Where the kept patches leave the target decides how the campaign ends.
                decide_again = true;
                continue;
            }
            Err(why) => {
                let (code, why) = why.unwrap_or_else(|| {
                    (
                        StopCode::Exhausted,
                        "every patch of the series was tried".into(),
                    )
                });
                return finish(dir, settings, &mut ledger, exec, code, why);
            }
        };
        attempt_one(dir, settings, exec, &mut ledger, &mut pool, round, p).await?;
        report::checkpoint(dir, settings, &ledger, exec, next_label(proposer, &ledger))?;
    }
}

/// Try one proposal in `round` and say how it ended.
async fn attempt_one(
    dir: &Path,
    settings: &Settings,
    exec: &mut impl Executor,
    ledger: &mut Ledger,
    pool: &mut NoisePool,
    round: u32,
    p: Ready,
) -> anyhow::Result<()> {
    let plan = Plan {
        dir,
        checkout: &settings.source,
        id: p.id.clone(),
        round,
        source: p.source,
        diff: &p.diff,
        idea: p.idea,
        limits: Limits::default(),
    };
    eprintln!("forge: {}: {}", plan.id, p.label);
    let row = attempt::run(&plan, exec, ledger, pool).await?;
    eprintln!("forge: {}: {} — {}", row.id, row.outcome.code(), row.reason);
    Ok(())
}

/// Measure the target's base build against the leader until the gap is decided or
/// `max_pairs` pairs are spent.
async fn decide_gap(
    exec: &mut impl Executor,
    pool: &NoisePool,
    max_pairs: usize,
    threshold_pct: f64,
    label: &str,
) -> anyhow::Result<Decision> {
    let mut pairs: Vec<(f64, f64)> = Vec::new();
    loop {
        eprintln!("forge: {label}: gap pair {}", pairs.len() + 1);
        let pair = if pairs.len().is_multiple_of(2) {
            let t = exec.measure(Build::Base).await?;
            (t, exec.measure_leader().await?)
        } else {
            let l = exec.measure_leader().await?;
            (exec.measure(Build::Base).await?, l)
        };
        pairs.push(pair);
        let logs: Vec<f64> = pairs.iter().map(|(t, l)| (t / l).ln()).collect();
        let step = gap::decide_within(&logs, pool, CONFIDENCE, max_pairs.max(2), threshold_pct);
        let gap = match step {
            Step::Done(gap) => Some(gap),
            // Not more than the threshold behind: the campaign has nothing to act on, and
            // more pairs would only say whether it is tied or ahead.
            Step::MeasureMore(Some(interval))
                if pairs.len() >= 2 && interval.lo_pct >= -threshold_pct =>
            {
                Some(Gap::Unresolved { interval })
            }
            Step::MeasureMore(_) => None,
        };
        if let Some(gap) = gap {
            return Ok(Decision {
                gap,
                pairs,
                threshold_pct,
            });
        }
    }
}

/// Ready the checkout for the loop: reap what a kill left, reset an interrupted attempt
/// (its id and source returned to retry), switch to the campaign branch, check the tree,
/// build the base. `Ok(Err(why))`: the base does not build.
async fn prepare(
    dir: &Path,
    settings: &Settings,
    exec: &mut impl Executor,
    ledger: &Ledger,
) -> anyhow::Result<Result<Option<(String, Source)>, String>> {
    let reaped = crate::engine::process::reap_recorded(&dir.join(PIDS_FILE));
    if !reaped.is_empty() {
        eprintln!(
            "forge: reaped {} process group(s) an interrupted session left",
            reaped.len()
        );
    }
    let checkout = settings.source.as_path();
    let retry = attempt::recover(ledger, checkout)?;
    if let Some((id, _)) = &retry {
        eprintln!(
            "forge: {id} was interrupted; the checkout is back at its base and it is tried again"
        );
    }
    git::start_branch(checkout, &settings.branch)?;
    anyhow::ensure!(
        git::status_clean(checkout)?,
        "{}: the checkout has changes outside the campaign; commit or stash them",
        checkout.display()
    );
    eprintln!(
        "forge: building the base ({})",
        git::short(&git::head(checkout)?)
    );
    let log = dir.join("patches").join("base.log");
    if let Err(b) = exec.build(checkout, Build::Base, &log).await? {
        let why = format!(
            "the target's base does not build: {}",
            b.first_errors.join(" ⏎ ")
        );
        return Ok(Err(why));
    }
    Ok(Ok(retry))
}

/// The round still open, if any: started and with attempts left (each attempt builds on
/// the latest kept commit; the gap is decided again when the round's attempts are spent).
fn open_round(ledger: &Ledger, settings: &Settings) -> Option<u32> {
    let round = ledger.round();
    if round == 0 {
        return None;
    }
    let n = ledger.attempts().filter(|a| a.round == round).count() as u32;
    (n < settings.attempts_per_round.max(1)).then_some(round)
}

/// Whether a patch was kept after the last gap decision.
fn kept_since_decision(ledger: &Ledger) -> bool {
    let round = ledger.round();
    ledger
        .attempts()
        .any(|a| a.round == round && a.outcome == Outcome::Kept)
}

/// Decide the gap for the next round; profile and analyze when the target is behind.
async fn new_round(
    dir: &Path,
    settings: &Settings,
    exec: &mut impl Executor,
    ledger: &mut Ledger,
    pool: &mut NoisePool,
) -> anyhow::Result<Next> {
    let round = ledger.round() + 1;
    let started = std::time::Instant::now();
    let t = settings.tie_threshold_pct;
    let d = decide_gap(exec, pool, settings.gap_pairs, t, &format!("r{round}")).await?;
    pool.absorb(&super::verdict::ratios(&d.pairs));
    let line = d.describe();
    eprintln!("forge: r{round}: {} {line}", settings.target.name());
    ledger.record(
        dir,
        Event::RoundStarted {
            round,
            commit: git::head(&settings.source)?,
            gap: line.clone(),
            decision: Some(d.clone()),
            secs: started.elapsed().as_secs_f64(),
        },
    )?;
    report::benchmark(dir, settings, ledger, exec)?;
    if let Some(stop) = stop_for(&d, settings.target.name(), &settings.leader_name, t) {
        return Ok(Next::Stop(stop));
    }
    profile_and_analyze(dir, settings, exec, ledger, round, &d).await?;
    Ok(Next::Go)
}

/// The stop a gap decision calls for, if any.
fn stop_for(d: &Decision, t: &str, l: &str, threshold: f64) -> Option<Stop> {
    let (code, reason) = match d.gap {
        Gap::Ahead { .. } | Gap::OnlyTargetPasses => (
            StopCode::Ahead,
            format!("{t} against {l}: {}", d.describe()),
        ),
        Gap::Tied { .. } => (StopCode::Tied, format!("{t} against {l}: {}", d.describe())),
        Gap::Unresolved { interval } if interval.lo_pct >= -threshold => (
            StopCode::NotBehind,
            format!(
                "{t} against {l}: tied or ahead — not more than {threshold} % behind with \
                 95 % confidence (which of the two, the interval cannot say): {}",
                d.describe()
            ),
        ),
        Gap::Unresolved { .. } => (
            StopCode::Unresolved,
            format!(
                "no gap to act on is shown: {} (more pairs: --gap-pairs, or a quieter machine)",
                d.describe()
            ),
        ),
        Gap::Behind { .. } => return None,
        Gap::TargetFailsSla | Gap::NobodyPasses => (StopCode::External, d.describe()),
    };
    Some(Stop { code, reason })
}

async fn profile_and_analyze(
    dir: &Path,
    settings: &Settings,
    exec: &mut impl Executor,
    ledger: &mut Ledger,
    round: u32,
    d: &Decision,
) -> anyhow::Result<()> {
    match exec.profile(dir, round).await? {
        Profiles::Captured { target, leader } => {
            let (root, pipe) = match analysis::write(dir, &target, &leader, None) {
                Ok(paths) => paths,
                Err(e) => {
                    let why = format!("the profiles could not be analyzed: {e:#}");
                    return report::root_cause_unprofiled(dir, settings, round, d, &why);
                }
            };
            for side in [&target, &leader] {
                ledger.record(
                    dir,
                    Event::Profiled {
                        round,
                        framework: crate::trace::framework_id(side.framework).to_string(),
                        paths: vec![
                            relative(dir, &side.profiles),
                            relative(dir, &root),
                            relative(dir, &pipe),
                        ],
                    },
                )?;
            }
        }
        Profiles::Unavailable(why) => {
            report::root_cause_unprofiled(dir, settings, round, d, &why)?;
        }
    }
    Ok(())
}

/// A proposal ready to try.
struct Ready {
    id: String,
    source: Source,
    diff: String,
    idea: Option<String>,
    label: String,
}

/// The attempt a kill interrupted, with the same id and the diff it had.
fn retried(dir: &Path, ledger: &Ledger, id: String, source: Source) -> anyhow::Result<Ready> {
    let diff = crate::text::read(&dir.join("patches").join(format!("{id}.diff")))?;
    let idea = match &source {
        Source::Llm { .. } => ledger.ideas().last().map(|i| i.id.clone()),
        Source::Series { .. } => None,
    };
    Ok(Ready {
        label: format!("{} (tried again)", source.describe()),
        id,
        source,
        diff,
        idea,
    })
}

/// Why there is no next proposal: `None` when the series is spent (the caller may decide
/// the gap once more), else the stop it calls for.
type NoProposal = Option<(StopCode, String)>;

/// The next proposal of this round, or why there is none.
async fn propose_next(
    dir: &Path,
    settings: &Settings,
    ledger: &mut Ledger,
    proposer: &mut Proposer,
    round: u32,
) -> anyhow::Result<Result<Ready, NoProposal>> {
    let n = ledger.attempts().filter(|a| a.round == round).count() + 1;
    let id = format!("r{round}-a{n}");
    match proposer {
        Proposer::Series(list) => {
            let tried = ledger.tried_files();
            let Some(c) = series::next(list, &tried) else {
                return Ok(Err(None));
            };
            let source = Source::Series {
                file: c.name.clone(),
            };
            Ok(Ok(Ready {
                label: source.describe(),
                diff: series::read(c)?,
                id,
                source,
                idea: None,
            }))
        }
        Proposer::Llm(agent) => {
            let Agent {
                client,
                meter,
                model,
                limits,
            } = agent.as_mut();
            let p = ask_llm(dir, settings, ledger, client, meter, limits).await;
            let p = match p {
                Ok(p) => p,
                Err(e) => {
                    let budget = matches!(
                        e.downcast_ref::<propose::ProposeError>(),
                        Some(propose::ProposeError::Llm(LlmError::BudgetExhausted { .. }))
                    );
                    let code = if budget {
                        StopCode::Budget
                    } else {
                        StopCode::Exhausted
                    };
                    let why = format!("the agent proposed no patch in round {round}: {e:#}");
                    return Ok(Err(Some((code, why))));
                }
            };
            let idea = format!("i{}", ideas(ledger) + 1);
            ledger.record(
                dir,
                Event::Idea(Idea {
                    id: idea.clone(),
                    round,
                    title: p.idea.clone(),
                    evidence: p.evidence.clone(),
                    provenance: p.provenance.clone(),
                    cost_usd: p.cost_usd,
                }),
            )?;
            let source = Source::Llm {
                model: model.clone(),
            };
            Ok(Ok(Ready {
                label: format!("{}: {}", source.describe(), p.idea),
                id,
                source,
                diff: p.diff,
                idea: Some(idea),
            }))
        }
    }
}

async fn ask_llm(
    dir: &Path,
    settings: &Settings,
    ledger: &Ledger,
    client: &Client,
    meter: &mut Meter,
    limits: &propose::Limits,
) -> anyhow::Result<Proposal> {
    let read = |p: PathBuf| std::fs::read_to_string(dir.join(p)).unwrap_or_default();
    let a = PathBuf::from(analysis::ANALYSIS_DIR);
    let l = PathBuf::from(super::ledger::LEDGERS_DIR);
    let root = read(a.join(analysis::ROOT_CAUSE_FILE));
    let pipe = read(a.join(analysis::PIPELINE_FILE));
    let idea_md = read(l.join(super::ledger::IDEAS_FILE));
    let attempt_md = read(l.join(super::ledger::ATTEMPTS_FILE));
    let ctx = propose::Context {
        target: settings.target.name(),
        root_cause: &root,
        pipeline: &pipe,
        ideas: &idea_md,
        attempts: &attempt_md,
        widen: widen(ledger),
        checkout: &settings.source,
    };
    Ok(propose::propose(client, meter, &ctx, limits).await?)
}

/// Two completed rounds in a row whose best kept gain is under 1 %.
pub fn widen(ledger: &Ledger) -> bool {
    let current = ledger.round();
    let best = |r: u32| {
        ledger
            .attempts()
            .filter(|a| a.round == r && a.outcome == Outcome::Kept)
            .filter_map(|a| a.gain.map(|g| g.pct))
            .fold(0.0_f64, f64::max)
    };
    current >= 3 && best(current - 1) < 1.0 && best(current - 2) < 1.0
}

fn ideas(ledger: &Ledger) -> usize {
    ledger
        .events
        .iter()
        .filter(|e| matches!(e, Event::Idea(_)))
        .count()
}

/// The budget that ran out, if one did.
fn over_budget(ledger: &Ledger, settings: &Settings) -> Option<(StopCode, String)> {
    let b = &settings.budget;
    let hours = ledger.secs() / 3600.0;
    let dollars = ledger.spent_usd() + hours * b.gpu_hour_usd;
    let rounds_done = ledger.round() >= b.max_rounds.unwrap_or(u32::MAX);
    if rounds_done && open_round(ledger, settings).is_none() {
        return Some((
            StopCode::Budget,
            format!("{} round(s) done (--max-rounds)", ledger.round()),
        ));
    }
    if b.max_hours.is_some_and(|h| hours >= h) {
        return Some((
            StopCode::Budget,
            format!("{hours:.2} h spent (--max-hours)"),
        ));
    }
    if b.max_dollars.is_some_and(|d| dollars >= d) {
        return Some((
            StopCode::Budget,
            format!("${dollars:.2} spent (--max-dollars)"),
        ));
    }
    None
}

/// Record the stop and write the final report.
fn finish(
    dir: &Path,
    settings: &Settings,
    ledger: &mut Ledger,
    exec: &impl Executor,
    code: StopCode,
    reason: String,
) -> anyhow::Result<Stop> {
    ledger.record(
        dir,
        Event::Stopped {
            reason: format!("{}: {reason}", code.as_str()),
        },
    )?;
    report::checkpoint(dir, settings, ledger, exec, None)?;
    report::final_report(dir, settings, ledger, exec)?;
    eprintln!("forge: stopped ({}): {reason}", code.as_str());
    Ok(Stop { code, reason })
}

/// What the next attempt will try, for the checkpoint.
fn next_label(proposer: &Proposer, ledger: &Ledger) -> Option<String> {
    match proposer {
        Proposer::Series(list) => {
            series::next(list, &ledger.tried_files()).map(|c| format!("series {}", c.name))
        }
        Proposer::Llm(a) => Some(format!("the LLM agent ({})", a.model)),
    }
}

fn relative(dir: &Path, p: &Path) -> PathBuf {
    p.strip_prefix(dir)
        .map_or_else(|_| p.to_path_buf(), Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Interval;

    fn unresolved(lo: f64, hi: f64) -> Decision {
        Decision {
            gap: Gap::Unresolved {
                interval: Interval {
                    gain_pct: (lo + hi) / 2.0,
                    lo_pct: lo,
                    hi_pct: hi,
                    confidence: 0.95,
                    pairs: 8,
                },
            },
            pairs: vec![(1.0, 1.0); 8],
            threshold_pct: 1.0,
        }
    }

    fn round(r: u32) -> Event {
        Event::RoundStarted {
            round: r,
            commit: "c".into(),
            gap: String::new(),
            decision: None,
            secs: 0.0,
        }
    }

    fn kept(r: u32, pct: f64) -> Event {
        Event::Attempt(super::super::ledger::Attempt {
            id: format!("r{r}-a1"),
            round: r,
            source: Source::Series { file: "x".into() },
            patch: PathBuf::from("p"),
            idea: None,
            base: "b".into(),
            files: Vec::new(),
            outcome: Outcome::Kept,
            reason: String::new(),
            gain: Some(super::super::ledger::Gain {
                pct,
                lo: pct - 0.5,
                hi: pct + 0.5,
            }),
            commit: Some("k".into()),
            log: None,
            pairs: Vec::new(),
            secs: 0.0,
        })
    }

    #[test]
    fn two_rounds_in_a_row_under_1_pct_widen_the_research() {
        let mut l = Ledger {
            events: vec![round(1), kept(1, 12.0), round(2), kept(2, 0.6), round(3)],
            ..Ledger::default()
        };
        assert!(!widen(&l), "round 1 gained 12 %");
        l.events.extend([round(4)]);
        assert!(
            widen(&l),
            "rounds 2 (0.6 %) and 3 (nothing kept) gained under 1 %"
        );
        l.events.extend([kept(4, 3.0), round(5)]);
        assert!(!widen(&l));
    }

    #[test]
    fn an_unresolved_gap_is_tied_or_ahead_only_when_not_more_than_1_pct_behind() {
        let s = stop_for(&unresolved(-0.3, 5.8), "t", "l", 1.0).unwrap();
        assert_eq!(s.code, StopCode::NotBehind);
        assert!(s.code.reached() && s.code.exit_code() == 0);
        let s = stop_for(&unresolved(-2.5, 1.5), "t", "l", 1.0).unwrap();
        assert_eq!(s.code, StopCode::Unresolved);
        let s = stop_for(&unresolved(-2.5, 1.5), "t", "l", 5.0).unwrap();
        assert_eq!(s.code, StopCode::NotBehind);
        let s = stop_for(&unresolved(-4.0, 3.0), "t", "l", 3.0).unwrap();
        assert_eq!(s.code, StopCode::Unresolved);
        assert!(!s.code.reached());
        assert_eq!(s.code.exit_code(), 12);
        for c in [StopCode::NotBehind, StopCode::Budget, StopCode::External] {
            assert_eq!(StopCode::parse(c.as_str()), Some(c));
        }
    }
}
