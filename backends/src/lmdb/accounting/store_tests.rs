//! LmdbStore's accounting through the public trait: totals, orders, expiry, migration, only
//! the orders in use, and the golden fixtures of accounting versions 1 and 2
//! (`fixtures/lmdb/acct-v1-store`, `acct-v2-store`).

use std::path::Path;

use super::{ACCT_DB, STATE_KEY};
use crate::accounting::{Accounting, EvictPlan, Order, Totals};
use crate::lmdb::{LmdbOptions, LmdbStore};
use crate::{Durability, Error, Store};

fn options() -> LmdbOptions {
    LmdbOptions::default()
        .with_initial_map_size(1 << 20)
        .with_durability(Durability::None)
}

fn open(dir: &Path) -> LmdbStore {
    LmdbStore::open_with(dir, &options()).unwrap()
}

/// A store with accounting turned on, as a limited cache turns it on.
fn open_counting(dir: &Path) -> LmdbStore {
    let store = open(dir);
    store.enable().unwrap();
    store
}

/// How many keys `cacher-store-acct` holds (0 when it does not exist).
fn acct_keys(store: &LmdbStore) -> u64 {
    let env = store.env();
    match env.existing_database(ACCT_DB).unwrap() {
        None => 0,
        Some(db) => env.read(|r| db.len(r)).unwrap(),
    }
}

/// The keys of `cacher-store-acct` that start with `tag`, in order.
fn acct_keys_tagged(store: &LmdbStore, tag: u8) -> Vec<Vec<u8>> {
    let env = store.env();
    let Some(db) = env.existing_database(ACCT_DB).unwrap() else {
        return Vec::new();
    };
    env.read(|r| {
        db.prefix_iter(r, &[tag])?
            .map(|item| item.map(|(k, _)| k.to_vec()))
            .collect::<heed::Result<Vec<_>>>()
    })
    .unwrap()
}

/// The accounting state's version (bytes 8..12 of the state).
fn state_version(store: &LmdbStore) -> u32 {
    let env = store.env();
    let db = env.existing_database(ACCT_DB).unwrap().unwrap();
    env.read(|r| Ok::<_, crate::lmdb::TxnError>(db.get(r, STATE_KEY)?.unwrap().to_vec()))
        .map(|raw| u32::from_le_bytes(raw[8..12].try_into().unwrap()))
        .unwrap()
}

fn totals(entries: u64, bytes: u64) -> Totals {
    Totals {
        entries,
        bytes,
        built: true,
    }
}

fn evict(store: &LmdbStore, plan: EvictPlan<'_>) -> Vec<Vec<u8>> {
    let mut gone = Vec::new();
    store.evict(&plan, &mut |k| gone.push(k.to_vec())).unwrap();
    gone
}

fn fixture_dir(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/lmdb")
        .join(name)
}

fn open_fixture_copy(name: &str) -> (tempfile::TempDir, LmdbStore) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir(name).join("data.mdb"),
        dir.path().join("data.mdb"),
    )
    .unwrap_or_else(|e| panic!("fixture {name} is missing: {e}"));
    let store = open(dir.path());
    (dir, store)
}

#[test]
fn totals_follow_puts_overwrites_deletes_batches_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    assert_eq!(store.totals().unwrap(), totals(0, 0));
    store.put(b"a", &[1; 10]).unwrap();
    store.put(b"b", &[1; 20]).unwrap();
    store.put(b"a", &[1; 5]).unwrap();
    assert_eq!(store.totals().unwrap(), totals(2, 25));
    let long = vec![b'L'; 4096];
    store
        .put_many(&[(&long[..], &[2; 7][..]), (b"c", &[3; 3][..])])
        .unwrap();
    assert_eq!(store.totals().unwrap(), totals(4, 35));
    // A stream over 1 MiB takes the spooled path.
    let big = vec![9u8; (1 << 20) + 10];
    store.put_reader(b"big", &mut &big[..]).unwrap();
    assert_eq!(store.totals().unwrap(), totals(5, 35 + big.len() as u64));
    assert!(store.delete(&long).unwrap());
    assert!(!store.delete(b"missing").unwrap());
    store.delete(b"big").unwrap();
    assert_eq!(store.totals().unwrap(), totals(3, 28));
    assert_eq!(store.entry(b"a").unwrap().map(|e| e.size), Some(5));
}

#[test]
fn eviction_takes_entries_in_lru_lfu_and_fifo_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store
        .record_access(&[(&b"a"[..], 3), (&b"c"[..], 1)])
        .unwrap();
    // An eviction asks for orders the store keeps (setup: evict refuses others).
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    store.keep_order(Order::Lfu, &mut |_| {}).unwrap();
    // LRU: b (never read) first; FIFO: a (oldest write) whatever the reads.
    let lru = EvictPlan::new(Some(2), None, Order::Lru);
    assert_eq!(evict(&store, lru), vec![b"b".to_vec()]);
    store.put(b"b", b"x").unwrap();
    let fifo = EvictPlan::new(Some(2), None, Order::Fifo);
    assert_eq!(evict(&store, fifo), vec![b"a".to_vec()]);
    store.put(b"a", b"x").unwrap(); // a new entry: no reads
    store.put(b"c", b"y").unwrap(); // an overwrite keeps its 1 read
    store.record_access(&[(&b"b"[..], 2)]).unwrap();
    // LFU: a (no read), then c (1), before b (2).
    let lfu = EvictPlan::new(Some(1), None, Order::Lfu);
    assert_eq!(evict(&store, lfu), vec![b"a".to_vec(), b"c".to_vec()]);
    assert_eq!(store.totals().unwrap(), totals(1, 1));
    assert_eq!(store.keys().unwrap().count(), 1);
}

#[test]
fn the_kept_key_is_never_evicted_and_byte_limits_count_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    store.put(b"new", &[0; 70]).unwrap();
    store.put(b"b", &[0; 30]).unwrap();
    store.put(b"c", &[0; 10]).unwrap();
    // "new" is the LFU/LRU-first, but kept: b and c... only as many as needed go.
    let plan = EvictPlan::new(None, Some(80), Order::Lru).keep(b"new");
    assert_eq!(evict(&store, plan), vec![b"b".to_vec()]);
    assert_eq!(store.totals().unwrap(), totals(2, 80));
    assert!(store.get(b"new").unwrap().is_some());
}

#[test]
fn a_value_written_while_an_eviction_runs_is_never_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    let n = super::EVICT_CHUNK as u64 * 2 + 10;
    for i in 0..n {
        store.put(&i.to_le_bytes(), b"v").unwrap();
    }
    // Evict everything but the kept key; after the first chunk commits, another writer's
    // value lands (as a process would between two chunks). Without the compare of write
    // stamps it would be taken by the next chunk.
    let plan = EvictPlan::new(Some(1), None, Order::Fifo).keep(&[0; 8]);
    let mut wrote = false;
    let gone = store
        .evict(&plan, &mut |_| {
            if !wrote {
                store.put(b"fresh", b"written as the eviction ran").unwrap();
                wrote = true;
            }
        })
        .unwrap();
    assert_eq!(gone, n - 1);
    assert!(store.get(b"fresh").unwrap().is_some());
    assert_eq!(store.totals().unwrap(), totals(2, 1 + 27));
}

#[test]
fn expired_entries_are_removed_by_their_deadline_and_rewritten_ones_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    store.put_with_deadline(b"old", b"1", Some(100)).unwrap();
    store.put_with_deadline(b"later", b"2", Some(500)).unwrap();
    store
        .put_with_deadline(b"renewed", b"3", Some(100))
        .unwrap();
    store.put(b"forever", b"4").unwrap();
    store
        .put_with_deadline(b"renewed", b"3", Some(900))
        .unwrap();
    let mut gone = Vec::new();
    let n = store
        .remove_expired(200, &mut |k| gone.push(k.to_vec()))
        .unwrap();
    assert_eq!((n, gone), (1, vec![b"old".to_vec()]));
    assert_eq!(store.totals().unwrap(), totals(3, 3));
    assert_eq!(store.get(b"old").unwrap(), None);
    assert_eq!(
        store.entry(b"renewed").unwrap().unwrap().expires_ms,
        Some(900)
    );
}

/// Clears `cacher-store-acct` as if the store had been written before accounting existed, and
/// opens it again (the environment stays open in this process, so the open re-reads it).
fn forget_accounting(store: LmdbStore) -> LmdbStore {
    let env = store.env().clone();
    let db = env.create_database(ACCT_DB).unwrap();
    env.write(|w| db.clear(w)).unwrap();
    drop(store);
    LmdbStore::from_env(env).unwrap()
}

#[test]
fn a_store_written_before_accounting_is_counted_once_then_kept_by_writes() {
    // `v2-store` was written before accounting existed: it has no `cacher-store-acct`.
    let (_dir, store) = open_fixture_copy("v2-store");
    let before = store.totals().unwrap();
    assert!(!before.built);
    // A write after accounting is on and before the count is counted; the walk does not
    // count it twice.
    store.enable().unwrap();
    store.put(b"during", b"12345").unwrap();
    let mut looked = Vec::new();
    let added = store
        .build(&mut |_, _| Default::default(), &mut |n| looked.push(n))
        .unwrap();
    assert_eq!(added, 4);
    let bytes = 13 + 5 + 300 + 23 + 5;
    assert_eq!(store.totals().unwrap(), totals(5, bytes));
    assert_eq!(
        store
            .build(&mut |_, _| Default::default(), &mut |_| {})
            .unwrap(),
        0
    );
    // Migrated entries are older than anything written after.
    let plan = EvictPlan::new(Some(4), None, Order::Lru);
    assert_ne!(evict(&store, plan), vec![b"during".to_vec()]);
}

#[test]
fn a_migration_in_chunks_keeps_the_ages_it_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    let n = super::BUILD_CHUNK as u64 + 5;
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..n)
        .map(|i| (i.to_le_bytes().to_vec(), (n - i).to_le_bytes().to_vec()))
        .collect();
    let refs: Vec<(&[u8], &[u8])> = entries.iter().map(|(k, v)| (&k[..], &v[..])).collect();
    store.put_many(&refs).unwrap();
    let store = forget_accounting(store);
    assert!(!store.totals().unwrap().built);
    let mut reports = 0;
    // The value holds the "age": the entry with the largest value was written first.
    let added = store
        .build(
            &mut |_, v| {
                let created = 1_000_000 - u64::from_le_bytes(v.try_into().unwrap());
                crate::accounting::Described::new(Some(created), Some(created + 10))
            },
            &mut |_| reports += 1,
        )
        .unwrap();
    assert_eq!((added, reports), (n, 2));
    assert_eq!(store.totals().unwrap(), totals(n, 8 * n));
    let first = evict(&store, EvictPlan::new(Some(n - 1), None, Order::Lru));
    assert_eq!(first, vec![0u64.to_le_bytes().to_vec()]);
    let expired = store
        .remove_expired(1_000_000 - n + 11, &mut |_| {})
        .unwrap();
    // Entry 0 was evicted above; entry 1's deadline (given by describe) is due.
    assert_eq!(expired, 1, "the deadline given by describe is indexed");
}

#[test]
fn a_newer_accounting_state_is_refused_as_upgrade_required() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    let env = store.env().clone();
    let db = env.create_database(ACCT_DB).unwrap();
    let mut raw = env
        .read(|r| Ok::<_, crate::lmdb::TxnError>(db.get(r, STATE_KEY)?.unwrap().to_vec()))
        .unwrap();
    // (Version 4 since this build writes 3; it was 3 of 2 before accounting version 3.)
    raw[8] = 4;
    env.write(|w| db.put(w, STATE_KEY, &raw)).unwrap();
    drop(store);
    match LmdbStore::from_env(env) {
        Err(Error::UpgradeRequired {
            found: 4,
            supported: 3,
            ..
        }) => {}
        other => panic!("expected UpgradeRequired, got {other:?}"),
    }
}

/// What `acct-v1-store` holds: the keys of `v2-store`'s contents' kind, written in this
/// order, then one read of "a", and "t" with deadline 4242.
fn acct_v1_contents(store: &LmdbStore) {
    store.put(b"a", b"first").unwrap();
    store.put(b"b", b"second!").unwrap();
    store.put(&[b'L'; 600], b"a long key").unwrap();
    store
        .put_with_deadline(b"t", b"expires", Some(4242))
        .unwrap();
    store.record_access(&[(&b"a"[..], 1)]).unwrap();
}

/// Writes `fixtures/lmdb/acct-v{ACCT_VERSION}-store` if missing (by hand: `cargo test -p
/// cacher-store --features testkit,lmdb generate_accounting_fixture -- --ignored`); never
/// rewritten. `acct-v1-store` was written so by the build of accounting version 1 (keeping
/// every order); `acct-v2-store` by version 2, keeping the LRU order only; `acct-v3-store`
/// by version 3, keeping LRU and the undated index (built by one `undated` call).
#[test]
#[ignore = "writes the committed fixture; run by hand"]
fn generate_accounting_fixture() {
    let out = fixture_dir(&format!("acct-v{}-store", super::ACCT_VERSION));
    if out.join("data.mdb").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    acct_v1_contents(&store);
    if super::ACCT_VERSION >= 3 {
        store.undated(None, 100).unwrap();
    }
    std::fs::create_dir_all(&out).unwrap();
    store
        .env()
        .heed()
        .copy_to_path(out.join("data.mdb"), heed::CompactionOption::Enabled)
        .unwrap();
}

#[test]
fn accounting_v1_fixture_is_read() {
    let (_dir, store) = open_fixture_copy("acct-v1-store");
    assert_acct_fixture(&store);
}

/// What both accounting fixtures hold (`acct_v1_contents`), read through the trait.
fn assert_acct_fixture(store: &LmdbStore) {
    assert_eq!(store.totals().unwrap(), totals(4, 5 + 7 + 10 + 7));
    let a = store.entry(b"a").unwrap().unwrap();
    assert_eq!((a.size, a.written, a.accessed, a.hits), (5, 1, 5, 1));
    let t = store.entry(b"t").unwrap().unwrap();
    assert_eq!((t.written, t.expires_ms), (4, Some(4242)));
    assert_eq!(store.entry(&[b'L'; 600]).unwrap().unwrap().size, 10);
    // The orders read back: LRU b first (a was read), FIFO a first, expiry finds t.
    let lru = EvictPlan::new(Some(3), None, Order::Lru);
    assert_eq!(evict(store, lru), vec![b"b".to_vec()]);
    let fifo = EvictPlan::new(Some(2), None, Order::Fifo);
    assert_eq!(evict(store, fifo), vec![b"a".to_vec()]);
    let mut gone = Vec::new();
    store
        .remove_expired(4242, &mut |k| gone.push(k.to_vec()))
        .unwrap();
    assert_eq!(gone, vec![b"t".to_vec()]);
    // A write continues the stamps after the fixture's.
    store.put(b"new", b"x").unwrap();
    assert_eq!(store.entry(b"new").unwrap().unwrap().written, 6);
}

#[test]
fn accounting_v2_fixture_is_read_and_keeps_only_lru_until_fifo_is_asked_for() {
    let (_dir, store) = open_fixture_copy("acct-v2-store");
    assert_eq!(state_version(&store), 2);
    assert_eq!(acct_keys_tagged(&store, b'l').len(), 4);
    assert!(acct_keys_tagged(&store, b'w').is_empty());
    assert!(acct_keys_tagged(&store, b'f').is_empty());
    // Asked for (as a FIFO cache's open does), the FIFO order is built from the records for
    // the FIFO eviction of assert_acct_fixture.
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    assert_acct_fixture(&store);
    assert_eq!(acct_keys_tagged(&store, b'w').len(), 2, "FIFO: b and new");
    assert!(acct_keys_tagged(&store, b'f').is_empty());
}

#[test]
fn a_version_1_store_is_rewritten_as_version_2_keeping_every_order() {
    let (_dir, store) = open_fixture_copy("acct-v1-store");
    assert_eq!(state_version(&store), 1);
    store.put(b"new", b"x").unwrap();
    assert_eq!(state_version(&store), 2);
    for tag in [b'l', b'w', b'f'] {
        assert_eq!(
            acct_keys_tagged(&store, tag).len(),
            5,
            "order {}",
            tag as char
        );
    }
}

#[test]
fn a_store_keeps_only_the_order_index_of_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store.put(b"a", b"yy").unwrap();
    store.record_access(&[(&b"b"[..], 2)]).unwrap();
    store.delete(b"c").unwrap();
    // enable() keeps LRU: one key per entry there, none in FIFO or LFU.
    assert_eq!(acct_keys_tagged(&store, b'l').len(), 2);
    assert!(acct_keys_tagged(&store, b'w').is_empty());
    assert!(acct_keys_tagged(&store, b'f').is_empty());
    let fifo_only = tempfile::tempdir().unwrap();
    let store = open(fifo_only.path());
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    store.put(b"a", b"x").unwrap();
    store.record_access(&[(&b"a"[..], 1)]).unwrap();
    assert_eq!(acct_keys_tagged(&store, b'w').len(), 1);
    assert!(acct_keys_tagged(&store, b'l').is_empty());
    assert!(acct_keys_tagged(&store, b'f').is_empty());
}

#[test]
fn the_count_of_existing_entries_fills_only_the_orders_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    // A FIFO cache's open: keep FIFO (turning accounting on), then count what is there.
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    store
        .build(&mut |_, _| Default::default(), &mut |_| {})
        .unwrap();
    assert_eq!(store.totals().unwrap(), totals(3, 3));
    assert_eq!(acct_keys_tagged(&store, b'w').len(), 3);
    assert!(
        acct_keys_tagged(&store, b'l').is_empty(),
        "the count kept LRU too"
    );
}

/// The LFU index keys the records of `store` call for (hits and accessed of each).
fn lfu_keys_from_records(store: &LmdbStore) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = acct_keys_tagged(store, b'r')
        .into_iter()
        .map(|k| {
            let id = &k[1..];
            let e = store.entry(&id[1..]).unwrap().unwrap();
            let mut key = vec![b'f'];
            key.extend_from_slice(&super::be32(e.hits));
            key.extend_from_slice(&super::be64(e.accessed));
            key.extend_from_slice(id);
            key
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn an_order_built_while_another_handle_writes_matches_the_records_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    for i in 0..20u8 {
        store.put(&[b'k', i], &[i; 3]).unwrap();
    }
    store.record_access(&[(&b"k\x05"[..], 4)]).unwrap();
    // Another handle (its own view, as another process has) writes between the chunks of
    // the build: new keys before and after the walk's place, overwrites, deletes and reads.
    let other = LmdbStore::from_env(store.env().clone()).unwrap();
    let mut step = 0u8;
    let mut between = |_indexed: u64| {
        step += 1;
        other.put(&[b'k', 100 + step], b"new").unwrap();
        other
            .put(&[b'a', step], b"before the walk's place")
            .unwrap();
        other.put(&[b'k', step], b"overwritten").unwrap();
        other.delete(&[b'k', 19 - step]).unwrap();
        other
            .record_access(&[(&[b'k', step * 2][..], 1), (&[b'a', step][..], 2)])
            .unwrap();
    };
    store
        .acct
        .keep_order(store.env(), Order::Lfu, 4, &mut between)
        .unwrap();
    assert!(
        step >= 4,
        "the build ran in chunks with writes between them"
    );
    // Kept from now on by every write, through either handle.
    other.put(b"after", b"1").unwrap();
    store.record_access(&[(&b"after"[..], 3)]).unwrap();
    let want = lfu_keys_from_records(&store);
    assert_eq!(acct_keys_tagged(&store, b'f'), want);
    assert_eq!(want.len() as u64, store.totals().unwrap().entries);
    // LRU is still kept, FIFO was never asked for.
    assert_eq!(acct_keys_tagged(&store, b'l').len(), want.len());
    assert!(acct_keys_tagged(&store, b'w').is_empty());
}

#[test]
fn a_store_no_limited_cache_uses_writes_nothing_into_the_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put(b"a", &[1; 10]).unwrap();
    store.put_with_deadline(b"t", b"x", Some(5)).unwrap();
    store.put_many(&[(b"b", b"y"), (b"c", b"z")]).unwrap();
    store.put_reader(b"s", &mut &b"streamed"[..]).unwrap();
    store.delete(b"b").unwrap();
    store.record_access(&[(&b"a"[..], 2)]).unwrap();
    assert_eq!(
        acct_keys(&store),
        0,
        "no record, index or state was written"
    );
    assert_eq!(store.totals().unwrap(), Totals::default());
    assert_eq!(store.entry(b"a").unwrap(), None);
    let plan = EvictPlan::new(Some(0), None, Order::Lru);
    assert!(evict(&store, plan).is_empty());
    assert_eq!(store.remove_expired(u64::MAX, &mut |_| {}).unwrap(), 0);
    assert_eq!(store.keys().unwrap().count(), 4);
    // Reopened, still nothing: opening does not turn it on either.
    let env = store.env().clone();
    drop(store);
    let store = LmdbStore::from_env(env).unwrap();
    store.put(b"d", b"w").unwrap();
    assert_eq!(acct_keys(&store), 0);
}

#[test]
fn turning_accounting_on_over_existing_data_counts_it_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.put(b"a", &[1; 10]).unwrap();
    store.put(b"b", &[1; 20]).unwrap();
    store.put_with_deadline(b"t", &[1; 3], Some(100)).unwrap();
    store.delete(b"b").unwrap();
    store.put(&[b'L'; 600], &[1; 7]).unwrap();
    store.enable().unwrap();
    assert!(!store.totals().unwrap().built, "on, but not counted yet");
    let added = store
        .build(
            &mut |k, _| crate::accounting::Described::new(None, (k == b"t").then_some(100)),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(added, 3);
    assert_eq!(store.totals().unwrap(), totals(3, 10 + 3 + 7));
    // From here every write is kept.
    store.put(b"a", &[1; 4]).unwrap();
    store.delete(&[b'L'; 600]).unwrap();
    assert_eq!(store.totals().unwrap(), totals(2, 4 + 3));
    assert_eq!(store.remove_expired(100, &mut |_| {}).unwrap(), 1);
    assert_eq!(store.totals().unwrap(), totals(1, 4));
}

#[test]
fn a_handle_opened_while_accounting_was_off_keeps_the_totals_exact_once_another_turns_it_on() {
    // A store written before accounting (no `cacher-store-acct` at all): the late handle has
    // not opened the database, which the enabling handle creates.
    let (dir, early) = open_fixture_copy("v2-store");
    assert_eq!(acct_keys(&early), 0);
    let before: Vec<(Vec<u8>, u64)> = early
        .scan()
        .unwrap()
        .map(|e| e.unwrap())
        .map(|(k, v)| (k, v.len() as u64))
        .collect();
    // A second handle with its own view of the accounting database (a clone would share it;
    // a handle of another process has its own, as this one has).
    let late = LmdbStore::from_env(early.env().clone()).unwrap();
    late.put(b"off", b"123").unwrap();
    early.enable().unwrap();
    // Interleaved: writes and deletes through the handle that looked while it was off, before
    // and during the count.
    late.put(b"on1", b"12345").unwrap();
    late.delete(b"off").unwrap();
    late.put(&before[0].0, b"overwritten").unwrap();
    early
        .build(&mut |_, _| Default::default(), &mut |_| {})
        .unwrap();
    late.put(b"on2", b"1234567").unwrap();
    late.delete(b"on1").unwrap();
    early.put(b"on3", b"1").unwrap();
    let live: Vec<(Vec<u8>, Vec<u8>)> = late.scan().unwrap().map(|e| e.unwrap()).collect();
    let bytes = live.iter().map(|(_, v)| v.len() as u64).sum();
    for store in [&early, &late] {
        assert_eq!(store.totals().unwrap(), totals(live.len() as u64, bytes));
    }
    drop((early, late, dir));
}

#[test]
fn an_eviction_in_an_order_the_store_does_not_keep_is_refused_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    // enable() kept LRU only: a FIFO eviction must not build the order on a write's path.
    let mut gone = Vec::new();
    let refused = store
        .evict(&EvictPlan::new(Some(1), None, Order::Fifo), &mut |k| {
            gone.push(k.to_vec())
        })
        .unwrap_err();
    assert!(
        matches!(refused, Error::Unsupported { op: "evict", .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("keep_order"), "{refused}");
    assert!(gone.is_empty());
    assert_eq!(store.totals().unwrap(), totals(3, 3));
    assert!(acct_keys_tagged(&store, b'w').is_empty(), "built anyway");
    // Once kept, the same plan evicts the two oldest writes.
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    store
        .evict(&EvictPlan::new(Some(1), None, Order::Fifo), &mut |k| {
            gone.push(k.to_vec())
        })
        .unwrap();
    assert_eq!(gone, vec![b"a".to_vec(), b"b".to_vec()]);
}

#[test]
fn accounting_v3_fixture_is_read_with_its_undated_index() {
    let (_dir, store) = open_fixture_copy("acct-v3-store");
    assert_eq!(state_version(&store), 3);
    // a, b and the long key were written with no deadline; t with one.
    assert_eq!(acct_keys_tagged(&store, b'u').len(), 3);
    let listed: Vec<Vec<u8>> = store
        .undated(None, 10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(listed, vec![b"a".to_vec(), b"b".to_vec(), vec![b'L'; 600]]);
    store.keep_order(Order::Fifo, &mut |_| {}).unwrap();
    assert_acct_fixture(&store);
}

#[test]
fn the_undated_index_is_built_once_then_kept_and_a_rewritten_value_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_counting(dir.path());
    store.put(b"a", b"1").unwrap();
    store.put_with_deadline(b"d", b"2", Some(10)).unwrap();
    store.put(b"b", b"3").unwrap();
    assert!(
        acct_keys_tagged(&store, b'u').is_empty(),
        "not kept before asked"
    );
    assert_eq!(state_version(&store), 2);
    let listed = store.undated(None, 10).unwrap();
    assert_eq!(
        listed.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    assert_eq!(state_version(&store), 3);
    // Kept by writes from now on: a dated rewrite leaves it, an undated write joins it.
    store.put_with_deadline(b"a", b"4", Some(20)).unwrap();
    store.put(b"c", b"5").unwrap();
    let after_b = listed[1].1;
    assert_eq!(
        store
            .undated(None, 10)
            .unwrap()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>(),
        vec![b"b".to_vec(), b"c".to_vec()]
    );
    assert_eq!(store.undated(Some(after_b), 10).unwrap().len(), 1);
    // "a" as listed was rewritten (with a deadline): not removed by the stale listing.
    assert!(!store.remove_if_written(b"a", listed[0].1).unwrap());
    assert!(store.get(b"a").unwrap().is_some());
    store.put(b"b", b"6").unwrap(); // rewritten undated: a new stamp
    assert!(!store.remove_if_written(b"b", listed[1].1).unwrap());
    let b_now = store.entry(b"b").unwrap().unwrap().written;
    assert!(store.remove_if_written(b"b", b_now).unwrap());
    assert_eq!(store.totals().unwrap(), totals(3, 3));
}
