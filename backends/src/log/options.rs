//! [`LogOptions`]: how a [`LogStore`] is opened.

use std::path::Path;

use super::LogStore;
use crate::{Durability, FileMode, Result};

/// How to open a [`LogStore`]: durability, read-only, auto-compaction.
///
/// ```
/// use cacher_store::{Durability, LogOptions, Store};
/// let dir = tempfile::tempdir()?;
/// let store = LogOptions::new()
///     .durability(Durability::None)
///     .auto_compact(0.5, 64 << 20)
///     .open(dir.path().join("store.log"))?;
/// store.put(b"k", b"v")?;
/// store.flush()?; // with Durability::None, flush is what makes writes durable
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub(super) durability: Durability,
    pub(super) read_only: bool,
    pub(super) auto_compact: Option<AutoCompact>,
    pub(super) file_mode: FileMode,
    pub(super) sync_interval: std::time::Duration,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct AutoCompact {
    pub(super) garbage_ratio: f64,
    pub(super) min_file_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl LogOptions {
    /// A writer with [`Durability::Flush`] and no auto-compaction.
    pub fn new() -> Self {
        LogOptions {
            durability: Durability::Flush,
            read_only: false,
            auto_compact: None,
            file_mode: FileMode::Umask,
            sync_interval: super::periodic::DEFAULT_INTERVAL,
        }
    }

    /// [`Durability::Flush`] (the default): each `put`, `delete` and `put_many` is fdatasync'ed
    /// before it returns (`put_many` syncs once for the whole batch).
    /// [`Durability::Periodic`]: a background thread fdatasyncs the log at most
    /// [`LogOptions::sync_interval`] after a write (100 ms by default); a write costs what it
    /// costs with `None`. [`Durability::None`]: no syncs; [`Store::flush`](crate::Store::flush)
    /// syncs. What each promises after a crash is on [`LogStore`] ("Durability").
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens without the writer lock, alongside a writer process; writes fail with
    /// [`Error::Unsupported`](crate::Error::Unsupported). The file must exist. See [`LogStore`] for what a read-only
    /// handle sees.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// After a write, compacts when the file is at least `min_file_bytes` long and more than
    /// `garbage_ratio` (0.0..1.0) of its record bytes are overwritten values and tombstones.
    /// The write that triggers it waits for the compaction; if the compaction fails (say, the
    /// disk is full) the write still succeeds and the log stays as it was. Off by default.
    pub fn auto_compact(mut self, garbage_ratio: f64, min_file_bytes: u64) -> Self {
        self.auto_compact = Some(AutoCompact {
            garbage_ratio,
            min_file_bytes,
        });
        self
    }

    /// Who may read the files the store creates (the log, its lock file, compaction's new
    /// file): [`FileMode::Umask`] (the default: `0o666` less the process umask, so a group can
    /// share a cache) or [`FileMode::OwnerOnly`] (`0o600`). Compaction always gives the new
    /// file the mode of the log it replaces, so a mode set with `chmod` survives.
    pub fn file_mode(mut self, mode: FileMode) -> Self {
        self.file_mode = mode;
        self
    }

    /// How long a write may wait for its sync under [`Durability::Periodic`] (100 ms by
    /// default): a power loss loses at most the writes of about this interval (plus the time
    /// the sync itself takes). Ignored by the other durability levels.
    ///
    /// ```
    /// use std::time::Duration;
    /// use cacher_store::{Durability, LogOptions, Store};
    /// let dir = tempfile::tempdir()?;
    /// let store = LogOptions::new()
    ///     .durability(Durability::Periodic)
    ///     .sync_interval(Duration::from_millis(50))
    ///     .open(dir.path().join("store.log"))?;
    /// store.put(b"k", b"v")?; // returns without an fsync; synced within about 50 ms
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn sync_interval(mut self, interval: std::time::Duration) -> Self {
        self.sync_interval = interval;
        self
    }

    /// Opens (a writer creates the file if missing) the log at `path`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LogStore> {
        LogStore::open_with(path.as_ref(), self.clone())
    }
}
