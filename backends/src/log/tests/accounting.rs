//! LogStore's accounting (`super::super::books`): totals from the index, the write order
//! from the log, reads kept in the access sidecar across reopens and compactions.

use std::path::Path;

use crate::accounting::{Accounting, EvictPlan, Order, Totals};
use crate::{Durability, LogStore, Store};

fn evict(store: &LogStore, plan: EvictPlan<'_>) -> Vec<Vec<u8>> {
    let mut gone = Vec::new();
    store.evict(&plan, &mut |k| gone.push(k.to_vec())).unwrap();
    gone
}

fn totals(store: &LogStore) -> (u64, u64) {
    let Totals { entries, bytes, .. } = store.totals().unwrap();
    (entries, bytes)
}

fn open(path: &Path) -> LogStore {
    let store = LogStore::options()
        .durability(Durability::None)
        .open(path)
        .unwrap();
    store.keep_order(Order::Lru, &mut |_| {}).unwrap();
    store.keep_order(Order::Lfu, &mut |_| {}).unwrap();
    store
}

#[test]
fn totals_are_the_live_values_and_need_no_count() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = LogStore::open(&path).unwrap();
    store.put(b"a", &[1; 10]).unwrap();
    store.put(b"b", &[1; 20]).unwrap();
    store.put(b"a", &[1; 5]).unwrap();
    store
        .put_many(&[(&b"c"[..], &[3; 3][..]), (b"d", &[4; 4][..])])
        .unwrap();
    store.put_reader(b"e", &mut &[5u8; 7][..]).unwrap();
    store.delete(b"d").unwrap();
    assert_eq!(totals(&store), (4, 35));
    assert!(store.totals().unwrap().built);
    let mut described = 0;
    assert_eq!(
        store
            .build(
                &mut |_, _| {
                    described += 1;
                    Default::default()
                },
                &mut |_| {}
            )
            .unwrap(),
        0
    );
    assert_eq!(
        described, 0,
        "the index counts every entry: nothing to scan"
    );
    drop(store);
    let store = LogStore::open(&path).unwrap();
    assert_eq!(totals(&store), (4, 35));
    store.compact().unwrap();
    assert_eq!(totals(&store), (4, 35));
    assert_eq!(store.entry(b"a").unwrap().map(|e| e.size), Some(5));
}

#[test]
fn eviction_takes_entries_in_lru_lfu_and_fifo_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store.log"));
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store
        .record_access(&[(&b"a"[..], 3), (&b"c"[..], 1)])
        .unwrap();
    // LRU: b (never read) first; FIFO: a (oldest write) whatever the reads.
    assert_eq!(
        evict(&store, EvictPlan::new(Some(2), None, Order::Lru)),
        vec![b"b".to_vec()]
    );
    store.put(b"b", b"x").unwrap();
    assert_eq!(
        evict(&store, EvictPlan::new(Some(2), None, Order::Fifo)),
        vec![b"a".to_vec()]
    );
    store.put(b"a", b"x").unwrap(); // a new entry: no reads
    store.put(b"c", b"y").unwrap(); // an overwrite keeps its 1 read
    store.record_access(&[(&b"b"[..], 2)]).unwrap();
    // LFU: a (no read), then c (1), before b (2).
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lfu)),
        vec![b"a".to_vec(), b"c".to_vec()]
    );
    assert_eq!(totals(&store), (1, 1));
    assert_eq!(store.keys().unwrap().count(), 1);
}

#[test]
fn an_entry_read_and_flushed_is_not_evicted_before_one_never_read_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = open(&path);
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store.record_access(&[(&b"a"[..], 1)]).unwrap();
    drop(store);
    // A new process: the read of "a" is history from the sidecar, so "b" (never read, and
    // now the oldest) goes first; without it "a" (the oldest write) would.
    let store = open(&path);
    assert_eq!(
        evict(&store, EvictPlan::new(Some(2), None, Order::Lru)),
        vec![b"b".to_vec()]
    );
    assert_eq!(store.entry(b"a").unwrap().map(|e| e.hits), Some(1));
    // LFU counts survive too: "c" (no read) goes before "a" (one).
    store.put(b"d", b"x").unwrap();
    store.record_access(&[(&b"d"[..], 2)]).unwrap();
    drop(store);
    let store = open(&path);
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lfu)),
        vec![b"c".to_vec(), b"a".to_vec()]
    );
}

#[test]
fn read_history_keeps_its_order_through_a_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = open(&path);
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store.record_access(&[(&b"a"[..], 1)]).unwrap();
    store.put(b"b", b"y").unwrap(); // rewritten after the read of a
    store.compact().unwrap();
    drop(store);
    // c (written first of what is left unread), then a (read), then b (rewritten last). A
    // read stamp left in the old file's offsets would rank a last.
    let store = open(&path);
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lru)),
        vec![b"c".to_vec(), b"a".to_vec()]
    );
}

#[test]
fn a_value_written_while_an_eviction_runs_is_never_taken() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("store.log"));
    let n = 2048u64 * 2 + 10;
    for i in 0..n {
        store.put(&i.to_le_bytes(), b"v").unwrap();
    }
    // Evict everything but the kept key; after the first chunk is deleted another value
    // lands. It lies past where the log ended when the pass began, so it is never taken.
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
    assert!(store.get(&[0; 8]).unwrap().is_some());
    // The kept key is still first in line for the next pass.
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Fifo)),
        vec![vec![0; 8]]
    );
}

#[test]
fn a_torn_or_foreign_access_sidecar_is_ignored_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let store = open(&path);
    for k in [b"a", b"b"] {
        store.put(k, b"x").unwrap();
    }
    store.record_access(&[(&b"a"[..], 1)]).unwrap();
    drop(store);
    let side = dir.path().join("store.log.access");
    let mut bytes = std::fs::read(&side).unwrap();
    // A torn batch after the whole one: declared 100 bytes, 3 there.
    bytes.extend_from_slice(&100u32.to_le_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3]);
    std::fs::write(&side, &bytes).unwrap();
    let store = open(&path);
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lru)),
        vec![b"b".to_vec()],
        "the whole batch before the torn one is history"
    );
    store.put(b"b", b"x").unwrap();
    store.record_access(&[(&b"b"[..], 1)]).unwrap();
    drop(store);
    // Appends went on after the cut tail: both reads read back.
    let store = open(&path);
    assert_eq!(store.entry(b"b").unwrap().map(|e| e.hits), Some(1));
    drop(store);
    // Garbage in place of the header: no history, no error.
    std::fs::write(&side, b"not a sidecar").unwrap();
    let store = open(&path);
    assert_eq!(store.entry(b"a").unwrap().map(|e| e.hits), Some(0));
}

#[test]
fn a_read_only_handle_offers_no_accounting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    let _writer = LogStore::open(&path).unwrap();
    let reader = LogStore::options().read_only(true).open(&path).unwrap();
    assert!(reader.accounting().is_none());
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/log")
        .join(name)
}

/// Writes `fixtures/log/acct-v1.log` and its access sidecar (version 1): a, b, c written in
/// that order, then two reads of a and one of c.
#[test]
#[ignore = "writes fixtures/log; run explicitly"]
fn generate_access_fixture() {
    let log = fixture("acct-v1.log");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(fixture("acct-v1.log.access"));
    let store = open(&log);
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store
        .record_access(&[(&b"a"[..], 2), (&b"c"[..], 1)])
        .unwrap();
    drop(store);
    let _ = std::fs::remove_file(fixture("acct-v1.log.lock"));
}

#[test]
fn fixture_access_sidecar_v1_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.log");
    std::fs::copy(fixture("acct-v1.log"), &path).unwrap();
    std::fs::copy(
        fixture("acct-v1.log.access"),
        dir.path().join("store.log.access"),
    )
    .unwrap();
    let store = open(&path);
    assert_eq!(store.entry(b"a").unwrap().map(|e| e.hits), Some(2));
    assert_eq!(store.entry(b"c").unwrap().map(|e| e.hits), Some(1));
    // LRU: b (never read), then a (read before c in the batch), then c.
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lru)),
        vec![b"b".to_vec(), b"a".to_vec()]
    );
}

#[test]
fn an_order_not_asked_for_is_built_from_the_reads_by_the_eviction() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::options()
        .durability(Durability::None)
        .open(dir.path().join("store.log"))
        .unwrap();
    for k in [b"a", b"b", b"c"] {
        store.put(k, b"x").unwrap();
    }
    store
        .record_access(&[(&b"a"[..], 2), (&b"b"[..], 1)])
        .unwrap();
    // No keep_order(Lfu): the read keys must still be ranked, c (unread) then b then a.
    assert_eq!(
        evict(&store, EvictPlan::new(Some(1), None, Order::Lfu)),
        vec![b"c".to_vec(), b"b".to_vec()]
    );
}
