//! The first error lines of a build's output, found while the output streams past (a
//! build log can be hundreds of megabytes; nothing here holds more than a few lines):
//! gcc/clang diagnostics (`file:line:col: error: …` and the source line after it),
//! linker errors, CMake's `CMake Error at …` (and its message line), ninja's `FAILED:`
//! (only when nothing better was said) and `ninja: build stopped`, pip's `ERROR: …`. An attempt's `build_failed` record
//! carries these lines.

use regex::Regex;
use std::sync::LazyLock;

/// How many error lines a scan keeps.
pub const MAX_LINES: usize = 12;
/// How many bytes of one line a scan keeps (the log file keeps them all).
pub const MAX_LINE_BYTES: usize = 2048;

/// A compiler diagnostic: `path:line:col: error: …` (also `fatal error:`).
static COMPILER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\S[^:]*:\d+:(\d+:)? (fatal )?error: ").ok());
/// Errors with no source position: the linker, the compiler driver, pip.
static OTHER: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r"(^\S*(collect2|ld|clang|gcc|g\+\+|c\+\+|cc1plus|cc1)(\.\S+)?: (fatal )?error: )|(: undefined reference to )|(^ERROR: )|(^error: )",
    )
    .ok()
});

/// What the line after a matched line is worth keeping for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Follow {
    /// Nothing: the next line is judged on its own.
    No,
    /// The source line a compiler quotes under its diagnostic.
    Next,
    /// The first non-blank line (CMake puts a blank line before its message).
    NextNonBlank,
}

/// Feeds on output lines; keeps the first [`MAX_LINES`] error lines.
#[derive(Debug, Default)]
pub struct ErrorScan {
    kept: Vec<String>,
    follow: Option<Follow>,
    ninja_failed: Option<String>,
    ninja_stopped: Option<String>,
}

impl ErrorScan {
    /// A scan that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// One line of output (without its newline; a `\r` at the end is dropped).
    pub fn feed(&mut self, line: &str) {
        let line = clip(line.trim_end_matches('\r'));
        if self.take_follow(line) {
            return;
        }
        if line.starts_with("ninja: build stopped") {
            self.ninja_stopped.get_or_insert_with(|| line.to_string());
            return;
        }
        if line.starts_with("FAILED: ") {
            self.ninja_failed.get_or_insert_with(|| line.to_string());
            return;
        }
        let follow = matched(line);
        if follow.is_some() && self.kept.len() < MAX_LINES {
            self.kept.push(line.to_string());
            self.follow = follow.filter(|f| *f != Follow::No);
        }
    }

    /// The line after a match, when the match wants it; whether it was consumed.
    fn take_follow(&mut self, line: &str) -> bool {
        match self.follow {
            Some(Follow::NextNonBlank) if line.trim().is_empty() => true,
            Some(Follow::Next | Follow::NextNonBlank) => {
                self.follow = None;
                if matched(line).is_some() {
                    return false;
                }
                if self.kept.len() < MAX_LINES {
                    self.kept.push(line.to_string());
                }
                true
            }
            _ => false,
        }
    }

    /// The kept lines, in the order they came; ninja's first `FAILED: target` first when
    /// nothing else said what failed, and `ninja: build stopped` last, when seen and there
    /// is room.
    pub fn finish(mut self) -> Vec<String> {
        if self.kept.is_empty() {
            self.kept.extend(self.ninja_failed.take());
        }
        if let Some(stopped) = self.ninja_stopped.take()
            && self.kept.len() < MAX_LINES
        {
            self.kept.push(stopped);
        }
        self.kept
    }
}

/// Whether `line` is an error line, and what to do with the line after it.
fn matched(line: &str) -> Option<Follow> {
    if line.starts_with("CMake Error") {
        return Some(Follow::NextNonBlank);
    }
    if COMPILER.as_ref().is_some_and(|re| re.is_match(line)) {
        return Some(Follow::Next);
    }
    if OTHER.as_ref().is_some_and(|re| re.is_match(line)) {
        return Some(Follow::No);
    }
    None
}

/// `line` cut to [`MAX_LINE_BYTES`] at a character boundary.
fn clip(line: &str) -> &str {
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// The error lines of a whole text (a recorded output); the streaming scan, fed at once.
pub fn first_errors(text: &str) -> Vec<String> {
    let mut scan = ErrorScan::new();
    for line in text.lines() {
        scan.feed(line);
    }
    scan.finish()
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
