//! [`DirStoreOptions`]: how a [`DirStore`] is opened.

use std::fs;
use std::path::Path;
use std::time::Duration;

use super::format::HEADER_LEN;
use super::write::create_dir_if_missing;
use super::{DirStore, DEFAULT_MMAP_THRESHOLD, DEFAULT_STALE_TEMP_AGE, ENTRIES_DIR, TMP_DIR};
use crate::{Durability, Error, Result};

/// Options for opening a [`DirStore`]: `DirStore::options().durability(..).open(path)`.
#[derive(Debug, Clone)]
pub struct DirStoreOptions {
    durability: Durability,
    mmap_threshold: u64,
    stale_temp_age: Duration,
}

impl Default for DirStoreOptions {
    fn default() -> Self {
        DirStoreOptions {
            durability: Durability::Flush,
            mmap_threshold: DEFAULT_MMAP_THRESHOLD,
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
        }
    }
}

impl DirStoreOptions {
    /// The defaults: [`Durability::Flush`], [`DEFAULT_MMAP_THRESHOLD`],
    /// [`DEFAULT_STALE_TEMP_AGE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How far a write has gone before `put` returns.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
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

    /// Opens the store in `path`, creating the directory and its version marker if needed.
    ///
    /// Fails with [`Error::UpgradeRequired`] when the marker names a newer layout and with
    /// [`Error::Corrupt`] when the marker is not one. Stale temp files are removed on a best
    /// effort basis (a failure there does not fail the open).
    pub fn open(self, path: impl AsRef<Path>) -> Result<DirStore> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io("creating the store directory", &root, e))?;
        let store = DirStore {
            entries: root.join(ENTRIES_DIR),
            tmp: root.join(TMP_DIR),
            root,
            durability: self.durability,
            mmap_threshold: self.mmap_threshold.max(HEADER_LEN as u64 + 1),
        };
        // A newer layout is refused before anything is created in it.
        let has_marker = store.check_marker()?;
        for dir in [&store.tmp, &store.entries] {
            create_dir_if_missing(dir)?;
        }
        if !has_marker {
            store.write_marker()?;
        }
        let _ = store.remove_stale_temp_files(self.stale_temp_age);
        Ok(store)
    }
}
