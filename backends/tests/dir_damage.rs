//! Damaged DirStore entry files are never read as a wrong value (issue 9): every checked read
//! path refuses a damaged value, mapped or copied; `read_unchecked` is the one path that
//! skips the value checksum of a mapped value; `verify` reports each damaged entry; and random
//! or mutated entry files never panic.

use std::fs;
use std::path::Path;

use cacher_store::{DirStore, Durability, Error, Store, DEFAULT_MMAP_THRESHOLD};
use proptest::prelude::*;

fn store(dir: &Path, mmap_threshold: u64) -> DirStore {
    DirStore::options()
        .durability(Durability::None)
        .mmap_threshold(mmap_threshold)
        .open(dir)
        .unwrap()
}

fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at] ^= mask;
    fs::write(path, bytes).unwrap();
}

fn assert_corrupt<T: std::fmt::Debug>(what: &str, r: cacher_store::Result<T>) {
    match r {
        Err(e) if e.is_corrupt() => {}
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_in_a_mapped_value_is_corrupt_on_every_checked_read() {
    let temp = tempfile::tempdir().unwrap();
    let store = store(temp.path(), DEFAULT_MMAP_THRESHOLD);
    let value: Vec<u8> = (0..2 * DEFAULT_MMAP_THRESHOLD as u32)
        .map(|i| (i % 251) as u8)
        .collect();
    store.put(b"big", &value).unwrap();
    store.put(b"small", b"fine").unwrap();
    assert!(store.read(b"big").unwrap().unwrap().is_mapped());
    let path = store.entry_path(b"big");
    let at = fs::metadata(&path).unwrap().len() as usize - 1000;
    flip(&path, at, 0x10);

    assert_corrupt("read", store.read(b"big"));
    let mut called = false;
    assert_corrupt(
        "with_value",
        store.with_value(b"big", &mut |_| called = true),
    );
    assert!(!called, "with_value must not lend damaged bytes");
    assert_corrupt("get", store.get(b"big"));
    assert_corrupt("get_many", store.get_many(&[b"small", b"big"]));
    let scanned: Vec<_> = store.scan().unwrap().collect();
    assert_eq!(scanned.len(), 2);
    assert!(
        scanned
            .iter()
            .any(|r| matches!(r, Err(e) if e.is_corrupt())),
        "{scanned:?}"
    );
    // The named unchecked path lends the mapped bytes as they are, damage included.
    let view = store.read_unchecked(b"big").unwrap().unwrap();
    assert!(view.is_mapped());
    assert_eq!(view.len(), value.len());
    assert_ne!(&view[..], &value[..]);
    let report = store.verify().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_eq!(report.damaged[0].0, b"big");
    assert!(report.damaged[0].1.is_corrupt());
}

#[test]
fn verify_reports_every_damaged_entry_and_checks_mapped_ones() {
    let temp = tempfile::tempdir().unwrap();
    let store = store(temp.path(), 4096);
    let big = vec![3u8; 100_000];
    for k in [&b"a"[..], b"b", b"c", b"mapped-1", b"mapped-2"] {
        let v = if k.starts_with(b"mapped") {
            &big[..]
        } else {
            &b"small"[..]
        };
        store.put(k, v).unwrap();
    }
    // A damaged value in a mapped entry, and a damaged header (its key cannot be trusted).
    flip(&store.entry_path(b"mapped-2"), 50_000, 0x01);
    let header_damaged = store.entry_path(b"b");
    flip(&header_damaged, 0, 0x20);
    let report = store.verify().unwrap();
    assert_eq!(report.checked, 5, "{report:?}");
    assert_eq!(report.damaged.len(), 2, "{report:?}");
    let mapped = report
        .damaged
        .iter()
        .find(|(k, _)| k == b"mapped-2")
        .expect("the mapped entry is reported under its key");
    assert!(mapped.1.is_corrupt());
    let unreadable = report
        .damaged
        .iter()
        .find(|(k, _)| k != b"mapped-2")
        .unwrap();
    match &unreadable.1 {
        Error::Corrupt { path, .. } => assert_eq!(path, &header_damaged),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Undamaged entries still read.
    assert_eq!(store.get(b"mapped-1").unwrap().unwrap(), big);
}

/// One outcome of reading a damaged entry: the old value, or an error. Never another value.
fn assert_old_or_error(what: &str, got: cacher_store::Result<Option<Vec<u8>>>, old: &[u8]) {
    match got {
        Ok(Some(v)) => assert_eq!(v, old, "{what} returned a wrong value"),
        Ok(None) => panic!("{what}: the entry file exists, yet it read as missing"),
        Err(_) => {}
    }
}

/// Every read path of `store` on `key` after damage.
fn check_every_read(store: &DirStore, key: &[u8], old: &[u8], what: &str) {
    assert_old_or_error(&format!("{what}: get"), store.get(key), old);
    assert_old_or_error(
        &format!("{what}: read"),
        store.read(key).map(|b| b.map(|b| b.to_vec())),
        old,
    );
    let mut lent = None;
    let r = store.with_value(key, &mut |v| lent = Some(v.to_vec()));
    assert_old_or_error(&format!("{what}: with_value"), r.map(|_| lent), old);
    assert_old_or_error(
        &format!("{what}: get_many"),
        store.get_many(&[key]).map(|mut v| v.pop().unwrap()),
        old,
    );
    if let Ok(Some(meta)) = store.meta(key) {
        assert_eq!(meta.len, old.len() as u64, "{what}: meta");
    }
    for (k, v) in store.scan().unwrap().flatten() {
        assert_eq!((&k[..], &v[..]), (key, old), "{what}: scan");
    }
    for k in store.keys().unwrap().flatten() {
        assert_eq!(k, key, "{what}: keys");
    }
}

#[test]
fn every_flipped_byte_of_a_small_entry_reads_as_the_old_value_or_an_error() {
    let key = b"some key";
    let old = b"the old value, a few bytes long";
    // Copied reads, and the same file read through a map.
    for threshold in [DEFAULT_MMAP_THRESHOLD, 33] {
        let temp = tempfile::tempdir().unwrap();
        let store = store(temp.path(), threshold);
        store.put(key, old).unwrap();
        let path = store.entry_path(key);
        let pristine = fs::read(&path).unwrap();
        for at in 0..pristine.len() {
            for mask in [0x01, 0x80, 0xff] {
                let mut damaged = pristine.clone();
                damaged[at] ^= mask;
                fs::write(&path, &damaged).unwrap();
                let what = format!("threshold {threshold}, byte {at} ^ {mask:#04x}");
                check_every_read(&store, key, old, &what);
                let report = store.verify().unwrap();
                assert_eq!(report.damaged.len(), 1, "{what}: verify misses the damage");
            }
        }
    }
}

/// The never-panic property the `cargo-fuzz` target for DirStore entries would check: write
/// `bytes` as `key`'s entry file and run every read over it. Only the public API is used, so
/// a fuzz target can call the same steps.
fn read_planted_entry(store: &DirStore, key: &[u8], bytes: &[u8], old: &[u8], pristine: bool) {
    fs::write(store.entry_path(key), bytes).unwrap();
    if pristine {
        assert_eq!(store.get(key).unwrap().as_deref(), Some(old));
    }
    check_every_read(store, key, old, "mutated entry");
    let _ = store.read_unchecked(key).map(|b| b.map(|b| b.len()));
    let _ = store.verify().unwrap();
    let _ = store.len().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mutated_entry_files_never_panic_and_never_read_as_a_wrong_value(
        mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in proptest::option::of(any::<prop::sample::Index>()),
        tail in proptest::collection::vec(any::<u8>(), 0..3),
        mapped in any::<bool>(),
    ) {
        let temp = tempfile::tempdir().unwrap();
        let store = store(temp.path(), if mapped { 33 } else { DEFAULT_MMAP_THRESHOLD });
        let key = b"fuzzed key";
        let old = b"a value of modest length for the fuzzer";
        store.put(key, old).unwrap();
        let mut bytes = fs::read(store.entry_path(key)).unwrap();
        for (at, x) in &mutations {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        bytes.extend_from_slice(&tail);
        let pristine = bytes == fs::read(store.entry_path(key)).unwrap();
        read_planted_entry(&store, key, &bytes, old, pristine);
    }

    #[test]
    fn random_entry_files_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..200),
        header in any::<bool>(),
    ) {
        let temp = tempfile::tempdir().unwrap();
        let store = store(temp.path(), 64);
        let key = b"k";
        store.put(key, b"v").unwrap();
        // Half the cases keep a valid magic and version so decoding goes past them.
        let mut planted = if header {
            let mut h = b"CACHRDIR".to_vec();
            h.extend_from_slice(&1u32.to_le_bytes());
            h
        } else {
            Vec::new()
        };
        planted.extend_from_slice(&bytes);
        read_planted_entry(&store, key, &planted, b"v", false);
    }
}
