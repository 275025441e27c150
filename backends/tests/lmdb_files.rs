//! What an LMDB environment directory may hold before heed opens it (issue 9): planted
//! symlinks and FIFOs at `data.mdb`/`lock.mdb` are refused without being followed or blocking,
//! a `data.mdb` cut short or with a damaged meta-page transaction id is refused as corrupt
//! (not a SIGBUS, not a silent rollback), new files follow one mode policy, and a directory of
//! another store kind is refused.

#![cfg(all(feature = "lmdb", target_os = "linux"))]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use cacher_store::lmdb::{LmdbEnv, LmdbOptions, LmdbStore};
use cacher_store::{DirStore, Durability, Error, FileMode, Store};

fn options() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(1 << 20)
}

/// Runs `f` on another thread and fails the test if it does not finish in 10 s (a FIFO open
/// that blocks would otherwise hang the suite).
fn within_timeout<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("blocked: the open did not return within 10 s")
}

fn assert_not_owned(err: &Error, found: &str) {
    match err {
        Error::NotOwned { found: f, .. } => assert_eq!(*f, found, "{err}"),
        other => panic!("expected NotOwned ({found}), got {other:?}"),
    }
}

#[test]
fn planted_symlinks_at_lmdb_files_are_refused_and_their_targets_untouched() {
    for name in ["data.mdb", "lock.mdb"] {
        for opener in ["env", "store"] {
            let dir = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            let target = outside.path().join("user-file");
            std::fs::write(&target, b"user data").unwrap();
            symlink(&target, dir.path().join(name)).unwrap();
            let err = match opener {
                "env" => LmdbEnv::open(dir.path(), &options()).unwrap_err(),
                _ => LmdbStore::open_with(dir.path(), &options()).unwrap_err(),
            };
            assert_not_owned(&err, "a symbolic link");
            assert_eq!(std::fs::read(&target).unwrap(), b"user data", "{name}");

            // A dangling one: LMDB's O_CREAT would have made its target.
            let dir = tempfile::tempdir().unwrap();
            let missing = outside.path().join("created-through-a-link");
            symlink(&missing, dir.path().join(name)).unwrap();
            let err = LmdbStore::open_with(dir.path(), &options()).unwrap_err();
            assert_not_owned(&err, "a symbolic link");
            assert!(
                !missing.exists(),
                "{name}: a file was created outside the store"
            );
        }
    }
}

#[test]
fn fifos_at_lmdb_files_are_refused_without_blocking() {
    for name in ["data.mdb", "lock.mdb", "cacher-resize.lock"] {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            dir.path().join(name),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
        let path = dir.path().to_path_buf();
        let err = within_timeout(move || LmdbStore::open_with(&path, &options()).unwrap_err());
        assert_not_owned(&err, "a FIFO");
    }
}

/// A store with two commits of `k` (so the meta pages hold two different trees), closed.
fn store_with_history() -> tempfile::TempDir {
    store_with_history_under(&options())
}

fn store_with_history_under(options: &LmdbOptions) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = LmdbStore::open_with(dir.path(), options).unwrap();
    store.put(b"k", b"old value").unwrap();
    store.put(b"k", b"new value").unwrap();
    store.put(b"other", &vec![7u8; 20_000]).unwrap();
    dir
}

fn reopen(dir: &Path) -> Result<LmdbStore, Error> {
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
    LmdbStore::open_with(dir, &options())
}

#[test]
fn a_truncated_data_file_is_refused_as_corrupt_not_sigbus() {
    let dir = store_with_history();
    let original = std::fs::read(dir.path().join("data.mdb")).unwrap();
    assert!(original.len() >= 4 * 4096, "{}", original.len());
    let mut lengths: Vec<usize> = vec![1, 100, 151, 152, 4095, 4096, 4097, 8191, 8192];
    lengths.extend((3..original.len() / 4096).map(|p| p * 4096));
    lengths.extend([original.len() - 4096, original.len() - 1]);
    for len in lengths {
        std::fs::write(dir.path().join("data.mdb"), &original[..len]).unwrap();
        match reopen(dir.path()) {
            Err(e) if e.is_corrupt() => {}
            // A length the checks pass must read every key back (or the file is not cut where
            // a page is in use).
            other => panic!("truncated to {len} bytes: {other:?}"),
        }
    }
    std::fs::write(dir.path().join("data.mdb"), &original).unwrap();
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"new value"[..]));
}

#[test]
fn an_emptied_data_file_under_the_store_marker_is_corrupt_not_a_new_store() {
    let dir = store_with_history();
    std::fs::write(dir.path().join("data.mdb"), b"").unwrap();
    let err = reopen(dir.path()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
}

fn txn_of(data: &[u8], meta: usize) -> u64 {
    u64::from_le_bytes(data[meta * 4096 + 144..][..8].try_into().unwrap())
}

/// Every flip of one bit in either meta page's transaction id is refused, except the one the
/// checks cannot tell from a real commit: the older page's id raised by exactly two, to the
/// newest id plus one (documented in `lmdb/meta_pages.rs`); that one must at least open at
/// the older commit, never at a mix.
#[test]
fn bit_flips_in_meta_page_transaction_ids_are_refused_not_rolled_back() {
    let dir = store_with_history();
    let original = std::fs::read(dir.path().join("data.mdb")).unwrap();
    let newest = txn_of(&original, 0).max(txn_of(&original, 1));
    let older_page = if txn_of(&original, 0) == newest { 1 } else { 0 };
    let mut undetected = Vec::new();
    for meta in 0..2 {
        for bit in 0..64 {
            let mut damaged = original.clone();
            let at = meta * 4096 + 144 + bit / 8;
            damaged[at] ^= 1 << (bit % 8);
            std::fs::write(dir.path().join("data.mdb"), &damaged).unwrap();
            match reopen(dir.path()) {
                Err(e) if e.is_corrupt() => {}
                Err(e) => panic!("meta {meta} bit {bit}: {e:?}"),
                Ok(_) => {
                    assert_eq!(
                        (meta, txn_of(&damaged, meta)),
                        (older_page, newest + 1),
                        "meta {meta} bit {bit} opened"
                    );
                    undetected.push((meta, bit));
                }
            }
        }
    }
    assert!(undetected.len() <= 1, "{undetected:?}");
}

/// Issue 9: the one flip `bit_flips_in_meta_page_transaction_ids_are_refused_not_rolled_back`
/// let through (the older page's id raised by exactly two) opened the store one commit back.
/// The commit record now holds each meta page's fingerprint, so it is refused too.
#[test]
fn the_older_meta_page_raised_by_two_is_refused_not_rolled_back() {
    let dir = store_with_history();
    let original = std::fs::read(dir.path().join("data.mdb")).unwrap();
    let newest = txn_of(&original, 0).max(txn_of(&original, 1));
    let older_page = if txn_of(&original, 0) == newest { 1 } else { 0 };
    let mut damaged = original.clone();
    damaged[older_page * 4096 + 144..][..8].copy_from_slice(&(newest + 1).to_le_bytes());
    std::fs::write(dir.path().join("data.mdb"), &damaged).unwrap();
    let err = reopen(dir.path()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    std::fs::write(dir.path().join("data.mdb"), &original).unwrap();
    let store = reopen(dir.path()).unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"new value"[..]));
}

/// Issue 9: with `Durability::None` there is no commit record, and the two flips that keep
/// the ids consecutive (the older page raised by two, the newest lowered by two) opened the
/// store one commit back. Each meta page's free-page database now gives its true commit away
/// (see `lmdb/freelist.rs`): every flip of one bit is refused, under every durability, and the
/// undamaged file still opens at its newest commit.
#[test]
fn every_meta_page_id_flip_is_refused_without_a_commit_record() {
    for durability in [Durability::None, Durability::Flush] {
        let options = options().with_durability(durability);
        let dir = store_with_history_under(&options);
        let record = dir.path().join("cacher-last-commit");
        assert!(
            std::fs::read(&record).map_or(true, |r| r.is_empty())
                == (durability == Durability::None),
            "{durability:?}: the commit record is kept only with Flush"
        );
        let original = std::fs::read(dir.path().join("data.mdb")).unwrap();
        let newest = txn_of(&original, 0).max(txn_of(&original, 1));
        let older_page = if txn_of(&original, 0) == newest { 1 } else { 0 };
        let raised = {
            let mut damaged = original.clone();
            damaged[older_page * 4096 + 144..][..8].copy_from_slice(&(newest + 1).to_le_bytes());
            damaged
        };
        let lowered = {
            let mut damaged = original.clone();
            let at = (1 - older_page) * 4096 + 144;
            damaged[at..][..8].copy_from_slice(&(newest - 2).to_le_bytes());
            damaged
        };
        let mut cases = vec![
            ("older raised by two", raised),
            ("newest lowered by two", lowered),
        ];
        for meta in 0..2 {
            for bit in 0..64 {
                let mut damaged = original.clone();
                damaged[meta * 4096 + 144 + bit / 8] ^= 1 << (bit % 8);
                cases.push(("one bit", damaged));
            }
        }
        for (what, damaged) in cases {
            std::fs::write(dir.path().join("data.mdb"), &damaged).unwrap();
            let _ = std::fs::remove_file(dir.path().join("lock.mdb"));
            match LmdbStore::open_with(dir.path(), &options) {
                Err(e) if e.is_corrupt() => {}
                Err(e) => panic!("{durability:?} {what}: {e:?}"),
                Ok(store) => panic!(
                    "{durability:?} {what}: opened, k = {:?}",
                    store.get(b"k").map(|v| v.map(String::from_utf8))
                ),
            }
        }
        std::fs::write(dir.path().join("data.mdb"), &original).unwrap();
        let _ = std::fs::remove_file(dir.path().join("lock.mdb"));
        let store = LmdbStore::open_with(dir.path(), &options).unwrap();
        assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"new value"[..]));
    }
}

/// What the free-page checks must not refuse: a store closed and opened again after every
/// commit of a varied workload (small and overflow values, overwrites, deletes, batches, so
/// LMDB reuses freed pages), under both durabilities, always opens and reads back what was
/// written.
#[test]
fn a_store_reopened_after_every_commit_always_opens() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = std::collections::BTreeMap::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..160 {
        let durability = if round % 3 == 0 {
            Durability::Flush
        } else {
            Durability::None
        };
        let _ = std::fs::remove_file(dir.path().join("lock.mdb"));
        let store = LmdbStore::open_with(dir.path(), &options().with_durability(durability))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let key = format!("key-{}", next() % 40).into_bytes();
        match next() % 5 {
            0 => {
                store.delete(&key).unwrap();
                expected.remove(&key);
            }
            1 => {
                let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..30)
                    .map(|i| {
                        (
                            format!("key-{}", (i * 7 + round) % 40).into_bytes(),
                            vec![i as u8; 300],
                        )
                    })
                    .collect();
                let refs: Vec<(&[u8], &[u8])> =
                    batch.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                store.put_many(&refs).unwrap();
                expected.extend(batch);
            }
            n => {
                let len = if n == 2 {
                    9000 + next() as usize % 30_000
                } else {
                    next() as usize % 200
                };
                let value = vec![round as u8; len];
                store.put(&key, &value).unwrap();
                expected.insert(key, value);
            }
        }
        let found: std::collections::BTreeMap<_, _> =
            store.scan().unwrap().map(Result::unwrap).collect();
        assert!(found == expected, "round {round}: contents differ");
    }
}

/// What the fingerprints must not refuse: a real commit that its process did not live to
/// record (the record is one commit behind the meta pages).
#[test]
fn a_commit_its_process_did_not_record_still_opens() {
    let dir = store_with_history();
    let record = std::fs::read(dir.path().join("cacher-last-commit")).unwrap();
    {
        let store = reopen(dir.path()).unwrap();
        store.put(b"k", b"unrecorded value").unwrap();
    }
    std::fs::write(dir.path().join("cacher-last-commit"), &record).unwrap();
    let store = reopen(dir.path()).unwrap();
    assert_eq!(
        store.get(b"k").unwrap().as_deref(),
        Some(&b"unrecorded value"[..])
    );
}

#[test]
fn a_damaged_meta_page_magic_or_last_page_is_refused() {
    let dir = store_with_history();
    let original = std::fs::read(dir.path().join("data.mdb")).unwrap();
    // mm_magic at 16, mm_last_pg at 136 (high byte: a page far past the end of the file), the
    // meta flag in mp_flags at 10.
    for (at, bit) in [(16, 0x40), (143, 0x40), (10, 0x08)] {
        for page in [0, 4096] {
            let at = page + at;
            let mut damaged = original.clone();
            damaged[at] ^= bit;
            std::fs::write(dir.path().join("data.mdb"), &damaged).unwrap();
            let err = reopen(dir.path()).unwrap_err();
            assert!(err.is_corrupt(), "byte {at}: {err:?}");
        }
    }
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn new_files_follow_the_umask_by_default_or_are_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    // What the umask makes of 0o666, measured on a file made the ordinary way.
    let reference = dir.path().join("reference");
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&reference)
            .unwrap();
    }
    let umasked = mode_of(&reference);
    let names = [
        "data.mdb",
        "lock.mdb",
        "cacher-resize.lock",
        "cacher-lmdb.toml",
    ];

    let shared = dir.path().join("shared");
    drop(LmdbStore::open_with(&shared, &options()).unwrap());
    for name in names {
        assert_eq!(mode_of(&shared.join(name)), umasked, "{name}");
    }

    let private = dir.path().join("private");
    let owner_only = options().with_file_mode(FileMode::OwnerOnly);
    drop(LmdbStore::open_with(&private, &owner_only).unwrap());
    for name in names {
        assert_eq!(mode_of(&private.join(name)), 0o600, "{name}");
    }
}

#[test]
fn lmdb_store_marks_its_directory_and_refuses_a_dir_store() {
    let dir = tempfile::tempdir().unwrap();
    drop(LmdbStore::open_with(dir.path(), &options()).unwrap());
    let marker = std::fs::read_to_string(dir.path().join("cacher-lmdb.toml")).unwrap();
    assert!(marker.contains("format = \"cacher-lmdb\""), "{marker}");
    assert!(marker.contains("version = 2"), "{marker}");

    let dir = tempfile::tempdir().unwrap();
    let dir_store = DirStore::open(dir.path()).unwrap();
    dir_store.put(b"k", b"v").unwrap();
    match LmdbStore::open_with(dir.path(), &options()).unwrap_err() {
        err @ Error::WrongLayout { .. } => {
            let text = err.to_string();
            assert!(
                text.contains("DirStore") && text.contains("LmdbStore"),
                "{text}"
            );
        }
        other => panic!("expected WrongLayout, got {other:?}"),
    }
    assert!(
        !dir.path().join("data.mdb").exists(),
        "LMDB files were made in a DirStore"
    );
    assert_eq!(dir_store.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn lmdb_store_refuses_an_unmarked_environment_of_another_program() {
    let dir = tempfile::tempdir().unwrap();
    {
        // Another program's data in LMDB's main database (as a NumpyLmdb written by Python).
        let env = LmdbEnv::open(dir.path(), &options()).unwrap();
        let main = env.create_unnamed_database().unwrap();
        env.write(|w| main.put(w, b"user-key", b"user value"))
            .unwrap();
    }
    match LmdbStore::open_with(dir.path(), &options()).unwrap_err() {
        Error::WrongLayout { expected, .. } => assert_eq!(expected, "LmdbStore"),
        other => panic!("expected WrongLayout, got {other:?}"),
    }
    let env = LmdbEnv::open(dir.path(), &options()).unwrap();
    let main = env.create_unnamed_database().unwrap();
    let keys = env
        .read(|r| -> Result<Vec<Vec<u8>>, cacher_store::lmdb::TxnError> {
            let mut keys = Vec::new();
            for e in main.iter(r)? {
                keys.push(e?.0.to_vec());
            }
            Ok(keys)
        })
        .unwrap();
    assert_eq!(
        keys,
        vec![b"user-key".to_vec()],
        "the store wrote into the user's database"
    );
}
