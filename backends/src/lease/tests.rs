use super::*;

thread_local! {
    /// How many times [`Leases::open`] ran on this thread: a store handle that opens its
    /// leases per claim pays a `mkdir` and a `stat` of the directory each time.
    pub(super) static OPENS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[test]
fn a_held_lease_is_not_given_twice_and_its_file_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::by_key_files(dir.path().join("leases")).unwrap();
    let lease = leases.try_acquire(b"k").unwrap().expect("free");
    assert!(
        leases.try_acquire(b"k").unwrap().is_none(),
        "held by another handle"
    );
    assert!(leases.try_acquire(b"other").unwrap().is_some());
    assert!(matches!(
        leases.acquire(b"k", Duration::from_millis(5)).unwrap(),
        Acquired::TimedOut
    ));
    let path = leases.file_of(b"k");
    assert!(path.exists());
    drop(lease);
    assert!(!path.exists(), "released leases leave no file");
    match leases.acquire(b"k", Duration::from_secs(1)).unwrap() {
        Acquired::Won { waited, .. } => assert!(!waited),
        Acquired::TimedOut => panic!("released"),
    }
}

#[test]
fn a_lock_file_left_unlocked_is_taken_over_and_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::by_key_files(dir.path().join("leases")).unwrap();
    // What a holder killed before it could remove its file leaves behind.
    std::fs::write(leases.file_of(b"dead"), b"").unwrap();
    std::fs::write(leases.file_of(b"dead2"), b"").unwrap();
    std::fs::write(leases.path().join("user-notes.txt"), b"mine").unwrap();
    let held = leases.try_acquire(b"live").unwrap().unwrap();
    assert!(leases.try_acquire(b"dead").unwrap().is_some());
    assert_eq!(leases.clean_stale().unwrap(), 1, "only dead2");
    assert!(leases.file_of(b"live").exists(), "a held lease is kept");
    assert!(leases.path().join("user-notes.txt").exists(), "not ours");
    drop(held);
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::by_key_files(dir.path().join("leases")).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"user data").unwrap();
    std::os::unix::fs::symlink(&target, leases.file_of(b"k")).unwrap();
    let err = leases.try_acquire(b"k").unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
    assert_eq!(leases.clean_stale().unwrap(), 0);
    assert_eq!(std::fs::read(&target).unwrap(), b"user data");

    let link = dir.path().join("linked");
    std::os::unix::fs::symlink(dir.path(), &link).unwrap();
    assert!(matches!(
        Leases::open(&link).unwrap_err(),
        Error::NotOwned { .. }
    ));
}

#[test]
fn a_single_file_store_keeps_its_leases_beside_it() {
    assert_eq!(
        beside(Path::new("/a/b/cache.log")),
        PathBuf::from("/a/b/cache.log.leases")
    );
}

#[test]
fn a_bounded_cleaning_looks_at_no_more_entries_than_asked() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::open(dir.path().join("leases")).unwrap();
    for i in 0..5u8 {
        std::fs::write(leases.file_of(&[i]), b"").unwrap();
    }
    assert_eq!(leases.clean_stale_at_most(2).unwrap(), 2);
    assert_eq!(
        leases.clean_stale_at_most(2).unwrap(),
        2,
        "goes on past the removed"
    );
    assert_eq!(leases.clean_stale_at_most(2).unwrap(), 1);
    assert_eq!(std::fs::read_dir(leases.path()).unwrap().count(), 0);
}

#[test]
fn a_claim_through_the_store_hook_is_one_holder_at_a_time() {
    use crate::Store;
    let dir = tempfile::tempdir().unwrap();
    let store = crate::DirStore::open(dir.path()).unwrap();
    let terms = Terms::new(Duration::from_secs(1), Duration::from_millis(5));
    let Some(Claim::Won { lease, waited }) = store.lease(b"k", &terms).unwrap() else {
        panic!("free");
    };
    assert!(!waited && !lease.is_lost());
    assert!(matches!(
        store.lease(b"k", &terms).unwrap(),
        Some(Claim::TimedOut)
    ));
    drop(lease);
    assert!(matches!(
        store.lease(b"k", &terms).unwrap(),
        Some(Claim::Won { .. })
    ));
    assert!(crate::MemoryStore::new()
        .lease(b"k", &terms)
        .unwrap()
        .is_none());
}

/// Range locks (Linux): the same exclusion as key files, two handles of one process
/// included, with no file per key.
#[cfg(target_os = "linux")]
#[test]
fn a_range_lease_is_not_given_twice_and_leaves_no_file_per_key() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::open(dir.path().join("leases")).unwrap();
    let other_handle = Leases::open(dir.path().join("leases")).unwrap();
    let lease = leases.try_acquire(b"k").unwrap().expect("free");
    assert!(leases.try_acquire(b"k").unwrap().is_none(), "same handle");
    assert!(
        other_handle.try_acquire(b"k").unwrap().is_none(),
        "other handle"
    );
    let other = other_handle
        .try_acquire(b"other")
        .unwrap()
        .expect("another key");
    assert!(matches!(
        other_handle
            .acquire(b"k", Duration::from_millis(5))
            .unwrap(),
        Acquired::TimedOut
    ));
    let names = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(leases.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let shard = |key: &[u8]| ranges::file_name(ranges::place_of(key).0);
    let mut expected = vec![shard(b"k"), shard(b"other")];
    expected.sort();
    expected.dedup();
    assert_eq!(names(), expected);
    assert!(!leases.file_of(b"k").exists());
    drop(lease);
    match other_handle.acquire(b"k", Duration::from_secs(1)).unwrap() {
        Acquired::Won { waited, .. } => assert!(!waited),
        Acquired::TimedOut => panic!("released"),
    }
    drop(other);
    assert_eq!(names(), expected);
    for name in &expected {
        assert!(ranges::is_range_file(name), "{name}");
        assert_eq!(
            std::fs::metadata(leases.path().join(name)).unwrap().len(),
            0
        );
    }
}

/// A thousand keys leased at once take a thousand bytes of at most 64 files, not a thousand
/// files.
#[cfg(target_os = "linux")]
#[test]
fn many_keys_held_at_once_are_each_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::open(dir.path().join("leases")).unwrap();
    let other = Leases::open(dir.path().join("leases")).unwrap();
    let held: Vec<Lease> = (0..1000u32)
        .map(|i| leases.try_acquire(&i.to_le_bytes()).unwrap().expect("free"))
        .collect();
    for i in (0..1000u32).step_by(97) {
        assert!(
            other.try_acquire(&i.to_le_bytes()).unwrap().is_none(),
            "{i}"
        );
    }
    assert!(other.try_acquire(b"not held").unwrap().is_some());
    drop(held);
    for i in (0..1000u32).step_by(97) {
        assert!(
            other.try_acquire(&i.to_le_bytes()).unwrap().is_some(),
            "{i}"
        );
    }
    let files = std::fs::read_dir(leases.path()).unwrap().count();
    assert!(files <= usize::from(ranges::SHARDS), "{files}");
}

/// A symlink planted at a range lock file is refused, not followed.
#[cfg(target_os = "linux")]
#[test]
fn a_symlink_at_the_range_file_is_refused_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let leases = Leases::open(dir.path().join("leases")).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, b"user data").unwrap();
    let name = ranges::file_name(ranges::place_of(b"k").0);
    std::os::unix::fs::symlink(&target, leases.path().join(name)).unwrap();
    let err = leases.try_acquire(b"k").unwrap_err();
    assert!(matches!(err, Error::NotOwned { .. }), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"user data");
}

/// A store handle opens its lease directory once (one `mkdir` + `stat`), not once per claim,
/// and its claims still exclude each other; a directory removed meanwhile is made again.
#[test]
fn a_store_handle_opens_its_leases_once_for_all_its_claims() {
    use crate::Store;
    let dir = tempfile::tempdir().unwrap();
    let terms = Terms::new(Duration::from_secs(1), Duration::ZERO);
    let log_dir = tempfile::tempdir().unwrap();
    let stores: Vec<(&str, Box<dyn Store>)> = vec![
        (
            "dir",
            Box::new(crate::DirStore::open(dir.path().join("dir")).unwrap()),
        ),
        (
            "log",
            Box::new(crate::LogStore::open(log_dir.path().join("log")).unwrap()),
        ),
        #[cfg(feature = "lmdb")]
        (
            "lmdb",
            Box::new(crate::LmdbStore::open(dir.path().join("lmdb")).unwrap()),
        ),
        #[cfg(feature = "lmdb")]
        (
            "hybrid",
            Box::new(crate::HybridStore::open(dir.path().join("hybrid")).unwrap()),
        ),
    ];
    for (store_name, store) in &stores {
        let before = OPENS.with(|n| n.get());
        for round in 0..10u8 {
            let key = [round];
            let Some(Claim::Won { lease, .. }) = store.lease(&key, &terms).unwrap() else {
                panic!("{store_name}: key {round} is free");
            };
            assert!(
                matches!(store.lease(&key, &terms).unwrap(), Some(Claim::TimedOut)),
                "{store_name}: held"
            );
            drop(lease);
        }
        assert_eq!(OPENS.with(|n| n.get()) - before, 1, "{store_name}");
        let leases_dir = store.lease_dir().unwrap();
        std::fs::remove_dir_all(&leases_dir).unwrap();
        assert!(matches!(
            store.lease(b"again", &terms).unwrap(),
            Some(Claim::Won { .. })
        ));
        assert!(leases_dir.is_dir(), "{store_name}");
    }
}
