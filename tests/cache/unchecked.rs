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

/// Damage at rest, on every disk store: each byte of a stored entry flipped in the files
/// themselves (under the store's own checksum, while the store is open), then read through a
/// `Cache`, whose hits lend the store's bytes unchecked where the store allows it (LogStore's
/// map, HybridStore's inline records, LMDB) and leave every check to the envelope.
mod at_rest {
    use super::*;
    use std::io::{Read, Seek, SeekFrom, Write};
    use std::path::PathBuf;

    /// Every regular file under `dir`.
    fn files_under(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else if path.is_file() {
                out.push(path);
            }
        }
        out
    }

    /// The file under `dir` holding `needle` once, and where.
    fn find(dir: &Path, needle: &[u8]) -> (PathBuf, usize) {
        let mut found = Vec::new();
        for path in files_under(dir) {
            let bytes = std::fs::read(&path).unwrap();
            let hits: Vec<usize> = bytes
                .windows(needle.len())
                .enumerate()
                .filter(|(_, w)| *w == needle)
                .map(|(at, _)| at)
                .collect();
            found.extend(hits.into_iter().map(|at| (path.clone(), at)));
        }
        assert_eq!(found.len(), 1, "the stored value under {dir:?}: {found:?}");
        found.remove(0)
    }

    /// Flips bit 0 of the byte at `at` of `path` in place (the same inode, so a store's open
    /// map sees it).
    fn flip(path: &Path, at: u64) {
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let mut byte = [0u8];
        file.seek(SeekFrom::Start(at)).unwrap();
        file.read_exact(&mut byte).unwrap();
        byte[0] ^= 0x01;
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&byte).unwrap();
    }

    /// Puts `value` under "k" through a cache on `store` (files under `dir`), then flips each
    /// byte of the stored value and of up to `before` bytes in front of it (the store's
    /// framing: its checksum, record header, key) in turn: a damaged value byte must be an
    /// error or a miss, a damaged framing byte an error, a miss or the value as written —
    /// never another value.
    fn flip_each_byte<S: Store + 'static>(name: &str, dir: &Path, store: S, before: usize) {
        let store = Arc::new(store);
        let cache = Cache::builder().store(store.clone()).build().unwrap();
        let value = Response {
            status: 200,
            body: "a body long enough to damage, and to find in a file".into(),
        };
        cache.put("k", &value).unwrap();
        assert_eq!(cache.get::<Response>("k").unwrap(), Some(value.clone()));
        let stored = store.get(b"k").unwrap().unwrap();
        let (path, at) = find(dir, &stored);
        let from = at.saturating_sub(before);
        for pos in from..at + stored.len() {
            flip(&path, pos as u64);
            let got = cache.get::<Response>("k");
            flip(&path, pos as u64);
            let in_value = pos >= at;
            match got {
                Err(_) | Ok(None) => {}
                Ok(Some(v)) if !in_value && v == value => {}
                Ok(Some(v)) => panic!(
                    "{name}: byte {pos} ({} the value) damaged on disk read as {v:?}",
                    if in_value { "inside" } else { "in front of" }
                ),
            }
        }
        assert_eq!(
            cache.get::<Response>("k").unwrap(),
            Some(value),
            "{name}: read again once every byte is restored"
        );
    }

    #[test]
    fn a_byte_damaged_on_disk_under_the_stores_checksum_is_never_read_as_a_value() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        std::fs::create_dir(&log).unwrap();
        let store = cacher::store::LogOptions::new()
            .durability(Durability::None)
            .open(log.join("store.log"))
            .unwrap();
        flip_each_byte("log", &log, store, 64);
        let dirstore = dir.path().join("dir");
        let store = cacher::store::DirStoreOptions::new()
            .durability(Durability::None)
            .open(&dirstore)
            .unwrap();
        flip_each_byte("dir", &dirstore, store, 64);
        #[cfg(feature = "lmdb")]
        {
            let path = dir.path().join("lmdb");
            flip_each_byte("lmdb", &path, lmdb(&path), 8);
            let path = dir.path().join("hybrid-inline");
            let store = cacher::store::HybridStore::open(&path).unwrap();
            flip_each_byte("hybrid, inline", &path, store, 8);
            let path = dir.path().join("hybrid-file");
            let store = cacher::store::HybridStore::options()
                .inline_max(16)
                .open(&path)
                .unwrap();
            flip_each_byte("hybrid, in a file", &path, store, 64);
        }
    }
}
