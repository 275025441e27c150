//! [`Cache`]: one store, one format, and the policy on top (expiry, limits, stats).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use cacher_store::Store;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::clock::{duration_ms, millis, Clock, SystemClock};
use crate::key::namespace_of;
use crate::limits::{Eviction, Tracker};
use crate::stats::{timed, Atomics, Stats, StatsRegistry, RELAXED};
use crate::value_codec::ValueCodec;
use crate::{Error, Result};
use cacher_formats::{EnvelopeMeta, Registry};

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
    /// Present only when a limit is set: tracking costs memory per entry.
    tracker: Option<Mutex<Tracker>>,
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

/// Builds a [`Cache`]; see [`Cache::builder`].
#[must_use]
pub struct CacheBuilder {
    store: Option<Box<dyn Store>>,
    format: String,
    ttl: Option<Duration>,
    deadline: Option<SystemTime>,
    max_entries: Option<u64>,
    max_bytes: Option<u64>,
    eviction: Eviction,
    clock: Arc<dyn Clock>,
    registry: Option<Registry>,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            store: None,
            format: "cbor".to_string(),
            ttl: None,
            deadline: None,
            max_entries: None,
            max_bytes: None,
            eviction: Eviction::default(),
            clock: Arc::new(SystemClock),
            registry: None,
        }
    }
}

impl CacheBuilder {
    /// The store holding the values (required). Any [`Store`]: `MemoryStore`, `DirStore`,
    /// `LogStore`, `LmdbStore`, a `Box<dyn Store>`, an `Arc` of one, or your own.
    pub fn store(mut self, store: impl Store + 'static) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// The format new values are written in, by registry name (default `"cbor"`): `"json"`,
    /// `"pickle"`, `"raw"`, `"cbor+zstd"`, `"json+zstd:19"`… Values written in another format
    /// are still read: each value's envelope names its format.
    pub fn format(mut self, name: &str) -> Self {
        self.format = name.to_string();
        self
    }

    /// The format registry (default: the built-in formats). Give your own to add formats,
    /// codecs, zstd dictionaries, or a MAC key so values written without it are refused.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Values expire this long after they were written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Every value expires at this instant, whenever it was written.
    pub fn expires_at(mut self, deadline: SystemTime) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// At most this many entries; the [`Eviction`] policy picks which go.
    pub fn max_entries(mut self, n: u64) -> Self {
        self.max_entries = Some(n);
        self
    }

    /// At most this many stored bytes (envelopes included); the [`Eviction`] policy picks which
    /// go.
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = Some(n);
        self
    }

    /// Which entries go first when a limit is exceeded (default LRU).
    pub fn eviction(mut self, policy: Eviction) -> Self {
        self.eviction = policy;
        self
    }

    /// The clock used for expiry (default the system clock); tests inject a
    /// [`crate::ManualClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Opens the cache. With a limit set, scans the store once to learn the entries' sizes and
    /// ages (headers only).
    pub fn build(self) -> Result<Cache> {
        let store = self
            .store
            .ok_or_else(|| Error::Config("no store given: call .store(..)".into()))?;
        let registry = Arc::new(self.registry.unwrap_or_else(Registry::with_builtins));
        let codec =
            ValueCodec::new(registry, &self.format).map_err(|e| Error::Config(e.to_string()))?;
        if self.max_entries == Some(0) || self.max_bytes == Some(0) {
            return Err(Error::Config("a limit of 0 would keep nothing".into()));
        }
        let tracker = (self.max_entries.is_some() || self.max_bytes.is_some())
            .then(|| Mutex::new(Tracker::new(self.eviction)));
        let cache = Cache {
            inner: Arc::new(Inner {
                store,
                codec,
                ttl: self.ttl,
                deadline_ms: self.deadline.map(millis),
                max_entries: self.max_entries,
                max_bytes: self.max_bytes,
                clock: self.clock,
                stats: StatsRegistry::default(),
                tracker,
            }),
        };
        if cache.inner.tracker.is_some() {
            // One scan learns the entries' sizes and ages (and drops expired ones).
            cache.cleanup()?;
        }
        Ok(cache)
    }
}

/// What a [`Cache::cleanup`] pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CleanupReport {
    /// Entries looked at.
    pub scanned: u64,
    /// Expired entries removed.
    pub expired: u64,
    /// Entries evicted to respect the limits.
    pub evicted: u64,
    /// Entries whose header could not be read (left in place; `cacher verify` reports them).
    pub unreadable: u64,
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
        self.lookup(key, &self.ns_stats(key))
    }

    /// Writes `value` under `key` with the cache's expiry settings.
    pub fn put<T: Serialize + ?Sized>(&self, key: impl AsRef<[u8]>, value: &T) -> Result<()> {
        let key = key.as_ref();
        self.store_value(key, value, None, &self.ns_stats(key))
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
        self.store_value(key, value, Some(until), &self.ns_stats(key))
    }

    /// Writes `value` under `key`, expiring at `deadline`.
    pub fn put_until<T: Serialize + ?Sized>(
        &self,
        key: impl AsRef<[u8]>,
        value: &T,
        deadline: SystemTime,
    ) -> Result<()> {
        let key = key.as_ref();
        self.store_value(key, value, Some(millis(deadline)), &self.ns_stats(key))
    }

    /// Removes `key`; returns whether a value (fresh or expired) was there.
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        let was = self.inner.store.delete(key)?;
        self.with_tracker(|t| t.remove(key));
        Ok(was)
    }

    /// Whether `key` holds a fresh (unexpired) value. Reads the header only.
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

    /// Returns `key`'s fresh value, or computes it with `f`, stores it and returns it.
    pub fn get_or_insert_with<T, F>(&self, key: impl AsRef<[u8]>, f: F) -> Result<T>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce() -> T,
    {
        let key = key.as_ref();
        let stats = self.ns_stats(key);
        if let Some(v) = self.lookup(key, &stats)? {
            return Ok(v);
        }
        let value = timed(&stats, f);
        self.store_value(key, &value, None, &stats)?;
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

    /// Removes expired entries and evicts down to the limits; rescans the store so entries
    /// written by other processes are counted. Reads headers only, never payloads.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        let mut report = CleanupReport::default();
        let now = self.now_ms();
        let keys: Vec<Vec<u8>> = self.inner.store.keys()?.collect::<Result<_, _>>()?;
        let mut live = Vec::with_capacity(keys.len());
        for key in keys {
            report.scanned += 1;
            let Some((header, size)) = self.peek(&key)? else {
                continue;
            };
            match header {
                Ok(h) if self.is_expired(&h, now) => {
                    self.inner.store.delete(&key)?;
                    self.ns_stats(&key).expirations.fetch_add(1, RELAXED);
                    report.expired += 1;
                }
                Ok(h) => live.push((h.created_ms, key, size)),
                Err(_) => report.unreadable += 1,
            }
        }
        if let Some(tracker) = &self.inner.tracker {
            let victims = {
                let mut t = lock(tracker);
                live.sort();
                t.sync(&live);
                t.over_limits(self.inner.max_entries, self.inner.max_bytes, None)
            };
            for key in victims {
                self.inner.store.delete(&key)?;
                self.ns_stats(&key).evictions.fetch_add(1, RELAXED);
                report.evicted += 1;
            }
        }
        Ok(report)
    }

    /// Runs [`Cache::cleanup`] on a background thread at once and then every `interval`,
    /// until the returned handle is dropped. Errors are counted in the stats (`errors`) and retried next time.
    pub fn spawn_cleanup(&self, interval: Duration) -> CleanupThread {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let weak = Arc::downgrade(&self.inner);
        let handle = std::thread::Builder::new()
            .name("cacher-cleanup".into())
            .spawn(move || loop {
                // One pass at start, then one per interval: a handle dropped right away has
                // still cleaned up once.
                {
                    let Some(inner) = weak.upgrade() else { return };
                    let cache = Cache { inner };
                    if cache.cleanup().is_err() {
                        cache.ns_stats(b"").errors.fetch_add(1, RELAXED);
                    }
                }
                match stopped.recv_timeout(interval) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            })
            .ok();
        CleanupThread {
            stop: Some(stop),
            handle,
        }
    }

    // ---- internals shared by memoize, slots and the plain API ----

    pub(crate) fn ns_stats(&self, key: &[u8]) -> Arc<Atomics> {
        self.inner.stats.namespace(namespace_of(key).unwrap_or(""))
    }

    /// An entry's own expiry (from the cache TTL when it was written, or a per-value TTL or
    /// deadline) wins; an entry written without one expires by the cache's current TTL. The
    /// cache-wide deadline applies to all.
    pub(crate) fn is_expired(&self, h: &EnvelopeMeta, now: u64) -> bool {
        let own = match h.expires_ms {
            Some(e) => e <= now,
            None => self
                .inner
                .ttl
                .is_some_and(|ttl| h.created_ms.saturating_add(duration_ms(ttl)) <= now),
        };
        own || self.inner.deadline_ms.is_some_and(|d| d <= now)
    }

    /// Reads and decodes `key`; an expired value counts as a miss and is removed.
    pub(crate) fn lookup<T: DeserializeOwned>(
        &self,
        key: &[u8],
        stats: &Atomics,
    ) -> Result<Option<T>> {
        let start = Instant::now();
        let Some(blob) = self.inner.store.read(key)? else {
            stats.misses.fetch_add(1, RELAXED);
            // Deleted behind our back (another process, a store-level delete).
            self.with_tracker(|t| t.remove(key));
            return Ok(None);
        };
        let (header, payload) = self
            .inner
            .codec
            .open(&blob)
            .map_err(|e| Error::format(key, e))?;
        if self.is_expired(&header.meta(), self.now_ms()) {
            drop(blob);
            stats.misses.fetch_add(1, RELAXED);
            stats.expirations.fetch_add(1, RELAXED);
            // Best effort: another process may have replaced it already; a fresh value
            // written since is not ours to delete, so only delete if still expired.
            if let Ok(Some((Ok(h), _))) = self.peek(key) {
                if self.is_expired(&h, self.now_ms()) {
                    let _ = self.inner.store.delete(key);
                    self.with_tracker(|t| t.remove(key));
                }
            }
            return Ok(None);
        }
        let value = self
            .inner
            .codec
            .decode(&header, payload)
            .map_err(|e| Error::format(key, e))?;
        stats.hits.fetch_add(1, RELAXED);
        stats.bytes_read.fetch_add(blob.len() as u64, RELAXED);
        stats.add_read(start.elapsed());
        self.with_tracker(|t| t.touch(key));
        Ok(Some(value))
    }

    /// Encodes and writes `value`; `expires_ms` overrides the cache's TTL for this value.
    pub(crate) fn store_value<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        expires_ms: Option<u64>,
        stats: &Atomics,
    ) -> Result<()> {
        let now = self.now_ms();
        let ttl_expiry = self
            .inner
            .ttl
            .map(|ttl| now.saturating_add(duration_ms(ttl)));
        let expires_ms = [expires_ms.or(ttl_expiry), self.inner.deadline_ms]
            .into_iter()
            .flatten()
            .min();
        let header = EnvelopeMeta {
            created_ms: now,
            expires_ms,
            revision: 0,
        };
        let bytes = self
            .inner
            .codec
            .encode(value, &header)
            .map_err(|e| Error::format(key, e))?;
        self.inner.store.put(key, &bytes)?;
        stats.stores.fetch_add(1, RELAXED);
        stats.bytes_written.fetch_add(bytes.len() as u64, RELAXED);
        self.enforce_limits(key, bytes.len() as u64)
    }

    fn enforce_limits(&self, key: &[u8], size: u64) -> Result<()> {
        let Some(tracker) = &self.inner.tracker else {
            return Ok(());
        };
        let victims = {
            let mut t = lock(tracker);
            t.insert(key, size);
            t.over_limits(self.inner.max_entries, self.inner.max_bytes, Some(key))
        };
        for victim in victims {
            self.inner.store.delete(&victim)?;
            self.ns_stats(&victim).evictions.fetch_add(1, RELAXED);
        }
        Ok(())
    }

    fn with_tracker(&self, f: impl FnOnce(&mut Tracker)) {
        if let Some(tracker) = &self.inner.tracker {
            f(&mut lock(tracker));
        }
    }

    /// `key`'s envelope header (or why it does not parse) and stored size, read through
    /// [`Store::with_value`] so no store copies the value just to look at its header.
    fn peek(
        &self,
        key: &[u8],
    ) -> Result<Option<(Result<EnvelopeMeta, cacher_formats::Error>, u64)>> {
        let mut seen = None;
        self.inner.store.with_value(key, &mut |bytes| {
            seen = Some((ValueCodec::peek(bytes), bytes.len() as u64));
        })?;
        Ok(seen)
    }
}

/// Stops the background cleanup thread when dropped (and waits for it).
#[derive(Debug)]
pub struct CleanupThread {
    stop: Option<std::sync::mpsc::Sender<()>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for CleanupThread {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn lock(m: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    // The tracker is advisory (eviction order); a panic mid-update cannot lose stored data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
