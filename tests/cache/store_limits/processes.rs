//! Four real processes write different keys into one store with `max_bytes` (a
//! `HybridStore`, then a `DirStore` whose books are its `acct/` sidecar); a reader checks the
//! store's total all along. (That an eviction never takes a value written while
//! it ran is `a_value_written_while_an_eviction_runs_is_never_taken` in
//! `backends/src/lmdb/accounting/store_tests.rs` and `backends/src/dir/tests/accounting.rs`:
//! deterministic, where processes here could only race.) The test binary re-executes itself with
//! `CACHER_LIMITS_CHILD` set to run the child role (the `child_role_writes_its_keys` test,
//! which does nothing in a normal run).

use std::process::{Command, Stdio};
use std::time::Duration;

use cacher::store::accounting::Accounting;
use cacher::store::lmdb::{LmdbOptions, LmdbStore};
use cacher::store::{DirStore, Durability, HybridStore, Store};
use cacher::Cache;

const CHILD_ENV: &str = "CACHER_LIMITS_CHILD";
const DIR_ENV: &str = "CACHER_LIMITS_DIR";
/// Which store the children open: `hybrid` or `dir`.
const KIND_ENV: &str = "CACHER_LIMITS_STORE";
/// The store the `child_role_turns_accounting_on` role opens a limited cache on.
const ENABLE_ENV: &str = "CACHER_LIMITS_ENABLE_DIR";
const CHILDREN: usize = 4;
const PUTS: usize = 300;
const VALUE: usize = 1000;
const MAX_BYTES: u64 = 64 << 10;

/// The store of `kind` at `dir`, written without syncs.
fn store(kind: &str, dir: &str) -> Box<dyn Store> {
    match kind {
        "dir" => Box::new(
            DirStore::options()
                .durability(Durability::None)
                .open(dir)
                .unwrap(),
        ),
        _ => Box::new(
            HybridStore::options()
                .durability(Durability::None)
                .open(dir)
                .unwrap(),
        ),
    }
}

fn open(kind: &str, dir: &str) -> Cache {
    Cache::builder()
        .store(store(kind, dir))
        .format("raw")
        .max_bytes(MAX_BYTES)
        .build()
        .unwrap()
}

/// The child role: writes its own keys.
#[test]
fn child_role_writes_its_keys() {
    let Ok(child) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = std::env::var(DIR_ENV).unwrap();
    let cache = open(&std::env::var(KIND_ENV).unwrap(), &dir);
    for i in 0..PUTS {
        let key = format!("c{child}-{i}");
        let value = vec![child.as_bytes()[0]; VALUE];
        cache.put(&key, &serde_bytes::ByteBuf::from(value)).unwrap();
    }
    println!("DONE {child}");
}

#[test]
fn four_processes_keep_one_byte_limit_at_every_check() {
    four_processes_keep_one_byte_limit("hybrid");
}

/// Failed before the sidecar: each DirStore handle counted only what it wrote.
#[test]
fn four_processes_keep_one_byte_limit_on_a_dir_store_at_every_check() {
    four_processes_keep_one_byte_limit("dir");
}

fn four_processes_keep_one_byte_limit(kind: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    // Created once before the children race to open it.
    drop(open(kind, &path));
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..CHILDREN)
        .map(|c| {
            Command::new(&exe)
                .args([
                    "store_limits::processes::child_role_writes_its_keys",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, c.to_string())
                .env(DIR_ENV, &path)
                .env(KIND_ENV, kind)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let store = store(kind, &path);
    let acct = store.accounting().unwrap();
    // One batch per writer: a put commits before its eviction does.
    let entry = VALUE as u64 + 64;
    let bound = MAX_BYTES + CHILDREN as u64 * entry;
    let mut worst = 0;
    let mut checks = 0;
    let mut children = children;
    loop {
        let t = acct.totals().unwrap();
        worst = worst.max(t.bytes);
        checks += 1;
        if children.iter_mut().all(|c| c.try_wait().unwrap().is_some()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "a child failed");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("DONE"), "a child did not finish: {text}");
    }
    assert!(
        worst <= bound,
        "{worst} bytes at worst over {checks} checks, bound {bound}"
    );
    // The stored total is the real one.
    let real: u64 = store
        .scan()
        .unwrap()
        .map(|e| e.unwrap().1.len() as u64)
        .sum();
    let t = acct.totals().unwrap();
    assert_eq!((t.bytes, t.entries), (real, store.len().unwrap()));
    assert!(real <= MAX_BYTES);
    assert!(checks > 1);
}

fn lmdb(dir: &str) -> LmdbStore {
    LmdbStore::open_with(
        dir,
        &LmdbOptions::default().with_durability(Durability::None),
    )
    .unwrap()
}

/// The child role of the next test: the first limited cache on the store turns accounting on.
#[test]
fn child_role_turns_accounting_on() {
    let Ok(dir) = std::env::var(ENABLE_ENV) else {
        return;
    };
    let cache = Cache::builder()
        .store(lmdb(&dir))
        .max_entries(1000)
        .build()
        .unwrap();
    cache.put("from-the-child", &1u32).unwrap();
    println!("ON");
}

#[test]
fn a_process_that_opened_while_accounting_was_off_counts_its_writes_once_another_turns_it_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap().to_string();
    // This process's handle opens before `cacher-store-acct` exists, so its LMDB environment
    // has never opened that database when the child creates it.
    let late = lmdb(&path);
    for i in 0..10 {
        late.put(format!("before{i}").as_bytes(), b"12345").unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "store_limits::processes::child_role_turns_accounting_on",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENABLE_ENV, &path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ON"),
        "the child failed: {text}"
    );
    late.put(b"after", b"1234567").unwrap();
    late.delete(b"before0").unwrap();
    late.put(b"before1", b"x").unwrap();
    let live: Vec<(Vec<u8>, Vec<u8>)> = late.scan().unwrap().map(|e| e.unwrap()).collect();
    let t = late.totals().unwrap();
    assert!(t.built);
    assert_eq!(
        (t.entries, t.bytes),
        (
            live.len() as u64,
            live.iter().map(|(_, v)| v.len() as u64).sum()
        )
    );
}
