//! LmdbStore tests that need the crate's internals: the raw layout, planted entries, the
//! golden fixtures. Tests of the public API alone live in `backends/tests/lmdb_*.rs`.

mod exit_while_closing;
mod fixtures;
mod gate;
mod parked;
mod periodic;
mod reader_slots;
mod unchecked;

use std::path::Path;

use super::layout::{
    Layout, StoredKey, CRC_LEN, FORMAT_KEY, FORMAT_VERSION, MAGIC, MAX_PLAIN_KEY, META_DB,
    TAG_HASHED, TAG_PLAIN,
};
use super::pages::KEYS_PER_PAGE;
use super::{LmdbEnv, LmdbOptions, LmdbStore, TxnError};
use crate::{Error, Result, Store};

fn small() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(1 << 20)
}

crate::conformance_tests!(
    |dir: &std::path::Path| LmdbStore::open_with(dir, &small()).unwrap(),
    persistent = true
);

/// A store of layout version 1 (as made before version 2): its format record is written
/// before the store first opens, so it keeps writing version-1 values.
fn open_v1(dir: &Path) -> LmdbStore {
    let env = LmdbEnv::open(dir, &small()).unwrap();
    let meta = env.create_database(META_DB).unwrap();
    env.write(|w| meta.put(w, FORMAT_KEY, &Layout::V1.record()))
        .unwrap();
    let store = LmdbStore::from_env(env).unwrap();
    assert_eq!(store.layout_version(), 1);
    store
}

/// The raw LMDB entries of `store`, sorted.
fn raw_entries(store: &LmdbStore) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = store.raw_database();
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = store
        .env()
        .read(|r| -> Result<_, TxnError> {
            let mut out = Vec::new();
            for e in db.iter(r)? {
                let (k, v) = e?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        })
        .unwrap();
    raw.sort();
    raw
}

#[test]
fn a_new_store_is_layout_v2_and_a_v1_store_keeps_v1() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        LmdbStore::open_with(dir.path(), &small())
            .unwrap()
            .layout_version(),
        2
    );
    let dir = tempfile::tempdir().unwrap();
    drop(open_v1(dir.path()));
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    assert_eq!(store.layout_version(), 1);
    store.put(b"k", b"v").unwrap();
    assert_eq!(raw_entries(&store), vec![(b"\0k".to_vec(), b"v".to_vec())]);
}

#[test]
fn v2_values_carry_a_crc_of_their_lmdb_key_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let long = vec![b'x'; 600];
    store.put(b"short", b"value").unwrap();
    store.put(&long, b"long").unwrap();
    let raw = raw_entries(&store);
    let crc_of = |stored: &[u8], rest: &[u8]| {
        let mut c = crc32fast::Hasher::new();
        c.update(stored);
        c.update(rest);
        c.finalize().to_le_bytes()
    };
    assert_eq!(raw[0].0, b"\0short");
    assert_eq!(&raw[0].1[CRC_LEN..], b"value");
    assert_eq!(raw[0].1[..CRC_LEN], crc_of(b"\0short", b"value"));
    let mut hashed = vec![TAG_HASHED];
    hashed.extend_from_slice(blake3::hash(&long).as_bytes());
    let mut body = 600u64.to_le_bytes().to_vec();
    body.extend_from_slice(&long);
    body.extend_from_slice(b"long");
    assert_eq!(raw[1].0, hashed);
    assert_eq!(&raw[1].1[CRC_LEN..], &body[..]);
    assert_eq!(raw[1].1[..CRC_LEN], crc_of(&hashed, &body));
    assert_eq!(Layout::V2.encode(b"short", b"value"), raw[0].1);
    assert_eq!(Layout::V2.encode(&long, b"long"), raw[1].1);
}

#[test]
fn a_value_under_another_key_fails_its_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    // A damaged leaf that pairs one key with another key's (intact) value.
    plant(
        &store,
        StoredKey::new(b"a").bytes(),
        &Layout::V2.encode(b"b", b"b's value"),
    );
    let err = store.get(b"a").unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn long_keys_are_stored_under_a_hash_with_the_full_key_beside_the_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_v1(dir.path());
    let long = vec![b'x'; 600];
    let short = vec![b'y'; MAX_PLAIN_KEY];
    store.put(&long, b"long").unwrap();
    store.put(&short, b"short").unwrap();
    store.put(b"", b"empty").unwrap();
    let env = store.env().clone();
    let db = store.raw_database();
    let mut raw: Vec<(Vec<u8>, Vec<u8>)> = env
        .read(|r| -> Result<_, TxnError> {
            let mut out = Vec::new();
            for e in db.iter(r)? {
                let (k, v) = e?;
                out.push((k.to_vec(), v.to_vec()));
            }
            Ok(out)
        })
        .unwrap();
    raw.sort();
    assert_eq!(raw[0], (vec![TAG_PLAIN], b"empty".to_vec()));
    let mut plain = vec![TAG_PLAIN];
    plain.extend_from_slice(&short);
    assert_eq!(raw[1], (plain, b"short".to_vec()));
    let mut hashed = vec![TAG_HASHED];
    hashed.extend_from_slice(blake3::hash(&long).as_bytes());
    let mut value = 600u64.to_le_bytes().to_vec();
    value.extend_from_slice(&long);
    value.extend_from_slice(b"long");
    assert_eq!(raw[2], (hashed, value));
}

/// Writes `value` under the raw LMDB key `stored`, bypassing the encoding.
fn plant(store: &LmdbStore, stored: &[u8], value: &[u8]) {
    let db = store.raw_database();
    store.env().write(|w| db.put(w, stored, value)).unwrap();
}

#[test]
fn a_hash_collision_reads_as_missing_never_as_the_other_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_v1(dir.path());
    let wanted = vec![b'a'; 700];
    let other = vec![b'b'; 700];
    // Pretend `other` hashed like `wanted`: its entry sits under `wanted`'s stored key.
    let mut value = 700u64.to_le_bytes().to_vec();
    value.extend_from_slice(&other);
    value.extend_from_slice(b"other's value");
    plant(&store, StoredKey::new(&wanted).bytes(), &value);
    assert_eq!(store.get(&wanted).unwrap(), None);
    assert!(!store.contains(&wanted).unwrap());
    assert!(!store.delete(&wanted).unwrap(), "deleted a colliding entry");
    assert_eq!(store.len().unwrap(), 1);
}

#[test]
fn a_v2_hash_collision_reads_as_missing_never_as_the_other_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let wanted = vec![b'a'; 700];
    let other = vec![b'b'; 700];
    // `other`'s entry, sealed under `wanted`'s stored key (a true collision passes the crc).
    let stored = StoredKey::new(&wanted);
    let mut raw = Layout::V2.prefix(&other);
    let mut crc = Layout::V2.hasher(stored.bytes(), &raw);
    crc.update(b"other's value");
    Layout::V2.seal_prefix(&mut raw, crc);
    raw.extend_from_slice(b"other's value");
    plant(&store, stored.bytes(), &raw);
    assert_eq!(store.get(&wanted).unwrap(), None);
    assert!(!store.contains(&wanted).unwrap());
    assert!(!store.delete(&wanted).unwrap(), "deleted a colliding entry");
    assert_eq!(store.len().unwrap(), 1);
}

#[test]
fn a_damaged_long_key_entry_is_reported_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let key = vec![b'k'; 800];
    let mut value = 9999u64.to_le_bytes().to_vec();
    value.extend_from_slice(&key);
    plant(&store, StoredKey::new(&key).bytes(), &value);
    let err = store.get(&key).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    plant(&store, StoredKey::new(&key).bytes(), b"short");
    let err = store.get(&key).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn an_unknown_key_tag_is_reported_corrupt_by_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    store.put(b"fine", b"1").unwrap();
    plant(&store, b"\x07strange", b"2");
    let err = store.keys().unwrap().find_map(Result::err).unwrap();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn a_long_key_whose_hash_does_not_match_is_reported_corrupt_by_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let key = vec![b'k'; 800];
    let mut value = 800u64.to_le_bytes().to_vec();
    value.extend_from_slice(&vec![b'z'; 800]);
    plant(&store, StoredKey::new(&key).bytes(), &value);
    let err = store.scan().unwrap().find_map(Result::err).unwrap();
    assert!(err.is_corrupt(), "{err:?}");
}

fn set_format_record(dir: &Path, record: &[u8]) {
    let store = LmdbStore::open_with(dir, &small()).unwrap();
    let meta = store.env().create_database(META_DB).unwrap();
    store
        .env()
        .write(|w| meta.put(w, FORMAT_KEY, record))
        .unwrap();
}

#[test]
fn a_newer_format_version_requires_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let mut record = MAGIC.to_vec();
    record.extend_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    set_format_record(dir.path(), &record);
    match LmdbStore::open_with(dir.path(), &small()).unwrap_err() {
        Error::UpgradeRequired {
            found, supported, ..
        } => assert_eq!((found, supported), (FORMAT_VERSION + 1, FORMAT_VERSION)),
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn a_bad_format_record_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    set_format_record(dir.path(), b"notcacher\x01\x00\x00\x00");
    let err = LmdbStore::open_with(dir.path(), &small()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn iteration_crosses_page_boundaries_and_allows_writes_between_items() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    let n = KEYS_PER_PAGE * 2 + 17;
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| (format!("k{i:05}").into_bytes(), vec![i as u8; 3]))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    store.put_many(&refs).unwrap();
    let mut seen = 0;
    for k in store.keys().unwrap() {
        let k = k.unwrap();
        // A write from inside iteration must not deadlock: no transaction is held.
        store.put(&k, b"rewritten").unwrap();
        seen += 1;
    }
    assert_eq!(seen, n);
    assert_eq!(store.scan().unwrap().count(), n);
}

mod decoder_never_panics {
    use proptest::prelude::*;

    use crate::lmdb::layout::{fuzz_entry, Layout, StoredKey};

    /// A valid entry of either layout, then up to four bytes overwritten and a cut.
    fn mutated() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
        (
            proptest::collection::vec(any::<u8>(), 0..700),
            proptest::collection::vec(any::<u8>(), 0..300),
            any::<bool>(),
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            any::<usize>(),
        )
            .prop_map(|(key, value, v2, flips, cut)| {
                let layout = if v2 { Layout::V2 } else { Layout::V1 };
                let stored = StoredKey::new(&key).bytes().to_vec();
                let mut raw = layout.encode(&key, &value);
                for (at, byte) in flips {
                    if !raw.is_empty() {
                        let at = at % raw.len();
                        raw[at] = byte;
                    }
                }
                raw.truncate(cut % (raw.len() + 1));
                (stored, raw)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn random_entries_never_panic(
            stored in proptest::collection::vec(any::<u8>(), 0..600),
            raw in proptest::collection::vec(any::<u8>(), 0..1200),
        ) {
            fuzz_entry(&stored, &raw);
        }

        #[test]
        fn mutated_entries_never_panic((stored, raw) in mutated()) {
            fuzz_entry(&stored, &raw);
        }
    }
}

/// The default `max_dbs` holds every store's databases and one of the caller's; one more is
/// refused with an error that names the option, and a larger `max_dbs` lets it open.
#[test]
fn a_database_past_max_dbs_is_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
    // Turns the accounting on: the store's third database.
    crate::accounting::Accounting::enable(&store).unwrap();
    let env = store.env();
    env.create_database("callers-own").unwrap();
    let err = env.create_database("one-too-many").unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err:?}");
    assert!(
        text.contains("LmdbOptions::max_dbs") && text.contains("one-too-many"),
        "{text}"
    );
    drop(store);
    let env = LmdbEnv::open(dir.path(), &small().with_max_dbs(5)).unwrap();
    env.create_database("one-too-many").unwrap();
}
