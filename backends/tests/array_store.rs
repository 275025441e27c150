//! Behaviour of [`ArrayStore`] through its public API: every dtype and shape, zero-copy views,
//! metadata, long keys, stacked rows, reopening.

#![cfg(feature = "lmdb")]

use cacher_store::array::*;
use cacher_store::{Error, Store};
use serde_json::json;

fn store() -> (tempfile::TempDir, ArrayStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn arrays_of_every_dtype_round_trip_with_their_shape() {
    let (_dir, store) = store();
    store
        .put_array("u8", &[1u8, 2, 3, 4, 5, 6], &[2, 3])
        .unwrap();
    store.put_array("u16", &[1u16, 65535], &[2]).unwrap();
    store.put_array("u32", &[7u32; 8], &[2, 2, 2]).unwrap();
    store.put_array("u64", &[u64::MAX, 0], &[2, 1]).unwrap();
    store.put_array("i8", &[-1i8, 1], &[2]).unwrap();
    store.put_array("i16", &[-300i16], &[1]).unwrap();
    store.put_array("i32", &[-70000i32, 5], &[2]).unwrap();
    store.put_array("i64", &[i64::MIN], &[1, 1]).unwrap();
    store
        .put_array("f16", &[F16(0x3c00), F16(0xc000)], &[2])
        .unwrap();
    store.put_array("f32", &[1.5f32, -2.25], &[2]).unwrap();
    store
        .put_array("f64", &[std::f64::consts::PI; 3], &[3])
        .unwrap();
    store.put_array("bool", &[Bool(1), Bool(0)], &[2]).unwrap();
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
    store.put_array("scalar", &[42.0f64], &[]).unwrap();
    store.put_array("empty", &[] as &[f32], &[0]).unwrap();
    store.put_array("empty-2d", &[] as &[i32], &[3, 0]).unwrap();
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
    store.put_array("f", &[1.0f32; 4], &[4]).unwrap();
    let err = store.get_owned::<f64>("f").unwrap_err();
    assert!(
        matches!(&err, Error::InvalidArgument { op: "view", reason, .. } if reason.contains("float32") && reason.contains("float64")),
        "{err}"
    );
    let err = store.get_rows::<u8, _>(&["f"]).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { .. }), "{err}");
}

#[test]
fn a_shape_that_does_not_match_the_data_is_refused() {
    let (_dir, store) = store();
    let err = store.put_array("k", &[1u8, 2, 3], &[2, 2]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                op: "put_array",
                ..
            }
        ),
        "{err}"
    );
    let err = store.put_array("k", &[1u8], &[1; 33]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidArgument {
                op: "put_array",
                ..
            }
        ),
        "{err}"
    );
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
        store.put_array(key, &data, &[10, 100]).unwrap();
    }
    let big: Vec<u64> = (0..(1 << 20)).collect();
    store.put_array("big", &big, &[1 << 20]).unwrap();
    let before = store.stats();
    store
        .with_reader(|r| {
            for key in ["a", "bb", "ccc", "a-longer-key-of-odd-length", "big"] {
                let view_f = r.view::<f64>(key);
                let zero_copy = match view_f {
                    Ok(Some(v)) => v.is_zero_copy(),
                    _ => r.view::<u64>(key)?.expect("present").is_zero_copy(),
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
        .with_reader(|r| {
            let v = r.view::<u64>("big")?.unwrap();
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
        store.put_array(k, &[i as f64, 0.5], &[2]).unwrap();
    }
    let mut copied = 0;
    store
        .with_reader(|r| {
            for (i, k) in keys.iter().enumerate() {
                let v = r.view::<f64>(k)?.unwrap();
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
        store.put_array(k, &[i as f64, 0.5], &[2]).unwrap();
    }
    store
        .with_reader(|r| {
            for (i, k) in keys.iter().enumerate() {
                let v = r.view::<f64>(k)?.unwrap();
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
        .put_array_with_metadata("v", &[1.0f32, 2.0, 3.0], &[3], Some(&meta))
        .unwrap();
    store.put_array("plain", &[1u8], &[1]).unwrap();
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
    store.put_array(&long, &data, &[32, 32]).unwrap();
    store.put_array(b"", &[1i64], &[1]).unwrap();
    store.put_array(vec![b'x'; 512], &[2i64], &[1]).unwrap();
    store
        .with_reader(|r| {
            let v = r.view::<f32>(&long)?.unwrap();
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
    let mut keys: Vec<Vec<u8>> = Store::keys(&store)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
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
    store.put_array("short", &[1.0f32; 3], &[3]).unwrap();
    store.put_array("matrix", &[1.0f32; 4], &[2, 2]).unwrap();
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
        store.put_array("k", &[3u16; 3], &[3]).unwrap();
        store.set_store_metadata(Some(&json!(1))).unwrap();
    }
    let store = ArrayStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get_owned::<u16>("k").unwrap(),
        Some((vec![3; 3], vec![3]))
    );
    assert_eq!(store.store_metadata().unwrap(), Some(json!(1)));
}

#[test]
fn metadata_floats_round_trip_bit_for_bit_in_a_cacher_store_only_build() {
    // serde_json without `float_roundtrip` parses some floats one unit off in the last place;
    // `cargo test -p cacher-store` builds it without any other crate turning the feature on.
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let floats: Vec<f64> = std::iter::from_fn(|| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        Some(f64::from_bits(x))
    })
    .filter(|f| f.is_finite())
    .take(6011)
    .collect();
    let meta = json!({ "v": floats });
    store.put_array("a", &[1u8], &[1]).unwrap();
    assert!(store.set_metadata("a", Some(&meta)).unwrap());
    store.set_store_metadata(Some(&meta)).unwrap();
    for got in [
        store.metadata("a").unwrap(),
        store.store_metadata().unwrap(),
    ] {
        let got: Vec<u64> = got.unwrap()["v"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_f64().unwrap().to_bits())
            .collect();
        let want: Vec<u64> = floats.iter().map(|f| f.to_bits()).collect();
        let off = got.iter().zip(&want).filter(|(g, w)| g != w).count();
        assert_eq!(off, 0, "{off} of {} floats came back changed", want.len());
    }
}
