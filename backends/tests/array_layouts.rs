//! One layout is never opened as another: an ArrayStore refuses a NumpyLmdb directory (and
//! every other cacher store), a NumpyLmdb refuses an ArrayStore directory, each with
//! `WrongLayout` naming both kinds and without writing anything into the other's directory.
//! Before the fix, `ArrayStore::open` on a NumpyLmdb directory created its databases among the
//! user's vectors, and `NumpyLmdb` on an ArrayStore directory returned LMDB's internal records
//! as vectors. (Directories written by Python are in `array_npy_python.rs`.)

#![cfg(feature = "lmdb")]

use std::path::Path;

use cacher_store::array::{ArrayStore, DType, NumpyLmdb};
use cacher_store::{DirStore, Error, LmdbStore, Store};

fn assert_wrong_layout(err: Error, want_expected: &str, want_found: &str) {
    match &err {
        Error::WrongLayout {
            expected, found, ..
        } => assert_eq!((*expected, *found), (want_expected, want_found), "{err}"),
        _ => panic!("expected WrongLayout, got {err:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(want_expected) && text.contains(want_found),
        "{text}"
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn numpy_lmdb_refuses_an_array_store_directory_marked_or_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ArrayStore::open(dir.path()).unwrap();
        store.put_array("v", &[1.0f32, 2.0], &[2]).unwrap();
    }
    assert!(
        dir.path().join("cacher-array.toml").exists(),
        "marker written"
    );
    let before = names(dir.path());
    let err = NumpyLmdb::open(dir.path(), DType::F32).unwrap_err();
    assert_wrong_layout(err, "NumpyLmdb", "ArrayStore");
    // An ArrayStore written before markers: recognised by its named databases.
    std::fs::remove_file(dir.path().join("cacher-array.toml")).unwrap();
    let err = NumpyLmdb::open(dir.path(), DType::F32).unwrap_err();
    assert_wrong_layout(err, "NumpyLmdb", "ArrayStore");
    let mut without_marker = before.clone();
    without_marker.retain(|n| n != "cacher-array.toml");
    assert_eq!(
        names(dir.path()),
        without_marker,
        "no metadata.lmdb, no marker"
    );
    let store = ArrayStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_owned::<f32>("v").unwrap(),
        Some((vec![1.0, 2.0], vec![2]))
    );
    assert_eq!(names(dir.path()), before, "the marker comes back");
}

#[test]
fn array_store_refuses_a_numpy_lmdb_directory_marked_or_not() {
    let dir = tempfile::tempdir().unwrap();
    {
        let np = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
        np.put("cat", &[0.5f32, 1.5]).unwrap();
        np.put("dog", &[2.5f32, 3.5]).unwrap();
    }
    assert!(dir.path().join("cacher-numpy-lmdb.toml").exists());
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert_wrong_layout(err, "ArrayStore", "NumpyLmdb");
    // As Python writes it: no marker; then not even the metadata sub-environment.
    std::fs::remove_file(dir.path().join("cacher-numpy-lmdb.toml")).unwrap();
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert_wrong_layout(err, "ArrayStore", "NumpyLmdb");
    std::fs::remove_dir_all(dir.path().join("metadata.lmdb")).unwrap();
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert_wrong_layout(err, "ArrayStore", "NumpyLmdb");
    let np = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
    assert_eq!(
        np.keys().unwrap(),
        vec!["cat", "dog"],
        "no ArrayStore records"
    );
    assert_eq!(np.get::<f32>("cat").unwrap(), Some(vec![0.5, 1.5]));
}

#[test]
fn both_array_layouts_refuse_an_lmdb_store_and_a_dir_store() {
    let lmdb = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open(lmdb.path()).unwrap();
        store.put(b"k", b"value").unwrap();
    }
    let err = ArrayStore::open(lmdb.path()).unwrap_err();
    assert_wrong_layout(err, "ArrayStore", "LmdbStore");
    let err = NumpyLmdb::open(lmdb.path(), DType::U8).unwrap_err();
    assert_wrong_layout(err, "NumpyLmdb", "LmdbStore");
    assert!(!lmdb.path().join("metadata.lmdb").exists());
    let store = LmdbStore::open(lmdb.path()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"value"[..]));

    let dir = tempfile::tempdir().unwrap();
    DirStore::open(dir.path()).unwrap().put(b"k", b"v").unwrap();
    let before = names(dir.path());
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert_wrong_layout(err, "ArrayStore", "DirStore");
    let err = NumpyLmdb::open(dir.path(), DType::U8).unwrap_err();
    assert_wrong_layout(err, "NumpyLmdb", "DirStore");
    assert_eq!(names(dir.path()), before, "no LMDB files in the DirStore");
}

#[test]
fn a_newer_or_damaged_array_marker_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(ArrayStore::open(dir.path()).unwrap());
    let marker = dir.path().join("cacher-array.toml");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains("format = \"cacher-array\""), "{text}");
    std::fs::write(&marker, text.replace("version = 1", "version = 9")).unwrap();
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::UpgradeRequired { found: 9, .. }),
        "{err}"
    );
    std::fs::write(&marker, "hello").unwrap();
    assert!(ArrayStore::open(dir.path()).unwrap_err().is_corrupt());
    std::fs::remove_file(&marker).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &marker).unwrap();
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
}
