//! Cleanup of `tmp/`: temp files left behind by writers that died.
//!
//! Only the store's own files are removed: regular files named `put-XXXXXX` (the shape
//! [`DirStore::new_temp`] makes), untouched for the stale age and not locked by a live
//! writer. Anything else in `tmp/` (a user's file, a look-alike name, a symlink, a FIFO, a
//! directory) is left alone, and `tmp/` itself is never followed when it is a symlink.

use std::fs::File;
use std::time::{Duration, SystemTime};

use super::{DirStore, EVICT_PREFIX, TMP_PREFIX, TMP_RANDOM_LEN};
use crate::{Error, Result};

impl DirStore {
    /// Removes temp files left in `tmp/` by writers that died, and returns how many.
    ///
    /// A temp file is removed only when it is one the store made (a regular file named
    /// `put-` or `evict-` and six letters or digits), has not been modified or renamed for
    /// `older_than`, *and* no process holds the lock every writer takes on its temp file for
    /// as long as it writes (`flock`, released by the kernel when the writer dies). The age guards the instant
    /// between a writer creating its file and locking it. If a live writer's file were removed
    /// anyway, its rename would fail and its `put` return an error: an entry is never damaged.
    ///
    /// `tmp/` is opened without following symlinks and each file is examined through that
    /// directory handle (`openat`, `O_NOFOLLOW | O_NONBLOCK`), so a planted symlink or FIFO is
    /// neither followed nor blocks. A `tmp/` that is not a real directory is
    /// [`Error::NotOwned`].
    pub fn remove_stale_temp_files(&self, older_than: Duration) -> Result<u64> {
        let now = SystemTime::now();
        let stale = |file: &File, renamed_in: bool| -> std::io::Result<bool> {
            let meta = file.metadata()?;
            // Checked on the open file: the name may have been swapped since the listing.
            if !meta.is_file() {
                return Ok(false);
            }
            let age = now
                .duration_since(last_change(&meta, renamed_in)?)
                .unwrap_or(Duration::ZERO);
            if age < older_than {
                return Ok(false);
            }
            match file.try_lock() {
                Ok(()) => Ok(true),
                Err(std::fs::TryLockError::WouldBlock) => Ok(false),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            }
        };
        #[cfg(unix)]
        return self.remove_own_temp_files_unix(&stale);
        #[cfg(not(unix))]
        return self.remove_own_temp_files_by_path(&stale);
    }

    #[cfg(unix)]
    fn remove_own_temp_files_unix(
        &self,
        stale: &dyn Fn(&File, bool) -> std::io::Result<bool>,
    ) -> Result<u64> {
        use rustix::fs::{openat, statat, unlinkat, AtFlags, Dir, FileType, Mode, OFlags};
        use rustix::io::Errno;

        let tmp = &self.tmp;
        let io_err = |op, e: Errno| Error::io(op, tmp, e.into());
        let dir = rustix::fs::open(
            tmp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // A symlink or a file where `tmp/` should be: say what is there.
            Errno::LOOP | Errno::NOTDIR => crate::fs::check_dir(tmp)
                .err()
                .unwrap_or_else(|| io_err("opening", e)),
            e => io_err("opening", e),
        })?;
        let mut removed = 0;
        for entry in Dir::read_from(&dir).map_err(|e| io_err("listing", e))? {
            let entry = entry.map_err(|e| io_err("listing", e))?;
            let name = entry.file_name();
            if !name.to_str().is_ok_and(is_own_temp_name) {
                continue;
            }
            let path = tmp.join(name.to_string_lossy().as_ref());
            match statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {}
                Ok(_) | Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("reading the metadata of", &path, e.into())),
            }
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            let file = match openat(&dir, name, flags, Mode::empty()) {
                Ok(fd) => File::from(fd),
                // Renamed into place or removed since the listing; or swapped for a symlink.
                Err(Errno::NOENT | Errno::LOOP) => continue,
                Err(e) => return Err(Error::io("opening a temp file", &path, e.into())),
            };
            let renamed_in = name.to_str().is_ok_and(is_evict_name);
            if !stale(&file, renamed_in)
                .map_err(|e| Error::io("checking the temp file", &path, e))?
            {
                continue;
            }
            match unlinkat(&dir, name, AtFlags::empty()) {
                Ok(()) => removed += 1,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(Error::io("removing a stale temp file", &path, e.into())),
            }
        }
        Ok(removed)
    }

    /// The same rules by path, where there is no `openat`.
    #[cfg(not(unix))]
    fn remove_own_temp_files_by_path(
        &self,
        stale: &dyn Fn(&File, bool) -> std::io::Result<bool>,
    ) -> Result<u64> {
        use std::io;
        crate::fs::check_dir(&self.tmp)?;
        let mut removed = 0;
        let listing =
            std::fs::read_dir(&self.tmp).map_err(|e| Error::io("listing", &self.tmp, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.tmp, e))?;
            if !entry.file_name().to_str().is_some_and(is_own_temp_name) {
                continue;
            }
            let path = entry.path();
            let file = match crate::fs::open_regular(&path, crate::fs::Access::Read) {
                Ok(Some(file)) => file,
                Ok(None) | Err(Error::NotOwned { .. }) => continue,
                Err(e) => return Err(e),
            };
            let renamed_in = entry.file_name().to_str().is_some_and(is_evict_name);
            if !stale(&file, renamed_in)
                .map_err(|e| Error::io("checking the temp file", &path, e))?
            {
                continue;
            }
            drop(file);
            match std::fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing a stale temp file", &path, e)),
            }
        }
        Ok(removed)
    }
}

/// When a temp file last changed: its modification time, or for a file renamed into `tmp/`
/// (`renamed_in`: an `evict-` file) on unix the later status change the rename made. An
/// `evict-` file keeps the entry's modification time, which may be old, but its rename into
/// `tmp/` is new: the age guards the instant between that rename and the evicting handle's
/// lock as it guards a writer's between creating and locking its `put-` file.
fn last_change(meta: &std::fs::Metadata, renamed_in: bool) -> std::io::Result<SystemTime> {
    let modified = meta.modified()?;
    #[cfg(not(unix))]
    let _ = renamed_in;
    #[cfg(unix)]
    if renamed_in {
        use std::os::unix::fs::MetadataExt;
        let changed = u64::try_from(meta.ctime()).ok().map(|secs| {
            std::time::UNIX_EPOCH
                + Duration::new(secs, u32::try_from(meta.ctime_nsec()).unwrap_or_default())
        });
        if let Some(changed) = changed.filter(|c| *c > modified) {
            return Ok(changed);
        }
    }
    Ok(modified)
}

impl DirStore {
    /// Whether a file named `name` in the store's `tmp/` has the shape of the temp files
    /// the store itself makes (the only ones its cleanup removes), for tools that report
    /// what `tmp/` holds before opening.
    ///
    /// ```
    /// use cacher_store::DirStore;
    /// assert!(DirStore::is_own_temp_name("put-aB3xY9"));
    /// assert!(!DirStore::is_own_temp_name("notes.txt"));
    /// ```
    pub fn is_own_temp_name(name: &str) -> bool {
        is_own_temp_name(name)
    }
}

/// Whether `name` is an `evict-` temp file: an entry file an eviction renamed into `tmp/`.
fn is_evict_name(name: &str) -> bool {
    name.starts_with(EVICT_PREFIX) && is_own_temp_name(name)
}

/// Whether `name` has the shape of a temp file the store makes: `put-` (a value being
/// written) or `evict-` (an evicted file being compared, left by a crash) and six characters
/// from `[A-Za-z0-9]`.
fn is_own_temp_name(name: &str) -> bool {
    [TMP_PREFIX, EVICT_PREFIX].into_iter().any(|prefix| {
        name.strip_prefix(prefix).is_some_and(|rest| {
            rest.len() == TMP_RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::is_own_temp_name;

    #[test]
    fn only_the_names_new_temp_makes_are_the_stores() {
        assert!(is_own_temp_name("put-aB3xY9"));
        assert!(is_own_temp_name("evict-aB3xY9"));
        for name in [
            "evict-",
            "evict-aB3xY9z",
            "put-",
            "put-abc",
            "put-aB3xY9z",
            "put-aB3xY.",
            "notes.txt",
            "PUT-aB3xY9",
        ] {
            assert!(!is_own_temp_name(name), "{name}");
        }
    }
}
