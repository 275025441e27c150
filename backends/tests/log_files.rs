//! `LogStore` touches only its own files (issue 9): planted symlinks beside the log are
//! refused without following them, FIFOs are refused without blocking, new files follow the
//! umask (or `FileMode::OwnerOnly`), compaction keeps the log's mode, and a path that holds
//! another kind of store is refused.
#![cfg(unix)]

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use cacher_store::{DirStore, Error, FileMode, LogOptions, LogStore, Store};

/// Runs `f` on a thread and fails the test if it has not returned within ten seconds, so a
/// regression that blocks (on a FIFO) fails instead of hanging the suite.
fn within_seconds<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} blocked for ten seconds"))
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

fn assert_not_owned(result: cacher_store::Result<impl std::fmt::Debug>, what: &str) {
    match result {
        Err(Error::NotOwned { .. }) => {}
        other => panic!("{what}: expected Error::NotOwned, got {other:?}"),
    }
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// A user's file outside the store, and the bytes it must keep.
fn victim(dir: &Path) -> std::path::PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("precious.txt");
    std::fs::write(&victim, b"the user's own data").unwrap();
    victim
}

#[test]
fn a_planted_creating_symlink_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let victim = victim(dir.path());
    let path = dir.path().join("store.log");
    symlink(&victim, dir.path().join("store.log.creating")).unwrap();
    assert_not_owned(LogStore::open(&path), "open with a planted .creating");
    assert_eq!(std::fs::read(&victim).unwrap(), b"the user's own data");
    assert!(!is_symlink(&path), "store.log became a symlink");
    assert!(!path.exists());
}

#[test]
fn a_planted_compacting_symlink_is_refused_by_open_and_compact() {
    let dir = tempfile::tempdir().unwrap();
    let victim = victim(dir.path());
    let path = dir.path().join("store.log");
    let tmp = dir.path().join("store.log.compacting");
    let store = LogStore::open(&path).unwrap();
    store.put(b"k", b"v").unwrap();
    store.put(b"k", b"w").unwrap();
    symlink(&victim, &tmp).unwrap();
    assert_not_owned(store.compact(), "compact with a planted .compacting");
    assert_eq!(std::fs::read(&victim).unwrap(), b"the user's own data");
    assert!(!is_symlink(&path), "store.log became a symlink");
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"w"[..]));
    drop(store);
    assert_not_owned(LogStore::open(&path), "open with a planted .compacting");
    assert!(is_symlink(&tmp), "the planted link is left for the user");
    assert_eq!(std::fs::read(&victim).unwrap(), b"the user's own data");
    // A stale regular temp file of our own is cleared.
    std::fs::remove_file(&tmp).unwrap();
    std::fs::write(&tmp, b"left by a crash").unwrap();
    let store = LogStore::open(&path).unwrap();
    assert!(!tmp.exists());
    assert_eq!(store.open_report().removed_temps, vec![tmp.clone()]);
    assert!(store.open_report().recovered());
    store.compact().unwrap();
    assert_eq!(store.get(b"k").unwrap().as_deref(), Some(&b"w"[..]));
}

#[test]
fn a_dangling_lock_symlink_creates_nothing_outside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("outside")).unwrap();
    let target = dir.path().join("outside/made-by-the-store");
    symlink(&target, dir.path().join("store.log.lock")).unwrap();
    assert_not_owned(
        LogStore::open(dir.path().join("store.log")),
        "open with a dangling .lock",
    );
    assert!(!target.exists(), "the lock symlink's target was created");
}

#[test]
fn a_symlink_at_the_log_path_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.log");
    LogStore::open(&real).unwrap().put(b"k", b"v").unwrap();
    let before = std::fs::read(&real).unwrap();
    let link = dir.path().join("store.log");
    symlink(&real, &link).unwrap();
    assert_not_owned(LogStore::open(&link), "writer open through a symlink");
    assert_not_owned(
        LogOptions::new().read_only(true).open(&link),
        "reader open through a symlink",
    );
    assert_eq!(std::fs::read(&real).unwrap(), before);
}

#[test]
fn fifos_are_refused_without_blocking() {
    for planted in ["store.log", "store.log.lock", "store.log.creating"] {
        let dir = tempfile::tempdir().unwrap();
        mkfifo(&dir.path().join(planted));
        let path = dir.path().join("store.log");
        let p = path.clone();
        let result = within_seconds("open beside a FIFO", move || LogStore::open(&p).map(|_| ()));
        assert_not_owned(result, &format!("writer open with a FIFO at {planted}"));
        if planted == "store.log" {
            let result = within_seconds("read-only open of a FIFO", move || {
                LogOptions::new().read_only(true).open(&path).map(|_| ())
            });
            assert_not_owned(result, "reader open of a FIFO");
        }
    }
}

const MODE_CHILD_ENV: &str = "CACHER_LOG_MODE_CHILD";

/// Runs `child_writes_a_log` in a child process under `umask`.
fn run_under_umask(umask: &str, store: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask} && exec \"$0\" \"$@\""))
        .arg(std::env::current_exe().unwrap())
        .args(["child_writes_a_log", "--exact", "--test-threads=1"])
        .env(MODE_CHILD_ENV, store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn child_writes_a_log() {
    let Some(path) = std::env::var_os(MODE_CHILD_ENV) else {
        return;
    };
    LogStore::open(&path).unwrap().put(b"k", b"v").unwrap();
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn new_files_follow_the_umask_by_default() {
    for (umask, want) in [("002", 0o664), ("077", 0o600), ("027", 0o640)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.log");
        run_under_umask(umask, &path);
        assert_eq!(mode(&path), want, "store.log under umask {umask}");
        assert_eq!(
            mode(&dir.path().join("store.log.lock")),
            want,
            "lock file under umask {umask}"
        );
    }
}

#[test]
fn owner_only_files_are_0600_and_compaction_keeps_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogOptions::new()
        .file_mode(FileMode::OwnerOnly)
        .open(&path)
        .unwrap();
    store.put(b"k", b"v").unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("store.log.lock")), 0o600);
    store.compact().unwrap();
    assert_eq!(mode(&path), 0o600, "compaction kept owner-only");
    // A mode the user gave the log survives compaction, explicit and automatic.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    store.put(b"k", b"w").unwrap();
    store.compact().unwrap();
    assert_eq!(mode(&path), 0o640, "compaction reset the log's mode");
    drop(store);
    let store = LogOptions::new().auto_compact(0.1, 0).open(&path).unwrap();
    for i in 0..10u8 {
        store.put(b"k", &[i; 100]).unwrap();
    }
    assert!(store.stats().generation > 2);
    assert_eq!(mode(&path), 0o640, "auto-compaction reset the log's mode");
}

#[test]
fn another_kind_of_store_is_refused_with_wrong_layout() {
    let dir = tempfile::tempdir().unwrap();
    let dir_store = dir.path().join("dirstore");
    DirStore::open(&dir_store).unwrap().put(b"k", b"v").unwrap();
    // The DirStore directory itself, and a log path inside it.
    for path in [dir_store.clone(), dir_store.join("store.log")] {
        match LogStore::open(&path) {
            Err(e @ Error::WrongLayout { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("DirStore") && text.contains("LogStore"),
                    "{text}"
                );
            }
            other => panic!("{}: expected WrongLayout, got {other:?}", path.display()),
        }
    }
    assert!(!dir_store.join("store.log").exists());
    assert!(!dir_store.join("store.log.lock").exists());
    // A plain directory is not a log either.
    let plain = dir.path().join("plain");
    std::fs::create_dir(&plain).unwrap();
    assert!(matches!(
        LogStore::open(&plain),
        Err(Error::WrongLayout { .. }) | Err(Error::NotOwned { .. })
    ));
    // Another store's file: not a log, said so.
    let other = dir.path().join("not-a-log");
    std::fs::write(&other, [0u8; 4096]).unwrap();
    match LogStore::open(&other) {
        Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("not a cacher log")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// A writer lock busy for a moment only (another thread's child between fork and exec
/// shares a just-closed writer's lock file) is waited for, briefly; one held on is still
/// `Locked`. Before, the open failed at once, and `owner_only_files_are_0600_and_compaction_
/// keeps_the_mode` failed now and then on its reopen while another test spawned `sh`.
#[test]
fn a_writer_lock_busy_for_a_moment_is_waited_for_and_a_held_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    drop(LogStore::open(&path).unwrap());
    let lock = std::fs::File::open(dir.path().join("store.log.lock")).unwrap();
    lock.lock().unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(lock);
    });
    let store = LogStore::open(&path).expect("the lock was busy for 20 ms only");
    releaser.join().unwrap();
    assert!(matches!(LogStore::open(&path), Err(Error::Locked { .. })));
    drop(store);
}
