//! Four processes asking a memoized function for one missing key on a shared store compute it
//! once (the per-key lease under the store), the others wait and read it. Before leases each
//! process computed. Children are this test binary re-executed with `CACHER_FLIGHT_CHILD`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cacher::store::{DirStore, Store};
use cacher::Cache;

const PROCESSES: usize = 4;

fn store(kind: &str, dir: &Path) -> Box<dyn Store> {
    match kind {
        "dir" => Box::new(DirStore::open(dir).unwrap()),
        #[cfg(feature = "lmdb")]
        "lmdb" => Box::new(cacher::store::LmdbStore::open(dir).unwrap()),
        #[cfg(feature = "lmdb")]
        "hybrid" => Box::new(cacher::store::HybridStore::open(dir).unwrap()),
        other => panic!("unknown store kind {other}"),
    }
}

fn count(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .count()
}

/// Not a test of its own: a child process's body when `CACHER_FLIGHT_CHILD` is set.
#[test]
fn memo_child_entry_point() {
    let Ok(kind) = std::env::var("CACHER_FLIGHT_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("CACHER_FLIGHT_DIR").unwrap());
    let work = PathBuf::from(std::env::var("CACHER_FLIGHT_WORK").unwrap());
    let cache = Cache::builder().store(store(&kind, &dir)).build().unwrap();
    let memo = cache
        .memoize("fetch")
        .wrap(|x: u64| {
            let pid = std::process::id();
            std::fs::write(work.join(format!("computed-{pid}")), b"").unwrap();
            // Held until every process has missed, so without leases each would compute.
            let deadline = Instant::now() + Duration::from_secs(30);
            while count(&work, "missed-") < PROCESSES && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            x * 3
        })
        .unwrap();
    let key = memo.key_for(&14).unwrap();
    if !cache.contains(&key).unwrap() {
        std::fs::write(work.join(format!("missed-{}", std::process::id())), b"").unwrap();
    }
    let value = memo.call(14);
    let mut out = std::io::stdout().lock();
    writeln!(out, "value {value} waits {}", cache.stats().total.waits).unwrap();
}

fn four_processes_compute_once(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    drop(store(kind, dir.path()));
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "processes::memo_child_entry_point",
                    "--nocapture",
                ])
                .env("CACHER_FLIGHT_CHILD", kind)
                .env("CACHER_FLIGHT_DIR", dir.path())
                .env("CACHER_FLIGHT_WORK", work.path())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap()
        })
        .collect();
    let said: Vec<&str> = outputs
        .iter()
        .flat_map(|o| o.lines().filter(|l| l.starts_with("value ")))
        .collect();
    assert_eq!(said.len(), PROCESSES, "{outputs:?}");
    assert!(said.iter().all(|l| l.starts_with("value 42 ")), "{said:?}");
    assert_eq!(count(work.path(), "missed-"), PROCESSES);
    assert_eq!(count(work.path(), "computed-"), 1, "{said:?}");
    assert_eq!(
        said.iter().filter(|l| l.ends_with("waits 1")).count(),
        PROCESSES - 1,
        "{said:?}"
    );
}

#[test]
fn four_processes_on_a_dir_store_compute_one_key_once() {
    four_processes_compute_once("dir");
}

#[cfg(feature = "lmdb")]
#[test]
fn four_processes_on_an_lmdb_store_compute_one_key_once() {
    four_processes_compute_once("lmdb");
}

/// The default store behind `Cache::open`.
#[cfg(feature = "lmdb")]
#[test]
fn four_processes_on_a_hybrid_store_compute_one_key_once() {
    four_processes_compute_once("hybrid");
}

#[test]
fn a_waiter_computes_itself_once_the_lease_timeout_passes() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    // Another holder (as another process would be) keeps the key's lease throughout.
    let leases = cacher::store::lease::Leases::open(store.lease_dir().unwrap()).unwrap();
    let cache = Cache::builder()
        .store(store)
        .lease_timeout(Some(Duration::from_millis(20)))
        .build()
        .unwrap();
    let memo = cache.memoize("stuck").wrap(|x: u64| x + 1).unwrap();
    let key = memo.key_for(&1).unwrap();
    let held = leases.try_acquire(&key).unwrap().expect("free");
    assert_eq!(memo.call(1), 2, "computed without the lease, not hung");
    drop(held);
    assert_eq!(cache.stats().total.stores, 1);
}

#[test]
fn lock_files_left_by_dead_holders_are_cleaned_by_the_next_miss() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    let lease_dir = store.lease_dir().unwrap();
    std::fs::create_dir_all(&lease_dir).unwrap();
    // What holders killed before they could remove their files leave: keys never asked again.
    let dead: Vec<PathBuf> = (0..3)
        .map(|i| lease_dir.join(format!("{}.lock", format!("{i:x}").repeat(64))))
        .collect();
    for f in &dead {
        std::fs::write(f, b"").unwrap();
    }
    std::fs::write(lease_dir.join("notes.txt"), b"not a lease").unwrap();
    let cache = Cache::builder().store(store).build().unwrap();
    let memo = cache.memoize("f").wrap(|x: u64| x + 1).unwrap();
    assert_eq!(memo.call(1), 2);
    for f in &dead {
        assert!(!f.exists(), "{} was left", f.display());
    }
    assert!(lease_dir.join("notes.txt").exists(), "not ours, kept");
}
