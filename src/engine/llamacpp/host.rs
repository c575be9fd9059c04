//! CPU cores as llama.cpp counts them: `--threads` defaults to the physical cores
//! (`common_cpu_get_num_math` → `common_cpu_get_num_physical_cores`), which on Linux is the
//! number of distinct `/sys/devices/system/cpu/cpuN/topology/thread_siblings` masks, and
//! otherwise the logical CPUs (halved above four, as llama.cpp's fallback does).

use std::path::Path;

/// Physical cores of this machine, as llama-server counts them for its default threads.
pub fn physical_cores() -> usize {
    let masks = sibling_masks(Path::new("/sys/devices/system/cpu"));
    if masks.is_empty() {
        let logical = std::thread::available_parallelism().map_or(0, usize::from);
        return fallback(logical);
    }
    distinct(&masks)
}

/// Logical CPUs this process may use.
pub fn logical_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `thread_siblings` of cpu0, cpu1, ... up to the first CPU without one.
fn sibling_masks(root: &Path) -> Vec<String> {
    (0..)
        .map_while(|i| {
            std::fs::read_to_string(root.join(format!("cpu{i}/topology/thread_siblings"))).ok()
        })
        .map(|s| s.trim().to_string())
        .collect()
}

/// Distinct masks: one per physical core.
fn distinct(masks: &[String]) -> usize {
    let mut v: Vec<&String> = masks.iter().collect();
    v.sort();
    v.dedup();
    v.len()
}

/// llama.cpp's fallback when the topology is unknown: all of up to four logical CPUs, half
/// of more (assumes two hardware threads per core), four when even that is unknown.
fn fallback(logical: usize) -> usize {
    match logical {
        0 => 4,
        1..=4 => logical,
        n => n / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperthreads_share_a_mask() {
        let smt: Vec<String> = ["00000011", "00000011", "0000000c", "0000000c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(distinct(&smt), 2);
        let plain: Vec<String> = ["1", "2"].iter().map(|s| s.to_string()).collect();
        assert_eq!(distinct(&plain), 2);
        assert_eq!(fallback(0), 4);
        assert_eq!(fallback(3), 3);
        assert_eq!(fallback(16), 8);
    }

    #[test]
    fn reads_a_sysfs_tree() {
        let dir = tempfile::tempdir().unwrap();
        for (i, m) in ["3", "3", "c", "c"].iter().enumerate() {
            let d = dir.path().join(format!("cpu{i}/topology"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("thread_siblings"), format!("{m}\n")).unwrap();
        }
        assert_eq!(distinct(&sibling_masks(dir.path())), 2);
        assert!(physical_cores() >= 1);
    }
}
