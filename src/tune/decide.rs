//! One keep/revert decision: candidate and incumbent measured in interleaved pairs
//! (C I | I C | C I …, so a running server is reused across the pair boundary and drift
//! cancels), each pair scored, every pair so far judged again after each one
//! ([`super::judge`]), until the verdict is clear or the repeat budget is spent.

use super::accuracy::References;
use super::judge::{Judge, judge, max_pairs};
use super::measure::{Measure, SampleOutput};
use super::score;
use super::verdict::{Decision, Interval, Rule};
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
    /// Log ratios of the pairs the interval rests on.
    pub log_ratios: Vec<f64>,
    /// The measured pairs (candidate, incumbent), in order.
    pub pairs: Vec<(Measurement, Measurement)>,
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
                let mut m = score::measure(&out.result, s, acc);
                m.answers = refs.and_then(|r| r.detail(&out.answers));
                return Ok((m, out));
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

/// Paired comparison of `cand` against `inc`, judged by `j` after every pair.
pub async fn compare(
    m: &mut impl Measure,
    cand: &Recipe,
    inc: &Recipe,
    tag: &str,
    j: &Judge<'_>,
    refs: Option<&References>,
) -> Outcome {
    let s = j.settings;
    let mut out = Outcome::default();
    for k in 0..max_pairs(&j.rule) {
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
                        pair: Some(k),
                    });
                    pair[slot] = Some(meas);
                }
                Err(f) if arm == Arm::Candidate => {
                    out.failure = Some(f);
                    out.finish();
                    return out;
                }
                // The incumbent failing is the machine's fault: this pair is lost.
                Err(_) => {}
            }
        }
        let [Some(c), Some(i)] = pair else { continue };
        if out.add_pair(c, i, j) {
            break;
        }
    }
    out.finish();
    out
}

impl Default for Outcome {
    fn default() -> Outcome {
        Outcome {
            decision: Decision::MeasureMore,
            failure: None,
            interval: None,
            log_ratios: vec![],
            pairs: vec![],
            samples: vec![],
            candidate: None,
            note: None,
            log: None,
        }
    }
}

impl Outcome {
    /// Fold in one measured pair (candidate `c`, incumbent `i`) and judge every pair so
    /// far. True when the comparison is decided.
    pub fn add_pair(&mut self, c: Measurement, i: Measurement, j: &Judge<'_>) -> bool {
        self.pairs.push((c, i));
        let v = judge(&self.pairs, j);
        self.decision = v.decision;
        self.interval = v.interval;
        self.log_ratios = v.log_ratios;
        self.note = v.note;
        self.decision != Decision::MeasureMore
    }

    /// Close the comparison after the last pair: still undecided is inconclusive; the
    /// candidate's measurement is the median of its runs.
    pub fn finish(&mut self) {
        if self.decision == Decision::MeasureMore {
            self.decision = Decision::Inconclusive;
        }
        let cands: Vec<Measurement> = self.pairs.iter().map(|(c, _)| c.clone()).collect();
        self.candidate = median(&cands);
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

/// The sample with the median objective value (the lower middle one of an even count: a
/// measured run, never an interpolation between two).
pub fn median(v: &[Measurement]) -> Option<Measurement> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.value.total_cmp(&b.value));
    crate::stats::median_index(s.len()).and_then(|i| s.get(i).cloned())
}
