//! Sweeping the store: [`Cache::cleanup`] removes expired entries and evicts down to the
//! limits; [`Cache::spawn_cleanup`] runs it on a background thread.

use std::sync::Arc;
use std::time::Duration;

use super::entry::lock;
use super::Cache;
use crate::report::ErrorKind;
use crate::stats::RELAXED;
use crate::Result;

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
    /// Entries whose header could not be read or checked (damaged, or refused by the MAC key);
    /// left in place, and reported by `get` as the error they are.
    pub unreadable: u64,
}

impl Cache {
    /// Removes expired entries and evicts down to the limits. On a store that keeps
    /// accounting with deadlines (`LmdbStore`, `HybridStore`), walks its expiry index and
    /// evicts by its totals (`scanned` is then the entries found due); on a store whose
    /// accounting keeps no deadlines (`LogStore`), reads every header for expiry, then evicts
    /// by its totals; on any other store, rescans the store so entries written by other
    /// processes are counted, reading headers only, never payloads.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        if let Some(report) = self.cleanup_in_store()? {
            return Ok(report);
        }
        let mut report = CleanupReport::default();
        let mut live = self.expire_by_scan(&mut report)?;
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

    /// Removes expired entries by reading every key's header (never a payload), counting in
    /// `report`; returns the live entries as `(created_ms, key, size)`.
    pub(super) fn expire_by_scan(
        &self,
        report: &mut CleanupReport,
    ) -> Result<Vec<(u64, Vec<u8>, u64)>> {
        let now = self.now_ms();
        let keys: Vec<Vec<u8>> = self.inner.store.keys()?.collect::<Result<_, _>>()?;
        let mut live = Vec::with_capacity(keys.len());
        for key in keys {
            // Revision records and manifests (`revisions/`) are history, not entries: their
            // envelopes are bound to their user key, and `keep_revisions` bounds them.
            if super::revisions::is_revision_key(&key) {
                continue;
            }
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
        Ok(live)
    }

    /// Runs [`Cache::cleanup`] on a background thread at once and then every `interval`,
    /// until the returned handle is dropped. Errors are counted in the stats (`errors`), the first one is logged through `tracing`, and
    /// the pass is retried next time.
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
                    if let Err(e) = cache.cleanup() {
                        cache.inner.reported.swallowed(
                            &cache.ns_stats(b""),
                            "",
                            ErrorKind::Cleanup,
                            &e,
                        );
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
