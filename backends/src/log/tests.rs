use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::record::{FileHeader, RecordHeader};
use super::*;

mod conformance {
    use super::LogStore;

    crate::conformance_tests!(
        |dir: &std::path::Path| LogStore::open(dir.join("store.log")).unwrap(),
        persistent = true
    );
}

fn fast(path: &Path) -> LogStore {
    LogStore::options()
        .durability(Durability::None)
        .open(path)
        .unwrap()
}

fn reader(path: &Path) -> LogStore {
    LogStore::options().read_only(true).open(path).unwrap()
}

fn contents(store: &LogStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.scan().unwrap().map(|e| e.unwrap()).collect()
}

fn model(entries: &[(&[u8], &[u8])]) -> BTreeMap<Vec<u8>, Vec<u8>> {
    entries
        .iter()
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect()
}

/// Writes records one by one and returns the file length after each (record boundaries).
fn write_records(path: &Path, records: &[(&[u8], Option<&[u8]>)]) -> Vec<u64> {
    let store = fast(path);
    let mut ends = vec![store.stats().file_bytes];
    for (k, v) in records {
        match v {
            Some(v) => store.put(k, v).unwrap(),
            None => assert!(store.delete(k).unwrap()),
        }
        ends.push(store.stats().file_bytes);
    }
    store.flush().unwrap();
    ends
}

fn expect_corrupt(result: Result<LogStore>) -> String {
    match result {
        Err(Error::Corrupt { reason, .. }) => reason,
        other => panic!("expected Error::Corrupt, got {other:?}"),
    }
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

#[test]
fn damaged_last_record_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let ends = write_records(&path, &[(b"a", Some(b"1")), (b"b", Some(b"22222"))]);
    for flip in ends[1]..ends[2] {
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[flip as usize] ^= 0x40;
        let damaged = dir.path().join("damaged.log");
        std::fs::write(&damaged, &bytes).unwrap();
        let store = fast(&damaged);
        assert_eq!(
            store.open_report().torn_tail.as_ref().map(|t| t.offset),
            Some(ends[1]),
            "flip at {flip}"
        );
        assert_eq!(contents(&store), model(&[(b"a", b"1")]));
    }
    // Garbage appended after valid records is a torn tail too.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xAB; 100]);
    std::fs::write(&path, &bytes).unwrap();
    let store = fast(&path);
    assert_eq!(store.open_report().torn_tail.as_ref().unwrap().len, 100);
    assert_eq!(contents(&store), model(&[(b"a", b"1"), (b"b", b"22222")]));
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
        ("key", ends[1] + 24),
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
    bytes.extend_from_slice(&RecordHeader::encode_pending(3));
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
    assert!(matches!(err, Error::Io { .. }), "{err:?}");
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before);
    assert_eq!(store.get(b"b").unwrap(), None);
    store.put(b"c", b"3").unwrap();
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().torn_tail, None);
    assert_eq!(contents(&store), model(&[(b"a", b"1"), (b"c", b"3")]));
}

#[test]
fn second_writer_gets_locked_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let first = LogStore::open(&path).unwrap();
    // flock locks belong to the open file, so a second open in this process conflicts just
    // as one in another process does.
    match LogStore::open(&path) {
        Err(Error::Locked { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(reason.contains("store.log.lock"), "{reason}");
        }
        other => panic!("expected Error::Locked, got {other:?}"),
    }
    // Readers are welcome alongside the writer.
    let r = reader(&path);
    assert!(r.is_read_only());
    drop(first);
    let second = LogStore::open(&path).unwrap();
    second.put(b"k", b"v").unwrap();
}

#[test]
fn read_only_handle_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    LogStore::open(&path).unwrap().put(b"k", b"v").unwrap();
    let r = reader(&path);
    for result in [
        r.put(b"k", b"w"),
        r.delete(b"k").map(|_| ()),
        r.put_many(&[(b"x", b"y")]),
        r.put_reader(b"k", &mut &b"w"[..]).map(|_| ()),
        r.compact().map(|_| ()),
    ] {
        assert!(
            matches!(result, Err(Error::Unsupported { .. })),
            "{result:?}"
        );
    }
    assert_eq!(r.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    let missing = dir.path().join("missing.log");
    assert!(matches!(
        LogStore::options().read_only(true).open(&missing),
        Err(Error::Io { .. })
    ));
    assert!(!missing.exists(), "a read-only open creates nothing");
}

#[test]
fn reader_sees_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    w.put(b"a", b"1").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    // A miss refreshes.
    w.put(b"b", b"2").unwrap();
    w.put_reader(b"streamed", &mut &[5u8; 300_000][..]).unwrap();
    assert_eq!(r.get(b"b").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(r.get(b"streamed").unwrap().unwrap(), vec![5u8; 300_000]);
    // A hit does not: an overwrite shows after refresh().
    w.put(b"a", b"one").unwrap();
    w.delete(b"b").unwrap();
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(r.refresh().unwrap());
    assert!(!r.refresh().unwrap(), "nothing new");
    assert_eq!(r.get(b"a").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(r.get(b"b").unwrap(), None);
    // len, keys and scan refresh first.
    w.put(b"c", b"3").unwrap();
    assert_eq!(r.len().unwrap(), 3);
    assert_eq!(contents(&r), contents(&w));
}

#[test]
fn reader_follows_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    for i in 0..20u8 {
        w.put(b"churn", &[i; 100]).unwrap();
    }
    w.put(b"keep", b"kept").unwrap();
    let r = reader(&path);
    let old = r.read(b"churn").unwrap().unwrap();
    let before = r.stats().generation;
    w.compact().unwrap();
    w.put(b"new", b"after compaction").unwrap();
    // The miss refreshes; the new generation makes the reader reopen the new file.
    assert_eq!(
        r.get(b"new").unwrap().as_deref(),
        Some(&b"after compaction"[..])
    );
    assert_ne!(r.stats().generation, before);
    assert_eq!(contents(&r), contents(&w));
    // A value lent before the swap still reads from the old file.
    assert_eq!(&old[..], &[19u8; 100][..]);
}

#[test]
fn compaction_keeps_live_records_only() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::open(&path).unwrap();
    let mut want = BTreeMap::new();
    for i in 0..200u32 {
        let k = format!("k{}", i % 50).into_bytes();
        let v = vec![i as u8; (i as usize * 7) % 300];
        store.put(&k, &v).unwrap();
        want.insert(k, v);
    }
    for i in (0..50).step_by(5) {
        let k = format!("k{i}").into_bytes();
        store.delete(&k).unwrap();
        want.remove(&k);
    }
    let blob = store.read(b"k1").unwrap().unwrap();
    let before = store.stats();
    assert!(before.garbage_ratio() > 0.5, "{before:?}");
    let after = store.compact().unwrap();
    assert_eq!(after.garbage_ratio(), 0.0);
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.entries, want.len() as u64);
    assert_eq!(after.file_bytes, FILE_HEADER_LEN + after.live_bytes);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), after.file_bytes);
    assert_eq!(after.generation, before.generation + 1);
    assert_eq!(contents(&store), want);
    assert_eq!(&blob[..], &want[&b"k1"[..]][..]);
    // The compacted file holds only puts: no tombstones, no old values.
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().records, want.len() as u64);
    assert_eq!(contents(&store), want);
    assert!(!sibling(&path, ".compacting").unwrap().exists());
    // Writing after compaction appends to the new file.
    store.put(b"k1", b"fresh").unwrap();
    want.insert(b"k1".to_vec(), b"fresh".to_vec());
    drop(store);
    assert_eq!(contents(&LogStore::open(&path).unwrap()), want);
}

#[test]
fn auto_compaction_runs_past_the_garbage_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::options()
        .durability(Durability::None)
        .auto_compact(0.5, 4096)
        .open(&path)
        .unwrap();
    for i in 0..100u32 {
        store.put(b"same", &[i as u8; 200]).unwrap();
        assert!(store.stats().garbage_ratio() <= 0.5 || store.stats().file_bytes < 4096);
    }
    assert!(store.stats().generation != 0);
    assert!(std::fs::metadata(&path).unwrap().len() < 4096 + 300);
    assert_eq!(store.get(b"same").unwrap(), Some(vec![99u8; 200]));
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
fn reads_lend_bytes_from_the_map() {
    let dir = tempfile::tempdir().unwrap();
    let store = fast(&dir.path().join("store.log"));
    store.put(b"k", b"value").unwrap();
    let blob = store.read(b"k").unwrap().unwrap();
    assert!(blob.is_mapped(), "{blob:?}");
    // A later append beyond the map remaps; the first blob keeps its own map.
    store.put(b"k2", &[3; 10_000]).unwrap();
    assert_eq!(store.get(b"k2").unwrap(), Some(vec![3; 10_000]));
    assert_eq!(&blob[..], b"value");
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

// ---- fixtures ----------------------------------------------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/log")
}

/// Copies a fixture into a fresh directory (a writer open may cut its tail) and returns it.
fn fixture_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::copy(fixture_dir().join(name), &path)
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    (dir, path)
}

/// What `v1.log` holds.
fn v1_contents() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    [
        (&b"alpha"[..], &b"uno"[..]),
        (b"", b"value of the empty key"),
        (b"nul\0inside", &[0, 1, 2, 255]),
        (&[0xff, 0xfe, 0x80], b""),
        (b"../not/a/path", b"path-like key"),
        (b"all-bytes", &all_bytes),
    ]
    .iter()
    .map(|(k, v)| (k.to_vec(), v.to_vec()))
    .collect()
}

/// Writes `v1.log` and its variants. Run explicitly when the format changes (and then add a
/// new version's fixtures beside these, never replace them):
/// `cargo test -p cacher-store log::tests::generate_fixtures -- --ignored`
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_fixtures() {
    let out = fixture_dir();
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.log");
    let store = LogStore::open(&path).unwrap();
    store.put(b"alpha", b"one").unwrap();
    store.put(b"doomed", b"to be deleted").unwrap();
    for (k, v) in v1_contents() {
        store.put(&k, &v).unwrap();
    }
    assert!(store.delete(b"doomed").unwrap());
    drop(store);
    let mut v1 = std::fs::read(&path).unwrap();
    // A fixed generation keeps the fixture byte-for-byte reproducible.
    v1[..FILE_HEADER_LEN as usize].copy_from_slice(&FileHeader { generation: 1 }.encode());
    std::fs::write(out.join("v1.log"), &v1).unwrap();

    // The value of the second record ("doomed") with one bit flipped: damage in the middle.
    let second = FILE_HEADER_LEN as usize + 24 + b"alpha".len() + b"one".len();
    let mut middle = v1.clone();
    middle[second + 24 + b"doomed".len() + 3] ^= 0x08;
    std::fs::write(out.join("v1-corrupt-middle.log"), &middle).unwrap();

    let mut magic = v1.clone();
    magic[0] = b'X';
    std::fs::write(out.join("v1-bad-magic.log"), &magic).unwrap();

    let mut future = v1.clone();
    future[8..12].copy_from_slice(&2u32.to_le_bytes());
    std::fs::write(out.join("v1-future-version.log"), &future).unwrap();

    // A put of "late" cut short 5 bytes before its end, as a crash mid-append leaves it.
    let mut data = crc32fast::Hasher::new();
    data.update(b"late");
    data.update(b"never acknowledged");
    let mut torn = v1.clone();
    torn.extend_from_slice(&RecordHeader::encode(Kind::Put, 4, 18, &data));
    torn.extend_from_slice(b"latenever acknowl");
    std::fs::write(out.join("v1-torn-tail.log"), &torn).unwrap();
}

#[test]
fn fixture_v1_opens_with_exact_contents() {
    let (_dir, path) = fixture_copy("v1.log");
    let bytes = std::fs::read(&path).unwrap();
    let store = LogStore::open(&path).unwrap();
    assert_eq!(
        store.open_report(),
        &OpenReport {
            records: 9,
            torn_tail: None
        }
    );
    assert_eq!(contents(&store), v1_contents());
    assert_eq!(store.get(b"doomed").unwrap(), None);
    assert_eq!(store.stats().generation, 1);
    drop(store);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "opening changed nothing"
    );
    let r = reader(&fixture_dir().join("v1.log"));
    assert_eq!(contents(&r), v1_contents());
}

#[test]
fn fixture_v1_corrupt_middle_is_corrupt() {
    let (_dir, path) = fixture_copy("v1-corrupt-middle.log");
    let second = FILE_HEADER_LEN + 24 + 5 + 3;
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains(&format!("offset {second}")), "{reason}");
}

#[test]
fn fixture_v1_bad_magic_is_corrupt() {
    let (_dir, path) = fixture_copy("v1-bad-magic.log");
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("bad magic"), "{reason}");
}

#[test]
fn fixture_v1_future_version_requires_upgrade() {
    let (_dir, path) = fixture_copy("v1-future-version.log");
    match LogStore::open(&path) {
        Err(Error::UpgradeRequired {
            path: p,
            found,
            supported,
        }) => assert_eq!((p, found, supported), (path, 2, 1)),
        other => panic!("expected Error::UpgradeRequired, got {other:?}"),
    }
}

#[test]
fn fixture_v1_torn_tail_opens_with_the_tail_cut() {
    let (_dir, path) = fixture_copy("v1-torn-tail.log");
    let v1_len = std::fs::metadata(fixture_dir().join("v1.log"))
        .unwrap()
        .len();
    let store = LogStore::open(&path).unwrap();
    let tail = store.open_report().torn_tail.clone().expect("torn tail");
    assert_eq!((tail.offset, tail.len, tail.cut), (v1_len, 24 + 17, true));
    assert_eq!(tail.reason, "record runs past the end of the file");
    assert_eq!(contents(&store), v1_contents());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), v1_len);
}

#[test]
fn reader_remaps_when_the_file_outgrows_its_map() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    w.put(b"small", b"x").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"small").unwrap().as_deref(), Some(&b"x"[..]));
    let big = crate::testkit::pattern(70 << 20, 11);
    w.put_reader(b"big", &mut &big[..]).unwrap();
    let blob = r.read(b"big").unwrap().unwrap();
    assert!(blob[..] == big[..]);
}

#[test]
fn reader_racing_a_writer_sees_only_whole_values() {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Each value names its key and version, so a reader can tell a whole value from a torn one.
    fn value(key: u32, version: u32) -> Vec<u8> {
        let mut v = format!("{key}:{version}:").into_bytes();
        v.resize(
            50 + (key as usize * 131 + version as usize * 17) % 5000,
            key as u8,
        );
        v
    }
    fn parse(v: &[u8]) -> (u32, u32) {
        let mut fields = v
            .split(|&b| b == b':')
            .map(|f| std::str::from_utf8(f).ok().and_then(|f| f.parse().ok()));
        (
            fields.next().flatten().expect("key field"),
            fields.next().flatten().expect("version field"),
        )
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let w = fast(&path);
    let r = reader(&path);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..3000u32 {
                let key = i % 97;
                let v = value(key, i);
                if i % 10 == 0 {
                    w.put_reader(&key.to_le_bytes(), &mut &v[..]).unwrap();
                } else {
                    w.put(&key.to_le_bytes(), &v).unwrap();
                }
                if i % 500 == 499 {
                    w.compact().unwrap();
                }
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut rounds = 0;
        while !done.load(Ordering::SeqCst) || rounds < 2 {
            r.refresh()
                .expect("a reader never sees the live tail as corruption");
            for key in 0..97u32 {
                if let Some(v) = r.get(&key.to_le_bytes()).unwrap() {
                    let (k, version) = parse(&v);
                    assert_eq!(k, key);
                    assert_eq!(v, value(key, version), "whole value of key {key}");
                }
            }
            rounds += 1;
        }
    });
    assert_eq!(contents(&r), contents(&w));
}

/// A small log written by every kind of write, with the model state after each record.
/// `(file length, contents)` after each step of a mixed workload.
type States = Vec<(u64, BTreeMap<Vec<u8>, Vec<u8>>)>;

fn mixed_log(path: &Path) -> States {
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
    let m1 = states.last().unwrap().0 + 24 + 2 + 3;
    let mut after_m1 = states.last().unwrap().1.clone();
    after_m1.insert(b"m1".to_vec(), b"one".to_vec());
    let mut after_m2 = after_m1.clone();
    after_m2.insert(b"m2".to_vec(), b"two".to_vec());
    states.push((m1, after_m1));
    states.push((m1 + 24 + 2 + 3, after_m2));
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
                // Damage in the last record reads as a torn tail: the state before it.
                Ok(store) => {
                    let got = contents(&store);
                    let end = store.stats().file_bytes;
                    let want = states.iter().find(|(e, _)| *e == end);
                    assert!(
                        want.is_some_and(|(_, m)| *m == got),
                        "flip {mask:#x} at {at}: opened to a state that was never written"
                    );
                    assert!(
                        end < bytes.len() as u64,
                        "flip {mask:#x} at {at} went unnoticed"
                    );
                }
                Err(Error::Corrupt { .. }) | Err(Error::UpgradeRequired { .. }) => {}
                Err(e) => panic!("flip {mask:#x} at {at}: unexpected error {e}"),
            }
        }
    }
}

#[test]
fn reader_follows_a_log_deleted_and_created_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    fast(&path).put(b"old", b"1").unwrap();
    let r = reader(&path);
    assert_eq!(r.get(b"old").unwrap().as_deref(), Some(&b"1"[..]));
    std::fs::remove_file(&path).unwrap();
    fast(&path).put(b"new", b"2").unwrap();
    assert_eq!(r.get(b"new").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(r.get(b"old").unwrap(), None);
}
