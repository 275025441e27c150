//! Many inputs at once (issue 10, item 1): one `get_many`, one call of the batch function with
//! only the missing inputs in input order, one `put_many`, results in input order. Proven by
//! counting the calls of the function and of the store.

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use cacher::memo::{BatchError, Status};
use cacher::store::{Blob, KeyIter};

use super::*;

/// A store that counts the calls the batch path promises to make once (the revisions tests
/// count single reads with it too).
#[derive(Default)]
pub(super) struct Counting {
    inner: MemoryStore,
    get_many: AtomicUsize,
    put_many: AtomicUsize,
    pub(super) single_reads: AtomicUsize,
    single_puts: AtomicUsize,
}

impl Store for Counting {
    fn read(&self, key: &[u8]) -> cacher::store::Result<Option<Blob>> {
        self.single_reads.fetch_add(1, SeqCst);
        self.inner.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> cacher::store::Result<()> {
        self.single_puts.fetch_add(1, SeqCst);
        self.inner.put(key, value)
    }
    fn delete(&self, key: &[u8]) -> cacher::store::Result<bool> {
        self.inner.delete(key)
    }
    fn keys(&self) -> cacher::store::Result<KeyIter<'_>> {
        self.inner.keys()
    }
    fn flush(&self) -> cacher::store::Result<()> {
        self.inner.flush()
    }
    fn get_many(&self, keys: &[&[u8]]) -> cacher::store::Result<Vec<Option<Vec<u8>>>> {
        self.get_many.fetch_add(1, SeqCst);
        self.inner.get_many(keys)
    }
    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> cacher::store::Result<()> {
        self.put_many.fetch_add(1, SeqCst);
        self.inner.put_many(entries)
    }
}

fn counting_cache() -> (Cache, Arc<Counting>) {
    let store = Arc::new(Counting::default());
    let cache = env().builder().store(store.clone()).build().unwrap();
    (cache, store)
}

fn strings(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn the_batch_function_runs_once_with_only_the_missing_inputs_in_input_order() {
    let (cache, store) = counting_cache();
    let seen: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());
    let lens = cache
        .memoize("lens")
        .wrap_batch(|texts: Vec<String>| {
            seen.lock().unwrap().push(texts.clone());
            texts.iter().map(|t| t.len()).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(
        lens.call_many(strings(&["bb", "dddd"])).unwrap(),
        vec![2, 4]
    );
    let out = lens
        .call_many(strings(&["a", "bb", "ccc", "dddd", "eeeee"]))
        .unwrap();
    assert_eq!(out, vec![1, 2, 3, 4, 5]);
    let seen = seen.lock().unwrap();
    assert_eq!(
        *seen,
        vec![strings(&["bb", "dddd"]), strings(&["a", "ccc", "eeeee"])]
    );
    assert_eq!(store.get_many.load(SeqCst), 2, "one get_many per batch");
    assert_eq!(store.put_many.load(SeqCst), 2, "one put_many per batch");
    assert_eq!(store.single_reads.load(SeqCst), 0);
    assert_eq!(store.single_puts.load(SeqCst), 0);
    let ns = &cache.stats().namespaces["lens"];
    assert_eq!((ns.hits, ns.misses, ns.stores), (2, 5, 5));
}

#[test]
fn duplicates_inside_one_batch_are_computed_once() {
    let cache = env().cache();
    let seen: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
    let double = cache
        .memoize("double")
        .wrap_batch(|xs: Vec<u32>| {
            seen.lock().unwrap().push(xs.clone());
            xs.iter().map(|x| x * 2).collect::<Vec<_>>()
        })
        .unwrap();
    let out = double.call_many([3, 1, 3, 2, 1, 3]).unwrap();
    assert_eq!(out, vec![6, 2, 6, 4, 2, 6]);
    assert_eq!(*seen.lock().unwrap(), vec![vec![3, 1, 2]]);
    assert_eq!(cache.stats().namespaces["double"].stores, 3);
}

#[test]
fn all_hits_do_not_call_the_batch_function() {
    let (cache, store) = counting_cache();
    let calls = AtomicU32::new(0);
    let inc = cache
        .memoize("inc")
        .wrap_batch(|xs: Vec<u32>| {
            calls.fetch_add(1, SeqCst);
            xs.iter().map(|x| x + 1).collect::<Vec<_>>()
        })
        .unwrap();
    inc.call_many([1, 2, 3]).unwrap();
    let with_status = inc
        .call_many_with_status([3, 1, 2], Call::default())
        .unwrap();
    assert_eq!(
        with_status,
        vec![(4, Status::Hit), (2, Status::Hit), (3, Status::Hit)]
    );
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(
        store.put_many.load(SeqCst),
        1,
        "nothing new, nothing written"
    );
}

#[test]
fn all_misses_call_the_batch_function_once_with_every_input() {
    let cache = env().cache();
    let seen: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
    let inc = cache
        .memoize("inc")
        .wrap_batch(|xs: Vec<u32>| {
            seen.lock().unwrap().push(xs.clone());
            xs.iter().map(|x| x + 1).collect::<Vec<_>>()
        })
        .unwrap();
    let inputs: Vec<u32> = (0..100).rev().collect();
    let out = inc.call_many(inputs.clone()).unwrap();
    assert_eq!(out, inputs.iter().map(|x| x + 1).collect::<Vec<_>>());
    assert_eq!(*seen.lock().unwrap(), vec![inputs]);
}

#[test]
fn a_batch_returning_the_wrong_count_is_an_error_naming_both_counts_and_stores_nothing() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let short = cache
        .memoize("short")
        .wrap_batch(|xs: Vec<u32>| {
            calls.fetch_add(1, SeqCst);
            xs.iter().skip(1).copied().collect::<Vec<_>>()
        })
        .unwrap();
    let err = short.call_many([1, 2, 3]).unwrap_err();
    match &err {
        BatchError::Cache(Error::BatchLength {
            namespace,
            expected,
            got,
        }) => assert_eq!((namespace.as_str(), *expected, *got), ("short", 3, 2)),
        other => panic!("expected a count error, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("2 results for 3 inputs"), "{msg}");
    assert_eq!(cache.stats().namespaces["short"].stores, 0);
    // Nothing was stored, so the next call runs the function again.
    assert!(short.call_many([1, 2, 3]).is_err());
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn an_error_of_the_batch_function_is_returned_and_nothing_is_stored() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let fails = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flaky = cache
        .memoize("flaky")
        .wrap_batch_result(|xs: Vec<u32>| {
            calls.fetch_add(1, SeqCst);
            if fails.load(SeqCst) {
                Err(std::io::Error::other("the API is down"))
            } else {
                Ok(xs.iter().map(|x| x * 10).collect::<Vec<_>>())
            }
        })
        .unwrap();
    match flaky.call_many([1, 2]) {
        Err(BatchError::Compute(e)) => assert_eq!(e.to_string(), "the API is down"),
        other => panic!("expected the function's error, got {other:?}"),
    }
    assert_eq!(cache.stats().namespaces["flaky"].stores, 0);
    fails.store(false, SeqCst);
    assert_eq!(flaky.call_many([1, 2]).unwrap(), vec![10, 20]);
    assert_eq!(flaky.call_many([2, 1]).unwrap(), vec![20, 10]);
    assert_eq!(calls.load(SeqCst), 2, "the failed batch was not cached");
}

#[test]
fn a_batch_function_and_a_single_function_of_one_namespace_share_results() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let one = cache
        .memoize("shout")
        .wrap(|s: String| {
            calls.fetch_add(1, SeqCst);
            s.to_uppercase()
        })
        .unwrap();
    let many = cache
        .memoize("shout")
        .wrap_batch(|xs: Vec<String>| {
            calls.fetch_add(1, SeqCst);
            xs.iter().map(|s| s.to_uppercase()).collect::<Vec<_>>()
        })
        .unwrap();
    assert_eq!(one.call("a".into()), "A");
    assert_eq!(
        many.call_many(strings(&["a", "b"])).unwrap(),
        strings(&["A", "B"])
    );
    assert_eq!(one.call("b".into()), "B");
    assert_eq!(calls.load(SeqCst), 2, "each side read the other's value");
}

#[test]
fn batch_modes_bypass_refresh_and_cache_only() {
    let cache = env().cache();
    let seen: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());
    let sq = cache
        .memoize("sq")
        .wrap_batch(|xs: Vec<u32>| {
            seen.lock().unwrap().push(xs.clone());
            xs.iter().map(|x| x * x).collect::<Vec<_>>()
        })
        .unwrap();
    let err = sq
        .call_many_with_status([1, 2], Call::cache_only())
        .unwrap_err();
    assert!(
        matches!(err, BatchError::Cache(ref e) if e.is_miss()),
        "{err:?}"
    );
    let bypass = sq.call_many_with_status([1, 2], Call::bypass()).unwrap();
    assert_eq!(bypass, vec![(1, Status::Miss), (4, Status::Miss)]);
    assert_eq!(
        cache.stats().namespaces["sq"].stores,
        0,
        "bypass stores nothing"
    );
    sq.call_many([1]).unwrap();
    let refreshed = sq.call_many_with_status([1, 2], Call::refresh()).unwrap();
    assert_eq!(refreshed, vec![(1, Status::Miss), (4, Status::Miss)]);
    let cached = sq
        .call_many_with_status([2, 1], Call::cache_only())
        .unwrap();
    assert_eq!(cached, vec![(4, Status::Hit), (1, Status::Hit)]);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![vec![1, 2], vec![1], vec![1, 2]],
        "cache-only never computes"
    );
}

#[test]
fn a_batch_over_a_map_returns_a_map_of_the_same_ids() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let embed = cache
        .memoize("embed")
        .wrap_batch(|xs: Vec<String>| {
            calls.fetch_add(1, SeqCst);
            xs.iter().map(|s| s.len() as u32).collect::<Vec<_>>()
        })
        .unwrap();
    let docs = BTreeMap::from([(7u64, "seven".to_string()), (3, "three!".to_string())]);
    let out: BTreeMap<u64, u32> = embed.call_map(docs.clone()).unwrap();
    assert_eq!(out, BTreeMap::from([(7, 5), (3, 6)]));
    let again: std::collections::HashMap<u64, u32> = embed.call_map(docs).unwrap();
    assert_eq!(again.len(), 2);
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn the_per_item_form_computes_each_missing_input_once_in_one_read_and_one_write() {
    let (cache, store) = counting_cache();
    let seen: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    let sq = cache
        .memoize("sq")
        .wrap(|x: u32| {
            seen.lock().unwrap().push(x);
            x * x
        })
        .unwrap();
    sq.call(2);
    let reads_before = store.single_reads.load(SeqCst);
    assert_eq!(sq.call_many([3, 2, 4, 3]).unwrap(), vec![9, 4, 16, 9]);
    assert_eq!(*seen.lock().unwrap(), vec![2, 3, 4]);
    assert_eq!(store.get_many.load(SeqCst), 1);
    assert_eq!(store.put_many.load(SeqCst), 1);
    assert_eq!(store.single_reads.load(SeqCst), reads_before);
    let lens: BTreeMap<&str, u32> = sq.call_map([("two", 2), ("five", 5)]).unwrap();
    assert_eq!(lens, BTreeMap::from([("two", 4), ("five", 25)]));
}

#[test]
fn the_per_item_form_on_threads_keeps_input_order_and_computes_each_once() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let threads_seen = Mutex::new(std::collections::HashSet::new());
    let slow = cache
        .memoize("slow")
        .wrap(|x: u64| {
            calls.fetch_add(1, SeqCst);
            threads_seen
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
            x * 3
        })
        .unwrap();
    slow.call(5);
    let inputs: Vec<u64> = (0..40).chain(0..10).collect();
    let out = slow.call_many_on_threads(inputs.clone(), 4).unwrap();
    assert_eq!(out, inputs.iter().map(|x| x * 3).collect::<Vec<_>>());
    assert_eq!(calls.load(SeqCst), 40, "5 was a hit, duplicates once");
    assert!(
        threads_seen.lock().unwrap().len() > 1,
        "ran on several threads"
    );
}

#[test]
fn per_item_errors_of_a_result_function_are_returned_and_not_stored() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let parse = cache
        .memoize("parse")
        .wrap_result(|s: String| {
            calls.fetch_add(1, SeqCst);
            s.parse::<u32>().map_err(|e| e.to_string())
        })
        .unwrap();
    let out = parse.call_many(strings(&["1", "x", "2"])).unwrap();
    assert_eq!(out[0], Ok(1));
    assert!(out[1].is_err());
    assert_eq!(out[2], Ok(2));
    parse.call_many(strings(&["1", "x", "2"])).unwrap();
    assert_eq!(calls.load(SeqCst), 4, "only the error is computed again");
}
