//! What a person watching `forge tune` sees on stderr: the banner, then one line per row —
//! what changed, the verdict with its interval, the objective actually tuned (tok/s,
//! goodput or p99 latency) and, when it can decide anything, how often the SLA was met.

use crate::record::settings::TuneSettings;
use crate::record::{Arm, ExperimentRow, Measurement, Objective, Status};

/// One line for a finished row of a run with settings `s`.
pub fn line(r: &ExperimentRow, s: &TuneSettings) -> String {
    let exp = r
        .exp
        .map_or_else(|| "  -".to_string(), |e| format!("{e:3}"));
    let changes: Vec<String> = r.changes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let what = if changes.is_empty() {
        r.rationale.chars().take(70).collect()
    } else {
        changes.join(" ")
    };
    let verdict = match (&r.interval, &r.failure) {
        (_, Some(f)) if r.status == Status::Failed => format!(
            "{} ({})",
            f.class.as_str(),
            f.summary.chars().take(80).collect::<String>()
        ),
        (Some(iv), _) => format!(
            "{:+.1}% [{:+.1}, {:+.1}] over {} pair(s)",
            iv.gain_pct, iv.lo_pct, iv.hi_pct, iv.pairs
        ),
        _ => r
            .measurement
            .as_ref()
            .map_or(String::new(), |m| objective(m, s)),
    };
    format!(
        "exp {exp}  {:<12} {what}  {verdict}{}  ({:.0} s)",
        r.status.as_str(),
        sla(r, s),
        r.wall_s
    )
}

/// The objective of one run, in its units.
pub fn objective(m: &Measurement, s: &TuneSettings) -> String {
    match s.objective {
        Objective::Throughput => format!("{:.1} tok/s", m.output_throughput),
        Objective::Goodput => format!("{:.2} req/s within the SLO", m.goodput.unwrap_or(0.0)),
        Objective::Latency => format!("p99 E2EL {:.0} ms", m.p99_e2el_ms),
    }
}

/// ` · SLA met 4/4 (incumbent 2/4)`: the runs of each side inside the SLA, shown when the
/// run has bounds or a run missed one.
fn sla(r: &ExperimentRow, s: &TuneSettings) -> String {
    let count = |arm: Option<Arm>| -> (usize, usize) {
        let ms: Vec<&Measurement> = r
            .samples
            .iter()
            .filter(|x| arm.is_none_or(|a| x.arm == a) || r.status == Status::Baseline)
            .map(|x| &x.m)
            .collect();
        let met = ms.iter().filter(|m| m.met_sla()).count();
        (met, ms.len())
    };
    let bounds = !s.slo.is_empty() && s.objective != Objective::Goodput;
    let (cm, cn) = count((r.status != Status::Baseline).then_some(Arm::Candidate));
    let (im, inn) = count(Some(Arm::Incumbent));
    let missed = cm < cn || (r.status != Status::Baseline && im < inn);
    if cn == 0 || !(bounds || missed) {
        return String::new();
    }
    if r.status == Status::Baseline {
        return format!(" · SLA met {cm}/{cn}");
    }
    format!(" · SLA met {cm}/{cn} (incumbent {im}/{inn})")
}

/// Print a row's line to stderr.
pub fn row(r: &ExperimentRow, s: &TuneSettings) {
    eprintln!("{}", line(r, s));
}
