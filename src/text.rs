//! Text input files as people write them: decoding that names the line and column of the
//! first byte that is not UTF-8, and parser messages with their own ` at line L column C`
//! taken out, so an error says its place once, in front, as `FILE:LINE`.

use std::path::Path;

/// Where a text stops being UTF-8 (1-based line, 1-based byte column, the byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadUtf8 {
    /// Line of the first invalid byte.
    pub line: usize,
    /// Its byte column within the line.
    pub column: usize,
    /// The byte itself.
    pub byte: u8,
}

impl BadUtf8 {
    /// The `why` of a `FILE:LINE: field: why` message (the line goes in front).
    pub fn why(&self) -> String {
        format!(
            "not valid UTF-8 (byte 0x{:02x} at column {}); save the file as UTF-8",
            self.byte, self.column
        )
    }
}

/// The byte-order mark some editors (Notepad, Excel's "UTF-8 CSV") put in front of UTF-8.
const BOM: &str = "\u{feff}";

/// `bytes` as UTF-8 without a leading byte-order mark, or where the first invalid byte is.
pub fn decode(bytes: &[u8]) -> Result<&str, BadUtf8> {
    std::str::from_utf8(bytes)
        .map(|t| t.strip_prefix(BOM).unwrap_or(t))
        .map_err(|e| locate(bytes, e.valid_up_to()))
}

/// Whether `c` is a Unicode format or bidirectional-control character (U+202E reverses
/// what follows on a terminal, U+200B hides a word break): text from outside — an LLM's
/// rationale, an engine's log — loses these before it reaches a journal or a report.
pub fn is_format_char(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffb}'
        | '\u{e0000}'..='\u{e007f}')
}

/// The place of byte `at` of `bytes`.
fn locate(bytes: &[u8], at: usize) -> BadUtf8 {
    let before = &bytes[..at.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    BadUtf8 {
        line: before.iter().filter(|b| **b == b'\n').count() + 1,
        column: before.len() - line_start + 1,
        byte: bytes.get(at).copied().unwrap_or_default(),
    }
}

/// Why a text file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be read at all (the OS error's text).
    #[error("{0}")]
    Io(String),
    /// It is not UTF-8.
    #[error("line {}: {}", .0.line, .0.why())]
    NotUtf8(BadUtf8),
}

impl ReadError {
    /// `FILE: why` or `FILE:LINE: why`: the message an input error starts with.
    pub fn at(&self, path: &Path) -> String {
        match self {
            ReadError::Io(e) => format!("{}: {e}", path.display()),
            ReadError::NotUtf8(b) => format!("{}:{}: {}", path.display(), b.line, b.why()),
        }
    }
}

/// Read a UTF-8 text file.
pub fn read(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|e| ReadError::Io(e.to_string()))?;
    let text = String::from_utf8(bytes)
        .map_err(|e| ReadError::NotUtf8(locate(e.as_bytes(), e.utf8_error().valid_up_to())))?;
    Ok(match text.strip_prefix(BOM) {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

/// A content key: XxHash64 of `bytes` as 16 hex digits (fast, stable across runs and
/// machines; not a cryptographic hash). What build stamps and caches are keyed by.
pub fn content_hash(bytes: &[u8]) -> String {
    use std::hash::Hasher;
    let mut h = twox_hash::XxHash64::with_seed(0);
    h.write(bytes);
    format!("{:016x}", h.finish())
}

/// A parser's message without the ` at line L column C` it appends (serde_json,
/// serde_norway and libyaml all do), for callers that put the place in front.
pub fn without_location(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        match location_len(after) {
            Some(n) => rest = &after[n..],
            None => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Length of `L column C` at the start of `s` (digits, ` column `, digits).
fn location_len(s: &str) -> Option<usize> {
    let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
    let line = digits(s);
    let tail = s[line..].strip_prefix(" column ")?;
    let column = digits(tail);
    (line > 0 && column > 0).then_some(line + " column ".len() + column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_byte_is_placed_by_line_and_column() {
        assert_eq!(decode(b"ok\nfine"), Ok("ok\nfine"));
        let bad = decode(b"{\"a\":1}\n{\"p\":\"x\xff\xfe\"}\n").unwrap_err();
        assert_eq!(
            bad,
            BadUtf8 {
                line: 2,
                column: 8,
                byte: 0xff
            }
        );
        assert_eq!(
            bad.why(),
            "not valid UTF-8 (byte 0xff at column 8); save the file as UTF-8"
        );
        assert_eq!(decode(b"\xfe").unwrap_err().line, 1);
        // A sequence cut short at the end of the text.
        assert_eq!(decode(b"a\n\xe2\x82").unwrap_err().column, 1);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_text() {
        assert_eq!(decode(b"\xef\xbb\xbf{\"a\":1}"), Ok("{\"a\":1}"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        std::fs::write(&p, b"\xef\xbb\xbfa: 1\n").unwrap();
        assert_eq!(read(&p).unwrap(), "a: 1\n");
    }

    #[test]
    fn bidi_controls_are_format_characters() {
        for c in ['\u{202e}', '\u{200b}', '\u{2066}', '\u{feff}', '\u{e0041}'] {
            assert!(is_format_char(c), "{c:?}");
        }
        for c in ['a', 'é', '€', '中', ' ', '→'] {
            assert!(!is_format_char(c), "{c:?}");
        }
    }

    #[test]
    fn reading_names_the_file_and_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.yaml");
        std::fs::write(&p, b"a: 1\nb: \xff\n").unwrap();
        let e = read(&p).unwrap_err();
        assert_eq!(
            e.at(&p),
            format!(
                "{}:2: not valid UTF-8 (byte 0xff at column 4); save the file as UTF-8",
                p.display()
            )
        );
        let missing = dir.path().join("none");
        let e = read(&missing).unwrap_err().at(&missing);
        assert_eq!(
            e.matches("No such file").count(),
            1,
            "the OS error once: {e}"
        );
        std::fs::write(&p, "é\n").unwrap();
        assert_eq!(read(&p).unwrap(), "é\n");
    }

    #[test]
    fn parser_locations_are_taken_out() {
        assert_eq!(
            without_location("invalid type: sequence, expected a string at line 2 column 8"),
            "invalid type: sequence, expected a string"
        );
        assert_eq!(
            without_location(
                "did not find expected ',' or ']' at line 3 column 1, while parsing a flow \
                 sequence at line 2 column 17"
            ),
            "did not find expected ',' or ']', while parsing a flow sequence"
        );
        assert_eq!(without_location("look at line 7"), "look at line 7");
        assert_eq!(without_location("at line 1 column 1"), "at line 1 column 1");
    }
}
