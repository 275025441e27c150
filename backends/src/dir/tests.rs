use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{DirStore, DirStoreOptions};
use crate::{Durability, Error, KeyDisplay, Store};

mod none {
    use super::*;

    crate::conformance_tests!(
        |dir: &std::path::Path| DirStore::options()
            .durability(Durability::None)
            .open(dir)
            .unwrap(),
        persistent = true
    );
}

mod flush {
    use super::*;

    crate::conformance_tests!(
        |dir: &std::path::Path| DirStore::open(dir).unwrap(),
        persistent = true
    );
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/dir")
}

/// The entries of `fixtures/dir/v1`.
fn fixture_entries() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let large: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
    [
        (&b"hello"[..], &b"world"[..]),
        (b"", b"the empty key"),
        (b"empty-value", b""),
        (b"../../etc/passwd", b"not a path"),
        (b"nul\0and\xff", &[0, 1, 2, 0xfe, 0xff]),
        ("ключ".as_bytes(), "значение".as_bytes()),
        // Above 64 KiB: read back through a map when the threshold is lowered to that.
        (b"large", &large),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A copy of fixture `name` in a temp dir (opening creates `tmp/`, so never open in place).
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join(name);
    copy_tree(&fixtures().join(name), &dir);
    (temp, dir)
}

fn sorted_keys(store: &DirStore) -> Vec<Vec<u8>> {
    let mut keys: Vec<_> = store.keys().unwrap().map(Result::unwrap).collect();
    keys.sort();
    keys
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

/// Writes `fixtures/dir/*`. Run on purpose only: `cargo test -p cacher-store
/// generate_dir_fixtures -- --ignored`.
#[test]
#[ignore]
fn generate_dir_fixtures() {
    let root = fixtures();
    let fresh = |name: &str| {
        let dir = root.join(name);
        let _ = fs::remove_dir_all(&dir);
        let store = DirStore::options()
            .durability(Durability::None)
            .open(&dir)
            .unwrap();
        (dir, store)
    };
    let (_, store) = fresh("v1");
    for (k, v) in fixture_entries() {
        store.put(&k, &v).unwrap();
    }
    let damaged = |name: &str, damage: &dyn Fn(&mut Vec<u8>)| {
        let (_, store) = fresh(name);
        store.put(b"hello", b"world").unwrap();
        let path = store.entry_path(b"hello");
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, bytes).unwrap();
    };
    damaged("v1-corrupt-truncated", &|b| b.truncate(40));
    damaged("v1-corrupt-magic", &|b| b[0] ^= 0x20);
    damaged("v1-corrupt-checksum", &|b| b[28] ^= 0x01);
    damaged("v1-corrupt-value", &|b| *b.last_mut().unwrap() ^= 0x01);
    damaged("v1-future-version", &|b| {
        b[8..12].copy_from_slice(&2u32.to_le_bytes())
    });
    let (dir, store) = fresh("v1-future-layout");
    store.put(b"hello", b"world").unwrap();
    let marker = dir.join(super::format::MARKER_NAME);
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(&marker, text.replace("version = 1", "version = 2")).unwrap();
    for name in fs::read_dir(&root).unwrap() {
        let _ = fs::remove_dir(name.unwrap().path().join("tmp"));
    }
}

#[test]
fn fixture_v1_opens_with_exact_contents() {
    let (_t, dir) = fixture_copy("v1");
    let store = DirStore::open(&dir).unwrap();
    let expected = fixture_entries();
    for (k, v) in &expected {
        assert_eq!(store.get(k).unwrap().as_ref(), Some(v), "value of {k:?}");
        assert_eq!(store.meta(k).unwrap().unwrap().len, v.len() as u64);
    }
    assert_eq!(store.len().unwrap(), expected.len() as u64);
    assert_eq!(
        sorted_keys(&store),
        expected.keys().cloned().collect::<Vec<_>>()
    );
    let scanned: BTreeMap<_, _> = store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(scanned, expected);
    assert_eq!(store.verify_all().unwrap(), expected.len() as u64);
    assert!(!store.read(b"large").unwrap().unwrap().is_zero_copy());
    // The same entries read through memory maps.
    let mapped = store_with_threshold(&dir, 64 * 1024);
    let blob = mapped.read(b"large").unwrap().unwrap();
    assert!(blob.is_mapped());
    assert_eq!(&blob[..], &expected[&b"large"[..]][..]);
    assert!(!mapped.read(b"hello").unwrap().unwrap().is_zero_copy());
}

#[test]
fn writing_today_gives_the_v1_fixture_bytes() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::options()
        .durability(Durability::None)
        .open(temp.path())
        .unwrap();
    for (k, v) in fixture_entries() {
        store.put(&k, &v).unwrap();
        let path = store.entry_path(&k);
        let ours = fs::read(&path).unwrap();
        let relative = path.strip_prefix(temp.path()).unwrap();
        let golden = fs::read(fixtures().join("v1").join(relative)).unwrap();
        assert!(
            ours == golden,
            "entry file of {k:?} differs from the fixture"
        );
    }
    let marker = super::format::MARKER_NAME;
    assert_eq!(
        fs::read(temp.path().join(marker)).unwrap(),
        fs::read(fixtures().join("v1").join(marker)).unwrap()
    );
}

fn open_damaged(name: &str) -> (tempfile::TempDir, DirStore, PathBuf) {
    let (t, dir) = fixture_copy(name);
    let store = DirStore::open(&dir).unwrap();
    let path = store.entry_path(b"hello");
    (t, store, path)
}

#[test]
fn fixture_truncated_file_is_corrupt() {
    let (_t, store, path) = open_damaged("v1-corrupt-truncated");
    assert_corrupt(
        store.get(b"hello").unwrap_err(),
        &path,
        b"hello",
        "truncated",
    );
    assert_corrupt(
        store.meta(b"hello").unwrap_err(),
        &path,
        b"hello",
        "truncated",
    );
    let err = store.keys().unwrap().next().unwrap().unwrap_err();
    assert!(err.is_corrupt(), "{err}");
}

#[test]
fn fixture_bad_magic_is_corrupt() {
    let (_t, store, path) = open_damaged("v1-corrupt-magic");
    assert_corrupt(
        store.get(b"hello").unwrap_err(),
        &path,
        b"hello",
        "bad magic",
    );
    assert!(store.verify_all().unwrap_err().is_corrupt());
}

#[test]
fn fixture_flipped_header_checksum_is_corrupt() {
    let (_t, store, path) = open_damaged("v1-corrupt-checksum");
    assert_corrupt(
        store.get(b"hello").unwrap_err(),
        &path,
        b"hello",
        "header checksum",
    );
    assert_corrupt(
        store.meta(b"hello").unwrap_err(),
        &path,
        b"hello",
        "header checksum",
    );
}

#[test]
fn fixture_flipped_value_byte_is_corrupt() {
    let (_t, store, path) = open_damaged("v1-corrupt-value");
    assert_corrupt(
        store.get(b"hello").unwrap_err(),
        &path,
        b"hello",
        "value checksum",
    );
    assert_corrupt(
        store.verify(b"hello").unwrap_err(),
        &path,
        b"hello",
        "value checksum",
    );
    // The header is whole, so listing still works.
    assert_eq!(sorted_keys(&store), vec![b"hello".to_vec()]);
}

#[test]
fn fixture_future_entry_version_requires_upgrade() {
    let (_t, store, path) = open_damaged("v1-future-version");
    match store.get(b"hello").unwrap_err() {
        Error::UpgradeRequired {
            path: p,
            found,
            supported,
        } => assert_eq!((p, found, supported), (path, 2, 1)),
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn fixture_future_layout_requires_upgrade_on_open() {
    let (_t, dir) = fixture_copy("v1-future-layout");
    match DirStore::open(&dir).unwrap_err() {
        Error::UpgradeRequired {
            path,
            found,
            supported,
        } => assert_eq!(
            (path, found, supported),
            (dir.join("cacher-dir.toml"), 2, 1)
        ),
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn garbage_marker_is_corrupt_on_open() {
    let temp = tempfile::tempdir().unwrap();
    let marker = temp.path().join("cacher-dir.toml");
    fs::write(&marker, "hello").unwrap();
    match DirStore::open(temp.path()).unwrap_err() {
        Error::Corrupt { path, .. } => assert_eq!(path, marker),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn store_with_threshold(dir: &Path, threshold: u64) -> DirStore {
    DirStore::options()
        .durability(Durability::None)
        .mmap_threshold(threshold)
        .open(dir)
        .unwrap()
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
fn verify_catches_damage_that_a_mapped_read_does_not_check() {
    let temp = tempfile::tempdir().unwrap();
    let store = store_with_threshold(temp.path(), 64);
    store.put(b"k", &[5u8; 4000]).unwrap();
    let path = store.entry_path(b"k");
    let mut bytes = fs::read(&path).unwrap();
    bytes[2000] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let blob = store.read(b"k").unwrap().unwrap();
    assert!(blob.is_mapped());
    drop(blob);
    assert_corrupt(
        store.verify(b"k").unwrap_err(),
        &path,
        b"k",
        "value checksum",
    );
    assert!(store.verify_all().unwrap_err().is_corrupt());
    assert!(!store.verify(b"missing").unwrap());
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

#[test]
fn iteration_skips_temp_and_foreign_files() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    store.put(b"k", b"v").unwrap();
    fs::write(temp.path().join("tmp/put-half-written"), b"CACHRDIR\x01").unwrap();
    fs::create_dir_all(temp.path().join("v1/ab")).unwrap();
    fs::write(temp.path().join("v1/ab/README"), b"x").unwrap();
    fs::create_dir_all(temp.path().join("v1/not-hex")).unwrap();
    fs::write(temp.path().join("v1/not-hex").join("a".repeat(64)), b"x").unwrap();
    assert_eq!(sorted_keys(&store), vec![b"k".to_vec()]);
    assert_eq!(store.len().unwrap(), 1);
    assert_eq!(store.scan().unwrap().count(), 1);
}

#[test]
fn stale_temp_files_are_removed_unless_a_writer_holds_their_lock() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    let dead = temp.path().join("tmp/put-dead");
    let live = temp.path().join("tmp/put-live");
    fs::write(&dead, b"left by a crashed writer").unwrap();
    fs::write(&live, b"being written").unwrap();
    let writer = fs::File::open(&live).unwrap();
    writer.lock().unwrap();
    // Both are younger than the default age: an ordinary open keeps them.
    drop(DirStore::open(temp.path()).unwrap());
    assert!(dead.exists() && live.exists());
    assert_eq!(store.remove_stale_temp_files(Duration::ZERO).unwrap(), 1);
    assert!(!dead.exists(), "the unlocked temp file is removed");
    assert!(live.exists(), "a temp file a writer holds is kept");
    drop(writer);
    let reopened = DirStoreOptions::new()
        .stale_temp_age(Duration::ZERO)
        .open(temp.path())
        .unwrap();
    assert!(!live.exists(), "removed on open once its writer is gone");
    assert_eq!(reopened.remove_stale_temp_files(Duration::ZERO).unwrap(), 0);
}

#[test]
fn a_failing_reader_leaves_the_old_value_and_no_temp_file() {
    struct Broken(usize);
    impl std::io::Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(1);
            self.0 -= n;
            Ok(n)
        }
    }
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    store.put(b"k", b"old").unwrap();
    let err = store.put_reader(b"k", &mut Broken(1 << 20)).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(fs::read_dir(temp.path().join("tmp")).unwrap().count(), 0);
}

#[test]
fn delete_removes_a_damaged_entry() {
    let (_t, store, path) = open_damaged("v1-corrupt-magic");
    assert!(store.delete(b"hello").unwrap());
    assert!(!path.exists());
    assert_eq!(store.get(b"hello").unwrap(), None);
}

#[test]
fn flush_after_unsynced_writes_succeeds() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::options()
        .durability(Durability::None)
        .open(temp.path())
        .unwrap();
    assert_eq!(store.durability(), Durability::None);
    store.put_many(&[(b"a", b"1"), (b"b", b"2")]).unwrap();
    store.flush().unwrap();
    assert_eq!(DirStore::open(temp.path()).unwrap().len().unwrap(), 2);
}

#[test]
fn put_many_larger_than_a_chunk_keeps_order_and_last_wins() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..3 * super::PUT_MANY_CHUNK as u32 + 7)
        .map(|i| {
            let k = format!("k{}", i % 500).into_bytes();
            (k, i.to_le_bytes().to_vec())
        })
        .collect();
    let entries: Vec<(&[u8], &[u8])> = owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    store.put_many(&entries).unwrap();
    let mut last = BTreeMap::new();
    for (k, v) in &owned {
        last.insert(k.clone(), v.clone());
    }
    assert_eq!(store.len().unwrap(), last.len() as u64);
    for (k, v) in &last {
        assert_eq!(store.get(k).unwrap().as_ref(), Some(v), "key {k:?}");
    }
    assert_eq!(fs::read_dir(temp.path().join("tmp")).unwrap().count(), 0);
}
