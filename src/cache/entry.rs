//! Reading and writing one entry: envelope check, expiry, stats, and the limits tracker.

use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use cacher_formats::EnvelopeMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Cache;
use crate::limits::Tracker;
use crate::stats::{Atomics, Stripe, RELAXED};
use crate::{Error, Result};

/// An envelope made by [`Cache::encode_entry`], with the expiry deadline it records: the
/// deadline lets a store with native expiry (Redis) drop the value itself, and travels with
/// the bytes so no writer (inline, async offload, batch) parses the header it just wrote.
pub(crate) struct Encoded {
    pub(crate) bytes: Vec<u8>,
    pub(crate) deadline_ms: Option<u64>,
}

/// Who has checked bytes given to [`Cache::open_entry`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// The store did ([`Store::with_value`](cacher_store::Store::with_value), `get_many`).
    Store,
    /// Nobody yet ([`Store::with_value_unchecked`](cacher_store::Store::with_value_unchecked)):
    /// only a key-bound envelope (version 2 or later) that opens for the key is trusted,
    /// anything else is [`Opened::Recheck`].
    Envelope,
}

/// What [`Cache::open_entry`] made of a value's bytes, decided while they are lent.
enum Opened<T> {
    Hit(T),
    Expired,
    /// Stored as another type, or not decodable as the memoized call's type.
    Mismatch,
    /// Unchecked bytes that are not a key-bound envelope (version 2 or later) for the key, or
    /// were refused: read them again through the store's checked path.
    Recheck,
}

/// How often a hit is timed for [`Counters::read_time`](crate::Counters::read_time): two clock
/// reads on every hit cost about as much as the rest of the bookkeeping, so one hit in
/// `READ_SAMPLE` is timed and counted `READ_SAMPLE` times (the first hit of a namespace on
/// each thread is always timed).
const READ_SAMPLE: u32 = 16;

/// A read's start time, when this read is one of the timed ones, and its weight.
#[derive(Clone, Copy)]
struct ReadTimer(Option<(Instant, u32)>);

impl ReadTimer {
    /// Times one lookup in [`READ_SAMPLE`], chosen by the hits this thread's stripe of the
    /// namespace counted (its own cache line: reading the shared total would bounce it).
    fn sampled(stats: &Stripe) -> Self {
        let timed = stats.local_hits().is_multiple_of(u64::from(READ_SAMPLE));
        ReadTimer(timed.then(|| (Instant::now(), READ_SAMPLE)))
    }

    /// Times every value (a batch: one clock read for all of them).
    fn every(start: Instant) -> Self {
        ReadTimer(Some((start, 1)))
    }

    fn record(self, stats: &Stripe) {
        if let Some((start, weight)) = self.0 {
            let nanos = (start.elapsed() * weight).as_nanos() as u64;
            stats.read_nanos.fetch_add(nanos, RELAXED);
        }
    }
}

impl Cache {
    /// Reads and decodes `key`; an expired value counts as a miss and is removed.
    ///
    /// With `expect` (a memoized call's type fingerprint), a value recorded as another type is
    /// a miss counted in `mismatches`, and so is a value recorded without a fingerprint (an
    /// envelope-v1 value, a plain `put`) that does not decode as `T`: the caller recomputes and
    /// overwrites, never decodes someone else's bytes into a wrong value.
    ///
    /// # One checksum, not two
    ///
    /// The bytes are first lent by [`Store::with_value_unchecked`](cacher_store::Store::with_value_unchecked),
    /// which may skip the store's own checksum, and are trusted only if they open as a
    /// key-bound envelope (version 2 or later) for `key`: its header checksum covers every
    /// header field (the key's checksum among them), its payload checksum covers every
    /// payload byte, so every stored byte is under one of the envelope's checksums, and the
    /// key binding refuses another key's value. Damage the store's checksum would catch is
    /// therefore caught here too (CRC-32 in version 2 and CRC-32C in version 3 both catch
    /// every burst of up to 32 bits, as the store's CRC-32 does). With a MAC key the MAC covers
    /// header, key and payload as well. Anything else goes through the checked
    /// [`Store::with_value`](cacher_store::Store::with_value) again, which decides exactly as
    /// before, its errors worded as before: a version-1 envelope (not bound to its key, so a
    /// store handing back another key's bytes would go unnoticed), a stream envelope, bytes
    /// that are no envelope, and every refusal or decode error (so a damaged value is reported
    /// by the store that holds it). The unchecked read is used nowhere else: other users of a
    /// store keep the checked reads.
    pub(crate) fn lookup<T: DeserializeOwned>(
        &self,
        key: &[u8],
        stats: &Atomics,
        expect: Option<u64>,
    ) -> Result<Option<T>> {
        // This thread's stripe, found once for the whole lookup (sample, then counts).
        let stripe = stats.local();
        let timer = ReadTimer::sampled(stripe);
        let store = &self.inner.store;
        let mut opened = None;
        store.with_value_unchecked(key, &mut |bytes| {
            opened = Some((
                self.open_entry(key, bytes, expect, Trust::Envelope),
                bytes.len(),
            ));
        })?;
        let opened = match opened {
            Some((Ok(Opened::Recheck), _)) => {
                let mut again = None;
                store.with_value(key, &mut |bytes| {
                    again = Some((
                        self.open_entry(key, bytes, expect, Trust::Store),
                        bytes.len(),
                    ));
                })?;
                again
            }
            other => other,
        };
        match opened {
            // Missing, or deleted between the unchecked and the checked read.
            None => {
                self.missing(key, stripe);
                Ok(None)
            }
            Some((opened, len)) => self.finish_found(key, opened?, len, stripe, timer),
        }
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
        let timer = ReadTimer::every(Instant::now());
        let stats = stats.local();
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
                Some(bytes) => {
                    let opened = self.open_entry(key, &bytes, expect, Trust::Store)?;
                    self.finish_found(key, opened, bytes.len(), stats, timer)
                }
            })
            .collect()
    }

    fn missing(&self, key: &[u8], stats: &Stripe) {
        stats.misses.fetch_add(1, RELAXED);
        // Deleted behind our back (another process, a store-level delete).
        self.with_tracker(|t| t.remove(key));
    }

    /// Opens, checks and decodes the stored bytes of `key` while they are lent (see
    /// [`Cache::lookup`]); `trust` says whether the store checked them.
    fn open_entry<T: DeserializeOwned>(
        &self,
        key: &[u8],
        bytes: &[u8],
        expect: Option<u64>,
        trust: Trust,
    ) -> Result<Opened<T>> {
        let refused = |e| match trust {
            Trust::Envelope => Ok(Opened::Recheck),
            Trust::Store => Err(Error::format(key, e)),
        };
        let (header, payload) = match self.inner.codec.open(key, bytes) {
            Ok(opened) => opened,
            Err(e) => return refused(e),
        };
        if trust == Trust::Envelope && !header.is_key_bound() {
            return Ok(Opened::Recheck);
        }
        if self.is_expired_now(&header.meta()) {
            return Ok(Opened::Expired);
        }
        if let (Some(want), Some(have)) = (expect, header.type_fingerprint()) {
            if want != have {
                return Ok(Opened::Mismatch);
            }
        }
        match self.inner.codec.decode(&header, payload) {
            Ok(v) => Ok(Opened::Hit(v)),
            // The type's shape changed under the same name, or an untyped old value: for a
            // memoized call that is a miss, not an error on every call.
            Err(
                cacher_formats::Error::Decode { .. } | cacher_formats::Error::TypeMismatch { .. },
            ) if expect.is_some() => Ok(Opened::Mismatch),
            Err(e) => refused(e),
        }
    }

    /// Counts what [`Cache::open_entry`] found (`len` stored bytes) once the view has ended,
    /// and removes an expired value.
    fn finish_found<T>(
        &self,
        key: &[u8],
        opened: Opened<T>,
        len: usize,
        stats: &Stripe,
        timer: ReadTimer,
    ) -> Result<Option<T>> {
        match opened {
            Opened::Hit(value) => {
                stats.hits.fetch_add(1, RELAXED);
                stats.bytes_read.fetch_add(len as u64, RELAXED);
                timer.record(stats);
                self.with_tracker(|t| t.touch(key));
                self.note_read(key);
                Ok(Some(value))
            }
            Opened::Mismatch => {
                stats.misses.fetch_add(1, RELAXED);
                stats.mismatches.fetch_add(1, RELAXED);
                Ok(None)
            }
            Opened::Expired => {
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
                Ok(None)
            }
            // open_entry answers Recheck only to Trust::Envelope, which lookup reads again.
            Opened::Recheck => Ok(None),
        }
    }

    /// Whether `meta` is expired now, reading the clock only when an expiry can apply (the
    /// value's own, the cache TTL or the cache-wide deadline): most hits read no clock.
    fn is_expired_now(&self, meta: &EnvelopeMeta) -> bool {
        let may_expire = meta.expires_ms.is_some()
            || self.inner.ttl.is_some()
            || self.inner.deadline_ms.is_some();
        may_expire && self.is_expired(meta, self.now_ms())
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
        let mut entry = self.encode_entry(key, value, expires_ms, fingerprint)?;
        self.put_encoded(key, &mut entry, stats)
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
    ) -> Result<Encoded> {
        let now = self.now_ms();
        let header = EnvelopeMeta {
            created_ms: now,
            expires_ms: self.expiry_of_new_value(now, expires_ms),
            // A cache keeping revisions numbers the value in `put_revised`, under the key's
            // lock (where the manifest is read anyway), by restamping this header in place.
            revision: 0,
            type_fingerprint: fingerprint.filter(|&f| f != 0),
        };
        let bytes = self
            .inner
            .codec
            .encode(key, value, &header)
            .map_err(|e| Error::format(key, e))?;
        Ok(Encoded {
            bytes,
            deadline_ms: header.expires_ms,
        })
    }

    /// Writes an entry made by [`Cache::encode_entry`], counts it and enforces the limits.
    /// (Mutable so a cache keeping revisions numbers it in place.)
    pub(crate) fn put_encoded(
        &self,
        key: &[u8],
        entry: &mut Encoded,
        stats: &Atomics,
    ) -> Result<()> {
        Self::refuse_reserved(key)?;
        if self.keeps_revisions(key) {
            return self.put_revised(key, &mut entry.bytes, entry.deadline_ms, stats);
        }
        let bytes = &entry.bytes[..];
        self.inner
            .store
            .put_with_deadline(key, bytes, entry.deadline_ms)?;
        let stats = stats.local();
        stats.stores.fetch_add(1, RELAXED);
        stats.bytes_written.fetch_add(bytes.len() as u64, RELAXED);
        self.enforce_limits(key, bytes.len() as u64)
    }

    /// Writes many encoded entries with one [`Store::put_many`](cacher_store::Store::put_many)
    /// (one transaction or one sync where the store allows), then counts them and enforces
    /// the limits once per entry.
    pub(crate) fn put_many_encoded(
        &self,
        entries: &mut [(&[u8], Encoded)],
        stats: &Atomics,
    ) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        for (key, _) in entries.iter() {
            Self::refuse_reserved(key)?;
        }
        if self.inner.revisions.any() {
            // Each overwrite moves the old value first (revisions/write.rs): one at a time.
            return entries
                .iter_mut()
                .try_for_each(|(key, entry)| self.put_encoded(key, entry, stats));
        }
        let with_deadlines: Vec<(&[u8], &[u8], Option<u64>)> = entries
            .iter()
            .map(|(key, e)| (*key, &e.bytes[..], e.deadline_ms))
            .collect();
        self.inner.store.put_many_with_deadlines(&with_deadlines)?;
        let stats = stats.local();
        for (key, bytes, _) in with_deadlines {
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
    /// [`Store::with_value`](cacher_store::Store::with_value) so no store copies the value just to look at its header.
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
