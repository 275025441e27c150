//! Behaviour of [`ArrayStore`] and [`NumpyLmdb`], including interop with Python (numpy and
//! the `lmdb` package), golden fixtures of the value format, and damaged values.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use super::*;
use crate::Error;
use crate::Store;

fn store() -> (tempfile::TempDir, ArrayStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn arrays_of_every_dtype_round_trip_with_their_shape() {
    let (_dir, store) = store();
    store.put("u8", &[1u8, 2, 3, 4, 5, 6], &[2, 3]).unwrap();
    store.put("u16", &[1u16, 65535], &[2]).unwrap();
    store.put("u32", &[7u32; 8], &[2, 2, 2]).unwrap();
    store.put("u64", &[u64::MAX, 0], &[2, 1]).unwrap();
    store.put("i8", &[-1i8, 1], &[2]).unwrap();
    store.put("i16", &[-300i16], &[1]).unwrap();
    store.put("i32", &[-70000i32, 5], &[2]).unwrap();
    store.put("i64", &[i64::MIN], &[1, 1]).unwrap();
    store.put("f16", &[F16(0x3c00), F16(0xc000)], &[2]).unwrap();
    store.put("f32", &[1.5f32, -2.25], &[2]).unwrap();
    store.put("f64", &[std::f64::consts::PI; 3], &[3]).unwrap();
    store.put("bool", &[Bool(1), Bool(0)], &[2]).unwrap();
    fn check<T: Element + std::fmt::Debug + PartialEq>(
        s: &ArrayStore,
        k: &str,
        v: &[T],
        sh: &[u64],
    ) {
        let (got, shape) = s.get_owned::<T>(k).unwrap().expect("present");
        assert_eq!(got, v, "{k}");
        assert_eq!(shape, sh, "{k}");
        let info = s.info(k).unwrap().unwrap();
        assert_eq!(info.dtype, T::DTYPE);
        assert_eq!(info.nbytes as usize, std::mem::size_of_val(v));
    }
    check(&store, "u8", &[1u8, 2, 3, 4, 5, 6], &[2, 3]);
    check(&store, "u16", &[1u16, 65535], &[2]);
    check(&store, "u32", &[7u32; 8], &[2, 2, 2]);
    check(&store, "u64", &[u64::MAX, 0], &[2, 1]);
    check(&store, "i8", &[-1i8, 1], &[2]);
    check(&store, "i16", &[-300i16], &[1]);
    check(&store, "i32", &[-70000i32, 5], &[2]);
    check(&store, "i64", &[i64::MIN], &[1, 1]);
    check(&store, "f16", &[F16(0x3c00), F16(0xc000)], &[2]);
    check(&store, "f32", &[1.5f32, -2.25], &[2]);
    check(&store, "f64", &[std::f64::consts::PI; 3], &[3]);
    check(&store, "bool", &[Bool(1), Bool(0)], &[2]);
    assert_eq!(store.len().unwrap(), 12);
    assert_eq!(store.get_owned::<f32>("missing").unwrap(), None);
}

#[test]
fn zero_d_and_empty_arrays_round_trip() {
    let (_dir, store) = store();
    store.put("scalar", &[42.0f64], &[]).unwrap();
    store.put("empty", &[] as &[f32], &[0]).unwrap();
    store.put("empty-2d", &[] as &[i32], &[3, 0]).unwrap();
    assert_eq!(
        store.get_owned::<f64>("scalar").unwrap(),
        Some((vec![42.0], vec![]))
    );
    assert_eq!(
        store.get_owned::<f32>("empty").unwrap(),
        Some((vec![], vec![0]))
    );
    assert_eq!(
        store.get_owned::<i32>("empty-2d").unwrap(),
        Some((vec![], vec![3, 0]))
    );
}

#[test]
fn asking_for_the_wrong_dtype_is_a_typed_error() {
    let (_dir, store) = store();
    store.put("f", &[1.0f32; 4], &[4]).unwrap();
    let err = store.get_owned::<f64>("f").unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { op: "get", reason, .. } if reason.contains("float32") && reason.contains("float64")),
        "{err}"
    );
    let err = store.get_rows::<u8, _>(&["f"]).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}

#[test]
fn a_shape_that_does_not_match_the_data_is_refused() {
    let (_dir, store) = store();
    let err = store.put("k", &[1u8, 2, 3], &[2, 2]).unwrap_err();
    assert!(matches!(err, Error::Unsupported { op: "put", .. }), "{err}");
    let err = store.put("k", &[1u8], &[1; 33]).unwrap_err();
    assert!(matches!(err, Error::Unsupported { op: "put", .. }), "{err}");
    assert_eq!(store.len().unwrap(), 0);
}

#[test]
fn large_arrays_are_lent_from_the_map_without_copying() {
    let (_dir, store) = store();
    for (i, key) in ["a", "bb", "ccc", "a-longer-key-of-odd-length"]
        .iter()
        .enumerate()
    {
        let data: Vec<f64> = (0..1000).map(|x| (x * (i + 1)) as f64).collect();
        store.put(key, &data, &[10, 100]).unwrap();
    }
    let big: Vec<u64> = (0..(1 << 20)).collect();
    store.put("big", &big, &[1 << 20]).unwrap();
    let before = store.stats();
    store
        .read(|r| {
            for key in ["a", "bb", "ccc", "a-longer-key-of-odd-length", "big"] {
                let view_f = r.get::<f64>(key);
                let zero_copy = match view_f {
                    Ok(Some(v)) => v.is_zero_copy(),
                    _ => r.get::<u64>(key)?.expect("present").is_zero_copy(),
                };
                assert!(zero_copy, "{key} was copied");
            }
            Ok(())
        })
        .unwrap();
    let after = store.stats();
    assert_eq!(after.copied_reads, before.copied_reads);
    assert_eq!(after.zero_copy_reads, before.zero_copy_reads + 5);
    // The view really is the mapped page: its address lies outside our own `big` vector.
    store
        .read(|r| {
            let v = r.get::<u64>("big")?.unwrap();
            assert_eq!(v.as_slice(), &big[..]);
            assert_eq!(v.as_ptr() as usize % 16, 0, "data is 16-byte aligned");
            Ok(())
        })
        .unwrap();
}

#[test]
fn small_unaligned_arrays_are_copied_and_counted() {
    let (_dir, store) = store();
    // Small values live inside LMDB leaf nodes right after their keys: key lengths 1..=16 put
    // them at every alignment.
    let keys: Vec<String> = (1..=16).map(|n| "k".repeat(n)).collect();
    for (i, k) in keys.iter().enumerate() {
        store.put(k, &[i as f64, 0.5], &[2]).unwrap();
    }
    let mut copied = 0;
    store
        .read(|r| {
            for (i, k) in keys.iter().enumerate() {
                let v = r.get::<f64>(k)?.unwrap();
                assert_eq!(v.as_slice(), &[i as f64, 0.5]);
                copied += usize::from(!v.is_zero_copy());
            }
            Ok(())
        })
        .unwrap();
    let stats = store.stats();
    assert!(copied > 0, "expected some small values to be unaligned");
    assert_eq!(stats.copied_reads as usize, copied);
    assert_eq!(stats.zero_copy_reads + stats.copied_reads, 16);
}

#[test]
fn padded_small_arrays_are_always_lent_without_copying() {
    let (_dir, store) = store();
    store.set_align_small_arrays(true);
    let keys: Vec<Vec<u8>> = (1..=16)
        .map(|n| vec![b'k'; n])
        .chain([vec![], vec![b'L'; 600]])
        .collect();
    for (i, k) in keys.iter().enumerate() {
        store.put(k, &[i as f64, 0.5], &[2]).unwrap();
    }
    store
        .read(|r| {
            for (i, k) in keys.iter().enumerate() {
                let v = r.get::<f64>(k)?.unwrap();
                assert_eq!(v.as_slice(), &[i as f64, 0.5]);
                assert!(v.is_zero_copy(), "key of {} bytes was copied", k.len());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(store.stats().copied_reads, 0);
    // The padding is invisible: the byte view is the 16 element bytes.
    assert_eq!(Store::get(&store, b"k").unwrap().map(|v| v.len()), Some(16));
    assert_eq!(Store::meta(&store, b"k").unwrap().map(|m| m.len), Some(16));
}

#[test]
fn metadata_per_key_and_for_the_store_round_trips() {
    let (_dir, store) = store();
    let meta = json!({"model": "clip", "dim": 3});
    store
        .put_with_metadata("v", &[1.0f32, 2.0, 3.0], &[3], Some(&meta))
        .unwrap();
    store.put("plain", &[1u8], &[1]).unwrap();
    assert_eq!(store.metadata("v").unwrap(), Some(meta));
    assert_eq!(store.metadata("plain").unwrap(), None);
    assert!(store.set_metadata("plain", Some(&json!({"x": 1}))).unwrap());
    assert_eq!(store.metadata("plain").unwrap(), Some(json!({"x": 1})));
    assert_eq!(
        store.get_owned::<u8>("plain").unwrap(),
        Some((vec![1], vec![1]))
    );
    assert!(store.set_metadata("v", None).unwrap());
    assert_eq!(store.metadata("v").unwrap(), None);
    assert_eq!(
        store.get_owned::<f32>("v").unwrap(),
        Some((vec![1.0, 2.0, 3.0], vec![3]))
    );
    assert!(!store.set_metadata("missing", None).unwrap());
    assert_eq!(store.store_metadata().unwrap(), None);
    store
        .set_store_metadata(Some(&json!({"name": "embeddings"})))
        .unwrap();
    assert_eq!(
        store.store_metadata().unwrap(),
        Some(json!({"name": "embeddings"}))
    );
    store.set_store_metadata(None).unwrap();
    assert_eq!(store.store_metadata().unwrap(), None);
}

#[test]
fn long_and_empty_keys_hold_arrays_and_list_back() {
    let (_dir, store) = store();
    let long = vec![b'x'; 4096];
    let data: Vec<f32> = (0..1024).map(|x| x as f32).collect();
    store.put(&long, &data, &[32, 32]).unwrap();
    store.put(b"", &[1i64], &[1]).unwrap();
    store.put(vec![b'x'; 512], &[2i64], &[1]).unwrap();
    store
        .read(|r| {
            let v = r.get::<f32>(&long)?.unwrap();
            assert!(v.is_zero_copy(), "long-key arrays stay aligned");
            assert_eq!(v.as_slice(), &data[..]);
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store.get_owned::<i64>(b"").unwrap(),
        Some((vec![1], vec![1]))
    );
    assert_eq!(
        store.get_owned::<i64>(vec![b'x'; 512]).unwrap(),
        Some((vec![2], vec![1]))
    );
    assert_eq!(store.get_owned::<f32>(vec![b'x'; 4095]).unwrap(), None);
    let mut keys = store.keys().unwrap();
    keys.sort();
    assert_eq!(keys, vec![vec![], vec![b'x'; 512], long.clone()]);
    assert!(store.delete(&long).unwrap());
    assert!(!store.delete(&long).unwrap());
    assert_eq!(store.len().unwrap(), 2);
}

#[test]
fn get_rows_stacks_vectors_and_marks_missing_keys() {
    let (_dir, store) = store();
    let vectors: Vec<(String, Vec<f32>)> = (0..5u32)
        .map(|i| {
            (
                format!("id{i}"),
                (0..4).map(|j| (i * 10 + j) as f32).collect(),
            )
        })
        .collect();
    let entries: Vec<(&str, &[f32], &[u64])> = vectors
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice(), &[4u64][..]))
        .collect();
    store.put_arrays(&entries).unwrap();
    let bad: [(&str, &[f32], &[u64]); 2] = [("ok", &[1.0], &[1]), ("bad", &[1.0], &[2])];
    assert!(store.put_arrays(&bad).is_err());
    assert_eq!(
        store.get_owned::<f32>("ok").unwrap(),
        None,
        "nothing of a refused batch"
    );
    let rows = store
        .get_rows::<f32, _>(&["missing", "id3", "id0", "nope", "id4"])
        .unwrap();
    assert_eq!((rows.rows, rows.cols), (5, 4));
    assert_eq!(rows.missing, vec![0, 3]);
    #[rustfmt::skip]
    assert_eq!(rows.data, vec![
        0.0, 0.0, 0.0, 0.0,
        30.0, 31.0, 32.0, 33.0,
        0.0, 1.0, 2.0, 3.0,
        0.0, 0.0, 0.0, 0.0,
        40.0, 41.0, 42.0, 43.0,
    ]);
    store.put("short", &[1.0f32; 3], &[3]).unwrap();
    store.put("matrix", &[1.0f32; 4], &[2, 2]).unwrap();
    assert!(store.get_rows::<f32, _>(&["id1", "short"]).is_err());
    assert!(store.get_rows::<f32, _>(&["matrix"]).is_err());
    let none = store.get_rows::<f32, _>(&["a", "b"]).unwrap();
    assert_eq!((none.rows, none.cols, none.data.len()), (2, 0, 0));
}

#[test]
fn the_store_opens_again_with_its_arrays() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = ArrayStore::open(dir.path()).unwrap();
        store.put("k", &[3u16; 3], &[3]).unwrap();
        store.set_store_metadata(Some(&json!(1))).unwrap();
    }
    let store = ArrayStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_owned::<u16>("k").unwrap(),
        Some((vec![3; 3], vec![3]))
    );
    assert_eq!(store.store_metadata().unwrap(), Some(json!(1)));
}

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
            matches!(err, layout::LayoutError::Corrupt(_)),
            "{name}: {err:?}"
        );
    }
    assert_eq!(
        layout::decode(&read("v2-future.bin")).unwrap_err(),
        layout::LayoutError::Newer(2)
    );
    let (v, shape) = read_npy::<f64>(fixtures().join("f64-2x2.npy")).unwrap();
    assert_eq!((v, shape), (vec![1.0, 2.0, 3.0, 4.0], vec![2, 2]));
}

#[test]
fn golden_numpy_npy_fixtures_are_read_forever() {
    // Written by numpy (fixtures/array/make_numpy_fixtures.py), read without Python.
    let f = |name: &str| fixtures().join(name);
    let want: Vec<f32> = (0..6).map(|x| x as f32 / 4.0).collect();
    assert_eq!(
        read_npy::<f32>(f("numpy-f32-3x2.npy")).unwrap(),
        (want, vec![3, 2])
    );
    assert_eq!(
        read_npy::<i64>(f("numpy-i64-scalar.npy")).unwrap(),
        (vec![-7], vec![])
    );
    assert_eq!(
        read_npy::<u8>(f("numpy-u8-empty.npy")).unwrap(),
        (vec![], vec![0, 3])
    );
    assert_eq!(
        read_npy::<u16>(f("numpy-be-u16.npy")).unwrap(),
        (vec![1, 256, 65535], vec![3])
    );
    let (_dir, store) = store();
    let info = store.put_npy("be", f("numpy-be-u16.npy")).unwrap();
    assert_eq!(info.dtype, DType::U16);
    assert_eq!(
        store.get_owned::<u16>("be").unwrap(),
        Some((vec![1, 256, 65535], vec![3]))
    );
}

#[test]
fn npy_export_and_import_round_trip_in_rust() {
    let (dir, store) = store();
    let data: Vec<i16> = (0..24).collect();
    store.put("a", &data, &[2, 3, 4]).unwrap();
    let file = dir.path().join("a.npy");
    assert!(store.export_npy("a", &file).unwrap());
    assert!(!store
        .export_npy("missing", dir.path().join("m.npy"))
        .unwrap());
    assert!(!dir.path().join("m.npy").exists());
    let info = store.put_npy("b", &file).unwrap();
    assert_eq!(
        (info.dtype, info.shape.clone()),
        (DType::I16, vec![2, 3, 4])
    );
    assert_eq!(
        store.get_owned::<i16>("b").unwrap(),
        Some((data.clone(), vec![2, 3, 4]))
    );
    let bytes = std::fs::read(&file).unwrap();
    store.put_npy_reader("c", &mut &bytes[..]).unwrap();
    assert_eq!(
        store.get_owned::<i16>("c").unwrap(),
        Some((data, vec![2, 3, 4]))
    );
    let err = store
        .put_npy_reader("d", &mut &bytes[..bytes.len() - 1])
        .unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    std::fs::write(&file, &bytes[..bytes.len() - 1]).unwrap();
    let err = store.put_npy("d", &file).unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert_eq!(store.get_owned::<i16>("d").unwrap(), None);
}

// ---- Python interop: needs python3 with numpy and lmdb (`.ci/requirements.txt`). ----

/// Runs `script` with python3 and `args`; panics with a clear message if python3 or the
/// modules the interop tests need are missing (CI installs them), or if the script fails.
fn python(script: &str, args: &[&Path]) -> String {
    let probe = Command::new("python3")
        .args(["-c", "import numpy, lmdb"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "this test needs python3 with numpy and lmdb: run `python3 -m pip install -r \
             .ci/requirements.txt` ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("this test needs python3 on PATH: {e}"),
    }
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn numpy_loads_exported_npy_arrays() {
    let (dir, store) = store();
    store
        .put("f32", &[1.5f32, 2.5, 3.5, 4.5, 5.5, 6.5], &[2, 3])
        .unwrap();
    store.put("u8", &[0u8, 255], &[2]).unwrap();
    store.put("i64", &[-5i64], &[]).unwrap();
    store.put("f64-empty", &[] as &[f64], &[0, 4]).unwrap();
    store.put("f16", &[F16(0x3c00), F16(0x4000)], &[2]).unwrap();
    store
        .put("bool", &[Bool(1), Bool(0), Bool(1)], &[3])
        .unwrap();
    let big: Vec<u32> = (0..100_000).collect();
    store.put("u32-big", &big, &[100, 1000]).unwrap();
    for k in ["f32", "u8", "i64", "f64-empty", "f16", "bool", "u32-big"] {
        assert!(store
            .export_npy(k, dir.path().join(format!("{k}.npy")))
            .unwrap());
    }
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
def load(name):
    return np.load(f"{d}/{name}.npy", allow_pickle=False)
a = load("f32"); assert a.dtype == np.float32 and a.shape == (2, 3), a
assert (a == np.array([[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]], dtype=np.float32)).all()
a = load("u8"); assert a.dtype == np.uint8 and list(a) == [0, 255]
a = load("i64"); assert a.dtype == np.int64 and a.shape == () and a == -5
a = load("f64-empty"); assert a.dtype == np.float64 and a.shape == (0, 4)
a = load("f16"); assert a.dtype == np.float16 and list(a) == [1.0, 2.0]
a = load("bool"); assert a.dtype == np.bool_ and list(a) == [True, False, True]
a = load("u32-big"); assert a.dtype == np.uint32 and a.shape == (100, 1000)
assert (a.ravel() == np.arange(100000, dtype=np.uint32)).all()
print("ok")
"#;
    assert_eq!(python(script, &[dir.path()]).trim(), "ok");
}

#[test]
fn npy_files_written_by_numpy_are_imported() {
    let (dir, store) = store();
    let script = r#"
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/f32.npy", np.arange(12, dtype=np.float32).reshape(3, 4))
np.save(f"{d}/u16.npy", np.array([1, 2, 65535], dtype=np.uint16))
np.save(f"{d}/scalar.npy", np.float64(2.5))
np.save(f"{d}/empty.npy", np.zeros((0,), dtype=np.int8))
np.save(f"{d}/bool.npy", np.array([[True, False]]))
np.save(f"{d}/big-endian.npy", np.array([1, 258, -3], dtype=">i4"))
np.save(f"{d}/fortran.npy", np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
np.save(f"{d}/complex.npy", np.zeros(2, dtype=np.complex64))
np.lib.format.write_array(open(f"{d}/v2.npy", "wb"), np.arange(3, dtype=np.int64), version=(2, 0))
"#;
    python(script, &[dir.path()]);
    let f = |name: &str| dir.path().join(name);
    store.put_npy("f32", f("f32.npy")).unwrap();
    let want: Vec<f32> = (0..12).map(|x| x as f32).collect();
    assert_eq!(
        store.get_owned::<f32>("f32").unwrap(),
        Some((want.clone(), vec![3, 4]))
    );
    assert_eq!(read_npy::<f32>(f("f32.npy")).unwrap(), (want, vec![3, 4]));
    store.put_npy("u16", f("u16.npy")).unwrap();
    assert_eq!(
        store.get_owned::<u16>("u16").unwrap(),
        Some((vec![1, 2, 65535], vec![3]))
    );
    store.put_npy("scalar", f("scalar.npy")).unwrap();
    assert_eq!(
        store.get_owned::<f64>("scalar").unwrap(),
        Some((vec![2.5], vec![]))
    );
    store.put_npy("empty", f("empty.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i8>("empty").unwrap(),
        Some((vec![], vec![0]))
    );
    store.put_npy("bool", f("bool.npy")).unwrap();
    assert_eq!(
        store.get_owned::<Bool>("bool").unwrap(),
        Some((vec![Bool(1), Bool(0)], vec![1, 2]))
    );
    store.put_npy("be", f("big-endian.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i32>("be").unwrap(),
        Some((vec![1, 258, -3], vec![3]))
    );
    assert_eq!(
        read_npy::<i32>(f("big-endian.npy")).unwrap().0,
        vec![1, 258, -3]
    );
    store.put_npy("v2", f("v2.npy")).unwrap();
    assert_eq!(
        store.get_owned::<i64>("v2").unwrap(),
        Some((vec![0, 1, 2], vec![3]))
    );
    let err = store.put_npy("fortran", f("fortran.npy")).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported { reason, .. } if reason.contains("fortran")),
        "{err}"
    );
    let err = store.put_npy("complex", f("complex.npy")).unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    assert!(read_npy::<f64>(f("fortran.npy")).is_err());
    assert_eq!(store.get_owned::<f64>("fortran").unwrap(), None);
}

#[test]
fn numpy_lmdb_written_by_python_is_read_by_rust() {
    let dir = tempfile::tempdir().unwrap();
    // The layout of the Python NumpyLmdb tool (lmdbm over the `lmdb` package): the default
    // database, UTF-8 keys, raw float32 bytes; JSON metadata in `metadata.lmdb`.
    let script = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, map_size=2**25)
with env.begin(write=True) as txn:
    for i in range(100):
        txn.put(f"item-{i}".encode("utf-8"), np.arange(i, i + 8, dtype=np.float32).tobytes())
    txn.put("ключ".encode("utf-8"), np.array([0.25] * 600, dtype=np.float32).tobytes())
env.close()
md = lmdb.open(os.path.join(path, "metadata.lmdb"), map_size=2**25)
with md.begin(write=True) as txn:
    txn.put(b"item-3", json.dumps({"label": "cat", "score": 0.5}).encode("utf-8"))
    txn.put(b"__global__", json.dumps({"model": "clip", "dim": 8}).encode("utf-8"))
md.close()
"#;
    python(script, &[dir.path()]);
    let store = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
    assert_eq!(store.len().unwrap(), 101);
    for i in [0u32, 3, 99] {
        let want: Vec<f32> = (i..i + 8).map(|x| x as f32).collect();
        assert_eq!(store.get::<f32>(&format!("item-{i}")).unwrap(), Some(want));
    }
    assert_eq!(store.get::<f32>("ключ").unwrap(), Some(vec![0.25; 600]));
    assert!(store.keys().unwrap().contains(&"ключ".to_string()));
    assert_eq!(
        store.metadata("item-3").unwrap(),
        Some(json!({"label": "cat", "score": 0.5}))
    );
    assert_eq!(store.metadata("item-4").unwrap(), None);
    assert_eq!(
        store.global_metadata().unwrap(),
        Some(json!({"model": "clip", "dim": 8}))
    );
    let err = store.get::<f64>("item-1").unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    let rows = store
        .get_rows::<f32, _>(&["item-2", "nope", "item-5"])
        .unwrap();
    assert_eq!(
        (rows.rows, rows.cols, rows.missing.clone()),
        (3, 8, vec![1])
    );
    assert_eq!(&rows.data[..8], &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
    assert_eq!(&rows.data[8..16], &[0.0; 8]);
    assert_eq!(rows.data[16], 5.0);
    assert!(store.get_rows::<f32, _>(&["item-1", "ключ"]).is_err());
    // And write to it: Rust adds and deletes, Python sees it in the same store.
    store.put("from-rust", &[9.0f32, 8.0]).unwrap();
    assert!(store.delete("item-0").unwrap());
    store
        .set_metadata("from-rust", &json!({"by": "rust"}))
        .unwrap();
    drop(store);
    let check = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, readonly=True)
with env.begin() as txn:
    assert txn.get(b"item-0") is None
    assert list(np.frombuffer(txn.get(b"from-rust"), dtype=np.float32)) == [9.0, 8.0]
    assert txn.stat()["entries"] == 101
md = lmdb.open(os.path.join(path, "metadata.lmdb"), readonly=True)
with md.begin() as txn:
    assert json.loads(txn.get(b"from-rust")) == {"by": "rust"}
print("ok")
"#;
    assert_eq!(python(check, &[dir.path()]).trim(), "ok");
}

#[test]
fn numpy_lmdb_written_by_rust_is_read_by_python() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = NumpyLmdb::open(dir.path(), DType::F32).unwrap();
        let entries: Vec<(String, Vec<f32>)> = (0..50)
            .map(|i| {
                (
                    format!("id{i}"),
                    (0..16).map(|j| (i * 100 + j) as f32).collect(),
                )
            })
            .collect();
        let refs: Vec<(&str, &[f32])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.put_many(&refs).unwrap();
        store.put("big", &vec![1.5f32; 100_000]).unwrap();
        store.set_metadata("id7", &json!({"tag": "seven"})).unwrap();
        store.set_global_metadata(&json!({"dim": 16})).unwrap();
        let err = store.put("x", &[1u8]).unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        let err = store.put("", &[1.0f32]).unwrap_err();
        assert!(matches!(err, Error::InvalidKey { .. }), "{err}");
    }
    let script = r#"
import sys, os, json, lmdb, numpy as np
path = sys.argv[1]
env = lmdb.open(path, readonly=True)
with env.begin() as txn:
    assert txn.stat()["entries"] == 51, txn.stat()
    for i in (0, 7, 49):
        v = np.frombuffer(txn.get(f"id{i}".encode("utf-8")), dtype=np.float32)
        assert v.shape == (16,) and (v == np.arange(i * 100, i * 100 + 16, dtype=np.float32)).all(), v
    big = np.frombuffer(txn.get(b"big"), dtype=np.float32)
    assert big.shape == (100000,) and (big == 1.5).all()
md = lmdb.open(os.path.join(path, "metadata.lmdb"), readonly=True)
with md.begin() as txn:
    assert json.loads(txn.get(b"id7").decode("utf-8")) == {"tag": "seven"}
    assert json.loads(txn.get(b"__global__").decode("utf-8")) == {"dim": 16}
print("ok")
"#;
    assert_eq!(python(script, &[dir.path()]).trim(), "ok");
}
