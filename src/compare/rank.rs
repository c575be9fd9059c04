//! How sure the gate is of each scenario's order, said under the comparison table.
//!
//! The ranking key (request throughput at the best SLA-passing rate) comes from one rate
//! search per candidate, so two frameworks' winners may stand closer than their runs'
//! noise. For each rival of the scenario's leader:
//! - both sustain everything at once within the SLA (their capacity decides): the two are
//!   re-measured in interleaved pairs (A B | B A | …, each framework's server booted in
//!   turn on the one box) until the interval of their throughput ratio clears ±1 % or the
//!   pair budget ends ([`super::gap::decide`]);
//! - otherwise each edge is bracketed by its search (passed at p, missed at f): the leader
//!   is ahead only when it passed at a rate where the rival missed, by at least p_L / f_R;
//!   brackets that overlap are "within the rate search's resolution", not a win.

use std::path::Path;

use super::candidate::{Candidate, ranked};
use super::gap::{Gap, Step, decide};
use super::gate::{SEARCHES_FILE, SearchLog, gate_dir};
use super::search::Searched;
use super::settings::CompareSettings;
use super::summary::Note;
use crate::bench::{LoadSpec, Timing};
use crate::recipe::EngineKind;
use crate::store;
use crate::tune::measure::{Measure, Spawned};
use crate::tune::verdict::{NoisePool, log_ratio};

/// Pairs measured at most to decide a near tie.
pub const MAX_PAIRS: usize = 6;

/// One note per rival of each scenario's leader.
pub async fn notes(
    s: &CompareSettings,
    dir: &Path,
    rows: &[Candidate],
    searched: &[(EngineKind, Searched)],
) -> anyhow::Result<Vec<Note>> {
    let mut out = Vec::new();
    for sc in &s.scenarios {
        let best = best_per_framework(rows, &sc.name);
        let Some((leader, rivals)) = best.split_first() else {
            continue;
        };
        for rival in rivals {
            let text = match (leader.workload.request_rate, rival.workload.request_rate) {
                (None, None) => {
                    let g = duel(s, dir, sc, leader, rival, searched).await?;
                    format!(
                        "{} vs {}: {}",
                        leader.framework,
                        rival.framework,
                        g.describe()
                    )
                }
                _ => bracketed(dir, leader, rival)?,
            };
            out.push(Note {
                scenario: sc.name.clone(),
                text,
            });
        }
    }
    Ok(out)
}

/// Each framework's best SLA-passing row of a scenario, best first.
fn best_per_framework<'a>(rows: &'a [Candidate], scenario: &str) -> Vec<&'a Candidate> {
    let mut seen: Vec<&str> = Vec::new();
    ranked(rows)
        .into_iter()
        .filter(|c| c.workload.scenario == scenario && c.eligible())
        .filter(|c| {
            let first = !seen.contains(&c.framework.as_str());
            seen.push(c.framework.as_str());
            first
        })
        .collect()
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

/// The order as the two rate searches' brackets show it.
fn bracketed(dir: &Path, leader: &Candidate, rival: &Candidate) -> anyhow::Result<String> {
    let edge = |c: &Candidate| -> anyhow::Result<(f64, Option<f64>)> {
        let p = c.workload.request_rate.unwrap_or(f64::INFINITY);
        let f = log_of(dir, c)?.and_then(|l| l.lowest_miss_above(c.workload.request_rate));
        Ok((p, f))
    };
    let (pl, fl) = edge(leader)?;
    let (pr, fr) = edge(rival)?;
    let show = |p: f64, f: Option<f64>| match f {
        Some(f) => format!("[{}, {f:.2})", rate(p)),
        None => format!("≥ {}", rate(p)),
    };
    let (l, r) = (&leader.framework, &rival.framework);
    Ok(match fr {
        Some(fr) if pl >= fr => format!(
            "{l} ahead of {r} by at least {:.1} %: {l} met the SLA at {} req/s, where {r} missed it at {fr:.2} (one run each at the edges)",
            (pl / fr - 1.0) * 100.0,
            rate(pl)
        ),
        _ => format!(
            "{l} and {r} within the rate search's resolution: edges {} and {} req/s overlap (not decided)",
            show(pl, fl),
            show(pr, fr)
        ),
    })
}

fn rate(r: f64) -> String {
    if r.is_finite() {
        format!("{r:.2}")
    } else {
        "everything at once".into()
    }
}

/// Interleaved pairs of both at everything at once; the ratio of request throughputs.
async fn duel(
    s: &CompareSettings,
    dir: &Path,
    sc: &super::scenario::Scenario,
    a: &Candidate,
    b: &Candidate,
    searched: &[(EngineKind, Searched)],
) -> anyhow::Result<Gap> {
    let w = sc.load(dir)?;
    let side = |c: &Candidate| -> anyhow::Result<(Spawned, crate::recipe::Recipe)> {
        let fw = EngineKind::parse(&c.framework).unwrap_or_default();
        let (_, found) = searched
            .iter()
            .find(|(f, _)| *f == fw)
            .ok_or_else(|| anyhow::anyhow!("no search for {}", c.framework))?;
        let pick = found
            .picks
            .iter()
            .find(|p| p.id == c.candidate_id)
            .ok_or_else(|| anyhow::anyhow!("{}: not among the search's picks", c.candidate_id))?;
        let gd = gate_dir(dir, fw);
        let engine = crate::tune::launch::engine_of(&found.settings, &gd)?;
        let load = LoadSpec {
            concurrency: c.workload.max_concurrency,
            request_rate: None,
            timing: Timing::Rate,
            seed: s.seed,
            percentiles: vec![50.0, 99.0],
            ..LoadSpec::default()
        };
        let boots = std::fs::read_to_string(gd.join(store::PIDS_FILE))
            .map_or(0, |t| t.lines().count() as u64);
        let m = Spawned::new(
            engine,
            &gd,
            w.clone(),
            load,
            std::time::Duration::from_secs_f64(s.boot_timeout_s),
            boots + 1000,
        );
        Ok((m, pick.recipe.clone()))
    };
    let (mut ma, ra) = side(a)?;
    let (mut mb, rb) = side(b)?;
    let pool = NoisePool::default();
    let mut d = Vec::new();
    let mut k = 0;
    loop {
        let tag = |who: &Candidate| format!("duel-{}-{}-{k}", who.candidate_id, sc.name);
        let (ta, tb) = if k % 2 == 0 {
            let ta = run(&mut ma, &ra, &tag(a)).await;
            ma.shutdown().await;
            let tb = run(&mut mb, &rb, &tag(b)).await;
            (ta, tb)
        } else {
            let tb = run(&mut mb, &rb, &tag(b)).await;
            mb.shutdown().await;
            let ta = run(&mut ma, &ra, &tag(a)).await;
            (ta, tb)
        };
        k += 1;
        if let Some(x) = ta.zip(tb).and_then(|(x, y)| log_ratio(x, y)) {
            d.push(x);
        }
        match decide(&d, &pool, 0.95, MAX_PAIRS) {
            Step::Done(g) => {
                ma.shutdown().await;
                mb.shutdown().await;
                return Ok(g);
            }
            Step::MeasureMore(iv) if k >= 2 * MAX_PAIRS => {
                ma.shutdown().await;
                mb.shutdown().await;
                // Runs kept failing: no interval to speak of.
                return Ok(iv.map_or(Gap::NobodyPasses, |interval| Gap::Unresolved { interval }));
            }
            Step::MeasureMore(_) => {}
        }
    }
}

async fn run(m: &mut Spawned, r: &crate::recipe::Recipe, tag: &str) -> Option<f64> {
    m.sample(r, tag)
        .await
        .ok()
        .map(|o| o.result.request_throughput)
}
