//! Reading a run — its journal (`experiments.jsonl`), failure classes, the run directories
//! of a store, result files — and what tests feed one: fixture paths and workloads.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A file or folder under `tests/fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The journal of `run` as written, a torn last line included (empty before it exists).
pub fn journal_text(run: &Path) -> String {
    std::fs::read_to_string(run.join("experiments.jsonl")).unwrap_or_default()
}

/// Complete lines of the journal, as text (for byte-exact comparisons across crashes).
pub fn journal_lines(run: &Path) -> Vec<String> {
    let text = journal_text(run);
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete.lines().map(str::to_string).collect()
}

/// Every complete row of the journal (a torn last line is not one yet); a complete line
/// that is not JSON fails the test.
pub fn journal(run: &Path) -> Vec<Value> {
    journal_lines(run)
        .iter()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The failure class of a row, if it failed.
pub fn class(row: &Value) -> Option<&str> {
    row.pointer("/failure/class").and_then(Value::as_str)
}

/// The run directories of a store, sorted by name.
pub fn run_dirs(store: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(store.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    dirs
}

/// The only run directory of a store.
pub fn only_run_dir(store: &Path) -> PathBuf {
    let mut dirs = run_dirs(store);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// The newest run directory of a store (by the sequence number its name starts with).
pub fn latest_run_dir(store: &Path) -> PathBuf {
    let seq = |p: &PathBuf| -> u64 {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        name.split('_').next().unwrap().parse().unwrap()
    };
    run_dirs(store).into_iter().max_by_key(seq).unwrap()
}

/// Read a JSON file (a bench or predict result, `completed.json`).
pub fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// Write `lines` as the workload file `dir/name`.
pub fn write_workload(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// `n` prompts with `out` expected output tokens each.
pub fn prompts(n: usize, out: u32) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"prompt": format!("request number {i} please"), "expected_output_tokens": out}))
        .collect()
}

/// A small workload (short prompts, short outputs) for fast tuning tests: `dir/small.jsonl`.
pub fn small_workload(dir: &Path, n: usize) -> PathBuf {
    let lines: Vec<Value> = (0..n)
        .map(|i| {
            let prompt = format!(
                "Request {i}: explain why the sky looks blue in about {} words.",
                20 + 5 * i
            );
            json!({"prompt": prompt, "expected_output_tokens": 24 + 8 * (i % 4)})
        })
        .collect();
    write_workload(dir, "small.jsonl", &lines)
}

/// The repository's sample workload.
pub fn sample_workload() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sample_workload.jsonl")
}

/// The simulator's tiny workload (six requests), `tests/fixtures/sim_small.jsonl`.
pub fn sim_small_workload() -> PathBuf {
    fixture("sim_small.jsonl")
}

/// `forge tune --dry-run` of the original's layer-2 scenario (T4 + Qwen2.5-3B, the sample
/// workload, from layer 2) for `experiments` experiments.
pub fn t4_layer2_dry_run(experiments: u32) -> Vec<String> {
    let workload = sample_workload().display().to_string();
    [
        "tune",
        "--dry-run",
        "--llm",
        "builtin",
        "--model",
        "Qwen/Qwen2.5-3B-Instruct",
        "--sim-gpu",
        "T4",
        "--workload",
        &workload,
        "--start-layer",
        "2",
        "--max-experiments",
        &experiments.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}
