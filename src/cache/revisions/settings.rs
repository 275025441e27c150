//! What a cache keeps: revisions per key (for the whole cache and per namespace), and where
//! its archive files go.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::key::namespace_of;

/// The revision settings of one cache, fixed when it is built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Settings {
    /// Old revisions kept per key for the whole cache (0: none, the default).
    pub keep: u32,
    /// Overrides of `keep` by namespace (a memoized function's results).
    pub keep_by_namespace: HashMap<String, u32>,
    /// Where archive files are written; `None`: beside the store (see `archive_dir`).
    pub archive_dir: Option<PathBuf>,
    /// Archives opened by reads, by file name: opening one reads its footer, index and
    /// dictionary, which a read of one revision should not repeat. Archives are immutable, so
    /// an open one never goes stale.
    #[cfg(feature = "archive")]
    pub opened: OpenArchives,
    /// The in-process half of the per-key revision lock (see `lock.rs`).
    pub locks: Stripes,
}

/// Mutexes that threads of one process take by key hash before changing a key's revisions:
/// the store lease that serialises processes is a lock file, and threads holding it through
/// one store handle must not both pass. Shared by the clones of a cache.
#[derive(Clone)]
pub(crate) struct Stripes(std::sync::Arc<[std::sync::Mutex<()>; Stripes::COUNT]>);

impl Stripes {
    const COUNT: usize = 64;

    /// The stripe of `key`, locked.
    pub fn lock(&self, key: &[u8]) -> std::sync::MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let stripe = &self.0[h.finish() as usize % Self::COUNT];
        // A writer that panicked left no half-done state in the mutex (it guards nothing).
        stripe.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Stripes {
    fn default() -> Self {
        Stripes(std::sync::Arc::new(std::array::from_fn(|_| {
            std::sync::Mutex::new(())
        })))
    }
}

impl std::fmt::Debug for Stripes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Stripes")
    }
}

/// Archive files opened for reading, shared by the clones of a cache.
#[cfg(feature = "archive")]
#[derive(Default, Clone)]
pub(crate) struct OpenArchives(
    std::sync::Arc<
        std::sync::Mutex<HashMap<String, std::sync::Arc<cacher_store::archive::Archive>>>,
    >,
);

#[cfg(feature = "archive")]
impl std::fmt::Debug for OpenArchives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenArchives")
    }
}

#[cfg(feature = "archive")]
impl OpenArchives {
    /// At most this many stay open (each holds a descriptor and its index in memory).
    const MAX_OPEN: usize = 64;

    /// The archive `file` at `path`, opened once.
    pub fn get(
        &self,
        file: &str,
        path: &std::path::Path,
    ) -> Result<std::sync::Arc<cacher_store::archive::Archive>, cacher_store::Error> {
        let lock = || self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = lock().get(file) {
            return Ok(a.clone());
        }
        let archive = std::sync::Arc::new(cacher_store::archive::Archive::open(path)?);
        let mut map = lock();
        if map.len() >= Self::MAX_OPEN {
            map.clear();
        }
        map.insert(file.to_string(), archive.clone());
        Ok(archive)
    }
}

impl Settings {
    /// How many unnamed old revisions `key` keeps in the store.
    pub fn keep_for(&self, key: &[u8]) -> u32 {
        if !self.keep_by_namespace.is_empty() {
            if let Some(n) = namespace_of(key).and_then(|ns| self.keep_by_namespace.get(ns)) {
                return *n;
            }
        }
        self.keep
    }

    /// Whether any key of the cache keeps revisions (the write path reads the old value only
    /// then).
    pub fn any(&self) -> bool {
        self.keep > 0 || self.keep_by_namespace.values().any(|&n| n > 0)
    }
}
