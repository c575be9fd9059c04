//! The append-only JSONL journal. Each row is one `write` of a complete line followed by
//! `fsync`, so a row is either durable or absent. A crash mid-append can leave a torn last
//! line (no trailing newline, or not valid JSON); reading repairs that by truncating the
//! file back to the last complete row, so the interrupted experiment is simply redone.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::StoreError;

/// Append one JSON row to `path` and fsync it.
pub fn append_line<T: Serialize>(path: &Path, row: &T) -> Result<(), StoreError> {
    let mut line = serde_json::to_vec(row).map_err(|e| StoreError::Corrupt {
        path: path.to_path_buf(),
        why: format!("cannot serialize row: {e}"),
    })?;
    line.push(b'\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    f.write_all(&line).map_err(|e| StoreError::io(path, e))?;
    f.sync_data().map_err(|e| StoreError::io(path, e))
}

/// What reading a journal found.
#[derive(Debug)]
pub struct Journal<T> {
    /// Complete rows, in order.
    pub rows: Vec<T>,
    /// Bytes of a torn final line that were cut off (0 when the file was clean).
    pub repaired_bytes: u64,
}

/// Read every row of a journal, repairing a torn tail in place. A missing file is an empty
/// journal. A bad row that is *not* the last line is corruption and is reported with its
/// line number (forge never writes one).
pub fn read_journal<T: DeserializeOwned>(path: &Path) -> Result<Journal<T>, StoreError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Journal {
                rows: Vec::new(),
                repaired_bytes: 0,
            });
        }
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let (rows, good_len) = parse_rows(path, &text)?;
    let repaired_bytes = (text.len() - good_len) as u64;
    if repaired_bytes > 0 {
        truncate(path, good_len as u64)?;
    }
    Ok(Journal {
        rows,
        repaired_bytes,
    })
}

/// Read the complete rows without repairing anything (for readers such as `report`, which
/// must never modify a run another process may be writing).
pub fn read_rows<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, StoreError> {
    match std::fs::read(path) {
        Ok(text) => Ok(parse_rows(path, &text)?.0),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

fn parse_rows<T: DeserializeOwned>(
    path: &Path,
    text: &[u8],
) -> Result<(Vec<T>, usize), StoreError> {
    let mut rows = Vec::new();
    let mut offset = 0;
    let mut line_no = 0;
    while offset < text.len() {
        line_no += 1;
        let Some(nl) = text[offset..].iter().position(|&b| b == b'\n') else {
            // No newline: the last append was cut short.
            break;
        };
        let line = &text[offset..offset + nl];
        let is_last = offset + nl + 1 >= text.len();
        match serde_json::from_slice::<T>(line) {
            Ok(row) => rows.push(row),
            Err(_) if is_last => break,
            Err(e) => {
                return Err(StoreError::Corrupt {
                    path: PathBuf::from(format!("{}:{line_no}", path.display())),
                    why: format!("unreadable journal row: {e}"),
                });
            }
        }
        offset += nl + 1;
    }
    Ok((rows, offset))
}

fn truncate(path: &Path, len: u64) -> Result<(), StoreError> {
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    f.set_len(len).map_err(|e| StoreError::io(path, e))?;
    f.sync_all().map_err(|e| StoreError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Row {
        exp: u32,
    }

    #[test]
    fn append_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("experiments.jsonl");
        for exp in 0..3 {
            append_line(&p, &Row { exp }).unwrap();
        }
        let j: Journal<Row> = read_journal(&p).unwrap();
        assert_eq!(j.rows, vec![Row { exp: 0 }, Row { exp: 1 }, Row { exp: 2 }]);
        assert_eq!(j.repaired_bytes, 0);
    }

    #[test]
    fn torn_tail_is_cut_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("experiments.jsonl");
        append_line(&p, &Row { exp: 0 }).unwrap();
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"{\"exp\":").unwrap();
        drop(f);
        let j: Journal<Row> = read_journal(&p).unwrap();
        assert_eq!(j.rows, vec![Row { exp: 0 }]);
        assert_eq!(j.repaired_bytes, 7);
        append_line(&p, &Row { exp: 1 }).unwrap();
        let j: Journal<Row> = read_journal(&p).unwrap();
        assert_eq!(j.rows, vec![Row { exp: 0 }, Row { exp: 1 }]);
    }

    #[test]
    fn garbage_last_line_with_newline_is_cut_but_middle_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("j.jsonl");
        std::fs::write(&p, "{\"exp\":0}\n{\"ex\n").unwrap();
        let j: Journal<Row> = read_journal(&p).unwrap();
        assert_eq!(j.rows.len(), 1);
        std::fs::write(&p, "{\"exp\":0}\nbad\n{\"exp\":2}\n").unwrap();
        let e = read_journal::<Row>(&p).unwrap_err().to_string();
        assert!(e.contains("j.jsonl:2: unreadable journal row"), "{e}");
    }

    #[test]
    fn missing_file_is_empty() {
        let j: Journal<Row> = read_journal(Path::new("/nonexistent/x.jsonl")).unwrap();
        assert!(j.rows.is_empty());
    }
}
