//! The campaign's record: `ledgers/lineage.jsonl`, append-only, one event per line — the
//! single source of truth a resumed campaign replays — and the three Markdown ledgers
//! rendered from it (rewritten atomically after every event): `attempt-ledger.md` (every
//! attempt, once, with why it ended as it did), `optimization-ledger.md` (only kept
//! patches: correct and measured better, with the gain's interval) and
//! `source-idea-ledger.md` (each idea with its evidence — profile rows, layer-pipeline
//! notes — and where in the source it came from, so a later round does not re-read it).
//!
//! An attempt is written twice: `attempt_started` (its base commit, before anything is
//! applied) and `attempt` (its outcome, at its end). A campaign killed in between finds the
//! started attempt without an outcome, resets the checkout to its base and tries it again:
//! no attempt is ever recorded twice.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{StoreError, append_line, read_journal, write_atomic};

/// `ledgers/`.
pub const LEDGERS_DIR: &str = "ledgers";
/// The event log.
pub const LINEAGE_FILE: &str = "lineage.jsonl";
/// Every attempt.
pub const ATTEMPTS_FILE: &str = "attempt-ledger.md";
/// Kept patches only.
pub const OPTIMIZATIONS_FILE: &str = "optimization-ledger.md";
/// Source ideas.
pub const IDEAS_FILE: &str = "source-idea-ledger.md";

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "code")]
pub enum Outcome {
    /// Refused before anything touched the checkout (`rej-path`, `rej-secret`, …).
    Rejected(String),
    /// `git apply` failed (or the diff could not be read).
    ApplyFailed,
    /// The engine did not build.
    BuildFailed,
    /// Answers differ from the reference beyond the engine's own run-to-run variation.
    Incorrect,
    /// The patched engine built but did not serve (crashed at start or under load).
    Crashed,
    /// Measured slower.
    Regressed,
    /// Neither better nor worse within the interval.
    Inconclusive,
    /// Correct and measured better: committed.
    Kept,
}

impl Outcome {
    /// The ledger's word for it (`rej-path`, `apply_failed`, …, `kept`).
    pub fn code(&self) -> &str {
        match self {
            Outcome::Rejected(code) => code,
            Outcome::ApplyFailed => "apply_failed",
            Outcome::BuildFailed => "build_failed",
            Outcome::Incorrect => "incorrect",
            Outcome::Crashed => "crashed",
            Outcome::Regressed => "regressed",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Kept => "kept",
        }
    }
}

/// Where a patch came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// A file of the patch series (`--patches DIR`), by name.
    Series {
        /// The file's name in the series.
        file: String,
    },
    /// The LLM agent.
    Llm {
        /// `provider/model`.
        model: String,
    },
}

impl Source {
    /// `series FILE` or `LLM provider/model`.
    pub fn describe(&self) -> String {
        match self {
            Source::Series { file } => format!("series {file}"),
            Source::Llm { model } => format!("LLM {model}"),
        }
    }
}

/// A gain and its interval, % (positive: the patched engine is faster).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Gain {
    /// Point estimate.
    pub pct: f64,
    /// Interval, low end.
    pub lo: f64,
    /// Interval, high end.
    pub hi: f64,
}

/// An attempt's outcome, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    /// `rN-aM`.
    pub id: String,
    /// The round.
    pub round: u32,
    /// Where the patch came from.
    pub source: Source,
    /// The diff as tried (relative to the campaign directory).
    pub patch: PathBuf,
    /// The source idea it tests, if any.
    pub idea: Option<String>,
    /// The commit it was applied on.
    pub base: String,
    /// Files it changed.
    pub files: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why, in a sentence (git's or the compiler's first lines, the disagreement, the
    /// interval).
    pub reason: String,
    /// The measured gain, when it was measured.
    pub gain: Option<Gain>,
    /// The commit that keeps it (`kept` only).
    pub commit: Option<String>,
    /// Its build and measurement log (relative).
    pub log: Option<PathBuf>,
    /// The measured pairs (patched, base), in order (the noise pool is rebuilt from
    /// them on resume).
    #[serde(default)]
    pub pairs: Vec<(f64, f64)>,
    /// Seconds it took.
    #[serde(default)]
    pub secs: f64,
}

/// A source idea.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Idea {
    /// `iN`.
    pub id: String,
    /// The round it came up in.
    pub round: u32,
    /// What to change, in a line.
    pub title: String,
    /// The evidence: profile rows, layer-pipeline notes (with their files).
    pub evidence: Vec<String>,
    /// Where in the source it comes from: paths, functions, upstream PRs.
    pub provenance: Vec<String>,
    /// What proposing it cost, USD (LLM calls).
    #[serde(default)]
    pub cost_usd: f64,
}

/// One line of `lineage.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event {
    /// A round began.
    RoundStarted {
        /// The round.
        round: u32,
        /// The target's commit at its start.
        commit: String,
        /// The gap decision that opened it, in a line.
        gap: String,
        /// The decision and its measurements.
        #[serde(default)]
        decision: Option<super::gap::Decision>,
        /// Seconds the decision took.
        #[serde(default)]
        secs: f64,
    },
    /// A profile was taken (paths relative to the campaign directory).
    Profiled {
        /// The round.
        round: u32,
        /// The framework profiled.
        framework: String,
        /// Its traces and analyses.
        paths: Vec<PathBuf>,
    },
    /// An idea was recorded.
    Idea(Idea),
    /// An attempt is about to touch the checkout.
    AttemptStarted {
        /// `rN-aM`.
        id: String,
        /// The commit to return to if it is interrupted.
        base: String,
        /// Where its patch came from.
        source: Source,
    },
    /// An attempt ended.
    Attempt(Attempt),
    /// The campaign stopped.
    Stopped {
        /// Why (`ahead`, `tied`, `external`, `budget`, `series exhausted`, …).
        reason: String,
    },
}

/// The campaign's record, replayed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Ledger {
    /// Every event, in order.
    pub events: Vec<Event>,
    /// Bytes of a torn last line cut on reading.
    pub repaired_bytes: u64,
}

impl Ledger {
    /// Read `dir/ledgers/lineage.jsonl` (empty when absent; a torn last line is cut).
    pub fn read(dir: &Path) -> Result<Ledger, StoreError> {
        let j = read_journal::<Event>(&lineage(dir))?;
        Ok(Ledger {
            events: j.rows,
            repaired_bytes: j.repaired_bytes,
        })
    }

    /// Append `e` to the lineage and re-render the Markdown ledgers.
    pub fn record(&mut self, dir: &Path, e: Event) -> Result<(), StoreError> {
        std::fs::create_dir_all(dir.join(LEDGERS_DIR)).map_err(|x| StoreError::io(dir, x))?;
        append_line(&lineage(dir), &e)?;
        self.events.push(e);
        self.render(dir)
    }

    /// Every ended attempt, in order.
    pub fn attempts(&self) -> impl Iterator<Item = &Attempt> {
        self.events.iter().filter_map(|e| match e {
            Event::Attempt(a) => Some(a),
            _ => None,
        })
    }

    /// Every recorded source idea, in order.
    pub fn ideas(&self) -> impl Iterator<Item = &Idea> {
        self.events.iter().filter_map(|e| match e {
            Event::Idea(i) => Some(i),
            _ => None,
        })
    }

    /// The attempt started but never ended (the campaign was killed in it): its id, base
    /// commit and source.
    pub fn unfinished(&self) -> Option<(&str, &str, &Source)> {
        let (id, base, source) = self.events.iter().rev().find_map(|e| match e {
            Event::AttemptStarted { id, base, source } => Some((id, base, source)),
            _ => None,
        })?;
        let ended = self.attempts().any(|a| &a.id == id);
        (!ended).then_some((id.as_str(), base.as_str(), source))
    }

    /// Series files already tried (whatever their outcome).
    pub fn tried_files(&self) -> Vec<&str> {
        self.attempts()
            .filter_map(|a| match &a.source {
                Source::Series { file } => Some(file.as_str()),
                Source::Llm { .. } => None,
            })
            .collect()
    }

    /// The last round started (0 before the first).
    pub fn round(&self) -> u32 {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::RoundStarted { round, .. } => Some(*round),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// The round's gap decision (the last round's when `round` is `None`).
    pub fn decision(&self, round: Option<u32>) -> Option<&super::gap::Decision> {
        self.events.iter().rev().find_map(|e| match e {
            Event::RoundStarted {
                round: r, decision, ..
            } if round.is_none_or(|want| want == *r) => decision.as_ref(),
            _ => None,
        })
    }

    /// Campaign time spent so far, seconds (decisions and ended attempts).
    pub fn secs(&self) -> f64 {
        self.events
            .iter()
            .map(|e| match e {
                Event::RoundStarted { secs, .. } => *secs,
                Event::Attempt(a) => a.secs,
                _ => 0.0,
            })
            .sum()
    }

    /// LLM spend so far, USD.
    pub fn spent_usd(&self) -> f64 {
        self.events
            .iter()
            .map(|e| match e {
                Event::Idea(i) => i.cost_usd,
                _ => 0.0,
            })
            .sum()
    }

    /// Why the campaign stopped, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.events.iter().rev().find_map(|e| match e {
            Event::Stopped { reason } => Some(reason.as_str()),
            _ => None,
        })
    }

    /// Rewrite the three Markdown ledgers from the events.
    pub fn render(&self, dir: &Path) -> Result<(), StoreError> {
        let d = dir.join(LEDGERS_DIR);
        write_atomic(&d.join(ATTEMPTS_FILE), self.attempt_md().as_bytes())?;
        write_atomic(
            &d.join(OPTIMIZATIONS_FILE),
            self.optimization_md().as_bytes(),
        )?;
        write_atomic(&d.join(IDEAS_FILE), self.idea_md().as_bytes())
    }

    fn attempt_md(&self) -> String {
        let mut s = String::from(
            "# Attempt ledger\n\nEvery patch attempt, once, in order.\n\n\
             | Round | Attempt | Patch | Source | Files | Outcome | Gain [interval] | Commit | Why |\n\
             | ---: | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        for a in self.attempts() {
            let _ = writeln!(
                s,
                "| {} | {} | `{}` | {} | {} | {} | {} | {} | {} |",
                a.round,
                a.id,
                a.patch.display(),
                a.source.describe(),
                cell(&a.files.join(", ")),
                a.outcome.code(),
                a.gain.map_or_else(|| "—".to_string(), gain),
                a.commit.as_deref().map_or("—", crate::patch::git::short),
                cell(&a.reason)
            );
        }
        s
    }

    fn optimization_md(&self) -> String {
        let mut s = String::from(
            "# Optimization ledger\n\nOnly correct patches with a measured improvement.\n\n\
             | Round | Attempt | Commit | Gain [interval] | Files | Idea |\n\
             | ---: | --- | --- | --- | --- | --- |\n",
        );
        for a in self.attempts().filter(|a| a.outcome == Outcome::Kept) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                a.round,
                a.id,
                a.commit.as_deref().map_or("—", crate::patch::git::short),
                a.gain.map_or_else(|| "—".to_string(), gain),
                cell(&a.files.join(", ")),
                a.idea.as_deref().unwrap_or("—")
            );
        }
        s
    }

    fn idea_md(&self) -> String {
        // Per idea, the outcomes of the attempts that tested it.
        let mut tried: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for a in self.attempts() {
            if let Some(i) = &a.idea {
                tried
                    .entry(i.as_str())
                    .or_default()
                    .push(format!("{} {}", a.id, a.outcome.code()));
            }
        }
        let mut s = String::from(
            "# Source-idea ledger\n\nEach idea with its evidence and provenance, so later rounds do not re-read the same source.\n\n\
             | Idea | Round | What | Evidence | Provenance | Attempts |\n\
             | --- | ---: | --- | --- | --- | --- |\n",
        );
        for i in self.ideas() {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                i.id,
                i.round,
                cell(&i.title),
                cell(&i.evidence.join("; ")),
                cell(&i.provenance.join("; ")),
                tried
                    .get(i.id.as_str())
                    .map_or("—".to_string(), |v| v.join(", "))
            );
        }
        s
    }
}

fn lineage(dir: &Path) -> PathBuf {
    dir.join(LEDGERS_DIR).join(LINEAGE_FILE)
}

fn gain(g: Gain) -> String {
    format!("{:+.1}% [{:+.1}, {:+.1}]", g.pct, g.lo, g.hi)
}

/// A table cell: one line, pipes escaped.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ⏎ ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str, file: &str, outcome: Outcome) -> Attempt {
        Attempt {
            id: id.into(),
            round: 1,
            source: Source::Series { file: file.into() },
            patch: PathBuf::from(format!("patches/r1/{file}")),
            idea: Some("i1".into()),
            base: "a".repeat(40),
            files: vec!["tools/server/server.cpp".into()],
            gain: (outcome == Outcome::Kept).then_some(Gain {
                pct: 31.2,
                lo: 28.0,
                hi: 34.5,
            }),
            commit: (outcome == Outcome::Kept).then(|| "b".repeat(40)),
            reason: "the reason | with a pipe\nand a second line".into(),
            outcome,
            log: None,
            pairs: Vec::new(),
            secs: 1.0,
        }
    }

    #[test]
    fn the_ledgers_are_rendered_from_the_lineage_and_survive_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::read(dir.path()).unwrap();
        assert_eq!(l.round(), 0);
        l.record(
            dir.path(),
            Event::RoundStarted {
                round: 1,
                commit: "a".repeat(40),
                gap: "behind by 24.0 % [21.9, 26.1]".into(),
                decision: None,
                secs: 2.0,
            },
        )
        .unwrap();
        l.record(
            dir.path(),
            Event::Idea(Idea {
                id: "i1".into(),
                round: 1,
                title: "remove the per-token sleep".into(),
                evidence: vec!["decode: 41 % of wall idle between steps".into()],
                provenance: vec!["tools/server/server.cpp:2301".into()],
                cost_usd: 0.0,
            }),
        )
        .unwrap();
        for (id, file, o) in [
            ("r1-a1", "01-remove-slowdown.diff", Outcome::Kept),
            ("r1-a2", "02-does-not-compile.diff", Outcome::BuildFailed),
            (
                "r1-a3",
                "05-evil.diff",
                Outcome::Rejected("rej-path".into()),
            ),
        ] {
            let source = Source::Series { file: file.into() };
            l.record(
                dir.path(),
                Event::AttemptStarted {
                    id: id.into(),
                    base: "a".repeat(40),
                    source,
                },
            )
            .unwrap();
            l.record(dir.path(), Event::Attempt(attempt(id, file, o)))
                .unwrap();
        }
        // Killed inside the fourth attempt.
        l.record(
            dir.path(),
            Event::AttemptStarted {
                id: "r1-a4".into(),
                base: "b".repeat(40),
                source: Source::Series {
                    file: "04-slower.diff".into(),
                },
            },
        )
        .unwrap();
        let p = lineage(dir.path());
        let mut bytes = std::fs::read(&p).unwrap();
        bytes.extend_from_slice(br#"{"event":"attempt","id":"r1-a"#);
        std::fs::write(&p, bytes).unwrap();

        let back = Ledger::read(dir.path()).unwrap();
        assert!(back.repaired_bytes > 0);
        assert_eq!(back.events, l.events);
        assert_eq!(back.round(), 1);
        let (id, base, _) = back.unfinished().unwrap();
        assert_eq!((id, base), ("r1-a4", "b".repeat(40).as_str()));
        assert_eq!(
            back.tried_files(),
            [
                "01-remove-slowdown.diff",
                "02-does-not-compile.diff",
                "05-evil.diff"
            ]
        );

        let read = |f: &str| std::fs::read_to_string(dir.path().join(LEDGERS_DIR).join(f)).unwrap();
        let attempts = read(ATTEMPTS_FILE);
        assert_eq!(attempts.matches("| 1 | r1-a").count(), 3, "{attempts}");
        assert!(attempts.contains("| rej-path |"), "{attempts}");
        assert!(attempts.contains("the reason \\| with a pipe ⏎ and a second line"));
        let opt = read(OPTIMIZATIONS_FILE);
        assert_eq!(opt.matches("| r1-a").count(), 1, "{opt}");
        assert!(
            opt.contains("| bbbbbbbbbb | +31.2% [+28.0, +34.5] |"),
            "{opt}"
        );
        let ideas = read(IDEAS_FILE);
        assert!(
            ideas.contains("r1-a1 kept, r1-a2 build_failed, r1-a3 rej-path"),
            "{ideas}"
        );
    }

    #[test]
    fn outcome_codes_are_the_contracts() {
        let codes: Vec<String> = [
            Outcome::Rejected("rej-secret".into()),
            Outcome::ApplyFailed,
            Outcome::BuildFailed,
            Outcome::Incorrect,
            Outcome::Regressed,
            Outcome::Inconclusive,
            Outcome::Kept,
        ]
        .iter()
        .map(|o| o.code().to_string())
        .collect();
        assert_eq!(
            codes,
            [
                "rej-secret",
                "apply_failed",
                "build_failed",
                "incorrect",
                "regressed",
                "inconclusive",
                "kept"
            ]
        );
        let line = serde_json::to_string(&Event::Stopped {
            reason: "tied".into(),
        })
        .unwrap();
        assert_eq!(line, r#"{"event":"stopped","reason":"tied"}"#);
    }
}
