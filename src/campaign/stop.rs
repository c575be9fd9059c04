//! How a campaign ends: the class of its stop ([`StopCode`]: reached the best — ahead,
//! tied, not more than the threshold behind — or still behind: proposals exhausted, a
//! budget, an external cause, no gap shown either way), its sentence, and reading it back
//! from the ledger.

use super::ledger::Ledger;

/// Why the campaign stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCode {
    /// The target is ahead of the competitor.
    Ahead,
    /// Tied within 1 %.
    Tied,
    /// Not shown ahead or tied, but with 95 % confidence not more than 1 % behind: tied or
    /// ahead, nothing to close (the interval's low end is above −1 %).
    NotBehind,
    /// The interval straddles ±1 % after every allowed pair: no gap to act on is shown.
    Unresolved,
    /// Every proposal was tried (or the agent had none) and the target is still behind.
    Exhausted,
    /// A budget (rounds, hours, dollars) ran out.
    Budget,
    /// The gap is outside the target's source (its base does not build, …).
    External,
}

impl StopCode {
    /// The ledger's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            StopCode::Ahead => "ahead",
            StopCode::Tied => "tied",
            StopCode::NotBehind => "tied_or_ahead",
            StopCode::Unresolved => "unresolved",
            StopCode::Exhausted => "exhausted",
            StopCode::Budget => "budget",
            StopCode::External => "external",
        }
    }

    /// Read back from the ledger.
    pub fn parse(s: &str) -> Option<StopCode> {
        [
            StopCode::Ahead,
            StopCode::Tied,
            StopCode::NotBehind,
            StopCode::Unresolved,
            StopCode::Exhausted,
            StopCode::Budget,
            StopCode::External,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }

    /// Whether the target reached the best (nothing left to close).
    pub fn reached(self) -> bool {
        matches!(self, StopCode::Ahead | StopCode::Tied | StopCode::NotBehind)
    }

    /// `forge campaign`'s exit status: 0 reached, 10 still behind, 12 unresolved.
    pub fn exit_code(self) -> u8 {
        match self {
            StopCode::Ahead | StopCode::Tied | StopCode::NotBehind => 0,
            StopCode::Unresolved => 12,
            _ => 10,
        }
    }
}

/// The campaign's end: its code and sentence.
#[derive(Debug, Clone, PartialEq)]
pub struct Stop {
    /// The class.
    pub code: StopCode,
    /// Why, in a sentence.
    pub reason: String,
}

/// The recorded stop, if the campaign already ended.
pub fn stopped(ledger: &Ledger) -> Option<Stop> {
    let line = ledger.stopped()?;
    let (code, reason) = line.split_once(": ").unwrap_or((line, ""));
    Some(Stop {
        code: StopCode::parse(code).unwrap_or(StopCode::External),
        reason: reason.to_string(),
    })
}
