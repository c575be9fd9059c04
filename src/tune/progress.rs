//! What a person watching `forge tune` sees on stderr: the banner, then one line per row.

use crate::record::{ExperimentRow, Status};

/// One line for a finished row.
pub fn line(r: &ExperimentRow) -> String {
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
        _ => r.measurement.as_ref().map_or(String::new(), |m| {
            format!("{:.1} tok/s", m.output_throughput)
        }),
    };
    format!(
        "exp {exp}  {:<12} {what}  {verdict}  ({:.0} s)",
        r.status.as_str(),
        r.wall_s
    )
}

/// Print a row's line to stderr.
pub fn row(r: &ExperimentRow) {
    eprintln!("{}", line(r));
}
