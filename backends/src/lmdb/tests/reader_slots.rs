//! Thread-local reader slots (issue 15): a thread claims one slot at its first read and keeps
//! it until it exits, so reads on many threads, reads after a resize, slots of exited threads
//! and a nested read each have a rule to keep.

use std::sync::{mpsc, Barrier};

use super::small;
use crate::lmdb::{LmdbEnv, LmdbOptions, LmdbStore, TxnError};
use crate::Store;

#[test]
fn reads_on_many_threads_at_once_all_see_every_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    for i in 0..50u32 {
        store.put(&i.to_le_bytes(), &[i as u8; 100]).unwrap();
    }
    const THREADS: usize = 8;
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                for round in 0..20 {
                    for i in 0..50u32 {
                        let got = store.get(&i.to_le_bytes()).unwrap();
                        assert_eq!(got.as_deref(), Some(&[i as u8; 100][..]), "round {round}");
                    }
                }
            });
        }
    });
}

/// A slot lives as long as its thread, not its transaction: with two slots, far more threads
/// than slots read one after another, each freeing its slot as it exits.
#[test]
fn threads_that_have_exited_leave_their_reader_slots_free() {
    let dir = tempfile::tempdir().unwrap();
    let options = small().with_max_readers(2);
    let store = std::thread::scope(|s| {
        s.spawn(|| {
            let store = LmdbStore::open_with(dir.path(), &options).unwrap();
            store.put(b"k", b"v").unwrap();
            store
        })
        .join()
        .unwrap()
    });
    for t in 0..20 {
        let got = std::thread::scope(|s| s.spawn(|| store.get(b"k")).join().unwrap());
        assert_eq!(got.unwrap().as_deref(), Some(&b"v"[..]), "thread {t}");
    }
    assert_eq!(store.env().stats().stale_readers_cleared, 0);
}

/// A thread that has read keeps its slot (idle) while another thread grows the map, and reads
/// through the new map afterwards.
#[test]
fn a_thread_that_has_read_reads_again_after_another_threads_resize() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"small", b"v").unwrap();
    let size_before = store.env().map_size();
    let (read_again_tx, read_again) = mpsc::channel::<()>();
    let (first_read_tx, first_read) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let store = &store;
        let reader = s.spawn(move || {
            assert_eq!(store.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
            first_read_tx.send(()).unwrap();
            read_again.recv().unwrap();
            (store.get(b"small").unwrap(), store.get(b"big").unwrap())
        });
        first_read.recv().unwrap();
        // Four times the initial map: grows it (the reader thread holds its slot meanwhile).
        store.put(b"big", &vec![7u8; 4 << 20]).unwrap();
        read_again_tx.send(()).unwrap();
        let (small_again, big) = reader.join().unwrap();
        assert_eq!(small_again.as_deref(), Some(&b"v"[..]));
        assert_eq!(big.map(|v| v.len()), Some(4 << 20));
    });
    assert!(store.env().map_size() > size_before);
    assert!(store.env().stats().map_grown > 0);
}

/// One slot per thread: a read inside a read (which the crate forbids, see `LmdbEnv`) is an
/// error from LMDB (`MDB_BAD_RSLOT`), not a second snapshot, and leaves the outer read and
/// later reads working.
#[test]
fn a_read_nested_in_a_read_on_one_thread_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let env = LmdbEnv::open(dir.path(), &LmdbOptions::default()).unwrap();
    let db = env.create_database("d").unwrap();
    env.write(|wtxn| db.put(wtxn, b"k", b"v")).unwrap();
    let (nested, outer) = env
        .read(|rtxn| -> Result<_, TxnError> {
            let nested = env.read(|inner| db.get(inner, b"k").map(|v| v.map(<[u8]>::to_vec)));
            Ok((nested, db.get(rtxn, b"k")?.map(<[u8]>::to_vec)))
        })
        .unwrap();
    match nested.unwrap_err() {
        crate::Error::Engine { source, .. } => assert!(
            matches!(
                source.downcast_ref::<heed::Error>(),
                Some(heed::Error::Mdb(heed::MdbError::BadRslot))
            ),
            "{source}"
        ),
        other => panic!("expected MDB_BAD_RSLOT, got {other}"),
    }
    assert_eq!(outer.as_deref(), Some(&b"v"[..]));
    let again = env.read(|rtxn| db.get(rtxn, b"k").map(|v| v.map(<[u8]>::to_vec)));
    assert_eq!(again.unwrap().as_deref(), Some(&b"v"[..]));
}
