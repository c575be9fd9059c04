//! An emulation of the parts of Python 3.12's `argparse` that `vllm serve` exercises, with
//! vLLM's `FlexibleArgumentParser` preprocessing in front of it:
//!
//! - `--max_num_seqs` is `--max-num-seqs` (underscores in names become dashes);
//! - `-O3`, `-O=3`, `-O 3` are `--optimization-level 3` (before 0.12: `-O 3`, the
//!   compilation config);
//! - `--json-flag.key value` builds the JSON dict of `--json-flag`;
//! - `--help`, `-h`, `--help=KEY` ask for help.
//!
//! Then argparse proper: `--flag value` and `--flag=value`; unique prefixes of long
//! options are accepted (vLLM does not pass `allow_abbrev=False`), ambiguous ones are
//! errors; a value may be a negative number; unknown options and stray positionals are
//! collected and reported together at the end (`unrecognized arguments: --foo 1`), while
//! conversion errors stop at the first one, as argparse does.

use super::table::{Conv, Flag, Kind, Version, flags_for};
use super::value::{Value, py_repr_str};

/// The usage line `vllm serve` prints above every argparse error.
pub const USAGE: &str = "usage: vllm serve [model_tag] [options]";

/// A command line `vllm serve` rejects before doing anything else (argparse exits 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{USAGE}\nvllm serve: error: {message}")]
pub struct ArgparseError {
    /// The text after `vllm serve: error: `.
    pub message: String,
}

impl ArgparseError {
    /// Exit status of a Python program that fails argparse.
    pub const EXIT_CODE: u8 = 2;

    /// An error with argparse's message.
    pub fn new(message: impl Into<String>) -> Self {
        ArgparseError {
            message: message.into(),
        }
    }

    fn for_flag(flag: &Flag, version: Version, why: &str) -> Self {
        ArgparseError::new(format!("argument {}: {why}", flag.display_name(version)))
    }
}

/// One recognised option occurrence.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    /// The flag.
    pub flag: &'static Flag,
    /// The option string as matched (`-tp`, `--disable-prefix-caching`).
    pub option: String,
    /// Argparse's name for the flag in this version, for error messages.
    pub display: String,
    /// The converted value (`Bool(false)` for a negative spelling).
    pub value: Value,
}

/// What argparse produced, before values are applied to forge's types.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawParse {
    /// The positional model tag, if given.
    pub model: Option<String>,
    /// Recognised options in command-line order.
    pub occurrences: Vec<Occurrence>,
    /// `Some("")` for `--help`/`-h`, `Some(KEY)` for `--help=KEY`.
    pub help: Option<String>,
}

/// Run the preprocessing and argparse over `argv` (the words after `vllm serve`).
pub fn parse_raw(argv: &[String], version: Version) -> Result<RawParse, ArgparseError> {
    let (args, help) = preprocess(argv, version);
    let mut out = RawParse {
        help,
        ..RawParse::default()
    };
    if out.help.is_some() {
        return Ok(out);
    }
    let mut extras: Vec<String> = Vec::new();
    let mut i = 0;
    let mut positional_only = false;
    while i < args.len() {
        let arg = &args[i];
        if !positional_only && arg == "--" {
            positional_only = true;
            i += 1;
            continue;
        }
        match classify(arg, version, positional_only)? {
            Class::Positional => {
                positional(&mut out, &mut extras, arg);
                i += 1;
            }
            Class::Unknown => {
                extras.push(arg.clone());
                i += 1;
            }
            Class::Option(m) => i = consume(&mut out, m, &args, i + 1, version)?,
        }
    }
    if extras.is_empty() {
        Ok(out)
    } else {
        Err(ArgparseError::new(format!(
            "unrecognized arguments: {}",
            extras.join(" ")
        )))
    }
}

fn positional(out: &mut RawParse, extras: &mut Vec<String>, arg: &str) {
    if out.model.is_none() {
        out.model = Some(arg.to_string());
    } else {
        extras.push(arg.to_string());
    }
}

/// A matched option: the flag, the option string and an `=value` if one was attached.
#[derive(Debug, Clone)]
struct Match {
    flag: &'static Flag,
    option: String,
    explicit: Option<String>,
}

enum Class {
    Positional,
    Unknown,
    Option(Match),
}

/// argparse's `_parse_optional`.
fn classify(arg: &str, version: Version, positional_only: bool) -> Result<Class, ArgparseError> {
    if positional_only || !arg.starts_with('-') || arg.len() == 1 {
        return Ok(Class::Positional);
    }
    if let Some(m) = exact(arg, None, version) {
        return Ok(Class::Option(m));
    }
    if let Some((name, value)) = arg.split_once('=')
        && let Some(m) = exact(name, Some(value.to_string()), version)
    {
        return Ok(Class::Option(m));
    }
    let mut prefixed = prefix_matches(arg, version);
    if prefixed.len() > 1 {
        let names: Vec<String> = prefixed.iter().map(|m| m.option.clone()).collect();
        return Err(ArgparseError::new(format!(
            "ambiguous option: {} could match {}",
            arg.split('=').next().unwrap_or(arg),
            names.join(", ")
        )));
    }
    if let Some(m) = prefixed.pop() {
        return Ok(Class::Option(m));
    }
    if is_negative_number(arg) || arg.contains(' ') {
        return Ok(Class::Positional);
    }
    Ok(Class::Unknown)
}

fn exact(option: &str, explicit: Option<String>, version: Version) -> Option<Match> {
    super::table::lookup(option, version).map(|flag| Match {
        flag,
        option: option.to_string(),
        explicit,
    })
}

/// argparse's `_get_option_tuples`: long options by unique prefix (`--max-num-s`), short
/// options by prefix or with the value glued on (`-qawq`).
fn prefix_matches(arg: &str, version: Version) -> Vec<Match> {
    let mut out = Vec::new();
    if arg.starts_with("--") {
        let (prefix, explicit) = match arg.split_once('=') {
            Some((p, v)) => (p, Some(v.to_string())),
            None => (arg, None),
        };
        for flag in flags_for(version) {
            for option in flag.accepted_strings(version) {
                if option.starts_with("--") && option.starts_with(prefix) {
                    out.push(Match {
                        flag,
                        option,
                        explicit: explicit.clone(),
                    });
                }
            }
        }
        return out;
    }
    let short_prefix: String = arg.chars().take(2).collect();
    let glued = &arg[short_prefix.len()..];
    for flag in flags_for(version) {
        for option in flag.accepted_strings(version) {
            if option == short_prefix {
                out.push(Match {
                    flag,
                    option,
                    explicit: Some(glued.to_string()),
                });
            } else if option.starts_with(arg) {
                out.push(Match {
                    flag,
                    option,
                    explicit: None,
                });
            }
        }
    }
    out
}

/// argparse's `_negative_number_matcher`: `-5`, `-0.5`, `-.5`.
fn is_negative_number(arg: &str) -> bool {
    let Some(rest) = arg.strip_prefix('-') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match rest.split_once('.') {
        None => digits(rest),
        Some((int, frac)) => (int.is_empty() || digits(int)) && digits(frac),
    }
}

/// True when argparse would hand `arg` to an option as its value.
fn is_value(arg: &str, version: Version) -> bool {
    matches!(classify(arg, version, false), Ok(Class::Positional))
}

/// Consume an option and its values starting at `next`; returns the index after them.
fn consume(
    out: &mut RawParse,
    m: Match,
    args: &[String],
    mut next: usize,
    version: Version,
) -> Result<usize, ArgparseError> {
    let flag = m.flag;
    let value = if flag.kind.is_switch() {
        if let Some(x) = &m.explicit {
            let why = format!("ignored explicit argument {}", py_repr_str(x));
            return Err(ArgparseError::for_flag(flag, version, &why));
        }
        Value::Bool(!flag.is_negative(&m.option, version))
    } else {
        let raw = take_values(flag, m.explicit.clone(), args, &mut next, version)?;
        convert_all(flag, version, &raw)?
    };
    out.occurrences.push(Occurrence {
        flag,
        option: m.option,
        display: flag.display_name(version),
        value,
    });
    Ok(next)
}

fn take_values(
    flag: &Flag,
    explicit: Option<String>,
    args: &[String],
    next: &mut usize,
    version: Version,
) -> Result<Vec<String>, ArgparseError> {
    if let Some(x) = explicit {
        return Ok(vec![x]);
    }
    let many = matches!(flag.kind, Kind::StrList | Kind::IntList(_));
    let mut raw = Vec::new();
    while *next < args.len() && is_value(&args[*next], version) && (many || raw.is_empty()) {
        raw.push(args[*next].clone());
        *next += 1;
    }
    if raw.is_empty() {
        let why = if many {
            "expected at least one argument"
        } else {
            "expected one argument"
        };
        return Err(ArgparseError::for_flag(flag, version, why));
    }
    Ok(raw)
}

fn convert_all(flag: &Flag, version: Version, raw: &[String]) -> Result<Value, ArgparseError> {
    let err = |why: String| ArgparseError::for_flag(flag, version, &why);
    match flag.kind {
        Kind::StrList => Ok(Value::StrList(raw.to_vec())),
        Kind::IntList(conv) => {
            let mut v = Vec::with_capacity(raw.len());
            for r in raw {
                match convert_int(conv, r).map_err(err)? {
                    Value::Int(i) => v.push(i),
                    _ => return Ok(Value::None),
                }
            }
            Ok(Value::IntList(v))
        }
        _ => convert_one(flag, &raw[0]).map_err(err),
    }
}

/// Convert one value the way the flag's argparse `type` (and `choices`) would.
fn convert_one(flag: &Flag, raw: &str) -> Result<Value, String> {
    match flag.kind {
        Kind::Int(conv) => convert_int(conv, raw),
        Kind::Float(conv) => convert_float(conv, raw),
        Kind::Str | Kind::StrList => Ok(Value::Str(raw.to_string())),
        Kind::Choice(choices) => convert_choice(choices, raw),
        Kind::IntChoice(choices) => convert_int_choice(choices, raw),
        Kind::Json => convert_json(raw),
        Kind::IntList(conv) => convert_int(conv, raw),
        Kind::StoreTrue | Kind::BoolOpt => Ok(Value::Bool(true)),
    }
}

fn convert_int(conv: Conv, raw: &str) -> Result<Value, String> {
    match conv {
        Conv::Plain => py_int(raw)
            .map(Value::Int)
            .ok_or_else(|| format!("invalid int value: {}", py_repr_str(raw))),
        Conv::HumanReadable => human_readable_int(raw).map(Value::Int),
        Conv::Optional if raw.is_empty() || raw == "None" => Ok(Value::None),
        Conv::Optional => py_int(raw)
            .map(Value::Int)
            .ok_or_else(|| format!("Value {raw} cannot be converted to <class 'int'>.")),
    }
}

fn convert_float(conv: Conv, raw: &str) -> Result<Value, String> {
    let parsed = raw.trim().replace('_', "").parse::<f64>().ok();
    match conv {
        Conv::Optional if raw.is_empty() || raw == "None" => Ok(Value::None),
        Conv::Optional => parsed
            .map(Value::Float)
            .ok_or_else(|| format!("Value {raw} cannot be converted to <class 'float'>.")),
        _ => parsed
            .map(Value::Float)
            .ok_or_else(|| format!("invalid float value: {}", py_repr_str(raw))),
    }
}

fn convert_choice(choices: &[&str], raw: &str) -> Result<Value, String> {
    if raw == "None" && choices.contains(&"None") {
        return Ok(Value::None);
    }
    if choices.contains(&raw) {
        return Ok(Value::Str(raw.to_string()));
    }
    Err(invalid_choice(raw, choices.iter().map(|c| c.to_string())))
}

fn convert_int_choice(choices: &[i64], raw: &str) -> Result<Value, String> {
    let v = py_int(raw).ok_or_else(|| format!("invalid int value: {}", py_repr_str(raw)))?;
    if choices.contains(&v) {
        return Ok(Value::Int(v));
    }
    Err(invalid_choice(
        &v.to_string(),
        choices.iter().map(|c| c.to_string()),
    ))
}

/// Python 3.12's wording: the value as `repr(str(value))`, the choices as `str`.
fn invalid_choice(value: &str, choices: impl Iterator<Item = String>) -> String {
    let list: Vec<String> = choices.collect();
    format!(
        "invalid choice: {} (choose from {})",
        py_repr_str(value),
        list.join(", ")
    )
}

fn convert_json(raw: &str) -> Result<Value, String> {
    if raw.is_empty() || raw == "None" {
        return Ok(Value::None);
    }
    serde_json::from_str(raw)
        .map(Value::Json)
        .map_err(|_| format!("Value {raw} cannot be converted to <function loads>."))
}

/// Python's `int(str)`: surrounding whitespace, a sign, `_` between digits.
pub fn py_int(raw: &str) -> Option<i64> {
    let t = raw.trim();
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let ok = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !ok {
        return None;
    }
    digits
        .replace('_', "")
        .parse::<i64>()
        .ok()
        .map(|v| sign * v)
}

/// vLLM's `human_readable_int`: `1k` = 1000, `1K` = 1024, `25.6k` = 25600; decimals with a
/// binary suffix are an `ArgumentTypeError`; anything else goes through `int()`.
pub fn human_readable_int(raw: &str) -> Result<i64, String> {
    let t = raw.trim();
    let invalid = || format!("invalid human_readable_int value: {}", py_repr_str(raw));
    let Some(suffix) = t.chars().last().filter(|c| "kKmMgGtT".contains(*c)) else {
        return py_int(t).ok_or_else(invalid);
    };
    let number = &t[..t.len() - 1];
    let well_formed = match number.split_once('.') {
        None => is_digits(number),
        Some((a, b)) => is_digits(a) && is_digits(b),
    };
    if !well_formed {
        return py_int(t).ok_or_else(invalid);
    }
    let power = "kmgt".find(suffix.to_ascii_lowercase()).unwrap_or(0) as i32 + 1;
    if suffix.is_ascii_lowercase() {
        let v: f64 = number.parse().map_err(|_| invalid())?;
        return Ok((v * 10f64.powi(3 * power)) as i64);
    }
    match number.parse::<i64>() {
        Ok(v) => Ok(v * (1i64 << (10 * power))),
        Err(_) => Err(format!(
            "Decimals are not allowed with binary suffixes like {suffix}. Did you mean to use \
             {number}{} instead?",
            suffix.to_ascii_lowercase()
        )),
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// vLLM's `FlexibleArgumentParser.parse_args` preprocessing. Returns the rewritten
/// argv and the help request, if any.
fn preprocess(argv: &[String], version: Version) -> (Vec<String>, Option<String>) {
    let mut out = Vec::with_capacity(argv.len());
    let mut help = None;
    let new_o = version >= Version::new(0, 12, 0);
    for (i, arg) in argv.iter().enumerate() {
        if let Some(key) = arg.strip_prefix("--help=") {
            help = Some(key.to_ascii_lowercase());
        } else if arg == "--help" || arg == "-h" {
            help = Some(String::new());
        } else if arg.starts_with("--") {
            out.push(dashes_in_name(arg));
        } else if let Some(level) = arg.strip_prefix("-O").filter(|l| !l.is_empty()) {
            let level = level.strip_prefix('=').unwrap_or(level);
            if new_o {
                out.extend(["--optimization-level".to_string(), level.to_string()]);
            } else if level.starts_with('.') {
                out.push(arg.clone());
            } else {
                out.extend(["-O".to_string(), level.to_string()]);
            }
        } else if arg == "-O" && new_o && argv.get(i + 1).is_some_and(|n| is_level(n)) {
            out.push("--optimization-level".to_string());
        } else {
            out.push(arg.clone());
        }
    }
    (collect_dotted(out), help)
}

fn is_level(s: &str) -> bool {
    matches!(s, "0" | "1" | "2" | "3")
}

/// `--max_num_seqs=4` → `--max-num-seqs=4`: underscores become dashes in the name, up to
/// the first `.` (dotted JSON keys keep theirs).
fn dashes_in_name(arg: &str) -> String {
    let (name, value) = match arg.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (arg, None),
    };
    let (head, tail) = match name.split_once('.') {
        Some((h, t)) => (h.replace('_', "-"), format!(".{t}")),
        None => (name.replace('_', "-"), String::new()),
    };
    match value {
        Some(v) => format!("{head}{tail}={v}"),
        None => format!("{head}{tail}"),
    }
}

/// Fold `--flag.a.b value` / `--flag.a.b=value` / `--flag.list+ x,y` into one
/// `--flag JSON` pair appended at the end, as vLLM does.
fn collect_dotted(args: Vec<String>) -> Vec<String> {
    let mut dicts: Vec<(String, serde_json::Value)> = Vec::new();
    let mut out = Vec::with_capacity(args.len());
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        if !(arg.starts_with('-') && name.contains('.')) || is_negative_number(name) {
            out.push(arg.clone());
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                args.get(i).cloned().unwrap_or_default()
            }
        };
        merge_dotted(&mut dicts, name, &value);
        i += 1;
    }
    for (flag, dict) in dicts {
        out.push(flag);
        out.push(dict.to_string());
    }
    out
}

fn merge_dotted(dicts: &mut Vec<(String, serde_json::Value)>, name: &str, raw: &str) {
    let (name, list) = match name.strip_suffix('+') {
        Some(n) => (n, true),
        None => (name, false),
    };
    let mut keys = name.split('.');
    let flag = keys.next().unwrap_or_default().to_string();
    let keys: Vec<&str> = keys.collect();
    let value = if list {
        serde_json::Value::Array(raw.split(',').map(|s| s.into()).collect())
    } else {
        serde_json::from_str(raw)
            .ok()
            .or_else(|| human_readable_int(raw).ok().map(Into::into))
            .unwrap_or_else(|| raw.into())
    };
    let idx = match dicts.iter().position(|(f, _)| *f == flag) {
        Some(i) => i,
        None => {
            dicts.push((flag, serde_json::json!({})));
            dicts.len() - 1
        }
    };
    let mut node = &mut dicts[idx].1;
    for key in &keys[..keys.len().saturating_sub(1)] {
        if !node.get(*key).is_some_and(|v| v.is_object()) {
            node[*key] = serde_json::json!({});
        }
        node = &mut node[*key];
    }
    if let Some(last) = keys.last() {
        match (node.get_mut(*last), value) {
            (Some(serde_json::Value::Array(a)), serde_json::Value::Array(b)) => a.extend(b),
            (_, v) => node[*last] = v,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn py_int_matches_python() {
        assert_eq!(py_int(" 12 "), Some(12));
        assert_eq!(py_int("+7"), Some(7));
        assert_eq!(py_int("-3"), Some(-3));
        assert_eq!(py_int("1_000"), Some(1000));
        assert_eq!(py_int("1__0"), None);
        assert_eq!(py_int("abc"), None);
        assert_eq!(py_int("1.0"), None);
    }

    #[test]
    fn human_readable_ints() {
        assert_eq!(human_readable_int("8k"), Ok(8000));
        assert_eq!(human_readable_int("1K"), Ok(1024));
        assert_eq!(human_readable_int("25.6k"), Ok(25600));
        assert_eq!(human_readable_int("2M"), Ok(2 << 20));
        assert_eq!(human_readable_int("4096"), Ok(4096));
        assert_eq!(
            human_readable_int("abc"),
            Err("invalid human_readable_int value: 'abc'".into())
        );
        assert_eq!(
            human_readable_int("1.5K"),
            Err(
                "Decimals are not allowed with binary suffixes like K. Did you mean to use \
                 1.5k instead?"
                    .into()
            )
        );
    }

    #[test]
    fn preprocessing_rewrites_like_vllm() {
        let (a, h) = preprocess(&argv("m --max_num_seqs=4 -O3 -O 2 -O=1"), Version::V0_33);
        assert_eq!(h, None);
        assert_eq!(
            a,
            argv(
                "m --max-num-seqs=4 --optimization-level 3 --optimization-level 2 \
                 --optimization-level 1"
            )
        );
        let (a, _) = preprocess(&argv("m -O3"), Version::V0_10);
        assert_eq!(a, argv("m -O 3"));
        let (a, _) = preprocess(
            &argv(
                "m --speculative-config.method ngram --speculative-config.num_speculative_tokens=3",
            ),
            Version::V0_33,
        );
        assert_eq!(a[0], "m");
        assert_eq!(a[1], "--speculative-config");
        let v: serde_json::Value = serde_json::from_str(&a[2]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"method": "ngram", "num_speculative_tokens": 3})
        );
        let (_, h) = preprocess(&argv("m --help=CacheConfig"), Version::V0_33);
        assert_eq!(h.as_deref(), Some("cacheconfig"));
    }

    #[test]
    fn negative_numbers_are_values() {
        assert!(is_negative_number("-5"));
        assert!(is_negative_number("-.5"));
        assert!(is_negative_number("-0.5"));
        assert!(!is_negative_number("-tp"));
        assert!(!is_negative_number("-"));
    }
}
