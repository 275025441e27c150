//! [`DirStoreOptions`]: how a [`DirStore`] is opened.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::format::HEADER_LEN;
use super::{DirStore, DEFAULT_MMAP_THRESHOLD, DEFAULT_STALE_TEMP_AGE, ENTRIES_DIR, TMP_DIR};
use crate::marker::{self, Kind};
use crate::{fs, Durability, Error, FileMode, Result};

/// Options for opening a [`DirStore`]: `DirStore::options().durability(..).open(path)`.
#[derive(Debug, Clone)]
pub struct DirStoreOptions {
    durability: Durability,
    mmap_threshold: u64,
    stale_temp_age: Duration,
    file_mode: FileMode,
}

impl Default for DirStoreOptions {
    fn default() -> Self {
        DirStoreOptions {
            durability: Durability::Flush,
            mmap_threshold: DEFAULT_MMAP_THRESHOLD,
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
            file_mode: FileMode::Umask,
        }
    }
}

impl DirStoreOptions {
    /// The defaults: [`Durability::Flush`], [`DEFAULT_MMAP_THRESHOLD`],
    /// [`DEFAULT_STALE_TEMP_AGE`], [`FileMode::Umask`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How far a write has gone before `put` returns. [`Durability::Periodic`] is taken as
    /// [`Durability::Flush`] (see [`DirStore`], "Durability": a rename-based store has no
    /// cheaper way to keep its promise), and [`DirStore::durability`] then says `Flush`.
    pub fn durability(mut self, durability: Durability) -> Self {
        // Every sync decision in the store tests `== Flush` or `!= None`; a Periodic left as
        // it is would fall between the two and sync directories but not the entries' data.
        self.durability = match durability {
            Durability::Periodic => Durability::Flush,
            other => other,
        };
        self
    }

    /// Entry files of at least `bytes` bytes are read through a memory map.
    pub fn mmap_threshold(mut self, bytes: u64) -> Self {
        self.mmap_threshold = bytes;
        self
    }

    /// Temp files left by a crashed writer are removed on open once untouched this long (and
    /// not locked by a live writer).
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Who may read the files and directories the store creates: [`FileMode::Umask`] (the
    /// default: `0o666`/`0o777` less the process umask, so a group can share a cache) or
    /// [`FileMode::OwnerOnly`] (`0o600`/`0o700`). Existing files keep their modes.
    pub fn file_mode(mut self, mode: FileMode) -> Self {
        self.file_mode = mode;
        self
    }

    /// Opens the store in `path`, creating the directory and its version marker if needed.
    ///
    /// Fails with [`Error::WrongLayout`] when the directory holds another kind of store,
    /// [`Error::UpgradeRequired`] when the marker names a newer layout, [`Error::Corrupt`]
    /// when the marker is not one, and [`Error::NotOwned`] when `tmp/`, `v1/` or the marker is
    /// not a real directory or file of the store (a planted symlink, FIFO, ...). Stale temp
    /// files are removed on a best effort basis (a failure there does not fail the open).
    pub fn open(self, path: impl AsRef<Path>) -> Result<DirStore> {
        let root = path.as_ref().to_path_buf();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(self.file_mode.dir_bits());
        }
        builder
            .create(&root)
            .map_err(|e| Error::io("creating the store directory", &root, e))?;
        // Another kind of store, or a newer layout, is refused before anything is created.
        marker::refuse_foreign(&root, Kind::Dir)?;
        let store = DirStore {
            entries: root.join(ENTRIES_DIR),
            tmp: root.join(TMP_DIR),
            root,
            durability: self.durability,
            mmap_threshold: self.mmap_threshold.max(HEADER_LEN as u64 + 1),
            file_mode: self.file_mode,
            fanouts: Arc::default(),
            leases: Default::default(),
            #[cfg(all(feature = "lmdb", unix))]
            sidecar: Arc::default(),
        };
        let has_marker = store.check_marker()?.is_some();
        for dir in [&store.tmp, &store.entries] {
            fs::ensure_dir(dir, store.file_mode)?;
        }
        if !has_marker {
            store.write_marker(super::marker::LAYOUT_PLAIN)?;
        }
        // A store whose accounting is on opens its sidecar now (a symlinked `acct/` is
        // refused here); one without looks for it again before each write.
        #[cfg(all(feature = "lmdb", unix))]
        store.sidecar()?;
        let _ = store.remove_stale_temp_files(self.stale_temp_age);
        Ok(store)
    }
}
