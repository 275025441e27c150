//! The committed golden stores under `fixtures/dir/` and their damaged variants.

use std::collections::BTreeMap;
use std::fs;

use super::*;
use crate::{Durability, Error, Store};

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
    let marker = dir.join(crate::marker::Kind::Dir.file_name());
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(&marker, text.replace("version = 1", "version = 2")).unwrap();
    // Layout 2 exists now (the accounting sidecar); the future is 3.
    let (dir, store) = fresh("v2-future-layout");
    store.put(b"hello", b"world").unwrap();
    let marker = dir.join(crate::marker::Kind::Dir.file_name());
    let text = fs::read_to_string(&marker).unwrap();
    fs::write(&marker, text.replace("version = 1", "version = 3")).unwrap();
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
    let report = store.verify().unwrap();
    assert_eq!(
        (report.checked, report.damaged.len()),
        (expected.len() as u64, 0)
    );
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
    let marker = &crate::marker::Kind::Dir.file_name();
    assert_eq!(
        fs::read(temp.path().join(marker)).unwrap(),
        fs::read(fixtures().join("v1").join(marker)).unwrap()
    );
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
    let report = store.verify().unwrap();
    assert!(report.damaged.len() == 1 && report.damaged[0].1.is_corrupt());
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
        store.verify_key(b"hello").unwrap_err(),
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

/// `v1-future-layout` was written as "a layout this build does not know" when only 1
/// existed; its version 2 is now the layout with the accounting sidecar, which this build
/// reads (a version-2 marker without `acct/` is a store whose sidecar was never made).
#[cfg(all(feature = "lmdb", unix))]
#[test]
fn fixture_layout_2_written_before_it_existed_opens_now() {
    let (_t, dir) = fixture_copy("v1-future-layout");
    let store = DirStore::open(&dir).unwrap();
    assert_eq!(store.get(b"hello").unwrap().as_deref(), Some(&b"world"[..]));
}

/// Was `v1-future-layout` (version 2, supported 1) alone before layout 2 existed: a build
/// with the sidecar refuses 3; one without it (no `lmdb` feature) still refuses 2.
#[test]
fn fixture_future_layout_requires_upgrade_on_open() {
    #[cfg(all(feature = "lmdb", unix))]
    let (fixture, newer, newest) = ("v2-future-layout", 3, 2);
    #[cfg(not(all(feature = "lmdb", unix)))]
    let (fixture, newer, newest) = ("v1-future-layout", 2, 1);
    let (_t, dir) = fixture_copy(fixture);
    match DirStore::open(&dir).unwrap_err() {
        Error::UpgradeRequired {
            path,
            found,
            supported,
        } => assert_eq!(
            (path, found, supported),
            (dir.join("cacher-dir.toml"), newer, newest)
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
