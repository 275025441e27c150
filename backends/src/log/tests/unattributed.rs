//! Issue 9's remaining gaps: a last record whose header is damaged beyond one bit could not be
//! tied to its key, so an overwritten (or deleted) key's older value showed again after the
//! writer cut the record. Now the key is told from the record checksum whenever that field
//! survived, and when nothing tells it, no key that may have been the record's reads its
//! older value: the writer tombstones them, a reader reads them as corrupt.

use super::recovery::{log_ending_in_a_write_of_key, log_of};
use super::*;

/// Damages a record header in place.
type Damager = Box<dyn Fn(&mut [u8])>;

/// Every way of damaging the last record's 24-byte header this test tries: two bits in two
/// different bytes, one byte replaced by each of a few values, runs of bytes, the whole
/// header.
fn header_damage() -> Vec<(String, Damager)> {
    let mut ways: Vec<(String, Damager)> = Vec::new();
    for i in 0..24 {
        for j in (i + 1)..24 {
            ways.push((
                format!("bits in bytes {i} and {j}"),
                Box::new(move |h: &mut [u8]| {
                    h[i] ^= 0x02;
                    h[j] ^= 0x40;
                }),
            ));
        }
        for v in [0x00u8, 0xff, 0x5a] {
            ways.push((
                format!("byte {i} := {v:#x} plus a bit in byte {}", (i + 7) % 24),
                Box::new(move |h: &mut [u8]| {
                    h[i] = v;
                    h[(i + 7) % 24] ^= 0x01;
                }),
            ));
        }
        for n in [4usize, 8] {
            ways.push((
                format!("bytes {i}..{} scrambled", (i + n).min(24)),
                Box::new(move |h: &mut [u8]| {
                    for (k, b) in h[i..(i + n).min(24)].iter_mut().enumerate() {
                        *b = b.wrapping_mul(31).wrapping_add(17 + k as u8);
                    }
                }),
            ));
        }
    }
    ways.push((
        "every byte".into(),
        Box::new(|h: &mut [u8]| h.iter_mut().for_each(|b| *b = !*b)),
    ));
    ways
}

#[test]
fn a_last_record_with_multi_bit_header_damage_never_brings_the_older_value_back() {
    let dir = tempfile::tempdir().unwrap();
    for deleting in [false, true] {
        let path = dir.path().join(format!("base-{deleting}.log"));
        let neighbours: &[(&[u8], &[u8])] = &[(b"k", b"a prefix of the key")];
        let (clean, start) = log_ending_in_a_write_of_key(&path, neighbours, deleting);
        for (what, damage) in header_damage() {
            let what = format!("deleting={deleting}, {what}");
            let mut bytes = clean.clone();
            damage(&mut bytes[start..start + RECORD_HEADER_LEN as usize]);
            if bytes == clean {
                continue;
            }
            let (_sub, damaged) = log_of(&bytes);
            let never_old = |store: &LogStore, who: &str| match store.get(b"key") {
                Ok(Some(v)) => assert!(
                    !deleting && v == b"new value",
                    "{what}, {who}: read {:?}",
                    String::from_utf8_lossy(&v)
                ),
                Ok(None) => {}
                Err(e) => assert!(e.is_corrupt(), "{what}, {who}: {e}"),
            };
            // A damaged header may also read as a torn tail (a header claiming more bytes
            // than the file holds, with a sound checksum by chance) or as corruption: both
            // are fine as long as no older value comes back.
            match LogStore::options().read_only(true).open(&damaged) {
                Ok(r) => {
                    if let Some(tail) = &r.open_report().damaged_tail {
                        // Told, or among the suspects (the header alone is damaged here).
                        let key = &b"key"[..];
                        assert!(
                            tail.key.as_deref() == Some(key)
                                || tail.suspects.iter().any(|s| s == key),
                            "{what}: {tail:?}"
                        );
                    }
                    never_old(&r, "reader")
                }
                Err(e) => assert!(e.is_corrupt(), "{what}: {e}"),
            }
            assert_eq!(
                std::fs::read(&damaged).unwrap(),
                bytes,
                "{what}: reader wrote"
            );
            let store = match LogStore::options()
                .durability(Durability::None)
                .open(&damaged)
            {
                Ok(store) => store,
                Err(e) => {
                    assert!(e.is_corrupt(), "{what}: {e}");
                    continue;
                }
            };
            never_old(&store, "writer");
            drop(store);
            // And after the writer's recovery, for good.
            never_old(&fast(&damaged), "reopened");
        }
    }
}

/// Damages the last record in place, given where its key starts and its length.
type RecordDamager = Box<dyn Fn(&mut [u8], usize)>;

/// Ways of damaging a last record's record checksum field *and* its key bytes, alone or with
/// more of the header (fields, header checksum, key block) or its trailer: the patterns where
/// nothing in a v1 record names the key, so recovery cut the record and the key's older
/// value came back (or a deleted key returned).
fn crc_and_key_damage() -> Vec<(String, RecordDamager)> {
    let mut ways: Vec<(String, RecordDamager)> = Vec::new();
    let scramble = |b: &mut [u8]| {
        for (k, x) in b.iter_mut().enumerate() {
            *x = x.wrapping_mul(31).wrapping_add(17 + k as u8);
        }
    };
    for key_byte in 0..3usize {
        for bit in [0x01u8, 0x20, 0x80] {
            ways.push((
                format!("record crc scrambled, key byte {key_byte} ^ {bit:#x}"),
                Box::new(move |r: &mut [u8], key_at: usize| {
                    scramble(&mut r[20..24]);
                    r[key_at + key_byte] ^= bit;
                }),
            ));
            ways.push((
                format!("header fields and record crc scrambled, key byte {key_byte} ^ {bit:#x}"),
                Box::new(move |r: &mut [u8], key_at: usize| {
                    scramble(&mut r[4..24]);
                    r[key_at + key_byte] ^= bit;
                }),
            ));
        }
        ways.push((
            format!("record crc zeroed, key byte {key_byte} zeroed"),
            Box::new(move |r: &mut [u8], key_at: usize| {
                r[20..24].fill(0);
                r[key_at + key_byte] = 0;
            }),
        ));
        ways.push((
            format!("the whole header before the key scrambled, key byte {key_byte} ^ 0x04"),
            Box::new(move |r: &mut [u8], key_at: usize| {
                scramble(&mut r[..key_at]);
                r[key_at + key_byte] ^= 0x04;
            }),
        ));
        ways.push((
            format!("a run from the record crc through key byte {key_byte}"),
            Box::new(move |r: &mut [u8], key_at: usize| {
                scramble(&mut r[20..=key_at + key_byte]);
            }),
        ));
        ways.push((
            format!("record crc, key byte {key_byte} and the record's last 12 bytes"),
            Box::new(move |r: &mut [u8], key_at: usize| {
                scramble(&mut r[20..24]);
                r[key_at + key_byte] ^= 0x10;
                let n = r.len();
                scramble(&mut r[n - 12..]);
            }),
        ));
    }
    ways.push((
        "the whole key and the record crc".into(),
        Box::new(move |r: &mut [u8], key_at: usize| {
            scramble(&mut r[20..24]);
            scramble(&mut r[key_at..key_at + 3]);
        }),
    ));
    ways
}

/// Issue 9's last gap: damage to both a last record's checksum field and its key bytes. A v1
/// record then named no key (the writer cut it and the older value came back); a v2 record's
/// key block (in its header, covered twice, and again after its value) names the key.
#[test]
fn damage_to_the_record_checksum_and_the_key_never_brings_the_older_value_back() {
    let dir = tempfile::tempdir().unwrap();
    for deleting in [false, true] {
        let path = dir.path().join(format!("base-{deleting}.log"));
        let neighbours: &[(&[u8], &[u8])] = &[(b"kex", b"same length, another key")];
        let (clean, start) = log_ending_in_a_write_of_key(&path, neighbours, deleting);
        let key_at = clean[start..]
            .windows(3)
            .position(|w| w == b"key")
            .expect("the last record holds its key");
        for (what, damage) in crc_and_key_damage() {
            let what = format!("deleting={deleting}, {what}");
            let mut bytes = clean.clone();
            damage(&mut bytes[start..], key_at);
            let (_sub, damaged) = log_of(&bytes);
            let never_old = |store: &LogStore, who: &str| match store.get(b"key") {
                Ok(Some(v)) => panic!(
                    "{what}, {who}: read {:?} from a damaged record's key",
                    String::from_utf8_lossy(&v)
                ),
                Ok(None) => {}
                Err(e) => assert!(e.is_corrupt(), "{what}, {who}: {e}"),
            };
            let r = LogStore::options().read_only(true).open(&damaged).unwrap();
            never_old(&r, "reader");
            assert_eq!(
                r.get(b"other").unwrap().as_deref(),
                Some(&b"stays"[..]),
                "{what}"
            );
            drop(r);
            let store = fast(&damaged);
            let tail = store.open_report().damaged_tail.clone().expect(&what);
            assert_eq!(tail.key.as_deref(), Some(&b"key"[..]), "{what}: key told");
            never_old(&store, "writer");
            assert_eq!(
                store.get(b"kex").unwrap().as_deref(),
                Some(&b"same length, another key"[..]),
                "{what}: only the damaged record's key is tombstoned"
            );
            drop(store);
            never_old(&fast(&damaged), "reopened");
        }
    }
}

/// When the key block survives but names no key of the log, the damaged record's key had no
/// older value: nothing is tombstoned, every other key keeps its value, and the damaged key
/// reads as missing.
#[test]
fn a_damaged_record_of_a_new_key_tombstones_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = fast(&path);
    store.put(b"old", b"stays").unwrap();
    store.put(b"odd", b"same length, stays").unwrap();
    let start = store.stats().file_bytes as usize;
    store.put(b"new", b"never seen before").unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    // The record crc field and a key byte ("new" becomes "nej"): only the key block names it.
    bytes[start + 20..start + 24].copy_from_slice(&[1, 2, 3, 4]);
    bytes[start + RECORD_HEADER_LEN as usize + 2] ^= 0x1d;
    std::fs::write(&path, &bytes).unwrap();
    let store = fast(&path);
    let tail = store
        .open_report()
        .damaged_tail
        .clone()
        .expect("damage reported");
    assert_eq!(
        (tail.key, tail.suspects, tail.tombstoned),
        (None, vec![], false)
    );
    assert_eq!(store.get(b"new").unwrap(), None);
    assert_eq!(store.get(b"old").unwrap().as_deref(), Some(&b"stays"[..]));
    assert_eq!(
        store.get(b"odd").unwrap().as_deref(),
        Some(&b"same length, stays"[..])
    );
}
