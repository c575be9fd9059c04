//! The LLM's side of a round: given the round's root-cause and layer-pipeline reports, the
//! source-idea and attempt ledgers, it asks for source excerpts by path (bounded calls and
//! bytes per round) and answers with one unified diff and its evidence. Whether the diff
//! is safe to apply is not decided here: [`crate::patch::try_apply`] refuses what must be
//! refused (`rej-*`).
//!
//! The conversation's protocol (stated in the system prompt):
//! - `READ path [start-end]` lines ask for excerpts of the checkout (paths relative to
//!   it; a path outside it, through `..` or a symlink, is refused in the reply, never read);
//! - the answer is `IDEA:` (one line), `EVIDENCE:` and `PROVENANCE:` lines (one or more
//!   each) and a fenced ```diff block.
//!
//! Two rounds in a row under 1 % gain set `widen`: the model is told to widen its research
//! (other frameworks' implementations, upstream PRs) before editing again.

use std::path::{Component, Path};

use crate::agent::llm::LlmError;
use crate::agent::llm::cost::Meter;
use crate::agent::llm::http::{Client, Message, Role, Turn};

/// Per-round bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// LLM calls per round.
    pub calls: u32,
    /// Bytes of source excerpts per round.
    pub excerpt_bytes: usize,
    /// Bytes of each report put in the first message.
    pub report_bytes: usize,
    /// Output allowance per call, tokens.
    pub max_tokens: u32,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            calls: 6,
            excerpt_bytes: 48 * 1024,
            report_bytes: 24 * 1024,
            max_tokens: 4096,
        }
    }
}

/// What the model is shown.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The target framework (`vLLM`, `llama.cpp`, …).
    pub target: &'a str,
    /// `analysis/root-cause.md`.
    pub root_cause: &'a str,
    /// `analysis/layer-pipeline.md`.
    pub pipeline: &'a str,
    /// `source-idea-ledger.md`.
    pub ideas: &'a str,
    /// `attempt-ledger.md`.
    pub attempts: &'a str,
    /// Two rounds in a row gained under 1 %.
    pub widen: bool,
    /// The checkout excerpts are read from.
    pub checkout: &'a Path,
}

/// A proposed patch.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    /// The unified diff.
    pub diff: String,
    /// The idea, in a line.
    pub idea: String,
    /// Its evidence.
    pub evidence: Vec<String>,
    /// Where it comes from.
    pub provenance: Vec<String>,
    /// Calls spent.
    pub calls: u32,
    /// Dollars spent.
    pub cost_usd: f64,
}

/// Why there is no proposal.
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// The provider failed (after its retries), or the budget refused the call.
    #[error(transparent)]
    Llm(#[from] LlmError),
    /// The calls of the round ran out before a diff.
    #[error("no diff after {0} calls")]
    NoDiff(u32),
}

const SYSTEM: &str = "You are a performance engineer patching an LLM serving engine's source so it serves the same workload faster without changing its answers. You are shown a profile comparison with the fastest competitor, the layer pipeline, and the ledgers of ideas and attempts so far: do not repeat an attempt that failed. To read source, reply only with lines `READ path` or `READ path start-end` (paths relative to the checkout). To answer, reply with `IDEA: <one line>`, one or more `EVIDENCE: <profile row or pipeline fact>` lines, one or more `PROVENANCE: <file:function, upstream PR or other framework's implementation>` lines, and the patch as one fenced ```diff block (a unified diff with a/ and b/ paths). Never touch build scripts, never add downloads, keep the change small.";

/// Run the round's conversation to a proposal.
pub async fn propose(
    client: &Client,
    meter: &mut Meter,
    ctx: &Context<'_>,
    limits: &Limits,
) -> Result<Proposal, ProposeError> {
    let mut messages = vec![Message {
        role: Role::User,
        content: first_message(ctx, limits),
    }];
    let mut excerpt_left = limits.excerpt_bytes;
    let mut calls = 0u32;
    let mut cost = 0.0;
    while calls < limits.calls {
        let turn = Turn {
            system: SYSTEM,
            messages: &messages,
            max_tokens: limits.max_tokens,
        };
        let reply = client.complete(&turn, meter).await?;
        calls += 1;
        cost += reply.cost_usd;
        if let Some(mut p) = parse_answer(&reply.text) {
            p.calls = calls;
            p.cost_usd = cost;
            return Ok(p);
        }
        let reads = parse_reads(&reply.text);
        let next = if reads.is_empty() {
            "Your reply had neither READ lines nor an answer with a ```diff block. Answer in the format asked.".to_string()
        } else {
            excerpts(ctx.checkout, &reads, &mut excerpt_left)
        };
        messages.push(Message {
            role: Role::Assistant,
            content: reply.text,
        });
        messages.push(Message {
            role: Role::User,
            content: next,
        });
    }
    Err(ProposeError::NoDiff(calls))
}

fn first_message(ctx: &Context<'_>, limits: &Limits) -> String {
    let clip = |s: &str| clip_report(s, limits.report_bytes);
    let mut m = format!(
        "Target engine: {}.\n\n## Root cause (target vs leader)\n{}\n\n## Layer pipeline of the target\n{}\n\n## Source ideas so far\n{}\n\n## Attempts so far\n{}\n",
        ctx.target,
        clip(ctx.root_cause),
        clip(ctx.pipeline),
        clip(ctx.ideas),
        clip(ctx.attempts)
    );
    if ctx.widen {
        m.push_str("\nThe last two rounds gained under 1 %. Before editing again, widen your research: read how the other frameworks implement the hot path named above, and cite it in PROVENANCE.\n");
    }
    m.push_str(&format!(
        "\nYou may read up to {} bytes of source this round.\n",
        limits.excerpt_bytes
    ));
    m
}

/// A report for the prompt: its lines kept, control and format characters (bidi
/// overrides) dropped, at most `max` characters.
fn clip_report(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .filter(|c| !crate::text::is_format_char(*c))
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max).collect();
    cut.push_str("\n… (clipped)");
    cut
}

/// The answer, if `text` holds one (a ```diff block).
fn parse_answer(text: &str) -> Option<Proposal> {
    let start = text.find("```diff")?;
    let body = &text[start + "```diff".len()..];
    let body = body.strip_prefix('\n').unwrap_or(body);
    let end = body.find("\n```").map_or(body.len(), |e| e + 1);
    let diff = body[..end].to_string();
    let field = |key: &str| -> Vec<String> {
        text[..start]
            .lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .collect()
    };
    Some(Proposal {
        diff,
        idea: field("IDEA:")
            .into_iter()
            .next()
            .unwrap_or_else(|| "(no idea line)".to_string()),
        evidence: field("EVIDENCE:"),
        provenance: field("PROVENANCE:"),
        calls: 0,
        cost_usd: 0.0,
    })
}

/// `READ path [start-end]` requests.
fn parse_reads(text: &str) -> Vec<(String, Option<(usize, usize)>)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("READ "))
        .map(|rest| {
            let mut parts = rest.split_whitespace();
            let path = parts.next().unwrap_or("").to_string();
            let range = parts.next().and_then(|r| {
                let (a, b) = r.split_once('-')?;
                Some((a.parse().ok()?, b.parse().ok()?))
            });
            (path, range)
        })
        .filter(|(p, _)| !p.is_empty())
        .collect()
}

/// The excerpts asked for, within the round's byte budget.
fn excerpts(
    checkout: &Path,
    reads: &[(String, Option<(usize, usize)>)],
    left: &mut usize,
) -> String {
    let mut out = String::new();
    for (path, range) in reads {
        let text = match inside(checkout, path) {
            Err(why) => format!("READ {path}: refused: {why}\n"),
            Ok(full) => match std::fs::read_to_string(&full) {
                Err(e) => format!("READ {path}: {e}\n"),
                Ok(body) => excerpt(path, &body, *range, left),
            },
        };
        out.push_str(&text);
    }
    out.push_str(&format!("\n({} bytes of source left this round.)\n", *left));
    out
}

fn excerpt(path: &str, body: &str, range: Option<(usize, usize)>, left: &mut usize) -> String {
    let lines: Vec<&str> = body.lines().collect();
    let (a, b) = range.unwrap_or((1, lines.len()));
    let (a, b) = (a.max(1), b.min(lines.len()));
    let mut text = String::new();
    let mut last = a.saturating_sub(1);
    for (i, l) in lines.iter().enumerate().take(b).skip(a.saturating_sub(1)) {
        if text.len() + l.len() + 8 > *left {
            break;
        }
        text.push_str(&format!("{:>5} {l}\n", i + 1));
        last = i + 1;
    }
    *left = left.saturating_sub(text.len());
    if text.is_empty() {
        return format!("READ {path}: the round's excerpt budget is spent\n");
    }
    format!("FILE {path} lines {a}-{last}:\n```\n{text}```\n")
}

/// `path` inside `checkout` (relative, no `..`, not through a symlink out of it).
fn inside(checkout: &Path, path: &str) -> Result<std::path::PathBuf, String> {
    let p = Path::new(path);
    if p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err("outside the checkout".into());
    }
    if p.components().any(|c| c.as_os_str() == ".git") {
        return Err("inside .git".into());
    }
    let root = std::fs::canonicalize(checkout).map_err(|e| e.to_string())?;
    let full = std::fs::canonicalize(root.join(p)).map_err(|e| e.to_string())?;
    if !full.starts_with(&root) {
        return Err("outside the checkout (through a symlink)".into());
    }
    if !full.is_file() {
        return Err("not a file".into());
    }
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_and_reads_are_parsed() {
        let a = "IDEA: drop the per-token sleep\nEVIDENCE: decode wall 41 % idle\nEVIDENCE: layer 0 steady\nPROVENANCE: tools/server/server.cpp:update_slots\n```diff\n--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n```\nthanks";
        let p = parse_answer(a).unwrap();
        assert_eq!(p.idea, "drop the per-token sleep");
        assert_eq!(p.evidence.len(), 2);
        assert_eq!(p.provenance, ["tools/server/server.cpp:update_slots"]);
        assert_eq!(p.diff, "--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n");
        assert!(parse_answer("READ a.c").is_none());
        assert_eq!(clip_report("| a |\n| b \u{202e}|\x07", 100), "| a |\n| b |");
        assert_eq!(clip_report("abcdef", 3), "abc\n… (clipped)");
        assert_eq!(
            parse_reads("READ src/a.c 10-20\nsome words\n READ b.py\nREAD "),
            vec![
                ("src/a.c".to_string(), Some((10, 20))),
                ("b.py".to_string(), None)
            ]
        );
    }

    #[test]
    fn excerpts_stay_inside_the_checkout_and_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let co = dir.path().join("co");
        std::fs::create_dir_all(co.join("src")).unwrap();
        let body: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        std::fs::write(co.join("src/a.c"), &body).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), co.join("link")).unwrap();
        let mut left = 100_000;
        let out = excerpts(
            &co,
            &[
                ("src/a.c".into(), Some((10, 12))),
                ("../secret.txt".into(), None),
                ("/etc/passwd".into(), None),
                ("link".into(), None),
                (".git/config".into(), None),
            ],
            &mut left,
        );
        assert!(out.contains("FILE src/a.c lines 10-12:"), "{out}");
        assert!(out.contains("   11 line 11"), "{out}");
        assert!(!out.contains("line 13"), "{out}");
        assert_eq!(out.matches("refused").count(), 4, "{out}");
        assert!(!out.contains("outside\n"), "{out}");
        // The budget cuts an excerpt and then refuses more.
        let mut left = 40;
        let out = excerpts(
            &co,
            &[("src/a.c".into(), None), ("src/a.c".into(), None)],
            &mut left,
        );
        assert!(out.contains("lines 1-3:"), "{out}");
        assert!(out.contains("budget is spent"), "{out}");
    }
}
