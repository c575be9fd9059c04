//! A deterministic stand-in tokenizer, shared by the simulator and workload statistics.
//!
//! forge has no model tokenizer (no network, no Python). Real BPE tokenizers average about
//! four characters of English per token; this one splits text into words, punctuation and
//! whitespace, cuts long words into four-character pieces, and hashes each piece to an id.
//! Equal text gives equal ids, so shared prompt prefixes give shared token prefixes and the
//! simulator's prefix cache behaves as vLLM's does on real traffic. Servers report their own
//! counts in `usage`; this estimate is used only where no server is involved.

use std::hash::Hasher;

use twox_hash::XxHash64;

/// Vocabulary size the hashed ids fall into (Llama-3's is 128,256).
pub const VOCAB: u32 = 128_000;
/// Longest piece of a word that becomes one token.
const PIECE_CHARS: usize = 4;

/// Token ids for `text`.
pub fn tokenize(text: &str) -> Vec<u32> {
    let mut out = Vec::with_capacity(text.len() / 3 + 1);
    for piece in pieces(text) {
        out.push(piece_id(piece));
    }
    out
}

/// Number of tokens in `text` (same as `tokenize(text).len()`, without allocating ids).
pub fn count(text: &str) -> usize {
    pieces(text).count()
}

/// The simulator's output vocabulary: words with a leading space (and a full stop), one
/// word per generated token.
pub const OUTPUT_WORDS: [&str; 32] = [
    " the",
    " model",
    " serves",
    " tokens",
    " with",
    " a",
    " batch",
    " of",
    " requests",
    " and",
    " cache",
    " blocks",
    " in",
    " memory",
    " while",
    " each",
    " step",
    " runs",
    " on",
    " GPU",
    " kernels",
    " that",
    " read",
    " weights",
    " from",
    " HBM",
    " to",
    " compute",
    " attention",
    " over",
    " context",
    ".",
];

/// The text of generated token number `index` of a response (the simulator's output).
/// Words from [`OUTPUT_WORDS`], each with a leading space: one word is one token.
pub fn output_piece(seed: u64, index: u32) -> &'static str {
    let mut h = XxHash64::with_seed(seed);
    h.write_u32(index);
    OUTPUT_WORDS[(h.finish() % OUTPUT_WORDS.len() as u64) as usize]
}

/// Seed of sequence `choice` of a request whose text seed is `seed` (`n > 1` samples
/// several sequences from one prompt): choice 0 keeps the prompt's seed, so a request
/// without `n` reads exactly as before.
pub fn choice_seed(seed: u64, choice: u32) -> u64 {
    if choice == 0 {
        return seed;
    }
    let mut h = XxHash64::with_seed(seed ^ 0xc401_ce5e);
    h.write_u32(choice);
    h.finish()
}

/// Seed of a response's text: a function of the prompt alone, so every configuration of
/// the same model answers a prompt with the same words (as greedy decoding does), and a
/// changed answer means changed numerics.
pub fn text_seed(prompt: &[u32]) -> u64 {
    let mut h = XxHash64::with_seed(0x7e57);
    for t in prompt {
        h.write_u32(*t);
    }
    h.finish()
}

/// [`output_piece`], except that a `rate` share of positions (chosen by hash) come out as a
/// different word: the simulator's stand-in for numerics that quantization perturbs.
pub fn perturbed_piece(seed: u64, index: u32, rate: f64) -> &'static str {
    if rate > 0.0 {
        let mut h = XxHash64::with_seed(seed ^ 0x9e37_79b9);
        h.write_u32(index);
        if (h.finish() % 1_000_000) as f64 / 1_000_000.0 < rate {
            return output_piece(seed.wrapping_add(1), index);
        }
    }
    output_piece(seed, index)
}

/// Id of one token piece (a hash into [`VOCAB`]). A generated token's id is the id of its
/// whole output word: one output word is one token, although [`tokenize`] may cut the same
/// text into several pieces.
pub fn piece_id(piece: &str) -> u32 {
    let mut h = XxHash64::with_seed(0x5eed);
    h.write(piece.as_bytes());
    (h.finish() % u64::from(VOCAB)) as u32
}

#[derive(Clone, Copy, PartialEq)]
enum Class {
    Word,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_alphanumeric() || c == '_' {
        Class::Word
    } else if c.is_whitespace() {
        Class::Space
    } else {
        Class::Other
    }
}

/// Iterator over the token pieces of `text` (their concatenation is `text`): a word (with one leading space folded in) is cut into
/// pieces of at most [`PIECE_CHARS`] characters; each punctuation character is a piece;
/// runs of whitespace not folded into a word are one piece.
pub fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let mut chars = rest.char_indices().peekable();
        let (_, first) = chars.next()?;
        let end = match class(first) {
            Class::Other => first.len_utf8(),
            Class::Space => {
                // A single space before a word belongs to the word (" hello").
                let next = rest[first.len_utf8()..].chars().next();
                if first == ' ' && next.is_some_and(|c| class(c) == Class::Word) {
                    word_end(rest, first.len_utf8(), PIECE_CHARS + 1)
                } else {
                    run_end(rest, Class::Space)
                }
            }
            Class::Word => word_end(rest, 0, PIECE_CHARS),
        };
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Byte index where a word piece starting at `start` ends: after at most `limit` chars
/// (counting from 0) or at the first non-word char.
fn word_end(s: &str, start: usize, limit: usize) -> usize {
    let first = usize::from(start > 0);
    for (n, (i, c)) in (first..).zip(s[start..].char_indices()) {
        if class(c) != Class::Word || n >= limit {
            return start + i;
        }
    }
    s.len()
}

fn run_end(s: &str, cls: Class) -> usize {
    s.char_indices()
        .find(|&(_, c)| class(c) != cls)
        .map_or(s.len(), |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Vec<&str> {
        pieces(s).collect()
    }

    #[test]
    fn pieces_cover_the_text_exactly() {
        let s = "Hello, world!  Tokenization\tis fun: naïve café 123456789";
        assert_eq!(split(s).concat(), s);
    }

    #[test]
    fn words_and_punctuation() {
        assert_eq!(
            split("Hi there, friend."),
            vec!["Hi", " ther", "e", ",", " frie", "nd", "."]
        );
        assert_eq!(split("a  b"), vec!["a", "  ", "b"]);
    }

    #[test]
    fn about_four_chars_per_token_on_english() {
        let s = "The quick brown fox jumps over the lazy dog while the scheduler batches \
                 requests and the cache keeps their prefixes for later reuse by others.";
        let ratio = s.len() as f64 / count(s) as f64;
        assert!((3.0..5.5).contains(&ratio), "{ratio}");
    }

    #[test]
    fn shared_prefix_gives_shared_ids_and_is_deterministic() {
        let a = tokenize("You are a helpful assistant. Answer: what is 2+2?");
        let b = tokenize("You are a helpful assistant. Answer: name a colour.");
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        assert!(common >= 8, "{common}");
        assert_eq!(
            a,
            tokenize("You are a helpful assistant. Answer: what is 2+2?")
        );
        assert_eq!(
            a.len(),
            count("You are a helpful assistant. Answer: what is 2+2?")
        );
    }
}
