//! `Cache::lookup` reads through `Store::with_value_unchecked` and trusts only a version-2
//! envelope bound to the key: a damaged byte is still an error on every store, and bytes the
//! store's own checksum refuses (damaged under it, or another key's) never come back as a
//! value.

use super::*;

use cacher::store::{DirStore, Durability, LogStore};
use serde::de::IgnoredAny;
use std::path::Path;

/// Every store a `Cache` can sit on here, each in its own directory under `dir`.
fn stores(dir: &std::path::Path) -> Vec<(&'static str, Arc<dyn Store>)> {
    let mut all: Vec<(&'static str, Arc<dyn Store>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        (
            "dir",
            Arc::new(
                cacher::store::DirStoreOptions::new()
                    .durability(Durability::None)
                    .open(dir.join("dir"))
                    .unwrap(),
            ) as Arc<DirStore>,
        ),
        (
            "log",
            Arc::new(
                cacher::store::LogOptions::new()
                    .durability(Durability::None)
                    .open(dir.join("store.log"))
                    .unwrap(),
            ) as Arc<LogStore>,
        ),
    ];
    #[cfg(feature = "lmdb")]
    {
        all.push(("lmdb", Arc::new(lmdb(&dir.join("lmdb")))));
        all.push((
            "hybrid",
            Arc::new(cacher::store::HybridStore::open(dir.join("hybrid")).unwrap()),
        ));
        all.push((
            "tiered",
            Arc::new(Tiered::new(lmdb(&dir.join("tiered")), 1 << 20)),
        ));
    }
    all
}

#[cfg(feature = "lmdb")]
fn lmdb(dir: &std::path::Path) -> cacher::store::LmdbStore {
    let options = cacher::store::lmdb::LmdbOptions::default().with_durability(Durability::None);
    cacher::store::LmdbStore::open_with(dir, &options).unwrap()
}

fn response() -> Response {
    Response {
        status: 200,
        body: "a body long enough to damage".into(),
    }
}

#[test]
fn a_damaged_byte_anywhere_in_a_value_is_an_error_on_every_store() {
    let dir = tempfile::tempdir().unwrap();
    for (name, store) in stores(dir.path()) {
        let cache = Cache::builder().store(store.clone()).build().unwrap();
        cache.put("k", &response()).unwrap();
        assert_eq!(
            cache.get::<Response>("k").unwrap(),
            Some(response()),
            "{name}"
        );
        let good = store.get(b"k").unwrap().unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x01;
            // Written through the store, so its own checksum holds: only the envelope's can
            // catch the damage.
            store.put(b"k", &bad).unwrap();
            let got = cache.get::<Response>("k");
            assert!(got.is_err(), "{name}: byte {at} damaged read as {got:?}");
        }
    }
}

#[cfg(feature = "lmdb")]
mod lmdb_raw {
    use super::*;
    use cacher::store::LmdbStore;

    /// The raw LMDB entry of a short `key`: its stored key (a tag byte, then the key) and
    /// value (the store's checksum prefix, then the value).
    fn raw_entry(store: &LmdbStore, key: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let db = store.raw_database();
        let rtxn = store.env().heed().read_txn().unwrap();
        for entry in db.iter(&rtxn).unwrap() {
            let (k, v) = entry.unwrap();
            if &k[1..] == key {
                return (k.to_vec(), v.to_vec());
            }
        }
        panic!("no raw entry for {key:?}");
    }

    fn put_raw(store: &LmdbStore, raw_key: &[u8], raw_value: &[u8]) {
        let db = store.raw_database();
        let mut wtxn = store.env().heed().write_txn().unwrap();
        db.put(&mut wtxn, raw_key, raw_value).unwrap();
        wtxn.commit().unwrap();
    }

    /// Rewrites the raw LMDB value of `key` (the store's checksum prefix and the value).
    fn rewrite_raw(store: &LmdbStore, key: &[u8], edit: impl FnOnce(&mut Vec<u8>)) {
        let (raw_key, mut raw) = raw_entry(store, key);
        edit(&mut raw);
        put_raw(store, &raw_key, &raw);
    }

    /// Puts `from`'s raw value under `to`, without touching the store's checksum.
    fn copy_raw(store: &LmdbStore, from: &[u8], to: &[u8]) {
        let (raw_key, raw) = raw_entry(store, from);
        let to_key: Vec<u8> = [&raw_key[..1], to].concat();
        put_raw(store, &to_key, &raw);
    }

    #[test]
    fn a_byte_damaged_under_lmdbs_checksum_is_an_error_not_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(lmdb(dir.path()));
        let cache = Cache::builder().store(store.clone()).build().unwrap();
        cache.put("k", &response()).unwrap();
        let len = store.get(b"k").unwrap().unwrap().len();
        let raw_len = {
            let mut n = 0;
            rewrite_raw(&store, b"k", |raw| n = raw.len());
            n
        };
        for at in raw_len - len..raw_len {
            rewrite_raw(&store, b"k", |raw| raw[at] ^= 0x01);
            let got = cache.get::<Response>("k");
            assert!(got.is_err(), "raw byte {at} damaged read as {got:?}");
            rewrite_raw(&store, b"k", |raw| raw[at] ^= 0x01);
        }
        assert_eq!(cache.get::<Response>("k").unwrap(), Some(response()));
    }

    #[test]
    fn another_keys_bytes_are_refused_for_envelope_v2_and_v1() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(lmdb(dir.path()));
        // At time 0, so the fixture's recorded expiry has not passed.
        let cache = Cache::builder()
            .store(store.clone())
            .clock(ManualClock::new(0))
            .build()
            .unwrap();
        cache.put("v2", &response()).unwrap();
        // A version-1 envelope is not bound to its key: only the store's checksum (which
        // covers the key) can tell that it sits under another key's entry.
        let v1 = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/formats/v1/envelope-json.bin"),
        )
        .unwrap();
        store.put(b"v1", &v1).unwrap();
        assert!(cache.get::<IgnoredAny>("v1").unwrap().is_some());
        copy_raw(&store, b"v2", b"other-v2");
        copy_raw(&store, b"v1", b"other-v1");
        let got = cache.get::<Response>("other-v2");
        assert!(got.is_err(), "another key's v2 value read as {got:?}");
        let got = cache.get::<IgnoredAny>("other-v1");
        assert!(got.is_err(), "another key's v1 value read as {got:?}");
    }
}
