//! `rocm-smi --showproductname --json` output: parsed into GPUs (pure functions over text,
//! tested on recorded outputs), and its failures recognised — including the ones it reports
//! with exit status 0.
//!
//! Key spellings changed in ROCm 6.1: `Card series`/`Card model`/`Card vendor` became
//! `Card Series`/`Card Model`/`Card Vendor`, and the meaning of the model field changed with
//! it (the subsystem id before, the PCI device id after). Keys are read case-insensitively;
//! the model is taken as a device id only in the 6.1 spelling. `GFX Version` is printed from
//! the KFD target version in decimal (`gfx9010` for gfx90a) and is normalised here.

use serde_json::{Map, Value};

use super::DetectedGpu;
use super::gpus::{self, Vendor};

/// The arguments forge passes.
pub const PRODUCT_ARGS: &[&str] = &["--showproductname", "--json"];

/// Arguments for used VRAM per card.
pub const MEMINFO_ARGS: &[&str] = &["--showmeminfo", "vram", "--json"];

/// Why rocm-smi gave no GPUs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RocmError {
    /// amdgpu is not loaded (rocm-smi says so on stderr and still exits 0).
    #[error("rocm-smi: the amdgpu driver is not loaded ({0})")]
    DriverNotInitialized(String),
    /// It printed nothing on stdout.
    #[error("rocm-smi printed no output{}", stderr_hint(.0))]
    NoOutput(String),
    /// `--json` was asked for but no JSON came back.
    #[error("rocm-smi did not print JSON (an old rocm-smi, or an error): `{0}`")]
    NotJson(String),
    /// JSON that is not an object of cards.
    #[error("rocm-smi JSON: {0}")]
    BadJson(String),
    /// Valid JSON, but no `cardN` entries.
    #[error("rocm-smi reported no GPU")]
    NoCards,
}

fn stderr_hint(stderr: &str) -> String {
    let line = stderr.lines().map(str::trim).find(|l| !l.is_empty());
    line.map(|l| format!(" (stderr: {l})")).unwrap_or_default()
}

/// One `cardN` entry, with the keys forge reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocmCard {
    /// N of `cardN`.
    pub card: u32,
    /// Best human name available (device name, card series, or the device id).
    pub name: String,
    /// PCI device id (`0x74a1`), when the output says it.
    pub device_id: Option<String>,
    /// Normalised gfx target (`gfx90a`).
    pub gfx: Option<String>,
    /// `Unique ID` as a `GPU-<hex>` selector, when known.
    pub uuid: Option<String>,
    /// VRAM total, bytes (only in outputs that include memory info).
    pub vram_total: Option<u64>,
    /// VRAM used, bytes (only in outputs that include memory info).
    pub vram_used: Option<u64>,
}

/// A parsed rocm-smi answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RocmOutput {
    /// Cards, by card number.
    pub cards: Vec<RocmCard>,
    /// `system.Driver version`.
    pub driver: Option<String>,
    /// Text printed before the JSON, if any.
    pub warning: Option<String>,
}

/// Parse rocm-smi's JSON (`stdout`), using `stderr` to explain an empty answer. Text before
/// the JSON object is tolerated and returned as a warning.
pub fn parse(stdout: &str, stderr: &str) -> Result<RocmOutput, RocmError> {
    if stdout.trim().is_empty() {
        if stderr.contains("Driver not initialized") {
            let line = stderr
                .lines()
                .find(|l| l.contains("Driver not initialized"))
                .unwrap_or(stderr);
            return Err(RocmError::DriverNotInitialized(line.trim().to_string()));
        }
        return Err(RocmError::NoOutput(stderr.to_string()));
    }
    let (json, skipped) = json_part(stdout)?;
    let doc: Value = serde_json::from_str(json).map_err(|e| RocmError::BadJson(e.to_string()))?;
    let obj = doc
        .as_object()
        .ok_or_else(|| RocmError::BadJson("top level is not an object".into()))?;
    let mut cards: Vec<RocmCard> = obj.iter().filter_map(|(k, v)| card(k, v)).collect();
    cards.sort_by_key(|c| c.card);
    if cards.is_empty() {
        return Err(RocmError::NoCards);
    }
    Ok(RocmOutput {
        cards,
        driver: driver_version(obj),
        warning: skipped.map(|s| format!("rocm-smi printed text before its JSON: `{s}`")),
    })
}

/// The JSON object in the output, and any text before it.
fn json_part(stdout: &str) -> Result<(&str, Option<String>), RocmError> {
    let Some(start) = stdout.find('{') else {
        let first = stdout.lines().map(str::trim).find(|l| !l.is_empty());
        return Err(RocmError::NotJson(first.unwrap_or("").to_string()));
    };
    let before = stdout[..start].trim();
    let skipped = (!before.is_empty()).then(|| before.lines().next().unwrap_or("").to_string());
    Ok((&stdout[start..], skipped))
}

fn driver_version(obj: &Map<String, Value>) -> Option<String> {
    let sys = obj.get("system")?.as_object()?;
    get_ci(sys, "driver version").map(str::to_string)
}

fn card(key: &str, v: &Value) -> Option<RocmCard> {
    let n: u32 = key.strip_prefix("card")?.parse().ok()?;
    let m = v.as_object()?;
    let device_id = get_ci(m, "device id")
        .or_else(|| get_ci(m, "gpu id"))
        .or_else(|| m.get("Card Model").and_then(Value::as_str))
        .filter(|s| known(s))
        .map(str::to_ascii_lowercase);
    let name = ["device name", "card series", "market name"]
        .iter()
        .filter_map(|k| get_ci(m, k))
        .find(|s| known(s))
        .map(str::to_string)
        .or_else(|| device_id.as_ref().map(|d| format!("AMD GPU {d}")))
        .unwrap_or_else(|| format!("AMD GPU card{n}"));
    Some(RocmCard {
        card: n,
        name,
        device_id,
        gfx: get_ci(m, "gfx version").and_then(normalize_gfx),
        uuid: get_ci(m, "unique id")
            .filter(|s| known(s))
            .map(|s| format!("GPU-{}", s.trim_start_matches("0x"))),
        vram_total: get_ci(m, "vram total memory (b)").and_then(|s| s.parse().ok()),
        vram_used: get_ci(m, "vram total used memory (b)").and_then(|s| s.parse().ok()),
    })
}

fn known(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s != "N/A"
}

/// Case-insensitive key lookup (`Card series` and `Card Series` alike).
fn get_ci<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .and_then(|(_, v)| v.as_str())
}

/// `gfx9010` → `gfx90a`, `gfx942` → `gfx942`, `gfx1100` → `gfx1100`: rocm-smi prints the
/// stepping in decimal; LLVM target names use one hex digit.
pub fn normalize_gfx(raw: &str) -> Option<String> {
    let raw = raw.trim().to_ascii_lowercase();
    let digits = raw.strip_prefix("gfx")?;
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    if !digits.chars().all(|c| c.is_ascii_digit()) || digits.len() == 3 {
        return Some(raw);
    }
    let major_len = if digits.starts_with('1') { 2 } else { 1 };
    if digits.len() < major_len + 2 {
        return Some(raw);
    }
    let (major, rest) = digits.split_at(major_len);
    let (minor, step) = rest.split_at(1);
    match step.parse::<u32>() {
        Ok(s) if s < 16 => Some(format!("gfx{major}{minor}{s:x}")),
        _ => Some(raw),
    }
}

/// Turn cards into GPUs matched against the spec table; notes about matches are returned
/// as warnings.
pub fn gpus_from_cards(
    cards: &[RocmCard],
    driver: Option<&str>,
) -> (Vec<DetectedGpu>, Vec<String>) {
    let mut warnings = Vec::new();
    let gpus = cards
        .iter()
        .map(|c| {
            let m = gpus::match_amd(&c.name, c.device_id.as_deref(), c.gfx.as_deref());
            if let Some(n) = m.note {
                warnings.push(format!("GPU {} ({}): {n}", c.card, c.name));
            }
            DetectedGpu {
                index: c.card,
                vendor: Vendor::Amd,
                name: c.name.clone(),
                memory_mib: c.vram_total.map(|b| b / (1024 * 1024)),
                compute_capability: None,
                gfx: c.gfx.clone(),
                driver_version: driver.map(str::to_string),
                uuid: c.uuid.clone(),
                spec: m.spec,
            }
        })
        .collect();
    (gpus, warnings)
}

/// Used VRAM per card (MiB) from `rocm-smi --showmeminfo vram --json`.
pub fn parse_used_mib(stdout: &str, stderr: &str) -> Result<Vec<(u32, u64)>, RocmError> {
    Ok(parse(stdout, stderr)?
        .cards
        .iter()
        .filter_map(|c| c.vram_used.map(|b| (c.card, b / (1024 * 1024))))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gfx_targets_are_normalised() {
        let n = |s| normalize_gfx(s);
        assert_eq!(n("gfx9010").as_deref(), Some("gfx90a"));
        assert_eq!(n("gfx942").as_deref(), Some("gfx942"));
        assert_eq!(n("gfx906").as_deref(), Some("gfx906"));
        assert_eq!(n("gfx1100").as_deref(), Some("gfx1100"));
        assert_eq!(n("gfx1032").as_deref(), Some("gfx1032"));
        assert_eq!(n("gfx10310").as_deref(), Some("gfx103a"));
        assert_eq!(n("gfx90a").as_deref(), Some("gfx90a"));
        assert_eq!(n("N/A"), None);
        assert_eq!(n("gfx"), None);
    }

    #[test]
    fn both_key_spellings_read_the_same() {
        let old = r#"{"card0": {"Card series": "AMD Instinct MI300X", "Card model": "0x0c34"}}"#;
        let new = r#"{"card0": {"Card Series": "AMD Instinct MI300X", "Card Model": "0x74a1"}}"#;
        let a = parse(old, "").unwrap().cards;
        let b = parse(new, "").unwrap().cards;
        assert_eq!(a[0].name, b[0].name);
        // Pre-6.1 "Card model" is the subsystem id, not the device id.
        assert_eq!(a[0].device_id, None);
        assert_eq!(b[0].device_id.as_deref(), Some("0x74a1"));
    }

    #[test]
    fn memory_keys_become_mib() {
        let t = r#"{"card0": {"VRAM Total Memory (B)": "206141652992", "VRAM Total Used Memory (B)": "301989888"}, "card1": {"VRAM Total Used Memory (B)": "0"}}"#;
        assert_eq!(parse_used_mib(t, "").unwrap(), vec![(0, 288), (1, 0)]);
        let cards = parse(t, "").unwrap().cards;
        assert_eq!(cards[0].vram_total.map(|b| b / 1048576), Some(196592));
    }

    #[test]
    fn leading_text_is_a_warning_not_a_failure() {
        let o = parse("WARNING: x\n{\"card1\": {\"Card Series\": \"X\"}}", "").unwrap();
        assert_eq!(o.cards[0].card, 1);
        assert_eq!(
            o.warning.unwrap(),
            "rocm-smi printed text before its JSON: `WARNING: x`"
        );
    }

    #[test]
    fn failures() {
        assert_eq!(
            parse("", "boom\n"),
            Err(RocmError::NoOutput("boom\n".into()))
        );
        assert_eq!(
            RocmError::NoOutput("boom\n".into()).to_string(),
            "rocm-smi printed no output (stderr: boom)"
        );
        assert_eq!(parse("{}", ""), Err(RocmError::NoCards));
        assert_eq!(parse(r#"{"system": {}}"#, ""), Err(RocmError::NoCards));
        assert!(matches!(parse("{not json", ""), Err(RocmError::BadJson(_))));
        assert!(matches!(parse("[1]", ""), Err(RocmError::NotJson(_))));
    }
}
