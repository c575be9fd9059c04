//! The campaign's human-facing files, each rewritten atomically from what is recorded:
//! `manifest.md` (what was asked, on what, by which commands), `help/FRAMEWORK.txt` (each
//! engine's help as its search captured it), `benchmark/summary.md` and
//! `benchmark/winning-commands.md` (every framework's best per scenario: its launch
//! command and the benchmarks that reproduce its row, runnable as printed) and
//! `benchmark/report.html` (the same as a page with every candidate charted).

use std::fmt::Write as _;
use std::path::Path;

use super::candidate::{Candidate, best_per_framework};
use super::search::Searched;
use super::settings::CompareSettings;
use super::summary::{self, Note};
use crate::recipe::EngineKind;
use crate::store::write_atomic;

/// `benchmark/summary.md`.
pub const SUMMARY_FILE: &str = "benchmark/summary.md";
/// `benchmark/winning-commands.md`.
pub const WINNING_FILE: &str = "benchmark/winning-commands.md";
/// `manifest.md`.
pub const MANIFEST_FILE: &str = "manifest.md";

/// Write `manifest.md`.
pub fn manifest(
    dir: &Path,
    s: &CompareSettings,
    searches: &[(EngineKind, Vec<String>)],
) -> anyhow::Result<()> {
    let mut m = String::from("# Compare campaign\n\n");
    let _ = writeln!(m, "- Model: `{}`", s.model);
    let _ = writeln!(
        m,
        "- Frameworks: {}",
        s.frameworks
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hw = if s.dry_run {
        format!(
            "simulated {} (dry run: forge's twins, not the real engines)",
            s.sim_gpu.as_deref().unwrap_or("GPU")
        )
    } else {
        format!("this machine ({})", s.device.as_str())
    };
    let _ = writeln!(m, "- Hardware: {hw}");
    let _ = writeln!(m, "- SLA: `{}`", s.sla.spec());
    let _ = writeln!(
        m,
        "- Search budget: {} experiments per framework; {} candidates each into the gate",
        s.budget, s.candidates_per_framework
    );
    let _ = writeln!(
        m,
        "- Rate search: {}–{} req/s, tolerance {:.0} %, at most {} runs; concurrency caps: {}",
        s.rates.lo,
        s.rates.hi,
        s.rates.tolerance * 100.0,
        s.rates.max_runs,
        s.max_concurrency
            .iter()
            .map(|c| c.map_or("none".into(), |c| c.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    m.push_str("\n## Scenarios\n\n| Scenario | Kind | Input | Output | File |\n| --- | --- | ---: | ---: | --- |\n");
    for sc in &s.scenarios {
        let n = |v: Option<u32>| v.map_or("varies".into(), |v| v.to_string());
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} |",
            sc.name,
            sc.kind,
            n(sc.input_len),
            n(sc.output_len),
            sc.path.display()
        );
    }
    m.push_str("\n## Searches\n\nEach framework's own bounded search is a `forge tune` run:\n\n");
    for (fw, cmd) in searches {
        let _ = writeln!(m, "- {}: `{}`", fw.as_str(), super::commands::shell(cmd));
    }
    m.push_str("\n## Files\n\n- `benchmark/candidates.jsonl`: every candidate, failed and SLA-failing ones included\n- `benchmark/summary.md`, `benchmark/winning-commands.md`\n- `help/`: each engine's help as captured\n- `search/FRAMEWORK/`: the searches (forge tune runs); `gate/FRAMEWORK/`: the gate's logs and raw results\n");
    write_atomic(&dir.join(MANIFEST_FILE), m.as_bytes())?;
    Ok(())
}

/// Copy the help each search captured into `help/FRAMEWORK.txt` (a missing one is noted
/// in the file, not an error: a framework that never started has no help).
pub fn help(dir: &Path, fw: EngineKind, searched: &Searched) -> anyhow::Result<()> {
    let src = searched.run.join(crate::engine::probe::HELP_FILE);
    let text = std::fs::read_to_string(&src).unwrap_or_else(|_| {
        format!(
            "(no help captured: {} asks its engine only when it is installed; dry runs use forge's twins)\n",
            fw.display_name()
        )
    });
    let help = dir.join("help");
    std::fs::create_dir_all(&help).map_err(|e| anyhow::anyhow!("{}: {e}", help.display()))?;
    write_atomic(&help.join(format!("{}.txt", fw.as_str())), text.as_bytes())?;
    Ok(())
}

/// Rewrite `summary.md`, `winning-commands.md` and `report.html` from every row so far.
pub fn results(
    dir: &Path,
    s: &CompareSettings,
    rows: &[Candidate],
    notes: &[Note],
) -> anyhow::Result<()> {
    let md = summary::render(rows, notes);
    write_atomic(&dir.join(SUMMARY_FILE), md.as_bytes())?;
    write_atomic(&dir.join(WINNING_FILE), winning(dir, s, rows).as_bytes())?;
    let html = super::html::page(dir, rows, notes, &md);
    write_atomic(&dir.join(super::html::HTML_FILE), html.as_bytes())?;
    Ok(())
}

/// `winning-commands.md`: per scenario, each framework's best SLA-passing candidate.
pub fn winning(dir: &Path, s: &CompareSettings, rows: &[Candidate]) -> String {
    let mut out = String::from("# Winning Commands\n\n");
    out.push_str(
        "Each framework's best candidate per scenario that met the SLA, best first: the \
         command that launches it, then the benchmarks that reproduce its row. Run the launch \
         command, wait until the server answers, then either benchmark.\n",
    );
    for sc in &s.scenarios {
        let _ = write!(out, "\n## {}\n", sc.name);
        let best = best_per_framework(rows, &sc.name, true);
        if best.is_empty() {
            out.push_str("\nNo framework met the SLA in this scenario.\n");
        }
        for (i, c) in best.iter().enumerate() {
            let fw = crate::recipe::EngineKind::parse(&c.framework);
            let _ = write!(
                out,
                "\n### {}. {} — {} ({:.2} req/s, {:.2} output tok/s)\n\n",
                i + 1,
                c.framework,
                c.candidate_id,
                c.metrics.request_throughput.unwrap_or(0.0),
                c.metrics.output_token_throughput.unwrap_or(0.0)
            );
            let _ = write!(out, "Launch:\n\n```sh\n{}\n```\n\n", c.server_command);
            let _ = write!(
                out,
                "Benchmark with forge:\n\n```sh\n{}\n```\n",
                c.benchmark_command
            );
            if let Some(fw) = fw
                && let Some(n) = super::commands::native_bench(
                    s,
                    sc,
                    fw,
                    c.workload.request_rate,
                    c.workload.max_concurrency,
                )
            {
                let _ = write!(
                    out,
                    "\nBenchmark with {}'s own client:\n\n```sh\n{}\n```\n",
                    fw.display_name(),
                    super::commands::shell(&n)
                );
            }
        }
    }
    let _ = dir;
    out
}
