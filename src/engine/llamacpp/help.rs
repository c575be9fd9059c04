//! What this `llama-server` binary accepts: its `--help` (option names parsed from it) and
//! `--version`, captured once per run into the run directory (`engine-help.txt`,
//! `engine-version.txt`) so every rendered flag is checked against the binary that runs
//! it — llama.cpp adds, renames and removes flags between builds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// File in the run directory holding `llama-server --help`.
pub const HELP_FILE: &str = "engine-help.txt";
/// File in the run directory holding `llama-server --version`.
pub const VERSION_FILE: &str = "engine-version.txt";
/// How long `--help` or `--version` may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// The option names a binary's `--help` lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelpFlags {
    flags: BTreeSet<String>,
}

impl HelpFlags {
    /// Parse `llama-server --help`: every option line starts in column 0 with its
    /// comma-separated spellings (`-np,   --parallel N`, `-cb,   --cont-batching, -nocb,
    /// --no-cont-batching`), followed by an argument placeholder or the description.
    pub fn parse(help: &str) -> HelpFlags {
        let mut flags = BTreeSet::new();
        for line in help.lines().filter(|l| l.starts_with('-')) {
            for token in line.split_whitespace() {
                let name = token.trim_end_matches(',');
                if !is_flag(name) {
                    break;
                }
                flags.insert(name.to_string());
                if !token.ends_with(',') {
                    break;
                }
            }
        }
        HelpFlags { flags }
    }

    /// Whether the binary accepts `flag` (`--parallel`).
    pub fn has(&self, flag: &str) -> bool {
        self.flags.contains(flag)
    }

    /// How many option names were found (a parse that finds none is not a help text).
    pub fn len(&self) -> usize {
        self.flags.len()
    }

    /// True when no option was found.
    pub fn is_empty(&self) -> bool {
        self.flags.is_empty()
    }
}

/// `-x`, `--long-name`, `-nocb`: dashes then a letter or digit, then letters, digits, dashes.
fn is_flag(s: &str) -> bool {
    let body = s.trim_start_matches('-');
    let dashes = s.len() - body.len();
    (1..=2).contains(&dashes)
        && body.starts_with(|c: char| c.is_ascii_alphanumeric())
        && body.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// `llama-server --version` prints `version: 0.5.0-dev (build 1, commit 0c1e570)`; the part
/// after `version: `.
pub fn parse_version(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("version: "))
        .map(|v| v.trim().to_string())
}

/// What one binary said about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// Parsed `--help`.
    pub flags: HelpFlags,
    /// Parsed `--version`, if it printed one.
    pub version: Option<String>,
}

/// Why a binary could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// It could not be started (not installed, not executable).
    #[error("cannot run `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// It ran but did not finish in time.
    #[error("`{program} {arg}` did not finish within {}s", PROBE_TIMEOUT.as_secs())]
    Timeout {
        /// The program.
        program: String,
        /// `--help` or `--version`.
        arg: String,
    },
    /// Its `--help` lists no options.
    #[error("`{program} --help` lists no options (exit code {code:?}); see {file}")]
    NoOptions {
        /// The program.
        program: String,
        /// Its exit code.
        code: Option<i32>,
        /// Where the output was saved.
        file: String,
    },
}

/// Run `launcher --help` and `launcher --version`, saving both into `run_dir`.
pub fn probe(launcher: &[String], run_dir: &Path) -> Result<Probe, ProbeError> {
    let help_path = run_dir.join(HELP_FILE);
    let code = run_to_file(launcher, "--help", &help_path)?;
    let help = std::fs::read_to_string(&help_path).unwrap_or_default();
    let flags = HelpFlags::parse(&help);
    if flags.is_empty() {
        return Err(ProbeError::NoOptions {
            program: launcher.join(" "),
            code,
            file: help_path.display().to_string(),
        });
    }
    let version_path = run_dir.join(VERSION_FILE);
    run_to_file(launcher, "--version", &version_path)?;
    let version = std::fs::read_to_string(&version_path)
        .ok()
        .and_then(|t| parse_version(&t));
    Ok(Probe { flags, version })
}

/// Run `launcher arg` with stdout and stderr into `out` (written to a temporary file and
/// renamed); returns the exit code.
fn run_to_file(launcher: &[String], arg: &str, out: &Path) -> Result<Option<i32>, ProbeError> {
    let program = launcher.first().cloned().unwrap_or_default();
    let spawn_err = |source| ProbeError::Spawn {
        program: program.clone(),
        source,
    };
    let tmp = PathBuf::from(format!("{}.tmp", out.display()));
    let file = std::fs::File::create(&tmp).map_err(spawn_err)?;
    let mut child = Command::new(&program)
        .args(launcher.iter().skip(1))
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(file.try_clone().map_err(spawn_err)?)
        .stderr(file)
        .spawn()
        .map_err(spawn_err)?;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    let status = loop {
        if let Some(s) = child.try_wait().map_err(spawn_err)? {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&tmp);
            return Err(ProbeError::Timeout {
                program,
                arg: arg.to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::fs::rename(&tmp, out).map_err(spawn_err)?;
    Ok(status.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELP: &str = include_str!("../../../tests/fixtures/llamacpp/help.txt");

    #[test]
    fn parses_every_spelling_of_the_recorded_help() {
        let f = HelpFlags::parse(HELP);
        for flag in [
            "-np",
            "--parallel",
            "-c",
            "--ctx-size",
            "-b",
            "--batch-size",
            "-ub",
            "--ubatch-size",
            "-t",
            "--threads",
            "-tb",
            "--threads-batch",
            "-cb",
            "--cont-batching",
            "-nocb",
            "--no-cont-batching",
            "-fa",
            "--flash-attn",
            "-ctk",
            "--cache-type-k",
            "--cache-type-v",
            "-ngl",
            "--gpu-layers",
            "--n-gpu-layers",
            "--cache-reuse",
            "--cache-ram",
            "--cache-prompt",
            "--no-cache-prompt",
            "--metrics",
            "--no-webui",
            "--alias",
            "--host",
            "--port",
            "--model",
        ] {
            assert!(f.has(flag), "{flag} missing");
        }
        // Argument placeholders and description words are not options.
        for not in ["N", "--", "-1", "-----", "[on|off|auto]", "--swap-space"] {
            assert!(!f.has(not), "{not} parsed as an option");
        }
        assert!(f.len() > 200, "{}", f.len());
    }

    #[test]
    fn version_line() {
        let v = include_str!("../../../tests/fixtures/llamacpp/version.txt");
        assert_eq!(
            parse_version(v).as_deref(),
            Some("0.5.0-dev (build 1, commit 0c1e570)")
        );
        assert_eq!(parse_version("nothing here"), None);
    }

    #[test]
    fn probing_a_missing_binary_and_a_non_server() {
        let dir = tempfile::tempdir().unwrap();
        let e = probe(&["/nonexistent/llama-server".into()], dir.path()).unwrap_err();
        assert!(matches!(e, ProbeError::Spawn { .. }), "{e}");
        let e = probe(&["/bin/true".into()], dir.path()).unwrap_err();
        assert!(
            matches!(e, ProbeError::NoOptions { code: Some(0), .. }),
            "{e}"
        );
        let script = dir.path().join("fake");
        std::fs::write(
            &script,
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'version: 9.9 (x)' >&2; else echo '-np,   --parallel N   slots'; fi\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let p = probe(&[script.display().to_string()], dir.path()).unwrap();
        assert!(p.flags.has("--parallel") && p.flags.has("-np"));
        assert_eq!(p.version.as_deref(), Some("9.9 (x)"));
        assert!(dir.path().join(HELP_FILE).is_file());
        assert!(dir.path().join(VERSION_FILE).is_file());
    }
}
