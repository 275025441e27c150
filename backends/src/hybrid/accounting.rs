//! Eviction accounting of a [`HybridStore`]: its index's (`LmdbStore`'s `cacher-acct`), with
//! each entry counted as its value's length (not its index record's), and the value files of
//! evicted or expired entries removed after their records are gone.

use super::record::{Record, TAG_FILE, TAG_INLINE};
use super::HybridStore;
use crate::accounting::{Accounting, Described, EntryAccount, EvictPlan, Totals};
use crate::lmdb::Removed;
use crate::Result;

/// The value's length and, for an inline value, its bytes; from an index record as stored.
fn view(raw: &[u8]) -> (u64, Option<&[u8]>) {
    match raw.first() {
        Some(&TAG_INLINE) => ((raw.len() - 1) as u64, Some(&raw[1..])),
        Some(&TAG_FILE) => match Record::decode(raw.to_vec()) {
            Ok(r) => (r.value_len(), None),
            Err(_) => (raw.len() as u64, None),
        },
        _ => (raw.len() as u64, None),
    }
}

/// The value file's id of a file record (the only part of a victim's record kept).
fn file_id(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.first() != Some(&TAG_FILE) {
        return None;
    }
    match Record::decode(raw.to_vec()) {
        Ok(Record::File { id, .. }) => Some(id.to_vec()),
        _ => None,
    }
}

impl HybridStore {
    /// Removes the file of a removed entry (best effort: a file left behind is garbage that
    /// `collect_garbage` removes), then reports its key.
    fn removed(&self, (key, id): Removed, report: &mut dyn FnMut(&[u8])) {
        if let Some(id) = id.and_then(|v| <[u8; 16]>::try_from(v).ok()) {
            self.remove_file(&id);
        }
        report(&key);
    }
}

impl Accounting for HybridStore {
    fn totals(&self) -> Result<Totals> {
        self.index.totals()
    }

    fn build(
        &self,
        describe: &mut dyn FnMut(&[u8], &[u8]) -> Described,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        self.index.build_viewing(&view, describe, progress)
    }

    fn record_access(&self, reads: &[(&[u8], u32)]) -> Result<()> {
        self.index.record_access(reads)
    }

    fn evict(&self, plan: &EvictPlan<'_>, on_evicted: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.index
            .evict_extracting(plan, Some(&file_id), &mut |r| self.removed(r, on_evicted))
    }

    fn remove_expired(&self, now_ms: u64, on_removed: &mut dyn FnMut(&[u8])) -> Result<u64> {
        self.index
            .remove_expired_extracting(now_ms, Some(&file_id), &mut |r| self.removed(r, on_removed))
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        self.index.entry(key)
    }
}
