//! NVML through `nvml-wrapper`, which loads `libnvidia-ml` at run time: the binary starts
//! on machines with no NVIDIA libraries, and a failed load is reported as "NVML
//! unavailable" with the reason, never as a crash.
//!
//! The driver package installs `libnvidia-ml.so.1`; the unversioned `libnvidia-ml.so` that
//! nvml-wrapper looks for by default comes only with development packages, so forge tries
//! the versioned name first.

use std::ffi::OsStr;
use std::path::PathBuf;

use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;

use super::DetectedGpu;
use super::gpus::{self, Vendor};

/// Library names tried when no path is configured.
pub const DEFAULT_LIBS: &[&str] = &["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// Whether and how to use NVML.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NvmlMode {
    /// Load the library from the default names.
    #[default]
    Auto,
    /// Do not use NVML (`FORGE_NVML=off`).
    Off,
    /// Load this library file (`FORGE_NVML_LIB`).
    Lib(PathBuf),
}

/// NVML could not be used; the text says why, for `forge doctor` and the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NvmlUnavailable(pub String);

/// Load and initialise NVML.
pub fn init(mode: &NvmlMode) -> Result<Nvml, NvmlUnavailable> {
    match mode {
        NvmlMode::Off => Err(NvmlUnavailable("disabled by FORGE_NVML=off".into())),
        NvmlMode::Lib(p) => init_from(p.as_os_str()),
        NvmlMode::Auto => {
            // Report the failure of the canonical name, not of the fallback.
            let mut first = None;
            for lib in DEFAULT_LIBS {
                match init_from(OsStr::new(lib)) {
                    Ok(n) => return Ok(n),
                    Err(e) => {
                        first.get_or_insert(e);
                    }
                }
            }
            Err(first.unwrap_or_else(|| NvmlUnavailable("no library name to try".into())))
        }
    }
}

fn init_from(lib: &OsStr) -> Result<Nvml, NvmlUnavailable> {
    Nvml::builder()
        .lib_path(lib)
        .init()
        .map_err(|e| NvmlUnavailable(describe(&lib.to_string_lossy(), &e)))
}

/// One line saying why NVML failed, in the user's terms.
fn describe(lib: &str, e: &NvmlError) -> String {
    match e {
        NvmlError::LibloadingError(inner) => {
            let why = innermost(inner);
            let why = why
                .strip_prefix(&format!("{lib}: "))
                .unwrap_or(&why)
                .to_string();
            format!("cannot load {lib}: {why}")
        }
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        NvmlError::LibraryNotFound => format!("{lib} not found"),
        other => format!("{lib}: {other}"),
    }
}

fn innermost(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    if text.is_empty() { e.to_string() } else { text }
}

/// Every GPU NVML sees, in NVML index order (PCI bus order, as nvidia-smi).
pub fn gpus(nvml: &Nvml) -> Result<Vec<DetectedGpu>, NvmlUnavailable> {
    let err = |what: &str, e: NvmlError| NvmlUnavailable(format!("NVML {what}: {e}"));
    let count = nvml.device_count().map_err(|e| err("device count", e))?;
    let driver = nvml.sys_driver_version().ok();
    (0..count)
        .map(|i| {
            let d = nvml.device_by_index(i).map_err(|e| err("device", e))?;
            let name = d.name().map_err(|e| err("name", e))?;
            let memory_mib = d.memory_info().ok().map(|m| m.total / (1024 * 1024));
            let cc = d
                .cuda_compute_capability()
                .ok()
                .and_then(|c| Some((u32::try_from(c.major).ok()?, u32::try_from(c.minor).ok()?)));
            Ok(DetectedGpu {
                index: d.index().unwrap_or(i),
                vendor: Vendor::Nvidia,
                spec: gpus::match_nvidia_detected(cc, memory_mib, &name),
                name,
                memory_mib,
                compute_capability: cc,
                gfx: None,
                driver_version: driver.clone(),
                uuid: d.uuid().ok(),
            })
        })
        .collect()
}

/// Used memory (MiB) of the GPUs at these NVML indices.
pub fn used_mib(nvml: &Nvml, indices: &[u32]) -> Result<Vec<u64>, NvmlUnavailable> {
    indices
        .iter()
        .map(|&i| {
            let d = nvml
                .device_by_index(i)
                .map_err(|e| NvmlUnavailable(format!("NVML device {i}: {e}")))?;
            let m = d
                .memory_info()
                .map_err(|e| NvmlUnavailable(format!("NVML memory of GPU {i}: {e}")))?;
            Ok(m.used / (1024 * 1024))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_unavailable_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libnvidia-ml.so.1");
        let e = init(&NvmlMode::Lib(lib.clone())).unwrap_err();
        assert!(
            e.0.starts_with(&format!("cannot load {}", lib.display())),
            "{e}"
        );
        assert!(e.0.contains("No such file"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libnvidia-ml.so.1");
        std::fs::write(&lib, "not an ELF file").unwrap();
        let e = init(&NvmlMode::Lib(lib)).unwrap_err();
        assert!(e.0.starts_with("cannot load"), "{e}");
    }

    #[test]
    fn off_means_off() {
        assert_eq!(
            init(&NvmlMode::Off).unwrap_err().0,
            "disabled by FORGE_NVML=off"
        );
    }

    /// On a machine without the NVIDIA driver (forge's CI), the default search fails
    /// cleanly; on a GPU machine it succeeds and sees at least one GPU.
    #[test]
    fn default_search_either_works_or_says_why() {
        match init(&NvmlMode::Auto) {
            Ok(n) => assert!(!gpus(&n).unwrap().is_empty()),
            Err(e) => assert!(!e.0.is_empty()),
        }
    }
}
