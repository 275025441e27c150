//! Per-key leases between real processes (issue 10): four processes asking one missing key
//! compute it once, and a holder killed with `SIGKILL` is taken over by a waiter. The children
//! are this test binary re-executed with `CACHER_LEASE_CHILD` set (as `crash.rs` does).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cacher_store::lease::{Acquired, Leases};
use cacher_store::{DirStore, Store};

const PROCESSES: usize = 4;
const KEY: &[u8] = b"the one key";

fn open(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "dir" => Box::new(DirStore::open(dir).unwrap()),
        #[cfg(feature = "lmdb")]
        "lmdb" => Box::new(cacher_store::LmdbStore::open(dir).unwrap()),
        other => panic!("unknown store kind {other}"),
    }
}

fn leases_of(store: &dyn Store) -> Leases {
    Leases::open(store.lease_dir().expect("a shared store has a lease dir")).unwrap()
}

/// Files named `missed-*` in `dir`: one per process that found the key missing.
fn missed(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("missed-"))
        })
        .count()
}

/// Not a test of its own: a child process's body when `CACHER_LEASE_CHILD` is set.
#[test]
fn lease_child_entry_point() {
    let Ok(role) = std::env::var("CACHER_LEASE_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("CACHER_LEASE_DIR").unwrap());
    let work = PathBuf::from(std::env::var("CACHER_LEASE_WORK").unwrap());
    let kind = std::env::var("CACHER_LEASE_KIND").unwrap();
    let store = open(&kind, &dir);
    let leases = leases_of(&*store);
    match role.as_str() {
        // Look up, take the lease on a miss, look again, compute, store: what a memoized call
        // on a shared store does.
        "compute" => {
            if store.get(KEY).unwrap().is_some() {
                println!("hit");
                return;
            }
            std::fs::write(work.join(format!("missed-{}", std::process::id())), b"").unwrap();
            let Acquired::Won { lease, waited } =
                leases.acquire(KEY, Duration::from_secs(60)).unwrap()
            else {
                panic!("timed out");
            };
            if waited && store.get(KEY).unwrap().is_some() {
                println!("waited");
                return;
            }
            // Held until every process has missed, so without the lease each would compute.
            let deadline = Instant::now() + Duration::from_secs(30);
            while missed(&work) < PROCESSES && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            store.put(KEY, b"computed once").unwrap();
            drop(lease);
            println!("computed");
        }
        // Takes the lease and never lets go: the parent kills it.
        "hold" => {
            let _lease = leases.try_acquire(KEY).unwrap().expect("free");
            println!("held");
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        // Waits for the lease of a holder that is killed meanwhile.
        "take_over" => {
            assert!(
                leases.try_acquire(KEY).unwrap().is_none(),
                "held by the holder"
            );
            println!("waiting");
            match leases.acquire(KEY, Duration::from_secs(60)).unwrap() {
                Acquired::Won { .. } => println!("won"),
                Acquired::TimedOut => println!("timed out"),
            }
        }
        other => panic!("unknown child role {other}"),
    }
}

fn child(role: &str, kind: &str, dir: &Path, work: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "lease_child_entry_point",
            "--nocapture",
            "--test-threads=1",
            "--quiet",
        ])
        .env("CACHER_LEASE_CHILD", role)
        .env("CACHER_LEASE_KIND", kind)
        .env("CACHER_LEASE_DIR", dir)
        .env("CACHER_LEASE_WORK", work)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap()
}

/// The child's lines that say what it did (the test harness prints its own lines too).
const WORDS: [&str; 6] = ["hit", "waited", "computed", "held", "waiting", "won"];

fn lines_of(child: &mut Child) -> impl Iterator<Item = String> {
    BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .filter(|l| WORDS.iter().any(|w| l.starts_with(w)) || l.starts_with("timed out"))
}

fn four_processes_compute_once(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    drop(open(kind, dir.path()));
    let mut children: Vec<Child> = (0..PROCESSES)
        .map(|_| child("compute", kind, dir.path(), work.path()))
        .collect();
    let said: Vec<String> = children
        .iter_mut()
        .map(|c| lines_of(c).collect::<Vec<_>>().join(" "))
        .collect();
    for c in &mut children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(
        said.iter().filter(|s| *s == "computed").count(),
        1,
        "{said:?}"
    );
    assert_eq!(
        missed(work.path()),
        PROCESSES,
        "every process missed: {said:?}"
    );
    let store = open(kind, dir.path());
    assert_eq!(
        store.get(KEY).unwrap().as_deref(),
        Some(&b"computed once"[..])
    );
    // On Linux leases are byte ranges of `ranges-<2 hex>.lock` files, which stay; no key file may.
    assert_eq!(
        std::fs::read_dir(store.lease_dir().unwrap())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                !name.to_string_lossy().starts_with("ranges-")
            })
            .count(),
        0,
        "released leases leave no file"
    );
}

#[test]
fn four_processes_asking_one_key_of_a_dir_store_compute_it_once() {
    four_processes_compute_once("dir");
}

#[cfg(feature = "lmdb")]
#[test]
fn four_processes_asking_one_key_of_an_lmdb_store_compute_it_once() {
    four_processes_compute_once("lmdb");
}

#[test]
fn a_holder_killed_with_sigkill_is_taken_over_by_a_waiter() {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    drop(open("dir", dir.path()));
    let mut holder = child("hold", "dir", dir.path(), work.path());
    assert_eq!(lines_of(&mut holder).next().as_deref(), Some("held"));
    let mut waiter = child("take_over", "dir", dir.path(), work.path());
    let mut waiter_lines = lines_of(&mut waiter);
    assert_eq!(waiter_lines.next().as_deref(), Some("waiting"));
    // Its lease is on the file the waiter polls; the kill is what frees it.
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(waiter_lines.next().as_deref(), Some("won"));
    assert!(waiter.wait().unwrap().success());
    // The dead holder's file was reused and then removed by the waiter.
    let store = open("dir", dir.path());
    let leases = leases_of(&*store);
    assert_eq!(leases.clean_stale().unwrap(), 0);
}
