//! Detection: NVML → `nvidia-smi` → `rocm-smi` (or the host alone for `--device cpu`),
//! then `*_VISIBLE_DEVICES`, mixed-GPU checks and spec matching. Every tool is run as argv
//! with a deadline; where it is found is configurable (`FORGE_NVIDIA_SMI`,
//! `FORGE_ROCM_SMI`, `FORGE_NVML=off`, `FORGE_NVML_LIB`) so tests can substitute fakes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::command::{self, Captured};
use super::nvml::{self, NvmlMode};
use super::rocm;
use super::smi::{self, SmiError};
use super::visible::{self, VisibleEnv};
use super::{
    DetectedGpu, Device, HardwareReport, NvmlStatus, Source, SourceFailure, group_summary, host,
    is_mixed,
};

/// Default deadline for one `nvidia-smi`/`rocm-smi` call (they hang on a wedged GPU).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// How to detect: which device, which tools, which environment.
#[derive(Debug, Clone)]
pub struct DetectOptions {
    /// The device asked for.
    pub device: Device,
    /// Whether and how to use NVML.
    pub nvml: NvmlMode,
    /// The `nvidia-smi` to run.
    pub nvidia_smi: OsString,
    /// The `rocm-smi` to run.
    pub rocm_smi: OsString,
    /// Visibility variables.
    pub env: VisibleEnv,
    /// Deadline for each tool.
    pub timeout: Duration,
    /// Where `/proc` is (host facts for `--device cpu`).
    pub proc_root: PathBuf,
}

impl DetectOptions {
    /// Options from this process's environment.
    pub fn from_env(device: Device) -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let nvml = match (
            std::env::var("FORGE_NVML").ok().as_deref(),
            var("FORGE_NVML_LIB"),
        ) {
            (Some("off" | "0" | "false"), _) => NvmlMode::Off,
            (_, Some(lib)) => NvmlMode::Lib(PathBuf::from(lib)),
            _ => NvmlMode::Auto,
        };
        DetectOptions {
            device,
            nvml,
            nvidia_smi: var("FORGE_NVIDIA_SMI").unwrap_or_else(|| "nvidia-smi".into()),
            rocm_smi: var("FORGE_ROCM_SMI").unwrap_or_else(|| "rocm-smi".into()),
            env: VisibleEnv::from_env(),
            timeout: TOOL_TIMEOUT,
            proc_root: PathBuf::from("/proc"),
        }
    }
}

/// Detect the hardware `opts.device` asks for. Never fails: what went wrong is in the
/// report's `failures` and `warnings`.
pub fn detect(opts: &DetectOptions) -> HardwareReport {
    match opts.device {
        Device::Cpu => detect_cpu(opts),
        Device::Cuda => detect_cuda(opts),
        Device::Rocm => detect_rocm(opts, HardwareReport::new(Device::Rocm)),
    }
}

fn detect_cpu(opts: &DetectOptions) -> HardwareReport {
    let mut r = HardwareReport::new(Device::Cpu);
    match host::read(&opts.proc_root) {
        Ok(h) => r.host = Some(h),
        Err(e) => r.warnings.push(format!("cannot read host facts: {e}")),
    }
    r
}

fn detect_cuda(opts: &DetectOptions) -> HardwareReport {
    let mut r = HardwareReport::new(Device::Cuda);
    match nvml_gpus(&opts.nvml) {
        Ok(g) => {
            r.nvml = NvmlStatus::Used;
            return finish_nvidia(r, g, Source::Nvml, opts);
        }
        Err(status) => r.nvml = status,
    }
    match smi_gpus(opts) {
        Ok((g, warnings)) => {
            r.warnings.extend(warnings);
            return finish_nvidia(r, g, Source::NvidiaSmi, opts);
        }
        Err(reason) => r.failures.push(SourceFailure {
            source: Source::NvidiaSmi,
            reason,
        }),
    }
    let before = r.failures.len();
    let r = detect_rocm(opts, r);
    if r.failures.len() == before && !r.gpus.is_empty() {
        let mut r = r;
        r.warnings
            .push("found AMD GPUs although --device is cuda; use --device rocm".into());
        return r;
    }
    r
}

fn nvml_gpus(mode: &NvmlMode) -> Result<Vec<DetectedGpu>, NvmlStatus> {
    if *mode == NvmlMode::Off {
        return Err(NvmlStatus::Disabled);
    }
    let n = nvml::init(mode).map_err(|e| NvmlStatus::Unavailable(e.0))?;
    let g = nvml::gpus(&n).map_err(|e| NvmlStatus::Unavailable(e.0))?;
    if g.is_empty() {
        return Err(NvmlStatus::Unavailable("NVML sees no GPU".into()));
    }
    Ok(g)
}

/// Run nvidia-smi with forge's query; on a driver too old for `compute_cap`, again without.
fn smi_gpus(opts: &DetectOptions) -> Result<(Vec<DetectedGpu>, Vec<String>), String> {
    match run_smi(opts, smi::QUERY_FIELDS) {
        Err(SmiError::UnknownField { field }) if field == "compute_cap" => {
            let g = run_smi(opts, smi::LEGACY_FIELDS).map_err(|e| e.to_string())?;
            let w = "nvidia-smi does not report compute capability (driver older than 510?); \
                     GPUs are matched by name and memory"
                .to_string();
            Ok((g, vec![w]))
        }
        other => other.map(|g| (g, Vec::new())).map_err(|e| e.to_string()),
    }
}

fn run_smi(opts: &DetectOptions, fields: &[&str]) -> Result<Vec<DetectedGpu>, SmiError> {
    let args = smi::query_args(fields);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command::capture(&opts.nvidia_smi, &argv, opts.timeout)
        .map_err(|e| SmiError::Tool(e.to_string()))?;
    interpret_smi(&out, fields)
}

/// nvidia-smi's answer → GPUs, or the reason there are none. Failure text wins over the
/// exit status (some failures exit 0, others print the reason and a non-zero status).
pub fn interpret_smi(out: &Captured, fields: &[&str]) -> Result<Vec<DetectedGpu>, SmiError> {
    if let Some(e) = smi::classify_failure(&out.all_text()) {
        return Err(e);
    }
    if !out.success() {
        let text = out.all_text();
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("");
        let code = out
            .code
            .map_or("a signal".into(), |c| format!("status {c}"));
        return Err(SmiError::Tool(format!(
            "nvidia-smi exited with {code}: {line}"
        )));
    }
    smi::parse_gpus(&out.stdout, fields)
}

fn finish_nvidia(
    mut r: HardwareReport,
    mut gpus: Vec<DetectedGpu>,
    source: Source,
    opts: &DetectOptions,
) -> HardwareReport {
    r.source = source;
    r.detected = gpus.len();
    if wants_uuids(&opts.env)
        && gpus.iter().any(|g| g.uuid.is_none())
        && let Err(e) = fill_uuids(&mut gpus, opts)
    {
        r.warnings.push(format!("cannot read GPU UUIDs: {e}"));
    }
    if opts.env.cuda.is_some()
        && is_mixed(&gpus)
        && opts.env.cuda_device_order.as_deref() != Some("PCI_BUS_ID")
    {
        r.warnings.push(
            "CUDA_VISIBLE_DEVICES indices are read in PCI bus order (nvidia-smi's); on a mixed \
             box CUDA's default order (FASTEST_FIRST) can differ: set CUDA_DEVICE_ORDER=PCI_BUS_ID"
                .into(),
        );
    }
    let (visible, w) = visible::apply_cuda(gpus, &opts.env);
    r.warnings.extend(w);
    set_visible(r, visible)
}

fn set_visible(mut r: HardwareReport, visible: Vec<DetectedGpu>) -> HardwareReport {
    r.mixed = is_mixed(&visible);
    if r.mixed {
        let first = &visible[0];
        r.warnings.push(format!(
            "mixed GPUs: {}. Tuning assumes identical GPUs; the recipe is tuned for GPU {} ({})",
            group_summary(&visible),
            first.index,
            first.name
        ));
    }
    r.gpus = visible;
    r
}

fn wants_uuids(env: &VisibleEnv) -> bool {
    [&env.cuda, &env.hip, &env.rocr]
        .iter()
        .filter_map(|v| v.as_deref())
        .any(|v| v.to_ascii_lowercase().contains("gpu-"))
}

fn fill_uuids(gpus: &mut [DetectedGpu], opts: &DetectOptions) -> Result<(), String> {
    let fields = &["index", "uuid"];
    let args = smi::query_args(fields);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = command::capture(&opts.nvidia_smi, &argv, opts.timeout).map_err(|e| e.to_string())?;
    let rows = smi::parse_query(&out.stdout, fields).map_err(|e| e.to_string())?;
    for row in rows {
        let idx = row.number("index").map_err(|e| e.to_string())?;
        if let Some(g) = gpus.iter_mut().find(|g| Some(u64::from(g.index)) == idx) {
            g.uuid = row.get("uuid").map(str::to_string);
        }
    }
    Ok(())
}

fn detect_rocm(opts: &DetectOptions, mut r: HardwareReport) -> HardwareReport {
    match rocm_gpus(opts) {
        Ok((gpus, warnings)) => {
            r.source = Source::RocmSmi;
            r.detected = gpus.len();
            r.warnings.extend(warnings);
            let (visible, w) = visible::apply_amd(gpus, &opts.env);
            r.warnings.extend(w);
            set_visible(r, visible)
        }
        Err(reason) => {
            r.failures.push(SourceFailure {
                source: Source::RocmSmi,
                reason,
            });
            r
        }
    }
}

fn rocm_gpus(opts: &DetectOptions) -> Result<(Vec<DetectedGpu>, Vec<String>), String> {
    let out = command::capture(&opts.rocm_smi, rocm::PRODUCT_ARGS, opts.timeout)
        .map_err(|e| e.to_string())?;
    interpret_rocm(&out).map_err(|e| e.to_string())
}

/// rocm-smi's answer → GPUs and warnings.
pub fn interpret_rocm(out: &Captured) -> Result<(Vec<DetectedGpu>, Vec<String>), rocm::RocmError> {
    let parsed = rocm::parse(&out.stdout, &out.stderr)?;
    let (gpus, mut warnings) = rocm::gpus_from_cards(&parsed.cards, parsed.driver.as_deref());
    warnings.extend(parsed.warning);
    if !out.success() {
        warnings.push(format!(
            "rocm-smi exited with status {:?} but printed GPUs",
            out.code
        ));
    }
    Ok((gpus, warnings))
}
