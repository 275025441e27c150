//! The golden files under `fixtures/log`, written once per format version and read forever.

use super::*;

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
/// `cargo test -p cacher-store log::tests::fixtures::generate_fixtures -- --ignored`
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_fixtures() {
    let out = fixture_dir();
    std::fs::create_dir_all(&out).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.log");
    let store = LogStore::open(&path).unwrap();
    write_v1_contents(&store);
    drop(store);
    let v1 = with_generation_1(&path);
    std::fs::write(out.join("v1.log"), &v1).unwrap();

    // The value of the second record ("doomed") with one bit flipped: damage in the middle.
    let second = FILE_HEADER_LEN as usize + 24 + b"alpha".len() + b"one".len();
    let mut middle = v1.clone();
    middle[second + 24 + b"doomed".len() + 3] ^= 0x08;
    std::fs::write(out.join("v1-corrupt-middle.log"), &middle).unwrap();

    let mut magic = v1.clone();
    magic[0] = b'X';
    std::fs::write(out.join("v1-bad-magic.log"), &magic).unwrap();

    let future = with_version(&v1, 2);
    std::fs::write(out.join("v1-future-version.log"), &future).unwrap();

    // A put of "late" cut short 5 bytes before its end, as a crash mid-append leaves it.
    let data = data_crc(b"late", b"never acknowledged");
    let mut torn = v1.clone();
    torn.extend_from_slice(&RecordHeader::encode_v1(Kind::Put, 4, 18, &data));
    torn.extend_from_slice(b"latenever acknowl");
    std::fs::write(out.join("v1-torn-tail.log"), &torn).unwrap();
}

/// `store`, opened from the fixture copy at `path` (`bytes` before the open), holds what
/// `v1.log` holds at generation 1, and the open changed no byte of the file.
fn assert_holds_the_v1_contents_unchanged(store: LogStore, path: &Path, bytes: &[u8]) {
    assert_eq!(contents(&store), v1_contents());
    assert_eq!(store.get(b"doomed").unwrap(), None);
    assert_eq!(store.stats().generation, 1);
    drop(store);
    assert_eq!(
        std::fs::read(path).unwrap(),
        bytes,
        "opening changed nothing"
    );
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
            torn_tail: None,
            damaged_tail: None,
            removed_temps: vec![],
            checkpoint: None,
        }
    );
    assert_holds_the_v1_contents_unchanged(store, &path, &bytes);
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

/// `v1-future-version.log` says version 2 under a checksum computed for version 1. Version 2
/// was a future version when it was written (the open said "upgrade required"); it is this
/// build's own version now, so the header is read and its checksum fails.
#[test]
fn fixture_v1_future_version_now_fails_its_header_checksum() {
    let (_dir, path) = fixture_copy("v1-future-version.log");
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("file header checksum"), "{reason}");
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
    assert_eq!(tail.reason, TornReason::RunsPastEnd);
    assert_eq!(
        tail.reason.to_string(),
        "record runs past the end of the file"
    );
    assert_eq!(contents(&store), v1_contents());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), v1_len);
}

/// Writes the recovery variants of `v1.log` (added with issue 9), derived from the committed
/// `v1.log` so that file is never rewritten:
/// `cargo test -p cacher-store log::tests::fixtures::generate_recovery_fixtures -- --ignored`
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_recovery_fixtures() {
    let v1 = std::fs::read(fixture_dir().join("v1.log")).unwrap();
    // A synced overwrite of "alpha" whose value then had one bit flipped on disk.
    let mut data = crc32fast::Hasher::new();
    data.update(b"alpha");
    data.update(b"acknowledged overwrite");
    let mut damaged = v1.clone();
    damaged.extend_from_slice(&RecordHeader::encode_v1(Kind::Put, 5, 22, &data));
    damaged.extend_from_slice(b"alphaacknowledged overwrite");
    let last = damaged.len() - 3;
    damaged[last] ^= 0x02;
    std::fs::write(fixture_dir().join("v1-damaged-last-record.log"), &damaged).unwrap();
    // What a power cut can leave: the file grew, its data never reached the disk.
    let mut zeros = v1;
    zeros.extend_from_slice(&[0; 4096]);
    std::fs::write(fixture_dir().join("v1-zero-filled-tail.log"), &zeros).unwrap();
}

#[test]
fn fixture_v1_damaged_last_record_is_moved_aside_and_never_reverts() {
    let fixture = fixture_dir().join("v1-damaged-last-record.log");
    let v1_len = std::fs::metadata(fixture_dir().join("v1.log"))
        .unwrap()
        .len();
    let bytes = std::fs::read(&fixture).unwrap();
    // A reader (straight on the fixture: it changes nothing) reads the key as corrupt.
    let r = reader(&fixture);
    assert!(r.get(b"alpha").unwrap_err().is_corrupt());
    assert_eq!(std::fs::read(&fixture).unwrap(), bytes);
    drop(r);
    let (_dir, path) = fixture_copy("v1-damaged-last-record.log");
    let store = LogStore::open(&path).unwrap();
    let tail = store
        .open_report()
        .damaged_tail
        .clone()
        .expect("damage reported");
    assert_eq!(tail.offset, v1_len);
    assert_eq!(tail.reason, Damage::RecordChecksum);
    assert_eq!(tail.key.as_deref(), Some(&b"alpha"[..]));
    assert!(tail.tombstoned);
    let moved = std::fs::read(tail.moved_to.unwrap()).unwrap();
    assert_eq!(moved, &bytes[v1_len as usize..]);
    // Neither the damaged value nor the older "uno" comes back.
    assert_eq!(store.get(b"alpha").unwrap(), None);
    let mut want = v1_contents();
    want.remove(&b"alpha"[..]);
    assert_eq!(contents(&store), want);
}

#[test]
fn fixture_v1_zero_filled_tail_is_torn_and_cut() {
    let (_dir, path) = fixture_copy("v1-zero-filled-tail.log");
    let store = LogStore::open(&path).unwrap();
    let torn = store.open_report().torn_tail.clone().expect("torn tail");
    assert_eq!((torn.len, torn.reason), (4096, TornReason::ZeroFilled));
    assert_eq!(store.open_report().damaged_tail, None);
    assert_eq!(contents(&store), v1_contents());
}

/// The log at `path` with generation 1 in its file header: a fixed generation keeps a
/// fixture byte-for-byte reproducible.
fn with_generation_1(path: &Path) -> Vec<u8> {
    let mut log = std::fs::read(path).unwrap();
    log[..FILE_HEADER_LEN as usize].copy_from_slice(&FileHeader { generation: 1 }.encode());
    log
}

/// `log` with `version` in its file header's version field (as a newer build would write).
fn with_version(log: &[u8], version: u32) -> Vec<u8> {
    let mut log = log.to_vec();
    log[8..12].copy_from_slice(&version.to_le_bytes());
    log
}

/// A record's data checksum over `key` then `value`, as an append computes it.
fn data_crc(key: &[u8], value: &[u8]) -> crc32fast::Hasher {
    let mut data = crc32fast::Hasher::new();
    data.update(key);
    data.update(value);
    data
}

/// The writes `v1.log` holds, and `v2.log` too: the same contents in the v2 layout.
fn write_v1_contents(store: &LogStore) {
    store.put(b"alpha", b"one").unwrap();
    store.put(b"doomed", b"to be deleted").unwrap();
    for (k, v) in v1_contents() {
        store.put(&k, &v).unwrap();
    }
    assert!(store.delete(b"doomed").unwrap());
}

/// What `v2-mixed.log` holds: `v1.log`, then this build's writes appended in the v2 layout.
fn mixed_contents() -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut want = v1_contents();
    want.insert(b"alpha".to_vec(), b"dos".to_vec());
    want.insert(b"beta".to_vec(), b"new in v2".to_vec());
    want.remove(&b"all-bytes"[..]);
    want
}

/// The offset where `v2.log`'s records end: the damaged variant appends one after it.
fn v2_len() -> u64 {
    std::fs::metadata(fixture_dir().join("v2.log"))
        .unwrap()
        .len()
}

/// Writes the version 2 fixtures (added with the v2 record layout, issue 9), beside the v1
/// ones, never over them:
/// `cargo test -p cacher-store log::tests::fixtures::generate_v2_fixtures -- --ignored`
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_v2_fixtures() {
    let out = fixture_dir();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v2.log");
    let store = LogStore::open(&path).unwrap();
    write_v1_contents(&store);
    drop(store);
    let v2 = with_generation_1(&path);
    std::fs::write(out.join("v2.log"), &v2).unwrap();

    let future = with_version(&v2, 3);
    std::fs::write(out.join("v2-future-version.log"), &future).unwrap();

    // The hole v2 closes: an overwrite of "alpha" whose record checksum field and key bytes
    // were both damaged on disk, so nothing in a v1 record would name its key.
    let data = data_crc(b"alpha", b"acknowledged overwrite");
    let mut damaged = v2.clone();
    let at = damaged.len();
    damaged.extend_from_slice(&RecordHeader::encode(Kind::Put, b"alpha", 22, &data));
    damaged.extend_from_slice(b"alphaacknowledged overwrite");
    damaged.extend_from_slice(&KeyBlock::encode(b"alpha"));
    damaged[at + 20..at + 24].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    damaged[at + 36 + 1] ^= 0x20;
    std::fs::write(out.join("v2-damaged-key-and-crc.log"), &damaged).unwrap();

    let mixed = dir.path().join("v2-mixed.log");
    std::fs::copy(out.join("v1.log"), &mixed).unwrap();
    let store = LogStore::open(&mixed).unwrap();
    store.put(b"alpha", b"dos").unwrap();
    store.put(b"beta", b"new in v2").unwrap();
    assert!(store.delete(b"all-bytes").unwrap());
    drop(store);
    std::fs::copy(&mixed, out.join("v2-mixed.log")).unwrap();
}

#[test]
fn fixture_v2_opens_with_exact_contents() {
    let (_dir, path) = fixture_copy("v2.log");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(read_header(&bytes).1, FORMAT_VERSION);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().records, 9);
    assert!(!store.open_report().recovered());
    assert_holds_the_v1_contents_unchanged(store, &path, &bytes);
    assert_eq!(
        contents(&reader(&fixture_dir().join("v2.log"))),
        v1_contents()
    );
}

/// The file header of `bytes`: generation and version.
fn read_header(bytes: &[u8]) -> (u64, u32) {
    let h = FileHeader::decode(bytes).unwrap();
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap());
    (h.generation, version)
}

#[test]
fn fixture_v2_mixed_reads_v1_records_then_v2_records() {
    let (_dir, path) = fixture_copy("v2-mixed.log");
    let bytes = std::fs::read(&path).unwrap();
    // A log is only appended to: the v1 file header stays, over records of both layouts.
    assert_eq!(read_header(&bytes), (1, FORMAT_VERSION_1));
    let v1_len = std::fs::metadata(fixture_dir().join("v1.log"))
        .unwrap()
        .len() as usize;
    assert_eq!(
        &bytes[..v1_len],
        &std::fs::read(fixture_dir().join("v1.log")).unwrap()[..]
    );
    assert_eq!(bytes[v1_len + 1], 2, "the first appended record is v2");
    let r = reader(&fixture_dir().join("v2-mixed.log"));
    assert_eq!(contents(&r), mixed_contents());
    assert!(!r.open_report().recovered());
    drop(r);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().records, 12);
    assert_eq!(contents(&store), mixed_contents());
    // Appending more, then compacting (which copies the v1 records as they are, under a v2
    // file header), keeps every value.
    store.put(b"gamma", b"three").unwrap();
    let mut want = mixed_contents();
    want.insert(b"gamma".to_vec(), b"three".to_vec());
    assert_eq!(contents(&store), want);
    store.compact().unwrap();
    assert_eq!(contents(&store), want);
    drop(store);
    assert_eq!(
        read_header(&std::fs::read(&path).unwrap()).1,
        FORMAT_VERSION
    );
    let store = LogStore::open(&path).unwrap();
    assert!(!store.open_report().recovered());
    assert_eq!(contents(&store), want);
    assert!(store.verify().unwrap().damaged.is_empty());
}

#[test]
fn fixture_v2_future_version_requires_upgrade() {
    let (_dir, path) = fixture_copy("v2-future-version.log");
    match LogStore::open(&path) {
        Err(Error::UpgradeRequired {
            path: p,
            found,
            supported,
        }) => assert_eq!((p, found, supported), (path, 3, 2)),
        other => panic!("expected Error::UpgradeRequired, got {other:?}"),
    }
}

/// The case a v1 record could not tell (issue 9): its record checksum field and its key
/// bytes are both damaged. The key block names the key: a reader reads it as corrupt, the
/// writer moves the record aside and tombstones the key, so neither the damaged value nor the
/// older "uno" comes back.
#[test]
fn fixture_v2_damaged_key_and_record_crc_names_the_key() {
    let fixture = fixture_dir().join("v2-damaged-key-and-crc.log");
    let bytes = std::fs::read(&fixture).unwrap();
    let r = reader(&fixture);
    let tail = r
        .open_report()
        .damaged_tail
        .clone()
        .expect("damage reported");
    assert_eq!(
        (tail.offset, tail.key.as_deref()),
        (v2_len(), Some(&b"alpha"[..]))
    );
    assert!(r.get(b"alpha").unwrap_err().is_corrupt());
    assert_eq!(
        r.get(b"nul\0inside").unwrap().as_deref(),
        Some(&[0, 1, 2, 255][..])
    );
    drop(r);
    assert_eq!(
        std::fs::read(&fixture).unwrap(),
        bytes,
        "a reader changes nothing"
    );
    let (_dir, path) = fixture_copy("v2-damaged-key-and-crc.log");
    let store = LogStore::open(&path).unwrap();
    let tail = store
        .open_report()
        .damaged_tail
        .clone()
        .expect("damage reported");
    assert_eq!(tail.key.as_deref(), Some(&b"alpha"[..]));
    assert!(tail.tombstoned);
    assert_eq!(store.get(b"alpha").unwrap(), None);
    let mut want = v1_contents();
    want.remove(&b"alpha"[..]);
    assert_eq!(contents(&store), want);
}

/// Writes this build's index checkpoint of `v2-mixed.log` as
/// `v2-mixed.log.checkpoint-v<checkpoint version>` (added with each checkpoint layout, issue
/// 15; the older ones stay):
/// `cargo test -p cacher-store log::tests::fixtures::generate_checkpoint_fixture -- --ignored`
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_checkpoint_fixture() {
    let (_dir, path) = fixture_copy("v2-mixed.log");
    let store = LogStore::open(&path).unwrap();
    store.write_checkpoint().unwrap();
    drop(store);
    let version = super::super::checkpoint::VERSION;
    std::fs::copy(
        sibling(&path, super::super::checkpoint::SUFFIX).unwrap(),
        fixture_dir().join(format!("v2-mixed.log.checkpoint-v{version}")),
    )
    .unwrap();
}

/// Opens `v2-mixed.log` beside the golden checkpoint of `version`, as a writer and read-only.
fn open_with_checkpoint(version: u32) -> (tempfile::TempDir, PathBuf) {
    let (dir, path) = fixture_copy("v2-mixed.log");
    std::fs::copy(
        fixture_dir().join(format!("v2-mixed.log.checkpoint-v{version}")),
        sibling(&path, super::super::checkpoint::SUFFIX).unwrap(),
    )
    .unwrap();
    (dir, path)
}

/// Opens `v2-mixed.log` from the golden checkpoint of `version`: it is used, gives what a scan
/// gives, and the writer goes on from it; returns the log and what it then holds.
fn opens_from_checkpoint(version: u32) -> (tempfile::TempDir, PathBuf, BTreeMap<Vec<u8>, Vec<u8>>) {
    let (dir, path) = open_with_checkpoint(version);
    let len = std::fs::metadata(&path).unwrap().len();
    let r = reader(&path);
    assert_eq!(
        r.open_report().checkpoint,
        Some(len),
        "the checkpoint was used"
    );
    assert_eq!(r.open_report().records, 12);
    assert_eq!(contents(&r), mixed_contents());
    drop(r);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(store.open_report().checkpoint, Some(len));
    assert_eq!(contents(&store), mixed_contents());
    assert_eq!(store.get(b"all-bytes").unwrap(), None);
    store.put(b"gamma", b"three").unwrap();
    assert!(store.delete(b"alpha").unwrap());
    let mut want = mixed_contents();
    want.insert(b"gamma".to_vec(), b"three".to_vec());
    want.remove(&b"alpha"[..]);
    assert_eq!(contents(&store), want);
    drop(store);
    (dir, path, want)
}

fn checkpoint_version(log: &Path) -> u32 {
    let cp = std::fs::read(sibling(log, super::super::checkpoint::SUFFIX).unwrap()).unwrap();
    u32::from_le_bytes(cp[8..12].try_into().unwrap())
}

#[test]
fn fixture_checkpoint_v1_is_read_and_replaced_by_the_writers_close() {
    let (_dir, path, want) = opens_from_checkpoint(1);
    // An older layout counts as no checkpoint: the writer's close wrote this build's.
    assert_eq!(checkpoint_version(&path), super::super::checkpoint::VERSION);
    let r = reader(&path);
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(r.open_report().checkpoint, Some(len));
    assert_eq!(contents(&r), want);
}

#[test]
fn fixture_checkpoint_v2_is_read_and_gives_the_scanned_contents() {
    let (_dir, path, want) = opens_from_checkpoint(2);
    assert_eq!(checkpoint_version(&path), 2);
    // Two records past it: below the threshold, so the close left it as it was.
    let r = reader(&path);
    assert_eq!(
        r.open_report().checkpoint,
        Some(
            std::fs::metadata(fixture_dir().join("v2-mixed.log"))
                .unwrap()
                .len()
        )
    );
    assert_eq!(contents(&r), want);
}
