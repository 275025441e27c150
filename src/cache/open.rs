//! [`Cache::open`]: a cache on the default store in one call.

use std::path::Path;

use cacher_store::{HybridStore, DEFAULT_GARBAGE_AGE};

use super::Cache;
use crate::Result;

impl Cache {
    /// Opens (or creates) a cache in the directory `path` on the default store,
    /// [`HybridStore`]: small values inline in an LMDB index, large
    /// values and blobs in their own files, streamed in and memory-mapped out. Default format
    /// and no expiry or limits; use [`Cache::builder`] with
    /// `.store(HybridStore::open(path)?)` to set them.
    ///
    /// Opening also removes value files left behind by a crash between a file's write and
    /// its index commit (older than an hour, see
    /// [`HybridStore::collect_garbage`](cacher_store::HybridStore::collect_garbage)): one pass
    /// over the index.
    ///
    /// ```
    /// use cacher::Cache;
    ///
    /// let dir = tempfile::tempdir()?;
    /// let cache = Cache::open(dir.path())?;
    /// cache.put("greeting", &"hello")?;
    /// assert_eq!(cache.get::<String>("greeting")?.as_deref(), Some("hello"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Cache> {
        let store = HybridStore::open(path.as_ref())?;
        store.collect_garbage(DEFAULT_GARBAGE_AGE)?;
        Cache::builder().store(store).build()
    }
}
