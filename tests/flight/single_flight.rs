//! Concurrent callers of one missing key compute it once; a leader that errors or panics
//! releases its waiters, who compute themselves; a recursive call of the same key does not
//! deadlock. Before single-flight, 8 threads computed 8 times.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cacher::store::MemoryStore;
use cacher::Cache;

const THREADS: u64 = 8;

fn cache() -> Cache {
    Cache::builder().store(MemoryStore::new()).build().unwrap()
}

/// Holds the computation until every thread has missed, so without single-flight each of them
/// would compute. Bounded, so a broken build fails the count instead of hanging.
fn until_all_missed(cache: &Cache, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.stats().total.misses < n && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

#[test]
fn eight_threads_asking_one_missing_key_compute_it_once() {
    let cache = cache();
    let calls = AtomicU32::new(0);
    let memo = cache
        .memoize("slow")
        .wrap(|x: u64| {
            calls.fetch_add(1, SeqCst);
            until_all_missed(&cache, THREADS);
            x * 10
        })
        .unwrap();
    let results: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS).map(|_| s.spawn(|| memo.call(4))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results, vec![40; THREADS as usize]);
    assert_eq!(calls.load(SeqCst), 1);
    let stats = cache.stats().total;
    assert_eq!(
        (stats.misses, stats.waits, stats.stores),
        (THREADS, THREADS - 1, 1)
    );
}

#[test]
fn an_erroring_leader_releases_its_waiters_and_the_next_one_computes() {
    let cache = cache();
    let calls = AtomicU32::new(0);
    let memo = cache
        .memoize("flaky")
        .wrap_result(|x: u64| {
            let n = calls.fetch_add(1, SeqCst);
            until_all_missed(&cache, THREADS);
            if n == 0 {
                Err(format!("first call of {x} fails"))
            } else {
                Ok(x + 1)
            }
        })
        .unwrap();
    let results: Vec<Result<u64, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS).map(|_| s.spawn(|| memo.call(1))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        calls.load(SeqCst),
        2,
        "one error, then one computation for the rest"
    );
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(results.iter().filter(|r| r.is_ok()).all(|r| r == &Ok(2)));
    assert_eq!(cache.stats().total.waits, THREADS - 2);
}

#[test]
fn a_panicking_leader_releases_its_waiters() {
    let cache = cache();
    let calls = AtomicU32::new(0);
    let memo = cache
        .memoize("panicky")
        .wrap(|x: u64| {
            let n = calls.fetch_add(1, SeqCst);
            until_all_missed(&cache, THREADS);
            assert!(n != 0, "the first computation panics");
            x * 2
        })
        .unwrap();
    let results: Vec<std::thread::Result<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS).map(|_| s.spawn(|| memo.call(21))).collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    assert_eq!(calls.load(SeqCst), 2);
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert_eq!(
        results
            .into_iter()
            .filter_map(Result::ok)
            .collect::<Vec<_>>(),
        vec![42; THREADS as usize - 1]
    );
    // The flight is gone: a later call is a plain hit.
    assert_eq!(memo.call(21), 42);
}

#[test]
fn a_recursive_call_of_the_same_key_computes_directly_instead_of_deadlocking() {
    let cache = cache();
    type Slot = OnceLock<Box<dyn Fn(u64) -> u64 + Send + Sync>>;
    let me: Arc<Slot> = Arc::new(OnceLock::new());
    let inner = AtomicBool::new(false);
    let calls = Arc::new(AtomicU32::new(0));
    let memo = {
        let me = me.clone();
        let calls = calls.clone();
        cache
            .memoize("recursive")
            .wrap(move |x: u64| {
                calls.fetch_add(1, SeqCst);
                if inner.swap(true, SeqCst) {
                    return x;
                }
                // The same key again, from inside its own computation.
                me.get().unwrap()(x) + 1
            })
            .unwrap()
    };
    let _ = me.set(Box::new(move |x| memo.call(x)));
    assert_eq!(me.get().unwrap()(5), 6);
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn different_keys_do_not_wait_for_each_other() {
    let cache = cache();
    let calls = AtomicU32::new(0);
    let memo = cache
        .memoize("per_key")
        .wrap(|x: u64| {
            calls.fetch_add(1, SeqCst);
            // Each key's leader waits for the other key's miss: if keys shared one flight,
            // the second would wait behind the first and this would never see 2 misses.
            until_all_missed(&cache, 2);
            x
        })
        .unwrap();
    std::thread::scope(|s| {
        let a = s.spawn(|| memo.call(1));
        let b = s.spawn(|| memo.call(2));
        assert_eq!((a.join().unwrap(), b.join().unwrap()), (1, 2));
    });
    assert_eq!(cache.stats().total.waits, 0);
}

#[test]
fn a_thread_whose_leader_is_stuck_computes_itself_after_the_wait_timeout() {
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .wait_timeout(Some(Duration::from_millis(50)))
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let (release, stuck) = std::sync::mpsc::channel::<()>();
    let stuck = std::sync::Mutex::new(stuck);
    let memo = cache
        .memoize("stuck")
        .wrap(|x: u64| {
            if calls.fetch_add(1, SeqCst) == 0 {
                // Bounded, so before wait timeouts the waiter's count fails instead of a hang.
                let _ = stuck.lock().unwrap().recv_timeout(Duration::from_secs(30));
            }
            x * 10
        })
        .unwrap();
    std::thread::scope(|s| {
        let leader = s.spawn(|| memo.call(1));
        while calls.load(SeqCst) == 0 {
            std::thread::yield_now();
        }
        assert_eq!(memo.call(1), 10);
        assert_eq!(calls.load(SeqCst), 2, "the waiter computed itself");
        release.send(()).unwrap();
        assert_eq!(leader.join().unwrap(), 10);
    });
}

/// Two batches at once whose inputs overlap: every key is computed by one of them.
fn batches_compute_each_key_once(first: Vec<u64>, second: Vec<u64>) {
    let cache = cache();
    let computed = std::sync::Mutex::new(Vec::<u64>::new());
    let misses = (first.len() + second.len()) as u64;
    let memo = cache
        .memoize("batch")
        .wrap_batch(|xs: Vec<u64>| {
            // Held until both batches have missed, so without single-flight both compute
            // the keys they share.
            until_all_missed(&cache, misses);
            computed.lock().unwrap().extend(&xs);
            xs.iter().map(|x| x * 10).collect::<Vec<_>>()
        })
        .unwrap();
    std::thread::scope(|s| {
        let a = s.spawn(|| memo.call_many(first.clone()).unwrap());
        let b = s.spawn(|| memo.call_many(second.clone()).unwrap());
        let want = |xs: &[u64]| xs.iter().map(|x| x * 10).collect::<Vec<_>>();
        assert_eq!(a.join().unwrap(), want(&first));
        assert_eq!(b.join().unwrap(), want(&second));
    });
    drop(memo);
    let mut computed = computed.into_inner().unwrap();
    computed.sort_unstable();
    let mut distinct: Vec<u64> = first.iter().chain(&second).copied().collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(computed, distinct, "each key once");
}

#[test]
fn two_concurrent_batches_with_overlapping_inputs_compute_each_key_once() {
    batches_compute_each_key_once(vec![1, 2, 3, 4], vec![3, 4, 5, 6]);
}

#[test]
fn two_batches_wanting_the_same_keys_in_opposite_orders_neither_deadlock_nor_compute_twice() {
    batches_compute_each_key_once(vec![1, 2, 3], vec![3, 2, 1]);
}
