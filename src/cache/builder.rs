//! [`CacheBuilder`]: the settings a [`Cache`] is opened with.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cacher_formats::Registry;
use cacher_store::Store;

use super::{Cache, Inner};
use crate::clock::{millis, Clock, SystemClock};
use crate::limits::{Eviction, StoreBooks, Tracker};
use crate::report::Reported;
use crate::stats::StatsRegistry;
use crate::value_codec::ValueCodec;
use crate::{Error, Result};

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
    /// Revisions kept and the archive directory (`revisions/`).
    revisions: super::revisions::Settings,
    /// Single-flight settings (`src/flight/`): the lease timeout.
    pub(crate) flights: crate::flight::Flights,
}

/// The format a cache writes when none is named: `cbor` (compact, fast, self-describing), or,
/// in a build without the `cbor` feature, the first of `json`, `pickle` that is compiled in.
/// `raw` is the last resort: it stores byte values only.
const DEFAULT_FORMAT: &str = if cfg!(feature = "cbor") {
    "cbor"
} else if cfg!(feature = "json") {
    "json"
} else if cfg!(feature = "pickle") {
    "pickle"
} else {
    "raw"
};

impl Default for CacheBuilder {
    fn default() -> Self {
        CacheBuilder {
            store: None,
            format: DEFAULT_FORMAT.to_string(),
            ttl: None,
            deadline: None,
            max_entries: None,
            max_bytes: None,
            eviction: Eviction::default(),
            clock: Arc::new(SystemClock),
            registry: None,
            revisions: Default::default(),
            flights: Default::default(),
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

    /// The format new values are written in, by registry name (default `"cbor"`, see the crate
    /// features for builds without it): `"json"`,
    /// `"pickle"`, `"raw"`, `"cbor+zstd"`, `"json+zstd:19"`… Values written in another format
    /// are still read: each value's envelope names its format.
    pub fn format(mut self, name: &str) -> Self {
        self.format = name.to_string();
        self
    }

    /// The format registry (default: the built-in formats). Give your own to add formats,
    /// codecs, zstd dictionaries, or a MAC key
    /// ([`Registry::with_mac_key`](cacher_formats::Registry::with_mac_key)).
    ///
    /// With a MAC key, a value is accepted only if it was written by a holder of the key for
    /// the very key it is read under: a planted value, or one copied from another key, is
    /// [`Error::is_unauthenticated`] for `get`, `contains` and memoized calls alike (a plain
    /// memoized `call` recomputes). What a MAC cannot prevent: someone with write access to
    /// the store putting back an *older* value of the same key (a replay); see the
    /// [envelope docs](cacher_formats::envelope) for what would.
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

    /// Keeps the last `n` values of every key as numbered revisions (0, the default, keeps
    /// none): overwriting a key moves its value to revision storage in the same store (so
    /// every disk store keeps them across restarts), and [`Cache::revisions`] /
    /// [`Cache::get_revision`] read them back; [`Cache::get`] only ever sees the current value.
    ///
    /// - **Numbers**: the envelope's revision field counts up per key: the first value is
    ///   revision 1, the next 2, and numbers never shift. A value written without revisions is
    ///   numbered when it is overwritten.
    /// - **Names** ([`Cache::name_revision`]) pin a revision: kept beyond `n`, never evicted,
    ///   archived only on request.
    /// - **Limits**: each unnamed old revision counts against `max_entries` and `max_bytes` as
    ///   an entry of its own (its whole stored size) and is evicted like one (old revisions are
    ///   never read by `get`, so under LRU they go first); named ones are not counted.
    ///   `keep_revisions(n)` bounds the unnamed ones per key in any case.
    /// - **Crash safety**: the old value is copied to its revision record (with the key's
    ///   revision list) before the new value is written, so a crash leaves the old or the new
    ///   value current and never loses either.
    /// - Typed values only: blobs (streamed `put_blob`) replace their key without keeping a
    ///   revision.
    /// - Revisions outlive [`Cache::remove`] of their key and go with [`Cache::clear`]. Keys
    ///   starting with `0xFF 0xFE "cacher-rev" 0x00` are reserved for them (a write is
    ///   refused); the layout is in `docs/archive-format.md`.
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).keep_revisions(2).build()?;
    /// for v in 1..=4 {
    ///     cache.put("k", &v)?;
    /// }
    /// assert_eq!(cache.get::<u32>("k")?, Some(4));
    /// assert_eq!(cache.get_revision::<u32>("k", 3)?, Some(3));
    /// assert_eq!(cache.get_revision::<u32>("k", 1)?, None); // beyond the 2 kept
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn keep_revisions(mut self, n: u32) -> Self {
        self.revisions.keep = n;
        self
    }

    /// Keeps `n` revisions of the keys of `namespace` (a memoized function's namespace, as in
    /// [`Cache::clear_namespace`]), whatever [`CacheBuilder::keep_revisions`] says for the rest.
    pub fn keep_revisions_in(mut self, namespace: &str, n: u32) -> Self {
        self.revisions
            .keep_by_namespace
            .insert(namespace.to_string(), n);
        self
    }

    /// Where [`Cache::archive`] writes archive files (default: `archives` beside the store's
    /// files, see [`Cache::archive_dir`]); needed for stores without a directory.
    pub fn archive_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.revisions.archive_dir = Some(dir.into());
        self
    }

    /// Opens the cache. With a limit set on a store that keeps accounting (`LmdbStore`,
    /// `HybridStore`), reads the stored totals in O(1) and evicts if they are over; a store
    /// written before accounting existed is counted once first (one scan, progress through
    /// `tracing`). With a limit on any other store, or on a cache that keeps revisions
    /// ([`CacheBuilder::keep_revisions`]: only the cache knows which revisions are pinned),
    /// scans the store once to learn the entries' sizes and ages (headers only).
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
        let limited = self.max_entries.is_some() || self.max_bytes.is_some();
        // A store that keeps accounting holds the books; any other is scanned and tracked in
        // memory (`src/limits/`). So is a cache that keeps revisions: the store's books count
        // and evict every stored key, and would take a key's manifest or a named (pinned)
        // revision, which only the cache can tell apart (on_the_default_store_named_revisions_
        // are_never_evicted_either).
        let in_store = limited && store.accounting().is_some() && !self.revisions.any();
        let tracker = (limited && !in_store).then(|| Mutex::new(Tracker::new(self.eviction)));
        let books = in_store.then(|| StoreBooks::new(self.eviction));
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
                flights: self.flights,
                reported: Reported::default(),
                tracker,
                revisions: self.revisions,
                books,
            }),
        };
        if cache.inner.books.is_some() {
            // O(1): the stored total, after a one-time count of a store written before
            // accounting existed.
            cache.open_books()?;
        } else if cache.inner.tracker.is_some() {
            // One scan learns the entries' sizes and ages (and drops expired ones).
            cache.cleanup()?;
        }
        Ok(cache)
    }
}
