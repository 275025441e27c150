//! Limits kept by the store's own accounting (`src/limits/` explains both ways): opening in
//! O(1), recording reads in batches, evicting and cleaning up in the store.

use cacher_store::accounting::{Accounting, Described, EvictPlan};

use super::{Cache, CleanupReport, Inner};
use crate::report::ErrorKind;
use crate::stats::RELAXED;
use crate::{Error, Result};

/// How often a migration reports progress through `tracing`, in entries.
const PROGRESS_EVERY: u64 = 100_000;

impl Cache {
    /// The store's accounting; only called when `books` is set, which `build` sets only for
    /// a store that has one.
    fn accounting(&self) -> Result<&dyn Accounting> {
        self.inner
            .store
            .accounting()
            .ok_or_else(|| Error::Config("the store stopped offering its accounting".into()))
    }

    /// Opens the books: has the store keep this cache's eviction order (turning accounting on
    /// for that order, or building the order once when the store keeps others only), counts a
    /// store written before accounting once, then evicts down to the limits if the stored
    /// totals are over them.
    pub(super) fn open_books(&self) -> Result<()> {
        let acct = self.accounting()?;
        if let Some(books) = &self.inner.books {
            let mut next_report = PROGRESS_EVERY;
            acct.keep_order(books.eviction.order(), &mut |indexed| {
                if indexed >= next_report {
                    tracing::info!(entries = indexed, "building the store's eviction order");
                    next_report = indexed + PROGRESS_EVERY;
                }
            })?;
        }
        if !acct.totals()?.built {
            tracing::info!("counting the entries of a store written before accounting (once)");
            let codec = &self.inner.codec;
            let mut describe = |key: &[u8], value: &[u8]| match codec.peek(key, value) {
                Ok(m) => Described::new(Some(m.created_ms), m.expires_ms),
                Err(_) => Described::default(),
            };
            let mut next_report = PROGRESS_EVERY;
            let mut progress = |looked: u64| {
                if looked >= next_report {
                    tracing::info!(entries = looked, "counting the store's entries");
                    next_report = looked + PROGRESS_EVERY;
                }
            };
            let added = acct.build(&mut describe, &mut progress)?;
            tracing::info!(entries = added, "the store's entries are counted");
        }
        self.evict_in_store(None)
    }

    /// Records a read hit for the store's eviction order (in memory, flushed in batches).
    pub(super) fn note_read(&self, key: &[u8]) {
        let Some(books) = &self.inner.books else {
            return;
        };
        if books.eviction == crate::Eviction::Fifo {
            return;
        }
        if books.reads.touch(key) {
            if let Err(e) = self.flush_reads() {
                let stats = self.ns_stats(key);
                self.inner
                    .reported
                    .swallowed(&stats, "", ErrorKind::Read, &e);
            }
        }
    }

    /// Gives the pending reads to the store (kept for the next try if it fails).
    pub(super) fn flush_reads(&self) -> Result<()> {
        let Some(books) = &self.inner.books else {
            return Ok(());
        };
        let reads = books.reads.take();
        if reads.is_empty() {
            return Ok(());
        }
        let borrowed: Vec<(&[u8], u32)> = reads.iter().map(|(k, n)| (&k[..], *n)).collect();
        match self.accounting()?.record_access(&borrowed) {
            Ok(()) => Ok(()),
            Err(e) => {
                books.reads.put_back(reads);
                Err(e.into())
            }
        }
    }

    /// Evicts in the store down to the limits, never `keep`; counts each eviction.
    pub(super) fn evict_in_store(&self, keep: Option<&[u8]>) -> Result<()> {
        let Some(books) = &self.inner.books else {
            return Ok(());
        };
        let acct = self.accounting()?;
        let mut plan = EvictPlan::new(
            self.inner.max_entries,
            self.inner.max_bytes,
            books.eviction.order(),
        );
        if let Some(k) = keep {
            plan = plan.keep(k);
        }
        if !plan.is_over(&acct.totals()?) {
            return Ok(());
        }
        // The order must see this handle's reads before it picks.
        self.flush_reads()?;
        acct.evict(&plan, &mut |victim| {
            self.ns_stats(victim).evictions.fetch_add(1, RELAXED);
        })?;
        Ok(())
    }

    /// [`Cache::cleanup`] on a store with accounting: the expiry index, then the limits.
    /// `None` when the store has no (complete) accounting and must be scanned.
    pub(super) fn cleanup_in_store(&self) -> Result<Option<CleanupReport>> {
        let Some(acct) = self.inner.store.accounting() else {
            return Ok(None);
        };
        if !acct.totals()?.built {
            return Ok(None);
        }
        self.flush_reads()?;
        let mut report = CleanupReport::default();
        if acct.keeps_deadlines() {
            let now = self.now_ms();
            report.expired = acct.remove_expired(now, &mut |key| {
                self.ns_stats(key).expirations.fetch_add(1, RELAXED);
            })?;
            report.scanned = report.expired;
            if self.inner.ttl.is_some() || self.inner.deadline_ms.is_some() {
                self.expire_undated(acct, now, &mut report)?;
            }
        } else {
            // No expiry index (LogStore): the headers tell, as without accounting.
            self.expire_by_scan(&mut report)?;
        }
        if let Some(books) = &self.inner.books {
            let plan = EvictPlan::new(
                self.inner.max_entries,
                self.inner.max_bytes,
                books.eviction.order(),
            );
            report.evicted = acct.evict(&plan, &mut |victim| {
                self.ns_stats(victim).evictions.fetch_add(1, RELAXED);
            })?;
        }
        Ok(Some(report))
    }
}

/// Undated entries looked at per [`Accounting::undated`] call.
const UNDATED_CHUNK: usize = 1024;

impl Cache {
    /// The part of cleanup the expiry index cannot do: values written with no deadline, which
    /// this cache's TTL (or deadline) makes stale all the same (written before the TTL was
    /// set, or by a cache without one). Walks them oldest write first, reading each header,
    /// and stops at the first that is not stale under the TTL alone: every later one was
    /// written after it. (Write order follows `created_ms` as far as the writers' clocks
    /// agree; one stepped back stops the walk early, and the next cleanup goes on.) A value
    /// rewritten since it was listed is kept (compared in the deleting transaction).
    fn expire_undated(
        &self,
        acct: &dyn Accounting,
        now: u64,
        report: &mut CleanupReport,
    ) -> Result<()> {
        let mut after = None;
        loop {
            let listed = acct.undated(after, UNDATED_CHUNK)?;
            for (key, written) in &listed {
                after = Some(*written);
                if super::revisions::is_revision_key(key) {
                    continue;
                }
                report.scanned += 1;
                let Some((header, _)) = self.peek(key)? else {
                    continue;
                };
                match header {
                    Ok(h) if h.expires_ms.is_some() => {}
                    Ok(h) if self.is_expired(&h, now) => {
                        if acct.remove_if_written(key, *written)? {
                            self.ns_stats(key).expirations.fetch_add(1, RELAXED);
                            report.expired += 1;
                        }
                    }
                    Ok(_) => return Ok(()),
                    Err(_) => report.unreadable += 1,
                }
            }
            if listed.len() < UNDATED_CHUNK {
                return Ok(());
            }
        }
    }
}

impl Drop for Inner {
    /// The last handle gives its pending reads to the store, so history survives a restart.
    fn drop(&mut self) {
        let (Some(books), Some(acct)) = (&self.books, self.store.accounting()) else {
            return;
        };
        let reads = books.reads.take();
        let borrowed: Vec<(&[u8], u32)> = reads.iter().map(|(k, n)| (&k[..], *n)).collect();
        if let Err(e) = acct.record_access(&borrowed) {
            tracing::warn!(error = %e, "the last reads of a cache handle could not be recorded");
        }
    }
}

#[cfg(all(test, feature = "lmdb"))]
mod tests {
    use cacher_store::lmdb::{LmdbOptions, LmdbStore};
    use cacher_store::Durability;

    use crate::{Cache, Eviction};

    /// The keys of the store's accounting database that start with `tag` (an order index).
    fn order_keys(store: &LmdbStore, tag: u8) -> usize {
        let env = store.env();
        let db = env.create_database("cacher-store-acct").unwrap();
        env.read(|r| Ok::<_, cacher_store::lmdb::TxnError>(db.prefix_iter(r, &[tag])?.count()))
            .unwrap()
    }

    #[test]
    fn a_cache_opening_with_another_policy_has_its_order_built_and_evicts_by_it() {
        let dir = tempfile::tempdir().unwrap();
        let options = LmdbOptions::default().with_durability(Durability::None);
        let store = LmdbStore::open_with(dir.path(), &options).unwrap();
        let lru = Cache::builder()
            .store(store.clone())
            .max_entries(10)
            .build()
            .unwrap();
        for i in 0..5 {
            lru.put(format!("k{i}"), &i).unwrap();
        }
        assert_eq!(lru.get::<i32>("k0").unwrap(), Some(0));
        drop(lru);
        // An LRU cache keeps the LRU order only.
        assert_eq!(order_keys(&store, b'l'), 5);
        assert_eq!(order_keys(&store, b'w'), 0, "no FIFO order kept for LRU");
        let fifo = Cache::builder()
            .store(store.clone())
            .max_entries(3)
            .eviction(Eviction::Fifo)
            .build()
            .unwrap();
        // The open built the FIFO order, then evicted the two oldest writes (LRU would have
        // kept k0, read last).
        assert_eq!(order_keys(&store, b'w'), 3);
        assert_eq!(order_keys(&store, b'f'), 0, "LFU never asked for");
        assert_eq!(fifo.get::<i32>("k0").unwrap(), None);
        assert_eq!(fifo.get::<i32>("k1").unwrap(), None);
        assert_eq!(fifo.get::<i32>("k2").unwrap(), Some(2));
    }

    #[test]
    fn cleanup_under_a_ttl_set_later_removes_values_written_without_a_deadline() {
        use std::time::Duration;

        use crate::ManualClock;
        for hybrid in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let open = || -> Box<dyn cacher_store::Store> {
                if hybrid {
                    Box::new(cacher_store::HybridStore::open(dir.path()).unwrap())
                } else {
                    let options = LmdbOptions::default().with_durability(Durability::None);
                    Box::new(LmdbStore::open_with(dir.path(), &options).unwrap())
                }
            };
            let clock = ManualClock::new(1_000);
            // A limited cache with no TTL turns the store's accounting on and writes values
            // with no deadline.
            let untimed = Cache::builder()
                .store(open())
                .max_entries(100)
                .clock(clock.clone())
                .build()
                .unwrap();
            untimed.put("old", &1).unwrap();
            untimed.put("older-rewritten", &1).unwrap();
            clock.set(4_500);
            untimed.put("young", &2).unwrap();
            untimed.put("older-rewritten", &3).unwrap();
            clock.set(5_000);
            let timed = Cache::builder()
                .store(open())
                .max_entries(100)
                .ttl(Duration::from_secs(1))
                .clock(clock.clone())
                .build()
                .unwrap();
            timed.put("dated", &4).unwrap();
            let report = timed.cleanup().unwrap();
            assert_eq!(report.expired, 1, "hybrid: {hybrid}");
            assert_eq!(timed.store().len().unwrap(), 3, "hybrid: {hybrid}");
            assert_eq!(timed.get::<i32>("young").unwrap(), Some(2));
            assert_eq!(timed.get::<i32>("older-rewritten").unwrap(), Some(3));
            assert_eq!(timed.get::<i32>("dated").unwrap(), Some(4));
            // Nothing left to find: the walk stops at the first fresh value.
            assert_eq!(timed.cleanup().unwrap().expired, 0);
        }
    }
}

/// A limited cache on a `LogStore`: the writer's books (`backends/src/log/books.rs`).
#[cfg(test)]
mod log_tests {
    use std::time::Duration;

    use cacher_store::{Durability, LogStore};

    use crate::{Cache, ManualClock};

    fn log(path: &std::path::Path) -> LogStore {
        LogStore::options()
            .durability(Durability::None)
            .open(path)
            .unwrap()
    }

    #[test]
    fn a_limited_cache_on_a_log_store_keeps_read_history_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        let cache = Cache::builder()
            .store(log(&path))
            .max_entries(5)
            .build()
            .unwrap();
        for i in 0..5 {
            cache.put(format!("k{i}"), &i).unwrap();
        }
        assert_eq!(cache.get::<i32>("k0").unwrap(), Some(0));
        drop(cache); // the last handle flushes its reads to the store
                     // A new process: the store's books say k0 was read after k1 was written, so the
                     // write of k5 evicts k1. Books rebuilt per handle from write times would take k0.
        let cache = Cache::builder()
            .store(log(&path))
            .max_entries(5)
            .build()
            .unwrap();
        cache.put("k5", &5).unwrap();
        assert_eq!(cache.get::<i32>("k0").unwrap(), Some(0));
        assert_eq!(cache.get::<i32>("k1").unwrap(), None);
        assert_eq!(cache.stats().total.evictions, 1);
    }

    #[test]
    fn cleanup_on_a_log_store_finds_expired_entries_by_their_headers() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000);
        let cache = Cache::builder()
            .store(log(&dir.path().join("store.log")))
            .max_entries(10)
            .ttl(Duration::from_secs(1))
            .clock(clock.clone())
            .build()
            .unwrap();
        cache.put("old", &1).unwrap();
        clock.advance(Duration::from_secs(2));
        cache.put("new", &2).unwrap();
        // The store keeps no deadlines: its books must not be asked for an expiry index.
        let report = cache.cleanup().unwrap();
        assert_eq!(report.expired, 1);
        assert_eq!(report.scanned, 2);
        assert_eq!(cache.store().len().unwrap(), 1);
    }
}
