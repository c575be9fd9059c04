//! Asking the installed vLLM what it is before a run boots it: `<launcher> --version`, then
//! `<launcher> serve --help=all` — falling back to plain `serve --help` for versions whose
//! `--help=KEY` is a keyword search, and keeping whichever one listed flags. Both answers
//! are stored in the run directory ([`crate::engine::probe`]) so a report can say exactly
//! which surface the experiments were rendered for.

use std::time::Duration;

use super::flags::Version;
use super::help::HelpSnapshot;
use super::version::parse_version_output;
use crate::engine::probe::{self, shown};
use crate::hardware::command::Captured;

pub use crate::engine::probe::{EngineMissing, HELP_FILE, VERSION_FILE};
/// Deadline for each question (vLLM imports torch first: seconds, not milliseconds).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// What the installed vLLM said about itself.
pub type Probe = crate::engine::probe::Probe<Version, HelpSnapshot>;

/// Ask `launcher` (`["vllm"]`, `["python", "-m", "vllm.entrypoints.cli.main"]`) for its
/// version and flag listing. Only an absent engine is an error; anything else is a note
/// and the run goes on with forge's own table.
pub fn probe(launcher: &[String], timeout: Duration) -> Result<Probe, EngineMissing> {
    // Both questions import vLLM (seconds each): ask them at once.
    let (version, help) = std::thread::scope(|s| {
        let help = s.spawn(|| {
            let mut h = Probe::default();
            read_help(&mut h, launcher, timeout).map(|_| h)
        });
        let version = ask(launcher, &["--version"], timeout);
        (version, help.join())
    });
    let mut p = Probe::default();
    match version? {
        Ok(out) => read_version(&mut p, &out, &shown(launcher, &["--version"])),
        Err(note) => p.notes.push(note),
    }
    let h = match help {
        Ok(h) => h?,
        Err(_) => Probe {
            notes: vec!["reading the engine's help failed unexpectedly".into()],
            ..Probe::default()
        },
    };
    p.help = h.help;
    p.help_text = h.help_text;
    p.notes.extend(h.notes);
    Ok(p)
}

/// Run one question (an absent vLLM is `Err`).
fn ask(
    launcher: &[String],
    args: &[&str],
    timeout: Duration,
) -> Result<Result<Captured, String>, EngineMissing> {
    probe::ask(launcher, args, timeout, super::logs::mentions_missing_vllm)
}

fn read_version(p: &mut Probe, out: &Captured, cmd: &str) {
    match parse_version_output(&out.stdout, &out.stderr) {
        Some((v, raw)) if out.success() => {
            p.version = Some(v);
            p.version_text = Some(raw);
        }
        _ => p.notes.push(probe::no_version(cmd, out)),
    }
}

/// `serve --help=all`, else plain `serve --help`: the first that lists flags.
fn read_help(p: &mut Probe, launcher: &[String], timeout: Duration) -> Result<(), EngineMissing> {
    let mut tried = Vec::new();
    for args in [["serve", "--help=all"], ["serve", "--help"]] {
        let cmd = shown(launcher, &args);
        match ask(launcher, &args, timeout)? {
            Ok(out) => {
                let snap = HelpSnapshot::parse(&out.stdout);
                if snap.lists_flags() {
                    if !tried.is_empty() {
                        p.notes.push(format!(
                            "`{}` listed no flags (a keyword search in this vLLM); using `{cmd}`",
                            tried.join("`, `")
                        ));
                    }
                    p.help = Some(snap);
                    p.help_text = Some((out.stdout, cmd));
                    return Ok(());
                }
                tried.push(cmd);
            }
            Err(note) => p.notes.push(note),
        }
    }
    p.notes.push(format!(
        "no help listing of this vLLM listed its flags (tried `{}`): flags are rendered from \
         forge's table for the version and not checked before boot (vLLM itself still \
         rejects an unknown flag, which is recorded as infeasible_config)",
        tried.join("`, `")
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    fn script(dir: &Path, body: &str) -> Vec<String> {
        let path = dir.join("vllm");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![path.display().to_string()]
    }

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/vllm");

    #[test]
    fn current_vllm_answers_with_help_all() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            &format!(
                "echo 'INFO import noise' >&2\n\
                 [ \"$1\" = --version ] && {{ echo 0.33.0; exit 0; }}\n\
                 [ \"$2\" = --help=all ] && exec cat {FIXTURES}/help-all-0.33.0.txt\n\
                 exec cat {FIXTURES}/help-0.33.0.txt"
            ),
        );
        let p = probe(&launcher, Duration::from_secs(10)).unwrap();
        assert_eq!(p.version, Some(Version::V0_33));
        assert!(p.help.as_ref().unwrap().has("--disable-prefix-caching"));
        assert!(
            p.help_text
                .as_ref()
                .unwrap()
                .1
                .ends_with("serve --help=all")
        );
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let run = tempfile::tempdir().unwrap();
        assert_eq!(p.save(run.path()).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(run.path().join(VERSION_FILE)).unwrap(),
            "0.33.0\n"
        );
        let help = std::fs::read_to_string(run.path().join(HELP_FILE)).unwrap();
        assert!(HelpSnapshot::parse(&help).lists_flags());
    }

    #[test]
    fn old_vllm_falls_back_to_plain_help() {
        let dir = tempfile::tempdir().unwrap();
        // 0.10's --help=all is a keyword search for "all".
        let launcher = script(
            dir.path(),
            &format!(
                "[ \"$1\" = --version ] && {{ echo 0.10.2; exit 0; }}\n\
                 if [ \"$2\" = --help=all ]; then echo \"Arguments matching 'all':\"; \
                 echo '  --allowed-origins ALLOWED_ORIGINS'; exit 0; fi\n\
                 exec cat {FIXTURES}/help-0.10.2.txt"
            ),
        );
        let p = probe(&launcher, Duration::from_secs(10)).unwrap();
        assert_eq!(p.version, Some(Version::new(0, 10, 2)));
        assert!(p.help.as_ref().unwrap().has("--swap-space"));
        assert!(p.help_text.as_ref().unwrap().1.ends_with("serve --help"));
        assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
        assert!(p.notes[0].contains("listed no flags"), "{:?}", p.notes);
    }

    #[test]
    fn a_summary_only_vllm_is_never_read_as_flagless() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            &format!(
                "[ \"$1\" = --version ] && {{ echo 0.33.0; exit 0; }}\n\
                 exec cat {FIXTURES}/help-0.33.0.txt"
            ),
        );
        let p = probe(&launcher, Duration::from_secs(10)).unwrap();
        assert!(p.help.is_none());
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("not checked before boot"))
        );
    }

    #[test]
    fn absent_engines_and_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let e = probe(&["/nonexistent/vllm".into()], Duration::from_secs(5)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("engine_missing: `/nonexistent/vllm --version`")
        );
        let launcher = script(
            dir.path(),
            "echo \"/usr/bin/python3: No module named vllm\" >&2; exit 1",
        );
        let e = probe(&launcher, Duration::from_secs(5)).unwrap_err();
        assert!(e.why.contains("No module named vllm"), "{e}");
        // Installed but broken: notes, no error; the boot will say what is wrong.
        let launcher = script(
            dir.path(),
            "echo 'RuntimeError: Failed to infer device type' >&2; exit 1",
        );
        let p = probe(&launcher, Duration::from_secs(5)).unwrap();
        assert_eq!(p.version, None);
        assert!(
            p.notes[0].contains("printed no version (exit 1)"),
            "{:?}",
            p.notes
        );
        let run = tempfile::tempdir().unwrap();
        std::fs::write(run.path().join(VERSION_FILE), "0.10.2\n").unwrap();
        assert_eq!(p.save(run.path()).unwrap(), Some("0.10.2".into()));
    }
}
