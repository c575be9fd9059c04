//! `forge compare` and `forge gap`: the fair cross-framework gate of the campaign contract
//! (`../shared/notes/sota-loop.md`, phase 1). [`sla`] is what every candidate is held to;
//! [`rate`] finds the highest request rate a candidate sustains within it; [`gap`] decides
//! where the target framework stands against the best rival, from paired measurements;
//! [`candidate`] and [`summary`] are the artifacts users compare (`candidates.jsonl`,
//! `summary.md`).

pub mod candidate;
pub mod gap;
pub mod rate;
pub mod sla;
pub mod summary;
