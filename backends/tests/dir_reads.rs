//! DirStore reads: copied or mapped by size, a mapped value whole after its entry is replaced,
//! damage caught, entry names never taken from the key. Public API only.

use std::fs;
use std::path::Path;

use cacher_store::{DirStore, Durability, Error, KeyDisplay, Store};

fn store_with_threshold(dir: &Path, threshold: u64) -> DirStore {
    DirStore::options()
        .durability(Durability::None)
        .mmap_threshold(threshold)
        .open(dir)
        .unwrap()
}

fn assert_corrupt(err: Error, path: &Path, key: &[u8], reason_has: &str) {
    match err {
        Error::Corrupt {
            path: p,
            key: k,
            reason,
        } => {
            assert_eq!(p, path, "path in the corrupt error");
            assert_eq!(k, Some(KeyDisplay::new(key)), "key in the corrupt error");
            assert!(
                reason.contains(reason_has),
                "reason {reason:?} should mention {reason_has:?}"
            );
        }
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
}

#[test]
fn files_at_the_threshold_are_mapped_and_smaller_ones_owned() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 1000);
    // 32 header + 1 key byte + value.
    store.put(b"a", &[1; 967]).unwrap();
    store.put(b"b", &[2; 966]).unwrap();
    let a = store.read(b"a").unwrap().unwrap();
    let b = store.read(b"b").unwrap().unwrap();
    assert!(a.is_mapped(), "{a:?}");
    assert!(!b.is_zero_copy(), "{b:?}");
    assert!(a[..] == [1; 967] && b[..] == [2; 966]);
}

#[test]
fn a_mapped_value_stays_whole_after_overwrite_and_delete() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 64);
    let old = vec![7u8; 5000];
    store.put(b"k", &old).unwrap();
    let blob = store.read(b"k").unwrap().unwrap();
    store.put(b"k", &[9u8; 3000]).unwrap();
    assert!(blob[..] == old[..]);
    store.delete(b"k").unwrap();
    assert!(blob[..] == old[..]);
}

#[test]
fn verify_catches_damage_that_an_unchecked_mapped_read_does_not_check() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 64);
    store.put(b"k", &[5u8; 4000]).unwrap();
    let path = store.entry_path(b"k");
    let mut bytes = fs::read(&path).unwrap();
    bytes[2000] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let blob = store.read_unchecked(b"k").unwrap().unwrap();
    assert!(blob.is_mapped());
    drop(blob);
    assert_corrupt(
        store.verify_key(b"k").unwrap_err(),
        &path,
        b"k",
        "value checksum",
    );
    let report = store.verify().unwrap();
    assert!(report.damaged.len() == 1 && report.damaged[0].1.is_corrupt());
    assert!(!store.verify_key(b"missing").unwrap());
}

#[test]
fn truncated_large_file_is_corrupt_not_a_crash() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 64);
    store.put(b"k", &[5u8; 100_000]).unwrap();
    let path = store.entry_path(b"k");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(50_000)
        .unwrap();
    assert_corrupt(store.read(b"k").unwrap_err(), &path, b"k", "truncated");
}

#[test]
fn entry_files_are_named_by_the_key_hash_never_the_key() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    store.put(b"../../escape", b"v").unwrap();
    let hex = blake3::hash(b"../../escape").to_hex();
    let expected = temp.path().join("v1").join(&hex[..2]).join(hex.as_str());
    assert_eq!(store.entry_path(b"../../escape"), expected);
    assert!(expected.is_file());
    let mut top: Vec<_> = fs::read_dir(temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    top.sort();
    assert_eq!(top, ["cacher-dir.toml", "tmp", "v1"]);
}

#[test]
fn a_file_holding_another_key_is_corrupt_not_returned() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    store.put(b"a", b"value of a").unwrap();
    let b_path = store.entry_path(b"b");
    fs::create_dir_all(b_path.parent().unwrap()).unwrap();
    fs::copy(store.entry_path(b"a"), &b_path).unwrap();
    assert_corrupt(
        store.get(b"b").unwrap_err(),
        &b_path,
        b"b",
        "hash of another key",
    );
    let errors = store.keys().unwrap().filter(|k| k.is_err()).count();
    assert_eq!(errors, 1, "the misplaced file is reported by keys");
}
