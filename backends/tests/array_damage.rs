//! Damage to an ArrayStore's `data.mdb` inside an array value: every checked read refuses it,
//! `verify` names the key, and only the unchecked view (whose name says so) lends the bytes.

#![cfg(feature = "lmdb")]

use std::os::unix::fs::FileExt;

use cacher_store::array::ArrayStore;
use cacher_store::{Error, Store};

/// Damage is reported as `Corrupt`, or as `UpgradeRequired` when the flipped byte is the
/// layout version (indistinguishable from a value written by a newer build).
fn refused(err: &Error) -> bool {
    err.is_corrupt() || matches!(err, Error::UpgradeRequired { .. })
}

fn find(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn a_flipped_byte_in_data_mdb_inside_an_array_is_refused_by_every_checked_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    // 64 KiB of distinct floats: the value sits on LMDB overflow pages, lent zero-copy.
    let big: Vec<f32> = (0..16384).map(|i| i as f32 + 0.25).collect();
    store.put_array("big", &big, &[128, 128]).unwrap();
    store.put_array("small", &[1u16, 2, 3], &[3]).unwrap();
    Store::flush(&store).unwrap();

    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("data.mdb"))
        .unwrap();
    let bytes = std::fs::read(dir.path().join("data.mdb")).unwrap();
    let data_at = find(&bytes, bytemuck::cast_slice(&big[..4]));
    assert_eq!(data_at.len(), 1, "one copy of the array in data.mdb");
    let data_at = data_at[0];
    // The value header (magic "CARR") lies right before the data.
    let header_at = *find(&bytes[..data_at], b"CARR").last().unwrap();
    let data_end = data_at + big.len() * 4;
    let positions: Vec<usize> = (header_at..data_at)
        .chain((data_at..data_end).step_by(997))
        .chain([data_end - 1])
        .collect();
    for &at in &positions {
        let old = bytes[at];
        file.write_all_at(&[old ^ 0x10], at as u64).unwrap();

        let err = store.get_owned::<f32>("big").unwrap_err();
        assert!(refused(&err), "byte {at}: {err}");
        let err = store
            .with_reader(|r| r.view::<f32>("big").map(|v| v.map(|v| v[0])))
            .unwrap_err();
        assert!(refused(&err), "byte {at}: {err}");
        assert!(refused(&Store::get(&store, b"big").unwrap_err()));
        let mut lent = false;
        assert!(Store::with_value(&store, b"big", &mut |_| lent = true).is_err());
        assert!(!lent, "with_value lent damaged bytes at {at}");
        let report = store.verify().unwrap();
        assert_eq!(report.checked, 2);
        let damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(damaged, vec![&b"big"[..]], "byte {at}");
        assert_eq!(
            store.get_owned::<u16>("small").unwrap(),
            Some((vec![1, 2, 3], vec![3]))
        );
        if at >= data_at {
            // The unchecked view is what its name says: the damaged element comes back.
            let unchecked = store
                .with_reader(|r| Ok(r.view_unchecked::<f32>("big")?.map(|v| v.to_vec())))
                .unwrap()
                .unwrap();
            assert_ne!(unchecked, big, "byte {at}");
        }

        file.write_all_at(&[old], at as u64).unwrap();
    }
    assert_eq!(
        store.get_owned::<f32>("big").unwrap(),
        Some((big, vec![128, 128]))
    );
    assert!(store.verify().unwrap().damaged.is_empty());
}

#[test]
fn an_array_whose_lmdb_key_is_damaged_is_not_read_under_the_new_key() {
    // The header CRC covers the key: a value that turns up under another key is refused.
    let dir = tempfile::tempdir().unwrap();
    let store = ArrayStore::open(dir.path()).unwrap();
    let data: Vec<f64> = (0..1000).map(|i| i as f64).collect();
    store.put_array("the-array-key", &data, &[1000]).unwrap();
    Store::flush(&store).unwrap();
    let path = dir.path().join("data.mdb");
    let bytes = std::fs::read(&path).unwrap();
    let at = find(&bytes, b"the-array-key");
    assert_eq!(at.len(), 1, "one copy of the key");
    let last = at[0] + b"the-array-key".len() - 1; // 'y' becomes 'x'
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[bytes[last] ^ 0x01], last as u64)
        .unwrap();
    match store.get_owned::<f64>("the-array-kex") {
        Ok(None) => {}
        Err(e) => assert!(refused(&e), "{e}"),
        Ok(Some(_)) => panic!("the array was read under a key it was never stored under"),
    }
    assert!(!matches!(Store::get(&store, b"the-array-kex"), Ok(Some(_))));
    assert_eq!(store.get_owned::<f64>("the-array-key").unwrap(), None);
    let report = store.verify().unwrap();
    let damaged: Vec<&[u8]> = report.damaged.iter().map(|(k, _)| &k[..]).collect();
    assert_eq!(damaged, vec![&b"the-array-kex"[..]]);
}
