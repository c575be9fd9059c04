//! What an installed `trtllm-serve` says about itself: its version and the options of its
//! `serve` command, asked once before a run ([`probe`]) and stored in the run directory.
//!
//! `trtllm-serve` has no `--version`: the click group in `tensorrt_llm/commands/serve.py`
//! (`main = DefaultGroup(commands={...})`) declares no version option, so `trtllm-serve
//! --version` exits 2 with `Error: No such option: --version`. Importing `tensorrt_llm`
//! prints its version on stdout instead (`tensorrt_llm/__init__.py`:
//! `print(f"[TensorRT-LLM] TensorRT-LLM version: {__version__}")`, spelled `TensorRT LLM
//! version` from about 1.1 and followed by ` (backend: cuda)` on the newest main), and
//! `serve.py` imports it before click runs, so the first line of `serve --help` carries the
//! version: one question answers both.
//!
//! click prints each option as two spaces, its names joined by `, ` and a metavar
//! (`--tensor_parallel_size, --tp_size INTEGER`, `--backend [pytorch|tensorrt|_autodeploy]`,
//! flags bare); the help text follows in a column at 34, or on the next line when the names
//! are wider than 30 characters (click's `HelpFormatter.write_dl`).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use crate::engine::probe;

pub use crate::engine::probe::{EngineMissing, HELP_FILE, VERSION_FILE};
/// Deadline for `serve --help` (it imports torch and tensorrt_llm first: seconds).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(180);
/// Options every `trtllm-serve serve --help` lists; a text without them listed none.
const CORE_OPTIONS: &[&str] = &["--max_batch_size", "--port", "--backend"];

/// A TensorRT-LLM release: `1.1.0`, `1.2.0rc5`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major.
    pub major: u32,
    /// Minor.
    pub minor: u32,
    /// Patch.
    pub patch: u32,
    /// Pre-release or local suffix (`rc5`, `.post1`), empty for a release.
    pub suffix: String,
}

impl Version {
    /// A release without suffix.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Version {
        Version {
            major,
            minor,
            patch,
            suffix: String::new(),
        }
    }

    /// The newest release forge's tables know (the simulated twin renders for it).
    pub const NEWEST: Version = Version::new(1, 2, 0);

    /// `major.minor.patch` with any suffix, as pip spells it.
    pub fn parse(text: &str) -> Option<Version> {
        let t = text.trim().trim_start_matches('v');
        let mut parts = t.splitn(3, '.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let rest = parts.next().unwrap_or("0");
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        Some(Version {
            major,
            minor,
            patch: digits.parse().ok()?,
            suffix: rest[digits.len()..].to_string(),
        })
    }

    /// True from `major.minor` on (any patch or suffix).
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        (self.major, self.minor) >= (major, minor)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}{}",
            self.major, self.minor, self.patch, self.suffix
        )
    }
}

/// The version in `tensorrt_llm`'s import banner, and the banner line itself.
pub fn version_from_banner(text: &str) -> Option<(Version, String)> {
    const MARKS: &[&str] = &["TensorRT-LLM version: ", "TensorRT LLM version: "];
    text.lines().find_map(|line| {
        let at = MARKS
            .iter()
            .find_map(|m| line.find(m).map(|i| i + m.len()))?;
        let word = line[at..].split_whitespace().next()?;
        Version::parse(word).map(|v| (v, line.trim().to_string()))
    })
}

/// One option as click lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickOption {
    /// Every spelling, in the order printed (`--tensor_parallel_size`, `--tp_size`).
    pub names: Vec<String>,
    /// True when a metavar is printed (the option takes a value).
    pub takes_value: bool,
    /// The closed set of values of a `click.Choice`.
    pub choices: Option<Vec<String>>,
}

impl ClickOption {
    /// True when `value` is acceptable (any value when no choices are listed).
    pub fn accepts(&self, value: &str) -> bool {
        self.choices
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == value))
    }
}

/// Every option a `trtllm-serve serve --help` lists.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeHelp {
    options: Vec<ClickOption>,
    index: HashMap<String, usize>,
}

impl ServeHelp {
    /// Parse click's help text; lines that are not option entries are skipped.
    pub fn parse(text: &str) -> ServeHelp {
        let mut help = ServeHelp::default();
        let mut in_options = false;
        for line in text.lines() {
            if !line.starts_with(' ') && !line.trim().is_empty() {
                in_options = line.trim_end() == "Options:";
            } else if in_options && let Some(o) = parse_option(line) {
                help.push(o);
            }
        }
        help
    }

    fn push(&mut self, o: ClickOption) {
        let at = self.options.len();
        for n in &o.names {
            self.index.entry(n.clone()).or_insert(at);
        }
        self.options.push(o);
    }

    /// True when the text listed `serve`'s options (not an error or a group's help).
    pub fn lists_options(&self) -> bool {
        CORE_OPTIONS.iter().all(|o| self.has(o))
    }

    /// True when `option` is one of the listed spellings.
    pub fn has(&self, option: &str) -> bool {
        self.index.contains_key(option)
    }

    /// The option listed under `option` (any spelling).
    pub fn option(&self, option: &str) -> Option<&ClickOption> {
        self.index.get(option).map(|i| &self.options[*i])
    }

    /// Every option, in the order listed.
    pub fn options(&self) -> &[ClickOption] {
        &self.options
    }
}

/// `  --names[, --alias] [METAVAR]  help`: exactly two spaces, then a dash.
fn parse_option(line: &str) -> Option<ClickOption> {
    let rest = line.strip_prefix("  ")?;
    if !rest.starts_with('-') {
        return None;
    }
    let invocation = rest.split("  ").next().unwrap_or(rest).trim_end();
    let mut o = ClickOption {
        names: Vec::new(),
        takes_value: false,
        choices: None,
    };
    for part in invocation.split(", ") {
        let (name, metavar) = part.split_once(' ').unwrap_or((part, ""));
        o.names.push(name.to_string());
        if !metavar.is_empty() {
            o.takes_value = true;
            o.choices = choices(metavar);
        }
    }
    Some(o)
}

/// `[pytorch|tensorrt|_autodeploy]` → its values.
fn choices(metavar: &str) -> Option<Vec<String>> {
    let inner = metavar.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split('|').map(str::to_string).collect())
}

/// What the installed `trtllm-serve` said about itself (`version_text` is the version
/// the import banner named).
pub type Probe = crate::engine::probe::Probe<Version, ServeHelp>;

/// Ask `launcher` (`["trtllm-serve", "serve"]`) for `--help`. Only an absent engine is an
/// error; a help that lists nothing is a note, and the run renders from forge's tables.
pub fn probe(launcher: &[String], timeout: Duration) -> Result<Probe, EngineMissing> {
    let shown = probe::shown(launcher, &["--help"]);
    match probe::ask(
        launcher,
        &["--help"],
        timeout,
        super::logs::mentions_missing_trtllm,
    )? {
        Ok(out) => Ok(read(&out.stdout, &out.all_text(), &shown)),
        Err(note) => Ok(Probe {
            notes: vec![note],
            ..Probe::default()
        }),
    }
}

fn read(stdout: &str, all: &str, shown: &str) -> Probe {
    let mut p = Probe::default();
    if let Some((v, _)) = version_from_banner(all) {
        p.version_text = Some(v.to_string());
        p.version = Some(v);
    } else {
        p.notes.push(format!(
            "`{shown}` printed no `TensorRT-LLM version:` banner: rendering for {}",
            Version::NEWEST
        ));
    }
    let help = ServeHelp::parse(stdout);
    if help.lists_options() {
        p.help = Some(help);
        p.help_text = Some((stdout.to_string(), shown.to_string()));
    } else {
        p.notes.push(format!(
            "`{shown}` listed no options ({}): options are rendered from forge's table and not \
             checked before boot (trtllm-serve itself rejects an unknown one, recorded as \
             infeasible_config)",
            probe::last_line(all).unwrap_or("no output")
        ));
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trtllm");

    fn fixture(name: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
    }

    #[test]
    fn versions_parse_and_order() {
        let v = Version::parse("1.2.0rc5").unwrap();
        assert_eq!((v.major, v.minor, v.patch), (1, 2, 0));
        assert_eq!(v.suffix, "rc5");
        assert_eq!(v.to_string(), "1.2.0rc5");
        assert!(v.at_least(1, 1) && v.at_least(1, 2) && !v.at_least(1, 3));
        assert!(Version::parse("1.0.0").unwrap() < Version::parse("1.1.0rc1").unwrap());
        assert_eq!(Version::parse("garbage"), None);
    }

    #[test]
    fn every_banner_spelling_gives_the_version() {
        for (line, want) in [
            ("[TensorRT-LLM] TensorRT-LLM version: 1.0.0", "1.0.0"),
            ("[TensorRT-LLM] TensorRT LLM version: 1.1.0rc5", "1.1.0rc5"),
            (
                "[TensorRT-LLM] TensorRT LLM version: 1.3.0rc2 (backend: cuda)",
                "1.3.0rc2",
            ),
        ] {
            let text = format!("noise\n{line}\nUsage: trtllm-serve serve");
            let (v, shown) = version_from_banner(&text).unwrap();
            assert_eq!(v.to_string(), want);
            assert_eq!(shown, line);
        }
        assert_eq!(version_from_banner("Usage: trtllm-serve"), None);
    }

    #[test]
    fn old_help_has_only_the_short_names() {
        let h = ServeHelp::parse(&fixture("serve-help-1.1.0.txt"));
        assert!(h.lists_options());
        for o in [
            "--tp_size",
            "--kv_cache_free_gpu_memory_fraction",
            "--extra_llm_api_options",
        ] {
            assert!(h.has(o), "{o}");
        }
        for o in [
            "--tensor_parallel_size",
            "--config",
            "--free_gpu_memory_fraction",
        ] {
            assert!(!h.has(o), "{o}");
        }
        assert!(!h.option("--enable_chunked_prefill").unwrap().takes_value);
        assert!(h.option("--max_batch_size").unwrap().takes_value);
        let backend = h.option("--backend").unwrap();
        assert!(backend.accepts("pytorch") && !backend.accepts("foo"));
    }

    #[test]
    fn newest_help_lists_aliases_as_one_option() {
        let h = ServeHelp::parse(&fixture("serve-help-1.2.0.txt"));
        assert!(h.lists_options());
        let tp = h.option("--tp_size").unwrap();
        assert_eq!(tp.names, ["--tensor_parallel_size", "--tp_size"]);
        assert_eq!(h.option("--config"), h.option("--extra_llm_api_options"));
        assert!(h.has("--kv_cache_free_gpu_memory_fraction"));
        assert!(!h.has("--served_model_name"));
    }

    fn script(dir: &Path, body: &str) -> Vec<String> {
        let path = dir.join("trtllm-serve");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        vec![path.display().to_string(), "serve".into()]
    }

    #[test]
    fn probe_reads_banner_and_help_and_saves_them() {
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            &format!(
                "echo '[TensorRT-LLM] TensorRT LLM version: 1.1.0'; cat {FIXTURES}/serve-help-1.1.0.txt"
            ),
        );
        let p = probe(&launcher, Duration::from_secs(10)).unwrap();
        assert_eq!(p.version, Some(Version::new(1, 1, 0)));
        assert!(p.help.as_ref().unwrap().has("--tp_size"));
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        let run = tempfile::tempdir().unwrap();
        assert_eq!(p.save(run.path()).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(run.path().join(VERSION_FILE)).unwrap(),
            "1.1.0\n"
        );
        assert!(
            std::fs::read_to_string(run.path().join(HELP_FILE))
                .unwrap()
                .contains("--tp_size")
        );
        std::fs::write(run.path().join(VERSION_FILE), "1.0.0\n").unwrap();
        assert_eq!(p.save(run.path()).unwrap(), Some("1.0.0".into()));
    }

    #[test]
    fn absent_and_broken_engines() {
        let e = probe(
            &["/nonexistent/trtllm-serve".into()],
            Duration::from_secs(5),
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("engine_missing: `/nonexistent/trtllm-serve --help`")
        );
        let dir = tempfile::tempdir().unwrap();
        let launcher = script(
            dir.path(),
            "echo \"ModuleNotFoundError: No module named 'tensorrt_llm'\" >&2; exit 1",
        );
        let e = probe(&launcher, Duration::from_secs(5)).unwrap_err();
        assert!(e.why.contains("No module named 'tensorrt_llm'"), "{e}");
        let launcher = script(dir.path(), "echo 'ImportError: libcuda.so.1' >&2; exit 1");
        let p = probe(&launcher, Duration::from_secs(5)).unwrap();
        assert!(p.help.is_none() && p.version.is_none());
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
    }
}
