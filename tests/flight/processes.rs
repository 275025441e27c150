//! Four processes asking a memoized function for one missing key on a shared store compute it
//! once (the per-key lease under the store), the others wait and read it. Before leases each
//! process computed. Children are this test binary re-executed with `CACHER_FLIGHT_CHILD`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cacher::store::{DirStore, Store};
use cacher::Cache;

use crate::children::{ask_for_one_key, assert_one_computed, spawn, PROCESSES};

fn store(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "dir" => Box::new(DirStore::open(dir).unwrap()),
        #[cfg(feature = "lmdb")]
        "lmdb" => Box::new(cacher::store::LmdbStore::open(dir).unwrap()),
        #[cfg(feature = "lmdb")]
        "hybrid" => Box::new(cacher::store::HybridStore::open(dir).unwrap()),
        other => panic!("unknown store kind {other}"),
    }
}

/// Not a test of its own: a child process's body when `CACHER_FLIGHT_CHILD` is set.
#[test]
fn memo_child_entry_point() {
    let Ok(kind) = std::env::var("CACHER_FLIGHT_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("CACHER_FLIGHT_DIR").unwrap());
    let work = PathBuf::from(std::env::var("CACHER_FLIGHT_WORK").unwrap());
    let cache = Cache::builder().store(store(&kind, &dir)).build().unwrap();
    ask_for_one_key(&cache, &work, false);
}

fn four_processes_compute_once(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    drop(store(kind, dir.path()));
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            spawn(
                "processes::memo_child_entry_point",
                &[
                    ("CACHER_FLIGHT_CHILD", kind.as_ref()),
                    ("CACHER_FLIGHT_DIR", dir.path().as_os_str()),
                    ("CACHER_FLIGHT_WORK", work.path().as_os_str()),
                ],
            )
        })
        .collect();
    assert_one_computed(children, work.path());
}

#[test]
fn four_processes_on_a_dir_store_compute_one_key_once() {
    four_processes_compute_once("dir");
}

#[cfg(feature = "lmdb")]
#[test]
fn four_processes_on_an_lmdb_store_compute_one_key_once() {
    four_processes_compute_once("lmdb");
}

/// The default store behind `Cache::open`.
#[cfg(feature = "lmdb")]
#[test]
fn four_processes_on_a_hybrid_store_compute_one_key_once() {
    four_processes_compute_once("hybrid");
}

#[test]
fn a_waiter_computes_itself_once_the_lease_timeout_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    // Another holder (as another process would be) keeps the key's lease throughout.
    let leases = cacher::store::lease::Leases::open(store.lease_dir().unwrap()).unwrap();
    let cache = Cache::builder()
        .store(store)
        .lease_timeout(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let memo = cache.memoize("stuck").wrap(|x: u64| x + 1).unwrap();
    let key = memo.key_for(&1).unwrap();
    let held = leases.try_acquire(&key).unwrap().expect("free");
    assert_eq!(memo.call(1), 2, "computed without the lease, not hung");
    drop(held);
    assert_eq!(cache.stats().total.stores, 1);
}

#[test]
fn lock_files_left_by_dead_holders_are_cleaned_by_the_next_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    let lease_dir = store.lease_dir().unwrap();
    std::fs::create_dir_all(&lease_dir).unwrap();
    // What holders killed before they could remove their files leave: keys never asked again.
    let dead: Vec<PathBuf> = (0..3)
        .map(|i| lease_dir.join(format!("{}.lock", format!("{i:x}").repeat(64))))
        .collect();
    for f in &dead {
        std::fs::write(f, b"").unwrap();
    }
    std::fs::write(lease_dir.join("notes.txt"), b"not a lease").unwrap();
    let cache = Cache::builder().store(store).build().unwrap();
    let memo = cache.memoize("f").wrap(|x: u64| x + 1).unwrap();
    assert_eq!(memo.call(1), 2);
    for f in &dead {
        assert!(!f.exists(), "{} was left", f.display());
    }
    assert!(lease_dir.join("notes.txt").exists(), "not ours, kept");
}
