//! Playbook rules: `when` a symptom shows, `try` moving these knobs, `why` in one line.
//!
//! Conditions are comparisons joined by `and`: `preemptions > 0`,
//! `peak_running >= max_num_seqs and waiting_peak > 0`, `peak_running < max_num_seqs / 4`.
//! Terms are numbers or names of observed facts ([`FACTS`]); a fact that is not known at
//! decision time (e.g. `slo_ttft_ms` without an SLO) makes the comparison false.

use std::collections::BTreeMap;

use serde_json::Value;

use super::Problem;
use crate::engine::allowlist as knobs;
use crate::recipe::{EngineKind, Layer};

/// Facts a condition may use (observations of the incumbent's runs, the workload, the
/// config and the SLO).
pub const FACTS: &[&str] = &[
    "preemptions",
    "peak_running",
    "waiting_peak",
    "kv_usage_peak",
    "prefix_hit_rate",
    "prefix_share",
    "mean_prompt_tokens",
    "mean_output_tokens",
    "p99_ttft_ms",
    "p99_tpot_ms",
    "p99_e2el_ms",
    "median_ttft_ms",
    "median_tpot_ms",
    "slo_ttft_ms",
    "slo_tpot_ms",
    "slo_e2el_ms",
    "failed",
    "concurrency",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "gpu_memory_gib",
    "cpu_cores",
    "parallel",
    "ctx_size",
    "threads",
    "batch_size",
    "request_rate",
    "max_running_requests",
    "chunked_prefill_size",
    "mem_fraction_static",
    "max_batch_size",
    "max_num_tokens",
    "kv_cache_free_gpu_memory_fraction",
];

/// How a rule wants a knob moved.
#[derive(Debug, Clone, PartialEq)]
pub enum Direction {
    /// To the next larger value in the search space.
    Up,
    /// To the next smaller value.
    Down,
    /// To this value.
    To(Value),
}

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq)]
enum Term {
    Num(f64),
    Fact(String, f64),
}

/// `lhs op rhs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    lhs: Term,
    op: String,
    rhs: Term,
}

/// A conjunction of comparisons.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    /// The source text.
    pub text: String,
    parts: Vec<Comparison>,
}

/// A parsed rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// When it fires.
    pub when: Condition,
    /// Knob moves, with the layer each knob lives in.
    pub moves: Vec<(Layer, String, Direction)>,
    /// Why.
    pub why: String,
}

impl Condition {
    /// Evaluate against observed facts.
    pub fn holds(&self, facts: &BTreeMap<String, f64>) -> bool {
        self.parts
            .iter()
            .all(|c| match (eval(&c.lhs, facts), eval(&c.rhs, facts)) {
                (Some(a), Some(b)) => compare(a, &c.op, b),
                _ => false,
            })
    }
}

fn eval(t: &Term, facts: &BTreeMap<String, f64>) -> Option<f64> {
    match t {
        Term::Num(x) => Some(*x),
        Term::Fact(name, scale) => facts.get(name).map(|v| v * scale),
    }
}

fn compare(a: f64, op: &str, b: f64) -> bool {
    match op {
        ">" => a > b,
        ">=" => a >= b,
        "<" => a < b,
        "<=" => a <= b,
        "==" => (a - b).abs() < 1e-12,
        "!=" => (a - b).abs() >= 1e-12,
        _ => false,
    }
}

/// Parse a condition; `Err` says what is wrong.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let parts = text
        .split(" and ")
        .map(parse_comparison)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Condition {
        text: text.to_string(),
        parts,
    })
}

fn parse_comparison(s: &str) -> Result<Comparison, String> {
    let toks: Vec<&str> = s.split_whitespace().collect();
    let op_at = toks
        .iter()
        .position(|t| matches!(*t, ">" | ">=" | "<" | "<=" | "==" | "!="))
        .ok_or_else(|| format!("`{s}`: no comparison operator (> >= < <= == !=)"))?;
    Ok(Comparison {
        lhs: parse_term(&toks[..op_at])?,
        op: toks[op_at].to_string(),
        rhs: parse_term(&toks[op_at + 1..])?,
    })
}

fn parse_term(toks: &[&str]) -> Result<Term, String> {
    match toks {
        [x] => match x.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(Term::Num(n)),
            Ok(_) => Err(format!("`{x}` is not a finite number")),
            Err(_) => fact(x, 1.0),
        },
        [name, "/", n] | [name, "*", n] => {
            let n: f64 = n
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite())
                .ok_or_else(|| format!("`{n}` is not a finite number"))?;
            if n == 0.0 {
                return Err("division by zero".into());
            }
            fact(name, if toks[1] == "/" { 1.0 / n } else { n })
        }
        _ => Err(format!(
            "`{}`: expected NAME, NUMBER or NAME / NUMBER",
            toks.join(" ")
        )),
    }
}

fn fact(name: &str, scale: f64) -> Result<Term, String> {
    if FACTS.contains(&name) {
        Ok(Term::Fact(name.to_string(), scale))
    } else {
        Err(format!(
            "unknown fact `{name}` (known: {})",
            FACTS.join(", ")
        ))
    }
}

fn parse_direction(v: &Value) -> Direction {
    match v.as_str() {
        Some("up") => Direction::Up,
        Some("down") => Direction::Down,
        _ => Direction::To(v.clone()),
    }
}

/// Parse the Rules block, checking every knob against the search space.
pub(super) fn parse_rules(
    v: &Value,
    first_line: usize,
    text: &str,
    engine: EngineKind,
    space: &BTreeMap<Layer, BTreeMap<String, Vec<Value>>>,
    problems: &mut Vec<Problem>,
) -> Vec<Rule> {
    let Some(list) = v.as_array() else {
        problems.push(Problem {
            line: first_line,
            item: "rules".into(),
            why: "expected a list of {when, try, why}".into(),
        });
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut from = first_line;
    // Lines once: a search from the start for each rule made 20,000 rules take 8 s.
    let lines: Vec<&str> = text.lines().collect();
    for (i, r) in list.iter().enumerate() {
        let item = format!("rules[{i}]");
        let when_text = r.get("when").and_then(Value::as_str).unwrap_or_default();
        let line = next_rule_line(&lines, from);
        from = line + 1;
        let when = match parse_condition(when_text) {
            Ok(c) => c,
            Err(why) => {
                problems.push(Problem {
                    line,
                    item: format!("{item}.when"),
                    why,
                });
                continue;
            }
        };
        let moves = parse_moves(r, &item, line, engine, space, problems);
        let why = r
            .get("why")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if why.is_empty() {
            problems.push(Problem {
                line,
                item: format!("{item}.why"),
                why: "missing: say why the rule helps".into(),
            });
        }
        out.push(Rule { when, moves, why });
    }
    out
}

/// The 1-based line of the first `- when:` at or after line `from`.
fn next_rule_line(lines: &[&str], from: usize) -> usize {
    lines
        .iter()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, l)| l.trim_start().starts_with("- when:") || l.contains(" - when:"))
        .map_or(from, |(i, _)| i + 1)
}

fn parse_moves(
    r: &Value,
    item: &str,
    line: usize,
    engine: EngineKind,
    space: &BTreeMap<Layer, BTreeMap<String, Vec<Value>>>,
    problems: &mut Vec<Problem>,
) -> Vec<(Layer, String, Direction)> {
    let Some(obj) = r.get("try").and_then(Value::as_object) else {
        problems.push(Problem {
            line,
            item: format!("{item}.try"),
            why: "expected a mapping knob → up|down|value".into(),
        });
        return Vec::new();
    };
    let mut moves = Vec::new();
    for (knob, dir) in obj {
        let layer = space
            .iter()
            .find(|(_, k)| k.contains_key(knob))
            .map(|(l, _)| *l);
        match layer {
            Some(l) => {
                let d = parse_direction(dir);
                if let Direction::To(v) = &d
                    && let Err(e) = knobs::check(engine, l, knob, v)
                {
                    problems.push(Problem {
                        line,
                        item: format!("{item}.try.{knob}"),
                        why: e.why,
                    });
                    continue;
                }
                moves.push((l, knob.clone(), d));
            }
            None => problems.push(Problem {
                line,
                item: format!("{item}.try.{knob}"),
                why: "knob is not in the search space".into(),
            }),
        }
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn conditions_evaluate() {
        let c = parse_condition("peak_running < max_num_seqs / 4 and waiting_peak == 0").unwrap();
        assert!(c.holds(&facts(&[
            ("peak_running", 10.0),
            ("max_num_seqs", 256.0),
            ("waiting_peak", 0.0)
        ])));
        assert!(!c.holds(&facts(&[
            ("peak_running", 100.0),
            ("max_num_seqs", 256.0),
            ("waiting_peak", 0.0)
        ])));
        // Unknown-at-runtime facts make the rule not fire.
        let c = parse_condition("p99_ttft_ms > slo_ttft_ms").unwrap();
        assert!(!c.holds(&facts(&[("p99_ttft_ms", 900.0)])));
        assert!(c.holds(&facts(&[("p99_ttft_ms", 900.0), ("slo_ttft_ms", 500.0)])));
    }

    #[test]
    fn condition_errors() {
        assert!(
            parse_condition("preemptions")
                .unwrap_err()
                .contains("no comparison operator")
        );
        assert!(
            parse_condition("gremlins > 0")
                .unwrap_err()
                .contains("unknown fact `gremlins`")
        );
        assert!(
            parse_condition("max_num_seqs / 0 > 1")
                .unwrap_err()
                .contains("division by zero")
        );
    }
}
