//! Cleanup of `tmp/`: temp files left behind by writers that died.

use std::fs::{self, File};
use std::io;
use std::time::{Duration, SystemTime};

use super::DirStore;
use crate::{Error, Result};

impl DirStore {
    /// Removes temp files left in `tmp/` by writers that died, and returns how many.
    ///
    /// A temp file is removed only when it has not been modified for `older_than` *and* no
    /// process holds the lock every writer takes on its temp file for as long as it writes
    /// (`flock`, released by the kernel when the writer dies). The age guards the instant
    /// between a writer creating its file and locking it. If a live writer's file were removed
    /// anyway, its rename would fail and its `put` return an error: an entry is never damaged.
    pub fn remove_stale_temp_files(&self, older_than: Duration) -> Result<u64> {
        let now = SystemTime::now();
        let mut removed = 0;
        let listing = fs::read_dir(&self.tmp).map_err(|e| Error::io("listing", &self.tmp, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.tmp, e))?;
            let path = entry.path();
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opening a temp file", &path, e)),
            };
            let modified = file
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| Error::io("reading the age of", &path, e))?;
            let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
            if age < older_than {
                continue;
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => continue,
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::io("locking a temp file", &path, e))
                }
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing a stale temp file", &path, e)),
            }
        }
        Ok(removed)
    }
}
