//! `forge trace analyze`: where the GPU time goes in a torch-profiler trace, as the
//! campaign contract's analysis reports it (`../shared/notes/sota-loop.md`, "Trace
//! analysis"). [`read`] streams the trace event by event (never held whole); [`kernels`]
//! picks out the GPU kernels, names and categorizes them and totals them per process.
//!
//! [`sites`] joins each kernel to its launching cpu_op and Python frame. This is the kernel
//! table; the overlap and fusion tables, the layer pipeline and `--compare` build on the
//! same stream.

pub mod kernels;
pub mod read;
pub mod sites;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use read::TraceError;

/// What a trace says.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    /// The trace.
    pub path: PathBuf,
    /// Events read.
    pub events: u64,
    /// The process analyzed (the one with the most kernel time).
    pub pid: String,
    /// Its kernel time, µs.
    pub kernel_us: f64,
    /// Per kernel, longest first.
    pub kernels: Vec<kernels::KernelRow>,
}

/// Analyze the trace at `path`.
pub fn analyze(path: &Path) -> Result<Analysis, TraceError> {
    let mut totals = kernels::Totals::default();
    let mut sites = sites::Sites::default();
    let events = read::for_each_event(path, |e| {
        totals.add(&e);
        sites.add(&e);
    })?;
    let (pid, mut rows) = totals.table().ok_or_else(|| TraceError {
        path: path.to_path_buf(),
        what: format!("no GPU kernel among its {events} events (a CPU-only trace?)"),
    })?;
    let found = sites.resolve(&pid);
    for r in &mut rows {
        if let Some(site) = found.get(&r.canonical) {
            r.site_share = site.python.as_ref().map(|_| site.python_share);
            r.python_location = site.python.clone();
            r.cpu_op = site.cpu_op.clone();
        }
    }
    Ok(Analysis {
        path: path.to_path_buf(),
        events,
        pid: pid.0,
        kernel_us: rows.iter().map(|r| r.gpu_us).sum(),
        kernels: rows,
    })
}

/// Rows under this share of GPU time are summarized in one line, not listed.
pub const HIDE_BELOW: f64 = 0.01;

/// The kernel table as Markdown.
pub fn markdown(a: &Analysis) -> String {
    let mut out = format!(
        "# Trace analysis\n\n`{}`: {} events; process {}, {} of GPU kernel time.\n\n## Kernels\n\n",
        a.path.display(),
        a.events,
        a.pid,
        time(a.kernel_us)
    );
    out.push_str(
        "| Kernel | Category | GPU time | Share | Launches | Python location (site share) | CPU op |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | --- | --- |\n");
    let (shown, hidden): (Vec<_>, Vec<_>) = a.kernels.iter().partition(|r| r.share >= HIDE_BELOW);
    for r in shown {
        let site = match (&r.python_location, r.site_share) {
            (Some(p), Some(sh)) => format!("{p} ({:.0}%)", sh * 100.0),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1}% | {} | {} | {} |",
            clip(&r.kernel).replace('|', "\\|"),
            r.category,
            time(r.gpu_us),
            r.share * 100.0,
            r.launches,
            site.replace('|', "\\|"),
            r.cpu_op.as_deref().unwrap_or("").replace('|', "\\|")
        );
    }
    if !hidden.is_empty() {
        let us: f64 = hidden.iter().map(|r| r.gpu_us).sum();
        let _ = writeln!(
            out,
            "\n{} kernels under 1 % of GPU time each are not listed ({} together).",
            hidden.len(),
            time(us)
        );
    }
    out
}

/// Longest kernel name shown in a table (the JSON keeps every name whole).
const NAME_CHARS: usize = 96;

/// A long name keeps its head and its tail (kernels of one family differ at either end).
fn clip(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= NAME_CHARS {
        return name.to_string();
    }
    let head = NAME_CHARS * 3 / 5;
    let tail = NAME_CHARS - head - 1;
    let mut s: String = chars[..head].iter().collect();
    s.push('…');
    s.extend(&chars[chars.len() - tail..]);
    s
}

/// A duration for a table: ms with two decimals, µs below 10 µs.
fn time(us: f64) -> String {
    if us >= 10.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.1} µs")
    }
}

/// A shared trace under `tests/fixtures/traces/` (unit tests).
#[cfg(test)]
pub(crate) fn tests_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/traces")
        .join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vllm_b200_prefill_trace_has_the_reference_all_reduce_row() {
        let a = analyze(&tests_fixture("vllm-b200-gptoss-prefill.json.gz")).unwrap();
        let r = a
            .kernels
            .iter()
            .find(|r| r.kernel == "multimem_all_reduce_kernel")
            .unwrap();
        assert_eq!(r.category, "communication");
        assert_eq!(format!("{:.2} ms", r.gpu_us / 1000.0), "2.12 ms");
        assert_eq!(format!("{:.1}%", r.share * 100.0), "18.2%");
        assert_eq!(r.launches, 73);
        let md = markdown(&a);
        assert!(
            md.contains("| multimem_all_reduce_kernel | communication | 2.12 ms | 18.2% | 73 | vllm/distributed/device_communicators/symm_mem.py:127 all_reduce (100%) |"),
            "{md}"
        );
    }

    #[test]
    fn every_shared_trace_has_kernels_and_shares_that_add_up() {
        for t in [
            "vllm-b200-gptoss-prefill.json.gz",
            "vllm-mi300-gptoss-decode-cudagraph.json.gz",
            "sglang-mi300x-qwen3-8b-decode.json.gz",
            "hta-triton-example.json.gz",
        ] {
            let a = analyze(&tests_fixture(t)).unwrap();
            assert!(!a.kernels.is_empty(), "{t}");
            let share: f64 = a.kernels.iter().map(|r| r.share).sum();
            assert!((share - 1.0).abs() < 1e-9, "{t}: {share}");
            assert!(a.kernels.windows(2).all(|w| w[0].gpu_us >= w[1].gpu_us));
        }
    }
}
