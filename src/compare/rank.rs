//! How sure the gate is of each scenario's order, said under the comparison table.
//!
//! The ranking key (request throughput at the best SLA-passing rate) comes from one rate
//! search per candidate, so two frameworks' winners may stand closer than their runs'
//! noise. For the leader and the runner-up (a third framework within the noise of the
//! leader is said to be so, not re-measured):
//! - both sustain everything at once within the SLA (their capacity decides): the two are
//!   re-measured in interleaved pairs ([`super::duel`]) until the interval of their
//!   throughput ratio clears ±1 % or the pair budget ends;
//! - otherwise each edge is bracketed by its search (passed at p, missed at f): the leader
//!   is ahead, by at least p_L / f_R, when it passed at a rate where the rival missed;
//!   brackets that overlap are within the searches' resolution, so the two are re-measured
//!   in interleaved pairs of rate searches, as above.

use std::path::Path;

use super::candidate::{Candidate, best_per_framework};
use super::gate::{SEARCHES_FILE, SearchLog, gate_dir};
use super::search::Searched;
use super::settings::CompareSettings;
use super::summary::Note;
use crate::recipe::EngineKind;
use crate::store;

/// Pairs measured at most to decide first place under the comparison (`forge gap` takes
/// `--max-pairs`).
pub const MAX_PAIRS: usize = 3;

/// One note per rival of each scenario's leader.
pub async fn notes(
    s: &CompareSettings,
    dir: &Path,
    rows: &[Candidate],
    searched: &[(EngineKind, Searched)],
) -> anyhow::Result<Vec<Note>> {
    let mut out = Vec::new();
    for sc in &s.scenarios {
        let best = best_per_framework(rows, &sc.name, true);
        let Some((leader, rivals)) = best.split_first() else {
            continue;
        };
        for (i, rival) in rivals.iter().enumerate() {
            let decided = match (leader.workload.request_rate, rival.workload.request_rate) {
                (None, None) => None,
                _ => bracketed(dir, leader, rival)?,
            };
            let text = match decided {
                Some(t) => t,
                // Only first place is re-measured: a third framework within the noise of
                // the leader is said to be so, not duelled.
                None if i > 0 => format!(
                    "{} and {} within one rate search's resolution (not re-measured: {} is not the runner-up)",
                    leader.framework, rival.framework, rival.framework
                ),
                None => {
                    let g = super::duel::duel(s, dir, sc, leader, rival, searched, MAX_PAIRS)
                        .await?
                        .gap;
                    format!(
                        "{} vs {}: {}",
                        leader.framework,
                        rival.framework,
                        g.describe()
                    )
                }
            };
            out.push(Note {
                scenario: sc.name.clone(),
                text,
            });
        }
    }
    Ok(out)
}

/// The lowest offered rate at which `c`'s search missed the SLA above the rate its row
/// passed at: the top of the bracket its capacity lies in (`None`: nothing above missed, or
/// no search).
pub fn missed_above(dir: &Path, c: &Candidate) -> anyhow::Result<Option<f64>> {
    Ok(log_of(dir, c)?.and_then(|l| l.lowest_miss_above(c.workload.request_rate)))
}

/// The search log behind a row.
fn log_of(dir: &Path, c: &Candidate) -> anyhow::Result<Option<SearchLog>> {
    let fw = EngineKind::parse(&c.framework).unwrap_or_default();
    let logs: Vec<SearchLog> = store::read_rows(&gate_dir(dir, fw).join(SEARCHES_FILE))?;
    Ok(logs.into_iter().rev().find(|l| {
        l.candidate_id == c.candidate_id
            && l.scenario == c.workload.scenario
            && l.max_concurrency == c.workload.max_concurrency
    }))
}

/// The order as the two rate searches' brackets show it, when they do not overlap
/// (`None`: within the searches' resolution, for paired runs to decide).
fn bracketed(dir: &Path, leader: &Candidate, rival: &Candidate) -> anyhow::Result<Option<String>> {
    let pl = leader.workload.request_rate.unwrap_or(f64::INFINITY);
    let fr = missed_above(dir, rival)?;
    let (l, r) = (&leader.framework, &rival.framework);
    Ok(match fr {
        Some(fr) if pl >= fr => Some(format!(
            "{l} ahead of {r} by at least {:.1} %: {l} met the SLA at {} req/s, where {r} missed it at {fr:.2} (one run each at the edges)",
            (pl / fr - 1.0) * 100.0,
            rate(pl)
        )),
        _ => None,
    })
}

fn rate(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "everything at once".into()
    }
}
