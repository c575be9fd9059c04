//! Every recorded `nvidia-smi`, `rocm-smi` and `/proc` output under
//! `tests/fixtures/hardware/` (sources in its README), parsed with the values read off the
//! recordings by hand: names, MiB, compute capability or gfx target, driver, spec match.

use forge::hardware::rocm::{self, RocmError};
use forge::hardware::smi::{self, LEGACY_FIELDS, QUERY_FIELDS, SmiError};
use forge::hardware::{DetectedGpu, host, is_mixed};

fn fixture(rel: &str) -> String {
    let p = format!(
        "{}/tests/fixtures/hardware/{rel}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn nvidia(rel: &str, fields: &[&str]) -> Vec<DetectedGpu> {
    smi::parse_gpus(&fixture(&format!("nvidia-smi/{rel}")), fields)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// (index, name, MiB, CC, driver, spec) of each GPU.
type Row<'a> = (
    u32,
    &'a str,
    Option<u64>,
    Option<(u32, u32)>,
    Option<&'a str>,
    Option<&'a str>,
);

fn rows(g: &[DetectedGpu]) -> Vec<Row<'_>> {
    g.iter()
        .map(|g| {
            (
                g.index,
                g.name.as_str(),
                g.memory_mib,
                g.compute_capability,
                g.driver_version.as_deref(),
                g.spec.map(|s| s.name),
            )
        })
        .collect()
}

#[test]
fn a100_sxm4_80gb_x4_driver_580() {
    let g = nvidia("a100-sxm4-80gb-x4_580.105.08.csv", QUERY_FIELDS);
    let one = |i| {
        (
            i,
            "NVIDIA A100-SXM4-80GB",
            Some(81920),
            Some((8, 0)),
            Some("580.105.08"),
            Some("A100-80GB"),
        )
    };
    assert_eq!(rows(&g), vec![one(0), one(1), one(2), one(3)]);
    assert!(!is_mixed(&g));
}

#[test]
fn tesla_t4_driver_580() {
    let g = nvidia("t4_580.126.20.csv", QUERY_FIELDS);
    assert_eq!(
        rows(&g),
        vec![(
            0,
            "Tesla T4",
            Some(15360),
            Some((7, 5)),
            Some("580.126.20"),
            Some("T4")
        )]
    );
}

#[test]
fn a_gpu_outside_the_table_has_no_spec() {
    let g = nvidia("gtx1660super_580.173.02.csv", QUERY_FIELDS);
    assert_eq!(
        rows(&g),
        vec![(
            0,
            "NVIDIA GeForce GTX 1660 SUPER",
            Some(6144),
            Some((7, 5)),
            Some("580.173.02"),
            None
        )]
    );
}

#[test]
fn a100_pcie_and_sxm4_on_one_box_are_mixed_but_both_a100_80gb() {
    let g = nvidia("a100-80gb-pcie-sxm4-mixed-x7.csv", QUERY_FIELDS);
    assert_eq!(g.len(), 7);
    assert_eq!(g[4].name, "NVIDIA A100-SXM4-80GB");
    assert!(g.iter().enumerate().all(|(i, g)| g.index as usize == i));
    assert!(
        g.iter()
            .all(|g| g.spec.map(|s| s.name) == Some("A100-80GB"))
    );
    assert!(g.iter().all(|g| g.driver_version.is_none()));
    assert!(is_mixed(&g));
}

#[test]
fn titan_v_and_rtx_5880_columns_in_another_order() {
    let g = nvidia("titanv-rtx5880-mixed_570.86.15.csv", QUERY_FIELDS);
    assert_eq!(
        rows(&g),
        vec![
            (
                0,
                "NVIDIA TITAN V",
                None,
                Some((7, 0)),
                Some("570.86.15"),
                None
            ),
            (
                1,
                "NVIDIA RTX 5880 Ada Generation",
                None,
                Some((8, 9)),
                Some("570.86.15"),
                None
            ),
        ]
    );
    assert!(is_mixed(&g));
}

#[test]
fn h100_sxm_without_compute_cap_matches_by_name_and_memory() {
    let g = nvidia("h100-sxm_590.48.01.csv", QUERY_FIELDS);
    assert_eq!(
        rows(&g),
        vec![(
            0,
            "NVIDIA H100 80GB HBM3",
            Some(81559),
            None,
            Some("590.48.01"),
            Some("H100")
        )]
    );
}

#[test]
fn h200_x8() {
    let g = nvidia("h200-x8.csv", QUERY_FIELDS);
    assert_eq!(g.len(), 8);
    for (i, gpu) in g.iter().enumerate() {
        assert_eq!(
            rows(std::slice::from_ref(gpu)),
            vec![(
                i as u32,
                "NVIDIA H200",
                Some(143771),
                None,
                None,
                Some("H200")
            )]
        );
    }
}

#[test]
fn a10g_and_its_used_memory() {
    let text = fixture("nvidia-smi/a10g-busy.csv");
    let g = smi::parse_gpus(&text, QUERY_FIELDS).unwrap();
    assert_eq!(
        rows(&g),
        vec![(0, "NVIDIA A10G", Some(23028), None, None, Some("A10G"))]
    );
    let r = smi::parse_query(&text, &["index", "memory.used"]).unwrap();
    assert_eq!(r[0].number("memory.used"), Ok(Some(22403)));
    assert_eq!(r[0].number("memory.free"), Ok(Some(215)));
}

#[test]
fn h100_pcie_x2_headerless() {
    let fields = &["name", "memory.total", "driver_version"];
    let g = nvidia("h100-pcie-x2_570.211.01_noheader.csv", fields);
    let one = |i| {
        (
            i,
            "NVIDIA H100 PCIe",
            Some(81559),
            None,
            Some("570.211.01"),
            Some("H100-PCIe"),
        )
    };
    assert_eq!(rows(&g), vec![one(0), one(1)]);
}

#[test]
fn gb10_unified_memory_reads_as_unknown() {
    let fields = &["name", "memory.total", "driver_version"];
    let g = nvidia("gb10_580.126.09_noheader.csv", fields);
    assert_eq!(
        rows(&g),
        vec![(0, "NVIDIA GB10", None, None, Some("580.126.09"), None)]
    );
}

#[test]
fn l4_headerless() {
    let g = nvidia("l4_noheader.csv", &["name", "memory.total"]);
    assert_eq!(
        rows(&g),
        vec![(0, "NVIDIA L4", Some(23034), None, None, Some("L4"))]
    );
}

#[test]
fn a_headerless_file_with_the_wrong_columns_is_refused() {
    // The H100 PCIe file has three columns; forge's query has five.
    let e = smi::parse_gpus(
        &fixture("nvidia-smi/h100-pcie-x2_570.211.01_noheader.csv"),
        QUERY_FIELDS,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("nvidia-smi output line 1: row: 3 values for 5 columns"),
        "{e}"
    );
}

#[test]
fn nvidia_smi_error_outputs() {
    let err = |rel: &str| smi::parse_query(&fixture(&format!("nvidia-smi/{rel}")), QUERY_FIELDS);
    assert_eq!(
        err("error-driver-unreachable.txt"),
        Err(SmiError::DriverUnreachable(
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. \
             Make sure that the latest NVIDIA driver is installed and running."
                .into()
        ))
    );
    assert_eq!(
        err("error-version-mismatch.txt"),
        Err(SmiError::VersionMismatch(
            "Failed to initialize NVML: Driver/library version mismatch".into()
        ))
    );
    assert_eq!(
        err("error-no-devices.txt"),
        Err(SmiError::NoDevices("No devices were found".into()))
    );
    assert_eq!(
        err("error-compute-cap-unknown.txt"),
        Err(SmiError::UnknownField {
            field: "compute_cap".into()
        })
    );
    // The legacy query is what forge falls back to; its field list omits compute_cap.
    assert!(!LEGACY_FIELDS.contains(&"compute_cap"));
}

fn amd(rel: &str) -> (Vec<DetectedGpu>, Vec<String>) {
    let out = rocm::parse(&fixture(&format!("rocm-smi/{rel}")), "")
        .unwrap_or_else(|e| panic!("{rel}: {e}"));
    rocm::gpus_from_cards(&out.cards, out.driver.as_deref())
}

/// (card, name, gfx, driver, spec) of each GPU.
type AmdRow<'a> = (
    u32,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn amd_rows(g: &[DetectedGpu]) -> Vec<AmdRow<'_>> {
    g.iter()
        .map(|g| {
            (
                g.index,
                g.name.as_str(),
                g.gfx.as_deref(),
                g.driver_version.as_deref(),
                g.spec.map(|s| s.name),
            )
        })
        .collect()
}

#[test]
fn rocm_6_1_keys_mi250x_by_device_id_and_gfx9010_is_gfx90a() {
    let (g, w) = amd("rocm6.1-mi250x_showproductname.json");
    assert_eq!(
        amd_rows(&g),
        vec![(
            0,
            "AMD INSTINCT MI200 (MCM) OAM LC MBA HPE C2",
            Some("gfx90a"),
            None,
            Some("MI250X")
        )]
    );
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(g[0].memory_mib, None);
}

#[test]
fn rocm_5_keys_mi210_with_a_generic_series_name() {
    let out = rocm::parse(&fixture("rocm-smi/rocm5-mi210_all.json"), "").unwrap();
    assert_eq!(out.cards[0].device_id.as_deref(), Some("0x740f"));
    let (g, w) = rocm::gpus_from_cards(&out.cards, out.driver.as_deref());
    assert_eq!(
        amd_rows(&g),
        vec![(0, "GENERIC RM IMAGE", None, Some("5.18.13"), None)]
    );
    assert_eq!(g[0].uuid.as_deref(), Some("GPU-43cc8cc8af246708"));
    assert!(w.is_empty());
}

#[test]
fn mi300a_shares_gfx942_with_mi300x_and_is_not_matched_as_one() {
    let (g, w) = amd("rocm6-mi300a-x4_showproductname.json");
    assert_eq!(g.len(), 4);
    for (i, gpu) in g.iter().enumerate() {
        assert_eq!(
            amd_rows(std::slice::from_ref(gpu)),
            vec![(
                i as u32,
                "AMD Instinct MI300A",
                Some("gfx942"),
                Some("6.16.13"),
                None
            )]
        );
    }
    assert_eq!(w.len(), 4);
    assert_eq!(
        w[0],
        "GPU 0 (AMD Instinct MI300A): gfx942 alone does not identify the product (several parts share it)"
    );
    assert!(!is_mixed(&g));
}

#[test]
fn navi23_consumer_card() {
    let (g, _) = amd("rocm6-navi23_showallinfo.json");
    assert_eq!(
        amd_rows(&g),
        vec![(
            0,
            "Navi 23 [Radeon RX 6600/6600 XT/6600M]",
            Some("gfx1032"),
            Some("7.0.0-3-pve"),
            None
        )]
    );
    assert_eq!(g[0].uuid, None, "Unique ID is N/A");
}

#[test]
fn series_n_a_falls_back_to_the_device_id() {
    let (g, _) = amd("rocm6-gfx906_productname-serial-bus.json");
    assert_eq!(
        amd_rows(&g),
        vec![(0, "AMD GPU 0x66a1", Some("gfx906"), None, None)]
    );
}

#[test]
fn rocm_text_output_is_not_json() {
    let e = rocm::parse(
        &fixture("rocm-smi/rocm4.0-mi100_showproductname-text.txt"),
        "",
    )
    .unwrap_err();
    assert_eq!(
        e,
        RocmError::NotJson(
            "======================= ROCm System Management Interface ======================="
                .into()
        )
    );
    assert!(e.to_string().starts_with("rocm-smi did not print JSON"));
}

#[test]
fn rocm_driver_not_initialized_on_stderr_with_empty_stdout() {
    let stderr = fixture("rocm-smi/error-driver-not-initialized.stderr");
    let e = rocm::parse("", &stderr).unwrap_err();
    assert_eq!(
        e,
        RocmError::DriverNotInitialized(
            "ERROR:root:Driver not initialized (amdgpu not found in modules)".into()
        )
    );
}

#[test]
fn rocm_no_json_data() {
    let e = rocm::parse(&fixture("rocm-smi/error-no-json-data.txt"), "").unwrap_err();
    assert_eq!(
        e,
        RocmError::NotJson("WARNING: No JSON data to report".into())
    );
}

#[test]
fn proc_cpuinfo_and_meminfo() {
    assert_eq!(
        host::parse_cpuinfo(&fixture("proc/cpuinfo")),
        (2, Some("AMD EPYC".into()))
    );
    let m = fixture("proc/meminfo");
    assert_eq!(host::meminfo_kib(&m, "MemTotal"), Some(24684084));
    assert_eq!(host::meminfo_kib(&m, "MemAvailable"), Some(22444912));
}
