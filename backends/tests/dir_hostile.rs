//! DirStore touches only its own files (issue 9): planted symlinks, FIFOs, sockets and foreign
//! files inside a store's directory are refused with an error naming the path, never followed,
//! never deleted, and never block. Every call that could block runs under a watchdog, so a
//! regression fails the test instead of hanging it.
#![cfg(unix)]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use cacher_store::{DirStore, Durability, Error, Store};

/// Runs `f` on its own thread and fails the test if it has not returned within 20 s.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} blocked for 20 s"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("{what} panicked"),
    }
}

fn mkfifo(path: &Path) {
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
}

fn make_old(path: &Path) {
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
}

fn store(dir: &Path) -> DirStore {
    DirStore::options()
        .durability(Durability::None)
        .open(dir)
        .unwrap()
}

fn assert_not_owned(err: &Error, path: &Path) {
    match err {
        Error::NotOwned { path: p, .. } => assert_eq!(p, path, "{err}"),
        other => panic!("expected NotOwned naming {}, got {other:?}", path.display()),
    }
}

#[test]
fn open_removes_only_its_own_stale_temp_files() {
    let temp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    drop(store(temp.path()));
    let tmp = temp.path().join("tmp");
    // Left by a crashed writer: a `put-` name of the store's own shape.
    let ours = tmp.join("put-aB3xY9");
    fs::write(&ours, b"half an entry").unwrap();
    make_old(&ours);
    // Not the store's: a user's file, a look-alike name, and a symlink to a user's file.
    let user = tmp.join("notes.txt");
    fs::write(&user, b"mine").unwrap();
    make_old(&user);
    let lookalike = tmp.join("put-not-a-temp-file.txt");
    fs::write(&lookalike, b"mine too").unwrap();
    make_old(&lookalike);
    let target = outside.path().join("precious");
    fs::write(&target, b"precious").unwrap();
    make_old(&target);
    let link = tmp.join("put-Link00");
    symlink(&target, &link).unwrap();
    let subdir = tmp.join("put-Dir000");
    fs::create_dir(&subdir).unwrap();

    drop(store(temp.path()));
    assert!(!ours.exists(), "the store's own stale temp file is removed");
    assert!(user.exists(), "a file the store did not make is kept");
    assert!(lookalike.exists(), "a name the store never makes is kept");
    assert!(
        fs::symlink_metadata(&link).is_ok(),
        "a symlink is not removed"
    );
    assert_eq!(fs::read(&target).unwrap(), b"precious");
    assert!(subdir.is_dir());
}

#[test]
fn a_symlinked_tmp_dir_is_refused_and_the_files_behind_it_survive() {
    let temp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    drop(store(temp.path()));
    let tmp = temp.path().join("tmp");
    fs::remove_dir(&tmp).unwrap();
    symlink(outside.path(), &tmp).unwrap();
    let precious = outside.path().join("precious");
    let named_like_ours = outside.path().join("put-aB3xY9");
    for f in [&precious, &named_like_ours] {
        fs::write(f, b"user data").unwrap();
        make_old(f);
    }
    let err = DirStore::open(temp.path()).unwrap_err();
    assert_not_owned(&err, &tmp);
    assert!(precious.exists() && named_like_ours.exists());
}

/// A store whose fan-out directory for `key` is a symlink to `outside`.
fn with_symlinked_fanout(key: &[u8]) -> (tempfile::TempDir, tempfile::TempDir, DirStore, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let store = store(temp.path());
    let fanout = store.entry_path(key).parent().unwrap().to_path_buf();
    symlink(outside.path(), &fanout).unwrap();
    (temp, outside, store, fanout)
}

#[test]
fn put_refuses_a_symlinked_fanout_dir_and_writes_nothing_outside() {
    let (_t, outside, store, fanout) = with_symlinked_fanout(b"k");
    assert_not_owned(&store.put(b"k", b"v").unwrap_err(), &fanout);
    assert_not_owned(
        &store.put_reader(b"k", &mut &b"v"[..]).unwrap_err(),
        &fanout,
    );
    assert_not_owned(&store.put_many(&[(b"k", b"v")]).unwrap_err(), &fanout);
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn reads_deletes_and_listings_refuse_a_symlinked_fanout_dir() {
    let (temp, outside, store, fanout) = with_symlinked_fanout(b"k");
    // An entry for `k` outside the store, as if planted there.
    let other = self::store(&temp.path().join("elsewhere"));
    other.put(b"k", b"planted").unwrap();
    let name = store.entry_path(b"k").file_name().unwrap().to_owned();
    fs::copy(other.entry_path(b"k"), outside.path().join(&name)).unwrap();
    assert_not_owned(&store.get(b"k").unwrap_err(), &fanout);
    assert_not_owned(&store.read(b"k").unwrap_err(), &fanout);
    assert_not_owned(&store.delete(b"k").unwrap_err(), &fanout);
    assert!(
        outside.path().join(&name).exists(),
        "delete removed nothing"
    );
    let listed: Vec<_> = store.keys().unwrap().collect();
    assert_eq!(listed.len(), 1);
    assert_not_owned(listed[0].as_ref().unwrap_err(), &fanout);
}

/// Each read path on `key`, whose entry path holds something that is not a regular file.
fn assert_every_read_refuses(store: &DirStore, key: &'static [u8], planted: &Path) {
    let s = store.clone();
    let errors = within("reads of a planted entry", move || {
        vec![
            s.get(key).map(drop).unwrap_err(),
            s.read(key).map(drop).unwrap_err(),
            s.read_unchecked(key).map(drop).unwrap_err(),
            s.with_value(key, &mut |_| panic!("no value"))
                .map(drop)
                .unwrap_err(),
            s.meta(key).map(drop).unwrap_err(),
            s.contains(key).map(drop).unwrap_err(),
            s.get_many(&[key]).map(drop).unwrap_err(),
            s.delete(key).map(drop).unwrap_err(),
        ]
    });
    for err in &errors {
        assert_not_owned(err, planted);
    }
    let s = store.clone();
    let (keys, scan) = within("listing a planted entry", move || {
        let keys: Vec<_> = s.keys().unwrap().collect();
        let scan: Vec<_> = s.scan().unwrap().collect();
        (keys, scan)
    });
    assert_eq!(keys.len(), 1);
    assert_not_owned(keys[0].as_ref().unwrap_err(), planted);
    assert_eq!(scan.len(), 1);
    assert_not_owned(scan[0].as_ref().unwrap_err(), planted);
    let s = store.clone();
    let report = within("verify of a planted entry", move || s.verify().unwrap());
    assert_eq!(report.damaged.len(), 1, "{report:?}");
    assert_not_owned(&report.damaged[0].1, planted);
    assert!(
        fs::symlink_metadata(planted).is_ok(),
        "the planted file is left alone"
    );
}

fn plant_at_entry(store: &DirStore, key: &[u8]) -> PathBuf {
    let path = store.entry_path(key);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    path
}

#[test]
fn a_fifo_at_an_entry_path_is_refused_without_blocking() {
    let temp = tempfile::tempdir().unwrap();
    let store = store(temp.path());
    let path = plant_at_entry(&store, b"k");
    mkfifo(&path);
    assert_every_read_refuses(&store, b"k", &path);
}

#[test]
fn a_symlink_at_an_entry_path_is_refused_not_followed() {
    let temp = tempfile::tempdir().unwrap();
    let store = store(temp.path());
    // Points at a whole, valid entry for the same key: still not the store's file.
    let other = self::store(&temp.path().join("elsewhere"));
    other.put(b"k", b"planted").unwrap();
    let path = plant_at_entry(&store, b"k");
    symlink(other.entry_path(b"k"), &path).unwrap();
    assert_every_read_refuses(&store, b"k", &path);
    assert_eq!(other.get(b"k").unwrap().as_deref(), Some(&b"planted"[..]));
}

#[test]
fn a_socket_at_an_entry_path_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let store = store(temp.path());
    let path = plant_at_entry(&store, b"k");
    let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    assert_every_read_refuses(&store, b"k", &path);
}

#[test]
fn a_fifo_in_tmp_does_not_block_open_and_is_left_alone() {
    let temp = tempfile::tempdir().unwrap();
    drop(store(temp.path()));
    let ours = temp.path().join("tmp/put-Fifo01");
    let other = temp.path().join("tmp/a-fifo");
    mkfifo(&ours);
    mkfifo(&other);
    let dir = temp.path().to_path_buf();
    let removed = within("open with FIFOs in tmp/", move || {
        let store = DirStore::options()
            .stale_temp_age(Duration::ZERO)
            .open(&dir)
            .unwrap();
        store.remove_stale_temp_files(Duration::ZERO).unwrap()
    });
    assert_eq!(removed, 0);
    assert!(fs::symlink_metadata(&ours).is_ok() && fs::symlink_metadata(&other).is_ok());
}

#[test]
fn a_fifo_as_the_layout_marker_is_refused_without_blocking() {
    let temp = tempfile::tempdir().unwrap();
    let marker = temp.path().join("cacher-dir.toml");
    mkfifo(&marker);
    let dir = temp.path().to_path_buf();
    let err = within("open with a FIFO marker", move || {
        DirStore::open(&dir).unwrap_err()
    });
    assert_not_owned(&err, &marker);
}

#[test]
fn a_directory_of_another_kind_is_refused_naming_both_kinds() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(
        temp.path().join("cacher-log.toml"),
        "# A cacher LogStore. Do not edit files below this directory by hand.\n\
         format = \"cacher-log\"\nversion = 1\n",
    )
    .unwrap();
    let err = DirStore::open(temp.path()).unwrap_err();
    match &err {
        Error::WrongLayout {
            path,
            expected,
            found,
        } => assert_eq!(
            (path.as_path(), *expected, *found),
            (temp.path(), "DirStore", "LogStore")
        ),
        other => panic!("expected WrongLayout, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("DirStore") && text.contains("LogStore"),
        "{text}"
    );
    let mut names: Vec<_> = fs::read_dir(temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names, ["cacher-log.toml"], "nothing was created");
}
