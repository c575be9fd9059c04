//! What an installed vLLM says it accepts: a parser for the text of `vllm serve --help=all`
//! (or, for versions whose `--help=KEY` is a keyword search, plain `--help`) into the set
//! of option strings, each with its aliases, its negative spelling and its choices.
//!
//! argparse prints one entry per argument, indented two spaces: every option string with
//! its metavar (`--tensor-parallel-size TENSOR_PARALLEL_SIZE, -tp TENSOR_PARALLEL_SIZE`),
//! switches bare (`--enable-prefix-caching, --disable-prefix-caching`), choices as
//! `{a,b}` or — for vLLM's `kv_cache_dtype` in 0.33 — a Python list (`['auto', 'fp8']`).
//! Help text follows on the same line after two spaces, or on the next lines at column 24.
//!
//! Current vLLM's plain `--help` lists only the config groups. A snapshot of it is *empty*,
//! which must never be read as "these flags are absent" (the original forge's defect 4):
//! [`HelpSnapshot::lists_flags`] tells a full listing from a summary.

use std::collections::HashMap;

/// Options every full `vllm serve` listing has; a text without them listed no flags.
const CORE_OPTIONS: &[&str] = &["--max-num-seqs", "--max-model-len", "--port"];

/// One argument as the help lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpEntry {
    /// Every option string, in the order printed (`--tensor-parallel-size`, `-tp`).
    pub names: Vec<String>,
    /// True when the option takes a value (a metavar is printed).
    pub takes_value: bool,
    /// The closed set of values, when the help prints one.
    pub choices: Option<Vec<String>>,
    /// The config group the entry is listed under (`CacheConfig`, `options`).
    pub group: String,
}

impl HelpEntry {
    /// The first option string: argparse's canonical name for the argument.
    pub fn primary(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }

    /// The spelling that turns a boolean off: `--no-x` for `--x`, or vLLM's
    /// `--disable-x` for `--enable-x` (and the reverse). `None` for values and plain
    /// `store_true` switches.
    pub fn negation(&self) -> Option<&str> {
        if self.takes_value {
            return None;
        }
        let primary = self.primary();
        self.names
            .iter()
            .skip(1)
            .map(String::as_str)
            .find(|n| is_negation_of(n, primary))
    }

    /// True when `value` is acceptable: any value when no choices are listed.
    pub fn accepts(&self, value: &str) -> bool {
        self.choices
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == value))
    }
}

/// True when `neg` is argparse's or vLLM's negative spelling of `pos`.
fn is_negation_of(neg: &str, pos: &str) -> bool {
    let Some(rest) = pos.strip_prefix("--") else {
        return false;
    };
    if neg.strip_prefix("--no-") == Some(rest) {
        return true;
    }
    match (rest.strip_prefix("enable-"), rest.strip_prefix("disable-")) {
        (Some(x), _) => neg.strip_prefix("--disable-") == Some(x),
        (_, Some(x)) => neg.strip_prefix("--enable-") == Some(x),
        _ => false,
    }
}

/// Every option a `vllm serve` help text lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HelpSnapshot {
    entries: Vec<HelpEntry>,
    index: HashMap<String, usize>,
}

impl HelpSnapshot {
    /// Parse a help text. Never fails: lines that are not argument entries are skipped,
    /// so a group summary yields an empty snapshot (see [`HelpSnapshot::lists_flags`]).
    pub fn parse(text: &str) -> HelpSnapshot {
        let mut snap = HelpSnapshot::default();
        let mut group = String::from("options");
        for line in text.lines() {
            if let Some(title) = group_title(line) {
                group = title.to_string();
            } else if let Some(entry) = parse_entry(line, &group) {
                snap.push(entry);
            }
        }
        snap
    }

    fn push(&mut self, entry: HelpEntry) {
        let at = self.entries.len();
        for n in &entry.names {
            self.index.entry(n.clone()).or_insert(at);
        }
        self.entries.push(entry);
    }

    /// True when the text listed the flags themselves (not just the config groups, and
    /// not a keyword search's few matches).
    pub fn lists_flags(&self) -> bool {
        CORE_OPTIONS.iter().all(|o| self.index.contains_key(*o))
    }

    /// The entry that lists `option` (any of its spellings).
    pub fn entry(&self, option: &str) -> Option<&HelpEntry> {
        self.index.get(option).map(|i| &self.entries[*i])
    }

    /// True when `option` is one of the listed option strings.
    pub fn has(&self, option: &str) -> bool {
        self.index.contains_key(option)
    }

    /// Every entry, in the order listed.
    pub fn entries(&self) -> &[HelpEntry] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing was listed.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `CacheConfig:` / `options:` at column 0.
fn group_title(line: &str) -> Option<&str> {
    let title = line.strip_suffix(':')?;
    let plain = !title.is_empty()
        && !title.starts_with(' ')
        && title
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '_');
    plain.then_some(title)
}

/// An argument entry: exactly two spaces, then an option string.
fn parse_entry(line: &str, group: &str) -> Option<HelpEntry> {
    let rest = line.strip_prefix("  ")?;
    if !rest.starts_with('-') || rest.starts_with("--json-arg") {
        return None;
    }
    // The invocation ends where the help text starts (two or more spaces).
    let invocation = rest.split("  ").next().unwrap_or(rest).trim_end();
    let mut entry = HelpEntry {
        names: Vec::new(),
        takes_value: false,
        choices: None,
        group: group.to_string(),
    };
    for part in split_invocation(invocation) {
        let (name, metavar) = part.split_once(' ').unwrap_or((part, ""));
        if !name.starts_with('-') {
            return None;
        }
        entry.names.push(name.to_string());
        if !metavar.is_empty() {
            entry.takes_value = true;
            if entry.choices.is_none() {
                entry.choices = choices(metavar);
            }
        }
    }
    (!entry.names.is_empty()).then_some(entry)
}

/// Split `--a A, -b A` into its option parts. A comma followed by a space and a dash
/// starts a new part; commas inside metavars (`{a,b}`, `['a', 'b']`) do not.
fn split_invocation(inv: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let bytes = inv.as_bytes();
    for i in 0..bytes.len() {
        if bytes[i] == b',' && inv[i + 1..].starts_with(" -") {
            parts.push(&inv[start..i]);
            start = i + 2;
        }
    }
    parts.push(&inv[start..]);
    parts
}

/// Choices from a metavar: `{a,b,c}` (closed only when nothing follows it) or a Python
/// list of strings (`['a', 'b']`).
fn choices(metavar: &str) -> Option<Vec<String>> {
    let m = metavar.trim();
    if let Some(inner) = m.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        return Some(inner.split(',').map(|s| s.trim().to_string()).collect());
    }
    let inner = m.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(|s| {
            let s = s.trim();
            s.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .map(str::to_string)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_with_aliases_negations_and_choices() {
        let text = "\
options:
  --disable-log-stats   Disable logging statistics. (default: False)
  -h, --help            show this help message and exit

CacheConfig:
  Configuration for the KV cache.

  --enable-prefix-caching, --disable-prefix-caching
                        Whether to enable prefix caching. (default: None)
  --kv-cache-dtype ['auto', 'bfloat16', 'fp8']
                        Data type for kv cache storage.
  --block-size {1,8,16}
  --tensor-parallel-size TENSOR_PARALLEL_SIZE, -tp TENSOR_PARALLEL_SIZE
  --tool-call-parser {a,b} or name registered in --tool-parser-plugin
  --enforce-eager, --no-enforce-eager
";
        let s = HelpSnapshot::parse(text);
        assert_eq!(s.len(), 8);
        let pc = s.entry("--disable-prefix-caching").unwrap();
        assert_eq!(pc.primary(), "--enable-prefix-caching");
        assert_eq!(pc.negation(), Some("--disable-prefix-caching"));
        assert_eq!(pc.group, "CacheConfig");
        assert_eq!(
            s.entry("--enforce-eager").unwrap().negation(),
            Some("--no-enforce-eager")
        );
        let kv = s.entry("--kv-cache-dtype").unwrap();
        assert!(kv.takes_value && kv.accepts("fp8") && !kv.accepts("bf16"));
        assert_eq!(
            s.entry("--block-size").unwrap().choices,
            Some(vec!["1".into(), "8".into(), "16".into()])
        );
        let tp = s.entry("-tp").unwrap();
        assert_eq!(tp.names, vec!["--tensor-parallel-size", "-tp"]);
        assert_eq!(tp.negation(), None);
        assert_eq!(s.entry("--tool-call-parser").unwrap().choices, None);
        assert_eq!(s.entry("--disable-log-stats").unwrap().negation(), None);
        assert_eq!(s.entry("-h").unwrap().group, "options");
        assert!(!s.lists_flags());
    }

    #[test]
    fn negation_spellings() {
        assert!(is_negation_of("--no-x", "--x"));
        assert!(is_negation_of("--disable-x", "--enable-x"));
        assert!(is_negation_of("--enable-x", "--disable-x"));
        assert!(is_negation_of("--no-disable-x", "--disable-x"));
        assert!(!is_negation_of("-ep", "--enable-x"));
        assert!(!is_negation_of("--disable-y", "--enable-x"));
    }
}
