//! Parked read transactions (issue 15): a thread's hot reads renew the transaction its first
//! read parked; every parked transaction is aborted when its environment closes, whichever
//! thread closes it; resizes by this process or another, nested reads and failed renews keep
//! their rules (`backends/src/lmdb/parked.rs`).

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Barrier};

use super::small;
use crate::lmdb::{LmdbEnv, LmdbStore, TxnError};
use crate::{Error, Store};

/// This thread's parked transaction of `store`'s environment.
fn parked_here(store: &LmdbStore) -> Option<usize> {
    store.env().shared().parked.parked_here()
}

#[test]
fn the_address_heed_hands_out_is_the_lmdb_environment() {
    let dir = tempfile::tempdir().unwrap();
    let options = small().with_max_readers(77);
    let env = LmdbEnv::open(dir.path(), &options).unwrap();
    let ptr = env.shared().parked.env_ptr();
    let mut path: *const std::ffi::c_char = std::ptr::null();
    let mut readers = 0;
    // SAFETY: if `ptr` is the environment (what this test checks), both calls only read it;
    // the environment stays open while `env` lives.
    #[expect(unsafe_code, reason = "LMDB's C API in a test (see SAFETY)")]
    let (rc_path, rc_readers, path) = unsafe {
        let rc_path = lmdb_master_sys::mdb_env_get_path(ptr, &mut path);
        let rc_readers = lmdb_master_sys::mdb_env_get_maxreaders(ptr, &mut readers);
        (rc_path, rc_readers, std::ffi::CStr::from_ptr(path))
    };
    assert_eq!((rc_path, rc_readers), (0, 0));
    assert_eq!(PathBuf::from(path.to_str().unwrap()), env.heed().path());
    assert_eq!(readers, 77);
}

#[test]
fn a_threads_second_read_renews_the_transaction_its_first_parked() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"k", b"one").unwrap();
    let begun = || store.env().shared().parked.begun();
    std::thread::scope(|s| {
        s.spawn(|| {
            assert_eq!(parked_here(&store), None);
            let before = begun();
            assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"one"[..]));
            let first = parked_here(&store).expect("the first read parks its transaction");
            assert_eq!(begun(), before + 1);
            // A write on this thread between two reads: the renewed transaction sees it.
            store.put(b"k", b"two").unwrap();
            let mut seen = Vec::new();
            assert!(store.with_value(b"k", &mut |v| seen = v.to_vec()).unwrap());
            assert_eq!(seen, b"two");
            assert!(store.contains(b"k").unwrap());
            assert_eq!(
                store.get_many(&[b"k", b"x"]).unwrap(),
                vec![Some(b"two".to_vec()), None]
            );
            assert!(!store.with_value_unchecked(b"x", &mut |_| ()).unwrap());
            assert_eq!(parked_here(&store), Some(first), "renewed, not begun again");
            // (The address alone could be a new transaction in the freed one's memory.)
            assert_eq!(begun(), before + 1, "five reads, one transaction begun");
        });
    });
    // This thread has read nothing yet: nothing parked here.
    assert_eq!(parked_here(&store), None);
}

/// Eight threads read three environments; half of them exit before the environments close,
/// the other half hand their handles to a closing thread and stay alive until the
/// environments are closed; the environments close in a different order in each round, on a
/// thread that never read them: every transaction begun is aborted by the time its
/// environment has closed.
///
/// (The threads are not left to exit *while* an environment closes: that races in LMDB
/// itself, whose thread-local reader slot is released by a thread-exit destructor,
/// `mdb_env_reader_dest`, that can run after another thread's `mdb_env_close` unmapped the
/// reader table; it is the same with or without parked transactions.)
#[test]
fn reads_on_eight_threads_of_environments_closed_in_any_order_leave_no_transaction() {
    const THREADS: usize = 8;
    const ENVS: usize = 3;
    for round in 0..12 {
        let dirs: Vec<_> = (0..ENVS).map(|_| tempfile::tempdir().unwrap()).collect();
        let stores: Vec<_> = dirs
            .iter()
            .map(|d| {
                let store = LmdbStore::open_with(d.path(), &small()).unwrap();
                store
                    .put(b"k", d.path().as_os_str().as_encoded_bytes())
                    .unwrap();
                store
            })
            .collect();
        let live: Vec<_> = stores
            .iter()
            .map(|s| s.env().shared().parked.live())
            .collect();
        let (hand_tx, hand_rx) = mpsc::channel::<Vec<LmdbStore>>();
        let closed = Barrier::new(THREADS / 2 + 1);
        std::thread::scope(|s| {
            let mut early = Vec::new();
            for t in 0..THREADS {
                let handles: Vec<LmdbStore> = stores.to_vec();
                let (dirs, closed, hand_tx) = (&dirs, &closed, hand_tx.clone());
                let reader = s.spawn(move || {
                    for (i, store) in handles.iter().enumerate() {
                        let want = dirs[i].path().as_os_str().as_encoded_bytes();
                        for _ in 0..3 {
                            assert_eq!(store.get(b"k").unwrap().as_deref(), Some(want));
                        }
                    }
                    if t % 2 == 1 {
                        // Hands its handles (and their parked transactions) over, and lives on
                        // until the environments have closed.
                        hand_tx.send(handles).unwrap();
                        closed.wait();
                    }
                });
                if t % 2 == 0 {
                    early.push(reader);
                }
            }
            drop(hand_tx);
            // These exit, their transactions parked, before the environments close.
            for reader in early {
                reader.join().unwrap();
            }
            let mut all: Vec<Vec<LmdbStore>> = hand_rx.iter().take(THREADS / 2).collect();
            all.push(stores);
            // Closes every handle from this thread, environment by environment, in an order of
            // the round's own.
            let mut order: Vec<usize> = (0..ENVS).collect();
            order.rotate_left(round % ENVS);
            if round % 2 == 1 {
                order.reverse();
            }
            let closer = s.spawn(move || {
                let mut per_env: Vec<Vec<LmdbStore>> = (0..ENVS).map(|_| Vec::new()).collect();
                for handles in all {
                    for (i, h) in handles.into_iter().enumerate() {
                        per_env[i].push(h);
                    }
                }
                for env in order {
                    drop(std::mem::take(&mut per_env[env]));
                }
            });
            closer.join().unwrap();
            closed.wait();
        });
        for (i, live) in live.iter().enumerate() {
            assert_eq!(
                live.load(Ordering::Relaxed),
                0,
                "round {round}, environment {i}"
            );
        }
        // The environments really closed: each opens again (a live one would be shared).
        for d in &dirs {
            let again = LmdbStore::open_with(d.path(), &small()).unwrap();
            assert_eq!(
                again.env().shared().parked.live().load(Ordering::Relaxed),
                0
            );
        }
    }
}

/// A thread that exited left its transaction parked; a later thread (which may be given the
/// same thread-local slot) renews it on its own reader slot and reads.
#[test]
fn threads_that_exited_leave_transactions_a_later_thread_may_renew() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small().with_max_readers(2)).unwrap();
    store.put(b"k", b"v").unwrap();
    let live = store.env().shared().parked.live();
    let before = store.env().shared().parked.begun();
    for t in 0..20 {
        let got = std::thread::scope(|s| s.spawn(|| store.get(b"k")).join().unwrap());
        assert_eq!(got.unwrap().as_deref(), Some(&b"v"[..]), "thread {t}");
    }
    // Threads run one after another, so later ones are given an exited one's slot and renew
    // its transaction instead of beginning one each.
    let begun = store.env().shared().parked.begun() - before;
    assert!(begun < 20, "{begun} transactions begun for 20 threads");
    // Parked transactions hold no reader slot: with two slots, twenty threads that each left
    // one parked still found a slot free, without clearing any.
    assert_eq!(store.env().stats().stale_readers_cleared, 0);
    assert!(live.load(Ordering::Relaxed) >= 1);
    drop(store);
    assert_eq!(live.load(Ordering::Relaxed), 0);
}

/// A renew that fails (`MDB_BAD_RSLOT`: the thread holds a heed read transaction) drops the
/// parked transaction instead of parking it again; the next read begins a new one.
#[test]
fn a_transaction_whose_renew_fails_is_dropped_not_parked_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"k", b"v").unwrap();
    let live = store.env().shared().parked.live();
    std::thread::scope(|s| {
        s.spawn(|| {
            store.get(b"k").unwrap();
            assert!(parked_here(&store).is_some());
            let inner = store
                .env()
                .read(|_| Ok::<_, TxnError>(store.get(b"k")))
                .unwrap();
            assert_bad_rslot(inner.unwrap_err());
            assert_eq!(
                parked_here(&store),
                None,
                "the failed transaction is not parked"
            );
            assert_eq!(live.load(Ordering::Relaxed), 0);
            assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
            assert!(parked_here(&store).is_some());
        });
    });
}

fn assert_bad_rslot(e: Error) {
    match e {
        Error::Engine { source, .. } => assert!(
            matches!(
                source.downcast_ref::<heed::Error>(),
                Some(heed::Error::Mdb(heed::MdbError::BadRslot))
            ),
            "{source}"
        ),
        other => panic!("expected MDB_BAD_RSLOT, got {other}"),
    }
}

/// A read inside a renewed read on one thread is an error from LMDB, as with heed's
/// transactions; so is a write inside it, none: it commits, and both reads go on working.
#[test]
fn a_read_nested_in_a_parked_read_is_an_error_and_a_nested_write_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"k", b"v").unwrap();
    let mut nested = None;
    let mut written = None;
    assert!(store
        .with_value(b"k", &mut |_| {
            nested = Some(store.get(b"k"));
            written = Some(store.put(b"w", b"x"));
        })
        .unwrap());
    assert_bad_rslot(nested.unwrap().unwrap_err());
    written.unwrap().unwrap();
    assert_eq!(store.get(b"w").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// This process grows the map while another thread has a transaction parked: that thread
/// renews the same transaction on the new map and reads a value past the old one.
#[test]
fn a_parked_transaction_renews_after_this_processs_own_resize() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"small", b"v").unwrap();
    let (go_tx, go) = mpsc::channel::<()>();
    let (parked_tx, parked) = mpsc::channel::<Option<usize>>();
    std::thread::scope(|s| {
        let store = &store;
        let reader = s.spawn(move || {
            store.get(b"small").unwrap();
            let first = parked_here(store);
            parked_tx.send(first).unwrap();
            go.recv().unwrap();
            let big = store.get(b"big").unwrap();
            (first, parked_here(store), big)
        });
        assert!(parked.recv().unwrap().is_some());
        store.put(b"big", &vec![7u8; 4 << 20]).unwrap();
        go_tx.send(()).unwrap();
        let (first, after, big) = reader.join().unwrap();
        assert_eq!(first, after, "the same transaction, renewed");
        assert_eq!(big.map(|v| v.len()), Some(4 << 20));
    });
    assert!(store.env().stats().map_grown > 0);
}

const CHILD_DIR: &str = "CACHER_TEST_PARKED_CHILD_DIR";

/// Another process grows the map while this one has a transaction parked: the renew fails
/// with `MDB_MAP_RESIZED`, the read adopts the new size (through the retry path), runs again
/// in a new transaction and finds the value past the old map.
#[test]
fn a_parked_read_after_another_process_grew_the_map_adopts_the_new_size() {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        // The other process: grows the map past the parent's.
        let store = LmdbStore::open_with(PathBuf::from(dir), &small()).unwrap();
        store.put(b"big", &vec![7u8; 4 << 20]).unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"small", b"v").unwrap();
    assert_eq!(store.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
    assert!(parked_here(&store).is_some());
    let test = format!(
        "{}::a_parked_read_after_another_process_grew_the_map_adopts_the_new_size",
        module_path!().trim_start_matches("cacher_store::")
    );
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &test, "--test-threads", "1", "--quiet"])
        .env(CHILD_DIR, dir.path())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the child failed: {status:?}");
    let size_before = store.env().map_size();
    assert_eq!(store.get(b"big").unwrap().map(|v| v.len()), Some(4 << 20));
    assert!(store.env().stats().map_adopted > 0);
    assert!(store.env().map_size() > size_before);
    assert!(
        parked_here(&store).is_some(),
        "the new transaction is parked"
    );
    assert_eq!(
        store.env().shared().parked.live().load(Ordering::Relaxed),
        1
    );
}

/// A store read from the `Drop` of a thread-local made before the thread's first read runs
/// after `thread_local`'s guard is gone: it reads without parking instead of panicking (which,
/// in a thread-local destructor, aborted the whole process). Found by review.
#[test]
fn a_read_from_a_thread_local_destructor_after_the_first_read_works() {
    struct ReadsOnDrop(Option<(LmdbStore, mpsc::Sender<Option<Vec<u8>>>)>);
    impl Drop for ReadsOnDrop {
        fn drop(&mut self) {
            if let Some((store, tx)) = self.0.take() {
                let _ = tx.send(store.get(b"k").unwrap());
            }
        }
    }
    thread_local! {
        static READS_ON_DROP: std::cell::RefCell<ReadsOnDrop> =
            const { std::cell::RefCell::new(ReadsOnDrop(None)) };
    }
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"k", b"v").unwrap();
    let (tx, rx) = mpsc::channel();
    let handle = store.clone();
    std::thread::spawn(move || {
        // Registered first, so destroyed last: after the parked read's guard and sentinel.
        READS_ON_DROP.with(|r| r.borrow_mut().0 = Some((handle.clone(), tx)));
        assert_eq!(handle.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    })
    .join()
    .unwrap();
    assert_eq!(rx.recv().unwrap().as_deref(), Some(&b"v"[..]));
    drop(store);
}
