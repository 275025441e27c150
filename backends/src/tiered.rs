//! [`Tiered`]: a bounded memory tier in front of a disk tier.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Blob, EntryMeta, KeyIter, Result, Store};

/// A store made of a hot in-memory tier in front of a cold store (usually on disk).
///
/// - Reads try the hot tier, then the cold one; a cold hit by [`read`](Store::read) or
///   [`with_value`](Store::with_value) is promoted into the hot tier when it is small (below).
/// - Writes go through to the cold store first (so nothing is only in memory), then to the
///   hot tier when small. Deletes remove from both.
/// - The hot tier holds at most `hot_bytes` bytes, least recently used out first. It keeps
///   values as shared buffers, so a hot hit lends the bytes without copying.
/// - Iteration, `len` and `flush` are the cold store's: it holds everything.
///
/// # What enters the memory tier
/// The tier is for many small, often-read values; one large value would push dozens of them
/// out and cost a copy of itself. So:
/// - A value enters only if it is at most [`max_value`](Tiered::max_value) bytes: by default
///   an eighth of `hot_bytes`, but never less than 64 KiB (values that small always may, up
///   to `hot_bytes`; 64 KiB is where the default store starts giving a value its own file),
///   set by [`with_max_value`](Tiered::with_max_value). A larger value is served from the cold
///   store on every read — lent, as the cold store lends it (a memory map on disk stores) —
///   and evicts nothing, whether it was read or written.
/// - Streamed reads ([`read_stream`](Store::read_stream), how `Cache::get_blob` reads a blob)
///   and streamed writes ([`put_reader`](Store::put_reader), how blobs are written) never
///   enter it, at any size.
/// - Unchecked reads ([`read_unchecked`](Store::read_unchecked), how `Cache::get_blob_mapped`
///   reads a blob it checks itself) never enter it either: the tier only holds bytes the cold
///   store has checked, so its hits are as sound as checked reads.
///
/// Another process writing the same cold store does not update this process's hot tier by
/// itself: use a TTL on the cache, or no hot tier, when several processes overwrite the same
/// keys — or feed a change notification (such as `RedisStore::watch_invalidations`, feature
/// `redis`) into [`Tiered::invalidator`].
///
/// ```
/// use cacher_store::{MemoryStore, Store, Tiered};
/// let cold = MemoryStore::new(); // a DirStore or LmdbStore in real use
/// let store = Tiered::new(cold, 64 << 20);
/// store.put(b"k", b"v")?;
/// assert_eq!(store.get(b"k")?.as_deref(), Some(&b"v"[..]));
/// assert_eq!(store.hot_bytes(), 1);
/// # Ok::<(), cacher_store::Error>(())
/// ```
pub struct Tiered<C> {
    cold: C,
    hot: Arc<Mutex<Hot>>,
    hot_bytes: u64,
    max_value: u64,
}

/// Values this small may always enter the memory tier (when it is this large at all).
const SMALL_VALUE: u64 = 64 << 10;

/// Drops copies from a [`Tiered`] store's memory tier when the cold store changed behind its
/// back (another process or machine wrote it). Cheap to clone; sendable to a watching thread.
///
/// ```
/// use cacher_store::{MemoryStore, Store, Tiered};
/// let cold = MemoryStore::new();
/// let store = Tiered::new(cold.clone(), 1 << 20);
/// store.put(b"k", b"old")?;
/// cold.put(b"k", b"new")?; // another writer, unseen by the hot tier
/// assert_eq!(store.get(b"k")?.as_deref(), Some(&b"old"[..]));
/// store.invalidator().invalidate(b"k");
/// assert_eq!(store.get(b"k")?.as_deref(), Some(&b"new"[..]));
/// # Ok::<(), cacher_store::Error>(())
/// ```
#[derive(Clone)]
pub struct Invalidator {
    hot: Arc<Mutex<Hot>>,
}

impl Invalidator {
    /// Drops the hot copy of `key`, and refuses any promotion of it already under way (it
    /// may carry the value from before the change).
    pub fn invalidate(&self, key: &[u8]) {
        lock_hot(&self.hot).begin_write(key);
    }

    /// Drops every hot copy, and refuses every promotion already under way.
    pub fn invalidate_all(&self) {
        let mut hot = lock_hot(&self.hot);
        hot.epoch += 1;
        hot.map.clear();
        hot.lru.clear();
        hot.bytes = 0;
    }
}

impl std::fmt::Debug for Invalidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidator").finish_non_exhaustive()
    }
}

fn lock_hot(hot: &Mutex<Hot>) -> MutexGuard<'_, Hot> {
    // The hot tier is a copy of the cold one; a panic mid-update loses nothing durable.
    hot.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default)]
struct Hot {
    map: HashMap<Vec<u8>, (Arc<[u8]>, u64)>,
    lru: BTreeMap<u64, Vec<u8>>,
    bytes: u64,
    tick: u64,
    /// Bumped by every write and delete. A cold read or a cold write only fills the hot tier
    /// if no other write happened meanwhile, so a racing writer's value is never shadowed by
    /// an older one.
    epoch: u64,
}

impl Hot {
    fn get(&mut self, key: &[u8]) -> Option<Arc<[u8]>> {
        self.tick += 1;
        let tick = self.tick;
        let (value, at) = self.map.get_mut(key)?;
        let old = std::mem::replace(at, tick);
        let value = value.clone();
        if let Some(k) = self.lru.remove(&old) {
            self.lru.insert(tick, k);
        }
        Some(value)
    }

    /// Starts a write of `key`: drops its hot copy and returns the new epoch.
    fn begin_write(&mut self, key: &[u8]) -> u64 {
        self.epoch += 1;
        self.remove(key);
        self.epoch
    }

    fn remove(&mut self, key: &[u8]) {
        if let Some((v, at)) = self.map.remove(key) {
            self.lru.remove(&at);
            self.bytes -= v.len() as u64;
        }
    }

    fn insert(&mut self, key: &[u8], value: Arc<[u8]>, cap: u64) {
        self.remove(key);
        if value.len() as u64 > cap {
            return;
        }
        self.tick += 1;
        self.bytes += value.len() as u64;
        self.map.insert(key.to_vec(), (value, self.tick));
        self.lru.insert(self.tick, key.to_vec());
        while self.bytes > cap {
            let Some((_, k)) = self.lru.pop_first() else {
                break;
            };
            if let Some((v, _)) = self.map.remove(&k) {
                self.bytes -= v.len() as u64;
            }
        }
    }
}

impl<C: Store> Tiered<C> {
    /// `cold` behind a memory tier of at most `hot_bytes` bytes.
    /// Values enter the tier up to [`max_value`](Tiered::max_value)'s default (see the type
    /// docs).
    pub fn new(cold: C, hot_bytes: u64) -> Self {
        Tiered {
            cold,
            hot: Arc::new(Mutex::new(Hot::default())),
            hot_bytes,
            max_value: (hot_bytes / 8).max(SMALL_VALUE).min(hot_bytes),
        }
    }

    /// Sets the largest value that may enter the memory tier (capped at `hot_bytes`): larger
    /// ones are always read from the cold store and evict nothing.
    ///
    /// ```
    /// use cacher_store::{MemoryStore, Store, Tiered};
    /// let store = Tiered::new(MemoryStore::new(), 1 << 20).with_max_value(100);
    /// store.put(b"small", &[1; 100])?;
    /// store.put(b"large", &[2; 101])?; // kept in the cold store only
    /// assert_eq!(store.hot_bytes(), 100);
    /// assert_eq!(store.get(b"large")?.map(|v| v.len()), Some(101));
    /// # Ok::<(), cacher_store::Error>(())
    /// ```
    #[must_use]
    pub fn with_max_value(mut self, bytes: u64) -> Self {
        self.max_value = bytes.min(self.hot_bytes);
        self
    }

    /// The largest value that may enter the memory tier.
    pub fn max_value(&self) -> u64 {
        self.max_value
    }

    /// Whether a value of `len` bytes may enter the memory tier.
    fn admits(&self, len: usize) -> bool {
        len as u64 <= self.max_value
    }

    /// The cold store.
    pub fn cold(&self) -> &C {
        &self.cold
    }

    /// Bytes held in the memory tier.
    pub fn hot_bytes(&self) -> u64 {
        self.hot().bytes
    }

    /// A handle that drops hot copies when the cold store changes behind this one's back.
    pub fn invalidator(&self) -> Invalidator {
        Invalidator {
            hot: self.hot.clone(),
        }
    }

    fn hot(&self) -> MutexGuard<'_, Hot> {
        lock_hot(&self.hot)
    }

    /// Puts a value just read from the cold store into the hot tier, unless a write happened
    /// since `epoch` (the value may be older than the cold store's now).
    fn promote(&self, key: &[u8], value: Arc<[u8]>, epoch: u64) {
        let mut hot = self.hot();
        if hot.epoch == epoch {
            hot.insert(key, value, self.hot_bytes);
        }
    }
}

impl<C: Store> Store for Tiered<C> {
    /// A hot value from memory; otherwise the cold store's stream, **not** promoted: a
    /// streamed read is how blobs are read, and a blob must not fill the memory tier.
    fn read_stream(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        if let Some(v) = self.hot().get(key) {
            return Ok(Some(crate::ValueReader::from_blob(Blob::from(v))));
        }
        self.cold.read_stream(key)
    }

    /// As `read_stream`, with the cold store's unchecked stream (never promoted).
    fn read_stream_unchecked(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        if let Some(v) = self.hot().get(key) {
            return Ok(Some(crate::ValueReader::from_blob(Blob::from(v))));
        }
        self.cold.read_stream_unchecked(key)
    }

    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        if let Some(v) = self.hot().get(key) {
            return Ok(Some(Blob::from(v)));
        }
        let epoch = self.hot().epoch;
        let Some(blob) = self.cold.read(key)? else {
            return Ok(None);
        };
        if self.admits(blob.len()) {
            let shared: Arc<[u8]> = Arc::from(&blob[..]);
            self.promote(key, shared.clone(), epoch);
            return Ok(Some(Blob::from(shared)));
        }
        Ok(Some(blob))
    }

    /// A hot value, or the cold store's unchecked read, never promoted (see the type docs).
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        if let Some(v) = self.hot().get(key) {
            return Ok(Some(Blob::from(v)));
        }
        self.cold.read_unchecked(key)
    }

    /// Lends a hot value, or the cold store's (promoting it when small, like `read`).
    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        if let Some(v) = self.hot().get(key) {
            f(&v);
            return Ok(true);
        }
        let epoch = self.hot().epoch;
        let mut shared = None;
        let found = self.cold.with_value(key, &mut |bytes| {
            if self.admits(bytes.len()) {
                shared = Some(Arc::<[u8]>::from(bytes));
            }
            f(bytes);
        })?;
        if let Some(shared) = shared {
            self.promote(key, shared, epoch);
        }
        Ok(found)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        // A store's `put_with_deadline(None)` is its plain `put` (the trait's default).
        self.put_with_deadline(key, value, None)
    }

    // Cross-process single-flight leases live beside the disk tier, which every process shares.
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        self.cold.lease_dir()
    }

    fn lease(
        &self,
        key: &[u8],
        terms: &crate::lease::Terms,
    ) -> Result<Option<crate::lease::Claim>> {
        self.cold.lease(key, terms)
    }

    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        // Drop the hot copy first: if the cold write fails, no stale value stays hot.
        let epoch = self.hot().begin_write(key);
        self.cold.put_with_deadline(key, value, deadline_ms)?;
        let mut hot = self.hot();
        if hot.epoch == epoch && self.admits(value.len()) {
            hot.insert(key, Arc::from(value), self.hot_bytes);
        } else {
            // Too large for the tier, or another write raced this one (which reached the cold
            // tier last is unknown): keep neither hot; the next read promotes whatever the
            // cold tier holds, if it is small.
            hot.remove(key);
        }
        Ok(())
    }

    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        self.hot().begin_write(key);
        self.cold.put_reader(key, reader)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        self.hot().begin_write(key);
        let was = self.cold.delete(key)?;
        // A promotion racing this delete is refused by the epoch; drop any copy again.
        self.hot().begin_write(key);
        Ok(was)
    }

    fn keys(&self) -> Result<KeyIter<'_>> {
        self.cold.keys()
    }

    fn flush(&self) -> Result<()> {
        self.cold.flush()
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        if self.hot().map.contains_key(key) {
            return Ok(true);
        }
        self.cold.contains(key)
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        if let Some((v, _)) = self.hot().map.get(key) {
            return Ok(Some(EntryMeta::new(v.len() as u64)));
        }
        self.cold.meta(key)
    }

    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let epoch = {
            let mut hot = self.hot();
            for (k, _) in entries {
                hot.begin_write(k);
            }
            hot.epoch
        };
        self.cold.put_many(entries)?;
        let mut hot = self.hot();
        for (k, v) in entries {
            if hot.epoch == epoch && self.admits(v.len()) {
                hot.insert(k, Arc::from(*v), self.hot_bytes);
            } else {
                hot.remove(k);
            }
        }
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        self.cold.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;

    crate::conformance_tests!(
        |_dir: &std::path::Path| Tiered::new(MemoryStore::new(), 1 << 20),
        persistent = false
    );

    #[test]
    fn cold_hits_are_promoted_and_the_hot_tier_stays_bounded() {
        let cold = MemoryStore::new();
        cold.put(b"a", &[1; 100]).unwrap();
        cold.put(b"b", &[2; 100]).unwrap();
        let t = Tiered::new(cold, 150);
        assert_eq!(t.hot_bytes(), 0);
        t.read(b"a").unwrap().unwrap();
        assert_eq!(t.hot_bytes(), 100);
        t.read(b"b").unwrap().unwrap();
        assert_eq!(t.hot_bytes(), 100, "a was evicted from the hot tier");
        assert!(t.hot().map.contains_key(&b"b"[..]));
        // Everything is still in the cold tier.
        assert_eq!(t.get(b"a").unwrap(), Some(vec![1; 100]));
    }

    #[test]
    fn writes_go_through_to_the_cold_tier() {
        let t = Tiered::new(MemoryStore::new(), 1 << 20);
        t.put(b"k", b"v").unwrap();
        assert_eq!(t.cold().get(b"k").unwrap(), Some(b"v".to_vec()));
        t.delete(b"k").unwrap();
        assert_eq!(t.get(b"k").unwrap(), None);
    }

    /// A tier of 1 MiB (values up to 128 KiB enter it) holding ten hot 1 KiB values.
    fn with_ten_hot_values() -> Tiered<MemoryStore> {
        let t = Tiered::new(MemoryStore::new(), 1 << 20);
        assert_eq!(t.max_value(), 128 << 10);
        for i in 0..10u8 {
            t.put(&[i], &[i; 1024]).unwrap();
        }
        assert_eq!(t.hot_bytes(), 10 << 10);
        t
    }

    fn all_ten_still_hot(t: &Tiered<MemoryStore>) -> bool {
        (0..10u8).all(|i| t.hot().map.contains_key(&[i][..]))
    }

    #[test]
    fn a_large_value_read_or_written_never_enters_the_tier_nor_evicts_from_it() {
        // Before the admission limit, any value up to the tier's size was promoted, and a
        // read of one that almost filled the tier pushed every small value out.
        let large = vec![9u8; (1 << 20) - 1024];
        let t = with_ten_hot_values();
        t.cold().put(b"large", &large).unwrap();
        assert_eq!(t.read(b"large").unwrap().unwrap().len(), large.len());
        assert_eq!(t.hot_bytes(), 10 << 10);
        assert!(all_ten_still_hot(&t));

        let mut seen = 0;
        assert!(t.with_value(b"large", &mut |v| seen = v.len()).unwrap());
        assert_eq!(seen, large.len());
        assert_eq!(t.hot_bytes(), 10 << 10);

        t.put(b"written", &large).unwrap();
        t.put_many(&[(b"many", &large[..])]).unwrap();
        assert_eq!(t.hot_bytes(), 10 << 10);
        assert!(all_ten_still_hot(&t));
        assert_eq!(t.get(b"written").unwrap().as_deref(), Some(&large[..]));
    }

    #[test]
    fn a_value_at_the_limit_enters_and_one_byte_over_does_not() {
        let t = Tiered::new(MemoryStore::new(), 1 << 20).with_max_value(1000);
        t.cold().put(b"at", &[1; 1000]).unwrap();
        t.cold().put(b"over", &[2; 1001]).unwrap();
        t.read(b"at").unwrap();
        t.read(b"over").unwrap();
        assert_eq!(t.hot_bytes(), 1000);
        // Small tiers keep admitting what fits: the 64 KiB floor never exceeds the tier.
        assert_eq!(Tiered::new(MemoryStore::new(), 150).max_value(), 150);
        assert_eq!(
            Tiered::new(MemoryStore::new(), 64 << 20).max_value(),
            8 << 20
        );
    }

    #[test]
    fn streamed_and_unchecked_reads_never_enter_the_tier() {
        // `Cache::get_blob` reads through `read_stream`, `Cache::get_blob_mapped` through
        // `read_unchecked`; the latter used to be the default, a promoting `read`.
        let t = Tiered::new(MemoryStore::new(), 1 << 20);
        t.cold().put(b"k", &[1; 100]).unwrap();
        let mut stream = t.read_stream(b"k").unwrap().unwrap();
        std::io::copy(&mut stream, &mut std::io::sink()).unwrap();
        assert_eq!(t.read_unchecked(b"k").unwrap().unwrap().len(), 100);
        assert_eq!(t.hot_bytes(), 0);
        t.put_reader(b"streamed", &mut &[2u8; 100][..]).unwrap();
        assert_eq!(t.hot_bytes(), 0);
        // A checked read promotes it; an unchecked one is then served hot.
        t.read(b"k").unwrap();
        assert_eq!(t.hot_bytes(), 100);
        assert!(t.read_unchecked(b"k").unwrap().is_some());
    }

    #[test]
    fn with_value_promotes_a_small_cold_value() {
        let t = Tiered::new(MemoryStore::new(), 1 << 20);
        t.cold().put(b"k", b"small").unwrap();
        let mut got = Vec::new();
        assert!(t.with_value(b"k", &mut |v| got = v.to_vec()).unwrap());
        assert_eq!(got, b"small");
        assert_eq!(t.hot_bytes(), 5);
        assert!(!t.with_value(b"missing", &mut |_| panic!("called")).unwrap());
    }
}
