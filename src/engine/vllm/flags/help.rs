//! `vllm serve --help`-style listings, laid out as Python 3.12's argparse lays them out
//! (invocations padded to column 24, help wrapped at 78 columns, arguments sorted by
//! option string within each group as vLLM's `SortedHelpFormatter` does). forge snapshots
//! a real engine's `--help=all` and validates rendered flags against it; this listing is
//! the simulator's answer to the same question.

use super::argparse::USAGE;
use super::table::{Flag, Kind, Version, flags_for};

const HELP_POSITION: usize = 24;
const WIDTH: usize = 78;
const DESCRIPTION: &str =
    "Launch a local OpenAI-compatible API server to serve LLM\ncompletions via HTTP.";
const JSON_TIP: &str = "When passing JSON CLI arguments, the following sets of arguments are \
equivalent:\n   --json-arg '{\"key1\": \"value1\", \"key2\": {\"key3\": \"value2\"}}'\n   \
--json-arg.key1 value1 --json-arg.key2.key3 value2";

/// The full listing (`vllm serve --help=all`).
pub fn help_text(version: Version) -> String {
    let mut out = format!("{USAGE}\n\n{DESCRIPTION}\n\n");
    out.push_str("positional arguments:\n");
    out.push_str(&entry(
        "model_tag",
        "The model tag to serve (optional if specified in config)",
    ));
    out.push_str("\noptions:\n");
    out.push_str(&entry("-h, --help", "show this help message and exit"));
    for group in groups(version) {
        out.push('\n');
        out.push_str(&section(&group, version));
    }
    out.push('\n');
    out.push_str(JSON_TIP);
    out.push('\n');
    out
}

/// `vllm serve --help=KEY`: `all`, a group title (`cacheconfig`), or a substring of
/// option names; an empty key gives the short summary.
pub fn help_for(version: Version, key: &str) -> String {
    let key = key.to_ascii_lowercase().replace('_', "-");
    if key == "all" {
        return help_text(version);
    }
    if key.is_empty() {
        return summary(version);
    }
    if let Some(g) = groups(version)
        .into_iter()
        .find(|g| g.to_ascii_lowercase() == key)
    {
        return format!("{}\n{JSON_TIP}\n", section(&g, version));
    }
    let matched: Vec<&Flag> = flags_for(version)
        .filter(|f| f.option_strings(version).iter().any(|o| o.contains(&key)))
        .collect();
    if matched.is_empty() {
        return format!(
            "No group or arguments matching '{key}'.\nUse '--help' to see available groups or \
             '--help=all' to see all available parameters.\n"
        );
    }
    let mut out = format!("Arguments matching '{key}':\n");
    for f in sorted(matched, version) {
        out.push_str(&entry(&invocation(f, version), f.help));
    }
    out
}

fn summary(version: Version) -> String {
    let mut out = format!("{USAGE}\n\n{DESCRIPTION}\n\nConfig Groups:\n");
    for g in groups(version) {
        out.push_str(&format!("  {g}\n"));
    }
    out.push_str(
        "\nFor full list:            vllm serve --help=all\nFor a section:            \
         vllm serve --help=ModelConfig    (case-insensitive)\nFor a flag:               \
         vllm serve --help=max-model-len  (_ or - accepted)\n",
    );
    out
}

/// Group titles in table order.
fn groups(version: Version) -> Vec<String> {
    let mut titles: Vec<String> = Vec::new();
    for f in flags_for(version) {
        if !titles.iter().any(|t| t == f.group) {
            titles.push(f.group.to_string());
        }
    }
    titles
}

fn section(group: &str, version: Version) -> String {
    let flags: Vec<&Flag> = flags_for(version).filter(|f| f.group == group).collect();
    let mut out = format!("{group}:\n");
    for f in sorted(flags, version) {
        out.push_str(&entry(&invocation(f, version), f.help));
    }
    out
}

/// `SortedHelpFormatter`: by the list of option strings.
fn sorted(mut flags: Vec<&Flag>, version: Version) -> Vec<&Flag> {
    flags.sort_by_key(|f| f.option_strings(version));
    flags
}

/// argparse's `_format_action_invocation` (Python 3.12: the metavar after every option
/// string).
fn invocation(f: &Flag, version: Version) -> String {
    let strings = f.option_strings(version);
    if f.kind.is_switch() {
        return strings.join(", ");
    }
    let args = metavar(f);
    strings
        .iter()
        .map(|s| format!("{s} {args}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn metavar(f: &Flag) -> String {
    let dest = f
        .long
        .trim_start_matches("--")
        .replace('-', "_")
        .to_uppercase();
    match f.kind {
        Kind::Choice(c) => format!("{{{}}}", c.join(",")),
        Kind::IntChoice(c) => {
            let items: Vec<String> = c.iter().map(|i| i.to_string()).collect();
            format!("{{{}}}", items.join(","))
        }
        Kind::StrList | Kind::IntList(_) => format!("{dest} [{dest} ...]"),
        _ => dest,
    }
}

/// One help entry: the invocation at indent 2, the help at column 24 (on the next line
/// when the invocation is too wide), wrapped.
fn entry(invocation: &str, help: &str) -> String {
    let lines = wrap(help, WIDTH - HELP_POSITION);
    let pad = " ".repeat(HELP_POSITION);
    let mut out = if invocation.len() + 2 <= HELP_POSITION - 2 {
        format!("  {invocation:<w$}  ", w = HELP_POSITION - 4)
    } else {
        format!("  {invocation}\n{pad}")
    };
    out.push_str(&lines.join(&format!("\n{pad}")));
    out.push('\n');
    out
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    lines.push(line);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_has_every_flag_of_the_version() {
        let text = help_text(Version::V0_33);
        assert!(text.starts_with("usage: vllm serve [model_tag] [options]\n"));
        for f in flags_for(Version::V0_33) {
            assert!(text.contains(f.long), "{}", f.long);
        }
        assert!(text.contains("--enable-prefix-caching, --disable-prefix-caching"));
        assert!(
            text.contains("--tensor-parallel-size TENSOR_PARALLEL_SIZE, -tp TENSOR_PARALLEL_SIZE")
        );
        assert!(!text.contains("--swap-space"));
        let old = help_text(Version::V0_10);
        assert!(old.contains("--swap-space SWAP_SPACE"));
        assert!(old.contains("--enable-prefix-caching, --no-enable-prefix-caching"));
        assert!(!old.contains("--performance-mode"));
    }

    #[test]
    fn entries_align_like_argparse() {
        assert_eq!(
            entry("--port PORT", "Port number."),
            format!("  {:<20}  Port number.\n", "--port PORT")
        );
        let long = entry("--max-num-seqs MAX_NUM_SEQS", "x");
        assert_eq!(
            long,
            format!("  --max-num-seqs MAX_NUM_SEQS\n{}x\n", " ".repeat(24))
        );
    }

    #[test]
    fn help_for_keys() {
        assert!(help_for(Version::V0_33, "CacheConfig").starts_with("CacheConfig:\n"));
        assert!(help_for(Version::V0_33, "max_model_len").contains("--max-model-len"));
        assert!(help_for(Version::V0_33, "zzz").starts_with("No group or arguments"));
        assert!(help_for(Version::V0_33, "").contains("Config Groups:"));
    }
}
