//! `LmdbEnv`: one handle per directory per process, a map that grows by itself, errors that
//! pass through transactions, and damaged files reported as corrupt.

#![cfg(feature = "lmdb")]

use cacher_store::lmdb::{LmdbEnv, LmdbOptions, TxnError};
use cacher_store::Error;

fn small() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(256 << 10)
}

#[test]
fn second_open_in_a_process_shares_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let a = LmdbEnv::open(dir.path(), &small()).unwrap();
    let b = LmdbEnv::open(dir.path().join("."), &LmdbOptions::default()).unwrap();
    assert!(a.same_env(&b));
    assert_eq!(b.options(), &small());
}

#[test]
fn last_handle_dropped_closes_so_reopen_works() {
    let dir = tempfile::tempdir().unwrap();
    let env = LmdbEnv::open(dir.path(), &small()).unwrap();
    let db = env.create_database("d").unwrap();
    env.write(|w| db.put(w, b"k", b"v")).unwrap();
    let clone = env.clone();
    drop(env);
    drop(clone);
    let env = LmdbEnv::open(dir.path(), &small()).unwrap();
    let db = env.create_database("d").unwrap();
    let v = env
        .read(|r| db.get(r, b"k").map(|v| v.map(<[u8]>::to_vec)))
        .unwrap();
    assert_eq!(v.as_deref(), Some(&b"v"[..]));
}

#[test]
fn map_grows_past_the_initial_size_on_map_full() {
    let dir = tempfile::tempdir().unwrap();
    let env = LmdbEnv::open(dir.path(), &small()).unwrap();
    let start = env.map_size();
    let db = env.create_database("d").unwrap();
    let value = vec![1u8; 3 << 20];
    env.write(|w| db.put(w, b"big", &value)).unwrap();
    assert!(env.map_size() > start + (3 << 20));
    assert!(env.stats().map_grown >= 1, "{:?}", env.stats());
    let len = env
        .read(|r| db.get(r, b"big").map(|v| v.map(<[u8]>::len)))
        .unwrap();
    assert_eq!(len, Some(3 << 20));
}

#[test]
fn map_full_at_the_cap_is_a_full_error_and_leaves_the_env_usable() {
    let dir = tempfile::tempdir().unwrap();
    let options = small().with_max_map_size(Some(1 << 20));
    let env = LmdbEnv::open(dir.path(), &options).unwrap();
    let db = env.create_database("d").unwrap();
    let err = env
        .write(|w| db.put(w, b"too-big", &vec![0u8; 2 << 20]))
        .unwrap_err();
    match err {
        Error::Full { cap, .. } => assert_eq!(cap, 1 << 20),
        other => panic!("expected Full, got {other:?}"),
    }
    env.write(|w| db.put(w, b"small", b"fits")).unwrap();
    assert_eq!(env.map_size(), 1 << 20);
}

#[test]
fn store_errors_from_the_closure_pass_through_and_abort() {
    let dir = tempfile::tempdir().unwrap();
    let env = LmdbEnv::open(dir.path(), &small()).unwrap();
    let db = env.create_database("d").unwrap();
    let err = env
        .write(|w| -> Result<(), TxnError> {
            db.put(w, b"k", b"v")?;
            Err(Error::corrupt("x", None, "refused").into())
        })
        .unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    let v = env.read(|r| db.get(r, b"k").map(|v| v.is_some())).unwrap();
    assert!(!v, "an aborted write left data behind");
}

#[test]
fn reads_and_growing_writes_from_many_threads_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    let env = LmdbEnv::open(dir.path(), &small()).unwrap();
    let db = env.create_database("d").unwrap();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let env = &env;
            s.spawn(move || {
                for i in 0..40u32 {
                    let key = [t, i as u8];
                    let value = vec![t; 20_000 + i as usize * 1000];
                    env.write(|w| db.put(w, &key, &value)).unwrap();
                    let got = env
                        .read(|r| db.get(r, &key).map(|v| v.map(<[u8]>::to_vec)))
                        .unwrap();
                    assert_eq!(got.as_deref(), Some(&value[..]));
                }
            });
        }
    });
    assert!(env.map_size() > 256 << 10);
}

#[test]
fn a_file_that_is_not_lmdb_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.mdb"), vec![0xAB; 64 << 10]).unwrap();
    let err = LmdbEnv::open(dir.path(), &small()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn txn_error_is_a_std_error_that_prints_its_cause_once() {
    fn assert_error<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
    let err = TxnError::from(Error::corrupt("/store", Some(b"k"), "bad crc"));
    assert_error(&err);
    let text = err.to_string();
    assert!(text.contains("bad crc"), "{text}");
    // Transparent: the wrapper adds no link of its own to the chain.
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(boxed.source().is_none(), "{:?}", boxed.source());
}
