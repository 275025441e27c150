//! [`Cache`]: one store, one format, and the policy on top (expiry, limits, stats).
//!
//! The handle and its public API live here; `builder` opens a cache, `entry` reads and
//! writes one value (envelope, expiry check, limits), `expiry` says when a value is stale,
//! `cleanup` sweeps the store (and runs that on a thread).

mod blob;
mod books;
mod builder;
mod cleanup;
mod entry;
mod expiry;
#[cfg(feature = "lmdb")]
mod open;
mod revisions;

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cacher_formats::Registry;
use cacher_store::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::{duration_ms, millis, Clock};
use crate::key::namespace_of;
use crate::limits::Tracker;
use crate::stats::{timed, Atomics, Stats, StatsRegistry};
use crate::value_codec::ValueCodec;
use crate::{Error, Result};

pub use blob::{BlobEntry, BlobError, BlobMemo, BodyReader, MappedBlob};
pub use builder::CacheBuilder;
pub use cleanup::{CleanupReport, CleanupThread};
pub use revisions::{
    is_revision_key, revision_key_kind, RevisionInfo, RevisionKeyKind, RevisionPlace,
};
#[cfg(feature = "archive")]
pub use revisions::{ArchivePolicy, ArchiveReport};

/// A persistent cache: typed values over any [`Store`], with expiry, limits and stats.
///
/// Cheap to clone (the clones share everything) and safe to use from many threads.
///
/// ```
/// use cacher::{Cache, store::MemoryStore};
/// use std::time::Duration;
///
/// let cache = Cache::builder()
///     .store(MemoryStore::new())
///     .ttl(Duration::from_secs(3600))
///     .max_entries(10_000)
///     .build()?;
/// cache.put("user:42", &("Ada", 36))?;
/// let user: Option<(String, u32)> = cache.get("user:42")?;
/// assert_eq!(user, Some(("Ada".to_string(), 36)));
///
/// let n: u64 = cache.get_or_insert_with("answer", || 42)?;
/// assert_eq!(n, 42);
/// # Ok::<(), cacher::Error>(())
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Box<dyn Store>,
    codec: ValueCodec,
    ttl: Option<Duration>,
    deadline_ms: Option<u64>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    clock: Arc<dyn Clock>,
    pub(crate) stats: StatsRegistry,
    /// Misses being computed, for single-flight (`src/flight/`).
    pub(crate) flights: crate::flight::Flights,
    /// Which kinds of swallowed errors were logged already.
    pub(crate) reported: crate::report::Reported,
    /// Present only when a limit is set on a store without accounting: tracking costs
    /// memory per entry.
    tracker: Option<Mutex<Tracker>>,
    /// Revisions kept per key and where archives go (`revisions/`).
    revisions: revisions::Settings,
    /// Present only when a limit is set on a store that keeps accounting (`src/limits/`).
    books: Option<crate::limits::StoreBooks>,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("format", &self.inner.codec.name())
            .field("ttl", &self.inner.ttl)
            .field("max_entries", &self.inner.max_entries)
            .field("max_bytes", &self.inner.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Starts building a cache.
    pub fn builder() -> CacheBuilder {
        CacheBuilder::default()
    }

    /// The store under the cache.
    pub fn store(&self) -> &dyn Store {
        &*self.inner.store
    }

    /// The name of the format new values are written in.
    pub fn format(&self) -> &str {
        self.inner.codec.name()
    }

    /// The format registry that reads stored values.
    pub fn registry(&self) -> &Registry {
        self.inner.codec.registry()
    }

    /// The cache's clock, in ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    /// Reads `key`'s value; `None` when it is missing or expired. A value written by another
    /// format is decoded by the format its envelope names.
    pub fn get<T: DeserializeOwned>(&self, key: impl AsRef<[u8]>) -> Result<Option<T>> {
        let key = key.as_ref();
        self.lookup(key, &self.stats_of(key), None)
    }

    /// Writes `value` under `key` with the cache's expiry settings.
    pub fn put<T: Serialize + ?Sized>(&self, key: impl AsRef<[u8]>, value: &T) -> Result<()> {
        let key = key.as_ref();
        self.store_value(key, value, None, None, &self.stats_of(key))
    }

    /// Writes `value` under `key`, expiring `ttl` from now (instead of the cache's TTL).
    pub fn put_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        let key = key.as_ref();
        let until = self.now_ms().saturating_add(duration_ms(ttl));
        self.store_value(key, value, Some(until), None, &self.stats_of(key))
    }

    /// Writes `value` under `key`, expiring at `deadline`.
    pub fn put_until<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        deadline: SystemTime,
    ) -> Result<()> {
        let key = key.as_ref();
        self.store_value(
            key,
            value,
            Some(millis(deadline)),
            None,
            &self.stats_of(key),
        )
    }

    /// Removes `key`; returns whether a value (fresh or expired) was there.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        let was = self.inner.store.delete(key)?;
        self.with_tracker(|t| t.remove(key));
        Ok(was)
    }

    /// Whether `key` holds a fresh (unexpired) value that `get` would accept: a value `get`
    /// refuses (written under another key, or refused by the MAC key) is the same error here.
    /// Checks the header only, without decoding; with a MAC key that check covers the whole
    /// stored value, so the store lends all of it.
    pub fn contains(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        match self.peek(key)? {
            None => Ok(false),
            Some((header, _)) => {
                let header = header.map_err(|e| Error::format(key, e))?;
                Ok(!self.is_expired(&header, self.now_ms()))
            }
        }
    }

    /// Removes every entry; returns how many there were.
    pub fn clear(&self) -> Result<u64> {
        let keys: Vec<Vec<u8>> = self.inner.store.keys()?.collect::<Result<_, _>>()?;
        let mut n = 0;
        for k in &keys {
            n += self.inner.store.delete(k)? as u64;
        }
        self.with_tracker(|t| *t = Tracker::new(t.policy()));
        Ok(n)
    }

    /// Removes every entry of `namespace` (a memoized function's results, all versions, and
    /// the slot of that name); returns how many there were. Scans the store's keys.
    pub fn clear_namespace(&self, namespace: &str) -> Result<u64> {
        let keys: Vec<Vec<u8>> = self.inner.store.keys()?.collect::<Result<_, _>>()?;
        let mut n = 0;
        for k in keys.iter().filter(|k| namespace_of(k) == Some(namespace)) {
            n += self.inner.store.delete(k)? as u64;
            self.with_tracker(|t| t.remove(k));
        }
        Ok(n)
    }

    /// Returns `key`'s fresh value, or computes it with `f`, stores it and returns it.
    pub fn get_or_insert_with<T, F>(&self, key: impl AsRef<[u8]>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let key = key.as_ref();
        let stats = self.stats_of(key);
        if let Some(v) = self.lookup(key, &stats, None)? {
            return Ok(v);
        }
        let value = timed(&stats, f);
        self.store_value(key, &value, None, None, &stats)?;
        Ok(value)
    }

    /// A snapshot of the counters, per namespace and in total.
    pub fn stats(&self) -> Stats {
        self.inner.stats.snapshot()
    }

    /// Sets every counter back to zero.
    pub fn reset_stats(&self) {
        self.inner.stats.reset();
    }

    pub(crate) fn ns_stats(&self, key: &[u8]) -> Arc<Atomics> {
        self.inner.stats.namespace(namespace_of(key).unwrap_or(""))
    }

    /// `key`'s namespace counters, borrowed for a plain key (no lock, no reference count
    /// touched: `get` and `put` on plain keys were ~440 instructions of namespace lookup,
    /// and every thread wrote the same `Arc` count).
    pub(crate) fn stats_of(&self, key: &[u8]) -> Cow<'_, Arc<Atomics>> {
        match namespace_of(key) {
            None | Some("") => Cow::Borrowed(self.inner.stats.plain()),
            Some(ns) => Cow::Owned(self.inner.stats.namespace(ns)),
        }
    }
}
