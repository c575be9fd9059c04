//! What an allowlist is made of: a knob's name, layer, type and legal values, and the check
//! of one value against a table. Each engine's table lives in its own folder
//! (`vllm::knobs`, `llamacpp::knobs`); [`super::allowlist`] picks the table of an engine
//! kind.

use serde_json::Value;

use crate::recipe::{EngineKind, Illegal, Layer};

/// The type and legal values of a knob.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Integer in an inclusive range.
    Int(i64, i64),
    /// Float in an inclusive range.
    Float(f64, f64),
    /// true / false.
    Bool,
    /// One of these strings.
    Choice(&'static [&'static str]),
    /// The file name of a patch of the run's series (`forge tune --source … --patches
    /// DIR`): which names exist is known per run, so the engine checks membership; the
    /// table only checks that it is a plain `*.diff`/`*.patch` file name.
    Patch,
}

/// One allowlisted knob.
#[derive(Debug, Clone, PartialEq)]
pub struct Knob {
    /// Recipe field name.
    pub name: &'static str,
    /// Its layer.
    pub layer: Layer,
    /// Type and range.
    pub kind: Kind,
    /// One line on what it does.
    pub help: &'static str,
    /// Each value is a candidate of its own (a patch, a weight format), not a setting on a
    /// scale: one value's verdict says nothing about another's, so an agent tries each.
    pub alternatives: bool,
}

/// A table row (const, so each engine's table is a `const` slice).
pub const fn knob(name: &'static str, layer: Layer, kind: Kind, help: &'static str) -> Knob {
    Knob {
        name,
        layer,
        kind,
        help,
        alternatives: false,
    }
}

impl Knob {
    /// The same knob, its values alternatives (see [`Knob::alternatives`]).
    pub const fn alternatives(self) -> Knob {
        Knob {
            alternatives: true,
            ..self
        }
    }
}

/// Check one value against `engine`'s allowlist `table`. `Err` says why, in words a user
/// (or an LLM) can act on, and names the knob and value.
pub fn check_in(
    engine: EngineKind,
    table: &[Knob],
    layer: Layer,
    name: &str,
    value: &Value,
) -> Result<(), Illegal> {
    let illegal = |why: String| Illegal::knob(name, value, why);
    let Some(k) = table.iter().find(|k| k.layer == layer && k.name == name) else {
        let known: Vec<&str> = table
            .iter()
            .filter(|k| k.layer == layer)
            .map(|k| k.name)
            .collect();
        return Err(illegal(format!(
            "`{name}` is not a {} knob forge may set for {engine:?} (allowed: {})",
            layer.as_str(),
            known.join(", ")
        )));
    };
    if value.is_null() && layer == Layer::Config {
        return Ok(()); // back to the engine default
    }
    check_kind(name, &k.kind, value).map_err(illegal)
}

fn check_kind(name: &str, kind: &Kind, value: &Value) -> Result<(), String> {
    match kind {
        Kind::Int(lo, hi) => match value.as_i64() {
            Some(v) if (*lo..=*hi).contains(&v) => Ok(()),
            Some(v) => Err(format!("{name}: {v} is outside {lo}..={hi}")),
            None => Err(format!("{name}: expected an integer, got {value}")),
        },
        Kind::Float(lo, hi) => match value.as_f64() {
            Some(v) if v >= *lo && v <= *hi => Ok(()),
            Some(v) => Err(format!("{name}: {v} is outside {lo}..={hi}")),
            None => Err(format!("{name}: expected a number, got {value}")),
        },
        Kind::Bool => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(format!("{name}: expected true or false, got {value}")),
        },
        Kind::Choice([]) => match value {
            Value::String(s) if is_safe_model_id(s) => Ok(()),
            _ => Err(format!("{name}: expected a model id, got {value}")),
        },
        Kind::Patch => match value.as_str() {
            Some(s) if is_patch_name(s) => Ok(()),
            _ => Err(format!(
                "{name}: expected the file name of a patch of the run's series (`NAME.diff` or `NAME.patch`), got {value}"
            )),
        },
        Kind::Choice(choices) => match value.as_str() {
            Some(s) if choices.contains(&s) => Ok(()),
            _ => Err(format!(
                "{name}: {value} is not one of {}",
                choices.join(", ")
            )),
        },
    }
}

pub use crate::recipe::is_safe_model_id;

/// A patch series' file name: letters, digits and `-_.+`, ending `.diff` or `.patch`, not
/// hidden, at most 128 characters (it names a build directory of the run).
pub fn is_patch_name(s: &str) -> bool {
    s.len() <= 128
        && !s.starts_with('.')
        && (s.ends_with(".diff") || s.ends_with(".patch"))
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids() {
        assert!(is_safe_model_id(
            "hugging-quants/Meta-Llama-3.1-8B-Instruct-AWQ-INT4"
        ));
        assert!(!is_safe_model_id("--trust-remote-code"));
        assert!(!is_safe_model_id("x; rm -rf /"));
        assert!(!is_safe_model_id(""));
    }

    #[test]
    fn patch_names() {
        assert!(is_patch_name("01-remove-slowdown.diff"));
        assert!(is_patch_name("fix_v2+rope.patch"));
        for bad in [
            "../x.diff",
            "a/b.diff",
            ".hidden.diff",
            "x.txt",
            "x y.diff",
            "",
        ] {
            assert!(!is_patch_name(bad), "{bad}");
        }
        let table = [knob("patch", Layer::Kernel, Kind::Patch, "")];
        let e = check_in(
            EngineKind::Llamacpp,
            &table,
            Layer::Kernel,
            "patch",
            &Value::from("../../etc/passwd"),
        )
        .unwrap_err();
        assert!(e.why.contains("file name of a patch"), "{e}");
    }
}
