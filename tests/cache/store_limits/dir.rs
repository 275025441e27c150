//! A limited cache on a `DirStore` keeps its books in the store's sidecar (`acct/`): one
//! total for every handle, an open that reads it instead of scanning the files, read history
//! across a restart. Before the sidecar each of these failed: the cache scanned at open and
//! each handle counted only what it saw.

use std::path::Path;

use cacher::store::{DirStore, Durability};
use cacher::Cache;

fn dir_store(dir: &Path) -> DirStore {
    DirStore::options()
        .durability(Durability::None)
        .open(dir)
        .unwrap()
}

fn limited(dir: &Path, max_entries: u64) -> Cache {
    Cache::builder()
        .store(dir_store(dir))
        .max_entries(max_entries)
        .build()
        .unwrap()
}

#[test]
fn a_limited_cache_on_a_dir_store_opens_from_the_stored_total_without_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let first = limited(dir.path(), 2000);
    for i in 0..300 {
        first.put(format!("k{i}"), &i).unwrap();
    }
    drop(first);
    let cache = super::limited_without_scanning(dir_store(dir.path()));
    let totals = cache.store().accounting().unwrap().totals().unwrap();
    assert_eq!((totals.entries, totals.built), (300, true));
}

#[test]
fn a_dir_store_written_before_accounting_is_counted_once_then_opens_without_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Cache::builder()
        .store(dir_store(dir.path()))
        .build()
        .unwrap();
    for i in 0..50 {
        plain.put(format!("k{i}"), &i).unwrap();
    }
    // The first limited open counts the files (once) and evicts down to its limit.
    let cache = limited(dir.path(), 40);
    assert_eq!(cache.store().len().unwrap(), 40);
    let totals = cache.store().accounting().unwrap().totals().unwrap();
    assert_eq!((totals.entries, totals.built), (40, true));
    // The unlimited handle opened before keeps the total exact from its next write.
    plain.put("late", &1).unwrap();
    plain.remove("k49").unwrap();
    let totals = cache.store().accounting().unwrap().totals().unwrap();
    assert_eq!(totals.entries, cache.store().len().unwrap());
}

#[test]
fn two_handles_on_one_dir_store_keep_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    super::keep_one_limit_of_10(limited(dir.path(), 10), limited(dir.path(), 10));
}

#[test]
fn an_entry_read_on_a_dir_store_before_a_restart_outlives_one_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let writer = limited(dir.path(), 3);
    for k in ["a", "b", "c"] {
        writer.put(k, &k).unwrap();
    }
    drop(writer);
    let reader = limited(dir.path(), 3);
    assert_eq!(reader.get::<String>("a").unwrap().as_deref(), Some("a"));
    drop(reader); // its reads are flushed
    let again = limited(dir.path(), 3);
    again.put("d", &"d").unwrap();
    assert!(again.contains("a").unwrap(), "the entry read was evicted");
    assert!(
        !again.contains("b").unwrap(),
        "the oldest unread entry stayed"
    );
}
