//! A fake engine whose checkout is a real git repository: its `engine.conf` says how fast
//! it serves and what it answers, and a line `#error` makes it fail to build — so every
//! outcome of a campaign comes out of a real diff, in milliseconds.

use std::path::{Path, PathBuf};

use forge::campaign::attempt::{Build, BuildFailed, Executor, Profiles};

pub use super::git::git;

pub const CONF: &str = "speed=100\nanswer=the cat sat on the mat\n";

/// The fake engine: reads its configuration from the checkout when built.
pub struct Fake {
    pub base: (f64, String),
    pub patched: (f64, String),
    /// The competitor's speed.
    pub leader: f64,
    /// Measurements so far.
    pub n: u32,
    /// Fail (as a crash would) at this measurement.
    pub crash_at: Option<u32>,
}

impl Fake {
    /// A fake whose base serves as `base` and whose competitor serves `leader` tokens/s.
    pub fn new(base: (f64, String), leader: f64) -> Fake {
        Fake {
            base,
            patched: (0.0, String::new()),
            leader,
            n: 0,
            crash_at: None,
        }
    }

    fn wobble(&mut self) -> anyhow::Result<f64> {
        // ±0.5 % of run-to-run wobble.
        self.n += 1;
        if self.crash_at == Some(self.n) {
            anyhow::bail!("the machine went away");
        }
        Ok(if self.n.is_multiple_of(3) {
            1.005
        } else {
            0.995
        })
    }
}

pub fn read_conf(checkout: &Path) -> Result<(f64, String), BuildFailed> {
    let text = std::fs::read_to_string(checkout.join("engine.conf")).unwrap();
    if let Some(line) = text.lines().find(|l| l.starts_with("#error")) {
        return Err(BuildFailed {
            first_errors: vec![format!("engine.conf:3:1: error: {line}")],
        });
    }
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    Ok((get("speed").parse().unwrap(), get("answer")))
}

impl Executor for Fake {
    async fn build(
        &mut self,
        checkout: &Path,
        which: Build,
        log: &Path,
    ) -> anyhow::Result<Result<(), BuildFailed>> {
        std::fs::create_dir_all(log.parent().unwrap()).unwrap();
        std::fs::write(log, "building\n").unwrap();
        let conf = match read_conf(checkout) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        match which {
            Build::Base => self.base = conf,
            Build::Patched => self.patched = conf,
        }
        Ok(Ok(()))
    }

    async fn answers(&mut self, which: Build) -> anyhow::Result<Vec<String>> {
        let a = match which {
            Build::Base => &self.base.1,
            Build::Patched => &self.patched.1,
        };
        // `answer=CRASH` builds, then dies when it is asked anything.
        anyhow::ensure!(a != "CRASH", "the server exited with status 139 at start");
        Ok(vec![format!(" {a}"); 8])
    }

    async fn measure(&mut self, which: Build) -> anyhow::Result<f64> {
        let w = self.wobble()?;
        Ok(match which {
            Build::Base => self.base.0,
            Build::Patched => self.patched.0,
        } * w)
    }

    async fn measure_leader(&mut self) -> anyhow::Result<f64> {
        Ok(self.leader * self.wobble()?)
    }

    async fn profile(&mut self, _dir: &Path, _round: u32) -> anyhow::Result<Profiles> {
        Ok(Profiles::Unavailable(
            "the fake engine has no profiler".into(),
        ))
    }

    fn command(&self, which: Option<Build>) -> Vec<String> {
        let side = match which {
            Some(Build::Base) => "base",
            Some(Build::Patched) => "patched",
            None => "leader",
        };
        vec!["fake-engine".into(), "--serve".into(), side.into()]
    }
}

/// The fake engine's checkout under `root`: a git repository with `engine.conf`
/// committed; its path and that commit.
pub fn engine_repo(root: &Path) -> (PathBuf, String) {
    let co = root.join("engine");
    std::fs::create_dir_all(&co).unwrap();
    std::fs::write(co.join("engine.conf"), CONF).unwrap();
    git(&co, &["init", "-q", "-b", "main"]);
    git(&co, &["add", "."]);
    git(&co, &["commit", "-q", "-m", "engine"]);
    let base = git(&co, &["rev-parse", "HEAD"]);
    (co, base)
}

pub fn diff(from: &str, to: &str) -> String {
    let mut d = format!(
        "diff --git a/engine.conf b/engine.conf\n--- a/engine.conf\n+++ b/engine.conf\n@@ -1,{} +1,{} @@\n",
        from.lines().count(),
        to.lines().count()
    );
    for l in from.lines() {
        d.push_str(&format!("-{l}\n"));
    }
    for l in to.lines() {
        d.push_str(&format!("+{l}\n"));
    }
    d
}
