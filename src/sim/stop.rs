//! Stop strings and stop token ids on the simulated text, as vLLM V1 applies them.
//!
//! The simulated text is known in advance (token `i` is
//! [`crate::tokenize::perturbed_piece`]), so the HTTP side finds where a sequence stops
//! before submitting it and the engine finishes it there ([`StopHit::tokens`] becomes
//! `SimRequest::stop_at`): the engine computes exactly the tokens vLLM would.
//!
//! vLLM's rules (`vllm/v1/engine/detokenizer.py`, `vllm/v1/core/sched/utils.py::check_stop`):
//! - a stop token id counts once `min_tokens` tokens exist; the sequence stops with
//!   `stop_reason` = the id, and the token's text is left out (kept with
//!   `include_stop_str_in_output`);
//! - stop strings are looked for, once more than `min_tokens` tokens exist, in the text the
//!   newest token added (plus `len(stop) - 1` characters before it), each string in the
//!   order given; the text is cut before the stop string (after it with
//!   `include_stop_str_in_output`), `stop_reason` = the string, `finish_reason` = `stop`.
//!   `ignore_eos` does not disable either;
//! - the stopping token still counts in `usage` (it was generated);
//! - while streaming, the last `max(len(stop)) - 1` characters are held back until the
//!   sequence ends, so a stop string is never half sent ([`TextStream`]).

use serde::Serialize;

use crate::tokenize::piece_id;

/// vLLM's `stop_reason`: the stop string, or the stop token id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum StopReason {
    /// A stop string.
    Text(String),
    /// A stop token id.
    Token(u32),
}

/// What stops a sequence.
#[derive(Debug, Clone, Copy)]
pub struct StopRule<'a> {
    /// `stop`.
    pub strings: &'a [String],
    /// `stop_token_ids`.
    pub token_ids: &'a [u32],
    /// `include_stop_str_in_output`.
    pub include: bool,
    /// `min_tokens`.
    pub min_tokens: u32,
}

/// Where a sequence stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopHit {
    /// Output tokens generated, the stopping one included.
    pub tokens: u32,
    /// Bytes of the text the response keeps.
    pub keep: usize,
    /// `stop_reason`.
    pub reason: StopReason,
}

impl StopRule<'_> {
    /// True when nothing can stop the sequence early.
    pub fn is_empty(&self) -> bool {
        self.strings.is_empty() && self.token_ids.is_empty()
    }

    /// Characters a stream holds back (vLLM's `output_text_buffer_length`).
    pub fn hold_back(&self) -> usize {
        if self.include {
            return 0;
        }
        self.strings
            .iter()
            .map(|s| s.chars().count().saturating_sub(1))
            .max()
            .unwrap_or(0)
    }

    /// The first stop within `max_tokens` tokens whose texts `piece` gives.
    pub fn find<'p>(&self, max_tokens: u32, piece: impl Fn(u32) -> &'p str) -> Option<StopHit> {
        if self.is_empty() {
            return None;
        }
        let mut text = String::new();
        for i in 0..max_tokens {
            let p = piece(i);
            let count = i + 1;
            if count >= self.min_tokens && self.token_ids.contains(&piece_id(p)) {
                let keep = text.len() + if self.include { p.len() } else { 0 };
                let reason = StopReason::Token(piece_id(p));
                return Some(StopHit {
                    tokens: count,
                    keep,
                    reason,
                });
            }
            text.push_str(p);
            if count > self.min_tokens
                && let Some((keep, s)) = self.match_strings(&text, p.len())
            {
                let reason = StopReason::Text(s.to_string());
                return Some(StopHit {
                    tokens: count,
                    keep,
                    reason,
                });
            }
        }
        None
    }

    /// vLLM's `check_stop_strings`: the first stop string (in list order) that occurs in
    /// the window the last `new` bytes opened; returns the bytes kept and the string.
    fn match_strings(&self, text: &str, new: usize) -> Option<(usize, &str)> {
        for s in self.strings {
            let mut start = (text.len() + 1).saturating_sub(new + s.len());
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            if let Some(at) = text[start..].find(s.as_str()) {
                let at = start + at;
                let keep = if self.include { at + s.len() } else { at };
                return Some((keep, s));
            }
        }
        None
    }
}

/// A sequence's text as it streams: vLLM's `get_next_output_text(finished, delta=True)`,
/// which withholds the last `hold` characters until the sequence finishes.
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    text: String,
    chars: usize,
    sent: usize,
    hold: usize,
}

impl TextStream {
    /// An empty stream holding back `hold` characters.
    pub fn new(hold: usize) -> TextStream {
        TextStream {
            hold,
            ..TextStream::default()
        }
    }

    /// Append generated text.
    pub fn push(&mut self, s: &str) {
        self.text.push_str(s);
        self.chars += s.chars().count();
    }

    /// The sequence ended: keep only its first `keep` bytes (a stop cut the text).
    pub fn truncate(&mut self, keep: usize) {
        if keep < self.text.len() && self.text.is_char_boundary(keep) {
            self.text.truncate(keep);
            self.chars = self.text.chars().count();
        }
    }

    /// The text not yet sent that may be sent now.
    pub fn delta(&mut self, finished: bool) -> String {
        let buffer = if finished { 0 } else { self.hold };
        let upto = self.chars.saturating_sub(buffer);
        if upto <= self.sent {
            return String::new();
        }
        let (from, to) = (self.byte_at(self.sent), self.byte_at(upto));
        self.sent = upto;
        self.text[from..to].to_string()
    }

    /// The whole text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    fn byte_at(&self, chars: usize) -> usize {
        if self.chars == self.text.len() {
            return chars;
        }
        self.text
            .char_indices()
            .nth(chars)
            .map_or(self.text.len(), |(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORDS: [&str; 6] = [" a", " the", " cat", " sat", " the", " end"];

    fn piece(i: u32) -> &'static str {
        WORDS[i as usize % WORDS.len()]
    }

    fn rule<'a>(strings: &'a [String], ids: &'a [u32]) -> StopRule<'a> {
        StopRule {
            strings,
            token_ids: ids,
            include: false,
            min_tokens: 0,
        }
    }

    #[test]
    fn stop_string_cuts_before_itself() {
        let s = vec![" the".to_string()];
        let hit = rule(&s, &[]).find(100, piece).unwrap();
        // " a the": found when token 1 (" the") arrives; the text keeps " a".
        assert_eq!(hit.tokens, 2);
        assert_eq!(hit.keep, 2);
        assert_eq!(hit.reason, StopReason::Text(" the".into()));
        let inc = StopRule {
            include: true,
            ..rule(&s, &[])
        };
        assert_eq!(inc.find(100, piece).unwrap().keep, 6);
    }

    #[test]
    fn stop_strings_span_tokens_and_respect_min_tokens() {
        let s = vec!["t sa".to_string()];
        // " a the cat sat": "t sa" ends inside token 3 (" sat").
        let hit = rule(&s, &[]).find(100, piece).unwrap();
        assert_eq!((hit.tokens, hit.keep), (4, " a the ca".len()));
        let s = vec![" the".to_string()];
        let late = StopRule {
            min_tokens: 2,
            ..rule(&s, &[])
        };
        // The first " the" ends at token 2 (count 2, not > min_tokens); the next one is
        // token 5.
        let hit = late.find(100, piece).unwrap();
        assert_eq!(hit.tokens, 5);
        assert_eq!(hit.keep, " a the cat sat".len());
        assert!(rule(&s, &[]).find(1, piece).is_none());
    }

    #[test]
    fn list_order_wins_within_one_window() {
        let s = vec!["at".to_string(), " c".to_string()];
        let hit = rule(&s, &[]).find(100, piece).unwrap();
        // Token 2 (" cat") opens " c" first in the text, but "at" is first in the list.
        assert_eq!(hit.reason, StopReason::Text("at".into()));
        assert_eq!(hit.keep, " a the c".len());
    }

    #[test]
    fn stop_token_ids_leave_their_text_out() {
        let ids = [piece_id(" cat")];
        let hit = rule(&[], &ids).find(100, piece).unwrap();
        assert_eq!(hit.tokens, 3);
        assert_eq!(hit.keep, " a the".len());
        assert_eq!(hit.reason, StopReason::Token(piece_id(" cat")));
        assert!(rule(&[], &[]).find(100, piece).is_none());
    }

    #[test]
    fn streams_hold_back_the_stop_length() {
        let s = vec![" the".to_string(), "x".to_string()];
        assert_eq!(rule(&s, &[]).hold_back(), 3);
        let mut t = TextStream::new(3);
        t.push(" a");
        assert_eq!(t.delta(false), "");
        t.push(" cat");
        assert_eq!(t.delta(false), " a ");
        t.push(" the");
        t.truncate(" a cat".len());
        assert_eq!(t.delta(true), "cat");
        assert_eq!(t.text(), " a cat");
        assert_eq!(t.delta(true), "");
    }
}
