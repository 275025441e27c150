//! Entry limits and eviction order: which entry goes first when `max_entries` or `max_bytes`
//! is exceeded.
//!
//! # Two ways to keep the books
//! **In the store** (`LmdbStore`, `HybridStore` — the default store —, a `LogStore`'s writer,
//! `DirStore` with the `lmdb` feature (on by default), and any store whose
//! [`Store::accounting`](cacher_store::Store::accounting) is `Some`): sizes, stamps, read
//! counts, deadlines and the totals live in the store and are updated in each write's own
//! transaction ([`cacher_store::accounting`]). Every process and handle sees one total and
//! one eviction order; [`crate::CacheBuilder::build`] reads the stored total in O(1). A store
//! keeps no accounting (and its writes pay for none) until the first limited cache opens on
//! it: that open turns accounting on for every handle and process and counts the entries
//! already there once, by one scan reported through `tracing` (as for a store written before
//! accounting existed); every later open reads the total. The store keeps the eviction order
//! of the policies in use only (LRU, FIFO or LFU: one order index per write, not three); a
//! cache with another policy opening on it has that order built once from the stored
//! bookkeeping, in chunks, while others go on writing, and from then on the store keeps both. A handle holds no per-entry memory
//! beyond its pending reads. Each write that takes the store over a limit evicts in the store,
//! in chunks, one write transaction each; an entry written by anyone after that pass began is
//! never taken. With several writers at once the
//! store can be over by at most one value per writer between a write's commit and its
//! eviction's.
//!
//! **Reads are recorded in memory and flushed in batches** (`access.rs`): at most
//! [`access::FLUSH_KEYS`] distinct keys, or [`access::FLUSH_EVERY`] (looked at every 64th
//! read) between flushes, and
//! always before this handle evicts, cleans up or is dropped. So within one handle LRU and
//! LFU are exact; another process sees this handle's reads only once they are flushed (within
//! a second of the next read, or at drop). A read recorded by a flush counts as an access
//! later than every write before the flush: an entry read and flushed is never evicted before
//! one that was never read since it was written earlier. History survives restarts (it is in
//! the store). [`crate::Cache::cleanup`] walks the store's expiry index instead of every
//! key, finding entries by the deadline they were written with; under a cache TTL (or
//! deadline) it also walks the store's undated index (entries written with no deadline,
//! oldest write first, built once by the first such cleanup) and stops at the first value
//! the TTL leaves fresh.
//!
//! A `LogStore` keeps them its own way (`backends/src/log/books.rs`): one writer process
//! holds the log, its index counts entries and value bytes, the log's record order is the
//! write order (evictions walk it from a cursor), and reads are kept by the writer in memory
//! and in the `<log>.access` sidecar, one batch per flush, so history survives a restart.
//! It keeps no deadlines: `cleanup` reads headers for expiry, then evicts by the totals. A
//! read-only `LogStore` handle offers no accounting and keeps its books in memory, as below.
//!
//! **In memory** (every other store): the order
//! is kept per handle: a hit updates a `BTreeSet` (O(log n), no disk write). Memory: about
//! `2 × key length + 80` bytes per tracked entry. When a cache is opened, the tracker is
//! rebuilt by one scan of the store (keys, sizes and the envelope headers, not the payloads):
//! LRU and FIFO order then start from write time, and LFU counts start at zero. Entries
//! written by other processes after the scan are not tracked by this handle until
//! [`crate::Cache::cleanup`] rescans; each handle enforces the limits on what it knows.
//! What that means per store:
//! - `MemoryStore` lives in one process, so one handle's books are the store's (several
//!   handles on one `MemoryStore` each keep their own and each enforce the limits on what
//!   they wrote or found at open).
//! - `DirStore` built without the `lmdb` feature: each handle enforces the limits on what it
//!   knows, and `cleanup` rescans the directory. With it (the default), a DirStore keeps its
//!   books in a sidecar `LmdbStore` under `<root>/acct/` (one record per entry file, its
//!   renames and unlinks inside the sidecar's transactions), made by the first limited cache
//!   on the store (which also marks the store layout 2, so older builds refuse it rather
//!   than write past its records): one total for every process, as above.
//! - `TieredStore` offers no accounting (its cold store's books would evict from the cold
//!   tier only, while the hot copy went on answering): books in memory per handle, over
//!   what its `keys` lists (the cold store's).
//! - `RedisStore` has no accounting: bound the server with `maxmemory` and a
//!   `maxmemory-policy` such as `allkeys-lru` (README, "Sharing a cache between machines"),
//!   which evicts across every client; a cache limit on it is per handle, as above.

pub(crate) mod access;

/// What a limited cache on a store with accounting keeps: its policy and its pending reads.
#[derive(Debug)]
pub(crate) struct StoreBooks {
    pub(crate) eviction: Eviction,
    pub(crate) reads: access::AccessLog,
}

impl StoreBooks {
    pub(crate) fn new(eviction: Eviction) -> Self {
        StoreBooks {
            eviction,
            reads: access::AccessLog::new(),
        }
    }
}

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// Which entry is evicted first when a limit is exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Eviction {
    /// Least recently used (read or written) first.
    #[default]
    Lru,
    /// Least frequently read first; ties go to the least recently used.
    Lfu,
    /// Oldest written first, whatever the reads.
    Fifo,
}

impl Eviction {
    /// The store's order for this policy.
    pub(crate) fn order(self) -> cacher_store::accounting::Order {
        use cacher_store::accounting::Order;
        match self {
            Eviction::Lru => Order::Lru,
            Eviction::Lfu => Order::Lfu,
            Eviction::Fifo => Order::Fifo,
        }
    }
}

type Key = Arc<[u8]>;

#[derive(Debug, Clone, Copy)]
struct Info {
    size: u64,
    /// The primary sort value: the touch sequence (LRU), the insert sequence (FIFO), or the
    /// hit count (LFU).
    rank: u64,
    /// Tie-breaker and LRU position: the sequence number of the last touch.
    seq: u64,
}

/// Tracks sizes and eviction order of the entries a cache knows about.
#[derive(Debug)]
pub(crate) struct Tracker {
    policy: Eviction,
    entries: HashMap<Key, Info>,
    order: BTreeSet<(u64, u64, Key)>,
    bytes: u64,
    seq: u64,
}

impl Tracker {
    pub fn new(policy: Eviction) -> Self {
        Tracker {
            policy,
            entries: HashMap::new(),
            order: BTreeSet::new(),
            bytes: 0,
            seq: 0,
        }
    }

    pub fn policy(&self) -> Eviction {
        self.policy
    }

    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Records a write of `size` bytes under `key` (new or replacing).
    pub fn insert(&mut self, key: &[u8], size: u64) {
        let seq = self.next_seq();
        let (key, rank) = match self.entries.get_key_value(key) {
            Some((k, info)) => {
                let k = k.clone();
                let old = *info;
                self.order.remove(&(old.rank, old.seq, k.clone()));
                self.bytes -= old.size;
                // An overwrite keeps an LFU count; for LRU and FIFO it is a new write.
                let rank = match self.policy {
                    Eviction::Lfu => old.rank,
                    Eviction::Lru | Eviction::Fifo => seq,
                };
                (k, rank)
            }
            None => {
                let rank = match self.policy {
                    Eviction::Lfu => 0,
                    Eviction::Lru | Eviction::Fifo => seq,
                };
                (Key::from(key), rank)
            }
        };
        self.bytes += size;
        self.order.insert((rank, seq, key.clone()));
        self.entries.insert(key, Info { size, rank, seq });
    }

    /// Makes the tracked set equal `live` (`(created_ms, key, size)`, sorted by age, as found
    /// by a scan): drops keys no longer stored, adds new ones in age order, updates sizes.
    /// Keys already tracked keep their place, so a cleanup pass keeps LRU/LFU history.
    pub fn sync(&mut self, live: &[(u64, Vec<u8>, u64)]) {
        let present: std::collections::HashSet<&[u8]> =
            live.iter().map(|(_, k, _)| &k[..]).collect();
        let gone: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| !present.contains(&k[..]))
            .cloned()
            .collect();
        for k in gone {
            self.remove(&k);
        }
        for (_, key, size) in live {
            match self.entries.get_mut(&key[..]) {
                Some(info) => {
                    self.bytes = self.bytes - info.size + size;
                    info.size = *size;
                }
                None => self.insert(key, *size),
            }
        }
    }

    /// Records a read hit of `key`.
    pub fn touch(&mut self, key: &[u8]) {
        if self.policy == Eviction::Fifo {
            return;
        }
        let seq = self.next_seq();
        if let Some((k, info)) = self.entries.get_key_value(key) {
            let k = k.clone();
            let old = *info;
            self.order.remove(&(old.rank, old.seq, k.clone()));
            let rank = match self.policy {
                Eviction::Lfu => old.rank + 1,
                _ => seq,
            };
            self.order.insert((rank, seq, k.clone()));
            self.entries.insert(k, Info { rank, seq, ..old });
        }
    }

    /// Forgets `key` (deleted or expired).
    pub fn remove(&mut self, key: &[u8]) {
        if let Some((k, info)) = self.entries.remove_entry(key) {
            self.order.remove(&(info.rank, info.seq, k));
            self.bytes -= info.size;
        }
    }

    /// Pops entries, first in eviction order, until at most `max_entries` entries and
    /// `max_bytes` bytes remain; returns the keys to delete. `keep` is never chosen (the entry
    /// just written), unless it alone exceeds `max_bytes`.
    pub fn over_limits(
        &mut self,
        max_entries: Option<u64>,
        max_bytes: Option<u64>,
        keep: Option<&[u8]>,
    ) -> Vec<Key> {
        let mut victims = Vec::new();
        let over = |t: &Tracker| {
            max_entries.is_some_and(|m| t.len() > m) || max_bytes.is_some_and(|m| t.bytes > m)
        };
        while over(self) {
            let victim = self
                .order
                .iter()
                .find(|(_, _, k)| Some(&k[..]) != keep)
                .or_else(|| self.order.iter().next())
                .map(|(_, _, k)| k.clone());
            let Some(victim) = victim else { break };
            self.remove(&victim);
            victims.push(victim);
        }
        victims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evict(t: &mut Tracker, max: u64) -> Vec<Vec<u8>> {
        t.over_limits(Some(max), None, None)
            .into_iter()
            .map(|k| k.to_vec())
            .collect()
    }

    #[test]
    fn lru_evicts_the_least_recently_used() {
        let mut t = Tracker::new(Eviction::Lru);
        for k in [b"a", b"b", b"c"] {
            t.insert(k, 1);
        }
        t.touch(b"a");
        assert_eq!(evict(&mut t, 2), vec![b"b".to_vec()]);
        t.touch(b"c");
        assert_eq!(evict(&mut t, 1), vec![b"a".to_vec()]);
    }

    #[test]
    fn lfu_evicts_the_least_frequently_used() {
        let mut t = Tracker::new(Eviction::Lfu);
        for k in [b"a", b"b", b"c"] {
            t.insert(k, 1);
        }
        t.touch(b"a");
        t.touch(b"a");
        t.touch(b"b");
        t.touch(b"c");
        t.touch(b"c");
        assert_eq!(evict(&mut t, 2), vec![b"b".to_vec()]);
    }

    #[test]
    fn fifo_ignores_reads() {
        let mut t = Tracker::new(Eviction::Fifo);
        for k in [b"a", b"b", b"c"] {
            t.insert(k, 1);
        }
        t.touch(b"a");
        assert_eq!(evict(&mut t, 2), vec![b"a".to_vec()]);
    }

    #[test]
    fn sync_keeps_the_order_of_known_entries_and_forgets_deleted_ones() {
        let mut t = Tracker::new(Eviction::Lru);
        for k in [b"a", b"b", b"c"] {
            t.insert(k, 1);
        }
        t.touch(b"a");
        // A scan finds b gone, a and c still there (c resized), and a new entry d.
        t.sync(&[
            (1, b"a".to_vec(), 1),
            (2, b"c".to_vec(), 5),
            (3, b"d".to_vec(), 1),
        ]);
        assert_eq!((t.len(), t.bytes()), (3, 7));
        // LRU order is c (written before a was read), a, d.
        assert_eq!(evict(&mut t, 2), vec![b"c".to_vec()]);
        assert_eq!(evict(&mut t, 1), vec![b"a".to_vec()]);
    }

    #[test]
    fn byte_limit_counts_sizes_and_overwrites() {
        let mut t = Tracker::new(Eviction::Lru);
        t.insert(b"a", 60);
        t.insert(b"b", 30);
        t.insert(b"a", 10);
        assert_eq!(t.bytes(), 40);
        t.insert(b"c", 70);
        let v = t.over_limits(None, Some(100), Some(b"c"));
        assert_eq!(v.len(), 1);
        assert_eq!(&v[0][..], b"b");
        assert_eq!(t.bytes(), 80);
    }
}
