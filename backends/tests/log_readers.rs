//! `LogStore` read-only handles beside a writer in the same process, the writer lock, and
//! values lent from the map (public API only; the multi-process cases are in
//! `log_processes.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use cacher_store::{Durability, Error, LogStore, Store};

fn fast(path: &Path) -> LogStore {
    LogStore::options()
        .durability(Durability::None)
        .open(path)
        .unwrap()
}

fn reader(path: &Path) -> LogStore {
    LogStore::options().read_only(true).open(path).unwrap()
}

fn contents(store: &LogStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.scan().unwrap().map(|e| e.unwrap()).collect()
}

/// `len` bytes that differ with `seed` and do not repeat with a short period.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn second_writer_gets_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let first = LogStore::open(&path).unwrap();
    // flock locks belong to the open file, so a second open in this process conflicts just
    // as one in another process does.
    match LogStore::open(&path) {
        Err(Error::Locked { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("store.log.lock"), "{reason}");
        }
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    // Readers are welcome alongside the writer.
    let r = reader(&path);
    assert!(r.is_read_only());
    drop(first);
    let second = LogStore::open(&path).unwrap();
    second.put(b"k", b"v").unwrap();
}

#[test]
fn read_only_handle_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    LogStore::open(&path).unwrap().put(b"k", b"v").unwrap();
    let r = reader(&path);
    for result in [
        r.put(b"k", b"w"),
        r.delete(b"k").map(|_| ()),
        r.put_many(&[(b"x", b"y")]),
        r.put_reader(b"k", &mut &b"w"[..]).map(|_| ()),
        r.compact().map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::Unsupported { .. })),
            "{result:?}"
        );
    }
    assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    let missing = dir.path().join("missing.log");
    assert!(matches!(
        LogStore::options().read_only(true).open(&missing),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists(), "a read-only open creates nothing");
}

#[test]
fn reader_sees_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    w.put(b"a", b"1").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    // A miss refreshes.
    w.put(b"b", b"2").unwrap();
    w.put_reader(b"streamed", &mut &[5u8; 300_000][..]).unwrap();
    assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(r.get(b"streamed").unwrap().unwrap(), vec![5u8; 300_000]);
    // A hit does not: an overwrite shows after refresh().
    w.put(b"a", b"one").unwrap();
    w.delete(b"b").unwrap();
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(r.refresh().unwrap());
    assert!(!r.refresh().unwrap(), "nothing new");
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(r.get(b"b").unwrap(), None);
    // len, keys and scan refresh first.
    w.put(b"c", b"3").unwrap();
    assert_eq!(r.len().unwrap(), 3);
    assert_eq!(contents(&r), contents(&w));
}

#[test]
fn reader_follows_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    for i in 0..20u8 {
        w.put(b"churn", &[i; 100]).unwrap();
    }
    w.put(b"keep", b"kept").unwrap();
    let r = reader(&path);
    let old = r.read(b"churn").unwrap().unwrap();
    let before = r.stats().generation;
    w.compact().unwrap();
    w.put(b"new", b"after compaction").unwrap();
    // The miss refreshes; the new generation makes the reader reopen the new file.
    assert_eq!(
        r.get(b"new").unwrap().as_deref(),
        Some(&b"after compaction"[..])
    );
    assert_ne!(r.stats().generation, before);
    assert_eq!(contents(&r), contents(&w));
    // A value lent before the swap still reads from the old file.
    assert_eq!(&old[..], &[19u8; 100][..]);
}

#[test]
fn reads_lend_bytes_from_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast(&dir.path().join("store.log"));
    store.put(b"k", b"value").unwrap();
    let blob = store.read(b"k").unwrap().unwrap();
    assert!(blob.is_mapped(), "{blob:?}");
    // A later append beyond the map remaps; the first blob keeps its own map.
    store.put(b"k2", &[3; 10_000]).unwrap();
    assert_eq!(store.get(b"k2").unwrap(), Some(vec![3; 10_000]));
    assert_eq!(&blob[..], b"value");
}

#[test]
fn reader_remaps_when_the_file_outgrows_its_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    w.put(b"small", b"x").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"small").unwrap().as_deref(), Some(&b"x"[..]));
    let big = pattern(70 << 20, 11);
    w.put_reader(b"big", &mut &big[..]).unwrap();
    let blob = r.read(b"big").unwrap().unwrap();
    assert!(blob[..] == big[..]);
}

#[test]
fn reader_racing_a_writer_sees_only_whole_values() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Each value names its key and version, so a reader can tell a whole value from a torn one.
    fn value(key: u32, version: u32) -> Vec<u8> {
        let mut v = format!("{key}:{version}:").into_bytes();
        v.resize(
            50 + (key as usize * 131 + version as usize * 17) % 5000,
            key as u8,
        );
        v
    }
    fn parse(v: &[u8]) -> (u32, u32) {
        let mut fields = v
            .split(|&b| b == b':')
            .map(|f| std::str::from_utf8(f).ok().and_then(|f| f.parse().ok()));
        (
            fields.next().flatten().expect("key field"),
            fields.next().flatten().expect("version field"),
        )
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    let r = reader(&path);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..3000u32 {
                let key = i % 97;
                let v = value(key, i);
                if i % 10 == 0 {
                    w.put_reader(&key.to_le_bytes(), &mut &v[..]).unwrap();
                } else {
                    w.put(&key.to_le_bytes(), &v).unwrap();
                }
                if i % 500 == 499 {
                    w.compact().unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut rounds = 0;
        while !done.load(Ordering::SeqCst) || rounds < 2 {
            r.refresh()
                .expect("a reader never sees the live tail as corruption");
            for key in 0..97u32 {
                if let Some(v) = r.get(&key.to_le_bytes()).unwrap() {
                    let (k, version) = parse(&v);
                    assert_eq!(k, key);
                    assert_eq!(v, value(key, version), "whole value of key {key}");
                }
            }
            rounds += 1;
        }
    });
    assert_eq!(contents(&r), contents(&w));
}

#[test]
fn reader_follows_a_log_deleted_and_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    fast(&path).put(b"old", b"1").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"old").unwrap().as_deref(), Some(&b"1"[..]));
    std::fs::remove_file(&path).unwrap();
    fast(&path).put(b"new", b"2").unwrap();
    assert_eq!(r.get(b"new").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(r.get(b"old").unwrap(), None);
}
