//! HybridStore on disk (issue 11): value files survive a SIGKILL at any instant as the old or
//! the new value, garbage collection removes only the store's own unreferenced files, and a
//! damaged or missing value file is an error, never a wrong value.
#![cfg(target_os = "linux")]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cacher_store::{Durability, HybridStore, Store};

const CHILD: &str = "CACHER_HYBRID_CRASH_CHILD_DIR";
const LEN: usize = 200_000;

fn open(dir: &Path) -> HybridStore {
    HybridStore::options()
        .inline_max(4096)
        .durability(Durability::Flush)
        .open(dir)
        .unwrap()
}

fn files_under(dir: &Path, ext: Option<&str>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(read) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in read {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            out.extend(files_under(&p, ext));
        } else if ext.is_none_or(|x| p.extension().is_some_and(|e| e == x)) {
            out.push(p);
        }
    }
    out
}

/// Value `i`: its number, then its number's low byte repeated.
fn value(i: u64) -> Vec<u8> {
    let mut v = vec![i as u8; LEN];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

fn is_some_whole_value(v: &[u8]) -> bool {
    v.len() == LEN && {
        let i = u64::from_le_bytes(v[..8].try_into().unwrap());
        v == value(i)
    }
}

/// The child: overwrite one large value (and a small one) forever, until killed.
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD) else {
        return;
    };
    let store = open(Path::new(&dir));
    let start = match store.get(b"k").unwrap() {
        Some(v) => u64::from_le_bytes(v[..8].try_into().unwrap()) + 1,
        None => 0,
    };
    for i in start.. {
        store.put_reader(b"k", &mut &value(i)[..]).unwrap();
        store.put(b"small", &i.to_le_bytes()).unwrap();
    }
}

#[test]
fn a_sigkill_mid_write_leaves_the_old_or_new_value_and_garbage_collection_cleans_up() {
    let temp = tempfile::tempdir().unwrap();
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child_writer", "--exact", "--test-threads", "1"])
            .env(CHILD, temp.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300 + 170 * round));
        child.kill().unwrap();
        child.wait().unwrap();

        let store = open(temp.path());
        if let Some(v) = store.get(b"k").unwrap() {
            assert!(is_some_whole_value(&v), "round {round}: a torn value");
            let mut streamed = Vec::new();
            store
                .read_stream(b"k")
                .unwrap()
                .unwrap()
                .read_to_end(&mut streamed)
                .unwrap();
            assert_eq!(streamed, v);
        }
        store.collect_garbage(Duration::ZERO).unwrap();
        let blobs = files_under(&temp.path().join("files"), Some("blob"));
        let expect = usize::from(store.contains(b"k").unwrap());
        assert_eq!(blobs.len(), expect, "round {round}: {blobs:?}");
        assert!(files_under(&temp.path().join("files/tmp"), None).is_empty());
    }
    let last = open(temp.path())
        .get(b"k")
        .unwrap()
        .expect("the child wrote values");
    let writes = u64::from_le_bytes(last[..8].try_into().unwrap());
    assert!(
        writes > 4,
        "only {writes} writes: the kills did not land mid-stream"
    );
    println!("{writes} large writes across 4 kills");
}

#[test]
fn garbage_collection_keeps_young_files_foreign_files_and_symlink_targets() {
    let temp = tempfile::tempdir().unwrap();
    let store = open(temp.path());
    store.put(b"live", &vec![1u8; 10_000]).unwrap();
    // An orphan of ours (a crash between rename and commit), written like the store does.
    store.put(b"gone", &vec![2u8; 10_000]).unwrap();
    let before = files_under(&temp.path().join("files"), Some("blob"));
    let orphan_copy = std::fs::read(
        before
            .iter()
            .find(|p| std::fs::read(p).unwrap()[16] == 2)
            .unwrap(),
    )
    .unwrap();
    let fan = temp.path().join("files/ab");
    std::fs::create_dir_all(&fan).unwrap();
    let orphan = fan.join(format!("ab{}.blob", "0".repeat(30)));
    std::fs::write(&orphan, &orphan_copy).unwrap();
    // A file with our name but not our magic, and a symlink with our name to a file outside.
    let foreign = fan.join(format!("ab{}.blob", "1".repeat(30)));
    std::fs::write(&foreign, b"someone else's bytes").unwrap();
    let outside = temp.path().join("outside.bin");
    std::fs::write(&outside, &orphan_copy).unwrap();
    let link = fan.join(format!("ab{}.blob", "2".repeat(30)));
    std::os::unix::fs::symlink(&outside, &link).unwrap();

    // Young files are kept by the default grace age.
    assert_eq!(
        store
            .collect_garbage(cacher_store::DEFAULT_GARBAGE_AGE)
            .unwrap(),
        0
    );
    assert_eq!(store.collect_garbage(Duration::ZERO).unwrap(), 1);
    assert!(!orphan.exists());
    assert!(foreign.exists());
    assert!(std::fs::symlink_metadata(&link).is_ok());
    assert_eq!(std::fs::read(&outside).unwrap(), orphan_copy);
    assert_eq!(store.get(b"live").unwrap().unwrap(), vec![1u8; 10_000]);
    assert_eq!(store.get(b"gone").unwrap().unwrap(), vec![2u8; 10_000]);
}

#[test]
fn a_damaged_or_missing_value_file_is_an_error_never_a_wrong_value() {
    let temp = tempfile::tempdir().unwrap();
    let store = open(temp.path());
    store.put(b"k", &vec![5u8; 100_000]).unwrap();
    let path = files_under(&temp.path().join("files"), Some("blob")).remove(0);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert!(store.get(b"k").unwrap_err().is_corrupt());
    let err = store
        .read_stream(b"k")
        .unwrap()
        .unwrap()
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    std::fs::remove_file(&path).unwrap();
    assert!(store.get(b"k").unwrap_err().is_corrupt());
    // Replaced by a FIFO: refused without blocking.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(store.get(b"k").is_err());
}

#[test]
fn a_directory_of_another_store_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    cacher_store::DirStore::open(temp.path()).unwrap();
    let err = HybridStore::open(temp.path()).unwrap_err();
    assert!(err.to_string().contains("HybridStore"), "{err}");
}

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/hybrid/v1-store")
}

/// Copies a fixture directory (data files only: LMDB makes its lock file) to a temp dir.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else if e.file_name() != "lock.mdb" {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The golden store: `small` inline, `big` (100 000 bytes of `i % 251`) in a file.
#[test]
fn the_v1_fixture_store_reads_its_inline_and_file_values() {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let store = open(temp.path());
    assert_eq!(store.get(b"small").unwrap().unwrap(), b"inline value");
    let big: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
    assert_eq!(store.get(b"big").unwrap().unwrap(), big);
    assert_eq!(store.len().unwrap(), 2);
    assert_eq!(store.collect_garbage(Duration::ZERO).unwrap(), 0);
}

#[test]
#[ignore = "writes the fixture; run with CACHER_WRITE_FIXTURES=1 when adding one"]
fn regenerate_hybrid_v1_fixture() {
    if std::env::var_os("CACHER_WRITE_FIXTURES").is_none() {
        return;
    }
    let dir = fixture_dir();
    let _ = std::fs::remove_dir_all(&dir);
    {
        let store = open(&dir);
        store.put(b"small", b"inline value").unwrap();
        let big: Vec<u8> = (0..100_000).map(|i| (i % 251) as u8).collect();
        store.put(b"big", &big).unwrap();
    }
    let _ = std::fs::remove_file(dir.join("index/lock.mdb"));
}
