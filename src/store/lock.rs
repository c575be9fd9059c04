//! One process per run: an exclusive advisory lock on `<run>/run.lock`, held for the life
//! of the process and released by the OS when it dies (even on `kill -9`).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

use super::StoreError;

/// Name of the lock file inside a run directory.
pub const LOCK_FILE: &str = "run.lock";

/// A held run lock; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Take the run's lock or fail at once with [`StoreError::Locked`].
    pub fn acquire(run_dir: &Path) -> Result<RunLock, StoreError> {
        let path = run_dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
                path: run_dir.to_path_buf(),
            }),
            Err(TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let a = RunLock::acquire(dir.path()).unwrap();
        assert!(matches!(
            RunLock::acquire(dir.path()),
            Err(StoreError::Locked { .. })
        ));
        drop(a);
        RunLock::acquire(dir.path()).unwrap();
    }
}
