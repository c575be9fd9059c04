//! Two winners measured against each other in interleaved pairs on one box (A B | B A | …,
//! each framework's server booted in turn, so drift cancels and the GPU holds one engine
//! at a time), until the interval of their ratio clears ±1 % or the pair budget ends.
//!
//! What one side's run measures is its SLA-passing throughput: a rate search around the
//! edges already found (0.8× the lower to 1.25× the higher the first time, then ±7 % of
//! the side's previous answer; 2 % tolerance), whose answer is the request throughput of its best passing run — its
//! capacity when everything at once already meets the SLA (one run), else the highest
//! rate it sustained. A side whose search finds nothing passing scores nothing, and that
//! pair is dropped (the decision then rests on the other pairs, or says so).

use std::path::Path;

use super::candidate::Candidate;
use super::gap::{Gap, Step, decide};
use super::gate::{GateProbe, gate_dir};
use super::rate::{self, Bounds};
use super::scenario::Scenario;
use super::search::Searched;
use super::settings::CompareSettings;
use crate::bench::LoadSpec;
use crate::recipe::{EngineKind, Recipe};
use crate::store;
use crate::tune::measure::{Measure, Spawned};
use crate::tune::verdict::{NoisePool, log_ratio};
use crate::workload::Workload;

/// What a duel found.
#[derive(Debug, Clone, PartialEq)]
pub struct Result {
    /// The decision about A against B.
    pub gap: Gap,
    /// Each pair's ln(A/B).
    pub log_ratios: Vec<f64>,
}

/// One side: its server, recipe and concurrency cap.
struct Side {
    measure: Spawned,
    recipe: Recipe,
    cap: Option<usize>,
    id: String,
    /// The rate this side's last search settled on: the next search looks within ±7 % of
    /// it (two or three runs instead of a fresh bracket).
    last_edge: Option<f64>,
}

/// Measure `a` against `b` in `sc` (both SLA-passing rows of the campaign).
pub async fn duel(
    s: &CompareSettings,
    dir: &Path,
    sc: &Scenario,
    a: &Candidate,
    b: &Candidate,
    searched: &[(EngineKind, Searched)],
    max_pairs: usize,
) -> anyhow::Result<Result> {
    let w = sc.load(dir)?;
    let mut sa = side(s, dir, &w, a, searched)?;
    let mut sb = side(s, dir, &w, b, searched)?;
    let bounds = around(s, a, b);
    let pool = NoisePool::default();
    let mut d = Vec::new();
    for k in 0..2 * max_pairs {
        let (ta, tb) = if k % 2 == 0 {
            let ta = score(s, &w, &mut sa, bounds, &sc.name, k).await;
            sa.measure.shutdown().await;
            (ta, score(s, &w, &mut sb, bounds, &sc.name, k).await)
        } else {
            let tb = score(s, &w, &mut sb, bounds, &sc.name, k).await;
            sb.measure.shutdown().await;
            (score(s, &w, &mut sa, bounds, &sc.name, k).await, tb)
        };
        if let Some(x) = ta.zip(tb).and_then(|(x, y)| log_ratio(x, y)) {
            d.push(x);
        }
        if let Step::Done(gap) = decide(&d, &pool, 0.95, max_pairs) {
            sa.measure.shutdown().await;
            sb.measure.shutdown().await;
            return Ok(Result { gap, log_ratios: d });
        }
    }
    sa.measure.shutdown().await;
    sb.measure.shutdown().await;
    // Runs kept failing on one side: what was measured, unresolved.
    let gap = match crate::tune::verdict::interval(&d, &pool, 0.95) {
        Some(interval) => Gap::Unresolved { interval },
        None => Gap::NobodyPasses,
    };
    Ok(Result { gap, log_ratios: d })
}

/// Rate bounds around both rows' edges (found to the gate's tolerance: from 0.8× the lower
/// to 1.25× the higher), with a 2 % stopping width; everything at once is tried first
/// only when a row passed that way.
fn around(s: &CompareSettings, a: &Candidate, b: &Candidate) -> Bounds {
    let rates: Vec<f64> = [a, b]
        .iter()
        .filter_map(|c| c.workload.request_rate)
        .collect();
    let (lo, hi) = if rates.is_empty() {
        (s.rates.lo, s.rates.hi)
    } else {
        let min = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates.iter().copied().fold(0.0, f64::max);
        (min * 0.8, max * 1.25)
    };
    Bounds {
        lo,
        hi,
        tolerance: 0.02,
        max_runs: 10,
        all_at_once: rates.len() < 2,
    }
}

fn side(
    s: &CompareSettings,
    dir: &Path,
    w: &Workload,
    c: &Candidate,
    searched: &[(EngineKind, Searched)],
) -> anyhow::Result<Side> {
    let fw = EngineKind::parse(&c.framework)
        .ok_or_else(|| anyhow::anyhow!("unknown framework `{}`", c.framework))?;
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
    let boots = crate::engine::process::launches_recorded(&gd.join(store::PIDS_FILE));
    let measure = Spawned::new(
        engine,
        &gd,
        w.clone(),
        LoadSpec::default(),
        std::time::Duration::from_secs_f64(s.boot_timeout_s),
        boots,
    );
    Ok(Side {
        measure,
        recipe: pick.recipe.clone(),
        cap: c.workload.max_concurrency,
        id: c.candidate_id.clone(),
        last_edge: None,
    })
}

/// One side's SLA-passing throughput (`None` when nothing passed).
async fn score(
    s: &CompareSettings,
    w: &Workload,
    side: &mut Side,
    bounds: Bounds,
    scenario: &str,
    k: usize,
) -> Option<f64> {
    let bounds = match side.last_edge {
        Some(e) if !bounds.all_at_once => Bounds {
            lo: e * 0.93,
            hi: e * 1.07,
            ..bounds
        },
        _ => bounds,
    };
    let probe = GateProbe {
        measure: &mut side.measure,
        recipe: &side.recipe,
        workload: w,
        cap: side.cap,
        s,
        tag: format!("duel-{}-{scenario}-p{k}", side.id),
        k: 0,
    };
    let found = rate::search(bounds, probe).await;
    let best = found.best()?;
    side.last_edge = best.rate;
    best.data
        .as_ref()
        .ok()
        .map(|(b, _, _)| b.request_throughput)
        .filter(|t| *t > 0.0)
}
