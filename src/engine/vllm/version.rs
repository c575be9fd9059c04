//! Reading the answer of `vllm --version`. vLLM prints the bare version
//! (`importlib.metadata.version('vllm')`) on stdout, but importing it first logs —
//! torch warnings, `INFO ...` lines, "Failed to import from vllm._C" — on either stream,
//! so the version is the last line that is nothing but a version.

use super::flags::Version;

/// The version in `--version` output: the last line of stdout that is a bare version
/// (`0.33.0`, `v0.10.2`, `0.10.1.post1+cu128`), else the last such line of stderr.
pub fn parse_version_output(stdout: &str, stderr: &str) -> Option<(Version, String)> {
    last_version_line(stdout).or_else(|| last_version_line(stderr))
}

fn last_version_line(text: &str) -> Option<(Version, String)> {
    text.lines()
        .rev()
        .map(str::trim)
        .filter(|l| is_bare_version(l))
        .find_map(|l| Version::parse(l).map(|v| (v, l.to_string())))
}

/// `0.33.0`, `v0.10.2`, `0.11.0rc1`, `0.10.1.post1+cu128`: digits and dots first, then
/// nothing with spaces or colons (a log line's timestamp has both).
fn is_bare_version(line: &str) -> bool {
    let core = line.strip_prefix('v').unwrap_or(line);
    let mut parts = core.splitn(3, '.');
    let numeric =
        |p: Option<&str>| p.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    let major = parts.next();
    let minor = parts
        .next()
        .map(|m| m.split(|c: char| !c.is_ascii_digit()).next().unwrap_or(""));
    numeric(major) && numeric(minor) && !core.contains([' ', ':', '\t', '/'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_after_import_noise() {
        // As vLLM 0.33.0 prints it on a box without a GPU runtime (VLLM_TARGET_DEVICE=cpu).
        let stderr = "W1122 16:58:43.649000 17139 torch/_library/opaque_object.py:288] \
register_opaque_type is deprecated, use register_custom_class instead\n\
Failed to import from vllm._C: ModuleNotFoundError(\"No module named 'vllm._C'\")\n";
        let (v, raw) = parse_version_output("0.33.0\n", stderr).unwrap();
        assert_eq!(v, Version::V0_33);
        assert_eq!(raw, "0.33.0");
        let noisy =
            "INFO 05-13 04:10:00 [__init__.py:241] Automatically detected platform cuda.\n0.10.2\n";
        assert_eq!(
            parse_version_output(noisy, "").unwrap().0,
            Version::new(0, 10, 2)
        );
        assert_eq!(
            parse_version_output("", "v0.10.1.post1+cu128\n").unwrap().0,
            Version::new(0, 10, 1)
        );
        assert_eq!(
            parse_version_output("0.11.0rc1\n", "").unwrap().0,
            Version::new(0, 11, 0)
        );
    }

    #[test]
    fn no_version_in_errors_or_timestamps() {
        assert_eq!(
            parse_version_output("", "RuntimeError: Failed to infer device type\n"),
            None
        );
        assert_eq!(parse_version_output("12:00:01 starting\n", ""), None);
        assert_eq!(parse_version_output("3.11 /usr/bin/python\n", ""), None);
        assert_eq!(parse_version_output("", ""), None);
    }
}
