//! Internals of [`ArrayStore`]: golden fixtures of the value layout, damaged values and
//! store records written behind the store's back. Behaviour through the public API is in
//! `backends/tests/array_*.rs`.

use std::path::{Path, PathBuf};

use super::*;
use crate::Error;
use crate::Store;

/// Writes raw bytes into one of the store's databases, with the store closed.
fn poke(dir: &Path, db_name: &str, key: &[u8], value: &[u8]) {
    let env = crate::lmdb::LmdbEnv::open(dir, &crate::lmdb::LmdbOptions::default()).unwrap();
    let db = env.create_database(db_name).unwrap();
    env.write(|wtxn| db.put(wtxn, key, value)).unwrap();
}

#[test]
fn damaged_values_are_reported_corrupt_and_newer_ones_need_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    drop(ArrayStore::open(dir.path()).unwrap());
    let fixture = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    poke(
        dir.path(),
        "cacher-arrays",
        b"truncated",
        &fixture("v1-truncated.bin"),
    );
    poke(
        dir.path(),
        "cacher-arrays",
        b"magic",
        &fixture("v1-bad-magic.bin"),
    );
    poke(
        dir.path(),
        "cacher-arrays",
        b"future",
        &fixture("v2-future.bin"),
    );
    let store = ArrayStore::open(dir.path()).unwrap();
    for key in ["truncated", "magic"] {
        let err = store.get_owned::<f32>(key).unwrap_err();
        assert!(err.is_corrupt(), "{key}: {err}");
        let err = Store::get(&store, key.as_bytes()).unwrap_err();
        assert!(err.is_corrupt(), "{key} via Store: {err}");
    }
    let err = store.get_owned::<f32>("future").unwrap_err();
    assert!(
        matches!(
            err,
            Error::UpgradeRequired {
                found: 2,
                supported: 1,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_store_of_a_newer_format_version_needs_an_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    drop(ArrayStore::open(dir.path()).unwrap());
    poke(
        dir.path(),
        "cacher-arrays-info",
        b"format-version",
        &2u32.to_le_bytes(),
    );
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::UpgradeRequired { found: 2, .. }),
        "{err}"
    );
    poke(dir.path(), "cacher-arrays-info", b"format-version", b"xx");
    let err = ArrayStore::open(dir.path()).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/array")
}

/// The golden value: a 2x3 float32 array `[[0, 1, 2], [3, 4, 5]]` with metadata `{"v":1}`.
fn golden_value() -> Vec<u8> {
    let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let mut v = layout::encode_header(DType::F32, &[2, 3], br#"{"v":1}"#, bytes.len() as u64);
    v.extend_from_slice(bytes);
    v
}

/// Regenerates `fixtures/array/`: `cargo test -p cacher-store --features lmdb
/// generate_array_fixtures -- --ignored`. The tests below only read the files.
#[test]
#[ignore]
fn generate_array_fixtures() {
    let dir = fixtures();
    std::fs::create_dir_all(&dir).unwrap();
    let good = golden_value();
    std::fs::write(dir.join("v1-f32-2x3.bin"), &good).unwrap();
    std::fs::write(dir.join("v1-truncated.bin"), &good[..good.len() - 3]).unwrap();
    let mut bad = good.clone();
    bad[..4].copy_from_slice(b"CARX");
    std::fs::write(dir.join("v1-bad-magic.bin"), &bad).unwrap();
    let mut future = good;
    future[4..6].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(dir.join("v2-future.bin"), &future).unwrap();
    write_npy(dir.join("f64-2x2.npy"), &[1.0f64, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
}

#[test]
fn golden_value_fixtures_decode_forever() {
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let good = read("v1-f32-2x3.bin");
    assert_eq!(
        good,
        golden_value(),
        "the encoder still writes the golden bytes"
    );
    let d = layout::decode(&good).unwrap();
    assert_eq!(d.dtype, DType::F32);
    assert_eq!(d.shape, vec![2, 3]);
    assert_eq!(d.meta, br#"{"v":1}"#);
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(d.data);
    assert_eq!(floats, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    for name in ["v1-truncated.bin", "v1-bad-magic.bin"] {
        let err = layout::decode(&read(name)).unwrap_err();
        assert!(
            matches!(err, crate::version::Refusal::Corrupt(_)),
            "{name}: {err:?}"
        );
    }
    assert_eq!(
        layout::decode(&read("v2-future.bin")).unwrap_err(),
        crate::version::Refusal::Newer(2)
    );
    let (v, shape) = read_npy::<f64>(fixtures().join("f64-2x2.npy")).unwrap();
    assert_eq!((v, shape), (vec![1.0, 2.0, 3.0, 4.0], vec![2, 2]));
}
