//! A model's `config.json` from the local Hugging Face cache, so a GPU box that has served a
//! model gets predictions for its exact shape with no flag. The cache is where
//! `huggingface_hub` puts it: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`; a repository `org/name` lives in `models--org--name/`, its
//! revisions in `snapshots/<commit>/`, and `refs/main` names the commit `main` resolved to.

use std::path::{Path, PathBuf};

/// The hub cache directory, from the environment as `huggingface_hub` reads it.
pub fn hub_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(h) = std::env::var_os("HF_HOME") {
        return Some(Path::new(&h).join("hub"));
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/huggingface/hub"))
}

/// `config.json` of repository `repo` (`org/name`) in the cache at `hub`: the snapshot
/// `refs/main` points at, else the most recently written snapshot that has one.
pub fn config_in(hub: &Path, repo: &str) -> Option<PathBuf> {
    let (org, name) = repo.split_once('/')?;
    if org.is_empty() || name.is_empty() || name.contains('/') || repo.contains("..") {
        return None;
    }
    let root = hub.join(format!("models--{org}--{name}"));
    let snapshots = root.join("snapshots");
    if let Ok(commit) = std::fs::read_to_string(root.join("refs/main")) {
        let c = snapshots.join(commit.trim()).join("config.json");
        if c.is_file() {
            return Some(c);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("config.json"))
        .filter(|c| c.is_file())
        .max_by_key(|c| std::fs::metadata(c).and_then(|m| m.modified()).ok())
}

/// `config.json` of `repo` in this machine's cache, if it has been downloaded.
pub fn config(repo: &str) -> Option<PathBuf> {
    config_in(&hub_dir()?, repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_main_wins_then_the_newest_snapshot() {
        let hub = tempfile::tempdir().unwrap();
        let root = hub.path().join("models--acme--m-7b");
        for c in ["aaa", "bbb"] {
            std::fs::create_dir_all(root.join("snapshots").join(c)).unwrap();
            std::fs::write(root.join("snapshots").join(c).join("config.json"), c).unwrap();
        }
        std::fs::create_dir_all(root.join("refs")).unwrap();
        std::fs::write(root.join("refs/main"), "aaa\n").unwrap();
        let got = config_in(hub.path(), "acme/m-7b").unwrap();
        assert!(got.ends_with("snapshots/aaa/config.json"), "{got:?}");
        std::fs::remove_file(root.join("refs/main")).unwrap();
        assert!(config_in(hub.path(), "acme/m-7b").is_some());
        assert_eq!(config_in(hub.path(), "acme/other"), None);
        assert_eq!(config_in(hub.path(), "../etc"), None);
        assert_eq!(config_in(hub.path(), "no-slash"), None);
    }
}
