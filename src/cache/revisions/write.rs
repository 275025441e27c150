//! The write path of a cache that keeps revisions: the value being replaced moves to a
//! revision record before the new value lands, and the oldest unnamed revisions beyond the
//! limit go.
//!
//! Crash safety comes from the order of the writes, each of which the store makes atomic:
//!
//! 1. the old value's bytes are copied, unchanged, to its revision record, and the manifest
//!    listing it is written (one `put_many`: one transaction on LMDB-backed stores; in this
//!    order on the others);
//! 2. only then is the new value written under the user key;
//! 3. then revisions beyond the limit leave the manifest, and after that their records.
//!
//! Stopped after 1, the key still holds its old value and the revision record is an
//! identical copy of it (the next write redoes 1 idempotently); stopped after 2, everything
//! is in place; stopped inside 3, a dropped record may linger unlisted (space only, never
//! a wrong or lost value). At no instant is the current value lost.

use super::keys::{is_reserved, manifest_key, record_key};
use super::manifest::{Entry, Manifest, Place};
use crate::cache::Cache;
use crate::stats::{Atomics, RELAXED};
use crate::{Error, Result};

impl Cache {
    /// Refuses a user write under the derived key space (see `keys.rs`).
    pub(crate) fn refuse_reserved(key: &[u8]) -> Result<()> {
        if is_reserved(key) {
            return Err(Error::Revision {
                key: cacher_store::KeyDisplay::new(key),
                message: "keys starting with 0xFF 0xFE \"cacher-rev\" 0x00 are reserved for \
                          revision records"
                    .into(),
            });
        }
        Ok(())
    }

    /// Whether writes of `key` go through [`Cache::put_revised`].
    pub(crate) fn keeps_revisions(&self, key: &[u8]) -> bool {
        self.inner.revisions.keep_for(key) > 0
    }

    /// Writes `bytes` (encoded by `encode_entry`, with revision 0) as the new value of `key`,
    /// keeping the value it replaces as a revision. The new value's number is given here,
    /// under the key's lock: one above the last the manifest or the replaced value names,
    /// written into `bytes` in place (the header, and the MAC with a MAC key: no second pass
    /// over the value, no copy).
    pub(crate) fn put_revised(
        &self,
        key: &[u8],
        bytes: &mut [u8],
        deadline: Option<u64>,
        stats: &Atomics,
    ) -> Result<()> {
        let _lock = self.lock_revisions(key)?;
        let keep = self.inner.revisions.keep_for(key) as usize;
        let store = &self.inner.store;
        let mut manifest = self
            .load_manifest(key)?
            .unwrap_or_else(|| Manifest::new(key));
        let mut moved = None;
        if let Some(old) = store.get(key)? {
            // A current value that does not open (damaged, another key's) is no history
            // worth keeping: it is overwritten as without revisions.
            if let Ok(meta) = self.inner.codec.peek(key, &old) {
                let n = old_number(meta.revision, meta.created_ms, &manifest);
                let name = manifest.entry(n).and_then(|e| e.name.clone());
                manifest.upsert(Entry {
                    number: n,
                    time_ms: meta.created_ms,
                    size: old.len() as u64,
                    name,
                    place: Place::Store,
                });
                moved = Some((n, old));
            }
        }
        // The new value gets the next free number, so numbers stay unique and count up in
        // the order values became current.
        let new_number = manifest.last.max(moved.as_ref().map_or(0, |(n, _)| *n)) + 1;
        self.inner
            .codec
            .restamp_in_place(key, bytes, new_number)
            .map_err(|e| Error::format(key, e))?;
        let bytes = &bytes[..];
        manifest.last = manifest.last.max(new_number);
        let pruned = prune(&mut manifest, keep);
        let manifest_bytes = manifest.encode();
        let mkey = manifest_key(key);
        match &moved {
            Some((n, old)) => {
                let rkey = record_key(key, *n);
                store.put_many(&[(&rkey, old), (&mkey, &manifest_bytes)])?;
            }
            None => store.put(&mkey, &manifest_bytes)?,
        }
        crash_point("copied");
        store.put_with_deadline(key, bytes, deadline)?;
        crash_point("written");
        for n in pruned {
            let rkey = record_key(key, n);
            store.delete(&rkey)?;
            self.with_tracker(|t| t.remove(&rkey));
        }
        stats.stores.fetch_add(1, RELAXED);
        stats.bytes_written.fetch_add(bytes.len() as u64, RELAXED);
        if let Some((n, old)) = moved {
            // An unnamed revision counts against the limits as an entry of its own (and may be
            // evicted like one); a named one is pinned and never tracked.
            if manifest.entry(n).is_some_and(|e| e.name.is_none()) {
                self.enforce_limits(&record_key(key, n), old.len() as u64)?;
            }
        }
        self.enforce_limits(key, bytes.len() as u64)
    }

    /// `key`'s manifest, if it has one.
    pub(super) fn load_manifest(&self, key: &[u8]) -> Result<Option<Manifest>> {
        match self.inner.store.get(&manifest_key(key))? {
            None => Ok(None),
            Some(bytes) => Manifest::decode(key, &bytes).map(Some),
        }
    }

    pub(super) fn save_manifest(&self, manifest: &Manifest) -> Result<()> {
        self.inner
            .store
            .put(&manifest_key(&manifest.key), &manifest.encode())?;
        Ok(())
    }
}

/// The crash tests' hook: aborts right after `step` (`copied`: the old value's record and the
/// manifest are written; `written`: the new value too) when `CACHER_REVISION_ABORT_AT` names it.
fn crash_point(step: &str) {
    if std::env::var_os("CACHER_REVISION_ABORT_AT").is_some_and(|s| s == step) {
        std::process::abort();
    }
}

/// The number the current value (envelope revision `r`, written at `created_ms`) keeps when it
/// becomes a revision: its own, unless it has none (written without revisions) or the number
/// is taken by another value. A record of the same number and write time is this value's own
/// copy, left by an overwrite that stopped before writing the new value: it is reused.
pub(super) fn old_number(r: u64, created_ms: u64, manifest: &Manifest) -> u64 {
    let taken = manifest
        .entry(r)
        .is_some_and(|e| !matches!(e.place, Place::Current) && e.time_ms != created_ms);
    if r != 0 && !taken {
        r
    } else {
        manifest.last + 1
    }
}

/// Drops from `manifest` the unnamed store revisions beyond the newest `keep`; returns their
/// numbers (their records are deleted after the manifest is written).
fn prune(manifest: &mut Manifest, keep: usize) -> Vec<u64> {
    let mut unnamed: Vec<u64> = manifest
        .entries
        .iter()
        .filter(|e| e.name.is_none() && e.place == Place::Store)
        .map(|e| e.number)
        .collect();
    if unnamed.len() <= keep {
        return Vec::new();
    }
    unnamed.sort_unstable_by(|a, b| b.cmp(a));
    let gone = unnamed.split_off(keep);
    manifest.entries.retain(|e| !gone.contains(&e.number));
    gone
}
