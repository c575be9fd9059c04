//! One keep/revert decision: candidate and incumbent measured in interleaved pairs
//! (C I | I C | C I …, so a running server is reused across the pair boundary and drift
//! cancels), each pair scored, the interval recomputed after every pair, and the rule
//! applied until it is clear or the repeat budget is spent.

use super::accuracy::References;
use super::measure::{Measure, SampleOutput};
use super::score;
use super::verdict::{self, Decision, Interval, NoisePool, Rule};
use crate::engine::failure::Failure;
use crate::recipe::Recipe;
use crate::record::settings::TuneSettings;
use crate::record::{Arm, ExperimentRow, Measurement, Sample, Status};

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
    m: &mut impl Measure,
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

/// The decision rule for `s`; a change predicted to gain at least 3× the keep threshold
/// gets twice the pairs before it is called inconclusive.
pub fn rule(s: &TuneSettings, predicted_pct: Option<f64>) -> Rule {
    let big = predicted_pct.is_some_and(|g| g >= 3.0 * s.min_improvement_pct);
    Rule {
        min_improvement_pct: s.min_improvement_pct,
        confidence: 0.95,
        max_pairs: s.max_repeats * if big { 2 } else { 1 },
        min_pairs: 1,
    }
}

/// Which arm runs first in pair `k`: C I | I C | C I …, so a running server is reused
/// across the pair boundary and drift cancels.
pub fn pair_order(k: usize) -> [Arm; 2] {
    if k.is_multiple_of(2) {
        [Arm::Candidate, Arm::Incumbent]
    } else {
        [Arm::Incumbent, Arm::Candidate]
    }
}

/// Paired comparison of `cand` against `inc`.
pub async fn compare(
    m: &mut impl Measure,
    cand: &Recipe,
    inc: &Recipe,
    tag: &str,
    j: &Judge<'_>,
) -> Outcome {
    let (s, refs, pool, rule) = (j.settings, j.refs, j.pool, &j.rule);
    let mut out = Outcome::default();
    let mut cands: Vec<Measurement> = Vec::new();
    for k in 0..rule.max_pairs {
        let mut pair: [Option<Measurement>; 2] = [None, None];
        for arm in pair_order(k) {
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
        if out.add_pair(&c, &i, s, pool, rule) {
            break;
        }
    }
    out.finish(&cands);
    out
}

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            decision: Decision::MeasureMore,
            failure: None,
            interval: None,
            log_ratios: vec![],
            samples: vec![],
            candidate: None,
            note: None,
            log: None,
        }
    }
}

impl Outcome {
    /// Fold in one measured pair (candidate `c`, incumbent `i`): the SLA decides when
    /// exactly one side meets it, otherwise the pair's log ratio joins the interval. True
    /// when the comparison is decided.
    pub fn add_pair(
        &mut self,
        c: &Measurement,
        i: &Measurement,
        s: &TuneSettings,
        pool: &NoisePool,
        rule: &Rule,
    ) -> bool {
        if let Some((d, note)) = sla_decides(c, i, s) {
            self.decision = d;
            self.note = Some(note);
            return true;
        }
        if let Some(lr) = verdict::log_ratio(score::comparable(c, s), score::comparable(i, s)) {
            self.log_ratios.push(lr);
        }
        let (d, iv) = verdict::decide(&self.log_ratios, pool, rule);
        self.interval = iv;
        self.decision = d;
        d != Decision::MeasureMore
    }

    /// Close the comparison after the last pair: still undecided is inconclusive; the
    /// candidate's measurement is the median of its runs `cands`.
    pub fn finish(&mut self, cands: &[Measurement]) {
        if self.decision == Decision::MeasureMore {
            self.decision = Decision::Inconclusive;
        }
        self.candidate = median(cands);
    }

    /// Write the outcome into experiment `exp`'s row; `inc_score` is the incumbent's score
    /// (the candidate's is relative to it).
    pub fn fill(self, row: &mut ExperimentRow, exp: u32, inc_score: f64) {
        row.exp = Some(exp);
        row.samples = self.samples;
        row.log_ratios = self.log_ratios;
        row.interval = self.interval;
        row.engine_log = self.log;
        row.measurement = self.candidate;
        row.score = row
            .interval
            .map(|iv| inc_score * (1.0 + iv.gain_pct / 100.0));
        if let Some(note) = self.note {
            row.rationale = format!("{} [{note}]", row.rationale);
        }
        row.status = match (self.failure, self.decision) {
            (Some(f), _) => {
                row.failure = Some(f);
                Status::Failed
            }
            (None, Decision::Keep) => Status::Kept,
            (None, Decision::Revert) => Status::Reverted,
            (None, _) => Status::Inconclusive,
        };
        if row.status == Status::Kept && row.score.is_none() {
            row.score = Some(inc_score);
        }
    }
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

/// The sample with the median objective value (the lower middle one of an even count: a
/// measured run, never an interpolation between two).
pub fn median(v: &[Measurement]) -> Option<Measurement> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.value.total_cmp(&b.value));
    crate::stats::median_index(s.len()).and_then(|i| s.get(i).cloned())
}
