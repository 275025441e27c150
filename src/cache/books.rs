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

    /// Opens the books: counts a store written before accounting once, then evicts down to the
    /// limits if the stored totals are over them.
    pub(super) fn open_books(&self) -> Result<()> {
        let acct = self.accounting()?;
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
        let now = self.now_ms();
        report.expired = acct.remove_expired(now, &mut |key| {
            self.ns_stats(key).expirations.fetch_add(1, RELAXED);
        })?;
        report.scanned = report.expired;
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
