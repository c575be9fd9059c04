//! `forge campaign` (issue 14): close a gap found by `forge compare` by patching the target
//! engine's source, round by round — decide the gap, profile both sides, analyze, propose a
//! patch, apply it safely ([`crate::patch`]), rebuild, check the answers, re-measure, keep
//! (a commit) or revert — until the target is ahead, tied within 1 %, or the gap is shown
//! to be external.
//!
//! The parts: what a campaign runs with ([`settings`], `campaign.json`; [`gate`]: the
//! competitor and the target's flags read from a `forge compare` gate), the loop
//! ([`rounds`]: gap decision, analysis, attempts, budgets, stop, resume), the gap decision
//! ([`gap`]), one attempt start to end behind the `Executor` seam ([`attempt`]: apply, build,
//! answers ([`correct`]), measure ([`verdict`]), commit or reset; recovery after a kill), the
//! engines' executors ([`llamacpp`] for real on a CPU, [`vllm`] with its Python-only
//! rebuild) and how they boot and ask a server ([`serve`]), where patches come from
//! ([`crate::patch::series`], [`propose`]), the record ([`ledger`]: `lineage.jsonl` and the three Markdown
//! ledgers) and the reports ([`analysis`], [`report`]: benchmark tables, checkpoint, final
//! report).

pub mod analysis;
pub mod attempt;
pub mod correct;
pub mod gap;
pub mod gate;
pub mod html;
pub mod ledger;
pub mod llamacpp;
pub mod propose;
pub mod report;
pub mod rounds;
pub mod serve;
pub mod settings;
pub mod stop;
pub mod verdict;
pub mod vllm;
