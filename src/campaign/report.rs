//! The campaign's human-facing files, each rewritten atomically from the ledger:
//! `benchmark/summary.md` and `benchmark/winning-commands.md` (the fixed benchmark of round
//! 1 and the latest, with every command runnable as printed), `checkpoint.md` (where the
//! campaign stands, after every attempt), `analysis/root-cause.md` for a round that could
//! not be profiled, and `final_report.md` (the result, both benchmark tables, winner
//! commands, kept patches, changed files, the checks run, and the path of every artifact).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::attempt::{Build, Executor};
use super::gap::Decision;
use super::ledger::{self, Event, Ledger, Outcome};
use super::settings::Settings;
use crate::patch::git;

/// `benchmark/`.
pub const BENCHMARK_DIR: &str = "benchmark";
/// The checkpoint.
pub const CHECKPOINT_FILE: &str = "checkpoint.md";
/// The final report.
pub const FINAL_REPORT_FILE: &str = "final_report.md";

/// The label every report of a flow check carries.
fn flow_label(s: &Settings) -> String {
    if s.flow_check {
        format!(
            "> **Flow check**: {} on this machine against {} — a check that the campaign's \
             machinery works end to end (gap, patch, build, answers, measure, keep or revert, \
             resume), not a benchmark of serving frameworks.\n\n",
            s.target.name(),
            s.leader_name
        )
    } else {
        String::new()
    }
}

fn load_line(s: &Settings) -> String {
    let l = &s.load;
    format!(
        "Load: {} concurrent requests × {} output tokens per measurement (prompts: {}, {}); \
         answers at temperature 0, {} tokens each, on {} prompts.\n\n",
        l.concurrent,
        l.output_tokens,
        l.prompts.len(),
        l.prompts_from,
        l.answer_tokens,
        l.prompts.len()
    )
}

/// The gap's tie threshold and this machine's measured noise beside it.
fn threshold_line(s: &Settings, ledger: &Ledger) -> String {
    let t = s.tie_threshold_pct;
    let contract = crate::compare::gap::THRESHOLD_PCT;
    let mut line = if (t - contract).abs() < 1e-9 {
        format!("Tie threshold: ±{t} % (the contract's).")
    } else {
        format!("Tie threshold: ±{t} % (set for this machine; the contract's is ±{contract} %).")
    };
    let sigma = super::verdict::noise_pool(ledger).sigma() * 100.0;
    let _ = write!(
        line,
        " This machine's paired measurements vary by σ ≈ {sigma:.1} % per pair"
    );
    if sigma > t {
        let _ = write!(
            line,
            " — more than the threshold: a tie within ±{t} % needs many pairs or a quieter machine"
        );
    }
    line.push_str(".\n\n");
    line
}

/// A command line as one shell-quoted string.
fn shell(argv: &[String]) -> String {
    shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "))
}

/// The table of one gap decision: target and leader with their means.
fn table(s: &Settings, d: &Decision, commit: &str, exec: &impl Executor) -> String {
    let (t, l) = d.means();
    let mut out = String::from(
        "| Framework | Build | Output tok/s (mean) | Pairs | Gap to the leader | Server command |\n\
         | --- | --- | ---: | ---: | --- | --- |\n",
    );
    let _ = writeln!(
        out,
        "| {} | {} | {t:.2} | {} | {} | `{}` |",
        s.target.name(),
        git::short(commit),
        d.pairs.len(),
        cell(&d.describe()),
        cell(&shell(&exec.command(Some(Build::Base))))
    );
    let _ = writeln!(
        out,
        "| {} | stock | {l:.2} | {} | leader | `{}` |",
        s.leader_name,
        d.pairs.len(),
        cell(&shell(&exec.command(None)))
    );
    out
}

/// The rounds' decisions: the first (the fixed benchmark) and the last.
fn decisions(ledger: &Ledger) -> Vec<(u32, &str, &Decision)> {
    ledger
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RoundStarted {
                round,
                commit,
                decision: Some(d),
                ..
            } => Some((*round, commit.as_str(), d)),
            _ => None,
        })
        .collect()
}

/// `benchmark/summary.md` and `benchmark/winning-commands.md`.
pub fn benchmark(
    dir: &Path,
    s: &Settings,
    ledger: &Ledger,
    exec: &impl Executor,
) -> anyhow::Result<()> {
    let mut md = format!(
        "# Benchmark Summary\n\n{}{}{}",
        flow_label(s),
        load_line(s),
        threshold_line(s, ledger)
    );
    md.push_str(&tables(s, ledger, exec));
    let b = dir.join(BENCHMARK_DIR);
    write(&b.join("summary.md"), md.as_bytes())?;
    let cmds = format!(
        "# Winning commands\n\n{}## {} (the campaign's current build)\n\n```sh\n{}\n```\n\n## {}\n\n```sh\n{}\n```\n",
        flow_label(s),
        s.target.name(),
        shell(&exec.command(Some(Build::Base))),
        s.leader_name,
        shell(&exec.command(None))
    );
    write(&b.join("winning-commands.md"), cmds.as_bytes())?;
    Ok(())
}

/// The fixed-benchmark and post-patch tables.
fn tables(s: &Settings, ledger: &Ledger, exec: &impl Executor) -> String {
    let all = decisions(ledger);
    let mut md = String::new();
    if let Some((r, c, d)) = all.first() {
        let _ = write!(
            md,
            "## Fixed benchmark (round {r}, the campaign's start)\n\n{}\n",
            table(s, d, c, exec)
        );
    }
    if let Some((r, c, d)) = all.last().filter(|_| all.len() > 1) {
        let _ = write!(
            md,
            "## Post-patch benchmark (round {r})\n\n{}\n",
            table(s, d, c, exec)
        );
    }
    md
}

/// `analysis/root-cause.md` for a round without profiles: the measured gap and why.
pub fn root_cause_unprofiled(
    dir: &Path,
    s: &Settings,
    round: u32,
    d: &Decision,
    why: &str,
) -> anyhow::Result<()> {
    let (t, l) = d.means();
    let mut md = format!("# Root cause (round {round})\n\n{}", flow_label(s));
    let _ = writeln!(md, "No profile: {why}.\n");
    let _ = writeln!(
        md,
        "Measured gap: {} {} ({} at {t:.2} output tok/s, {} at {l:.2}, {} interleaved pairs).",
        s.target.name(),
        d.describe(),
        s.target.name(),
        s.leader_name,
        d.pairs.len()
    );
    let path = dir
        .join(super::analysis::ANALYSIS_DIR)
        .join(super::analysis::ROOT_CAUSE_FILE);
    write(&path, md.as_bytes())?;
    Ok(())
}

/// `checkpoint.md`: where the campaign stands (`next`: what the next attempt tries).
pub fn checkpoint(
    dir: &Path,
    s: &Settings,
    ledger: &Ledger,
    exec: &impl Executor,
    next: Option<String>,
) -> anyhow::Result<()> {
    let head = git::head(&s.source).unwrap_or_default();
    let mut md = format!("# Campaign checkpoint\n\n{}", flow_label(s));
    let _ = writeln!(
        md,
        "Resume with `forge campaign resume {}`.\n",
        dir.display()
    );
    let _ = writeln!(md, "- Model: `{}`", s.model);
    let _ = writeln!(
        md,
        "- Target: {} at `{}`",
        s.target.name(),
        s.source.display()
    );
    let _ = writeln!(
        md,
        "- Branch `{}`: {} (started at {})",
        s.branch,
        git::short(&head),
        git::short(&s.start_commit)
    );
    let _ = writeln!(
        md,
        "- Competitor: {} — `{}`",
        s.leader_name,
        shell(&exec.command(None))
    );
    let _ = writeln!(md, "- {}", load_line(s).trim_end());
    let _ = writeln!(
        md,
        "- Round {}; campaign time {:.1} min; LLM spend ${:.2}",
        ledger.round(),
        ledger.secs() / 60.0,
        ledger.spent_usd()
    );
    if let Some(d) = ledger.decision(None) {
        let _ = writeln!(md, "- Current gap: {}", d.describe());
    }
    let kept: Vec<String> = ledger
        .attempts()
        .filter(|a| a.outcome == Outcome::Kept)
        .map(|a| {
            format!(
                "{} ({}, {})",
                a.id,
                a.commit.as_deref().map_or("—", git::short),
                a.gain.map_or_else(String::new, |g| format!(
                    "{:+.1} % [{:+.1}, {:+.1}]",
                    g.pct, g.lo, g.hi
                ))
            )
        })
        .collect();
    let _ = writeln!(md, "- Patches kept: {}", or_none(&kept));
    let others: Vec<String> = ledger
        .attempts()
        .filter(|a| a.outcome != Outcome::Kept)
        .map(|a| format!("{} {}", a.id, a.outcome.code()))
        .collect();
    let _ = writeln!(md, "- Rejected attempts: {}", or_none(&others));
    match (ledger.stopped(), next) {
        (Some(why), _) => {
            let _ = writeln!(md, "- Stopped: {why}");
        }
        (None, Some(n)) => {
            let _ = writeln!(md, "- Next: {n}");
        }
        (None, None) => {}
    }
    write(&dir.join(CHECKPOINT_FILE), md.as_bytes())?;
    super::html::write(dir, s, ledger)?;
    Ok(())
}

/// `final_report.md`.
pub fn final_report(
    dir: &Path,
    s: &Settings,
    ledger: &Ledger,
    exec: &impl Executor,
) -> anyhow::Result<()> {
    let stop = super::stop::stopped(ledger);
    let reached = stop.as_ref().is_some_and(|x| x.code.reached());
    let mut md = format!(
        "# Final report — {} campaign on `{}`\n\n{}",
        s.target.name(),
        s.model,
        flow_label(s)
    );
    let _ = writeln!(
        md,
        "**{} reached the best: {}.** {}\n",
        s.target.name(),
        if reached { "yes" } else { "no" },
        stop.as_ref().map_or(String::new(), |x| format!(
            "Stopped ({}): {}",
            x.code.as_str(),
            x.reason
        ))
    );
    md.push_str(&load_line(s));
    md.push_str(&threshold_line(s, ledger));
    md.push_str(&gate_section(s));
    md.push_str(&tables(s, ledger, exec));
    let _ = write!(
        md,
        "## Winner commands\n\n```sh\n# {}\n{}\n# {}\n{}\n```\n\n",
        s.target.name(),
        shell(&exec.command(Some(Build::Base))),
        s.leader_name,
        shell(&exec.command(None))
    );
    md.push_str(&kept_section(ledger));
    md.push_str(&changed_section(s));
    md.push_str(&checks_section(s, ledger));
    md.push_str(&paths_section(dir, ledger));
    let stems = super::html::write(dir, s, ledger)?;
    if !stems.is_empty() {
        md.push_str("\n## Charts\n\nAlso in `report.html`, with the ledgers.\n\n");
        for stem in stems {
            let _ = writeln!(md, "![{stem}]({}/{stem}.svg)\n", super::html::CHARTS_DIR);
        }
    }
    write(&dir.join(FINAL_REPORT_FILE), md.as_bytes())?;
    Ok(())
}

/// The fair gate the campaign started from, if any: its table and its decision.
fn gate_section(s: &Settings) -> String {
    let Some(g) = &s.gate else {
        return String::new();
    };
    format!(
        "## Gate (`{}`, scenario `{}`)\n\nEach framework's best deployment in the gate; \
         its decision for {}: {} ({} against {}). The campaign serves the target with that \
         candidate's flags{} and the leader with {}'s command as the gate launched it.\n\n{}\n\n",
        g.dir.display(),
        g.scenario,
        s.target.name(),
        g.decision,
        g.target_candidate
            .as_deref()
            .unwrap_or("no SLA-passing target candidate"),
        g.leader_candidate,
        if g.target_args.is_empty() {
            String::new()
        } else {
            format!(" (`{}`)", g.target_args.join(" "))
        },
        g.leader_candidate,
        g.table
    )
}

fn kept_section(ledger: &Ledger) -> String {
    let mut md = String::from("## Patches kept\n\n");
    let kept: Vec<_> = ledger
        .attempts()
        .filter(|a| a.outcome == Outcome::Kept)
        .collect();
    if kept.is_empty() {
        md.push_str("None.\n\n");
        return md;
    }
    md.push_str("| Attempt | Patch | Commit | Gain [95 % interval] | Files |\n| --- | --- | --- | --- | --- |\n");
    for a in kept {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} |",
            a.id,
            a.patch.display(),
            a.commit.as_deref().map_or("—", git::short),
            a.gain.map_or("—".into(), |g| format!(
                "{:+.1} % [{:+.1}, {:+.1}]",
                g.pct, g.lo, g.hi
            )),
            cell(&a.files.join(", "))
        );
    }
    md.push('\n');
    md
}

fn changed_section(s: &Settings) -> String {
    let mut md = String::from("## Changed files (campaign start → now)\n\n");
    let head = git::head(&s.source).unwrap_or_default();
    match git::changed_files(&s.source, &s.start_commit, &head) {
        Ok(f) if f.is_empty() => md.push_str("None.\n\n"),
        Ok(f) => {
            for x in f {
                let _ = writeln!(md, "- `{x}`");
            }
            md.push('\n');
        }
        Err(e) => {
            let _ = writeln!(md, "Unknown: {e}\n");
        }
    }
    md
}

fn checks_section(s: &Settings, ledger: &Ledger) -> String {
    let mut md = format!(
        "## Checks run\n\nEvery attempt that built had its answers to the {} reference prompts \
         (temperature 0) compared with the base's and with the base's own rerun, then was \
         measured against its base in interleaved pairs.\n\n| Attempt | Outcome | Why |\n| --- | --- | --- |\n",
        s.load.prompts.len()
    );
    for a in ledger.attempts() {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            a.id,
            a.outcome.code(),
            cell(&a.reason)
        );
    }
    md.push('\n');
    md
}

/// Every artifact's path (relative to the campaign directory); each exists.
fn paths_section(dir: &Path, ledger: &Ledger) -> String {
    let mut paths: Vec<PathBuf> = vec![
        PathBuf::from(CHECKPOINT_FILE),
        Path::new(BENCHMARK_DIR).join("summary.md"),
        Path::new(BENCHMARK_DIR).join("winning-commands.md"),
    ];
    let analysed = decisions(ledger)
        .iter()
        .any(|(_, _, d)| matches!(d.gap, crate::compare::gap::Gap::Behind { .. }));
    if analysed {
        paths.push(Path::new(super::analysis::ANALYSIS_DIR).join(super::analysis::ROOT_CAUSE_FILE));
    }
    for f in [
        ledger::ATTEMPTS_FILE,
        ledger::OPTIMIZATIONS_FILE,
        ledger::IDEAS_FILE,
        ledger::LINEAGE_FILE,
    ] {
        paths.push(Path::new(ledger::LEDGERS_DIR).join(f));
    }
    for e in &ledger.events {
        if let Event::Profiled { paths: p, .. } = e {
            paths.extend(p.iter().cloned());
        }
    }
    for a in ledger.attempts() {
        paths.push(a.patch.clone());
        paths.extend(a.log.iter().cloned());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut md = String::from("## Paths\n\n");
    for p in paths {
        if seen.insert(p.clone()) {
            let missing = if dir.join(&p).exists() {
                ""
            } else {
                " (missing)"
            };
            let _ = writeln!(md, "- `{}`{missing}", p.display());
        }
    }
    md
}

/// Write `text` to `path` atomically, its directory made first.
fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::store::write_atomic(path, bytes)?;
    Ok(())
}

fn or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ⏎ ")
}
