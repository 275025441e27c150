//! Writes, temp files and their cleanup, iteration over what was written.

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use super::*;
use crate::{Durability, Error, Store};

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

#[cfg(unix)]
#[test]
fn an_old_entry_file_just_renamed_into_tmp_is_not_stale() {
    // An eviction renames an entry file, whose modification time may be hours old, to
    // `tmp/evict-XXXXXX` before comparing it with its record; the cleanup judged it by that
    // old time and could remove another writer's value in the instant before its lock.
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    let entry = temp.path().join("old-entry");
    fs::write(&entry, b"written an hour ago").unwrap();
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&entry)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let taken = temp.path().join("tmp/evict-Taken1");
    fs::rename(&entry, &taken).unwrap();
    assert_eq!(
        store
            .remove_stale_temp_files(Duration::from_secs(600))
            .unwrap(),
        0
    );
    assert!(taken.exists());
    // Stale by the same rule once the rename is older than the age asked for.
    assert_eq!(store.remove_stale_temp_files(Duration::ZERO).unwrap(), 1);
}

#[test]
fn stale_temp_files_are_removed_unless_a_writer_holds_their_lock() {
    let temp = tempfile::tempdir().unwrap();
    let store = DirStore::open(temp.path()).unwrap();
    let dead = temp.path().join("tmp/put-Dead01");
    let live = temp.path().join("tmp/put-Live01");
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
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..3 * crate::dir::PUT_MANY_CHUNK as u32 + 7)
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
