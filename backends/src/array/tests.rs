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
        &fixture("v3-future.bin"),
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
                found: 3,
                supported: 2,
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

/// The golden value: a 2x3 float32 array `[[0, 1, 2], [3, 4, 5]]` with metadata `{"v":1}`,
/// as version 1 (no checksums) wrote it.
fn golden_value() -> Vec<u8> {
    let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
    let bytes: &[u8] = bytemuck::cast_slice(&data);
    let mut v = layout::v1::encode_header(DType::F32, &[2, 3], br#"{"v":1}"#, bytes.len() as u64);
    v.extend_from_slice(bytes);
    v
}

/// The same golden array in the current layout (version 2, with checksums), stored under the
/// key [`GOLDEN_KEY`] (the header CRC covers the key).
const GOLDEN_KEY: &[u8] = b"golden";

fn golden_value_v2() -> Vec<u8> {
    let data: Vec<f32> = (0..6).map(|x| x as f32).collect();
    layout::encode(
        GOLDEN_KEY,
        DType::F32,
        &[2, 3],
        br#"{"v":1}"#,
        bytemuck::cast_slice(&data),
    )
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
    let good = golden_value_v2();
    std::fs::write(dir.join("v2-f32-2x3.bin"), &good).unwrap();
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 0x01; // one bit of the last element
    std::fs::write(dir.join("v2-data-flipped.bin"), &flipped).unwrap();
    let mut future = good;
    future[4..6].copy_from_slice(&3u16.to_le_bytes());
    std::fs::write(dir.join("v3-future.bin"), &future).unwrap();
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
    let d = layout::decode(&good, b"any key: v1 has no CRC").unwrap();
    assert_eq!(d.dtype, DType::F32);
    assert_eq!(d.shape, vec![2, 3]);
    assert_eq!(d.meta, br#"{"v":1}"#);
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(d.data);
    assert_eq!(floats, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    for name in ["v1-truncated.bin", "v1-bad-magic.bin"] {
        let err = layout::decode(&read(name), b"k").unwrap_err();
        assert!(
            matches!(err, crate::version::Refusal::Corrupt(_)),
            "{name}: {err:?}"
        );
    }
    // Written when version 2 was "the future": now that version 2 exists, a version 1 body
    // labelled 2 fails the version 2 header checksum.
    assert!(matches!(
        layout::decode(&read("v2-future.bin"), b"k").unwrap_err(),
        crate::version::Refusal::Corrupt(_)
    ));
    let (v, shape) = read_npy::<f64>(fixtures().join("f64-2x2.npy")).unwrap();
    assert_eq!((v, shape), (vec![1.0, 2.0, 3.0, 4.0], vec![2, 2]));
}

#[test]
fn golden_v2_value_fixtures_decode_forever_and_a_flipped_data_bit_is_caught() {
    let read = |name: &str| std::fs::read(fixtures().join(name)).unwrap();
    let good = read("v2-f32-2x3.bin");
    assert_eq!(
        good,
        golden_value_v2(),
        "the encoder still writes the golden bytes"
    );
    let d = layout::decode(&good, GOLDEN_KEY).unwrap();
    assert_eq!(
        (d.dtype, d.shape.clone(), d.meta),
        (DType::F32, vec![2, 3], &br#"{"v":1}"#[..])
    );
    d.check_data().unwrap();
    let floats: Vec<f32> = bytemuck::pod_collect_to_vec(d.data);
    assert_eq!(floats, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
    let flipped = read("v2-data-flipped.bin");
    let d = layout::decode(&flipped, GOLDEN_KEY).expect("the header is intact");
    assert!(
        d.check_data().is_err(),
        "the data CRC catches the flipped bit"
    );
    assert_eq!(
        layout::decode(&read("v3-future.bin"), GOLDEN_KEY).unwrap_err(),
        crate::version::Refusal::Newer(3)
    );
    // Through the store: v1 and v2 golden values read; the v2 value under another key than
    // the one it was sealed for is Corrupt (as is the flipped one), on every checked path and
    // in verify().
    let dir = tempfile::tempdir().unwrap();
    drop(ArrayStore::open(dir.path()).unwrap());
    poke(dir.path(), "cacher-arrays", b"v1", &read("v1-f32-2x3.bin"));
    poke(dir.path(), "cacher-arrays", GOLDEN_KEY, &good);
    poke(dir.path(), "cacher-arrays", b"moved", &good);
    let store = ArrayStore::open(dir.path()).unwrap();
    let want: Vec<f32> = (0..6).map(|x| x as f32).collect();
    for key in [&b"v1"[..], GOLDEN_KEY] {
        assert_eq!(
            store.get_owned::<f32>(key).unwrap(),
            Some((want.clone(), vec![2, 3]))
        );
    }
    assert!(store.get_owned::<f32>("moved").unwrap_err().is_corrupt());
    assert!(Store::get(&store, b"moved").unwrap_err().is_corrupt());
    poke(dir.path(), "cacher-arrays", GOLDEN_KEY, &flipped);
    assert!(store.get_owned::<f32>(GOLDEN_KEY).unwrap_err().is_corrupt());
    assert!(Store::get(&store, GOLDEN_KEY).unwrap_err().is_corrupt());
    let report = store.verify().unwrap();
    assert_eq!(report.checked, 3);
    let mut damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
    damaged.sort();
    assert_eq!(damaged, vec![GOLDEN_KEY, &b"moved"[..]]);
}

/// The raw LMDB entry of `key` in `db_name` (`None` when missing).
fn peek(dir: &Path, db_name: &str, key: &[u8]) -> Option<Vec<u8>> {
    let env = crate::lmdb::LmdbEnv::open(dir, &crate::lmdb::LmdbOptions::default()).unwrap();
    let db = env.create_database(db_name).unwrap();
    env.read(|txn| db.get(txn, key).map(|v| v.map(<[u8]>::to_vec)))
        .unwrap()
}

/// Every checked read of `key` gives `want` (f32 elements and shape), a miss, or an error —
/// never other bytes. Returns whether any read gave an error or a miss.
fn reads_old_value_miss_or_error(
    store: &ArrayStore,
    key: &[u8],
    want: &(Vec<f32>, Vec<u64>),
) -> bool {
    let mut refused = false;
    let mut check = |what: &str, got: Result<Option<(Vec<f32>, Vec<u64>)>>| match got {
        Ok(Some(v)) => assert_eq!(&v, want, "{what} returned a wrong value"),
        Ok(None) | Err(_) => refused = true,
    };
    check("get_owned", store.get_owned::<f32>(key));
    check(
        "view",
        store.with_reader(|r| Ok(r.view::<f32>(key)?.map(|v| v.into_owned()))),
    );
    let as_floats = |b: Vec<u8>| (bytemuck::pod_collect_to_vec::<u8, f32>(&b), want.1.clone());
    check(
        "Store::get",
        Store::get(store, key).map(|v| v.map(as_floats)),
    );
    check(
        "Store::read",
        Store::read(store, key).map(|v| v.map(|b| as_floats(b.to_vec()))),
    );
    let mut lent = None;
    check(
        "Store::with_value",
        Store::with_value(store, key, &mut |b| lent = Some(b.to_vec()))
            .map(|found| found.then(|| as_floats(lent.take().expect("lent")))),
    );
    check(
        "Store::get_many",
        Store::get_many(store, &[key]).map(|mut v| v.pop().flatten().map(as_floats)),
    );
    if let Ok(Some(info)) = store.info(key) {
        // info checks the header only: what it says must still be the truth.
        assert_eq!((info.dtype, &info.shape[..]), (DType::F32, &want.1[..]));
    }
    refused
}

#[test]
fn a_flipped_byte_anywhere_in_a_stored_value_is_never_read_as_a_wrong_value() {
    // Before layout version 2, a flipped data byte (and a flipped dtype code of the same size,
    // or a flipped padding byte) came back through every read path with no error.
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    let data: Vec<f32> = (0..12).map(|x| x as f32 * 0.5).collect();
    let want = (data.clone(), vec![3, 4]);
    let meta = serde_json::json!({"m": 1});
    store
        .put_array_with_metadata("small", &data, &[3, 4], Some(&meta))
        .unwrap();
    let long_key = vec![b'L'; 601]; // 8 + 601 leaves 7 bytes of prefix padding
    store.put_array(&long_key, &data, &[3, 4]).unwrap();
    let hash = *blake3::hash(&long_key).as_bytes();
    for (db, stored_key, key) in [
        ("cacher-arrays", &b"small"[..], &b"small"[..]),
        ("cacher-arrays-long-keys", &hash[..], &long_key[..]),
    ] {
        let original = peek(dir.path(), db, stored_key).unwrap();
        let mut refusals = 0;
        for i in 0..original.len() {
            let mut damaged = original.clone();
            damaged[i] ^= 0x04;
            poke(dir.path(), db, stored_key, &damaged);
            if reads_old_value_miss_or_error(&store, key, &want) {
                refusals += 1;
            }
            let report = store.verify().unwrap();
            assert!(
                report.damaged.len() <= 1 && report.checked == 2,
                "verify at byte {i}: {report:?}"
            );
        }
        poke(dir.path(), db, stored_key, &original);
        assert!(!reads_old_value_miss_or_error(&store, key, &want));
        // Every byte of header, metadata, padding and data matters (the long-key prefix's
        // padding does not: it is never read).
        let prefix_pad = if db == "cacher-arrays" {
            0
        } else {
            store::long_prefix_len(long_key.len()) - 8 - long_key.len()
        };
        assert_eq!(refusals, original.len() - prefix_pad, "{db}");
    }
    assert!(store.verify().unwrap().damaged.is_empty());
}
