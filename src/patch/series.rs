//! A patch series (`--patches DIR`): every `*.diff` and `*.patch` file of a directory is
//! one candidate, tried in file-name order (name them `01-…`, `02-…`) by `forge campaign`,
//! or a legal value of the `kernels.patch` knob of a `forge tune --source` run. Which were
//! tried is the caller's business (the campaign's ledger, the tune's journal); this module
//! only lists and reads.

use std::path::{Path, PathBuf};

/// A candidate patch of the series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its file name (the ledger's key).
    pub name: String,
    /// Its path.
    pub path: PathBuf,
}

/// The series in `dir`, in order.
pub fn list(dir: &Path) -> anyhow::Result<Vec<Candidate>> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("--patches {}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|x| anyhow::anyhow!("--patches {}: {x}", dir.display()))?;
        let name = e.file_name().to_string_lossy().to_string();
        let is_patch = name.ends_with(".diff") || name.ends_with(".patch");
        if is_patch && !name.starts_with('.') && e.path().is_file() {
            out.push(Candidate {
                name,
                path: e.path(),
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    anyhow::ensure!(
        !out.is_empty(),
        "--patches {}: no *.diff or *.patch file",
        dir.display()
    );
    Ok(out)
}

/// The first candidate of `series` not in `tried`.
pub fn next<'a>(series: &'a [Candidate], tried: &[&str]) -> Option<&'a Candidate> {
    series.iter().find(|c| !tried.contains(&c.name.as_str()))
}

/// The text of a candidate (an error names the file).
pub fn read(c: &Candidate) -> anyhow::Result<String> {
    Ok(crate::text::read(&c.path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_is_its_diffs_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "02-b.patch",
            "01-a.diff",
            "README.md",
            ".03-hidden.diff",
            "10-c.diff",
        ] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("04-dir.diff")).unwrap();
        let s = list(dir.path()).unwrap();
        let names: Vec<&str> = s.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["01-a.diff", "02-b.patch", "10-c.diff"]);
        assert_eq!(next(&s, &["01-a.diff"]).unwrap().name, "02-b.patch");
        assert!(next(&s, &names).is_none());
        let empty = tempfile::tempdir().unwrap();
        let e = list(empty.path()).unwrap_err().to_string();
        assert!(e.contains("no *.diff or *.patch"), "{e}");
    }
}
