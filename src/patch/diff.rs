//! The unified-diff reader: git's format (`diff --git`, extended headers, renames, modes,
//! binary patches) and plain `diff -u` output, read into [`Diff`] — per file its paths,
//! kind, modes, binary flag, added lines (with their line numbers in the new file) and
//! removed-line count. This is what [`super::safety`] judges, so it must see every path
//! git would write: names are read the way `git apply -p1` reads them (one leading
//! directory stripped from `---`/`+++` and `diff --git` names, C-style quoted names
//! unquoted) and a git header whose names disagree is refused as malformed, like git does.
//!
//! Malformed input is a [`ParseError`] naming the 1-based line; no input panics (property
//! tests below). Text before the first file header (a mail's commit message) is skipped;
//! after it, a `+`/`-`/` ` line outside a hunk is an error (a hunk whose counts are short).

use std::fmt::Write as _;

/// A unified diff, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    /// The files it touches, in order.
    pub files: Vec<FilePatch>,
    /// The length of the diff text in bytes.
    pub bytes: usize,
}

/// What a file patch does to its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Changes an existing file in place (content or mode).
    Modify,
    /// Creates a file.
    Add,
    /// Deletes a file.
    Delete,
    /// Moves a file (`rename from`/`rename to`), maybe changing it too.
    Rename,
    /// Copies a file (`copy from`/`copy to`), maybe changing the copy.
    Copy,
}

/// One file's part of a diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilePatch {
    /// The path before, relative to the checkout (`None` for `/dev/null`: a new file).
    pub old_path: Option<String>,
    /// The path after (`None` for `/dev/null`: a deleted file).
    pub new_path: Option<String>,
    /// What happens to the file.
    pub kind: Kind,
    /// The mode before, when the diff says (`deleted file mode`, `old mode`, `index`).
    pub old_mode: Option<u32>,
    /// The mode after, when the diff says (`new file mode`, `new mode`, `index`);
    /// `0o120000` is a symlink, `0o100755` an executable.
    pub new_mode: Option<u32>,
    /// A binary patch (`GIT binary patch`, `Binary files … differ`).
    pub binary: bool,
    /// The lines it adds.
    pub added: Vec<AddedLine>,
    /// How many lines it removes.
    pub removed: usize,
    /// The 1-based line of the diff where this file's header starts.
    pub line: usize,
}

/// One added line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedLine {
    /// Its 1-based line number in the new file.
    pub new_line: u64,
    /// Its text, without the leading `+`.
    pub text: String,
}

/// Why a diff could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    /// The 1-based line of the diff.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

impl FilePatch {
    fn new(line: usize) -> Self {
        FilePatch {
            old_path: None,
            new_path: None,
            kind: Kind::Modify,
            old_mode: None,
            new_mode: None,
            binary: false,
            added: Vec::new(),
            removed: 0,
            line,
        }
    }

    /// The paths it names (old, then new when it differs), for checks on every path.
    pub fn paths(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.old_path.iter().map(String::as_str).collect();
        if let Some(new) = &self.new_path
            && self.old_path.as_ref() != Some(new)
        {
            out.push(new);
        }
        out
    }

    /// The path to name in messages: the new one, else the old one.
    pub fn name(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("(unnamed)")
    }
}

impl Diff {
    /// Added plus removed lines over all files.
    pub fn changed_lines(&self) -> usize {
        self.files.iter().map(|f| f.added.len() + f.removed).sum()
    }
}

/// Read a unified diff.
pub fn parse(text: &str) -> Result<Diff, ParseError> {
    let lines: Vec<&str> = text.split_inclusive('\n').map(trim_eol).collect();
    let mut parser = Parser {
        lines,
        i: 0,
        files: Vec::new(),
    };
    parser.run()?;
    Ok(Diff {
        files: parser.files,
        bytes: text.len(),
    })
}

fn trim_eol(line: &str) -> &str {
    line.strip_suffix('\n').unwrap_or(line)
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    /// The index of the next line to read (its line number is `i + 1`).
    i: usize,
    files: Vec<FilePatch>,
}

impl<'a> Parser<'a> {
    fn peek(&self, at: usize) -> Option<&'a str> {
        self.lines.get(at).copied()
    }

    fn run(&mut self) -> Result<(), ParseError> {
        while let Some(line) = self.peek(self.i) {
            if line.starts_with("diff --git ") {
                self.git_file()?;
            } else if self.at_plain_header() {
                let mut file = FilePatch::new(self.i + 1);
                self.plain_names(&mut file, None)?;
                self.hunks(&mut file)?;
                self.push(file)?;
            } else if let Some(names) = binary_files_line(line) {
                self.plain_binary(names);
            } else {
                self.between(line)?;
            }
        }
        if self.files.is_empty() {
            return err(
                self.lines.len().max(1),
                "no diff here: no `diff --git` or `---`/`+++` file header",
            );
        }
        Ok(())
    }

    /// A line outside any file's header or hunks.
    fn between(&mut self, line: &str) -> Result<(), ParseError> {
        let no = self.i + 1;
        if line.starts_with("@@") {
            return err(no, "hunk with no file header before it");
        }
        let hunk_like = line.starts_with('+') || line.starts_with('-') || line.starts_with(' ');
        let separator = matches!(line, "--" | "-- " | "---");
        if hunk_like && !self.files.is_empty() && !separator {
            return err(
                no,
                "a `+`, `-` or ` ` line outside any hunk (a hunk header's counts are short?)",
            );
        }
        self.i += 1;
        Ok(())
    }

    fn at_plain_header(&self) -> bool {
        let here = self.peek(self.i).unwrap_or("");
        let next = self.peek(self.i + 1).unwrap_or("");
        here.starts_with("--- ") && next.starts_with("+++ ")
    }

    fn push(&mut self, mut file: FilePatch) -> Result<(), ParseError> {
        if file.old_path.is_none() && file.new_path.is_none() {
            return err(
                file.line,
                "file header names no file (both sides /dev/null)",
            );
        }
        if file.kind == Kind::Modify && file.old_path != file.new_path {
            // Git reads differing names as a move.
            file.kind = Kind::Rename;
        }
        self.files.push(file);
        Ok(())
    }

    /// `diff --git a/X b/Y`, its extended header lines, then names, hunks or binary.
    fn git_file(&mut self) -> Result<(), ParseError> {
        let no = self.i + 1;
        let line = self.peek(self.i).unwrap_or("");
        let mut file = FilePatch::new(no);
        let rest = &line["diff --git ".len()..];
        let names = git_header_names(rest, no)?;
        self.i += 1;
        while let Some(line) = self.peek(self.i) {
            if !self.extended(&mut file, line)? {
                break;
            }
            self.i += 1;
        }
        if self.at_plain_header() {
            self.plain_names(&mut file, names.as_ref())?;
        }
        if names.is_none() {
            header_fits_rename(rest, &file, no)?;
        }
        self.settle_git_names(&mut file, names, no)?;
        match self.peek(self.i) {
            Some("GIT binary patch") => self.skip_binary(&mut file),
            Some(l) if binary_files_line(l).is_some() => {
                file.binary = true;
                self.i += 1;
            }
            _ => self.hunks(&mut file)?,
        }
        self.push(file)
    }

    /// One extended header line; false when `line` is not one (the header ends).
    fn extended(&mut self, file: &mut FilePatch, line: &str) -> Result<bool, ParseError> {
        let no = self.i + 1;
        if let Some(m) = line.strip_prefix("new file mode ") {
            file.kind = Kind::Add;
            file.new_mode = Some(mode(m, no)?);
        } else if let Some(m) = line.strip_prefix("deleted file mode ") {
            file.kind = Kind::Delete;
            file.old_mode = Some(mode(m, no)?);
        } else if let Some(m) = line.strip_prefix("old mode ") {
            file.old_mode = Some(mode(m, no)?);
        } else if let Some(m) = line.strip_prefix("new mode ") {
            file.new_mode = Some(mode(m, no)?);
        } else if let Some(p) = line.strip_prefix("rename from ") {
            file.kind = Kind::Rename;
            file.old_path = Some(unquote(p, no)?);
        } else if let Some(p) = line.strip_prefix("rename to ") {
            file.kind = Kind::Rename;
            file.new_path = Some(unquote(p, no)?);
        } else if let Some(p) = line.strip_prefix("copy from ") {
            file.kind = Kind::Copy;
            file.old_path = Some(unquote(p, no)?);
        } else if let Some(p) = line.strip_prefix("copy to ") {
            file.kind = Kind::Copy;
            file.new_path = Some(unquote(p, no)?);
        } else if let Some(rest) = line.strip_prefix("index ") {
            index_mode(file, rest, no)?;
        } else {
            return Ok(
                line.starts_with("similarity index ") || line.starts_with("dissimilarity index ")
            );
        }
        Ok(true)
    }

    /// The names of a git file patch: `diff --git` names, checked against `---`/`+++`
    /// and `rename`/`copy` lines (git refuses a patch where they disagree).
    fn settle_git_names(
        &self,
        file: &mut FilePatch,
        names: Option<(String, String)>,
        no: usize,
    ) -> Result<(), ParseError> {
        if let Some((old, new)) = names {
            if matches!(file.kind, Kind::Rename | Kind::Copy) {
                agree(&file.old_path, &old, "old", no)?;
                agree(&file.new_path, &new, "new", no)?;
            }
            if file.kind != Kind::Add && file.old_path.is_none() {
                file.old_path = Some(old);
            }
            if file.kind != Kind::Delete && file.new_path.is_none() {
                file.new_path = Some(new);
            }
        }
        // Every name read is judged, so none may be dropped here.
        let stray_old = file.kind == Kind::Add && file.old_path.is_some();
        let stray_new = file.kind == Kind::Delete && file.new_path.is_some();
        if stray_old || stray_new {
            return err(
                no,
                "a new file must come from /dev/null, a deleted one go to it",
            );
        }
        if file.old_path.is_none() && file.new_path.is_none() {
            return err(
                no,
                "cannot tell the file's name from this `diff --git` header",
            );
        }
        Ok(())
    }

    /// `--- OLD` and `+++ NEW` (the cursor is on `---`); checked against the git
    /// header's names when there are some.
    fn plain_names(
        &mut self,
        file: &mut FilePatch,
        git: Option<&(String, String)>,
    ) -> Result<(), ParseError> {
        let no = self.i + 1;
        let old_line = self.peek(self.i).unwrap_or("");
        let new_line = self.peek(self.i + 1).unwrap_or("");
        let old = header_name(&old_line[4..], no)?;
        let new = header_name(&new_line[4..], no + 1)?;
        self.i += 2;
        if let Some((g_old, g_new)) = git {
            if let Some(o) = &old
                && o != g_old
            {
                return err(
                    no,
                    "inconsistent old filename: `---` and `diff --git` differ",
                );
            }
            if let Some(n) = &new
                && n != g_new
            {
                return err(
                    no + 1,
                    "inconsistent new filename: `+++` and `diff --git` differ",
                );
            }
        }
        match (&old, &new) {
            (None, None) => return err(no, "both `---` and `+++` are /dev/null"),
            (None, Some(_)) => file.kind = Kind::Add,
            (Some(_), None) => file.kind = Kind::Delete,
            _ => {}
        }
        if git.is_none() || file.kind == Kind::Modify {
            file.old_path = old.or(file.old_path.take());
            file.new_path = new.or(file.new_path.take());
        }
        Ok(())
    }

    /// `Binary files A and B differ` with no git header (plain `diff` output); `inner`
    /// is `A and B`.
    fn plain_binary(&mut self, inner: &str) {
        let mut file = FilePatch::new(self.i + 1);
        file.binary = true;
        if let Some((a, b)) = inner.split_once(" and ") {
            file.old_path = strip_component(a.trim());
            file.new_path = strip_component(b.trim());
        }
        if file.old_path.is_none() && file.new_path.is_none() {
            file.new_path = Some(inner.to_string());
        }
        self.files.push(file);
        self.i += 1;
    }

    /// `GIT binary patch` and its base85 blocks, up to the next file header.
    fn skip_binary(&mut self, file: &mut FilePatch) {
        file.binary = true;
        self.i += 1;
        while let Some(line) = self.peek(self.i) {
            if line.starts_with("diff --git ") || self.at_plain_header() {
                break;
            }
            self.i += 1;
        }
    }

    /// Every `@@` hunk at the cursor.
    fn hunks(&mut self, file: &mut FilePatch) -> Result<(), ParseError> {
        while let Some(line) = self.peek(self.i) {
            if !line.starts_with("@@") {
                break;
            }
            self.hunk(file)?;
        }
        Ok(())
    }

    fn hunk(&mut self, file: &mut FilePatch) -> Result<(), ParseError> {
        let at = self.i + 1;
        let header = self.peek(self.i).unwrap_or("");
        let (_, mut old_left, new_start, mut new_left) = hunk_header(header, at)?;
        self.i += 1;
        let mut new_line = new_start;
        while old_left > 0 || new_left > 0 {
            let Some(line) = self.peek(self.i) else {
                return err(at, short_hunk(at, old_left, new_left, "the input ends"));
            };
            let no = self.i + 1;
            match line.as_bytes().first() {
                Some(b' ') | None if old_left > 0 && new_left > 0 => {
                    old_left -= 1;
                    new_left -= 1;
                    new_line = new_line.saturating_add(1);
                }
                Some(b'-') if old_left > 0 => {
                    old_left -= 1;
                    file.removed += 1;
                }
                Some(b'+') if new_left > 0 => {
                    new_left -= 1;
                    file.added.push(AddedLine {
                        new_line,
                        text: line[1..].to_string(),
                    });
                    new_line = new_line.saturating_add(1);
                }
                Some(b'\\') => {}
                _ => {
                    return err(
                        no,
                        short_hunk(at, old_left, new_left, "this line does not fit"),
                    );
                }
            }
            self.i += 1;
        }
        if self.peek(self.i).is_some_and(|l| l.starts_with('\\')) {
            self.i += 1;
        }
        Ok(())
    }
}

fn short_hunk(at: usize, old_left: u64, new_left: u64, why: &str) -> String {
    format!(
        "the hunk at line {at} expects {old_left} more old and {new_left} more new lines, \
         but {why} (its header's counts do not match its lines)"
    )
}

/// `Binary files A and B differ` → `A and B`.
fn binary_files_line(line: &str) -> Option<&str> {
    line.strip_prefix("Binary files ")?.strip_suffix(" differ")
}

/// `@@ -A[,B] +C[,D] @@…` → (A, B, C, D).
fn hunk_header(line: &str, no: usize) -> Result<(u64, u64, u64, u64), ParseError> {
    let bad = || ParseError {
        line: no,
        message: "malformed hunk header (expected `@@ -A,B +C,D @@`)".to_string(),
    };
    let rest = line.strip_prefix("@@ -").ok_or_else(bad)?;
    let (ranges, _) = rest.split_once(" @@").ok_or_else(bad)?;
    let (old, new) = ranges.split_once(" +").ok_or_else(bad)?;
    let (a, b) = range(old).ok_or_else(bad)?;
    let (c, d) = range(new).ok_or_else(bad)?;
    Ok((a, b, c, d))
}

/// `A[,B]` → (A, B), B defaulting to 1.
fn range(text: &str) -> Option<(u64, u64)> {
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match text.split_once(',') {
        Some((a, b)) => Some((digits(a)?, digits(b)?)),
        None => Some((digits(text)?, 1)),
    }
}

fn mode(text: &str, no: usize) -> Result<u32, ParseError> {
    let text = text.trim_end();
    if text.is_empty() || text.len() > 7 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return err(
            no,
            "malformed file mode (expected octal digits such as 100644)",
        );
    }
    u32::from_str_radix(text, 8).or_else(|_| err(no, "malformed file mode"))
}

/// `index abc..def [MODE]`: a mode here is the file's mode on both sides.
fn index_mode(file: &mut FilePatch, rest: &str, no: usize) -> Result<(), ParseError> {
    if let Some((_, m)) = rest.split_once(' ') {
        let m = mode(m, no)?;
        file.old_mode.get_or_insert(m);
        file.new_mode.get_or_insert(m);
    }
    Ok(())
}

fn agree(named: &Option<String>, git: &str, side: &str, no: usize) -> Result<(), ParseError> {
    match named {
        Some(n) if n != git => err(
            no,
            format!("inconsistent {side} filename: `diff --git` and the rename/copy line differ"),
        ),
        _ => Ok(()),
    }
}

/// The two names of `diff --git A B`, each with its leading directory stripped; `None`
/// when unquoted names with spaces leave the split ambiguous (then the `---`/`+++` or
/// rename lines name the file, as in git).
fn git_header_names(rest: &str, no: usize) -> Result<Option<(String, String)>, ParseError> {
    if rest.starts_with('"') {
        let (first, tail) = quoted_token(rest, no)?;
        let second = tail.strip_prefix(' ').unwrap_or(tail);
        let second = unquote(second, no)?;
        return Ok(strip_both(&first, &second));
    }
    if let Some(pos) = rest.find(" \"") {
        let second = unquote(&rest[pos + 1..], no)?;
        return Ok(strip_both(&rest[..pos], &second));
    }
    Ok(same_name_split(rest).map(|(a, b)| (a.to_string(), b.to_string())))
}

/// `a/X b/X` (unquoted, X may hold spaces) → (X, X): the split at a space where both
/// halves, less their first directory, are the same name. Linear in the line: each
/// candidate compares lengths before bytes, and the next `/` is tracked, not searched.
fn same_name_split(rest: &str) -> Option<(&str, &str)> {
    let first_slash = rest.find('/')?;
    let slashes: Vec<usize> = rest.match_indices('/').map(|(p, _)| p).collect();
    let mut next = 0;
    for (pos, _) in rest.match_indices(' ') {
        if pos < first_slash {
            continue;
        }
        while slashes.get(next).is_some_and(|&s| s <= pos) {
            next += 1;
        }
        let Some(&b_slash) = slashes.get(next) else {
            break;
        };
        let a = &rest[first_slash + 1..pos];
        let b = &rest[b_slash + 1..];
        if a.len() == b.len() && a == b {
            return Some((a, b));
        }
    }
    None
}

/// A `diff --git` line whose names could not be split must still be `P/FROM Q/TO` for the
/// FROM and TO that the rename, copy or `---`/`+++` lines name (quoted names were split
/// already).
fn header_fits_rename(rest: &str, file: &FilePatch, no: usize) -> Result<(), ParseError> {
    let (Some(from), Some(to)) = (&file.old_path, &file.new_path) else {
        return Ok(());
    };
    let fits = rest.split_once('/').is_some_and(|(p, tail)| {
        !p.contains(' ')
            && tail.strip_prefix(from.as_str()).is_some_and(|tail| {
                tail.strip_prefix(' ')
                    .and_then(|t| t.split_once('/'))
                    .is_some_and(|(q, t)| !q.contains(' ') && t == to)
            })
    });
    if fits {
        Ok(())
    } else {
        err(
            no,
            "inconsistent filenames: `diff --git` names other files than the lines below it",
        )
    }
}

fn strip_both(a: &str, b: &str) -> Option<(String, String)> {
    Some((strip_component(a)?, strip_component(b)?))
}

/// The name on a `---`/`+++` line, without its timestamp, unquoted, with its leading
/// directory stripped (`-p1`); `None` for `/dev/null`.
fn header_name(text: &str, no: usize) -> Result<Option<String>, ParseError> {
    let name = if text.starts_with('"') {
        quoted_token(text, no)?.0
    } else {
        // As git: the name runs to a tab (a timestamp follows) or the line's end, less
        // a CR; trailing spaces are part of it.
        let name = text.split('\t').next().unwrap_or("");
        name.trim_end_matches('\r').to_string()
    };
    if name == "/dev/null" {
        return Ok(None);
    }
    match strip_component(&name) {
        Some(n) => Ok(Some(n)),
        None => err(
            no,
            "file name has no leading directory to strip (forge applies with -p1: use a/PATH and b/PATH)",
        ),
    }
}

/// `a/src/x.c` → `src/x.c`; `None` when there is no `/` to strip at. An absolute name
/// (`+++ /etc/x`) stays absolute, so that it is refused rather than quietly read as
/// `etc/x` inside the checkout.
fn strip_component(name: &str) -> Option<String> {
    if name.starts_with('/') {
        return Some(name.to_string());
    }
    name.split_once('/').map(|(_, rest)| rest.to_string())
}

/// A name as git writes it: C-style quoted when it holds unusual bytes, else as is.
fn unquote(text: &str, no: usize) -> Result<String, ParseError> {
    if text.starts_with('"') {
        Ok(quoted_token(text, no)?.0)
    } else {
        Ok(text.to_string())
    }
}

/// A C-style quoted token at the start of `text` → (its value, the text after it).
fn quoted_token(text: &str, no: usize) -> Result<(String, &str), ParseError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut k = 1;
    while k < bytes.len() {
        match bytes[k] {
            b'"' => {
                let value =
                    String::from_utf8(out).or_else(|_| err(no, "quoted file name is not UTF-8"))?;
                return Ok((value, &text[k + 1..]));
            }
            b'\\' => {
                let (byte, used) = escape(&bytes[k + 1..]).ok_or_else(|| ParseError {
                    line: no,
                    message: "bad escape in a quoted file name".to_string(),
                })?;
                out.push(byte);
                k += 1 + used;
            }
            b => {
                out.push(b);
                k += 1;
            }
        }
    }
    err(no, "unterminated quoted file name")
}

/// One escape after a backslash → (the byte, how many bytes it used).
fn escape(rest: &[u8]) -> Option<(u8, usize)> {
    let simple = match rest.first()? {
        b'a' => 7,
        b'b' => 8,
        b't' => b'\t',
        b'n' => b'\n',
        b'v' => 11,
        b'f' => 12,
        b'r' => b'\r',
        b'"' => b'"',
        b'\\' => b'\\',
        b'0'..=b'3' => {
            let digits = rest.get(..3)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let value = digits
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            return Some((u8::try_from(value).ok()?, 3));
        }
        _ => return None,
    };
    Some((simple, 1))
}

/// A name made safe to print: control characters escaped.
pub fn shown(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_control() {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
