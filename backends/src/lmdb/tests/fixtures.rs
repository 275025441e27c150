//! The golden fixtures under `fixtures/lmdb/`: their generator and their readers.

use std::path::Path;

use super::{open_v1, plant, small};
use crate::lmdb::heed;
use crate::lmdb::layout::{Layout, StoredKey, CRC_LEN, FORMAT_KEY, FORMAT_VERSION, MAGIC, META_DB};
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

/// Writes the fixtures under `fixtures/lmdb/` that are missing (run by hand: `cargo test -p
/// cacher-store --features testkit,lmdb generate_lmdb_fixtures -- --ignored`). A committed
/// fixture is never rewritten: it is what an older build wrote. The tests below only read them.
#[test]
#[ignore = "writes the committed fixtures; run by hand"]
fn generate_lmdb_fixtures() {
    let write = |name: &str, layout: Layout, extra: &dyn Fn(&LmdbStore)| {
        let out = fixture_dir(name);
        if out.join("data.mdb").exists() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let store = match layout {
            Layout::V1 => open_v1(dir.path()),
            Layout::V2 => LmdbStore::open_with(dir.path(), &small()).unwrap(),
        };
        assert_eq!(store.layout, layout);
        for (k, v) in v1_fixture_contents() {
            store.put(&k, &v).unwrap();
        }
        extra(&store);
        std::fs::create_dir_all(&out).unwrap();
        store
            .env()
            .heed()
            .copy_to_path(out.join("data.mdb"), heed::CompactionOption::Enabled)
            .unwrap();
    };
    let set_version = |store: &LmdbStore, version: u32| {
        let meta = store.env().create_database(META_DB).unwrap();
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&version.to_le_bytes());
        store
            .env()
            .write(|w| meta.put(w, FORMAT_KEY, &record))
            .unwrap();
    };
    write("v1-store", Layout::V1, &|_| {});
    // Written as "v2-future" when version 2 did not exist yet: version-1 values under a
    // record that says 2.
    write("v2-record-over-v1-values", Layout::V1, &|store| {
        set_version(store, 2)
    });
    write("v1-bad-tag", Layout::V1, &|store| {
        plant(store, b"\x07not a tag", b"x")
    });
    write("v1-bad-long-entry", Layout::V1, &|store| {
        plant(
            store,
            StoredKey::new(&[b'L'; 600]).bytes(),
            b"\xff\xff\xff\xff",
        );
    });
    write("v2-store", Layout::V2, &|_| {});
    write("v3-future", Layout::V2, &|store| set_version(store, 3));
    write("v2-bad-checksum", Layout::V2, &|store| {
        let mut raw = Layout::V2.encode(b"short", b"value");
        raw[CRC_LEN] ^= 0x01;
        plant(store, StoredKey::new(b"short").bytes(), &raw);
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

/// Issue 9: `verify` on a layout-1 store said every entry was checked, though its values
/// carry no checksum; it now counts them as unchecked.
#[test]
fn verify_of_the_v1_fixture_reports_its_values_as_unchecked() {
    let (_dir, store) = open_fixture_copy("v1-store");
    let report = store.unwrap().verify().unwrap();
    assert_eq!(
        (report.checked, report.unchecked, report.damaged.len()),
        (0, 4, 0)
    );
}

/// A layout-1 store upgraded: every value reads back the same, now behind a CRC (a flipped
/// byte is `Corrupt` and `verify` checks every entry), the marker and the format record say
/// 2, and a second upgrade does nothing.
#[test]
fn upgrading_the_v1_fixture_gives_every_value_a_checksum() {
    let (dir, store) = open_fixture_copy("v1-store");
    let store = store.unwrap();
    assert_eq!(store.upgrade_layout().unwrap(), 4);
    assert_eq!(store.layout_version(), 2);
    assert_eq!(store.upgrade_layout().unwrap(), 0);
    let expected: std::collections::BTreeMap<_, _> = v1_fixture_contents().into_iter().collect();
    let scanned: std::collections::BTreeMap<_, _> =
        store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(scanned, expected);
    for (key, value) in &expected {
        assert_eq!(store.get(key).unwrap().as_ref(), Some(value));
        assert_eq!(
            super::raw_entries(&store)
                .into_iter()
                .find(|(stored, _)| stored == StoredKey::new(key).bytes())
                .map(|(_, raw)| raw),
            Some(Layout::V2.encode(key, value))
        );
    }
    let report = store.verify().unwrap();
    assert_eq!((report.checked, report.unchecked), (4, 0));
    let mut raw = Layout::V2.encode(b"short", b"value");
    raw[CRC_LEN] ^= 0x01;
    plant(&store, StoredKey::new(b"short").bytes(), &raw);
    assert!(store.get(b"short").unwrap_err().is_corrupt());
    drop(store);
    let marker = std::fs::read_to_string(dir.path().join("cacher-lmdb.toml")).unwrap();
    assert!(marker.contains("version = 2"), "{marker}");
    let reopened = LmdbStore::open_with(dir.path(), &small()).unwrap();
    assert_eq!(reopened.layout_version(), 2);
    assert_eq!(
        reopened.get(b"").unwrap().as_deref(),
        Some(&b"the empty key"[..])
    );
}

/// A handle opened at layout 1 before another one upgraded the store reads the new values
/// (not their checksum as their first bytes) and writes checksummed ones.
#[test]
fn a_v1_handle_opened_before_an_upgrade_uses_the_new_layout() {
    let (dir, store) = open_fixture_copy("v1-store");
    let before = store.unwrap();
    // A second handle on the same environment, as another process would have.
    let upgrader = LmdbStore::from_env(before.env().clone()).unwrap();
    assert_eq!(upgrader.upgrade_layout().unwrap(), 4);
    assert_eq!(
        before.get(b"short").unwrap().as_deref(),
        Some(&b"value"[..])
    );
    before.put(b"written after", b"by the old handle").unwrap();
    assert_eq!(before.layout_version(), 2);
    let raw = super::raw_entries(&upgrader);
    let (_, written) = raw
        .iter()
        .find(|(stored, _)| stored == StoredKey::new(b"written after").bytes())
        .unwrap();
    assert_eq!(
        written,
        &Layout::V2.encode(b"written after", b"by the old handle")
    );
    drop((before, upgrader));
    let reopened = LmdbStore::open_with(dir.path(), &small()).unwrap();
    assert_eq!(reopened.verify().unwrap().checked, 5);
}

/// A damaged layout-1 entry stops the upgrade, naming it, and nothing changes.
#[test]
fn upgrading_a_damaged_v1_store_is_refused_and_changes_nothing() {
    let (_dir, store) = open_fixture_copy("v1-bad-long-entry");
    let store = store.unwrap();
    let before = super::raw_entries(&store);
    let err = store.upgrade_layout().unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert_eq!(store.layout_version(), 1);
    assert_eq!(super::raw_entries(&store), before);
    assert_eq!(store.get(b"short").unwrap().as_deref(), Some(&b"value"[..]));
}

#[test]
fn v2_fixture_reads_back_exactly() {
    let (_dir, store) = open_fixture_copy("v2-store");
    let store = store.unwrap();
    assert_eq!(store.layout_version(), 2);
    let expected: std::collections::BTreeMap<_, _> = v1_fixture_contents().into_iter().collect();
    let scanned: std::collections::BTreeMap<_, _> =
        store.scan().unwrap().map(Result::unwrap).collect();
    assert_eq!(scanned, expected);
    for (k, v) in &expected {
        assert_eq!(store.get(k).unwrap().as_ref(), Some(v));
    }
    let report = store.verify().unwrap();
    assert_eq!((report.checked, report.damaged.len()), (4, 0));
}

#[test]
fn newer_fixture_requires_an_upgrade() {
    let (_dir, store) = open_fixture_copy("v3-future");
    match store.unwrap_err() {
        Error::UpgradeRequired {
            found, supported, ..
        } => assert_eq!((found, supported), (3, FORMAT_VERSION)),
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn v1_values_under_a_v2_record_are_never_returned() {
    let (_dir, store) = open_fixture_copy("v2-record-over-v1-values");
    let store = store.unwrap();
    for (k, _) in v1_fixture_contents() {
        let got = store.get(&k);
        assert!(matches!(&got, Err(e) if e.is_corrupt()), "{k:?}: {got:?}");
    }
}

#[test]
fn bad_checksum_fixture_is_corrupt_on_every_read_path() {
    let (_dir, store) = open_fixture_copy("v2-bad-checksum");
    let store = store.unwrap();
    let corrupt = |r: Result<()>| assert!(matches!(&r, Err(e) if e.is_corrupt()), "{r:?}");
    corrupt(store.get(b"short").map(drop));
    corrupt(store.read(b"short").map(drop));
    corrupt(
        store
            .with_value(b"short", &mut |_| panic!("lent bad bytes"))
            .map(drop),
    );
    corrupt(store.get_many(&[b"short"]).map(drop));
    corrupt(store.meta(b"short").map(drop));
    corrupt(store.contains(b"short").map(drop));
    corrupt(store.scan().unwrap().try_for_each(|e| e.map(drop)));
    let report = store.verify().unwrap();
    assert_eq!(report.checked, 4);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].0, b"short");
    assert_eq!(
        store.get(b"").unwrap().as_deref(),
        Some(&b"the empty key"[..])
    );
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

#[test]
fn commit_records_of_both_versions_are_read() {
    use crate::lmdb::files::{parse_commit, CommitRecord};
    let read = |name: &str| parse_commit(&std::fs::read(fixture_dir(name)).unwrap());
    assert_eq!(
        read("commit-record-v1"),
        Some(CommitRecord {
            txn: 41,
            fingerprints: None
        })
    );
    assert_eq!(
        read("commit-record-v2"),
        Some(CommitRecord {
            txn: 42,
            fingerprints: Some([0x1122_3344, 0x5566_7788])
        })
    );
    // A version-2 record with a damaged fingerprint keeps its id, without fingerprints.
    let mut damaged = std::fs::read(fixture_dir("commit-record-v2")).unwrap();
    damaged[13] ^= 1;
    assert_eq!(
        parse_commit(&damaged).map(|r| (r.txn, r.fingerprints)),
        Some((42, None))
    );
}
