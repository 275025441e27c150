//! Every read path checks the value's record checksum (issue 9: the store contract says so,
//! and bytes can change on disk after open); `read_unchecked` is the one path that does not,
//! and `verify` reports each damaged key.

use std::os::unix::fs::FileExt;

use super::*;

/// Flips one bit of `key`'s value in the file, behind the store's back.
fn flip_value_byte(store: &LogStore, key: &[u8], at: u64) {
    let loc = store.state().index.get(key).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(store.path())
        .unwrap();
    let mut b = [0u8];
    file.read_exact_at(&mut b, loc.value_off + at).unwrap();
    b[0] ^= 0x20;
    file.write_all_at(&b, loc.value_off + at).unwrap();
}

#[test]
fn a_value_damaged_after_open_is_corrupt_on_every_checked_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast(&dir.path().join("store.log"));
    let small = vec![1u8; 100];
    // Past the size checked from the map, so the positioned-read check runs too.
    let big = crate::testkit::pattern(3 << 20, 5);
    store.put(b"small", &small).unwrap();
    store.put(b"big", &big).unwrap();
    store.put(b"fine", b"untouched").unwrap();
    flip_value_byte(&store, b"small", 10);
    flip_value_byte(&store, b"big", (2 << 20) + 7);

    for key in [&b"small"[..], b"big"] {
        let err = store.get(key).unwrap_err();
        assert!(err.is_corrupt(), "get: {err}");
        assert!(store.read(key).unwrap_err().is_corrupt());
        assert!(store.with_value(key, &mut |_| {}).unwrap_err().is_corrupt());
        assert!(store.get_many(&[key]).unwrap_err().is_corrupt());
        // The unchecked path says what it gives up.
        let raw = store.read_unchecked(key).unwrap().unwrap();
        assert_eq!(raw.len(), if key == b"small" { 100 } else { 3 << 20 });
    }
    assert_eq!(
        store.get(b"fine").unwrap().as_deref(),
        Some(&b"untouched"[..])
    );
    assert!(store.scan().unwrap().any(|e| e.is_err()));

    let report = store.verify().unwrap();
    assert_eq!(report.checked, 3);
    let mut damaged: Vec<_> = report.damaged.iter().map(|(k, _)| k.clone()).collect();
    damaged.sort();
    assert_eq!(damaged, vec![b"big".to_vec(), b"small".to_vec()]);
    assert!(report.damaged.iter().all(|(_, e)| e.is_corrupt()));
}

#[test]
fn verify_reports_a_key_a_reader_found_damaged_at_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = fast(&path);
    store.put(b"a", b"1").unwrap();
    store.put(b"b", b"2").unwrap();
    store.flush().unwrap();
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let r = reader(&path);
    let report = r.verify().unwrap();
    assert_eq!(report.checked, 2);
    assert_eq!(report.damaged.len(), 1);
    assert_eq!(report.damaged[0].0, b"b".to_vec());
}

/// A record damaged on disk after open was copied into the compacted file, where it sat in
/// the middle of the log and made every later open fail.
#[test]
fn compaction_refuses_to_carry_a_damaged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = fast(&path);
    store.put(b"a", b"first").unwrap();
    store.put(b"b", b"second").unwrap();
    store.put(b"c", b"third").unwrap();
    store.put(b"a", b"garbage to compact away").unwrap();
    flip_value_byte(&store, b"b", 2);
    let before = std::fs::read(&path).unwrap();
    let generation = store.stats().generation;
    let err = store.compact().unwrap_err();
    assert!(err.is_corrupt(), "{err}");
    assert!(
        matches!(&err, Error::Corrupt { key: Some(_), .. }),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "the log is left as it was"
    );
    assert_eq!(store.stats().generation, generation);
    assert!(!dir.path().join("store.log.compacting").exists());
    // The open handle keeps serving the other keys.
    assert!(store.get(b"b").unwrap_err().is_corrupt());
    assert_eq!(store.get(b"c").unwrap().as_deref(), Some(&b"third"[..]));
}

/// Every byte of a small log flipped in turn behind an open store's back: every read is the
/// value written, or an error — never another value.
#[test]
fn every_byte_flipped_after_open_reads_right_or_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let states = recovery::mixed_log(&path);
    let want = states.last().unwrap().1.clone();
    let store = fast(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    for at in 0..len {
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x10], at).unwrap();
        for (key, value) in &want {
            match store.get(key) {
                Ok(Some(got)) => assert!(&got == value, "flip at {at}: key {key:?} misread"),
                Ok(None) => panic!("flip at {at}: key {key:?} vanished"),
                Err(e) => assert!(e.is_corrupt(), "flip at {at}: {e}"),
            }
        }
        file.write_all_at(&b, at).unwrap();
    }
}

/// Reads a stream to its end through a small buffer, so a value spans many reads.
fn drain(mut reader: crate::ValueReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match std::io::Read::read(&mut reader, &mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Issue 11: `read_stream` reads the log in pieces and checks the record checksum by the end
/// of the stream: a damaged value is an error where the stream would end, never a value
/// taken for whole; a missing key is `None`, as for a read-only handle after a refresh.
#[test]
fn read_stream_returns_each_value_and_fails_before_the_end_on_a_damaged_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = fast(&path);
    let big = crate::testkit::pattern(3 << 20, 9);
    store.put(b"big", &big).unwrap();
    store.put(b"small", b"small value").unwrap();
    store.put(b"empty", b"").unwrap();
    for (key, want) in [
        (&b"big"[..], &big[..]),
        (b"small", b"small value"),
        (b"empty", b""),
    ] {
        let reader = store.read_stream(key).unwrap().unwrap();
        assert_eq!(reader.len(), want.len() as u64);
        assert!(drain(reader).unwrap() == want, "{key:?}");
    }
    assert!(store.read_stream(b"missing").unwrap().is_none());
    // A read-only handle finds what the writer appended after it opened.
    let r = reader(&path);
    store.put(b"later", b"appended").unwrap();
    let got = drain(r.read_stream(b"later").unwrap().unwrap()).unwrap();
    assert_eq!(got, b"appended");

    flip_value_byte(&store, b"big", (2 << 20) + 3);
    let err = drain(store.read_stream(b"big").unwrap().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    // The bytes before the end come through (the check is at the end), but never an end.
    let mut reader = store.read_stream(b"big").unwrap().unwrap();
    let mut prefix = vec![0u8; 1 << 20];
    std::io::Read::read_exact(&mut reader, &mut prefix).unwrap();
    assert!(prefix == big[..1 << 20]);
    flip_value_byte(&store, b"small", 0);
    let err = drain(store.read_stream(b"small").unwrap().unwrap()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{err}");
}

/// A record whose header or key changed on disk is refused before any byte is streamed.
#[test]
fn read_stream_refuses_a_record_whose_key_changed_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast(&dir.path().join("store.log"));
    store.put(b"key", b"value").unwrap();
    let loc = store.state().index.get(b"key").unwrap();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(store.path())
        .unwrap();
    file.write_all_at(b"kez", loc.value_off - 3).unwrap();
    let err = store.read_stream(b"key").unwrap_err();
    assert!(err.is_corrupt(), "{err}");
}
