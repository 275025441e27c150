//! Four processes asking a memoized function for one missing key on a shared store compute it
//! once (the per-key lease under the store), the others wait and read it; four processes
//! asking for overlapping batches compute each key once, and a batch's holder killed while it
//! computes leaves its keys to the next. Before leases each process computed. Children are
//! this test binary re-executed with `CACHER_FLIGHT_CHILD` or `CACHER_BATCH_CHILD`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cacher::store::{DirStore, Store};
use cacher::Cache;

use crate::children::{
    ask_for_batch, ask_for_one_key, assert_each_key_computed_once, assert_one_computed, batch_fn,
    inputs, mark, spawn, until_marked, KillOnDrop, BATCHES, PROCESSES,
};

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

/// A cache on the store `kind` in `dir`; `default` is `Cache::open`'s.
fn cache_on(kind: &str, dir: &Path) -> Cache {
    #[cfg(feature = "lmdb")]
    if kind == "default" {
        return Cache::open(dir).unwrap();
    }
    Cache::builder().store(store(kind, dir)).build().unwrap()
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

/// A DirStore that records how long each lease claim may wait, and whose claims fail if
/// `fail_leases` (as a lease directory that cannot be written would).
struct Recorded {
    inner: DirStore,
    waits: std::sync::Mutex<Vec<Duration>>,
    fail_leases: bool,
}

impl Store for Recorded {
    fn read(&self, key: &[u8]) -> cacher::store::Result<Option<cacher::store::Blob>> {
        self.inner.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> cacher::store::Result<()> {
        self.inner.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> cacher::store::Result<bool> {
        self.inner.delete(key)
    }
    fn keys(&self) -> cacher::store::Result<cacher::store::KeyIter<'_>> {
        self.inner.keys()
    }
    fn flush(&self) -> cacher::store::Result<()> {
        self.inner.flush()
    }
    fn lease_dir(&self) -> Option<PathBuf> {
        self.inner.lease_dir()
    }
    fn lease(
        &self,
        key: &[u8],
        terms: &cacher::store::lease::Terms,
    ) -> cacher::store::Result<Option<cacher::store::lease::Claim>> {
        self.waits.lock().unwrap().push(terms.wait());
        if self.fail_leases {
            return Err(cacher::store::Error::Io {
                op: "creating",
                path: self.lease_dir().unwrap(),
                source: std::io::ErrorKind::PermissionDenied.into(),
            });
        }
        self.inner.lease(key, terms)
    }
}

/// A batch whose keys' leases another holder keeps (as another process would) waits one
/// lease timeout in all, not one per key: its second claim has no wait left. Then it computes
/// both keys itself, in one call. Before, batches took no lease at all.
#[test]
fn a_batch_whose_leases_another_holder_keeps_waits_one_lease_timeout_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Recorded {
        inner: DirStore::open(dir.path()).unwrap(),
        waits: std::sync::Mutex::default(),
        fail_leases: false,
    });
    let leases = cacher::store::lease::Leases::open(store.lease_dir().unwrap()).unwrap();
    let timeout = Duration::from_millis(20);
    let cache = Cache::builder()
        .store(store.clone())
        .lease_timeout(Some(timeout))
        .build()
        .unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let memo = cache
        .memoize("held")
        .wrap_batch(|xs: Vec<u64>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            xs.iter().map(|x| x + 1).collect::<Vec<_>>()
        })
        .unwrap();
    let held: Vec<_> = [1, 2]
        .iter()
        .map(|x| {
            leases
                .try_acquire(&memo.key_for(x).unwrap())
                .unwrap()
                .unwrap()
        })
        .collect();
    assert_eq!(memo.call_many([1, 2]).unwrap(), vec![2, 3]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(*store.waits.lock().unwrap(), vec![timeout, Duration::ZERO]);
    drop(held);
    assert_eq!(
        memo.call_many([1, 2]).unwrap(),
        vec![2, 3],
        "stored: hits now"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// A batch on a store whose lease claims fail stops claiming at the first failure: one error
/// counted, every key computed (without a lease) in the batch's one call. Before, each key's
/// claim was tried and counted.
#[test]
fn a_batch_whose_lease_claims_fail_counts_one_error_and_computes_without_leases() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(Recorded {
        inner: DirStore::open(dir.path()).unwrap(),
        waits: std::sync::Mutex::default(),
        fail_leases: true,
    });
    let cache = Cache::builder().store(store.clone()).build().unwrap();
    let calls = std::sync::atomic::AtomicUsize::new(0);
    let memo = cache
        .memoize("unleased")
        .wrap_batch(|xs: Vec<u64>| {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            xs.iter().map(|x| x + 1).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(memo.call_many([1, 2, 3]).unwrap(), vec![2, 3, 4]);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(store.waits.lock().unwrap().len(), 1, "one claim tried");
    assert_eq!(cache.stats().total.errors, 1);
    assert_eq!(
        memo.call_many([1, 2, 3]).unwrap(),
        vec![2, 3, 4],
        "stored all the same"
    );
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
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

/// Not a test of its own: a batch child's body when `CACHER_BATCH_CHILD` is set.
#[test]
fn batch_child_entry_point() {
    let Ok(kind) = std::env::var("CACHER_BATCH_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("CACHER_BATCH_DIR").unwrap());
    let work = PathBuf::from(std::env::var("CACHER_BATCH_WORK").unwrap());
    let inputs = inputs(&std::env::var("CACHER_BATCH_INPUTS").unwrap());
    let hold = std::env::var("CACHER_BATCH_ROLE").is_ok_and(|r| r == "hold");
    let cache = cache_on(&kind, &dir);
    if std::env::var("CACHER_BATCH_FORM").is_ok_and(|f| f == "items") {
        // The per-item form: the missing inputs computed one by one, on two threads.
        let f = batch_fn(&work, hold);
        let memo = cache
            .memoize("fetch_items")
            .wrap(|x: u64| f(vec![x])[0])
            .unwrap();
        let missing = inputs
            .iter()
            .any(|x| !cache.contains(memo.key_for(x).unwrap()).unwrap());
        if missing {
            mark(&work, "missed");
        }
        let values = memo.call_many_on_threads(inputs, 2).unwrap();
        println!("values {values:?}");
    } else {
        ask_for_batch(&cache, &work, inputs, hold);
    }
}

fn batch_child(
    kind: &str,
    dir: &Path,
    work: &Path,
    inputs: &str,
    role: &str,
    form: &str,
) -> std::process::Child {
    spawn(
        "processes::batch_child_entry_point",
        &[
            ("CACHER_BATCH_CHILD", kind.as_ref()),
            ("CACHER_BATCH_DIR", dir.as_os_str()),
            ("CACHER_BATCH_WORK", work.as_os_str()),
            ("CACHER_BATCH_INPUTS", inputs.as_ref()),
            ("CACHER_BATCH_ROLE", role.as_ref()),
            ("CACHER_BATCH_FORM", form.as_ref()),
        ],
    )
}

/// Four processes ask for overlapping batches ([`BATCHES`]), two of them the same keys in
/// opposite orders: every key is computed by one process, none deadlocks. Before batches took
/// leases, each process computed its whole batch.
fn overlapping_batches_of_four_processes_compute_each_key_once(kind: &str, form: &str) {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    drop(cache_on(kind, dir.path()));
    let children: Vec<_> = BATCHES
        .iter()
        .map(|b| batch_child(kind, dir.path(), work.path(), b, "ask", form))
        .collect();
    assert_each_key_computed_once(children, work.path());
}

#[test]
fn overlapping_batches_of_four_processes_on_a_dir_store_compute_each_key_once() {
    overlapping_batches_of_four_processes_compute_each_key_once("dir", "batch");
}

#[cfg(feature = "lmdb")]
#[test]
fn overlapping_batches_of_four_processes_on_an_lmdb_store_compute_each_key_once() {
    overlapping_batches_of_four_processes_compute_each_key_once("lmdb", "batch");
}

/// The default store behind `Cache::open`.
#[cfg(feature = "lmdb")]
#[test]
fn overlapping_batches_of_four_processes_on_the_default_store_compute_each_key_once() {
    overlapping_batches_of_four_processes_compute_each_key_once("default", "batch");
}

/// The per-item form (`Memo::call_many_on_threads`) shares the batch path's leases.
#[cfg(feature = "lmdb")]
#[test]
fn overlapping_per_item_batches_of_four_processes_on_an_lmdb_store_compute_each_key_once() {
    overlapping_batches_of_four_processes_compute_each_key_once("lmdb", "items");
}

/// A process killed (`SIGKILL`) while it computes a batch holds its keys' leases only until
/// the OS drops its locks: another process's batch then takes them over and computes the keys
/// under their leases, not once the 30 s lease timeout let it compute without them.
#[test]
fn a_batch_holder_killed_mid_compute_leaves_its_keys_to_the_next_batch_under_their_leases() {
    let kind = if cfg!(feature = "lmdb") {
        "default"
    } else {
        "dir"
    };
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache = cache_on(kind, dir.path());
    let leases = cacher::store::lease::Leases::open(cache.store().lease_dir().unwrap()).unwrap();
    let mut holder = KillOnDrop(batch_child(
        kind,
        dir.path(),
        work.path(),
        "1,2,3,4",
        "hold",
        "batch",
    ));
    until_marked(work.path(), "holding");
    let probe = cache
        .memoize("fetch_many")
        .wrap_batch(batch_fn(work.path(), false))
        .unwrap();
    let key = |x: u64| probe.key_for(&x).unwrap();
    for x in 1..=4 {
        assert!(
            leases.try_acquire(&key(x)).unwrap().is_none(),
            "the holder holds the lease of {x} while it computes"
        );
    }
    holder.kill();

    let calls = std::sync::Mutex::new(Vec::<Vec<u64>>::new());
    let held_by_us = std::sync::Mutex::new(Vec::<bool>::new());
    let memo = cache
        .memoize("fetch_many")
        .wrap_batch(|xs: Vec<u64>| {
            calls.lock().unwrap().push(xs.clone());
            for x in &xs {
                let free = leases.try_acquire(&key(*x)).unwrap().is_some();
                held_by_us.lock().unwrap().push(!free);
            }
            xs.iter().map(|x| x * 3).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(memo.call_many([3, 4, 5, 6]).unwrap(), vec![9, 12, 15, 18]);
    assert_eq!(*calls.lock().unwrap(), vec![vec![3, 4, 5, 6]]);
    assert_eq!(
        *held_by_us.lock().unwrap(),
        vec![true; 4],
        "computed under the leases the dead holder had, not after the lease timeout"
    );
    for x in 3..=6 {
        assert!(
            leases.try_acquire(&key(x)).unwrap().is_some(),
            "the lease of {x} is released once its value is stored"
        );
    }
}
