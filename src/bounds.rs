//! The range of every numeric command-line flag. A number a user types reaches clocks,
//! `Duration`s, allocations and loop counts; each flag here has a range wide enough for any
//! real use and narrow enough that nothing downstream overflows (`--boot-timeout 1e300`
//! panicked converting to a `Duration`, `--concurrency 4294967296` aborted allocating).
//! clap applies these when parsing, so an out-of-range value is a usage error naming the
//! flag, before anything runs. `tests/cli_bounds.rs` walks every flag of every command and
//! fails on a numeric one without a range.

use clap::builder::{RangedU64ValueParser, TypedValueParser, ValueParser};

/// A closed range of finite numbers, parsed from the flag's text.
fn finite(lo: f64, hi: f64, what: &'static str) -> impl Fn(&str) -> Result<f64, String> + Clone {
    move |text: &str| {
        let v: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not a number"))?;
        if v.is_finite() && (lo..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(format!("must be {what} ({lo} to {hi}), got {text}"))
        }
    }
}

/// Like [`finite`], excluding the lower end.
fn above(lo: f64, hi: f64, what: &'static str) -> impl Fn(&str) -> Result<f64, String> + Clone {
    let inner = finite(lo, hi, what);
    move |text: &str| match inner(text)? {
        v if v > lo => Ok(v),
        _ => Err(format!(
            "must be {what} (above {lo}, up to {hi}), got {text}"
        )),
    }
}

/// Seconds a wait may last: above 0, up to 30 days.
pub fn seconds() -> ValueParser {
    ValueParser::new(above(0.0, 30.0 * 86_400.0, "a number of seconds"))
}

/// Hours of a run's budget: above 0, up to a year.
pub fn hours() -> ValueParser {
    ValueParser::new(above(0.0, 8_760.0, "a number of hours"))
}

/// Milliseconds of a delay or a bound: 0 to an hour.
pub fn millis() -> ValueParser {
    ValueParser::new(finite(0.0, 3_600_000.0, "a number of milliseconds"))
}

/// A clock scale (wall seconds per simulated or server second): 0.001 to 1000.
pub fn clock_scale() -> ValueParser {
    ValueParser::new(finite(0.001, 1_000.0, "a clock scale"))
}

/// A percentage, 0 to 100.
pub fn percent() -> ValueParser {
    ValueParser::new(finite(0.0, 100.0, "a percentage"))
}

/// Seconds between reports: 0 (never) up to a day.
pub fn period() -> ValueParser {
    ValueParser::new(finite(0.0, 86_400.0, "a number of seconds, 0 for never"))
}

/// A fraction, 0 to 1.
pub fn fraction() -> ValueParser {
    ValueParser::new(finite(0.0, 1.0, "a fraction"))
}

/// Dollars of spend: 0 to a million.
pub fn dollars() -> ValueParser {
    ValueParser::new(finite(0.0, 1_000_000.0, "a number of US dollars"))
}

/// GiB of disk or memory: 0 to a million.
pub fn gib() -> ValueParser {
    ValueParser::new(finite(0.0, 1_000_000.0, "a number of GiB"))
}

/// A Gamma shape for arrivals (`--burstiness`): 0.001 to 1000.
pub fn burstiness() -> ValueParser {
    ValueParser::new(finite(0.001, 1_000.0, "a Gamma shape"))
}

/// A positive count up to `max`, as `usize`.
pub fn count(min: u64, max: u64) -> impl TypedValueParser<Value = usize> {
    RangedU64ValueParser::<usize>::new().range(min..=max)
}

/// A positive count up to `max`, as `u32`.
pub fn count_u32(min: u64, max: u64) -> impl TypedValueParser<Value = u32> {
    RangedU64ValueParser::<u32>::new().range(min..=max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_refuse_what_would_overflow() {
        let s = above(0.0, 10.0, "a number of seconds");
        assert_eq!(s("2.5"), Ok(2.5));
        for bad in ["0", "-1", "1e300", "nan", "inf", "x", ""] {
            assert!(s(bad).is_err(), "{bad}");
        }
        assert_eq!(
            s("1e300").unwrap_err(),
            "must be a number of seconds (0 to 10), got 1e300"
        );
        assert_eq!(
            s("0").unwrap_err(),
            "must be a number of seconds (above 0, up to 10), got 0"
        );
        let f = finite(0.0, 1.0, "a fraction");
        assert_eq!(f("0"), Ok(0.0));
        assert!(f("1.0000001").is_err());
    }
}
