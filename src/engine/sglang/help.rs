//! What an installed SGLang says it is and accepts: its version (`sglang version`), its
//! flag listing (`sglang serve --help`, argparse, parsed with vLLM's argparse-help parser
//! [`HelpSnapshot`]), and the probe that asks both before a run boots anything and stores
//! the answers in the run directory (`engine-version.txt`, `engine-help.txt`).
//!
//! How SGLang tells its version (read in the 0.5.19 and 0.5.23 wheels): `sglang version`
//! prints `sglang version: 0.5.23` and `git revision: …` (`sglang/cli/main.py`,
//! `version()`); neither `sglang serve` nor `python -m sglang.launch_server` has a
//! `--version` flag (an unknown flag to argparse), and `sglang/version.py` has no
//! `__main__`. So the version command is derived from the launcher: `X serve` → `X
//! version`; `python -m sglang.launch_server` → `python -c` printing
//! `sglang.version.__version__`. A launcher of any other shape (a container wrapper) has no
//! version command; the help text then tells the CUDA-graph era ([`era`]).
//!
//! `sglang serve --help` (0.5.19 on, `sglang/cli/serve.py` `_print_general_help`) prints
//! a short usage, `--- Help for Standard Language Model Server ---`, the LLM server's
//! argparse help, then `--- Help for Diffusion Model Server ---` and the diffusion
//! server's own options; only the LLM part is read ([`llm_section`]).
//! `python -m sglang.launch_server --help` prints the LLM part alone.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::engine::probe::{self, shown};
pub use crate::engine::vllm::help::HelpSnapshot;
use crate::hardware::command::Captured;

pub use crate::engine::probe::{EngineMissing, HELP_FILE, VERSION_FILE};
/// Deadline for each question (SGLang imports torch before it prints help: seconds).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);
/// `sglang serve --help` of SGLang 0.5.23 (recorded on a CPU box), the newest release
/// forge knows: what the twin and `forge recipe command` render against.
pub const HELP_0_5_23: &str = include_str!("../../../tests/fixtures/sglang/help-0.5.23.txt");
/// Options every LLM-server listing has; a text without them listed no flags.
const CORE_OPTIONS: &[&str] = &["--model-path", "--port", "--served-model-name"];
/// `sglang/cli/serve.py` `_print_general_help`: the markers around the LLM server's help.
const LLM_MARK: &str = "--- Help for Standard Language Model Server ---";
const DIFFUSION_MARK: &str = "--- Help for Diffusion Model Server ---";

/// An SGLang release (`0.5.23`; `.postN`, `rcN` and local parts are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
}

impl Version {
    /// The newest release forge has a recorded help of.
    pub const NEWEST: Version = Version::new(0, 5, 23);
    /// The first release without `--cuda-graph-max-bs` (ambiguous with `-decode` and
    /// `-prefill` from here on).
    pub const NO_MAX_BS_ALIAS: Version = Version::new(0, 5, 20);

    /// A version.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// `0.5.23`, `v0.5.19`, `0.5.10.post1`, `0.5.20rc1+cu128`.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.splitn(3, '.');
        let num = |p: Option<&str>| -> Option<u32> {
            let digits: String = p?.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        let major = num(parts.next())?;
        let minor = num(parts.next())?;
        let patch = num(parts.next()).unwrap_or(0);
        Some(Version::new(major, minor, patch))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The version in the output of the version command: `sglang version: 0.5.23`
/// (`sglang version`) or a bare `0.5.23` line (the `python -c` form), the last one that
/// parses; import noise on either stream is skipped.
pub fn parse_version_output(stdout: &str, stderr: &str) -> Option<(Version, String)> {
    let find = |text: &str| {
        text.lines().rev().map(str::trim).find_map(|l| {
            let v = l.strip_prefix("sglang version:").unwrap_or(l).trim();
            let bare = v.starts_with(|c: char| c.is_ascii_digit() || c == 'v')
                && !v.contains([' ', ':', '/']);
            bare.then(|| Version::parse(v).map(|x| (x, v.to_string())))
                .flatten()
        })
    };
    find(stdout).or_else(|| find(stderr))
}

/// The command that prints the version of the SGLang `launcher` runs, when its shape is
/// known: `sglang serve` → `sglang version`; `python -m sglang.launch_server` →
/// `python -c "from sglang.version import __version__; print(__version__)"`.
pub fn version_command(launcher: &[String]) -> Option<Vec<String>> {
    if let Some((last, head)) = launcher.split_last()
        && last == "serve"
        && !head.is_empty()
    {
        let mut v = head.to_vec();
        v.push("version".into());
        return Some(v);
    }
    let m = launcher
        .windows(2)
        .position(|w| w[0] == "-m" && w[1] == "sglang.launch_server")?;
    let mut v = launcher[..m].to_vec();
    v.push("-c".into());
    v.push("from sglang.version import __version__; print(__version__)".into());
    v.extend(launcher[m + 2..].iter().cloned());
    Some(v)
}

/// The launcher as given, with `serve` added when it names the `sglang` CLI alone
/// (`--engine-cmd /opt/venv/bin/sglang`): the CLI needs a subcommand.
pub fn normalize_launcher(mut launcher: Vec<String>) -> Vec<String> {
    let bare_cli = launcher.len() == 1
        && launcher
            .first()
            .is_some_and(|p| Path::new(p).file_name().is_some_and(|n| n == "sglang"));
    if bare_cli {
        launcher.push("serve".into());
    }
    launcher
}

/// The LLM server's part of a help text (all of it when there are no section markers).
pub fn llm_section(text: &str) -> &str {
    let start = text.find(LLM_MARK).map_or(0, |i| i + LLM_MARK.len());
    let rest = &text[start..];
    rest.find(DIFFUSION_MARK).map_or(rest, |i| &rest[..i])
}

/// Parse a `serve --help` text; `None` when it lists no LLM-server flags.
pub fn parse_help(text: &str) -> Option<HelpSnapshot> {
    let snap = HelpSnapshot::parse(llm_section(text));
    CORE_OPTIONS.iter().all(|o| snap.has(o)).then_some(snap)
}

/// The embedded 0.5.23 listing, parsed.
pub fn newest_help() -> HelpSnapshot {
    HelpSnapshot::parse(llm_section(HELP_0_5_23))
}

/// Which CUDA-graph flag era a listing belongs to, for a version the launcher would not
/// tell: `--cuda-graph-max-bs` native (≤ 0.5.13), a deprecated alias (0.5.14–0.5.19), or
/// gone (≥ 0.5.20).
pub fn era(help: &HelpSnapshot) -> &'static str {
    match help.entry("--cuda-graph-max-bs") {
        None => "0.5.20 or newer (no --cuda-graph-max-bs)",
        Some(e)
            if e.primary() == "--cuda-graph-max-bs" && help.has("--cuda-graph-max-bs-decode") =>
        {
            "0.5.14 to 0.5.19 (--cuda-graph-max-bs is a deprecated alias)"
        }
        Some(_) => "0.5.13 or older (--cuda-graph-max-bs is native)",
    }
}

/// What the installed SGLang said about itself.
pub type Probe = crate::engine::probe::Probe<Version, HelpSnapshot>;

/// Ask `launcher` (`["sglang", "serve"]`, `["python", "-m", "sglang.launch_server"]`) for
/// its help and, where the launcher's shape allows, its version. Only an absent engine is
/// an error; anything else is a note.
pub fn probe(launcher: &[String], timeout: Duration) -> Result<Probe, EngineMissing> {
    let vcmd = version_command(launcher);
    let (help, version) = std::thread::scope(|s| {
        let v = s.spawn(|| vcmd.as_deref().map(|c| ask(c, &[], timeout)));
        let h = ask(launcher, &["--help"], timeout);
        (h, v.join())
    });
    let mut p = Probe::default();
    read_help(&mut p, help?, &shown(launcher, &["--help"]));
    match version {
        Ok(Some(Ok(Ok(out)))) => read_version(&mut p, &out, vcmd.as_deref().unwrap_or(&[])),
        Ok(Some(Ok(Err(note)))) => p.notes.push(note),
        Ok(Some(Err(missing))) => p.notes.push(missing.to_string()),
        Ok(None) => p.notes.push(format!(
            "`{}` has no known version command (`sglang version`); {}",
            launcher.join(" "),
            p.help
                .as_ref()
                .map_or("its help is unknown too".into(), |h| format!(
                    "its help looks like SGLang {}",
                    era(h)
                ))
        )),
        Err(_) => p
            .notes
            .push("asking the engine's version failed unexpectedly".into()),
    }
    Ok(p)
}

/// Run one question (an absent SGLang is `Err`).
fn ask(
    launcher: &[String],
    args: &[&str],
    timeout: Duration,
) -> Result<Result<Captured, String>, EngineMissing> {
    probe::ask(
        launcher,
        args,
        timeout,
        super::logs::mentions_missing_sglang,
    )
}

fn read_help(p: &mut Probe, answer: Result<Captured, String>, cmd: &str) {
    match answer {
        Ok(out) => match parse_help(&out.stdout) {
            Some(snap) => {
                p.help = Some(snap);
                p.help_text = Some((
                    llm_section(&out.stdout).trim_start().to_string(),
                    cmd.into(),
                ));
            }
            None => p.notes.push(format!(
                "`{cmd}` listed no SGLang server flags (exit {}): flags are rendered for SGLang \
                 {} and not checked before boot (SGLang itself still rejects an unknown flag, \
                 recorded as infeasible_config)",
                out.code.map_or("by signal".into(), |c| c.to_string()),
                Version::NEWEST
            )),
        },
        Err(note) => p.notes.push(note),
    }
}

fn read_version(p: &mut Probe, out: &Captured, cmd: &[String]) {
    match parse_version_output(&out.stdout, &out.stderr) {
        Some((v, raw)) if out.success() => {
            p.version = Some(v);
            p.version_text = Some(raw);
        }
        _ => p.notes.push(probe::no_version(&cmd.join(" "), out)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sglang");

    fn fixture(v: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/help-{v}.txt")).unwrap()
    }

    #[test]
    fn both_recorded_helps_parse_with_their_drift() {
        let new = parse_help(&fixture("0.5.23")).unwrap();
        let old = parse_help(&fixture("0.5.19")).unwrap();
        assert!(
            new.len() > 500 && old.len() > 450,
            "{} {}",
            new.len(),
            old.len()
        );
        assert!(!new.has("--cuda-graph-max-bs"));
        assert!(new.has("--cuda-graph-max-bs-decode"));
        assert!(old.has("--cuda-graph-max-bs") && old.has("--cuda-graph-max-bs-decode"));
        let sp = new.entry("--schedule-policy").unwrap();
        assert!(sp.takes_value && sp.accepts("lpm") && !sp.accepts("foo"));
        assert!(!old.entry("--schedule-policy").unwrap().accepts("hrrn"));
        assert!(!new.entry("--disable-radix-cache").unwrap().takes_value);
        assert_eq!(
            new.entry("--tensor-parallel-size").unwrap().primary(),
            "--tp-size"
        );
        assert_eq!(era(&new), "0.5.20 or newer (no --cuda-graph-max-bs)");
        assert!(era(&old).starts_with("0.5.14 to 0.5.19"));
        assert_eq!(newest_help(), new);
    }

    #[test]
    fn only_the_llm_part_of_the_general_help_is_read() {
        let text = format!(
            "Usage: sglang serve <model-name-or-path> [additional-arguments]\n\n{LLM_MARK}\n{}\n{DIFFUSION_MARK}\noptions:\n  --num-gpus NUM_GPUS  diffusion only\n",
            fixture("0.5.23")
        );
        let s = parse_help(&text).unwrap();
        assert!(!s.has("--num-gpus"));
        assert!(s.has("--model-path"));
        assert!(parse_help("Diffusion model support is not available.\n").is_none());
    }

    #[test]
    fn versions_and_version_commands() {
        let out = "sglang version: 0.5.23\ngit revision: 1a2b3c4\n";
        assert_eq!(
            parse_version_output(out, "").unwrap(),
            (Version::new(0, 5, 23), "0.5.23".to_string())
        );
        let noisy = "[2026-01-01 00:00:00] INFO import noise 12:00\n0.5.19\n";
        assert_eq!(
            parse_version_output(noisy, "").unwrap().0,
            Version::new(0, 5, 19)
        );
        assert_eq!(parse_version_output("", "RuntimeError: x\n"), None);
        assert_eq!(
            Version::parse("0.5.10.post1").unwrap(),
            Version::new(0, 5, 10)
        );
        assert!(Version::new(0, 5, 19) < Version::NO_MAX_BS_ALIAS);
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            version_command(&w("sglang serve")),
            Some(w("sglang version"))
        );
        let py = version_command(&w("python3 -m sglang.launch_server")).unwrap();
        assert_eq!(py[..2], w("python3 -c")[..]);
        assert!(py[2].contains("sglang.version"));
        assert_eq!(version_command(&w("/opt/run-sglang.sh")), None);
        assert_eq!(
            normalize_launcher(w("/opt/bin/sglang")),
            w("/opt/bin/sglang serve")
        );
        assert_eq!(normalize_launcher(w("sglang serve")), w("sglang serve"));
        assert_eq!(
            normalize_launcher(w("/opt/run-sglang.sh")),
            w("/opt/run-sglang.sh")
        );
    }

    fn script(dir: &Path, body: &str) -> Vec<String> {
        let path = dir.join("sglang");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![path.display().to_string(), "serve".into()]
    }

    #[test]
    fn probe_asks_help_and_version_and_saves_them() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            &format!(
                "[ \"$1\" = version ] && {{ echo 'sglang version: 0.5.19'; echo 'git revision: abc'; exit 0; }}\n\
                 exec cat {FIXTURES}/help-0.5.19.txt"
            ),
        );
        let p = probe(&launcher, Duration::from_secs(10)).unwrap();
        assert_eq!(p.version, Some(Version::new(0, 5, 19)));
        assert!(p.help.as_ref().unwrap().has("--cuda-graph-max-bs"));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let run = tempfile::tempdir().unwrap();
        assert_eq!(p.save(run.path()).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(run.path().join(VERSION_FILE)).unwrap(),
            "0.5.19\n"
        );
        let saved = std::fs::read_to_string(run.path().join(HELP_FILE)).unwrap();
        assert!(parse_help(&saved).is_some());
        std::fs::write(run.path().join(VERSION_FILE), "0.5.23\n").unwrap();
        assert_eq!(p.save(run.path()).unwrap(), Some("0.5.23".into()));
    }

    #[test]
    fn absent_and_odd_launchers() {
        let e = probe(
            &["/nonexistent/sglang".into(), "serve".into()],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("engine_missing: `/nonexistent/sglang serve --help`")
        );
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            "echo \"ModuleNotFoundError: No module named 'sglang'\" >&2; exit 1",
        );
        let e = probe(&launcher, Duration::from_secs(5)).unwrap_err();
        assert!(e.why.contains("No module named 'sglang'"), "{e}");
        // A wrapper with no known version command: the help tells the era.
        let mut wrapper = script(dir.path(), &format!("exec cat {FIXTURES}/help-0.5.23.txt"));
        wrapper.pop();
        let p = probe(&wrapper, Duration::from_secs(5)).unwrap();
        assert_eq!(p.version, None);
        assert!(p.notes[0].contains("0.5.20 or newer"), "{:?}", p.notes);
    }
}
