//! A damaged `data.mdb` never gives a wrong value: every byte inside every value of a small
//! store is flipped in turn, and every read afterwards is the right value, a miss, or an
//! error (issue 9: 22 of 24 random flips over data pages used to return a wrong value).

#![cfg(all(feature = "lmdb", target_os = "linux"))]

use std::path::Path;

use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::Store;

/// Keys and values.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn contents() -> Entries {
    let mut out: Entries = (0..24u8)
        .map(|i| {
            let key = format!("key-{i:02}").into_bytes();
            let value = (0..(20 + usize::from(i) * 7))
                .map(|j| (j as u8).wrapping_mul(31) ^ i)
                .collect();
            (key, value)
        })
        .collect();
    // One value on overflow pages and one long (hashed) key.
    out.push((
        b"big".to_vec(),
        (0..6000u32).map(|j| (j % 251) as u8).collect(),
    ));
    out.push((vec![b'L'; 600], b"under a hashed key".to_vec()));
    out
}

fn options() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(1 << 20)
}

/// Opens the store in `dir` and reads every key through every read path; panics on a wrong
/// value (a right value, a miss or an error are all fine).
fn check_reads(dir: &Path, expected: &[(Vec<u8>, Vec<u8>)], what: &str) -> bool {
    let Ok(store) = LmdbStore::open_with(dir, &options()) else {
        return true;
    };
    let mut noticed = false;
    for (key, value) in expected {
        // A miss or an error is fine; a value is fine only when it is the right one.
        let mut check = |got: Result<Option<Vec<u8>>, cacher_store::Error>, path: &str| match got {
            Ok(Some(got)) => {
                assert_eq!(&got, value, "{what}: {path} of {key:?} gave a wrong value")
            }
            Ok(None) | Err(_) => noticed = true,
        };
        check(store.get(key), "get");
        check(store.read(key).map(|b| b.map(|b| b.to_vec())), "read");
        let mut lent = None;
        let found = store.with_value(key, &mut |v| lent = Some(v.to_vec()));
        check(found.map(|_| lent), "with_value");
        check(
            store.get_many(&[key]).map(|mut got| got.pop().flatten()),
            "get_many",
        );
    }
    if let Ok(entries) = store.scan() {
        for entry in entries {
            let Ok((key, got)) = entry else {
                noticed = true;
                break;
            };
            match expected.iter().find(|(k, _)| *k == key) {
                Some((_, value)) => assert_eq!(&got, value, "{what}: scan of {key:?}"),
                None => panic!("{what}: scan gave a key never written: {key:?}"),
            }
        }
    }
    noticed
}

/// Where `needle` sits in `hay` (every occurrence).
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn written_store() -> (tempfile::TempDir, Vec<u8>, Entries) {
    let expected = contents();
    let made = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open_with(made.path(), &options()).unwrap();
        let refs: Vec<(&[u8], &[u8])> = expected.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.put_many(&refs).unwrap();
    }
    let original = std::fs::read(made.path().join("data.mdb")).unwrap();
    (made, original, expected)
}

/// Writes `damaged` as the only file of `dir` and checks every read.
fn probe(dir: &Path, damaged: &[u8], expected: &[(Vec<u8>, Vec<u8>)], what: &str) -> bool {
    std::fs::write(dir.join("data.mdb"), damaged).unwrap();
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
    check_reads(dir, expected, what)
}

#[test]
fn a_flipped_byte_inside_any_value_never_reads_back_flipped() {
    let (_made, original, expected) = written_store();
    let work = tempfile::tempdir().unwrap();
    let mut flips = 0;
    for (key, value) in &expected {
        let at = find_all(&original, value);
        assert!(!at.is_empty(), "value of {key:?} not found in data.mdb");
        let step = if value.len() > 1000 { 7 } else { 1 };
        for start in at {
            for i in (0..value.len()).step_by(step) {
                let mut damaged = original.clone();
                damaged[start + i] ^= 0x01;
                flips += 1;
                let noticed = probe(
                    work.path(),
                    &damaged,
                    &expected,
                    &format!("byte {i} of the value of {key:?}"),
                );
                assert!(noticed, "a flip in the value of {key:?} went unnoticed");
            }
        }
    }
    eprintln!("{flips} flips inside values, every one noticed");
}
