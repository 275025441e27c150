//! `Durability::Periodic` (issue 15): a power loss goes back to the last durable point, whose
//! pages later commits never reused; within one boot (a process crash) nothing is rolled back.
//!
//! A power loss is simulated by copying the environment while the store is open (every write
//! since the durable point has reached the file: the worst case for page reuse, since a
//! reused page of the durable point would be overwritten) and giving the copy's record
//! another boot id.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::lmdb::periodic::{read_point, write_point, Point, DURABLE_FILE};
use crate::lmdb::{LmdbOptions, LmdbStore};
use crate::{Durability, Store};

fn periodic(interval: Duration) -> LmdbOptions {
    LmdbOptions::default()
        .with_initial_map_size(4 << 20)
        .with_durability(Durability::Periodic)
        .with_periodic_interval(interval)
}

/// Copies the environment's files (not `lock.mdb`, which a restart resets) to `to`.
fn copy_env(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name != "lock.mdb" {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// Stamps the copy's durable-point record with another boot id: the machine restarted.
fn restart(dir: &Path) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(DURABLE_FILE))
        .unwrap();
    let point = read_point(&file)
        .unwrap()
        .expect("a durable point was recorded");
    write_point(
        &file,
        &Point {
            seq: point.seq + 1,
            boot: *b"00000000-0000-0000-0000-000000000000",
            ..point
        },
    )
    .unwrap();
}

fn contents(store: &LmdbStore) -> BTreeMap<Vec<u8>, Vec<u8>> {
    store.scan().unwrap().map(Result::unwrap).collect()
}

#[test]
fn a_power_loss_goes_back_to_the_last_durable_point_and_a_crash_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No background point during the test: the points are the ones `flush` makes.
    let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_secs(3600))).unwrap();
    let key = |i: u32| format!("key-{i:04}").into_bytes();
    for i in 0..300 {
        store
            .put(&key(i), &vec![1u8; 50 + (i as usize % 7) * 300])
            .unwrap();
    }
    store.flush().unwrap();
    let durable = contents(&store);
    assert_eq!(durable.len(), 300);
    // Many commits after the point: each frees pages that a plain MDB_NOSYNC would reuse.
    for round in 2..12u8 {
        for i in 0..300 {
            if (i + u32::from(round)) % 5 == 0 {
                store.delete(&key(i)).unwrap();
            } else {
                store
                    .put(&key(i), &vec![round; 40 + (i as usize % 5) * 500])
                    .unwrap();
            }
        }
    }
    let latest = contents(&store);
    assert_ne!(latest, durable);

    let lost_power = tempfile::tempdir().unwrap();
    copy_env(dir.path(), lost_power.path());
    restart(lost_power.path());
    let crashed = tempfile::tempdir().unwrap();
    copy_env(dir.path(), crashed.path());
    drop(store);

    let recovered =
        LmdbStore::open_with(lost_power.path(), &periodic(Duration::from_secs(3600))).unwrap();
    assert!(recovered.verify().unwrap().damaged.is_empty());
    assert_eq!(contents(&recovered), durable, "not the last durable point");
    // The recovered store takes writes as any other.
    recovered.put(b"after", b"recovery").unwrap();
    assert_eq!(
        recovered.get(b"after").unwrap().as_deref(),
        Some(&b"recovery"[..])
    );

    let same_boot =
        LmdbStore::open_with(crashed.path(), &periodic(Duration::from_secs(3600))).unwrap();
    assert_eq!(
        contents(&same_boot),
        latest,
        "a crash within one boot lost commits"
    );
}

#[test]
fn closing_makes_a_last_durable_point() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_secs(3600))).unwrap();
        store.put(b"k", b"before close").unwrap();
    }
    let copy = tempfile::tempdir().unwrap();
    copy_env(dir.path(), copy.path());
    restart(copy.path());
    let store = LmdbStore::open_with(copy.path(), &periodic(Duration::from_secs(3600))).unwrap();
    assert_eq!(
        store.get(b"k").unwrap().as_deref(),
        Some(&b"before close"[..])
    );
}

#[test]
fn the_background_thread_makes_durable_points_while_the_process_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_millis(10))).unwrap();
    store.put(b"k", b"v").unwrap();
    let newest = store.env().info().last_txn_id as u64;
    let record = std::fs::File::open(dir.path().join(DURABLE_FILE)).unwrap();
    // Waits for the point (bounded: a failure, not a hang, if the thread never makes it).
    for _ in 0..1000 {
        if read_point(&record)
            .unwrap()
            .is_some_and(|p| p.txn >= newest)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no durable point of commit {newest} after 10 s");
}

#[test]
fn durable_point_records_of_version_1_are_read() {
    let raw = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/lmdb/durable-point-v1"),
    )
    .unwrap();
    let file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &file, &raw).unwrap();
    let point = read_point(&file)
        .unwrap()
        .expect("the fixture's newer slot");
    assert_eq!((point.seq, point.txn), (8, 1234));
    assert_eq!(&point.boot, b"0f0e0d0c-0b0a-0908-0706-050403020100");
    assert_eq!(point.meta[0], 0, "slot 1234 % 2 = meta page 0");
    assert_eq!(point.meta[151], 0xAB);
    // Damage the newer slot: the older one is read.
    let mut damaged = raw.clone();
    damaged[100] ^= 1;
    let file = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut &file, &damaged).unwrap();
    let point = read_point(&file).unwrap().expect("the older slot");
    assert_eq!((point.seq, point.txn), (7, 1200));
}

#[test]
fn a_flush_writer_after_a_periodic_session_removes_the_point_it_does_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_secs(3600))).unwrap();
        store.put(b"k", b"periodic").unwrap();
    }
    assert!(dir.path().join(DURABLE_FILE).exists());
    {
        let store = LmdbStore::open_with(dir.path(), &LmdbOptions::default()).unwrap();
        // Reading keeps the record (and takes no lock); the first write removes it.
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"periodic"[..]));
        assert!(dir.path().join(DURABLE_FILE).exists());
        store.put(b"k", b"flushed").unwrap();
        assert!(!dir.path().join(DURABLE_FILE).exists());
    }
    // A restart now keeps the Flush commit (no point to go back to).
    let store = LmdbStore::open_with(dir.path(), &LmdbOptions::default()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"flushed"[..]));
}

/// The conformance kit on a `Periodic` store (background points every 10 ms, so they run
/// during the kit's operations).
mod conformance {
    crate::conformance_tests!(
        |dir: &std::path::Path| crate::lmdb::LmdbStore::open_with(
            dir,
            &super::periodic(std::time::Duration::from_millis(10))
        )
        .unwrap(),
        persistent = true
    );
}

/// An idle writer's pin must move on when others write, or no page freed after it could ever
/// be reused and the file would grow for ever. Another process's commit is played by a commit
/// through the raw heed handle, which (like one made by another process) does not mark this
/// process as having written.
#[test]
fn an_idle_writers_pin_follows_commits_it_did_not_make() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_millis(10))).unwrap();
    store.put(b"k", b"v").unwrap();
    store.flush().unwrap();
    let db = store.raw_database();
    let heed_env = store.env().heed().clone();
    // A commit that, like another process's, does not mark this process dirty.
    let mut wtxn = heed_env.write_txn().unwrap();
    db.put(&mut wtxn, b"\x00other", b"x").unwrap();
    wtxn.commit().unwrap();
    drop(heed_env);
    let newest = store.env().info().last_txn_id as u64;
    let record = std::fs::File::open(dir.path().join(DURABLE_FILE)).unwrap();
    for _ in 0..1000 {
        if read_point(&record)
            .unwrap()
            .is_some_and(|p| p.txn >= newest)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the pin never moved to commit {newest}");
}

/// The background thread asks whether a durable point is due while other threads write. Its
/// question read LMDB's meta pages through the map without the resize gate, so a resize in
/// another thread (which unmaps and maps the file again) could pull the pages from under it:
/// CI's run died with SIGSEGV in `conformance_round_trips_a_64_mib_value` of this module. Here
/// one thread asks as fast as it can while another makes the map resize hundreds of times (a
/// put past the cap puts the map back as it was: two remaps per refused put).
#[test]
fn asking_for_a_durable_point_while_another_thread_resizes_the_map_is_safe() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let options = periodic(Duration::from_secs(3600))
        .with_initial_map_size(1 << 20)
        .with_max_map_size(Some(1 << 20));
    let store = LmdbStore::open_with(dir.path(), &options).unwrap();
    store.put(b"k", b"v").unwrap();
    store.flush().unwrap();
    let done = AtomicBool::new(false);
    let shared = store.env().shared();
    std::thread::scope(|s| {
        s.spawn(|| {
            let big = vec![7u8; 2 << 20];
            for _ in 0..300 {
                assert!(matches!(
                    store.put(b"big", &big),
                    Err(crate::Error::Full { .. })
                ));
            }
            done.store(true, Ordering::Release);
        });
        s.spawn(|| {
            let periodic = shared.periodic.as_ref().unwrap();
            while !done.load(Ordering::Acquire) {
                // Not dirty, so the question goes on to read the newest commit.
                periodic.dirty.store(false, Ordering::Release);
                std::hint::black_box(shared.wants_durable_point());
            }
        });
    });
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

/// A durable point used to spawn a thread to hold its pin (one spawn per interval while a
/// process writes); two holder threads now take turns for the life of the environment.
#[test]
fn durable_points_are_pinned_by_two_threads_for_the_life_of_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_secs(3600))).unwrap();
    let mut points = Vec::new();
    for i in 0..20u8 {
        store.put(b"k", &[i]).unwrap();
        store.flush().unwrap();
        let record = std::fs::File::open(dir.path().join(DURABLE_FILE)).unwrap();
        points.push(read_point(&record).unwrap().expect("a point").txn);
    }
    // Every flush made a new point...
    assert!(points.windows(2).all(|w| w[0] < w[1]), "{points:?}");
    // ...and the pins were held by the same two threads throughout.
    let periodic = store.env().shared().periodic.as_ref().unwrap();
    assert_eq!(periodic.pin_threads_started(), 2);
    // Each holder keeps one reader slot: a point never takes a third.
    assert!(store.env().info().number_of_readers <= 3);
}

/// The holder threads keep clones of the environment: they must have ended when the last
/// handle drops, or opening the directory again in this process would find it still open.
#[test]
fn a_periodic_environment_opens_again_at_once_after_it_closes() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..5u8 {
        let store = LmdbStore::open_with(dir.path(), &periodic(Duration::from_millis(1))).unwrap();
        if round > 0 {
            assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&[round - 1][..]));
        }
        for i in 0..20u8 {
            store.put(&[i], &[round]).unwrap();
        }
        store.put(b"k", &[round]).unwrap();
        store.flush().unwrap();
    }
}
