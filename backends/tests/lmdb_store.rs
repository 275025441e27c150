//! `LmdbStore` through its public API: durability settings and the stored layout version.
//! (Tests that need the crate's internals stay in `backends/src/lmdb/tests/`.)

#![cfg(feature = "lmdb")]

use cacher_store::lmdb::{heed, LmdbOptions, LmdbStore};
use cacher_store::{Durability, Store};

fn small() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(1 << 20)
}

#[test]
fn durability_none_commits_are_visible_and_flush_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let options = small().with_durability(Durability::None);
    let store = LmdbStore::open_with(dir.path(), &options).unwrap();
    let flags = store.env().heed().flags().unwrap().unwrap();
    assert!(flags.contains(heed::EnvFlags::NO_SYNC | heed::EnvFlags::NO_META_SYNC));
    store.put(b"k", b"v").unwrap();
    store.flush().unwrap();
    drop(store);
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn a_new_store_says_it_checks_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    assert_eq!(store.layout_version(), 2);
    store.put(b"k", b"v").unwrap();
    let report = store.verify().unwrap();
    assert_eq!((report.checked, report.damaged.len()), (1, 0));
}
