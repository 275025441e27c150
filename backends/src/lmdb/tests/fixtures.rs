//! The golden fixtures under `fixtures/lmdb/`: their generator and their readers.

use std::path::Path;

use super::{plant, small};
use crate::lmdb::heed;
use crate::lmdb::layout::{StoredKey, FORMAT_KEY, FORMAT_VERSION, MAGIC, META_DB};
use crate::lmdb::LmdbStore;
use crate::{Error, Result, Store};

/// The golden fixtures: one committed LMDB data file per directory under
/// `fixtures/lmdb/`, each opened from a copy so the fixture itself is never written.
fn fixture_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/lmdb")
        .join(name)
}

/// The contents of the `v1-store` fixture.
fn v1_fixture_contents() -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (b"".to_vec(), b"the empty key".to_vec()),
        (b"short".to_vec(), b"value".to_vec()),
        (
            b"binary\x00\xff".to_vec(),
            (0..300u32).map(|i| (i * 7) as u8).collect(),
        ),
        (vec![b'L'; 600], b"a key past LMDB's limit".to_vec()),
    ]
}

fn open_fixture_copy(name: &str) -> (tempfile::TempDir, Result<LmdbStore>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir(name).join("data.mdb"),
        dir.path().join("data.mdb"),
    )
    .unwrap_or_else(|e| panic!("fixture {name} is missing: {e}"));
    let store = LmdbStore::open_with(dir.path(), &small());
    (dir, store)
}

/// Regenerates `fixtures/lmdb/` (run by hand: `cargo test -p cacher-store --features
/// testkit,lmdb generate_lmdb_fixtures -- --ignored`). The tests below only read them.
#[test]
#[ignore = "writes the committed fixtures; run by hand"]
fn generate_lmdb_fixtures() {
    let write = |name: &str, extra: &dyn Fn(&LmdbStore)| {
        let dir = tempfile::tempdir().unwrap();
        let store = LmdbStore::open_with(dir.path(), &small()).unwrap();
        for (k, v) in v1_fixture_contents() {
            store.put(&k, &v).unwrap();
        }
        extra(&store);
        let out = fixture_dir(name);
        std::fs::create_dir_all(&out).unwrap();
        let _ = std::fs::remove_file(out.join("data.mdb"));
        store
            .env()
            .heed()
            .copy_to_path(out.join("data.mdb"), heed::CompactionOption::Enabled)
            .unwrap();
    };
    write("v1-store", &|_| {});
    write("v2-future", &|store| {
        let meta = store.env().create_database(META_DB).unwrap();
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&2u32.to_le_bytes());
        store
            .env()
            .write(|w| meta.put(w, FORMAT_KEY, &record))
            .unwrap();
    });
    write("v1-bad-tag", &|store| plant(store, b"\x07not a tag", b"x"));
    write("v1-bad-long-entry", &|store| {
        plant(
            store,
            StoredKey::new(&[b'L'; 600]).bytes(),
            b"\xff\xff\xff\xff",
        );
    });
}

#[test]
fn v1_fixture_reads_back_exactly() {
    let (_dir, store) = open_fixture_copy("v1-store");
    let store = store.unwrap();
    let expected: std::collections::BTreeMap<_, _> = v1_fixture_contents().into_iter().collect();
    let scanned: std::collections::BTreeMap<_, _> =
        store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(scanned, expected);
    for (k, v) in &expected {
        assert_eq!(store.get(k).unwrap().as_ref(), Some(v));
    }
    assert_eq!(store.len().unwrap(), expected.len() as u64);
}

#[test]
fn v2_fixture_requires_an_upgrade() {
    let (_dir, store) = open_fixture_copy("v2-future");
    match store.unwrap_err() {
        Error::UpgradeRequired {
            found, supported, ..
        } => assert_eq!((found, supported), (2, FORMAT_VERSION)),
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn bad_tag_fixture_is_corrupt_when_iterated() {
    let (_dir, store) = open_fixture_copy("v1-bad-tag");
    let store = store.unwrap();
    let err = store.keys().unwrap().find_map(Result::err).unwrap();
    assert!(err.is_corrupt(), "{err:?}");
}

#[test]
fn bad_long_entry_fixture_is_corrupt_when_read() {
    let (_dir, store) = open_fixture_copy("v1-bad-long-entry");
    let err = store.unwrap().get(&[b'L'; 600]).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}
