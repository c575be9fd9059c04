//! The `vllm serve` command line: a versioned flag [`table`], an argparse-compatible
//! [`parse`] (errors read exactly as vLLM's do, exit 2), a [`render`] that turns
//! [`VllmArgs`] back into argv for a given vLLM version (every value checked against the
//! flag's allowlist), and a `--help=all`-like [`help_text`].
//!
//! `parse(render(a)) == a` for every renderable `a` (property-tested below), so a recipe
//! survives the trip through a command line unchanged.

mod apply;
mod argparse;
mod help;
mod render;
pub mod table;
mod value;

pub use apply::ServerOptions;
pub use argparse::{ArgparseError, USAGE, human_readable_int, py_int};
pub use help::{help_for, help_text};
pub use render::{Piece, RenderError, render, render_pieces};
pub use table::{Conv, FLAGS, Flag, Kind, ServerField, Target, Version, flags_for, lookup};
pub use value::{Value, py_repr_float, py_repr_str};

use crate::engine::vllm::VllmArgs;

/// Everything a `vllm serve` command line says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedArgs {
    /// Engine arguments (`None` = vLLM's default).
    pub args: VllmArgs,
    /// Server options the simulator honours.
    pub server: ServerOptions,
    /// Accepted flags forge ignores (non-performance), as typed.
    pub ignored: Vec<String>,
    /// `(dest, value)` of every flag given, in order, for vLLM's `non-default args` log
    /// line. `--api-key` is never recorded.
    pub set: Vec<(String, Value)>,
    /// `Some("")` for `--help`, `Some(KEY)` for `--help=KEY`; nothing else is parsed then.
    pub help: Option<String>,
}

/// Parse the words after `vllm serve` (model tag first or anywhere) as vLLM `version`
/// would. Returns the engine arguments and the accepted-but-ignored flags.
pub fn parse(argv: &[String], version: Version) -> Result<(VllmArgs, Vec<String>), ArgparseError> {
    let p = parse_full(argv, version)?;
    Ok((p.args, p.ignored))
}

/// [`parse`], keeping server options, the non-default list and any help request.
pub fn parse_full(argv: &[String], version: Version) -> Result<ParsedArgs, ArgparseError> {
    let raw = argparse::parse_raw(argv, version)?;
    let mut out = ParsedArgs {
        help: raw.help,
        ..ParsedArgs::default()
    };
    if out.help.is_some() {
        return Ok(out);
    }
    for occ in &raw.occurrences {
        apply::apply(&mut out, occ)?;
    }
    out.args.model = raw.model.unwrap_or_default();
    Ok(out)
}

impl ParsedArgs {
    /// vLLM's startup line body: `{'model_tag': 'm', 'max_num_seqs': 8, 'model': 'm'}`.
    pub fn non_default_repr(&self) -> String {
        let model = py_repr_str(&self.args.model);
        let mut items = vec![format!("'model_tag': {model}")];
        items.extend(
            self.set
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr_str(k), v.py_repr())),
        );
        items.push(format!("'model': {model}"));
        format!("{{{}}}", items.join(", "))
    }
}

#[cfg(test)]
mod tests;
