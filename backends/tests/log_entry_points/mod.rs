//! Fuzz entry points for `LogStore`'s file decoding (file header, records, recovery), shared by
//! the proptest suite (`tests/log_fuzz.rs`: fixed iterations, on stable, in every `cargo test`)
//! and a cargo-fuzz target (`fuzz/fuzz_targets/log.rs`, which includes this file by path).
//! Public API only. Each panics only when the store breaks a promise: never a panic on bad
//! bytes, never a value that was not written.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use cacher_store::{Durability, LogOptions, LogStore, Store};

/// Every value each key ever held.
pub type Ever = BTreeMap<Vec<u8>, BTreeSet<Vec<u8>>>;

/// Opens `data` as a log file — as a reader (which changes nothing), then as the writer (which
/// may recover and write) — reads and checks every key on both, verifies, writes and compacts.
/// When `ever` is given, every value read must be one the key held.
pub fn log_file(data: &[u8], ever: Option<&Ever>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("fuzz.log");
    std::fs::write(&path, data).expect("writing the fuzz input");
    if let Ok(reader) = LogOptions::new().read_only(true).open(&path) {
        read_all(&reader, ever);
    }
    if let Ok(writer) = LogOptions::new().durability(Durability::None).open(&path) {
        read_all(&writer, ever);
        // A recovered log takes writes and compacts.
        let _ = writer.put(b"after", b"fuzz");
        let _ = writer.compact();
    }
}

fn read_all(store: &LogStore, ever: Option<&Ever>) {
    let _ = store.verify();
    let _ = store.len();
    let Ok(keys) = store.keys() else {
        return;
    };
    let keys: Vec<Vec<u8>> = keys.filter_map(|k| k.ok()).collect();
    for key in keys {
        let _ = store.meta(&key);
        if let (Ok(Some(value)), Some(ever)) = (store.get(&key), ever) {
            assert!(
                ever.get(&key).is_some_and(|vs| vs.contains(&value)),
                "key {key:?} read {value:?}, a value it never held"
            );
        }
    }
}

/// A small log written by every kind of write, and every value each key held.
pub fn base_log() -> (Vec<u8>, Ever) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("base.log");
    let store = LogOptions::new()
        .durability(Durability::None)
        .open(&path)
        .expect("a new log");
    let mut ever = Ever::new();
    let mut note = |k: &[u8], v: &[u8]| {
        ever.entry(k.to_vec()).or_default().insert(v.to_vec());
    };
    store.put(b"a", b"apple").unwrap();
    note(b"a", b"apple");
    store.put_reader(b"s", &mut &[9u8; 150][..]).unwrap();
    note(b"s", &[9u8; 150]);
    store.delete(b"a").unwrap();
    store.put(b"", b"").unwrap();
    note(b"", b"");
    store
        .put_many(&[(b"m1", b"one"), (b"m2", b"two"), (b"s", b"short")])
        .unwrap();
    for (k, v) in [(&b"m1"[..], &b"one"[..]), (b"m2", b"two"), (b"s", b"short")] {
        note(k, v);
    }
    store.put(b"a", b"again").unwrap();
    note(b"a", b"again");
    store.flush().unwrap();
    drop(store);
    // The writer the fuzz entry opens writes this key too.
    note(b"after", b"fuzz");
    (std::fs::read(&path).unwrap(), ever)
}
