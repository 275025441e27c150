//! Opening after crashes and damage: torn tails, damaged records, every prefix and every flipped byte of a log.

use super::*;

/// The bytes of a log at `path` holding `other` = "stays", `key` = "old value" and the
/// `neighbours`, whose last record then overwrites `key` with "new value" (or, `deleting`,
/// deletes it), and where that last record starts: the base every damage-to-the-last-record
/// test damages.
pub(super) fn log_ending_in_a_write_of_key(
    path: &Path,
    neighbours: &[(&[u8], &[u8])],
    deleting: bool,
) -> (Vec<u8>, usize) {
    let store = fast(path);
    store.put(b"other", b"stays").unwrap();
    store.put(b"key", b"old value").unwrap();
    for (key, value) in neighbours {
        store.put(key, value).unwrap();
    }
    let start = store.stats().file_bytes as usize;
    if deleting {
        store.delete(b"key").unwrap();
    } else {
        store.put(b"key", b"new value").unwrap();
    }
    store.flush().unwrap();
    drop(store);
    (std::fs::read(path).unwrap(), start)
}

/// `bytes` written as `store.log` in a directory of its own (kept while the guard lives).
pub(super) fn log_of(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let sub = tempfile::tempdir().unwrap();
    let path = sub.path().join("store.log");
    std::fs::write(&path, bytes).unwrap();
    (sub, path)
}

#[test]
fn torn_tail_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.log");
    let records: &[(&[u8], Option<&[u8]>)] = &[
        (b"a", Some(b"first value")),
        (b"b", Some(b"second")),
        (b"a", None),
        (b"c", Some(&[7u8; 40])),
    ];
    let ends = write_records(&full, records);
    let bytes = std::fs::read(&full).unwrap();
    assert_eq!(bytes.len() as u64, *ends.last().unwrap());
    // Every cut inside the last two records, and at their boundaries.
    let first = ends[ends.len() - 3];
    for cut in first..=bytes.len() as u64 {
        let path = dir.path().join(format!("cut-{cut}.log"));
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let whole = ends.iter().rposition(|&e| e <= cut).unwrap();
        let boundary = ends[whole];
        let store = fast(&path);
        let report = store.open_report().clone();
        assert_eq!(report.records, whole as u64, "cut at {cut}");
        if cut == boundary {
            assert_eq!(report.torn_tail, None, "cut at boundary {cut}");
        } else {
            let tail = report.torn_tail.expect("torn tail reported");
            assert_eq!(
                (tail.offset, tail.len, tail.cut),
                (boundary, cut - boundary, true)
            );
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), boundary);
        let mut want = BTreeMap::new();
        for (k, v) in &records[..whole] {
            match v {
                Some(v) => want.insert(k.to_vec(), v.to_vec()),
                None => want.remove(*k),
            };
        }
        assert_eq!(contents(&store), want, "contents after cut at {cut}");
        // Appending after the cut gives a log that reopens cleanly.
        store.put(b"after", b"cut").unwrap();
        drop(store);
        let store = fast(&path);
        assert_eq!(store.open_report().torn_tail, None);
        want.insert(b"after".to_vec(), b"cut".to_vec());
        assert_eq!(contents(&store), want);
    }
}

/// Issue 9: a whole last record failing its checksum was taken for a torn tail and cut. Now
/// it is moved to a side file (never deleted) before it is cut, and reported.
#[test]
fn a_damaged_last_record_is_moved_aside_never_silently_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let ends = write_records(&path, &[(b"a", Some(b"1")), (b"b", Some(b"22222"))]);
    for flip in ends[1]..ends[2] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[flip as usize] ^= 0x40;
        let sub = tempfile::tempdir().unwrap();
        let damaged = sub.path().join("damaged.log");
        std::fs::write(&damaged, &bytes).unwrap();
        let store = fast(&damaged);
        let report = store.open_report().clone();
        assert_eq!(report.torn_tail, None, "flip at {flip}");
        let tail = report.damaged_tail.expect("damage reported");
        assert_eq!((tail.offset, tail.len), (ends[1], ends[2] - ends[1]));
        let moved = tail.moved_to.expect("moved aside");
        assert_eq!(
            std::fs::read(&moved).unwrap(),
            &bytes[ends[1] as usize..],
            "flip at {flip}: the side file holds the damaged bytes"
        );
        // `b` had no older value, so nothing needs a tombstone.
        assert!(!tail.tombstoned);
        assert_eq!(contents(&store), model(&[(b"a", b"1")]));
    }
    // Garbage appended after valid records is damage too (it is not cut short), but bytes
    // that are all zero are what a power cut leaves: a torn tail.
    let clean = std::fs::read(&path).unwrap();
    let mut bytes = clean.clone();
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(&path, &bytes).unwrap();
    let store = fast(&path);
    let tail = store.open_report().damaged_tail.clone().unwrap();
    assert_eq!((tail.len, tail.reason), (100, Damage::HeaderChecksum));
    assert_eq!(contents(&store), model(&[(b"a", b"1"), (b"b", b"22222")]));
    drop(store);
    let mut bytes = clean;
    bytes.extend_from_slice(&[0; 100]);
    std::fs::write(&path, &bytes).unwrap();
    let store = fast(&path);
    let torn = store.open_report().torn_tail.clone().unwrap();
    assert_eq!((torn.len, torn.reason), (100, TornReason::ZeroFilled));
    assert_eq!(store.open_report().damaged_tail, None);
}

/// Issue 9: a damaged last record that overwrote a key made the key read its older value
/// again, and a damaged last tombstone brought a deleted key back, with no error.
#[test]
fn a_damaged_overwrite_or_delete_never_brings_the_older_value_back() {
    let dir = tempfile::tempdir().unwrap();
    for deleting in [false, true] {
        let path = dir.path().join(format!("store-{deleting}.log"));
        let store = LogStore::open(&path).unwrap();
        store.put(b"key", b"old value").unwrap();
        let before = store.stats().file_bytes;
        if deleting {
            assert!(store.delete(b"key").unwrap());
        } else {
            store.put(b"key", b"new value").unwrap();
        }
        drop(store);
        let len = std::fs::metadata(&path).unwrap().len();
        // Damage the last byte of the record's body: the tombstone's key is its only body,
        // so flip inside the record checksum field instead there.
        let at = if deleting { before + 20 } else { len - 1 };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[at as usize] ^= 0x04;
        std::fs::write(&path, &bytes).unwrap();

        // A reader alongside reads the key as corrupt, and changes nothing.
        let reader = LogStore::options().read_only(true).open(&path).unwrap();
        let tail = reader.open_report().damaged_tail.clone().unwrap();
        assert_eq!(tail.key.as_deref(), Some(&b"key"[..]));
        assert!(tail.moved_to.is_none());
        let err = reader.get(b"key").unwrap_err();
        assert!(err.is_corrupt(), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        // The writer moves the record aside and writes a tombstone in its place.
        let store = LogStore::open(&path).unwrap();
        let tail = store.open_report().damaged_tail.clone().unwrap();
        assert!(tail.tombstoned, "{tail:?}");
        assert_eq!(store.get(b"key").unwrap(), None, "deleting={deleting}");
        drop(store);
        let store = LogStore::open(&path).unwrap();
        assert!(!store.open_report().recovered());
        assert_eq!(store.get(b"key").unwrap(), None, "deleting={deleting}");
        // The reader follows the writer's recovery on its next refresh.
        reader.refresh().unwrap();
        assert_eq!(reader.get(b"key").unwrap(), None);
    }
}

/// Issue 9: a log truncated to 0 bytes silently opened as an empty store.
#[test]
fn a_log_shorter_than_its_header_is_an_error_not_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    LogStore::open(&path).unwrap().put(b"k", b"v").unwrap();
    for len in [0u64, 1, 8, 31] {
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(len).unwrap();
        drop(file);
        let reason = expect_corrupt(LogStore::open(&path));
        assert!(
            reason.contains("header") || reason.contains("magic"),
            "{reason}"
        );
        expect_corrupt(LogStore::options().read_only(true).open(&path));
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len,
            "left as found"
        );
    }
}

#[test]
fn corruption_in_the_middle_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let ends = write_records(
        &path,
        &[
            (b"a", Some(b"one")),
            (b"b", Some(b"two")),
            (b"c", Some(b"three")),
            (b"d", Some(b"four")),
        ],
    );
    let clean = std::fs::read(&path).unwrap();
    // Damage the second record's header, its key, and its value, in turn.
    for (what, at) in [
        ("header", ends[1] + 6),
        ("key", ends[1] + RECORD_HEADER_LEN),
        ("value", ends[2] - 1),
    ] {
        let mut bytes = clean.clone();
        bytes[at as usize] ^= 0x01;
        let damaged = dir.path().join(format!("damaged-{what}.log"));
        std::fs::write(&damaged, &bytes).unwrap();
        let reason = expect_corrupt(LogStore::options().open(&damaged));
        assert!(
            reason.contains(&format!("offset {}", ends[1])),
            "{what}: reason {reason:?} names the bad record's offset"
        );
        // Readers refuse it too, and nothing was cut.
        expect_corrupt(LogStore::options().read_only(true).open(&damaged));
        assert_eq!(
            std::fs::read(&damaged).unwrap(),
            bytes,
            "{what}: file untouched"
        );
    }
}

#[test]
fn unfinished_streamed_put_is_cut_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let ends = write_records(&path, &[(b"a", Some(b"1"))]);
    // What a crash in the middle of put_reader leaves: a pending header, the key, part of a
    // value — here one that itself contains a whole valid log record.
    let mut bytes = std::fs::read(&path).unwrap();
    let inner = bytes[ends[0] as usize..].to_vec();
    bytes.extend_from_slice(&RecordHeader::encode_pending(b"big"));
    bytes.extend_from_slice(b"big");
    bytes.extend_from_slice(&inner);
    std::fs::write(&path, &bytes).unwrap();
    let store = fast(&path);
    let tail = store.open_report().torn_tail.clone().unwrap();
    assert_eq!((tail.offset, tail.cut), (ends[1], true));
    assert_eq!(contents(&store), model(&[(b"a", b"1")]));
}

#[test]
fn failed_streamed_put_leaves_the_store_unchanged() {
    struct Failing(usize);
    impl std::io::Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("network gone"));
            }
            let n = buf.len().min(self.0);
            buf[..n].fill(9);
            self.0 -= n;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::open(&path).unwrap();
    store.put(b"a", b"1").unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let err = store.put_reader(b"b", &mut Failing(1 << 20)).unwrap_err();
    assert!(matches!(err, Error::ValueSource { .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    assert_eq!(store.get(b"b").unwrap(), None);
    store.put(b"c", b"3").unwrap();
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().torn_tail, None);
    assert_eq!(contents(&store), model(&[(b"a", b"1"), (b"c", b"3")]));
}

#[test]
fn tombstones_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::open(&path).unwrap();
    store.put(b"gone", b"soon").unwrap();
    store.put(b"stays", b"here").unwrap();
    assert!(store.delete(b"gone").unwrap());
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.get(b"gone").unwrap(), None);
    assert!(!store.delete(b"gone").unwrap());
    assert_eq!(contents(&store), model(&[(b"stays", b"here")]));
    store.put(b"gone", b"back").unwrap();
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.get(b"gone").unwrap().as_deref(), Some(&b"back"[..]));
}

#[test]
fn read_only_open_skips_a_torn_tail_without_cutting_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    write_records(&path, &[(b"a", Some(b"1"))]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[1, 2, 3]);
    std::fs::write(&path, &bytes).unwrap();
    let r = reader(&path);
    let tail = r.open_report().torn_tail.clone().unwrap();
    assert_eq!((tail.len, tail.cut), (3, false));
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(contents(&r), model(&[(b"a", b"1")]));
}

#[test]
fn a_file_that_is_not_a_log_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    std::fs::write(&path, b"hello, I am a text file and not a log at all").unwrap();
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("magic"), "{reason}");
    std::fs::write(&path, &b"CACHELOG\x01\0\0\0"[..]).unwrap();
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("cut short"), "{reason}");
}

/// A small log written by every kind of write, with the model state after each record.
/// `(file length, contents)` after each step of a mixed workload.
pub(super) type States = Vec<(u64, BTreeMap<Vec<u8>, Vec<u8>>)>;

pub(super) fn mixed_log(path: &Path) -> States {
    let store = fast(path);
    let mut model = BTreeMap::new();
    let mut states = vec![(store.stats().file_bytes, model.clone())];
    let mut record = |store: &LogStore, model: &BTreeMap<Vec<u8>, Vec<u8>>| {
        states.push((store.stats().file_bytes, model.clone()));
    };
    store.put(b"a", b"apple").unwrap();
    model.insert(b"a".to_vec(), b"apple".to_vec());
    record(&store, &model);
    store.put_reader(b"s", &mut &[9u8; 150][..]).unwrap();
    model.insert(b"s".to_vec(), vec![9u8; 150]);
    record(&store, &model);
    store.delete(b"a").unwrap();
    model.remove(&b"a"[..]);
    record(&store, &model);
    store.put(b"", b"").unwrap();
    model.insert(vec![], vec![]);
    record(&store, &model);
    // put_many writes several records; each boundary is a state of its own.
    for (k, v) in [(&b"m1"[..], &b"one"[..]), (b"m2", b"two"), (b"s", b"short")] {
        model.insert(k.to_vec(), v.to_vec());
    }
    store
        .put_many(&[(b"m1", b"one"), (b"m2", b"two"), (b"s", b"short")])
        .unwrap();
    let end = store.stats().file_bytes;
    let m1 = states.last().unwrap().0 + RECORD_HEADER_LEN + 2 + 3 + KEY_BLOCK_LEN;
    let mut after_m1 = states.last().unwrap().1.clone();
    after_m1.insert(b"m1".to_vec(), b"one".to_vec());
    let mut after_m2 = after_m1.clone();
    after_m2.insert(b"m2".to_vec(), b"two".to_vec());
    states.push((m1, after_m1));
    states.push((m1 + RECORD_HEADER_LEN + 2 + 3 + KEY_BLOCK_LEN, after_m2));
    states.push((end, model.clone()));
    store.flush().unwrap();
    states
}

#[test]
fn every_prefix_of_the_log_opens_to_the_writes_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.log");
    let states = mixed_log(&full);
    let bytes = std::fs::read(&full).unwrap();
    assert_eq!(bytes.len() as u64, states.last().unwrap().0);
    let path = dir.path().join("prefix.log");
    for cut in FILE_HEADER_LEN..=bytes.len() as u64 {
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let (boundary, want) = states.iter().rev().find(|(end, _)| *end <= cut).unwrap();
        let store = fast(&path);
        assert_eq!(contents(&store), *want, "cut at {cut}");
        assert_eq!(store.stats().file_bytes, *boundary, "cut at {cut}");
        assert_eq!(store.open_report().torn_tail.is_some(), cut != *boundary);
    }
}

#[test]
fn every_single_byte_flip_is_cut_or_reported() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.log");
    let states = mixed_log(&full);
    let bytes = std::fs::read(&full).unwrap();
    let path = dir.path().join("flipped.log");
    for at in 0..bytes.len() {
        for mask in [0x01u8, 0x80] {
            let mut flipped = bytes.clone();
            flipped[at] ^= mask;
            std::fs::write(&path, &flipped).unwrap();
            match LogStore::options().durability(Durability::None).open(&path) {
                // Damage in the last record: the state before it, less the damaged record's
                // key when a tombstone was written so its older value does not come back.
                Ok(store) => {
                    let got = contents(&store);
                    let report = store.open_report().clone();
                    let bad_at = match (&report.torn_tail, &report.damaged_tail) {
                        (Some(t), None) => t.offset,
                        (None, Some(d)) => d.offset,
                        other => panic!("flip {mask:#x} at {at} went unnoticed: {other:?}"),
                    };
                    let (_, before) = states
                        .iter()
                        .find(|(e, _)| *e == bad_at)
                        .unwrap_or_else(|| panic!("flip {mask:#x} at {at}: cut mid-record"));
                    let mut want = before.clone();
                    if let Some(d) = report.damaged_tail.as_ref().filter(|d| d.tombstoned) {
                        want.remove(d.key.as_ref().unwrap());
                    }
                    assert_eq!(got, want, "flip {mask:#x} at {at}");
                }
                Err(Error::Corrupt { .. }) | Err(Error::UpgradeRequired { .. }) => {}
                Err(e) => panic!("flip {mask:#x} at {at}: unexpected error {e}"),
            }
        }
    }
}

/// Issue 9, at every position: any one bit flipped anywhere in a last record that overwrote
/// or deleted a key — header, key or value — never brings the key's older value back.
#[test]
fn one_flipped_bit_anywhere_in_the_last_record_never_brings_the_older_value_back() {
    let dir = tempfile::tempdir().unwrap();
    for deleting in [false, true] {
        let path = dir.path().join(format!("base-{deleting}.log"));
        let (clean, start) = log_ending_in_a_write_of_key(&path, &[], deleting);
        for at in start..clean.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut bytes = clean.clone();
                bytes[at] ^= bit;
                let (_sub, damaged) = log_of(&bytes);
                let what = format!("deleting={deleting} flip {bit:#x} at {at}");
                // A reader alongside changes nothing and reads the key as corrupt.
                let r = reader(&damaged);
                let tail = r.open_report().damaged_tail.clone().expect(&what);
                assert_eq!(tail.key.as_deref(), Some(&b"key"[..]), "{what}: key told");
                assert!(r.get(b"key").unwrap_err().is_corrupt(), "{what}");
                drop(r);
                let store = fast(&damaged);
                assert!(
                    store
                        .open_report()
                        .damaged_tail
                        .as_ref()
                        .unwrap()
                        .tombstoned
                );
                assert_eq!(store.get(b"key").unwrap(), None, "{what}");
                assert_eq!(store.get(b"other").unwrap().as_deref(), Some(&b"stays"[..]));
            }
        }
    }
}
