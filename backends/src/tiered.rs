//! [`Tiered`]: a bounded memory tier in front of a disk tier.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::{Blob, EntryMeta, KeyIter, Result, Store};

/// A store made of a hot in-memory tier in front of a cold store (usually on disk).
///
/// - Reads try the hot tier, then the cold one; a cold hit is promoted into the hot tier.
/// - Writes go through to the cold store first (so nothing is only in memory), then to the
///   hot tier. Deletes remove from both.
/// - The hot tier holds at most `hot_bytes` bytes, least recently used out first. It keeps
///   values as shared buffers, so a hot hit lends the bytes without copying.
/// - Iteration, `len` and `flush` are the cold store's: it holds everything.
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
}

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
    pub fn new(cold: C, hot_bytes: u64) -> Self {
        Tiered {
            cold,
            hot: Arc::new(Mutex::new(Hot::default())),
            hot_bytes,
        }
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

    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        if let Some(v) = self.hot().get(key) {
            return Ok(Some(Blob::from(v)));
        }
        let epoch = self.hot().epoch;
        let Some(blob) = self.cold.read(key)? else {
            return Ok(None);
        };
        if blob.len() as u64 <= self.hot_bytes {
            let shared: Arc<[u8]> = Arc::from(&blob[..]);
            let mut hot = self.hot();
            if hot.epoch == epoch {
                hot.insert(key, shared.clone(), self.hot_bytes);
            }
            return Ok(Some(Blob::from(shared)));
        }
        Ok(Some(blob))
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
        if hot.epoch == epoch {
            hot.insert(key, Arc::from(value), self.hot_bytes);
        } else {
            // Another write raced this one; which reached the cold tier last is unknown, so
            // keep neither hot: the next read promotes whatever the cold tier holds.
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
            if hot.epoch == epoch {
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
}
