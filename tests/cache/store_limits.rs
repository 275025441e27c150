//! Limits kept by the store's own accounting (issue 18): a limited cache on an `LmdbStore` or
//! `HybridStore` opens without scanning, every handle and process sees one total and one
//! order, reads are recorded in batches and survive a restart, cleanup walks the expiry index,
//! and a store written before accounting is counted once.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use cacher::store::accounting::Accounting;
use cacher::store::lmdb::{LmdbOptions, LmdbStore};
use cacher::store::{Blob, Durability, HybridStore, KeyIter, Result as StoreResult, Store};
use cacher::{Cache, Eviction, ManualClock};

use super::T0;

fn lmdb(dir: &Path) -> LmdbStore {
    LmdbStore::open_with(
        dir,
        &LmdbOptions::default().with_durability(Durability::None),
    )
    .unwrap()
}

/// A store (an `LmdbStore` unless said) that counts the calls a scan makes (`keys`,
/// `with_value`, `read`).
/// A cache limited to 2,000 entries on `inner`, built without looking at entries one by one.
fn limited_without_scanning<S: Store + 'static>(inner: S) -> Cache {
    let scans = Arc::new(AtomicU64::new(0));
    let store = Counting {
        inner,
        scans: scans.clone(),
    };
    let cache = Cache::builder()
        .store(store)
        .max_entries(2000)
        .build()
        .unwrap();
    assert_eq!(scans.load(SeqCst), 0, "build looked at entries one by one");
    cache
}

struct Counting<S = LmdbStore> {
    inner: S,
    scans: Arc<AtomicU64>,
}

impl<S: Store> Store for Counting<S> {
    fn read(&self, key: &[u8]) -> StoreResult<Option<Blob>> {
        self.scans.fetch_add(1, SeqCst);
        self.inner.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> StoreResult<()> {
        self.inner.put(key, value)
    }
    fn put_with_deadline(&self, k: &[u8], v: &[u8], d: Option<u64>) -> StoreResult<()> {
        self.inner.put_with_deadline(k, v, d)
    }
    fn delete(&self, key: &[u8]) -> StoreResult<bool> {
        self.inner.delete(key)
    }
    fn keys(&self) -> StoreResult<KeyIter<'_>> {
        self.scans.fetch_add(1, SeqCst);
        self.inner.keys()
    }
    fn with_value(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> StoreResult<bool> {
        self.scans.fetch_add(1, SeqCst);
        self.inner.with_value(key, f)
    }
    fn flush(&self) -> StoreResult<()> {
        self.inner.flush()
    }
    fn accounting(&self) -> Option<&dyn Accounting> {
        self.inner.accounting()
    }
}

#[test]
fn a_limited_cache_opens_from_the_stored_total_without_scanning() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Cache::builder().store(lmdb(dir.path())).build().unwrap();
    for i in 0..1000 {
        writer.put(format!("k{i}"), &i).unwrap();
    }
    let cache = limited_without_scanning(lmdb(dir.path()));
    assert_eq!(
        cache
            .store()
            .accounting()
            .unwrap()
            .totals()
            .unwrap()
            .entries,
        1000
    );
}

#[test]
fn two_handles_on_one_store_keep_one_limit() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Cache::builder()
            .store(lmdb(dir.path()))
            .max_entries(10)
            .build()
            .unwrap()
    };
    keep_one_limit_of_10(open(), open());
}

/// Two handles limited to 10 entries each write 10 keys: together they keep 10, the newest.
fn keep_one_limit_of_10(a: Cache, b: Cache) {
    for i in 0..10 {
        a.put(format!("a{i}"), &i).unwrap();
        b.put(format!("b{i}"), &i).unwrap();
    }
    // Each handle used to count only what it wrote: 20 entries.
    assert_eq!(a.store().len().unwrap(), 10);
    assert!(b.contains("a9").unwrap() && b.contains("b9").unwrap());
}

#[test]
fn an_entry_read_by_another_handle_after_its_flush_outlives_one_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Cache::builder()
            .store(HybridStore::open(dir.path()).unwrap())
            .max_entries(3)
            .build()
            .unwrap()
    };
    let writer = open();
    for k in ["a", "b", "c"] {
        writer.put(k, &k).unwrap();
    }
    let reader = open();
    assert_eq!(reader.get::<String>("a").unwrap().as_deref(), Some("a"));
    drop(reader); // its reads are flushed
    writer.put("d", &"d").unwrap();
    assert!(writer.contains("a").unwrap(), "the entry read was evicted");
    assert!(
        !writer.contains("b").unwrap(),
        "the oldest unread entry stayed"
    );
}

#[test]
fn read_history_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let open = || {
        Cache::builder()
            .store(lmdb(dir.path()))
            .clock(clock.clone())
            .max_entries(3)
            .eviction(Eviction::Lfu)
            .build()
            .unwrap()
    };
    let first = open();
    for k in ["a", "b", "c"] {
        clock.advance(Duration::from_millis(1));
        first.put(k, &k).unwrap();
    }
    for _ in 0..3 {
        first.get::<String>("a").unwrap();
    }
    first.get::<String>("c").unwrap();
    drop(first);
    let second = open();
    second.put("d", &"d").unwrap();
    // The tracker rebuilt by a scan started LFU counts at zero and evicted "a", the oldest.
    assert!(second.contains("a").unwrap() && second.contains("c").unwrap());
    assert!(!second.contains("b").unwrap());
}

#[test]
fn cleanup_walks_the_expiry_index_not_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(lmdb(dir.path()))
        .clock(clock.clone())
        .max_entries(1000)
        .build()
        .unwrap();
    for i in 0..100 {
        if i % 10 == 0 {
            cache
                .put_with_ttl(format!("k{i}"), &i, Duration::from_secs(1))
                .unwrap();
        } else {
            cache.put(format!("k{i}"), &i).unwrap();
        }
    }
    clock.advance(Duration::from_secs(2));
    let report = cache.cleanup().unwrap();
    assert_eq!((report.expired, report.scanned), (10, 10));
    assert_eq!(cache.store().len().unwrap(), 90);
}

#[test]
fn batch_writes_enter_the_expiry_index_too() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(lmdb(dir.path()))
        .clock(clock.clone())
        .ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    let square = cache.wrap("square", |x: u64| x * x);
    assert_eq!(square.call_many([1, 2, 3]).unwrap(), vec![1, 4, 9]);
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.cleanup().unwrap().expired, 3);
}

#[test]
fn a_store_written_before_accounting_is_counted_once_then_opens_in_o1() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let writer = Cache::builder()
        .store(lmdb(dir.path()))
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..50 {
        clock.advance(Duration::from_millis(1));
        if i < 5 {
            writer
                .put_with_ttl(format!("k{i}"), &i, Duration::from_secs(1))
                .unwrap();
        } else {
            writer.put(format!("k{i}"), &i).unwrap();
        }
    }
    drop(writer);
    // Forget the accounting, as a store written by a build before it has none.
    let store = lmdb(dir.path());
    let env = store.env().clone();
    let db = env.create_database("cacher-store-acct").unwrap();
    env.write(|w| db.clear(w)).unwrap();
    drop(store);
    let old = LmdbStore::from_env(env).unwrap();
    assert!(!old.totals().unwrap().built);
    let cache = Cache::builder()
        .store(old)
        .clock(clock.clone())
        .max_entries(49)
        .build()
        .unwrap();
    let totals = cache.store().accounting().unwrap().totals().unwrap();
    assert!(totals.built);
    assert_eq!(totals.entries, 49);
    // Migrated entries keep their age (k0 went first) and their deadlines.
    assert!(!cache.contains("k0").unwrap());
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.cleanup().unwrap().expired, 4);
    drop(cache);
    let scans = Arc::new(AtomicU64::new(0));
    let again = Counting {
        inner: lmdb(dir.path()),
        scans: scans.clone(),
    };
    Cache::builder()
        .store(again)
        .max_entries(49)
        .build()
        .unwrap();
    assert_eq!(scans.load(SeqCst), 0, "the second open scanned again");
}

/// Whether the store's environment holds the named database `cacher-store-acct` (read from
/// LMDB's unnamed database, which lists the named ones; opening it writes nothing).
fn has_acct_db(store: &LmdbStore) -> bool {
    let env = store.env();
    let main = env.create_unnamed_database().unwrap();
    env.read(|r| -> Result<bool, cacher::store::lmdb::TxnError> {
        Ok(main.get(r, b"cacher-store-acct")?.is_some())
    })
    .unwrap()
}

#[test]
fn a_store_only_unlimited_caches_use_keeps_no_accounting_until_a_limited_one_opens() {
    let dir = tempfile::tempdir().unwrap();
    let plain = Cache::builder().store(lmdb(dir.path())).build().unwrap();
    for i in 0..20 {
        plain.put(format!("k{i}"), &i).unwrap();
    }
    plain.remove("k0").unwrap();
    let probe = lmdb(dir.path());
    assert!(
        !has_acct_db(&probe),
        "a cache without limits created the accounting"
    );
    assert_eq!(probe.totals().unwrap().entries, 0);
    // The first limited cache turns it on and counts what is there, exactly.
    let limited = Cache::builder()
        .store(lmdb(dir.path()))
        .max_entries(1000)
        .build()
        .unwrap();
    let exact = |probe: &LmdbStore| {
        let live: Vec<(Vec<u8>, Vec<u8>)> = probe.scan().unwrap().map(|e| e.unwrap()).collect();
        let totals = probe.totals().unwrap();
        assert!(totals.built);
        assert_eq!(
            (totals.entries, totals.bytes),
            (
                live.len() as u64,
                live.iter().map(|(_, v)| v.len() as u64).sum()
            )
        );
        totals.entries
    };
    assert_eq!(exact(&probe), 19);
    // The unlimited cache opened while it was off keeps it exact from its next write.
    for i in 20..30 {
        plain.put(format!("k{i}"), &i).unwrap();
        limited.put(format!("l{i}"), &i).unwrap();
    }
    plain.remove("k1").unwrap();
    plain.put("k2", &"overwritten, longer than before").unwrap();
    assert_eq!(exact(&probe), 38);
}

/// Real processes: see `tests/cache/store_limits/processes.rs`.
mod processes;

/// The same books kept by a DirStore's sidecar.
mod dir;
