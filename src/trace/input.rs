//! Which traces to analyze. A file is itself. A directory (a profile directory, searched
//! four levels deep) offers every file whose name holds `trace` and ends in `.json` or
//! `.json.gz`; they are grouped by the stage their path names (`prefill`/`extend`,
//! `decode`, or none), and each group gives its lowest tensor-parallel rank (`tp0`, `TP-0`,
//! `rank0`, `worker0`, …; a name without a rank counts as rank 0) and, among those, its
//! newest file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::read::TraceError;
use super::stage::{Stage, of_path};

/// Lowest rank first, then newest, then by path.
type Order = (u32, std::cmp::Reverse<SystemTime>, PathBuf);

/// A trace to analyze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picked {
    /// The stage its path names.
    pub stage: Option<Stage>,
    /// The file.
    pub path: PathBuf,
}

/// The traces `path` stands for.
pub fn traces(path: &Path) -> Result<Vec<Picked>, TraceError> {
    let err = |what: String| TraceError {
        path: path.to_path_buf(),
        what,
    };
    let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    if !meta.is_dir() {
        return Ok(vec![Picked {
            stage: None,
            path: path.to_path_buf(),
        }]);
    }
    let mut found = Vec::new();
    walk(path, 4, &mut found).map_err(|e| err(e.to_string()))?;
    if found.is_empty() {
        return Err(err(
            "no trace in this directory (looked for `*trace*.json` and `*trace*.json.gz`, four levels deep)"
                .into(),
        ));
    }
    // Per trace: its stage, then what orders a group (lowest rank, newest first).
    let mut groups: Vec<(Option<Stage>, Order)> = found
        .into_iter()
        .map(|(p, t)| {
            let rel = p.strip_prefix(path).unwrap_or(&p).to_path_buf();
            (of_path(&rel), (rank(&rel), std::cmp::Reverse(t), p))
        })
        .collect();
    groups.sort();
    let mut out: Vec<Picked> = Vec::new();
    for (stage, (_, _, p)) in groups {
        if out.last().is_none_or(|l| l.stage != stage) {
            out.push(Picked { stage, path: p });
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, SystemTime)>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let p = entry.path();
        let meta = entry.metadata()?;
        if meta.is_dir() {
            if depth > 1 {
                walk(&p, depth - 1, out)?;
            }
            continue;
        }
        let name = entry.file_name().to_string_lossy().to_lowercase();
        if name.contains("trace") && (name.ends_with(".json") || name.ends_with(".json.gz")) {
            out.push((p, meta.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
        }
    }
    Ok(())
}

/// The tensor-parallel rank a path names (0 when none).
pub fn rank(path: &Path) -> u32 {
    let n = path.to_string_lossy().to_lowercase();
    for key in ["tp", "rank", "worker"] {
        let mut from = 0;
        while let Some(at) = n[from..].find(key) {
            let rest = &n[from + at + key.len()..];
            let rest = rest.strip_prefix(['-', '_']).unwrap_or(rest);
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(r) = digits.parse() {
                return r;
            }
            from += at + key.len();
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_read_from_names() {
        for (name, r) in [
            ("1712-TP-0-DECODE.trace.json.gz", 0),
            ("1712-TP-3.trace.json.gz", 3),
            ("host_42.1700000000000.pt.trace.json.gz", 0),
            ("rank1/x.trace.json", 1),
            ("worker_2.trace.json", 2),
            ("dp0_tp5.trace.json", 5),
        ] {
            assert_eq!(rank(Path::new(name)), r, "{name}");
        }
    }

    #[test]
    fn a_directory_gives_the_lowest_rank_and_newest_trace_per_stage() {
        let dir = tempfile::tempdir().unwrap();
        let touch = |rel: &str| {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "[]").unwrap();
            p
        };
        touch("prefill/1-TP-1.trace.json.gz");
        let old = touch("prefill/1-TP-0.trace.json.gz");
        std::thread::sleep(std::time::Duration::from_millis(20));
        let new = touch("prefill/2-TP-0.trace.json.gz");
        let dec = touch("decode/2-TP-0.trace.json.gz");
        touch("decode/config.json");
        let got = traces(dir.path()).unwrap();
        assert_eq!(
            got,
            vec![
                Picked {
                    stage: Some(Stage::Prefill),
                    path: new
                },
                Picked {
                    stage: Some(Stage::Decode),
                    path: dec
                },
            ]
        );
        assert_ne!(got[0].path, old);
        let empty = tempfile::tempdir().unwrap();
        let e = traces(empty.path()).unwrap_err().to_string();
        assert!(e.contains("no trace"), "{e}");
    }
}
