//! What `forge bench` shows and writes: the summary table on stdout (the rows of vLLM's
//! "Serving Benchmark Result" block plus forge's additions), diagnostics on stderr, and the
//! result JSON written atomically (temp file + rename), so a reader never sees half a file.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use comfy_table::{Table, presets};

use super::metrics::{BenchResult, ScheduleStats, Summary};

/// The summary table, ending in a newline.
pub fn summary(r: &BenchResult) -> String {
    let mut t = Table::new();
    t.load_style(presets::ASCII_FULL_CONDENSED).force_no_tty();
    t.set_header(vec!["Serving Benchmark Result", "forge bench"]);
    for (k, v) in count_rows(r).into_iter().chain(throughput_rows(r)) {
        t.add_row(vec![k, v]);
    }
    vllm_sections(&mut t, r);
    summary_section(
        &mut t,
        "Inter-token Latency per token",
        "ITL/token",
        &r.itl_per_token,
    );
    summary_section(
        &mut t,
        "TTFT from intended send",
        "TTFT",
        &r.ttft_from_schedule,
    );
    summary_section(
        &mut t,
        "E2EL from intended send",
        "E2EL",
        &r.e2el_from_schedule,
    );
    schedule_rows(&mut t, r);
    format!("{t}\n")
}

/// vLLM's four latency blocks: mean, median and each requested percentile.
fn vllm_sections(t: &mut Table, r: &BenchResult) {
    let labels = percentile_labels(r);
    let sections = [
        ("Time to First Token", "TTFT", "ttft"),
        ("Time per Output Token (excl. 1st token)", "TPOT", "tpot"),
        ("Inter-token Latency", "ITL", "itl"),
        ("End-to-end Latency", "E2EL", "e2el"),
    ];
    for (title, short, key) in sections {
        section(t, title);
        let (mean, median) = vllm_mean_median(r, key);
        t.add_row(vec![format!("Mean {short} (ms)"), f2(mean)]);
        t.add_row(vec![format!("Median {short} (ms)"), f2(median)]);
        for l in &labels {
            let v = r.percentile_keys.get(&format!("p{l}_{key}_ms"));
            t.add_row(vec![
                format!("P{l} {short} (ms)"),
                f2(v.copied().unwrap_or(0.0)),
            ]);
        }
    }
}

/// Requests, failures by kind, the offered load and the duration.
fn count_rows(r: &BenchResult) -> Vec<(String, String)> {
    let mut rows = vec![
        ("Successful requests".into(), r.completed.to_string()),
        ("Failed requests".into(), r.failed.to_string()),
    ];
    for (kind, n) in r.failures.iter().filter(|(_, n)| **n > 0) {
        rows.push((format!("  failed: {kind}"), n.to_string()));
    }
    if let Some(c) = r.max_concurrency {
        rows.push(("Maximum request concurrency".into(), c.to_string()));
    }
    let rate = match &r.request_rate {
        serde_json::Value::Number(n) => f2(n.as_f64().unwrap_or(0.0)),
        v => v.as_str().unwrap_or("?").to_string(),
    };
    rows.push(("Request rate configured (RPS)".into(), rate));
    rows.push(("Benchmark duration (s)".into(), f2(r.duration)));
    rows
}

/// Token totals, throughputs and peak concurrency.
fn throughput_rows(r: &BenchResult) -> Vec<(String, String)> {
    let mut out = r.total_output_tokens.to_string();
    if r.estimated_output_tokens > 0 {
        out.push_str(&format!(" ({} req. estimated)", r.estimated_output_tokens));
    }
    let mut rows = vec![
        (
            "Total input tokens".into(),
            r.total_input_tokens.to_string(),
        ),
        ("Total generated tokens".into(), out),
        (
            "Request throughput (req/s)".into(),
            f2(r.request_throughput),
        ),
    ];
    if let Some(g) = r.request_goodput {
        rows.push(("Request goodput (req/s)".into(), f2(g)));
    }
    rows.push((
        "Output token throughput (tok/s)".into(),
        f2(r.output_throughput),
    ));
    rows.push((
        "Total token throughput (tok/s)".into(),
        f2(r.total_token_throughput),
    ));
    rows.push((
        "Peak concurrent requests".into(),
        r.max_concurrent_requests.to_string(),
    ));
    rows
}

fn vllm_mean_median(r: &BenchResult, key: &str) -> (f64, f64) {
    match key {
        "ttft" => (r.mean_ttft_ms, r.median_ttft_ms),
        "tpot" => (r.mean_tpot_ms, r.median_tpot_ms),
        "itl" => (r.mean_itl_ms, r.median_itl_ms),
        _ => (r.mean_e2el_ms, r.median_e2el_ms),
    }
}

fn summary_section(t: &mut Table, title: &str, short: &str, s: &Summary) {
    section(t, title);
    t.add_row(vec![format!("Mean {short} (ms)"), f2(s.mean)]);
    t.add_row(vec![format!("Median {short} (ms)"), f2(s.median)]);
    let mut ps: Vec<(&String, &f64)> = s.percentiles.iter().collect();
    ps.sort_by(|a, b| label_value(a.0).total_cmp(&label_value(b.0)));
    for (l, v) in ps {
        t.add_row(vec![format!("P{l} {short} (ms)"), f2(*v)]);
    }
}

fn schedule_rows(t: &mut Table, r: &BenchResult) {
    let s = &r.schedule;
    section(t, "Schedule");
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), f2);
    t.add_row(vec![
        "Intended rate (req/s)".to_string(),
        opt(s.intended_rate),
    ]);
    t.add_row(vec![
        "Achieved rate (req/s)".to_string(),
        opt(s.achieved_rate),
    ]);
    t.add_row(vec![
        "Mean send delay (ms)".to_string(),
        f2(s.delay_ms.mean),
    ]);
    let p99 = s.delay_ms.percentiles.get("99").copied().unwrap_or(0.0);
    t.add_row(vec!["P99 send delay (ms)".to_string(), f2(p99)]);
    let kept = if s.client_kept_up { "yes" } else { "NO" };
    t.add_row(vec!["Client kept up".to_string(), kept.to_string()]);
    t.add_row(vec![
        "Tokens read together (%)".to_string(),
        f2(s.tokens_read_together_pct),
    ]);
}

fn section(t: &mut Table, title: &str) {
    t.add_row(vec![format!("-- {title} --"), String::new()]);
}

/// The percentile labels present, in numeric order (`90`, `95`, `99`, `99.9`).
fn percentile_labels(r: &BenchResult) -> Vec<String> {
    let mut labels: Vec<String> = r
        .percentile_keys
        .keys()
        .filter_map(|k| k.strip_suffix("_ttft_ms")?.strip_prefix('p'))
        .map(str::to_string)
        .collect();
    labels.sort_by(|a, b| label_value(a).total_cmp(&label_value(b)));
    labels
}

fn label_value(l: &str) -> f64 {
    l.parse().unwrap_or(f64::MAX)
}

fn f2(v: f64) -> String {
    format!("{v:.2}")
}

/// Diagnostics on stderr: failure examples, a client that fell behind, estimated lengths.
pub fn warnings(r: &BenchResult) {
    let mut err = std::io::stderr().lock();
    if r.interrupted {
        let _ = writeln!(
            err,
            "warning: interrupted: only the {} requests that finished are reported",
            r.num_prompts
        );
    }
    for (i, e) in r.failure_examples.iter().enumerate() {
        let _ = writeln!(err, "failure {i}: {e}");
    }
    if !r.schedule.client_kept_up {
        let _ = writeln!(
            err,
            "warning: the client fell behind its schedule (see send delay); \
             latencies from the intended send include that lag"
        );
    }
    if !r.schedule.token_timing_ok() {
        let _ = writeln!(err, "warning: {}", token_timing_warning(&r.schedule));
    }
    if r.estimated_output_tokens > 0 {
        let _ = writeln!(
            err,
            "warning: {} requests had no usage from the server; their output tokens are \
             estimated",
            r.estimated_output_tokens
        );
    }
}

/// Why token timings of a replay cannot be trusted (see [`ScheduleStats::token_timing_ok`]).
pub fn token_timing_warning(s: &ScheduleStats) -> String {
    format!(
        "{:.0} % of tokens arrived in the same read as the token before: the client could not \
         time tokens one by one, so ITL, TPOT and TTFT are unreliable (against a simulator on \
         a scaled clock, use a larger --time-scale / --sim-time-scale, or a release build)",
        s.tokens_read_together_pct
    )
}

/// Write the result as pretty JSON: to a temp file beside `path`, fsync'd, then renamed.
pub fn write_json_atomic(path: &Path, r: &BenchResult) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(r).context("cannot serialize the result")?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().map_or_else(
        || "result.json".into(),
        |n| n.to_string_lossy().into_owned(),
    );
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&json)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("{}: cannot write the result: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        let r = BenchResult {
            completed: 3,
            ..Default::default()
        };
        write_json_atomic(&path, &r).unwrap();
        let back: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(back["completed"], 3);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        let missing = dir.path().join("no/such/dir/r.json");
        assert!(write_json_atomic(&missing, &r).is_err());
    }

    #[test]
    fn percentile_rows_are_numeric_order() {
        let mut r = BenchResult::default();
        for l in ["99.9", "5", "90"] {
            r.percentile_keys.insert(format!("p{l}_ttft_ms"), 1.0);
        }
        assert_eq!(percentile_labels(&r), vec!["5", "90", "99.9"]);
        let s = summary(&r);
        let (a, b) = (s.find("P5 TTFT").unwrap(), s.find("P99.9 TTFT").unwrap());
        assert!(a < b);
    }
}
