//! One keep/revert decision: candidate and incumbent measured in interleaved pairs
//! (C I | I C | C I …, so a running server is reused across the pair boundary and drift
//! cancels), each pair scored, the interval recomputed after every pair, and the rule
//! applied until it is clear or the repeat budget is spent.

use super::accuracy::References;
use super::measure::{Measurer, SampleOutput};
use super::row::{Arm, Measurement, Sample};
use super::score;
use super::settings::TuneSettings;
use super::verdict::{self, Decision, Interval, NoisePool, Rule};
use crate::engine::failure::Failure;
use crate::recipe::Recipe;

/// How a decision ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Keep, revert, inconclusive — or failed (see `failure`).
    pub decision: Decision,
    /// The candidate failed: no measurement.
    pub failure: Option<Failure>,
    /// Gain interval.
    pub interval: Option<Interval>,
    /// Log ratios of the pairs.
    pub log_ratios: Vec<f64>,
    /// Every sample, in order.
    pub samples: Vec<Sample>,
    /// Median candidate measurement.
    pub candidate: Option<Measurement>,
    /// Why the SLA or accuracy decided it, when they did.
    pub note: Option<String>,
    /// Candidate log file.
    pub log: Option<String>,
}

/// Measure and score one sample.
pub async fn sample(
    m: &mut Measurer,
    recipe: &Recipe,
    tag: &str,
    s: &TuneSettings,
    refs: Option<&References>,
) -> Result<(Measurement, SampleOutput), Failure> {
    let mut last = None;
    // Infrastructure failures are retried once; infeasible ones never.
    for attempt in 0..2 {
        let t = if attempt == 0 {
            tag.to_string()
        } else {
            format!("{tag}-retry")
        };
        match m.sample(recipe, &t).await {
            Ok(out) => {
                let acc = refs.and_then(|r| r.relative(&out.answers));
                return Ok((score::measure(&out.result, s, acc), out));
            }
            Err(f) if f.class.is_retryable() && attempt == 0 => last = Some(f),
            Err(f) => return Err(f),
        }
    }
    Err(last.unwrap_or_else(unreachable_failure))
}

fn unreachable_failure() -> Failure {
    Failure {
        class: crate::engine::failure::FailureClass::CrashedDuringBench,
        exit_code: None,
        signal: None,
        summary: "measurement failed".into(),
        hints: vec![],
    }
}

/// What a comparison is judged by.
pub struct Judge<'a> {
    /// Run settings (objective, SLA, accuracy floor).
    pub settings: &'a TuneSettings,
    /// Accuracy references.
    pub refs: Option<&'a References>,
    /// Pooled noise so far.
    pub pool: &'a NoisePool,
    /// The decision rule.
    pub rule: Rule,
}

/// Paired comparison of `cand` against `inc`.
pub async fn compare(
    m: &mut Measurer,
    cand: &Recipe,
    inc: &Recipe,
    tag: &str,
    j: &Judge<'_>,
) -> Outcome {
    let (s, refs, pool, rule) = (j.settings, j.refs, j.pool, &j.rule);
    let mut out = Outcome {
        decision: Decision::MeasureMore,
        failure: None,
        interval: None,
        log_ratios: vec![],
        samples: vec![],
        candidate: None,
        note: None,
        log: None,
    };
    let mut cands: Vec<Measurement> = Vec::new();
    for k in 0..rule.max_pairs {
        let order = if k % 2 == 0 {
            [Arm::Candidate, Arm::Incumbent]
        } else {
            [Arm::Incumbent, Arm::Candidate]
        };
        let mut pair: [Option<Measurement>; 2] = [None, None];
        for arm in order {
            let (recipe, name, slot) = match arm {
                Arm::Candidate => (cand, format!("{tag}-c{}", k + 1), 0),
                Arm::Incumbent => (inc, format!("{tag}-i{}", k + 1), 1),
            };
            match sample(m, recipe, &name, s, refs).await {
                Ok((meas, so)) => {
                    if arm == Arm::Candidate {
                        out.log = Some(so.log.clone());
                    }
                    out.samples.push(Sample {
                        arm,
                        m: meas.clone(),
                        facts: so.facts,
                    });
                    pair[slot] = Some(meas);
                }
                Err(f) if arm == Arm::Candidate => {
                    out.failure = Some(f);
                    out.candidate = median(&cands);
                    return out;
                }
                // The incumbent failing is the machine's fault: this pair is lost.
                Err(_) => {}
            }
        }
        let [Some(c), Some(i)] = pair else { continue };
        cands.push(c.clone());
        if let Some(d) = sla_decides(&c, &i, s) {
            out.decision = d.0;
            out.note = Some(d.1);
            break;
        }
        if let Some(lr) = verdict::log_ratio(score::comparable(&c, s), score::comparable(&i, s)) {
            out.log_ratios.push(lr);
        }
        let (d, iv) = verdict::decide(&out.log_ratios, pool, rule);
        out.interval = iv;
        out.decision = d;
        if d != Decision::MeasureMore {
            break;
        }
    }
    if out.decision == Decision::MeasureMore {
        out.decision = Decision::Inconclusive;
    }
    out.candidate = median(&cands);
    out
}

/// When exactly one side meets the SLA (and accuracy floor), that decides.
fn sla_decides(c: &Measurement, i: &Measurement, s: &TuneSettings) -> Option<(Decision, String)> {
    match (c.sla_ok, i.sla_ok) {
        (false, true) => Some((
            Decision::Revert,
            format!(
                "candidate misses the SLA: {}",
                score::sla_violations(c, s).join("; ")
            ),
        )),
        (true, false) => Some((
            Decision::Keep,
            format!(
                "candidate meets the SLA the incumbent misses ({})",
                score::sla_violations(i, s).join("; ")
            ),
        )),
        _ => None,
    }
}

/// The sample with the median objective value.
pub fn median(v: &[Measurement]) -> Option<Measurement> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.value.total_cmp(&b.value));
    s.get(s.len().saturating_sub(1) / 2).cloned()
}
