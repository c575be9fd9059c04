//! The host itself, for `--device cpu`: logical CPUs and memory, read from `/proc`
//! (parsers are pure and tested on a recorded `/proc/cpuinfo` and `/proc/meminfo`).

use std::path::Path;

use serde::Serialize;

/// CPUs and memory of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostInfo {
    /// Logical CPUs (`processor` entries in /proc/cpuinfo).
    pub cpus: usize,
    /// CPU model name, if /proc/cpuinfo gives one.
    pub model: Option<String>,
    /// `MemTotal`, MiB.
    pub memory_total_mib: u64,
    /// `MemAvailable`, MiB, if the kernel reports it.
    pub memory_available_mib: Option<u64>,
}

/// Count `processor` lines and take the first `model name`.
pub fn parse_cpuinfo(text: &str) -> (usize, Option<String>) {
    let field = |l: &str, k: &str| {
        l.split_once(':')
            .filter(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim().to_string())
    };
    let cpus = text
        .lines()
        .filter(|l| field(l, "processor").is_some())
        .count();
    let model = text.lines().find_map(|l| field(l, "model name"));
    (cpus, model)
}

/// A `/proc/meminfo` field in KiB.
pub fn meminfo_kib(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.split_whitespace().next()?.parse().ok())?
    })
}

/// Read host facts under `proc_root` (normally `/proc`).
pub fn read(proc_root: &Path) -> std::io::Result<HostInfo> {
    let cpuinfo = std::fs::read_to_string(proc_root.join("cpuinfo"))?;
    let meminfo = std::fs::read_to_string(proc_root.join("meminfo"))?;
    let (cpus, model) = parse_cpuinfo(&cpuinfo);
    let total = meminfo_kib(&meminfo, "MemTotal").ok_or_else(|| {
        std::io::Error::other(format!(
            "{}: MemTotal: missing",
            proc_root.join("meminfo").display()
        ))
    })?;
    Ok(HostInfo {
        cpus,
        model,
        memory_total_mib: total / 1024,
        memory_available_mib: meminfo_kib(&meminfo, "MemAvailable").map(|k| k / 1024),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_fields() {
        let t = "MemTotal:       24684084 kB\nMemFree:        16938092 kB\nMemAvailable:   22444912 kB\n";
        assert_eq!(meminfo_kib(t, "MemTotal"), Some(24684084));
        assert_eq!(meminfo_kib(t, "MemAvailable"), Some(22444912));
        assert_eq!(meminfo_kib(t, "Mem"), None);
    }

    #[test]
    fn cpuinfo_counts_processors() {
        let t =
            "processor\t: 0\nmodel name\t: AMD EPYC\n\nprocessor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(parse_cpuinfo(t), (2, Some("AMD EPYC".into())));
        assert_eq!(parse_cpuinfo(""), (0, None));
    }

    #[test]
    fn missing_memtotal_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpuinfo"), "processor : 0\n").unwrap();
        std::fs::write(dir.path().join("meminfo"), "MemFree: 1 kB\n").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.ends_with("meminfo: MemTotal: missing"), "{e}");
    }
}
