//! CMake + Ninja builds from a source checkout into a build directory outside it
//! ([`CMakeBuild`], the generic part), and llama.cpp's `llama-server` on top of it
//! ([`LlamaCpp`], the flags of `scripts/llama-server.sh`).
//!
//! Configure runs once, when the build directory has no `build.ninja`; later builds are
//! `cmake --build DIR --target T -j N`, which ninja keeps incremental (and which re-runs
//! CMake by itself when a `CMakeLists.txt` changed). The build directory lives outside
//! the checkout, so the tree stays clean for `git status` and a `git reset --hard` (a
//! revert) keeps it. Ninja decides by mtime: a reset rewrites only the files whose content
//! changes, each with a new mtime, so exactly the objects that depend on them (through
//! the compiler's header dependencies) are rebuilt — reverting a patch to `server-context.cpp`
//! costs one recompile of that file and the relink of `llama-server`, like applying it
//! (about 13 s on 2 cores; tests/fixtures/campaign/llamacpp/README.md has the numbers).
//!
//! The tools come from `PATH` or from `$FORGE_PEERS/build-tools/bin` (default
//! `~/.cache/forge-peers`; the venv `scripts/llama-server.sh` makes with pip's `cmake` and
//! `ninja`); ninja is handed to CMake as `CMAKE_MAKE_PROGRAM`, so `PATH` is never changed.
//! Compilers run with `LC_ALL=C`, so their messages read the same everywhere.

use super::run::{Ended, Step};
use super::{BuildFailure, Builder, Built};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The cmake and ninja a build runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    /// The `cmake` binary.
    pub cmake: PathBuf,
    /// The `ninja` binary.
    pub ninja: PathBuf,
}

impl Tools {
    /// Find both on `PATH`, then in the peers' build-tools venv; a missing one is
    /// [`BuildFailure::Missing`].
    pub fn find() -> Result<Tools, BuildFailure> {
        let dirs = search_dirs();
        Ok(Tools {
            cmake: find_tool("cmake", &dirs)?,
            ninja: find_tool("ninja", &dirs)?,
        })
    }
}

/// `PATH`'s directories, then `$FORGE_PEERS/build-tools/bin`.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    let peers = std::env::var_os("FORGE_PEERS")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/forge-peers")));
    if let Some(peers) = peers {
        dirs.push(peers.join("build-tools/bin"));
    }
    dirs
}

/// The first executable `name` in `dirs`.
fn find_tool(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, BuildFailure> {
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| BuildFailure::Missing {
            tool: name.to_string(),
            searched: dirs.iter().map(|d| d.display().to_string()).collect(),
        })
}

/// A regular file with an execute bit.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A CMake project built with Ninja into `build_dir` (outside the checkout).
#[derive(Debug, Clone)]
pub struct CMakeBuild {
    /// The build directory (created when missing; configured once).
    pub build_dir: PathBuf,
    /// The target `cmake --build` builds.
    pub target: String,
    /// The product, relative to `build_dir` (what [`Built::program`] names).
    pub output: PathBuf,
    /// `-DNAME=VALUE` settings for configure.
    pub defines: Vec<(String, String)>,
    /// Parallel jobs (`-j`).
    pub jobs: usize,
    /// The tools; `None` finds them ([`Tools::find`]) at build time.
    pub tools: Option<Tools>,
    /// Where each step's process group is recorded (see [`super::run::Step::pids`]).
    pub pids: Option<PathBuf>,
}

impl CMakeBuild {
    /// Build `target` (producing `output` under `build_dir`) with one job per CPU.
    pub fn new(build_dir: &Path, target: &str, output: &Path) -> Self {
        CMakeBuild {
            build_dir: build_dir.to_path_buf(),
            target: target.to_string(),
            output: output.to_path_buf(),
            defines: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(1, usize::from),
            tools: None,
            pids: None,
        }
    }

    /// Add a `-DNAME=VALUE` configure setting.
    pub fn define(mut self, name: &str, value: &str) -> Self {
        self.defines.push((name.to_string(), value.to_string()));
        self
    }

    /// Whether the build directory has been configured (has a `build.ninja`).
    pub fn is_configured(&self) -> bool {
        self.build_dir.join("build.ninja").is_file()
    }

    /// The configure step: `cmake -S checkout -B build_dir -G Ninja -D…`.
    fn configure_step(&self, tools: &Tools, checkout: &Path) -> Step {
        let mut args: Vec<String> = vec!["-G".into(), "Ninja".into()];
        args.push(format!("-DCMAKE_MAKE_PROGRAM={}", tools.ninja.display()));
        args.extend(self.defines.iter().map(|(k, v)| format!("-D{k}={v}")));
        Step::new(&tools.cmake, &self.build_dir)
            .args(["-S".as_ref(), checkout.as_os_str()])
            .args(["-B".as_ref(), self.build_dir.as_os_str()])
            .args(args)
            .env("LC_ALL", "C")
            .recorded_in(self.pids.as_deref())
    }

    /// The build step: `cmake --build build_dir --target T -j N`.
    fn build_step(&self, tools: &Tools) -> Step {
        Step::new(&tools.cmake, &self.build_dir)
            .args(["--build".as_ref(), self.build_dir.as_os_str()])
            .args([
                "--target",
                &self.target,
                "-j",
                &self.jobs.max(1).to_string(),
            ])
            .env("LC_ALL", "C")
            .recorded_in(self.pids.as_deref())
    }
}

impl Builder for CMakeBuild {
    fn build(&self, checkout: &Path, log: &Path, timeout: Duration) -> Result<Built, BuildFailure> {
        let start = Instant::now();
        let deadline = start + timeout;
        let tools = match &self.tools {
            Some(t) => t.clone(),
            None => Tools::find()?,
        };
        std::fs::create_dir_all(&self.build_dir)?;
        if !self.is_configured() {
            let ended = self.configure_step(&tools, checkout).run(log, deadline)?;
            failed(ended, timeout, |first_errors| BuildFailure::Configure {
                first_errors,
            })?;
        }
        let ended = self.build_step(&tools).run(log, deadline)?;
        failed(ended, timeout, compile_or_configure)?;
        let program = self.build_dir.join(&self.output);
        if !program.is_file() {
            let missing = format!("{} was not produced by the build", program.display());
            return Err(std::io::Error::new(std::io::ErrorKind::NotFound, missing).into());
        }
        Ok(Built {
            program,
            took: start.elapsed(),
        })
    }
}

/// A failed `cmake --build`: a configure failure when CMake (re-run by ninja after a
/// `CMakeLists.txt` change) is what failed, else a compile failure.
fn compile_or_configure(first_errors: Vec<String>) -> BuildFailure {
    let cmake_first = first_errors
        .first()
        .is_some_and(|l| l.starts_with("CMake Error"));
    if cmake_first {
        BuildFailure::Configure { first_errors }
    } else {
        BuildFailure::Compile { first_errors }
    }
}

/// `Ok` for a step that exited 0; else the failure `classify` makes of its error lines,
/// or [`BuildFailure::Timeout`].
pub(crate) fn failed(
    ended: Ended,
    timeout: Duration,
    classify: impl FnOnce(Vec<String>) -> BuildFailure,
) -> Result<(), BuildFailure> {
    match ended {
        Ended::Exited { status, .. } if status.success() => Ok(()),
        Ended::Exited { first_errors, .. } => Err(classify(first_errors)),
        Ended::TimedOut => Err(BuildFailure::Timeout { after: timeout }),
    }
}

/// llama.cpp's `llama-server`, configured as `scripts/llama-server.sh` configures it
/// (portable AVX2 build: no native tuning, no AVX-512/AMX; server on, tests, examples,
/// web UI and OpenSSL off), built incrementally in a directory outside the checkout.
#[derive(Debug, Clone)]
pub struct LlamaCpp {
    /// The generic CMake build underneath (its defines are llama.cpp's).
    pub cmake: CMakeBuild,
}

/// The configure settings of `scripts/llama-server.sh`; keep the two in step.
const LLAMA_DEFINES: &[(&str, &str)] = &[
    ("CMAKE_BUILD_TYPE", "Release"),
    ("BUILD_SHARED_LIBS", "ON"),
    ("GGML_NATIVE", "OFF"),
    ("GGML_AVX", "ON"),
    ("GGML_AVX2", "ON"),
    ("GGML_FMA", "ON"),
    ("GGML_F16C", "ON"),
    ("GGML_BMI2", "ON"),
    ("GGML_AVX512", "OFF"),
    ("GGML_AMX_TILE", "OFF"),
    ("GGML_AMX_INT8", "OFF"),
    ("LLAMA_BUILD_TESTS", "OFF"),
    ("LLAMA_BUILD_EXAMPLES", "OFF"),
    ("LLAMA_BUILD_SERVER", "ON"),
    ("LLAMA_BUILD_TOOLS", "ON"),
    ("LLAMA_USE_PREBUILT_UI", "OFF"),
    ("LLAMA_BUILD_UI", "OFF"),
    ("LLAMA_OPENSSL", "OFF"),
];

impl LlamaCpp {
    /// `llama-server` built into `build_dir` (outside the checkout) with one job per CPU.
    pub fn new(build_dir: &Path) -> Self {
        let target = "llama-server";
        let mut cmake = CMakeBuild::new(build_dir, target, &Path::new("bin").join(target));
        for (name, value) in LLAMA_DEFINES {
            cmake = cmake.define(name, value);
        }
        LlamaCpp { cmake }
    }
}

/// Copy a llama.cpp build's `bin/` (the server and its shared libraries) to `to`, replacing
/// what was there, so that build stays runnable after the next one (run it with the
/// libraries beside it on `LD_LIBRARY_PATH`: its RUNPATH names the build directory).
pub fn keep_server(from: &Path, to: &Path) -> std::io::Result<()> {
    if to.exists() {
        std::fs::remove_dir_all(to)?;
    }
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name().to_string_lossy().to_string();
        if name == "llama-server" || name.contains(".so") {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

impl Builder for LlamaCpp {
    fn build(&self, checkout: &Path, log: &Path, timeout: Duration) -> Result<Built, BuildFailure> {
        self.cmake.build(checkout, log, timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_in_no_directory_is_missing_and_names_where_forge_looked() {
        let tmp = tempfile::tempdir().unwrap();
        let err = find_tool("ninja", &[tmp.path().to_path_buf()]).unwrap_err();
        assert!(matches!(&err, BuildFailure::Missing { tool, .. } if tool == "ninja"));
        assert!(err.to_string().contains(&tmp.path().display().to_string()));
        assert!(!err.is_patch_fault());
    }

    #[test]
    fn an_executable_is_found_in_order() {
        use std::os::unix::fs::PermissionsExt;
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        std::fs::write(a.path().join("cmake"), "not executable").unwrap();
        let exe = b.path().join("cmake");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let dirs = [a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(find_tool("cmake", &dirs).unwrap(), exe);
    }
}
