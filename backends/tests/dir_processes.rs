//! Several processes writing and overwriting the same keys of one DirStore at once never leave
//! a torn or mixed entry: every file parses and every value is one some process wrote whole.
//!
//! The test binary re-executes itself: with `CHILD_DIR` set, the test body is a writer.

use std::path::Path;
use std::process::{Command, Stdio};

use cacher_store::{DirStore, Durability, Store};

const TEST_NAME: &str = "processes_writing_the_same_keys_leave_only_whole_values";
const CHILD_DIR: &str = "CACHER_DIR_PROCESSES_CHILD_DIR";
const CHILD_ID: &str = "CACHER_DIR_PROCESSES_CHILD_ID";
const CHILDREN: u64 = 4;
const ROUNDS: u64 = 30;
const KEYS: u64 = 6;
/// Sizes on both sides of the mmap threshold, so reads go through both paths.
const SIZES: [usize; 4] = [10, 3000, 70_000, 200_000];

fn key(k: u64) -> Vec<u8> {
    format!("shared/{k}").into_bytes()
}

/// The value child `c` writes under key `k` in round `r`: a self-describing prefix and a
/// pattern only that triple produces.
fn value(c: u64, k: u64, r: u64) -> Vec<u8> {
    let len = SIZES[((c + k + r) % SIZES.len() as u64) as usize];
    let mut v = format!("c{c} k{k} r{r}|").into_bytes();
    let mut x = (c * 1_000_003 + k * 10_007 + r * 101 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    v.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x as u8
    }));
    v
}

/// Panics unless `v` is exactly a value some child wrote for key `k`.
fn check_whole(k: u64, v: &[u8]) {
    let bar = v
        .iter()
        .position(|&b| b == b'|')
        .expect("value has its prefix");
    let prefix = std::str::from_utf8(&v[..bar]).expect("prefix is text");
    let nums: Vec<u64> = prefix
        .split(' ')
        .map(|part| part[1..].parse().expect("prefix number"))
        .collect();
    let (c, kk, r) = (nums[0], nums[1], nums[2]);
    assert_eq!(kk, k, "value of key {k} names key {kk}");
    assert!(
        v == value(c, k, r),
        "value of key {k} is torn or mixed ({prefix}, {} bytes)",
        v.len()
    );
}

fn child(dir: &Path, c: u64) {
    // One writer syncs every put; the others leave it to the OS, as fast writers would.
    let durability = if c == 0 {
        Durability::Flush
    } else {
        Durability::None
    };
    let store = DirStore::options()
        .durability(durability)
        .open(dir)
        .unwrap();
    for r in 0..ROUNDS {
        match r % 3 {
            0 => {
                for k in 0..KEYS {
                    store.put(&key(k), &value(c, k, r)).unwrap();
                }
            }
            1 => {
                for k in 0..KEYS {
                    let v = value(c, k, r);
                    store.put_reader(&key(k), &mut &v[..]).unwrap();
                }
            }
            _ => {
                let owned: Vec<(Vec<u8>, Vec<u8>)> =
                    (0..KEYS).map(|k| (key(k), value(c, k, r))).collect();
                let entries: Vec<(&[u8], &[u8])> =
                    owned.iter().map(|(k, v)| (&k[..], &v[..])).collect();
                store.put_many(&entries).unwrap();
            }
        }
        for k in 0..KEYS {
            let blob = store
                .read(&key(k))
                .unwrap()
                .expect("written keys stay present");
            check_whole(k, &blob);
        }
    }
}

#[test]
fn processes_writing_the_same_keys_leave_only_whole_values() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        let c = std::env::var(CHILD_ID).unwrap().parse().unwrap();
        child(Path::new(&dir), c);
        return;
    }
    let temp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|c| {
            Command::new(&exe)
                .args(["--exact", TEST_NAME, "--test-threads=1", "--nocapture"])
                .env(CHILD_DIR, temp.path())
                .env(CHILD_ID, c.to_string())
                // The child's harness chatter; a failing child's panic still reaches stderr.
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for (c, mut child) in children.into_iter().enumerate() {
        let status = child.wait().unwrap();
        assert!(status.success(), "writer process {c} failed: {status}");
    }
    let store = DirStore::open(temp.path()).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(
        (report.checked, report.damaged.len()),
        (KEYS, 0),
        "every entry file parses: {report:?}"
    );
    assert_eq!(store.len().unwrap(), KEYS);
    for k in 0..KEYS {
        check_whole(k, &store.get(&key(k)).unwrap().unwrap());
    }
    let mut keys: Vec<Vec<u8>> = store.keys().unwrap().map(Result::unwrap).collect();
    keys.sort();
    assert_eq!(keys, (0..KEYS).map(key).collect::<Vec<_>>());
    let left = std::fs::read_dir(temp.path().join("tmp")).unwrap().count();
    assert_eq!(left, 0, "no temp file is left behind");
}
