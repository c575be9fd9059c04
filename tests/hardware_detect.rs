//! Detection end to end against fake `nvidia-smi`/`rocm-smi` scripts that print recorded
//! outputs from `tests/fixtures/hardware/`: the fallback order, `*_VISIBLE_DEVICES`, mixed
//! GPUs, tools that fail (with exit 0, too) or hang, and the idle-memory wait.
//!
//! Where a fake must answer a query no recording covers (the UUID and `memory.used`
//! follow-up queries, the legacy query without `compute_cap`), its answer is built from
//! values in the recordings and says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use forge::hardware::nvml::NvmlMode;
use forge::hardware::visible::VisibleEnv;
use forge::hardware::{
    DetectOptions, Device, MemoryError, MemoryProbe, NvmlStatus, Source, detect,
    wait_for_idle_memory,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hardware")
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

/// A fake nvidia-smi: forge's query prints `main`; other queries print what `others` says
/// for the first argument (shell `case` arms), else fail like nvidia-smi on a bad field.
fn fake_smi(dir: &Path, main: &str, others: &str) -> PathBuf {
    let main = fixtures().join("nvidia-smi").join(main);
    script(
        dir,
        "nvidia-smi",
        &format!(
            "case \"$1\" in\n\
             --query-gpu=index,name,memory.total,compute_cap,driver_version) /bin/cat '{}' ;;\n\
             {others}\n\
             *) echo \"unexpected $*\"; exit 2 ;;\n\
             esac",
            main.display()
        ),
    )
}

fn opts(dir: &Path, device: Device, env: VisibleEnv) -> DetectOptions {
    DetectOptions {
        device,
        // A library path that does not exist: NVML fails to load, as on a box without the
        // driver, whatever this test machine has installed.
        nvml: NvmlMode::Lib(dir.join("libnvidia-ml.so.1")),
        nvidia_smi: dir.join("nvidia-smi").into_os_string(),
        rocm_smi: dir.join("rocm-smi").into_os_string(),
        env,
        timeout: Duration::from_secs(10),
        proc_root: fixtures().join("proc"),
    }
}

fn cuda_env(v: &str) -> VisibleEnv {
    VisibleEnv {
        cuda: Some(v.into()),
        ..Default::default()
    }
}

fn indices(r: &forge::hardware::HardwareReport) -> Vec<u32> {
    r.gpus.iter().map(|g| g.index).collect()
}

/// UUIDs of the four A100s of the recorded 4×A100 box (from the same report's
/// `nvidia-smi nvlink` section), answered in forge's `index,uuid` format.
const A100_UUIDS: &str = "--query-gpu=index,uuid) printf '%s\\n' \
    '0, GPU-e04968e9-3302-841c-b00f-f388d7a8f56f' \
    '1, GPU-fd26179c-de1f-3f6f-f298-383b36269b35' \
    '2, GPU-60619e5a-d4b4-3305-17ff-190a5474ada5' \
    '3, GPU-ca841b49-69a5-890b-d980-1bd4f98161d8' ;;";

#[test]
fn nvml_unavailable_falls_back_to_nvidia_smi_and_visibility_reorders() {
    let dir = tempfile::tempdir().unwrap();
    fake_smi(dir.path(), "a100-sxm4-80gb-x4_580.105.08.csv", "");
    let r = detect(&opts(dir.path(), Device::Cuda, cuda_env("2,0")));
    assert_eq!(r.source, Source::NvidiaSmi);
    let NvmlStatus::Unavailable(why) = &r.nvml else {
        panic!("{:?}", r.nvml)
    };
    assert!(why.starts_with("cannot load "), "{why}");
    assert_eq!((r.detected, indices(&r)), (4, vec![2, 0]));
    assert_eq!(r.gpu_type(), Some("A100-80GB"));
    assert!(!r.mixed);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[test]
fn uuid_selection_asks_nvidia_smi_for_uuids() {
    let dir = tempfile::tempdir().unwrap();
    fake_smi(dir.path(), "a100-sxm4-80gb-x4_580.105.08.csv", A100_UUIDS);
    let r = detect(&opts(
        dir.path(),
        Device::Cuda,
        cuda_env("GPU-ca84,GPU-60619e5a"),
    ));
    assert_eq!(indices(&r), vec![3, 2]);
    assert_eq!(
        r.gpus[0].uuid.as_deref(),
        Some("GPU-ca841b49-69a5-890b-d980-1bd4f98161d8")
    );
}

#[test]
fn empty_and_invalid_visibility_hide_everything() {
    let dir = tempfile::tempdir().unwrap();
    fake_smi(dir.path(), "a100-sxm4-80gb-x4_580.105.08.csv", "");
    for v in ["", "-1", "7"] {
        let r = detect(&opts(dir.path(), Device::Cuda, cuda_env(v)));
        assert!(r.gpus.is_empty(), "{v}: {:?}", indices(&r));
        assert_eq!(r.detected, 4);
        assert!(!r.warnings.is_empty());
    }
}

#[test]
fn mixed_gpus_are_reported_with_the_recipe_gpu() {
    let dir = tempfile::tempdir().unwrap();
    fake_smi(dir.path(), "titanv-rtx5880-mixed_570.86.15.csv", "");
    let r = detect(&opts(dir.path(), Device::Cuda, VisibleEnv::default()));
    assert!(r.mixed);
    assert_eq!(
        r.warnings,
        vec![
            "mixed GPUs: 1× NVIDIA TITAN V (CC 7.0), 1× NVIDIA RTX 5880 Ada Generation (CC 8.9). \
             Tuning assumes identical GPUs; the recipe is tuned for GPU 0 (NVIDIA TITAN V)"
        ]
    );
    // Selecting one of them is no longer mixed, but the order caveat applies.
    let r = detect(&opts(dir.path(), Device::Cuda, cuda_env("1")));
    assert!(!r.mixed);
    assert_eq!(r.gpus[0].name, "NVIDIA RTX 5880 Ada Generation");
    assert!(
        r.warnings[0].contains("CUDA_DEVICE_ORDER=PCI_BUS_ID"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn an_old_driver_without_compute_cap_is_queried_again_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let refusal = fixtures().join("nvidia-smi/error-compute-cap-unknown.txt");
    // The legacy answer is the recorded H100 PCIe row in forge's legacy column order.
    script(
        dir.path(),
        "nvidia-smi",
        &format!(
            "case \"$1\" in\n\
             *compute_cap*) /bin/cat '{}'; exit 2 ;;\n\
             --query-gpu=index,name,memory.total,driver_version) echo '0, NVIDIA H100 PCIe, 81559, 570.211.01' ;;\n\
             esac",
            refusal.display()
        ),
    );
    let r = detect(&opts(dir.path(), Device::Cuda, VisibleEnv::default()));
    assert_eq!(r.source, Source::NvidiaSmi);
    assert_eq!(r.gpu_type(), Some("H100-PCIe"));
    assert!(r.warnings[0].starts_with("nvidia-smi does not report compute capability"));
}

#[test]
fn no_driver_and_no_rocm_smi_means_no_gpus_and_both_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let msg = fixtures().join("nvidia-smi/error-driver-unreachable.txt");
    script(
        dir.path(),
        "nvidia-smi",
        &format!("/bin/cat '{}'; exit 9", msg.display()),
    );
    let r = detect(&opts(dir.path(), Device::Cuda, VisibleEnv::default()));
    assert_eq!((r.source, r.gpus.len()), (Source::None, 0));
    let reasons: Vec<String> = r
        .failures
        .iter()
        .map(|f| format!("{}: {}", f.source, f.reason))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons[0].starts_with(
        "nvidia-smi: nvidia-smi cannot talk to the NVIDIA driver: NVIDIA-SMI has failed"
    ));
    assert!(reasons[1].starts_with("rocm-smi: `"), "{reasons:?}");
    assert!(reasons[1].ends_with("rocm-smi` not found"), "{reasons:?}");
}

#[test]
fn a_hung_nvidia_smi_is_killed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "nvidia-smi", "exec sleep 30");
    let mut o = opts(dir.path(), Device::Cuda, VisibleEnv::default());
    o.timeout = Duration::from_millis(300);
    let r = detect(&o);
    assert!(
        r.failures[0].reason.contains("did not finish within 0.3s"),
        "{:?}",
        r.failures
    );
}

fn fake_rocm(dir: &Path, stdout_fixture: Option<&str>, stderr_fixture: Option<&str>) {
    let cat = |f: Option<&str>, redirect: &str| {
        f.map(|f| {
            format!(
                "/bin/cat '{}' {redirect};",
                fixtures().join("rocm-smi").join(f).display()
            )
        })
        .unwrap_or_default()
    };
    script(
        dir,
        "rocm-smi",
        &format!(
            "{} {} exit 0",
            cat(stdout_fixture, ""),
            cat(stderr_fixture, ">&2")
        ),
    );
}

#[test]
fn rocm_visibility_rocr_then_hip() {
    let dir = tempfile::tempdir().unwrap();
    fake_rocm(
        dir.path(),
        Some("rocm6-mi300a-x4_showproductname.json"),
        None,
    );
    let env = VisibleEnv {
        rocr: Some("1,2".into()),
        hip: Some("1".into()),
        ..Default::default()
    };
    let r = detect(&opts(dir.path(), Device::Rocm, env));
    assert_eq!(r.source, Source::RocmSmi);
    assert_eq!(r.nvml, NvmlStatus::NotTried);
    assert_eq!((r.detected, indices(&r)), (4, vec![2]));
    assert_eq!(r.gpus[0].gfx.as_deref(), Some("gfx942"));
}

#[test]
fn rocm_smi_exiting_0_with_an_error_is_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    fake_rocm(
        dir.path(),
        None,
        Some("error-driver-not-initialized.stderr"),
    );
    let r = detect(&opts(dir.path(), Device::Rocm, VisibleEnv::default()));
    assert!(r.gpus.is_empty());
    assert_eq!(
        r.failures[0].reason,
        "rocm-smi: the amdgpu driver is not loaded \
         (ERROR:root:Driver not initialized (amdgpu not found in modules))"
    );
    fake_rocm(dir.path(), Some("error-no-json-data.txt"), None);
    let r = detect(&opts(dir.path(), Device::Rocm, VisibleEnv::default()));
    assert_eq!(
        r.failures[0].reason,
        "rocm-smi did not print JSON (an old rocm-smi, or an error): `WARNING: No JSON data to report`"
    );
}

#[test]
fn cuda_falls_back_to_rocm_smi_last() {
    let dir = tempfile::tempdir().unwrap();
    script(dir.path(), "nvidia-smi", "exit 127");
    fake_rocm(
        dir.path(),
        Some("rocm6.1-mi250x_showproductname.json"),
        None,
    );
    let r = detect(&opts(dir.path(), Device::Cuda, VisibleEnv::default()));
    assert_eq!(r.source, Source::RocmSmi);
    assert_eq!(r.gpu_type(), Some("MI250X"));
    assert!(r.warnings.last().unwrap().contains("use --device rocm"));
}

#[test]
fn cpu_reports_host_facts_from_proc() {
    let dir = tempfile::tempdir().unwrap();
    let r = detect(&opts(dir.path(), Device::Cpu, VisibleEnv::default()));
    let h = r.host.unwrap();
    assert_eq!((h.cpus, h.memory_total_mib), (2, 24105));
    assert_eq!(h.memory_available_mib, Some(21918));
    assert!(r.gpus.is_empty());
}

#[tokio::test]
async fn idle_memory_wait_reads_nvidia_smi_used_memory() {
    let dir = tempfile::tempdir().unwrap();
    // memory.used of the recorded busy A10G (22403 MiB), in forge's index,memory.used form.
    fake_smi(
        dir.path(),
        "a10g-busy.csv",
        "--query-gpu=index,memory.used) echo '0, 22403' ;;",
    );
    let o = opts(dir.path(), Device::Cuda, VisibleEnv::default());
    let r = detect(&o);
    let probe = MemoryProbe::for_report(&r, &o);
    assert_eq!(probe.used_mib().unwrap(), vec![22403]);
    let ok = wait_for_idle_memory(&probe, &[22000], 512, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(ok.final_used_mib, vec![22403]);
    let e = wait_for_idle_memory(&probe, &[0], 512, Duration::from_millis(10))
        .await
        .unwrap_err();
    assert!(
        matches!(e, MemoryError::Timeout { ref final_used_mib, .. } if *final_used_mib == vec![22403])
    );
}
