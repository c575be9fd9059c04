//! `forge campaign` (issue 14): close a gap found by `forge compare` by patching the target
//! engine's source, round by round — decide the gap, profile both sides, analyze, propose a
//! patch, apply it safely ([`crate::patch`]), rebuild, check the answers, re-measure, keep
//! (a commit) or revert — until the target is ahead, tied within 1 %, or the gap is shown
//! to be external.
//!
//! What exists so far: the campaign's record ([`ledger`]: `lineage.jsonl`, the attempt,
//! optimization and source-idea ledgers, resume of an interrupted attempt), patch series
//! ([`series`]), the correctness verdict on a patched engine's answers ([`correct`]) and
//! a round's analysis reports ([`analysis`]: `root-cause.md`, `layer-pipeline.md`) and the
//! LLM's patch proposals ([`propose`]: excerpts read by path within bounds, one diff with
//! its evidence), the keep/regressed/inconclusive verdict on paired interleaved
//! measurements ([`verdict`]) and one attempt start to end behind the `Executor` seam
//! ([`attempt`]: apply, build, answers, measure, commit or reset; recovery after a kill),
//! with llama.cpp's executor ([`llamacpp`]: incremental rebuilds, base and patched builds
//! kept side by side, the real `llama-server` asked and measured). The round loop, the
//! `forge campaign` command and the vLLM executor are still to come (see the issue's
//! closing note).

pub mod analysis;
pub mod attempt;
pub mod correct;
pub mod ledger;
pub mod llamacpp;
pub mod propose;
pub mod series;
pub mod verdict;
