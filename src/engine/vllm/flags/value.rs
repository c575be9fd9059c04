//! Parsed flag values and their Python `repr`, which is how vLLM prints them (argparse
//! error messages quote values with `repr`; the `non-default args: {...}` startup line is
//! a Python dict).

/// A converted flag value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A switch (`--x` true, `--no-x` false).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string (also a choice).
    Str(String),
    /// A JSON value.
    Json(serde_json::Value),
    /// `nargs="+"` strings.
    StrList(Vec<String>),
    /// `nargs="+"` integers.
    IntList(Vec<i64>),
    /// Python `None` (`--seed None`).
    None,
}

/// Python's `repr` of a string: single quotes unless the text has a single quote and no
/// double quote.
pub fn py_repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `repr` of a float (`1.0`, `0.9`, `1e-05`, `inf`).
pub fn py_repr_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') { s } else { format!("{s}.0") }
}

impl Value {
    /// Python `repr` of the value as argparse stores it.
    pub fn py_repr(&self) -> String {
        match self {
            Value::Bool(b) => if *b { "True" } else { "False" }.into(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => py_repr_float(*f),
            Value::Str(s) => py_repr_str(s),
            Value::Json(j) => json_py_repr(j),
            Value::StrList(v) => {
                let items: Vec<String> = v.iter().map(|s| py_repr_str(s)).collect();
                format!("[{}]", items.join(", "))
            }
            Value::IntList(v) => {
                let items: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                format!("[{}]", items.join(", "))
            }
            Value::None => "None".into(),
        }
    }
}

/// Python `repr` of the object `json.loads` would build.
fn json_py_repr(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "None".into(),
        J::Bool(b) => if *b { "True" } else { "False" }.into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => py_repr_float(n.as_f64().unwrap_or_default()),
        },
        J::String(s) => py_repr_str(s),
        J::Array(a) => {
            let items: Vec<String> = a.iter().map(json_py_repr).collect();
            format!("[{}]", items.join(", "))
        }
        J::Object(o) => {
            let items: Vec<String> = o
                .iter()
                .map(|(k, v)| format!("{}: {}", py_repr_str(k), json_py_repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reprs_match_python() {
        assert_eq!(py_repr_str("bf16"), "'bf16'");
        assert_eq!(py_repr_str("it's"), "\"it's\"");
        assert_eq!(py_repr_str("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(py_repr_float(0.9), "0.9");
        assert_eq!(py_repr_float(1.0), "1.0");
        assert_eq!(py_repr_float(1e-5), "1e-05");
        assert_eq!(py_repr_float(2.5e20), "2.5e+20");
        assert_eq!(Value::Bool(true).py_repr(), "True");
        assert_eq!(
            Value::StrList(vec!["a".into(), "b".into()]).py_repr(),
            "['a', 'b']"
        );
        assert_eq!(
            Value::Json(serde_json::json!({"method": "ngram", "n": 3, "x": null})).py_repr(),
            "{'method': 'ngram', 'n': 3, 'x': None}"
        );
    }
}
