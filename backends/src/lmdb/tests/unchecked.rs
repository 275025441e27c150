//! The named unchecked reads (`with_value_unchecked`, `read_unchecked`): they skip the value
//! CRC and nothing else: the framing is checked and a long key's collision still reads as
//! missing, while every checked path refuses the same damaged value.

use super::{plant, small};
use crate::lmdb::layout::{Layout, StoredKey};
use crate::lmdb::LmdbStore;
use crate::Store;

fn lent(store: &LmdbStore, key: &[u8]) -> Option<Vec<u8>> {
    let mut out = None;
    let found = store
        .with_value_unchecked(key, &mut |v| out = Some(v.to_vec()))
        .unwrap();
    assert_eq!(found, out.is_some());
    out
}

#[test]
fn unchecked_reads_lend_the_same_bytes_as_the_checked_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let long = vec![b'L'; 900];
    for key in [&b"short"[..], b"", &long[..], &[b's'; 200][..]] {
        let value = format!("value of a {}-byte key", key.len()).into_bytes();
        store.put(key, &value).unwrap();
        assert_eq!(lent(&store, key).as_deref(), Some(&value[..]));
        assert_eq!(
            store.read_unchecked(key).unwrap().map(|b| b.to_vec()),
            Some(value.clone())
        );
    }
    assert_eq!(lent(&store, b"missing"), None);
    assert!(store.read_unchecked(b"missing").unwrap().is_none());
}

#[test]
fn a_damaged_value_byte_is_lent_unchecked_but_refused_by_every_checked_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let mut raw = Layout::V2.encode(b"k", b"the value");
    *raw.last_mut().unwrap() ^= 0x01;
    plant(&store, StoredKey::new(b"k").bytes(), &raw);
    assert!(store.get(b"k").unwrap_err().is_corrupt());
    assert!(store
        .with_value(b"k", &mut |_| {})
        .unwrap_err()
        .is_corrupt());
    assert_eq!(lent(&store, b"k").as_deref(), Some(&b"the valud"[..]));
    assert_eq!(
        store.read_unchecked(b"k").unwrap().unwrap().to_vec(),
        b"the valud"
    );
    assert_eq!(store.verify().unwrap().damaged.len(), 1);
}

#[test]
fn unchecked_reads_still_refuse_bad_framing_and_collisions() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    // Shorter than the checksum field.
    plant(&store, StoredKey::new(b"short").bytes(), b"ab");
    assert!(store
        .with_value_unchecked(b"short", &mut |_| {})
        .unwrap_err()
        .is_corrupt());
    assert!(store.read_unchecked(b"short").unwrap_err().is_corrupt());
    // A long key's entry claiming a key longer than the value.
    let key = vec![b'k'; 800];
    let mut raw = vec![0u8; 4];
    raw.extend_from_slice(&9999u64.to_le_bytes());
    raw.extend_from_slice(&key);
    plant(&store, StoredKey::new(&key).bytes(), &raw);
    assert!(store
        .with_value_unchecked(&key, &mut |_| {})
        .unwrap_err()
        .is_corrupt());
    // Another long key's entry under this key's hash: missing, not the other value.
    let wanted = vec![b'a'; 700];
    let other = vec![b'b'; 700];
    plant(
        &store,
        StoredKey::new(&wanted).bytes(),
        &Layout::V2.encode(&other, b"other's"),
    );
    assert_eq!(lent(&store, &wanted), None);
    assert!(store.read_unchecked(&wanted).unwrap().is_none());
}
