//! `forge gap --campaign DIR [--target F]`: per scenario, the target framework's best
//! against the best SLA-passing rival, decided by [`super::gap`] from interleaved pairs of
//! the two winners ([`super::duel`]) — or, where only one side meets the SLA, by that.
//! Writes `gap.json` (the decisions with every pair's log ratio) and the `## Gap` section
//! of `final_report.md`; the exit status says the worst scenario's outcome.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::candidate::{Candidate, ranked};
use super::gap::{Gap, by_sla};
use crate::recipe::EngineKind;
use crate::store::write_atomic;

/// `gap.json`.
pub const GAP_FILE: &str = "gap.json";
/// `final_report.md`.
pub const FINAL_REPORT_FILE: &str = "final_report.md";

/// One scenario's decision as `gap.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioGap {
    /// The scenario.
    pub scenario: String,
    /// The target's best SLA-passing candidate, if any.
    pub target_candidate: Option<String>,
    /// The best rival's framework and candidate, if any passes.
    pub leader_framework: Option<String>,
    /// Its candidate.
    pub leader_candidate: Option<String>,
    /// The decision.
    pub gap: Gap,
    /// Each pair's ln(target / leader).
    pub log_ratios: Vec<f64>,
}

/// `gap.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GapFile {
    /// The target framework.
    pub target: String,
    /// Per scenario.
    pub scenarios: Vec<ScenarioGap>,
}

/// Run `forge gap`.
pub async fn run(dir: &Path, target: EngineKind, max_pairs: usize) -> anyhow::Result<ExitCode> {
    let s = super::settings::load(dir)?;
    anyhow::ensure!(
        s.frameworks.contains(&target),
        "--target: {} was not compared in {} ({})",
        target.as_str(),
        dir.display(),
        s.frameworks
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _lock = crate::store::RunLock::acquire(dir)?;
    let (rows, _) = super::gate::done(dir)?;
    let mut searched = Vec::new();
    for &fw in &s.frameworks {
        searched.push((fw, super::search::load(&s, dir, fw)?));
    }
    let mut out = Vec::new();
    for sc in &s.scenarios {
        let t = best(&rows, &sc.name, |f| f == target.as_str());
        let l = best(&rows, &sc.name, |f| f != target.as_str());
        let (gap, log_ratios) = match (t, l, by_sla(t.is_some(), l.is_some())) {
            (_, _, Some(g)) => (g, Vec::new()),
            (Some(t), Some(l), None) => {
                eprintln!(
                    "forge gap: {}: {} against {} in interleaved pairs",
                    sc.name, t.candidate_id, l.candidate_id
                );
                let r = super::duel::duel(&s, dir, sc, t, l, &searched, max_pairs).await?;
                (r.gap, r.log_ratios)
            }
            _ => anyhow::bail!("inconsistent SLA outcome"),
        };
        eprintln!(
            "forge gap: {}: {} {}",
            sc.name,
            target.as_str(),
            gap.describe()
        );
        out.push(ScenarioGap {
            scenario: sc.name.clone(),
            target_candidate: t.map(|c| c.candidate_id.clone()),
            leader_framework: l.map(|c| c.framework.clone()),
            leader_candidate: l.map(|c| c.candidate_id.clone()),
            gap,
            log_ratios,
        });
    }
    let file = GapFile {
        target: target.as_str().into(),
        scenarios: out,
    };
    write_atomic(
        &dir.join(GAP_FILE),
        serde_json::to_string_pretty(&file)?.as_bytes(),
    )?;
    write_section(dir, &section(&file))?;
    crate::term::println(&section(&file))?;
    Ok(ExitCode::from(exit_code(&file)))
}

/// The best SLA-passing row of a scenario among frameworks `keep` accepts.
fn best<'a>(
    rows: &'a [Candidate],
    scenario: &str,
    keep: impl Fn(&str) -> bool,
) -> Option<&'a Candidate> {
    ranked(rows)
        .into_iter()
        .find(|c| c.workload.scenario == scenario && c.eligible() && keep(&c.framework))
}

/// The worst scenario decides: the target failing the SLA where a rival passes, then
/// behind, then unresolved, then nobody passing; 0 when it is ahead or tied everywhere.
pub fn exit_code(f: &GapFile) -> u8 {
    const ORDER: [u8; 4] = [11, 10, 12, 13];
    let codes: Vec<u8> = f.scenarios.iter().map(|s| s.gap.exit_code()).collect();
    ORDER.into_iter().find(|c| codes.contains(c)).unwrap_or(0)
}

/// The `## Gap` section.
pub fn section(f: &GapFile) -> String {
    let mut out = String::from("## Gap\n\n");
    let _ = writeln!(
        out,
        "Target: {}. Each decision comes from interleaved pairs of the two winners (1 % is the noise threshold).\n",
        f.target
    );
    out.push_str(
        "| Scenario | Target candidate | Best rival | Verdict |\n| --- | --- | --- | --- |\n",
    );
    for s in &f.scenarios {
        let rival = match (&s.leader_framework, &s.leader_candidate) {
            (Some(f), Some(c)) => format!("{f} ({c})"),
            _ => "none meets the SLA".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            s.scenario,
            s.target_candidate
                .as_deref()
                .unwrap_or("none meets the SLA"),
            rival,
            s.gap.describe().replace('|', "\\|")
        );
    }
    out
}

/// Put `section` into `final_report.md` in place of an older `## Gap` section (other
/// sections are kept as they are).
pub fn write_section(dir: &Path, section: &str) -> anyhow::Result<()> {
    let path = dir.join(FINAL_REPORT_FILE);
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Final Report\n\n".into());
    write_atomic(&path, replace_section(&old, section).as_bytes())?;
    Ok(())
}

fn replace_section(doc: &str, section: &str) -> String {
    let Some(start) = doc.find("## Gap\n") else {
        let sep = if doc.ends_with("\n\n") { "" } else { "\n" };
        return format!("{doc}{sep}{section}");
    };
    let rest = &doc[start + 1..];
    let end = rest.find("\n## ").map_or(doc.len(), |i| start + 1 + i + 1);
    let gap = if end < doc.len() && !section.ends_with("\n\n") {
        "\n"
    } else {
        ""
    };
    format!("{}{section}{gap}{}", &doc[..start], &doc[end..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Interval;

    fn sg(name: &str, gap: Gap) -> ScenarioGap {
        ScenarioGap {
            scenario: name.into(),
            target_candidate: Some("vllm-e000".into()),
            leader_framework: Some("sglang".into()),
            leader_candidate: Some("sglang-e002".into()),
            gap,
            log_ratios: vec![],
        }
    }

    fn iv(g: f64, lo: f64, hi: f64) -> Interval {
        Interval {
            gain_pct: g,
            lo_pct: lo,
            hi_pct: hi,
            confidence: 0.95,
            pairs: 4,
        }
    }

    #[test]
    fn the_worst_scenario_sets_the_exit_code() {
        let f = |gaps: Vec<Gap>| GapFile {
            target: "vllm".into(),
            scenarios: gaps.into_iter().map(|g| sg("chat", g)).collect(),
        };
        let tied = Gap::Tied {
            interval: iv(0.2, -0.5, 0.9),
        };
        let behind = Gap::Behind {
            interval: iv(-4.0, -5.0, -3.0),
        };
        assert_eq!(exit_code(&f(vec![tied])), 0);
        assert_eq!(exit_code(&f(vec![tied, behind])), 10);
        assert_eq!(exit_code(&f(vec![behind, Gap::TargetFailsSla])), 11);
    }

    #[test]
    fn the_gap_section_replaces_its_old_self_only() {
        let doc = "# Final Report\n\n## Gate\n\nx\n\n## Gap\n\nold\n\n## Rounds\n\ny\n";
        let out = replace_section(doc, "## Gap\n\nnew\n");
        assert_eq!(
            out,
            "# Final Report\n\n## Gate\n\nx\n\n## Gap\n\nnew\n\n## Rounds\n\ny\n"
        );
        let fresh = replace_section("# Final Report\n\n", "## Gap\n\nnew\n");
        assert_eq!(fresh, "# Final Report\n\n## Gap\n\nnew\n");
        let file = GapFile {
            target: "vllm".into(),
            scenarios: vec![sg(
                "chat",
                Gap::Behind {
                    interval: iv(-4.0, -5.0, -3.0),
                },
            )],
        };
        let s = section(&file);
        assert!(
            s.contains(
                "| chat | vllm-e000 | sglang (sglang-e002) | behind by 4.0 % [-5.0, -3.0] %"
            ),
            "{s}"
        );
    }
}
