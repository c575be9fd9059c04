//! The gate's scenarios: the seed's aligned pairs (`chat` 1000 in / 1000 out and
//! `summarization` 8000 in / 1000 out, 80 random prompts each), or the user's production
//! workload in their place. Each is written once into the campaign (`workloads/NAME.jsonl`)
//! and replayed from there by every framework, so every candidate sees the same requests.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::workload::synth::{self, Scenario as Fixed};
use crate::workload::{self, Workload, stats};

/// One scenario as the campaign records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `chat`, `summarization`, or the workload file's stem.
    pub name: String,
    /// `random` (a default scenario) or `custom` (the user's workload).
    pub kind: String,
    /// Where the requests are, inside the campaign directory (relative).
    pub path: PathBuf,
    /// Fixed input length (default scenarios).
    pub input_len: Option<u32>,
    /// Fixed output length (default scenarios).
    pub output_len: Option<u32>,
}

/// Lengths of a scenario's requests, for `candidates.jsonl`'s workload object.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lengths {
    /// Median prompt tokens.
    pub input_p50: f64,
    /// 95th-percentile prompt tokens.
    pub input_p95: f64,
    /// Median output tokens asked for.
    pub output_p50: f64,
    /// 95th-percentile output tokens asked for.
    pub output_p95: f64,
    /// The longest prompt + its output: the floor of every sequence-length flag.
    pub longest: u64,
    /// Requests.
    pub requests: usize,
}

/// The default scenarios, by name.
pub fn fixed(name: &str) -> Option<Fixed> {
    match name {
        "chat" => Some(Fixed::Chat),
        "summarization" => Some(Fixed::Summarization),
        _ => None,
    }
}

/// Write each scenario's requests under `dir/workloads/` (once: an existing file is kept,
/// so a resumed campaign replays what it started with) and describe them.
pub fn materialize(
    dir: &Path,
    names: &[String],
    custom: Option<&Path>,
    seed: u64,
) -> anyhow::Result<Vec<Scenario>> {
    let wdir = dir.join("workloads");
    std::fs::create_dir_all(&wdir).map_err(|e| anyhow::anyhow!("{}: {e}", wdir.display()))?;
    if let Some(file) = custom {
        // Parse it first: a bad line is named before anything is copied.
        let text = std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("--workload {}: {e}", file.display()))?;
        workload::parse(file, &text)?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "workload".into());
        let rel = PathBuf::from("workloads").join(format!("{name}.jsonl"));
        write_once(&dir.join(&rel), text.as_bytes())?;
        return Ok(vec![Scenario {
            name,
            kind: "custom".into(),
            path: rel,
            input_len: None,
            output_len: None,
        }]);
    }
    names
        .iter()
        .map(|name| {
            let f = fixed(name).ok_or_else(|| {
                anyhow::anyhow!("--scenarios: unknown scenario `{name}` (chat, summarization)")
            })?;
            let spec = f.spec(seed);
            let rel = PathBuf::from("workloads").join(format!("{name}.jsonl"));
            write_once(
                &dir.join(&rel),
                synth::to_jsonl(&synth::generate(&spec)).as_bytes(),
            )?;
            Ok(Scenario {
                name: name.clone(),
                kind: "random".into(),
                path: rel,
                input_len: Some(spec.input_len),
                output_len: Some(spec.output_len),
            })
        })
        .collect()
}

fn write_once(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if !path.exists() {
        crate::store::write_atomic(path, bytes)?;
    }
    Ok(())
}

impl Scenario {
    /// Read the scenario's requests back from the campaign.
    pub fn load(&self, dir: &Path) -> anyhow::Result<Workload> {
        Ok(workload::load(&dir.join(&self.path))?)
    }
}

/// The lengths of a workload's requests.
pub fn lengths(w: &Workload) -> Lengths {
    let mut input: Vec<f64> = w
        .requests
        .iter()
        .map(|r| stats::prompt_tokens(r).len() as f64)
        .collect();
    let mut output: Vec<f64> = w
        .requests
        .iter()
        .map(|r| f64::from(r.expected_output_tokens))
        .collect();
    let longest = input
        .iter()
        .zip(&output)
        .map(|(i, o)| (i + o) as u64)
        .max()
        .unwrap_or(0);
    input.sort_by(f64::total_cmp);
    output.sort_by(f64::total_cmp);
    let p = |v: &[f64], q: f64| crate::stats::percentile(v, q).unwrap_or(0.0);
    Lengths {
        input_p50: p(&input, 50.0),
        input_p95: p(&input, 95.0),
        output_p50: p(&output, 50.0),
        output_p95: p(&output, 95.0),
        longest,
        requests: w.requests.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenarios_are_the_seeds_aligned_pairs_written_once() {
        let dir = tempfile::tempdir().unwrap();
        let names = vec!["chat".to_string(), "summarization".to_string()];
        let s = materialize(dir.path(), &names, None, 0).unwrap();
        assert_eq!(s[0].input_len, Some(1000));
        assert_eq!(s[1].input_len, Some(8000));
        let w = s[1].load(dir.path()).unwrap();
        let l = lengths(&w);
        assert_eq!(l.requests, 80);
        assert!((l.input_p50 - 8000.0).abs() <= 2.0, "{l:?}");
        assert!(l.longest >= 9000 && l.longest <= 9002, "{l:?}");
        // A second call keeps what is there.
        let before = std::fs::read(dir.path().join(&s[0].path)).unwrap();
        materialize(dir.path(), &names, None, 7).unwrap();
        assert_eq!(std::fs::read(dir.path().join(&s[0].path)).unwrap(), before);
    }

    #[test]
    fn unknown_scenarios_and_bad_workloads_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let e = materialize(dir.path(), &["code".into()], None, 0).unwrap_err();
        assert!(e.to_string().contains("unknown scenario `code`"), "{e}");
        let bad = dir.path().join("w.jsonl");
        std::fs::write(&bad, "{\"prompt\": \"hi\"}\n{oops\n").unwrap();
        let e = materialize(dir.path(), &[], Some(&bad), 0).unwrap_err();
        assert!(e.to_string().contains("w.jsonl"), "{e}");
        assert!(e.to_string().contains('2'), "{e}");
    }
}
