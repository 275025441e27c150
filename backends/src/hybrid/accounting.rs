//! Eviction accounting of a [`HybridStore`]: its index's (`LmdbStore`'s `cacher-store-acct`), with
//! each entry counted as its value's length (not its index record's), and the value files of
//! evicted or expired entries removed after their records are gone.

use super::record::{Record, TAG_FILE, TAG_INLINE};
use super::HybridStore;
use crate::accounting::{Accounting, Described, EntryAccount, EvictPlan, Order, Totals};
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

    fn enable(&self) -> Result<()> {
        self.index.enable()
    }

    fn keep_order(&self, order: Order, progress: &mut dyn FnMut(u64)) -> Result<()> {
        self.index.keep_order(order, progress)
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

    fn undated(&self, after: Option<u64>, limit: usize) -> Result<Vec<(Vec<u8>, u64)>> {
        self.index.undated(after, limit)
    }

    fn remove_if_written(&self, key: &[u8], written: u64) -> Result<bool> {
        self.index
            .remove_if_written_extracting(key, written, Some(&file_id), &mut |r| {
                self.removed(r, &mut |_| {})
            })
    }

    fn entry(&self, key: &[u8]) -> Result<Option<EntryAccount>> {
        self.index.entry(key)
    }
}

#[cfg(test)]
mod tests {
    use crate::accounting::{EvictPlan, Order};
    use crate::{Durability, HybridStore, Store};

    #[test]
    fn file_values_are_counted_by_length_and_their_files_go_with_eviction() {
        let dir = tempfile::tempdir().unwrap();
        let store = HybridStore::options()
            .inline_max(100)
            .durability(Durability::None)
            .open(dir.path())
            .unwrap();
        store.accounting().unwrap().enable().unwrap();
        store.put(b"big", &[1; 5000]).unwrap();
        store
            .put_with_deadline(b"small", &[2; 10], Some(50))
            .unwrap();
        store.put(b"newest", &[3; 20]).unwrap();
        let acct = store.accounting().unwrap();
        let t = acct.totals().unwrap();
        assert_eq!((t.entries, t.bytes), (3, 5030));
        let blobs = || {
            std::fs::read_dir(dir.path().join("files"))
                .unwrap()
                .flatten()
                .filter(|d| d.file_name() != "tmp")
                .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
                .count()
        };
        assert_eq!(blobs(), 1);
        let mut gone = Vec::new();
        acct.evict(&EvictPlan::new(None, Some(100), Order::Lru), &mut |k| {
            gone.push(k.to_vec())
        })
        .unwrap();
        assert_eq!(gone, vec![b"big".to_vec()]);
        assert_eq!(blobs(), 0, "the evicted value's file is removed");
        assert_eq!(acct.remove_expired(50, &mut |_| {}).unwrap(), 1);
        assert_eq!(store.keys().unwrap().count(), 1);
        assert_eq!(acct.totals().unwrap().bytes, 20);
    }
}
