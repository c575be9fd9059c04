//! The gate's service-level agreement: the bounds every framework's candidates are held to
//! (`--sla p50_ttft_ms=1500,p50_tpot_ms=30,success_rate=0.99`), whether one measured run
//! meets them, and by how much — the log slack the rate search steers by.
//!
//! Keys and defaults are the campaign contract's (`max_p50_ttft_ms`, `max_p50_tpot_ms`,
//! `min_success_rate`, optional `max_p50_e2e_ms`; the cookbook's 1500 ms, 30 ms, 0.99).
//! The short spellings without `max_`/`min_` are accepted on the command line.

use serde::{Deserialize, Serialize};

use crate::bench::metrics::BenchResult;

/// The bounds a candidate must meet at a request rate to count.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    /// Median time to first token, at most (ms).
    pub max_p50_ttft_ms: Option<f64>,
    /// Median time per output token, at most (ms).
    pub max_p50_tpot_ms: Option<f64>,
    /// Share of requests that must succeed.
    pub min_success_rate: f64,
    /// Median end-to-end latency, at most (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_p50_e2e_ms: Option<f64>,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            max_p50_ttft_ms: Some(1500.0),
            max_p50_tpot_ms: Some(30.0),
            min_success_rate: 0.99,
            max_p50_e2e_ms: None,
        }
    }
}

/// A bad `--sla` value, in words that name the key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("--sla: {0}")]
pub struct SlaError(String);

/// What the SLA makes of one run's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Median TTFT, ms.
    pub p50_ttft_ms: f64,
    /// Median TPOT, ms.
    pub p50_tpot_ms: f64,
    /// Median end-to-end latency, ms.
    pub p50_e2e_ms: f64,
    /// Completed / sent.
    pub success_rate: f64,
}

impl Figures {
    /// The figures of a benchmark result.
    pub fn of(r: &BenchResult) -> Figures {
        let sent = r.completed + r.failed;
        Figures {
            p50_ttft_ms: r.median_ttft_ms,
            p50_tpot_ms: r.median_tpot_ms,
            p50_e2e_ms: r.median_e2el_ms,
            success_rate: if sent == 0 {
                0.0
            } else {
                r.completed as f64 / sent as f64
            },
        }
    }
}

impl Sla {
    /// Parse `key=value,…` over the defaults: any subset, any order; `none` drops a latency
    /// bound (`p50_tpot_ms=none`).
    pub fn parse(text: &str) -> Result<Sla, SlaError> {
        let mut sla = Sla::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| SlaError(format!("`{part}` is not key=value")))?;
            let (key, value) = (key.trim(), value.trim());
            let slot = match key {
                "p50_ttft_ms" | "max_p50_ttft_ms" | "ttft_ms" => &mut sla.max_p50_ttft_ms,
                "p50_tpot_ms" | "max_p50_tpot_ms" | "tpot_ms" => &mut sla.max_p50_tpot_ms,
                "p50_e2e_ms" | "max_p50_e2e_ms" | "e2e_ms" => &mut sla.max_p50_e2e_ms,
                "success_rate" | "min_success_rate" => {
                    sla.min_success_rate = parse_rate(value)?;
                    continue;
                }
                other => {
                    return Err(SlaError(format!(
                        "unknown key `{other}` (p50_ttft_ms, p50_tpot_ms, p50_e2e_ms, success_rate)"
                    )));
                }
            };
            *slot = parse_ms(key, value)?;
        }
        Ok(sla)
    }

    /// The SLA as `--sla` would take it back.
    pub fn spec(&self) -> String {
        let ms = |k: &str, v: Option<f64>| match v {
            Some(v) => format!("{k}={}", trim(v)),
            None => format!("{k}=none"),
        };
        let mut parts = vec![
            ms("p50_ttft_ms", self.max_p50_ttft_ms),
            ms("p50_tpot_ms", self.max_p50_tpot_ms),
            format!("success_rate={}", trim(self.min_success_rate)),
        ];
        if self.max_p50_e2e_ms.is_some() {
            parts.push(ms("p50_e2e_ms", self.max_p50_e2e_ms));
        }
        parts.join(",")
    }

    /// The log slack of each bound (`ln(bound / value)` for a latency, `ln(value / bound)`
    /// for the success rate): positive inside the bound, negative outside. A run with no
    /// successful request has slack −∞ on every bound.
    pub fn slacks(&self, f: &Figures) -> Vec<(&'static str, f64)> {
        let lat = |bound: Option<f64>, v: f64| {
            bound.map(|b| {
                if v.is_finite() && v > 0.0 {
                    (b / v).ln()
                } else if v == 0.0 && f.success_rate > 0.0 {
                    f64::INFINITY
                } else {
                    f64::NEG_INFINITY
                }
            })
        };
        let mut out = Vec::with_capacity(4);
        if let Some(s) = lat(self.max_p50_ttft_ms, f.p50_ttft_ms) {
            out.push(("p50_ttft_ms", s));
        }
        if let Some(s) = lat(self.max_p50_tpot_ms, f.p50_tpot_ms) {
            out.push(("p50_tpot_ms", s));
        }
        if let Some(s) = lat(self.max_p50_e2e_ms, f.p50_e2e_ms) {
            out.push(("p50_e2e_ms", s));
        }
        let success = if f.success_rate > 0.0 {
            (f.success_rate / self.min_success_rate).ln()
        } else {
            f64::NEG_INFINITY
        };
        out.push(("success_rate", success));
        out
    }

    /// The tightest bound: its name and slack (the run passes when the slack is ≥ 0).
    pub fn worst(&self, f: &Figures) -> (&'static str, f64) {
        self.slacks(f)
            .into_iter()
            .fold(("success_rate", f64::INFINITY), |a, b| {
                if b.1 < a.1 { b } else { a }
            })
    }

    /// The run meets every bound.
    pub fn passes(&self, f: &Figures) -> bool {
        self.worst(f).1 >= 0.0
    }
}

fn parse_ms(key: &str, value: &str) -> Result<Option<f64>, SlaError> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    match value.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Some(v)),
        _ => Err(SlaError(format!(
            "{key}: `{value}` is not a positive number of ms (or `none`)"
        ))),
    }
}

fn parse_rate(value: &str) -> Result<f64, SlaError> {
    match value.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        _ => Err(SlaError(format!(
            "success_rate: `{value}` is not a share in (0, 1]"
        ))),
    }
}

fn trim(v: f64) -> String {
    let s = format!("{v}");
    s.strip_suffix(".0").map(str::to_string).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figs(ttft: f64, tpot: f64, ok: f64) -> Figures {
        Figures {
            p50_ttft_ms: ttft,
            p50_tpot_ms: tpot,
            p50_e2e_ms: ttft + tpot * 100.0,
            success_rate: ok,
        }
    }

    #[test]
    fn defaults_are_the_cookbooks() {
        let s = Sla::parse("").unwrap();
        assert_eq!(s, Sla::default());
        assert_eq!(
            s.spec(),
            "p50_ttft_ms=1500,p50_tpot_ms=30,success_rate=0.99"
        );
        assert_eq!(Sla::parse(&s.spec()).unwrap(), s);
    }

    #[test]
    fn parses_every_spelling_and_none() {
        let s =
            Sla::parse("max_p50_ttft_ms=800, tpot_ms=none,min_success_rate=0.95,p50_e2e_ms=20000")
                .unwrap();
        assert_eq!(s.max_p50_ttft_ms, Some(800.0));
        assert_eq!(s.max_p50_tpot_ms, None);
        assert_eq!(s.min_success_rate, 0.95);
        assert_eq!(s.max_p50_e2e_ms, Some(20000.0));
        assert_eq!(Sla::parse(&s.spec()).unwrap(), s);
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, needle) in [
            ("p50_ttft_ms=-3", "p50_ttft_ms: `-3`"),
            ("p50_ttft_ms", "not key=value"),
            ("p99_ttft_ms=3", "unknown key `p99_ttft_ms`"),
            ("success_rate=1.5", "success_rate: `1.5`"),
            ("p50_tpot_ms=abc", "p50_tpot_ms: `abc`"),
        ] {
            let e = Sla::parse(text).unwrap_err().to_string();
            assert!(
                e.starts_with("--sla: ") && e.contains(needle),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn slack_is_positive_inside_and_names_the_tightest_bound() {
        let s = Sla::default();
        assert!(s.passes(&figs(1000.0, 20.0, 1.0)));
        let (k, v) = s.worst(&figs(1000.0, 40.0, 1.0));
        assert_eq!(k, "p50_tpot_ms");
        assert!((v - (30.0f64 / 40.0).ln()).abs() < 1e-12);
        assert!(!s.passes(&figs(1000.0, 20.0, 0.98)));
        assert_eq!(s.worst(&figs(0.0, 0.0, 0.0)).1, f64::NEG_INFINITY);
        // Exactly on the bound passes.
        assert!(s.passes(&figs(1500.0, 30.0, 0.99)));
    }
}
