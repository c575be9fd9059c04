//! GPU memory in use, and waiting for it to return to its idle level before an engine
//! boots (a previous engine's workers can hold memory for seconds after they exit; booting
//! into that makes a healthy config look like an OOM). The wait has a deadline and reports
//! how long it waited; on CPU it does nothing.

use std::ffi::OsString;
use std::future::Future;
use std::time::Duration;

use super::detect::DetectOptions;
use super::nvml::{self, NvmlMode};
use super::{Device, HardwareReport, Source, command, rocm, smi};

/// How to read used memory of the visible GPUs, in device order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryProbe {
    /// No GPU (CPU runs): nothing to read.
    None,
    /// NVML, GPUs at these NVML indices.
    Nvml {
        /// NVML library mode.
        mode: NvmlMode,
        /// Driver indices.
        indices: Vec<u32>,
    },
    /// `nvidia-smi --query-gpu=index,memory.used`.
    NvidiaSmi {
        /// Program.
        program: OsString,
        /// Driver indices.
        indices: Vec<u32>,
        /// Deadline per call.
        timeout: Duration,
    },
    /// `rocm-smi --showmeminfo vram --json`.
    RocmSmi {
        /// Program.
        program: OsString,
        /// Card numbers.
        cards: Vec<u32>,
        /// Deadline per call.
        timeout: Duration,
    },
}

/// Used memory could not be read, or did not come back down in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemoryError {
    /// The probe failed.
    #[error("cannot read GPU memory: {0}")]
    Unavailable(String),
    /// The deadline passed with memory still above idle.
    #[error(
        "GPU memory did not return to idle within {}s: used {final_used_mib:?} MiB, idle {baseline_mib:?} MiB (+{tolerance_mib} MiB tolerance)",
        waited.as_secs_f64()
    )]
    Timeout {
        /// How long it waited.
        waited: Duration,
        /// Last reading, MiB per GPU.
        final_used_mib: Vec<u64>,
        /// The idle level, MiB per GPU.
        baseline_mib: Vec<u64>,
        /// Allowed excess, MiB.
        tolerance_mib: u64,
    },
}

/// A successful wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// How long it took (zero when memory was already idle or there is no GPU).
    pub waited: Duration,
    /// Last reading, MiB per GPU.
    pub final_used_mib: Vec<u64>,
}

impl MemoryProbe {
    /// The probe matching how `report` was detected.
    pub fn for_report(report: &HardwareReport, opts: &DetectOptions) -> Self {
        let indices: Vec<u32> = report.gpus.iter().map(|g| g.index).collect();
        match (report.device, report.source) {
            (Device::Cpu, _) | (_, Source::None) => MemoryProbe::None,
            (_, Source::Nvml) => MemoryProbe::Nvml {
                mode: opts.nvml.clone(),
                indices,
            },
            (_, Source::NvidiaSmi) => MemoryProbe::NvidiaSmi {
                program: opts.nvidia_smi.clone(),
                indices,
                timeout: opts.timeout,
            },
            (_, Source::RocmSmi) => MemoryProbe::RocmSmi {
                program: opts.rocm_smi.clone(),
                cards: indices,
                timeout: opts.timeout,
            },
        }
    }

    /// Used memory now, MiB per visible GPU (empty for no GPU). Blocking (runs a tool).
    pub fn used_mib(&self) -> Result<Vec<u64>, MemoryError> {
        let un = |e: String| MemoryError::Unavailable(e);
        match self {
            MemoryProbe::None => Ok(Vec::new()),
            MemoryProbe::Nvml { mode, indices } => {
                let n = nvml::init(mode).map_err(|e| un(e.0))?;
                nvml::used_mib(&n, indices).map_err(|e| un(e.0))
            }
            MemoryProbe::NvidiaSmi {
                program,
                indices,
                timeout,
            } => smi_used(program, indices, *timeout).map_err(un),
            MemoryProbe::RocmSmi {
                program,
                cards,
                timeout,
            } => rocm_used(program, cards, *timeout).map_err(un),
        }
    }
}

fn smi_used(program: &OsString, indices: &[u32], timeout: Duration) -> Result<Vec<u64>, String> {
    let fields = &["index", "memory.used"];
    let args = smi::query_args(fields);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command::capture(program, &argv, timeout).map_err(|e| e.to_string())?;
    let rows = smi::parse_query(&out.stdout, fields).map_err(|e| e.to_string())?;
    let mut by_index = Vec::new();
    for r in &rows {
        let i = r.number("index").map_err(|e| e.to_string())?;
        let used = r.number("memory.used").map_err(|e| e.to_string())?;
        by_index.push((i, used));
    }
    pick(indices, |i| {
        by_index
            .iter()
            .find(|(k, _)| *k == Some(u64::from(i)))
            .and_then(|(_, u)| *u)
    })
}

fn rocm_used(program: &OsString, cards: &[u32], timeout: Duration) -> Result<Vec<u64>, String> {
    let out = command::capture(program, rocm::MEMINFO_ARGS, timeout).map_err(|e| e.to_string())?;
    let used = rocm::parse_used_mib(&out.stdout, &out.stderr).map_err(|e| e.to_string())?;
    pick(cards, |c| {
        used.iter().find(|(k, _)| *k == c).map(|(_, u)| *u)
    })
}

fn pick(indices: &[u32], get: impl Fn(u32) -> Option<u64>) -> Result<Vec<u64>, String> {
    indices
        .iter()
        .map(|&i| get(i).ok_or_else(|| format!("no used-memory reading for GPU {i}")))
        .collect()
}

fn idle(used: &[u64], baseline: &[u64], tolerance_mib: u64) -> bool {
    used.iter()
        .enumerate()
        .all(|(i, u)| *u <= baseline.get(i).copied().unwrap_or(0) + tolerance_mib)
}

/// Wait until every visible GPU's used memory is within `tolerance_mib` of `baseline_mib`
/// (the idle reading taken before the first boot), polling once a second, for at most
/// `timeout`. A no-op for CPU runs.
pub async fn wait_for_idle_memory(
    probe: &MemoryProbe,
    baseline_mib: &[u64],
    tolerance_mib: u64,
    timeout: Duration,
) -> Result<WaitOutcome, MemoryError> {
    if *probe == MemoryProbe::None {
        return Ok(WaitOutcome {
            waited: Duration::ZERO,
            final_used_mib: Vec::new(),
        });
    }
    let sample = || {
        let p = probe.clone();
        async move {
            tokio::task::spawn_blocking(move || p.used_mib())
                .await
                .map_err(|e| MemoryError::Unavailable(e.to_string()))?
        }
    };
    wait_with(
        sample,
        baseline_mib,
        tolerance_mib,
        timeout,
        Duration::from_secs(1),
    )
    .await
}

/// The waiting loop over any sampler (tests drive it on tokio's paused clock).
pub async fn wait_with<S, F>(
    mut sample: S,
    baseline_mib: &[u64],
    tolerance_mib: u64,
    timeout: Duration,
    poll: Duration,
) -> Result<WaitOutcome, MemoryError>
where
    S: FnMut() -> F,
    F: Future<Output = Result<Vec<u64>, MemoryError>>,
{
    let start = tokio::time::Instant::now();
    loop {
        let used = sample().await?;
        let waited = start.elapsed();
        if idle(&used, baseline_mib, tolerance_mib) {
            return Ok(WaitOutcome {
                waited,
                final_used_mib: used,
            });
        }
        if waited >= timeout {
            return Err(MemoryError::Timeout {
                waited,
                final_used_mib: used,
                baseline_mib: baseline_mib.to_vec(),
                tolerance_mib,
            });
        }
        tokio::time::sleep(poll.min(timeout - waited)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scripted(
        readings: Vec<Vec<u64>>,
    ) -> impl FnMut() -> std::future::Ready<Result<Vec<u64>, MemoryError>> {
        let mut it = readings.into_iter();
        let mut last = Vec::new();
        move || {
            if let Some(r) = it.next() {
                last = r;
            }
            std::future::ready(Ok(last.clone()))
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn returns_once_memory_is_back_near_idle() {
        let s = scripted(vec![vec![30000, 500], vec![9000, 500], vec![600, 520]]);
        let out = wait_with(s, &[512, 512], 256, Duration::from_secs(60), MS)
            .await
            .unwrap();
        assert_eq!(out.final_used_mib, vec![600, 520]);
        // Two readings were above idle, so it slept at least twice.
        assert!(out.waited >= 2 * MS, "{:?}", out.waited);
    }

    #[tokio::test]
    async fn already_idle_returns_on_the_first_reading() {
        let mut calls = 0;
        let s = || {
            calls += 1;
            std::future::ready(Ok(vec![512]))
        };
        let out = wait_with(s, &[512], 0, Duration::from_secs(5), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.final_used_mib, vec![512]);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn the_timeout_is_reported_with_the_last_reading() {
        let s = scripted(vec![vec![70000]]);
        let timeout = 20 * MS;
        let e = wait_with(s, &[500], 100, timeout, MS).await.unwrap_err();
        let MemoryError::Timeout {
            waited,
            final_used_mib,
            baseline_mib,
            tolerance_mib,
        } = &e
        else {
            panic!("{e:?}");
        };
        assert!(*waited >= timeout);
        assert_eq!(
            (final_used_mib, baseline_mib, *tolerance_mib),
            (&vec![70000], &vec![500], 100)
        );
        let text = e.to_string();
        assert!(
            text.starts_with("GPU memory did not return to idle within 0.0")
                && text.ends_with("used [70000] MiB, idle [500] MiB (+100 MiB tolerance)"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn probe_errors_stop_the_wait() {
        let s = || std::future::ready(Err(MemoryError::Unavailable("gone".into())));
        let e = wait_with(s, &[0], 0, Duration::from_secs(3), MS)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "cannot read GPU memory: gone");
    }

    #[tokio::test]
    async fn cpu_is_a_no_op() {
        let out = wait_for_idle_memory(&MemoryProbe::None, &[], 0, Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(out.waited, Duration::ZERO);
    }
}
