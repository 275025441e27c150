//! Reading and writing one entry: envelope check, expiry, stats, and the limits tracker.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use cacher_formats::EnvelopeMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Cache;
use crate::limits::Tracker;
use crate::stats::{Atomics, RELAXED};
use crate::{Error, Result};

impl Cache {
    /// Reads and decodes `key`; an expired value counts as a miss and is removed.
    ///
    /// With `expect` (a memoized call's type fingerprint), a value recorded as another type is
    /// a miss counted in `mismatches`, and so is a value recorded without a fingerprint (an
    /// envelope-v1 value, a plain `put`) that does not decode as `T`: the caller recomputes and
    /// overwrites, never decodes someone else's bytes into a wrong value.
    pub(crate) fn lookup<T: DeserializeOwned>(
        &self,
        key: &[u8],
        stats: &Atomics,
        expect: Option<u64>,
    ) -> Result<Option<T>> {
        let start = Instant::now();
        let Some(blob) = self.inner.store.read(key)? else {
            self.missing(key, stats);
            return Ok(None);
        };
        self.decode_found(key, blob, stats, expect, start)
    }

    /// Reads and decodes many keys with one [`Store::get_many`](cacher_store::Store::get_many)
    /// (one read transaction on LMDB), each checked as [`Cache::lookup`] checks one: a missing,
    /// expired or mismatched value is `None`, in the order of `keys`.
    pub(crate) fn lookup_many<T: DeserializeOwned>(
        &self,
        keys: &[&[u8]],
        stats: &Atomics,
        expect: Option<u64>,
    ) -> Result<Vec<Option<T>>> {
        let start = Instant::now();
        let found = self.inner.store.get_many(keys)?;
        if found.len() != keys.len() {
            // A store breaking the get_many contract must not shift values onto other keys.
            return Err(Error::Config(format!(
                "the store's get_many returned {} values for {} keys",
                found.len(),
                keys.len()
            )));
        }
        keys.iter()
            .zip(found)
            .map(|(key, bytes)| match bytes {
                None => {
                    self.missing(key, stats);
                    Ok(None)
                }
                Some(bytes) => self.decode_found(key, bytes, stats, expect, start),
            })
            .collect()
    }

    fn missing(&self, key: &[u8], stats: &Atomics) {
        stats.misses.fetch_add(1, RELAXED);
        // Deleted behind our back (another process, a store-level delete).
        self.with_tracker(|t| t.remove(key));
    }

    /// Checks and decodes the stored bytes of `key` (see [`Cache::lookup`]).
    fn decode_found<T: DeserializeOwned>(
        &self,
        key: &[u8],
        blob: impl std::ops::Deref<Target = [u8]>,
        stats: &Atomics,
        expect: Option<u64>,
        start: Instant,
    ) -> Result<Option<T>> {
        let (header, payload) = self
            .inner
            .codec
            .open(key, &blob)
            .map_err(|e| Error::format(key, e))?;
        if self.is_expired(&header.meta(), self.now_ms()) {
            // A lent view (an LMDB read transaction) ends before the delete below.
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
        let mismatch = || {
            stats.misses.fetch_add(1, RELAXED);
            stats.mismatches.fetch_add(1, RELAXED);
            Ok(None)
        };
        if let (Some(want), Some(have)) = (expect, header.type_fingerprint()) {
            if want != have {
                return mismatch();
            }
        }
        let value = match self.inner.codec.decode(&header, payload) {
            Ok(v) => v,
            // The type's shape changed under the same name, or an untyped old value: for a
            // memoized call that is a miss, not an error on every call.
            Err(
                cacher_formats::Error::Decode { .. } | cacher_formats::Error::TypeMismatch { .. },
            ) if expect.is_some() => return mismatch(),
            Err(e) => return Err(Error::format(key, e)),
        };
        stats.hits.fetch_add(1, RELAXED);
        stats.bytes_read.fetch_add(blob.len() as u64, RELAXED);
        stats.add_read(start.elapsed());
        self.with_tracker(|t| t.touch(key));
        self.note_read(key);
        Ok(Some(value))
    }

    /// Encodes and writes `value`; `expires_ms` overrides the cache's TTL for this value, and
    /// `fingerprint` (a memoized call's) records the value's type.
    pub(crate) fn store_value<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        expires_ms: Option<u64>,
        fingerprint: Option<u64>,
        stats: &Atomics,
    ) -> Result<()> {
        let bytes = self.encode_entry(key, value, expires_ms, fingerprint)?;
        self.put_encoded(key, &bytes, stats)
    }

    /// The envelope of `value` as [`Cache::store_value`] would write it, without writing:
    /// the cheap half of a store, so the slow half ([`Cache::put_encoded`]) can run elsewhere
    /// (an async caller's blocking pool).
    pub(crate) fn encode_entry<T: Serialize + ?Sized>(
        &self,
        key: &[u8],
        value: &T,
        expires_ms: Option<u64>,
        fingerprint: Option<u64>,
    ) -> Result<Vec<u8>> {
        let now = self.now_ms();
        let header = EnvelopeMeta {
            created_ms: now,
            expires_ms: self.expiry_of_new_value(now, expires_ms),
            revision: 0,
            type_fingerprint: fingerprint.filter(|&f| f != 0),
        };
        self.inner
            .codec
            .encode(key, value, &header)
            .map_err(|e| Error::format(key, e))
    }

    /// Writes bytes made by [`Cache::encode_entry`], counts them and enforces the limits.
    pub(crate) fn put_encoded(&self, key: &[u8], bytes: &[u8], stats: &Atomics) -> Result<()> {
        // The deadline lets a store with native expiry (Redis) drop the value itself; it is
        // read back from the header just encoded, so async and batch writers pass it too.
        let deadline = self
            .inner
            .codec
            .peek(key, bytes)
            .ok()
            .and_then(|m| m.expires_ms);
        self.inner.store.put_with_deadline(key, bytes, deadline)?;
        stats.stores.fetch_add(1, RELAXED);
        stats.bytes_written.fetch_add(bytes.len() as u64, RELAXED);
        self.enforce_limits(key, bytes.len() as u64)
    }

    /// Writes many encoded entries with one [`Store::put_many`](cacher_store::Store::put_many)
    /// (one transaction or one sync where the store allows), then counts them and enforces
    /// the limits once per entry.
    pub(crate) fn put_many_encoded(
        &self,
        entries: &[(&[u8], &[u8])],
        stats: &Atomics,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.inner.store.accounting().is_some() {
            // With each entry's deadline, as `put_encoded` passes one, so the store's expiry
            // index sees batch writes too (`src/limits/`).
            let with_deadlines: Vec<(&[u8], &[u8], Option<u64>)> = entries
                .iter()
                .map(|(k, v)| {
                    let deadline = self.inner.codec.peek(k, v).ok().and_then(|m| m.expires_ms);
                    (*k, *v, deadline)
                })
                .collect();
            self.inner.store.put_many_with_deadlines(&with_deadlines)?;
        } else {
            self.inner.store.put_many(entries)?;
        }
        for (key, bytes) in entries {
            stats.stores.fetch_add(1, RELAXED);
            stats.bytes_written.fetch_add(bytes.len() as u64, RELAXED);
            self.enforce_limits(key, bytes.len() as u64)?;
        }
        Ok(())
    }

    pub(super) fn enforce_limits(&self, key: &[u8], size: u64) -> Result<()> {
        if self.inner.books.is_some() {
            // The store counted the write in its own transaction.
            return self.evict_in_store(Some(key));
        }
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

    pub(super) fn with_tracker(&self, f: impl FnOnce(&mut Tracker)) {
        if let Some(tracker) = &self.inner.tracker {
            f(&mut lock(tracker));
        }
    }

    /// `key`'s envelope header (or why it does not parse) and stored size, read through
    /// [`Store::with_value`] so no store copies the value just to look at its header.
    pub(super) fn peek(
        &self,
        key: &[u8],
    ) -> Result<Option<(Result<EnvelopeMeta, cacher_formats::Error>, u64)>> {
        let mut seen = None;
        self.inner.store.with_value(key, &mut |bytes| {
            seen = Some((self.inner.codec.peek(key, bytes), bytes.len() as u64));
        })?;
        Ok(seen)
    }
}

pub(super) fn lock(m: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    // The tracker is advisory (eviction order); a panic mid-update cannot lose stored data.
    m.lock().unwrap_or_else(|p| p.into_inner())
}
