//! `Durability::Periodic` (issue 15 item 7): writes are synced in the background, the synced
//! offset is recorded in `<log>.synced`, and after a power loss the unsynced writes — which
//! may reach the disk in any order — are cut as a torn tail instead of failing the open.

use std::time::{Duration, Instant};

use super::super::periodic::{encode, strict_until, SYNCED};
use super::*;

fn periodic(path: &Path, interval: Duration) -> LogStore {
    LogStore::options()
        .durability(Durability::Periodic)
        .sync_interval(interval)
        .open(path)
        .unwrap()
}

#[test]
fn periodic_writes_are_synced_in_the_background_and_the_offset_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = periodic(&path, Duration::from_millis(5));
    let generation = store.stats().generation;
    assert_eq!(
        strict_until(&path, generation).unwrap(),
        store.stats().file_bytes,
        "a periodic writer records the synced offset at open"
    );
    store.put(b"k", b"v").unwrap();
    let end = store.stats().file_bytes;
    // Waits for the background thread (no timing is asserted: only that it gets there).
    let deadline = Instant::now() + Duration::from_secs(20);
    while strict_until(&path, generation).unwrap() < end {
        assert!(Instant::now() < deadline, "the syncer never recorded {end}");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(store);
    // Dropping the store syncs what is left.
    let store = periodic(&path, Duration::from_secs(3600));
    store.put(b"k2", b"v2").unwrap();
    let end = store.stats().file_bytes;
    drop(store);
    assert_eq!(strict_until(&path, generation).unwrap(), end);
    // A writer that syncs every write removes the marker: the strict rules hold again.
    let store = LogStore::open(&path).unwrap();
    assert!(!sibling(&path, SYNCED).unwrap().exists());
    assert_eq!(store.get(b"k2").unwrap().as_deref(), Some(&b"v2"[..]));
}

/// Writes records `a`, `b`, `c` and a marker saying the log was synced after `a`, then zeros
/// `b` as a power loss may leave it (its blocks never reached the disk, `c`'s did).
fn power_lost_log(dir: &Path) -> (PathBuf, u64) {
    let path = dir.join("store.log");
    let ends = write_records(
        &path,
        &[
            (b"a", Some(b"synced")),
            (b"b", Some(b"never synced")),
            (b"c", Some(b"never synced either")),
        ],
    );
    let generation = read_generation(&path);
    std::fs::write(sibling(&path, SYNCED).unwrap(), encode(ends[1], generation)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[ends[1] as usize..ends[2] as usize].fill(0);
    std::fs::write(&path, &bytes).unwrap();
    (path, ends[1])
}

fn read_generation(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    FileHeader::decode(&bytes[..FILE_HEADER_LEN as usize])
        .unwrap()
        .generation
}

/// Before the marker, this file failed to open (a bad record followed by a valid one is
/// corruption in the middle): a power loss under `Periodic` would have bricked the log.
#[test]
fn unsynced_writes_left_half_on_disk_are_cut_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (path, synced) = power_lost_log(dir.path());
    for read_only in [true, false] {
        let store = LogStore::options()
            .read_only(read_only)
            .durability(Durability::Periodic)
            .open(&path)
            .unwrap();
        let tail = store.open_report().torn_tail.clone().expect("a torn tail");
        assert_eq!(
            (tail.offset, tail.reason, tail.cut),
            (synced, TornReason::Unsynced, !read_only)
        );
        // The writer keeps the cut bytes (they hold `c`, whole) in a side file.
        if let Some(moved) = &tail.moved_to {
            assert!(!read_only);
            assert_eq!(std::fs::metadata(moved).unwrap().len(), tail.len);
        } else {
            assert!(read_only, "the writer moved nothing aside");
        }
        assert_eq!(store.get(b"a").unwrap().as_deref(), Some(&b"synced"[..]));
        assert_eq!(store.get(b"b").unwrap(), None);
        assert_eq!(store.get(b"c").unwrap(), None);
    }
    // Without the marker the same bytes are corruption in the middle, as before.
    let (path, _) = power_lost_log(&dir.path().join("again").tap_mkdir());
    std::fs::remove_file(sibling(&path, SYNCED).unwrap()).unwrap();
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("middle"), "{reason}");
}

#[test]
fn damage_before_the_synced_offset_is_still_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = power_lost_log(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // A byte of `a`'s key, inside the synced part; `c` is whole after it.
    bytes[FILE_HEADER_LEN as usize + RECORD_HEADER_LEN as usize + 2] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let reason = expect_corrupt(LogStore::open(&path));
    assert!(reason.contains("middle"), "{reason}");
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
