//! A damaged `data.mdb` never gives a wrong value: every byte inside every value of a small
//! store is flipped in turn, and every read afterwards is the right value, a miss, or an
//! error (issue 9: 22 of 24 random flips over data pages used to return a wrong value).
//! Then every page of the tree (branch, leaf and overflow pages, headers and node headers
//! included) is damaged byte by byte in child processes: LMDB does not check every page it
//! follows and may crash on a damaged page header, which is counted and reported, but no
//! read may ever return a wrong value, and where a key reads as missing `verify()` says so.

#![cfg(all(feature = "lmdb", target_os = "linux"))]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use cacher_store::lmdb::{LmdbOptions, LmdbStore};
use cacher_store::Store;

/// Keys and values.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

fn contents() -> Entries {
    let mut out: Entries = (0..24u8)
        .map(|i| {
            let key = format!("key-{i:02}").into_bytes();
            let value = (0..(20 + usize::from(i) * 7))
                .map(|j| (j as u8).wrapping_mul(31) ^ i)
                .collect();
            (key, value)
        })
        .collect();
    // One value on overflow pages and one long (hashed) key.
    out.push((
        b"big".to_vec(),
        (0..6000u32).map(|j| (j % 251) as u8).collect(),
    ));
    out.push((vec![b'L'; 600], b"under a hashed key".to_vec()));
    out
}

fn options() -> LmdbOptions {
    LmdbOptions::default().with_initial_map_size(1 << 20)
}

/// Opens the store in `dir` and reads every key through every read path; panics on a wrong
/// value (a right value, a miss or an error are all fine).
fn check_reads(dir: &Path, expected: &[(Vec<u8>, Vec<u8>)], what: &str) -> bool {
    let Ok(store) = LmdbStore::open_with(dir, &options()) else {
        return true;
    };
    let mut noticed = false;
    for (key, value) in expected {
        // A miss or an error is fine; a value is fine only when it is the right one.
        let mut check = |got: Result<Option<Vec<u8>>, cacher_store::Error>, path: &str| match got {
            Ok(Some(got)) => {
                assert_eq!(&got, value, "{what}: {path} of {key:?} gave a wrong value")
            }
            Ok(None) | Err(_) => noticed = true,
        };
        check(store.get(key), "get");
        check(store.read(key).map(|b| b.map(|b| b.to_vec())), "read");
        let mut lent = None;
        let found = store.with_value(key, &mut |v| lent = Some(v.to_vec()));
        check(found.map(|_| lent), "with_value");
        check(
            store.get_many(&[key]).map(|mut got| got.pop().flatten()),
            "get_many",
        );
    }
    if let Ok(entries) = store.scan() {
        for entry in entries {
            let Ok((key, got)) = entry else {
                noticed = true;
                break;
            };
            match expected.iter().find(|(k, _)| *k == key) {
                Some((_, value)) => assert_eq!(&got, value, "{what}: scan of {key:?}"),
                None => panic!("{what}: scan gave a key never written: {key:?}"),
            }
        }
    }
    noticed
}

/// Where `needle` sits in `hay` (every occurrence).
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

fn written_store() -> (tempfile::TempDir, Vec<u8>, Entries) {
    let expected = contents();
    let made = tempfile::tempdir().unwrap();
    {
        let store = LmdbStore::open_with(made.path(), &options()).unwrap();
        let refs: Vec<(&[u8], &[u8])> = expected.iter().map(|(k, v)| (&k[..], &v[..])).collect();
        store.put_many(&refs).unwrap();
    }
    let original = std::fs::read(made.path().join("data.mdb")).unwrap();
    (made, original, expected)
}

/// Writes `damaged` as the only file of `dir` and checks every read.
fn probe(dir: &Path, damaged: &[u8], expected: &[(Vec<u8>, Vec<u8>)], what: &str) -> bool {
    std::fs::write(dir.join("data.mdb"), damaged).unwrap();
    let _ = std::fs::remove_file(dir.join("lock.mdb"));
    check_reads(dir, expected, what)
}

#[test]
fn a_flipped_byte_inside_any_value_never_reads_back_flipped() {
    let (_made, original, expected) = written_store();
    let work = tempfile::tempdir().unwrap();
    let mut flips = 0;
    for (key, value) in &expected {
        let at = find_all(&original, value);
        assert!(!at.is_empty(), "value of {key:?} not found in data.mdb");
        let step = if value.len() > 1000 { 7 } else { 1 };
        for start in at {
            for i in (0..value.len()).step_by(step) {
                let mut damaged = original.clone();
                damaged[start + i] ^= 0x01;
                flips += 1;
                let noticed = probe(
                    work.path(),
                    &damaged,
                    &expected,
                    &format!("byte {i} of the value of {key:?}"),
                );
                assert!(noticed, "a flip in the value of {key:?} went unnoticed");
            }
        }
    }
    eprintln!("{flips} flips inside values, every one noticed");
}

const CHILD_ENV: &str = "CACHER_LMDB_DAMAGE_CHILD";
const PAGE: usize = 4096;
/// LMDB's page flags (`mp_flags`, at byte 10 of a page header).
const P_BRANCH: u16 = 0x01;
const P_LEAF: u16 = 0x02;
const P_OVERFLOW: u16 = 0x04;

/// The byte positions probed in pages of the tree: every header byte, every third after.
fn tree_positions(original: &[u8]) -> Vec<usize> {
    (2..original.len() / PAGE)
        .filter(|&p| {
            let flags = u16::from_le_bytes([original[p * PAGE + 10], original[p * PAGE + 11]]);
            flags & (P_BRANCH | P_LEAF | P_OVERFLOW) != 0
        })
        .flat_map(|p| {
            (0..16)
                .chain((16..PAGE).step_by(3))
                .map(move |i| p * PAGE + i)
        })
        .collect()
}

/// In a child: probes positions `from..` of the file in `dir`, printing `probe <i>` before
/// each so the parent can resume after a crash.
fn damage_child(dir: &Path, from: usize) {
    let original = std::fs::read(dir.join("original.mdb")).unwrap();
    let expected = contents();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let positions = tree_positions(&original);
    let mut out = std::io::stdout();
    for (i, &at) in positions.iter().enumerate().skip(from) {
        writeln!(out, "probe {i}").unwrap();
        out.flush().unwrap();
        let mut damaged = original.clone();
        damaged[at] ^= 0x5a;
        let what = format!("byte {at} (page {})", at / PAGE);
        std::fs::write(work.join("data.mdb"), &damaged).unwrap();
        let _ = std::fs::remove_file(work.join("lock.mdb"));
        let _ = std::fs::remove_file(work.join("cacher-last-commit"));
        let Ok(store) = LmdbStore::open_with(&work, &options()) else {
            continue;
        };
        let missing = expected
            .iter()
            .filter(|(k, _)| matches!(store.get(k), Ok(None)))
            .count();
        drop(store);
        check_reads(&work, &expected, &what);
        if missing > 0 {
            let store = LmdbStore::open_with(&work, &options()).unwrap();
            match store.verify() {
                Err(_) => {}
                Ok(report) if !report.damaged.is_empty() => {}
                Ok(report) => panic!(
                    "{what}: {missing} keys read as missing but verify found nothing \
                     ({} checked)",
                    report.checked
                ),
            }
        }
    }
    writeln!(out, "done").unwrap();
}

#[test]
fn damage_anywhere_in_the_tree_never_reads_back_as_a_wrong_value() {
    if let Ok(from) = std::env::var(CHILD_ENV) {
        let dir = std::env::var("CACHER_LMDB_DAMAGE_DIR").unwrap();
        damage_child(Path::new(&dir), from.parse().unwrap());
        return;
    }
    let (made, original, _) = written_store();
    std::fs::write(made.path().join("original.mdb"), &original).unwrap();
    let total = tree_positions(&original).len();
    let mut from = 0;
    let mut crashed = Vec::new();
    loop {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "damage_anywhere_in_the_tree_never_reads_back_as_a_wrong_value",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, from.to_string())
            .env("CACHER_LMDB_DAMAGE_DIR", made.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Lines through a channel, so a child that hangs or grows without bound is seen and
        // killed (and the test fails) instead of hanging the suite or the machine.
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut last = None;
        let mut done = false;
        let mut quiet = 0;
        loop {
            match rx.recv_timeout(std::time::Duration::from_secs(1)) {
                Ok(line) => {
                    quiet = 0;
                    // The first probe line follows libtest's "test … ... " on the same line.
                    if let Some((_, i)) = line.rsplit_once("probe ") {
                        last = Some(i.trim().parse::<usize>().unwrap());
                    }
                    done |= line.trim_end().ends_with("done");
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => quiet += 1,
            }
            let rss_kib: u64 = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .ok()
                .and_then(|s| {
                    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?.to_string();
                    line.split_whitespace().nth(1)?.parse().ok()
                })
                .unwrap_or(0);
            if quiet >= 30 || rss_kib > 1 << 20 {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "probe {last:?} (byte {:?}): the child {} (RSS {} MiB)",
                    last.map(|i| tree_positions(&original)[i]),
                    if quiet >= 30 {
                        "hung"
                    } else {
                        "grew past 1 GiB"
                    },
                    rss_kib >> 10
                );
            }
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() && done {
            break;
        }
        use std::os::unix::process::ExitStatusExt;
        match (out.status.signal(), last) {
            // LMDB followed a damaged page and crashed: note it and go on after it.
            (Some(_), Some(i)) => {
                crashed.push(i);
                from = i + 1;
            }
            _ => panic!("the damage child failed: {stderr}"),
        }
        if from >= total {
            break;
        }
    }
    eprintln!(
        "{total} probes over the tree's pages; LMDB crashed on {} of them (damaged page \
         headers it does not check); no wrong value",
        crashed.len()
    );
}
