//! `forge campaign` (issue 14): close a gap found by `forge compare` by patching the target
//! engine's source, round by round — decide the gap, profile both sides, analyze, propose a
//! patch, apply it safely ([`crate::patch`]), rebuild, check the answers, re-measure, keep
//! (a commit) or revert — until the target is ahead, tied within 1 %, or the gap is shown
//! to be external.
//!
//! What exists so far: the campaign's record ([`ledger`]: `lineage.jsonl`, the attempt,
//! optimization and source-idea ledgers, resume of an interrupted attempt) and patch
//! series ([`series`]). The round loop, rebuilds, correctness checks and the LLM agent are
//! still to come (see the closing note).

pub mod correct;
pub mod ledger;
pub mod series;
