//! Scoring one measured run: the objective's value, whether it met the SLA (p99 bounds,
//! and under 1 % failed requests), and its accuracy. A run that misses the SLA or the
//! accuracy floor is never better than one that meets them, whatever its raw value.

use crate::bench::metrics::BenchResult;
use crate::record::Measurement;
use crate::record::Objective;
use crate::record::settings::TuneSettings;

/// Largest failed-request share a run may have and still meet the SLA.
pub const MAX_FAILED_SHARE: f64 = 0.01;

/// Score a bench result (accuracy measured separately; `None` = not measured).
pub fn measure(r: &BenchResult, s: &TuneSettings, accuracy: Option<f64>) -> Measurement {
    let mut m = Measurement::from_result(r);
    m.accuracy = accuracy;
    m.value = objective_value(&m, s.objective);
    m.sla_ok = sla_violations(&m, s).is_empty();
    m.sla_slack = Some(sla_slack(&m, s));
    m
}

/// Largest magnitude a slack takes: a run 20× inside or outside a bound tells no more.
const SLACK_CLAMP: f64 = 3.0;

/// How far inside the SLA a run is, as a log ratio: the smallest ln(bound ÷ actual) over
/// the p99 bounds the objective is held to and the failed-request share (> 0 inside, < 0
/// outside, clamped to ±3). A run in which nothing completed is as far outside as it gets.
/// Accuracy is not part of it: it is judged against the incumbent's, in pairs.
pub fn sla_slack(m: &Measurement, s: &TuneSettings) -> f64 {
    let total = m.completed + m.failed;
    if total == 0 || m.completed == 0 {
        return -SLACK_CLAMP;
    }
    let share = m.failed as f64 / total as f64;
    // A share of failures a hundredth of the allowed one counts as fully inside.
    let mut slack = (MAX_FAILED_SHARE / share.max(MAX_FAILED_SHARE / 20.0)).ln();
    if s.objective != Objective::Goodput {
        for (bound, actual) in [
            (s.slo.ttft_ms, m.p99_ttft_ms),
            (s.slo.tpot_ms, m.p99_tpot_ms),
            (s.slo.e2el_ms, m.p99_e2el_ms),
        ] {
            if let Some(b) = bound {
                slack = slack.min((b / actual.max(1e-9)).ln());
            }
        }
    }
    slack.clamp(-SLACK_CLAMP, SLACK_CLAMP)
}

/// The objective's value (higher is better).
pub fn objective_value(m: &Measurement, o: Objective) -> f64 {
    match o {
        Objective::Throughput => m.output_throughput,
        Objective::Goodput => m.goodput.unwrap_or(0.0),
        Objective::Latency => {
            if m.p99_e2el_ms > 0.0 {
                1000.0 / m.p99_e2el_ms
            } else {
                0.0
            }
        }
    }
}

/// Below any positive objective a run can reach (one request within the SLO in 11 days is
/// 1e-6 req/s): where a run's objective is zero it orders under this, by throughput.
const ZERO_OBJECTIVE_CEILING: f64 = 1e-6;

/// The run's objective, or — where that is zero (no request within the SLO) — a number
/// below every positive objective that still orders such runs by their output throughput.
/// (A thousandth of the throughput was used before: tok/s against goodput's req/s, so a
/// run with goodput 0.06 req/s read 80 % *worse* than one with none.)
pub fn ordered_value(m: &Measurement) -> f64 {
    if m.value > 0.0 {
        m.value
    } else {
        let t = m.output_throughput.max(0.0);
        ZERO_OBJECTIVE_CEILING * t / (1.0 + t) + f64::MIN_POSITIVE
    }
}

/// The number two runs are compared by. A run that meets the SLA compares by its
/// objective; one that misses it scores half, times how far it missed each bound
/// (bound ÷ actual for every p99 bound exceeded, accuracy ÷ floor, the share of requests
/// that completed) — so a change that moves toward the SLA is progress even before it gets
/// there. An objective of zero (no request meets the SLO) orders below every positive one,
/// by throughput ([`ordered_value`]).
pub fn comparable(m: &Measurement, s: &TuneSettings) -> f64 {
    let base = ordered_value(m);
    if m.sla_ok && m.value > 0.0 {
        return base;
    }
    base * 0.5 * sla_distance(m, s)
}

/// Π min(1, bound/actual) over the SLA's bounds, accuracy and completed share (1 = met).
fn sla_distance(m: &Measurement, s: &TuneSettings) -> f64 {
    let ratio = |bound: Option<f64>, actual: f64| match bound {
        Some(b) if actual > b && actual > 0.0 => b / actual,
        _ => 1.0,
    };
    let total = (m.completed + m.failed).max(1) as f64;
    let acc = match m.accuracy {
        Some(a) if a < s.accuracy_floor && s.accuracy_floor > 0.0 => a / s.accuracy_floor,
        _ => 1.0,
    };
    ratio(s.slo.ttft_ms, m.p99_ttft_ms)
        * ratio(s.slo.tpot_ms, m.p99_tpot_ms)
        * ratio(s.slo.e2el_ms, m.p99_e2el_ms)
        * acc
        * (m.completed as f64 / total)
}

/// Every SLA bound the run missed, in words.
pub fn sla_violations(m: &Measurement, s: &TuneSettings) -> Vec<String> {
    let mut v = Vec::new();
    let total = m.completed + m.failed;
    if total == 0 || m.completed == 0 {
        v.push("no request completed".to_string());
        return v;
    }
    let share = m.failed as f64 / total as f64;
    if share > MAX_FAILED_SHARE {
        v.push(format!("{:.1} % of requests failed", share * 100.0));
    }
    // Goodput already counts only requests within the SLO per request.
    if s.objective != Objective::Goodput {
        let checks = [
            ("p99 TTFT", m.p99_ttft_ms, s.slo.ttft_ms),
            ("p99 TPOT", m.p99_tpot_ms, s.slo.tpot_ms),
            ("p99 E2EL", m.p99_e2el_ms, s.slo.e2el_ms),
        ];
        for (name, value, bound) in checks {
            if let Some(b) = bound
                && value > b
            {
                v.push(format!("{name} {value:.0} ms > {b:.0} ms"));
            }
        }
    }
    if let Some(a) = m.accuracy
        && a < s.accuracy_floor
    {
        v.push(format!("accuracy {a:.3} < floor {:.3}", s.accuracy_floor));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::Slo;

    fn settings(objective: Objective, slo: Slo) -> TuneSettings {
        let mut s = crate::record::settings::test_settings();
        s.objective = objective;
        s.slo = slo;
        s
    }

    fn m() -> Measurement {
        Measurement {
            output_throughput: 1000.0,
            p99_ttft_ms: 300.0,
            p99_tpot_ms: 20.0,
            p99_e2el_ms: 4000.0,
            completed: 100,
            failed: 0,
            goodput: Some(3.0),
            ..Default::default()
        }
    }

    #[test]
    fn objectives() {
        assert_eq!(objective_value(&m(), Objective::Throughput), 1000.0);
        assert_eq!(objective_value(&m(), Objective::Goodput), 3.0);
        assert_eq!(objective_value(&m(), Objective::Latency), 0.25);
    }

    #[test]
    fn comparable_grades_sla_misses() {
        let s = settings(
            Objective::Throughput,
            Slo {
                ttft_ms: Some(200.0),
                ..Default::default()
            },
        );
        let mut ok = m();
        ok.sla_ok = true;
        ok.value = 1000.0;
        assert_eq!(comparable(&ok, &s), 1000.0);
        // p99 TTFT 300 ms against a 200 ms bound: half, times 200/300.
        let mut miss = m();
        miss.sla_ok = false;
        miss.value = 1000.0;
        assert!((comparable(&miss, &s) - 1000.0 * 0.5 * 2.0 / 3.0).abs() < 1e-9);
        // Closer to the bound scores higher.
        let mut closer = miss.clone();
        closer.p99_ttft_ms = 250.0;
        assert!(comparable(&closer, &s) > comparable(&miss, &s));
        // Zero objective: a thousandth of the throughput keeps runs ordered.
        let mut zero = miss.clone();
        zero.value = 0.0;
        assert!(comparable(&zero, &s) > 0.0);
    }

    #[test]
    fn sla_bounds_failures_and_accuracy() {
        let s = settings(
            Objective::Throughput,
            Slo {
                ttft_ms: Some(200.0),
                ..Default::default()
            },
        );
        assert_eq!(sla_violations(&m(), &s), vec!["p99 TTFT 300 ms > 200 ms"]);
        let s = settings(Objective::Throughput, Slo::default());
        assert!(sla_violations(&m(), &s).is_empty());
        let mut bad = m();
        bad.failed = 2;
        bad.accuracy = Some(0.95);
        let v = sla_violations(&bad, &s);
        assert!(v[0].contains("2.0 % of requests failed"), "{v:?}");
        assert!(v[1].contains("accuracy 0.950 < floor 0.990"), "{v:?}");
        // Exactly 1 % failed is allowed.
        let mut one = m();
        one.completed = 99;
        one.failed = 1;
        assert!(sla_violations(&one, &s).is_empty());
    }
}
