//! `nvidia-smi --query-gpu=... --format=csv` output: parsed into GPUs (pure functions over
//! text, tested on recorded outputs), and its failure messages classified.
//!
//! forge asks for [`QUERY_FIELDS`] with `--format=csv,noheader,nounits`, but the parser also
//! reads the header-and-units form people paste (`memory.total [MiB]`, `81559 MiB`): a
//! header, when present, says which column is which. Placeholder cells (`[N/A]`,
//! `[Not Supported]`, ...) read as unknown, never as a value.

use super::DetectedGpu;
use super::gpus::{self, Vendor};

/// The columns forge queries, in order.
pub const QUERY_FIELDS: &[&str] = &[
    "index",
    "name",
    "memory.total",
    "compute_cap",
    "driver_version",
];

/// The same without `compute_cap`, for drivers whose nvidia-smi does not know that field
/// (470 and older print `Field "compute_cap" is not a valid field to query.`).
pub const LEGACY_FIELDS: &[&str] = &["index", "name", "memory.total", "driver_version"];

/// `nvidia-smi` arguments for a query of `fields` in forge's format.
pub fn query_args(fields: &[&str]) -> Vec<String> {
    vec![
        format!("--query-gpu={}", fields.join(",")),
        "--format=csv,noheader,nounits".to_string(),
    ]
}

/// Why nvidia-smi gave no GPUs. Callers branch: `UnknownField` means "retry without that
/// field", the rest mean "this source failed".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmiError {
    /// The kernel driver is not loaded or not reachable.
    #[error("nvidia-smi cannot talk to the NVIDIA driver: {0}")]
    DriverUnreachable(String),
    /// Userspace libraries and kernel module are different versions (after a driver
    /// upgrade without reboot).
    #[error("NVIDIA driver/library version mismatch: {0}")]
    VersionMismatch(String),
    /// The driver is up but sees no GPU.
    #[error("nvidia-smi found no GPU: {0}")]
    NoDevices(String),
    /// This nvidia-smi does not know a requested field.
    #[error("this nvidia-smi does not know the field `{field}` (older driver)")]
    UnknownField {
        /// The field it rejected.
        field: String,
    },
    /// It printed nothing at all.
    #[error("nvidia-smi printed nothing")]
    Empty,
    /// It could not be run (not installed, hung, killed) or exited with an unknown error.
    #[error("{0}")]
    Tool(String),
    /// A line that does not fit the columns.
    #[error("nvidia-smi output line {line}: {field}: {why}")]
    Malformed {
        /// 1-based line in the output.
        line: usize,
        /// Column (or `row`).
        field: String,
        /// What is wrong.
        why: String,
    },
}

/// One data row: column name → cell (`None` for a placeholder such as `[N/A]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmiRow {
    /// 1-based line number in the output.
    pub line: usize,
    cells: Vec<(String, Option<String>)>,
}

impl SmiRow {
    /// The cell of `field`, `None` when the column is absent or holds a placeholder.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.cells
            .iter()
            .find(|(k, _)| k == field)
            .and_then(|(_, v)| v.as_deref())
    }

    /// The cell of `field` as an integer, units (`MiB`) dropped.
    pub fn number(&self, field: &str) -> Result<Option<u64>, SmiError> {
        let Some(v) = self.get(field) else {
            return Ok(None);
        };
        let digits = strip_unit(v);
        digits.parse().map(Some).map_err(|_| SmiError::Malformed {
            line: self.line,
            field: field.to_string(),
            why: format!("`{v}` is not a whole number"),
        })
    }
}

/// Recognise nvidia-smi's failure messages anywhere in its output.
pub fn classify_failure(text: &str) -> Option<SmiError> {
    let first = || first_line(text);
    if text.contains("couldn't communicate with the NVIDIA driver")
        || text.contains("NVIDIA-SMI has failed")
    {
        return Some(SmiError::DriverUnreachable(first()));
    }
    if text.contains("Driver/library version mismatch") {
        return Some(SmiError::VersionMismatch(first()));
    }
    if text.contains("Failed to initialize NVML") {
        return Some(SmiError::DriverUnreachable(first()));
    }
    if text.contains("No devices were found") {
        return Some(SmiError::NoDevices(first()));
    }
    unknown_field(text)
}

fn unknown_field(text: &str) -> Option<SmiError> {
    let line = text.lines().find(|l| l.contains("is not a valid field"))?;
    let field = line.split('"').nth(1).unwrap_or("?").to_string();
    Some(SmiError::UnknownField { field })
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .to_string()
}

/// Parse query output. `fields` are the columns asked for; a header line, when present,
/// names the columns instead.
pub fn parse_query(text: &str, fields: &[&str]) -> Result<Vec<SmiRow>, SmiError> {
    if let Some(e) = classify_failure(text) {
        return Err(e);
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let Some(&(_, first)) = lines.peek() else {
        return Err(SmiError::Empty);
    };
    let columns: Vec<String> = match header(first) {
        Some(h) => {
            lines.next();
            h
        }
        None => fields.iter().map(|s| s.to_string()).collect(),
    };
    lines.map(|(n, l)| row(n, l, &columns)).collect()
}

/// The column names of a header line (`index, name, memory.total [MiB]`), or `None` for a
/// data line.
fn header(line: &str) -> Option<Vec<String>> {
    let names: Vec<String> = split(line)
        .iter()
        .map(|c| c.split(" [").next().unwrap_or(c).to_string())
        .collect();
    let is_name = |s: &String| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
    };
    names.iter().all(is_name).then_some(names)
}

fn split(line: &str) -> Vec<String> {
    line.split(',').map(|c| c.trim().to_string()).collect()
}

fn row(line: usize, text: &str, columns: &[String]) -> Result<SmiRow, SmiError> {
    let cells = split(text);
    if cells.len() != columns.len() {
        return Err(SmiError::Malformed {
            line,
            field: "row".into(),
            why: format!(
                "{} values for {} columns ({}): `{text}`",
                cells.len(),
                columns.len(),
                columns.join(",")
            ),
        });
    }
    let cells = columns
        .iter()
        .cloned()
        .zip(cells.into_iter().map(cell))
        .collect();
    Ok(SmiRow { line, cells })
}

/// A placeholder (`[N/A]`, `N/A`, `[Not Supported]`, `[Unknown Error]`, ...) is unknown.
fn cell(v: String) -> Option<String> {
    let placeholder = v.is_empty() || v == "N/A" || (v.starts_with('[') && v.ends_with(']'));
    (!placeholder).then_some(v)
}

fn strip_unit(v: &str) -> &str {
    v.split_whitespace().next().unwrap_or(v)
}

/// Parse `9.0` / `12.1` into (major, minor).
pub fn parse_capability(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Turn rows into GPUs, matching each to the spec table. A row without `index` takes its
/// position; a row without a name is malformed.
pub fn gpus_from_rows(rows: &[SmiRow]) -> Result<Vec<DetectedGpu>, SmiError> {
    rows.iter()
        .enumerate()
        .map(|(pos, r)| gpu_from_row(pos, r))
        .collect()
}

fn gpu_from_row(pos: usize, r: &SmiRow) -> Result<DetectedGpu, SmiError> {
    let name = r.get("name").ok_or_else(|| SmiError::Malformed {
        line: r.line,
        field: "name".into(),
        why: "missing".into(),
    })?;
    let index = match r.number("index")? {
        Some(i) => u32::try_from(i).unwrap_or(u32::MAX),
        None => u32::try_from(pos).unwrap_or(u32::MAX),
    };
    let memory_mib = r.number("memory.total")?;
    let cc = match r.get("compute_cap") {
        Some(v) => Some(parse_capability(v).ok_or_else(|| SmiError::Malformed {
            line: r.line,
            field: "compute_cap".into(),
            why: format!("`{v}` is not MAJOR.MINOR"),
        })?),
        None => None,
    };
    Ok(DetectedGpu {
        index,
        vendor: Vendor::Nvidia,
        name: name.to_string(),
        memory_mib,
        compute_capability: cc,
        gfx: None,
        driver_version: r.get("driver_version").map(str::to_string),
        uuid: r.get("uuid").map(str::to_string),
        spec: gpus::match_nvidia_detected(cc, memory_mib, name),
    })
}

/// Parse output and build GPUs in one step.
pub fn parse_gpus(text: &str, fields: &[&str]) -> Result<Vec<DetectedGpu>, SmiError> {
    gpus_from_rows(&parse_query(text, fields)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noheader_nounits_in_forge_order() {
        let t = "0, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15\n\
                 1, NVIDIA H100 80GB HBM3, 81559, 9.0, 550.54.15\n";
        let g = parse_gpus(t, QUERY_FIELDS).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[1].index, 1);
        assert_eq!(g[1].memory_mib, Some(81559));
        assert_eq!(g[1].compute_capability, Some((9, 0)));
        assert_eq!(g[1].driver_version.as_deref(), Some("550.54.15"));
        assert_eq!(g[1].spec.unwrap().name, "H100");
    }

    #[test]
    fn placeholders_are_unknown_not_values() {
        let t = "0, NVIDIA GeForce 930M, [N/A], [Not Supported], 390.77\n";
        let g = parse_gpus(t, QUERY_FIELDS).unwrap();
        assert_eq!(g[0].memory_mib, None);
        assert_eq!(g[0].compute_capability, None);
        assert!(g[0].spec.is_none());
    }

    #[test]
    fn a_header_names_the_columns_whatever_was_asked() {
        let t = "name, index, memory.total [MiB]\nTesla T4, 3, 15360 MiB\n";
        let g = parse_gpus(t, QUERY_FIELDS).unwrap();
        assert_eq!((g[0].index, g[0].memory_mib), (3, Some(15360)));
    }

    #[test]
    fn wrong_column_count_names_the_line() {
        let t = "0, NVIDIA L4, 23034, 8.9, 550.54.15\n1, NVIDIA L4, 23034\n";
        let e = parse_gpus(t, QUERY_FIELDS).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("nvidia-smi output line 2: row: 3 values for 5 columns"),
            "{e}"
        );
    }

    #[test]
    fn bad_numbers_name_line_and_field() {
        let e = parse_gpus("0, X, lots, 9.0, 1\n", QUERY_FIELDS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nvidia-smi output line 1: memory.total: `lots` is not a whole number"
        );
        let e = parse_gpus("0, X, 1, nine, 1\n", QUERY_FIELDS).unwrap_err();
        assert_eq!(
            e.to_string(),
            "nvidia-smi output line 1: compute_cap: `nine` is not MAJOR.MINOR"
        );
    }

    #[test]
    fn empty_output_is_an_error() {
        assert_eq!(parse_query("\n\n", QUERY_FIELDS), Err(SmiError::Empty));
    }

    #[test]
    fn capability_parsing() {
        assert_eq!(parse_capability("12.1"), Some((12, 1)));
        assert_eq!(parse_capability("7.5"), Some((7, 5)));
        assert_eq!(parse_capability("sm_90"), None);
    }

    #[test]
    fn query_args_are_forge_format() {
        assert_eq!(
            query_args(QUERY_FIELDS),
            [
                "--query-gpu=index,name,memory.total,compute_cap,driver_version",
                "--format=csv,noheader,nounits"
            ]
        );
    }
}
