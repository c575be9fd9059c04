//! `benchmark/summary.md`: the gate's result as the seed's readers expect it — the title,
//! then exactly three sections (`## Best Commands By Framework`, `## Cross-Framework Best
//! Comparison`, `## Failed Or SLA-Failing Candidates`) with the contract's leading columns
//! in order, floats as `%.2f` and `|` escaped inside cells. The cross-framework table ranks
//! by the contract's key; where two winners were re-measured to decide their order, the
//! decision (with its interval) is printed under that scenario's rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::candidate::{Candidate, Status, best_per_framework, ranked};

/// A decision about one scenario's order, printed under its rows ("sglang vs vllm: tied
/// within 1 % [−0.6, +0.8] % (95 % confidence, 6 pairs)").
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    /// The scenario it belongs to.
    pub scenario: String,
    /// The sentence.
    pub text: String,
}

/// Render the whole file.
pub fn render(candidates: &[Candidate], notes: &[Note]) -> String {
    let mut out = String::from("# Benchmark Summary\n\n");
    best_by_framework(&mut out, candidates);
    cross_framework(&mut out, candidates, notes);
    failed(&mut out, candidates);
    out
}

/// Each framework's best candidate per scenario (eligible ones first, so a framework with
/// nothing passing still shows its best attempt).
fn best_by_framework(out: &mut String, candidates: &[Candidate]) {
    out.push_str("## Best Commands By Framework\n");
    let mut by_fw: BTreeMap<&str, Vec<&Candidate>> = BTreeMap::new();
    for c in ranked(candidates) {
        by_fw.entry(c.framework.as_str()).or_default().push(c);
    }
    if by_fw.is_empty() {
        out.push_str("\nNo candidates.\n");
    }
    for (fw, rows) in by_fw {
        let _ = write!(out, "\n### {fw}\n\n");
        out.push_str(
            "| Scenario | Candidate | Status | SLA | Req/s | Output tok/s | Total tok/s | \
             P50 TTFT ms | P50 TPOT ms | Success rate | Request rate | Max concurrency | GPUs | \
             Server command | Artifacts |\n",
        );
        out.push_str(
            "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | \
             ---: | --- | --- |\n",
        );
        for c in best_per_scenario(&rows) {
            let m = &c.metrics;
            let cells = [
                cell(&c.workload.scenario),
                cell(&c.candidate_id),
                c.status.as_str().to_string(),
                sla(c),
                num(m.request_throughput),
                num(m.output_token_throughput),
                num(m.total_token_throughput),
                num(m.p50_ttft_ms),
                num(m.p50_tpot_ms),
                num(m.success_rate),
                if c.status == Status::Ok {
                    rate(c.workload.request_rate)
                } else {
                    String::new()
                },
                c.workload
                    .max_concurrency
                    .map_or("none".into(), |v| v.to_string()),
                c.hardware.gpu_count.to_string(),
                code(&c.server_command),
                cell(&artifacts(c)),
            ];
            row(out, &cells);
        }
    }
}

/// Per scenario: every framework's best, ranked.
fn cross_framework(out: &mut String, candidates: &[Candidate], notes: &[Note]) {
    out.push_str("\n## Cross-Framework Best Comparison\n\n");
    out.push_str(
        "| Scenario | Rank | Framework | Candidate | SLA | Req/s | Output tok/s | P50 TTFT ms | \
         P50 TPOT ms | Success rate | GPUs | Server command |\n",
    );
    out.push_str(
        "| --- | ---: | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    let scenarios: std::collections::BTreeSet<&str> = candidates
        .iter()
        .map(|c| c.workload.scenario.as_str())
        .collect();
    for scenario in scenarios {
        let best = best_per_framework(candidates, scenario, false);
        for (i, c) in best.iter().enumerate() {
            let m = &c.metrics;
            row(
                out,
                &[
                    cell(scenario),
                    (i + 1).to_string(),
                    cell(&c.framework),
                    cell(&c.candidate_id),
                    sla(c),
                    num(m.request_throughput),
                    num(m.output_token_throughput),
                    num(m.p50_ttft_ms),
                    num(m.p50_tpot_ms),
                    num(m.success_rate),
                    c.hardware.gpu_count.to_string(),
                    code(&c.server_command),
                ],
            );
        }
    }
    let mut first = true;
    for n in notes {
        if first {
            out.push('\n');
            first = false;
        }
        let _ = writeln!(out, "- {}: {}", n.scenario, n.text);
    }
}

fn failed(out: &mut String, candidates: &[Candidate]) {
    out.push_str("\n## Failed Or SLA-Failing Candidates\n\n");
    let bad: Vec<&Candidate> = candidates.iter().filter(|c| !c.eligible()).collect();
    if bad.is_empty() {
        out.push_str("None.\n");
        return;
    }
    out.push_str("| Framework | Candidate | Scenario | Status | SLA | Reason |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- |\n");
    for c in bad {
        let reason = if c.failure_reason.is_empty() && !c.sla.passed {
            "no request rate met the SLA".to_string()
        } else {
            c.failure_reason.clone()
        };
        row(
            out,
            &[
                cell(&c.framework),
                cell(&c.candidate_id),
                cell(&c.workload.scenario),
                c.status.as_str().to_string(),
                sla(c),
                cell(&reason),
            ],
        );
    }
}

/// The first (best-ranked) row of each scenario.
fn best_per_scenario<'a>(rows: &[&'a Candidate]) -> Vec<&'a Candidate> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for c in rows {
        if !seen.contains(&c.workload.scenario.as_str()) {
            seen.push(c.workload.scenario.as_str());
            out.push(*c);
        }
    }
    out.sort_by(|a, b| a.workload.scenario.cmp(&b.workload.scenario));
    out
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn sla(c: &Candidate) -> String {
    if c.sla.passed { "pass" } else { "fail" }.to_string()
}

fn num(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{x:.2}"))
        .unwrap_or_default()
}

fn rate(v: Option<f64>) -> String {
    v.map_or("inf".into(), |x| format!("{x:.2}"))
}

/// A table cell: `|` escaped, line breaks as spaces.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A command in a cell, as code: its last line (a launch command that writes a file
/// first — trtllm's YAML — is shown whole in `winning-commands.md`).
fn code(s: &str) -> String {
    let last = s.lines().last().unwrap_or("");
    if last.is_empty() {
        return String::new();
    }
    let shown = format!("`{}`", cell(last).replace('`', "'"));
    if s.lines().count() > 1 {
        format!("{shown} (and the file it reads: see winning-commands.md)")
    } else {
        shown
    }
}

fn artifacts(c: &Candidate) -> String {
    let a = &c.artifacts;
    [a.server_log.as_deref(), a.raw_result.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
}
