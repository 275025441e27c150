//! Background work: prefetch computes only the missing inputs on a bounded pool and can be
//! cancelled; stale-while-revalidate serves an expired value while one refresh runs, and a
//! failed refresh keeps the stale value for the grace period only, and a refresh is left to
//! another process holding the key's lease. Time is a `ManualClock`.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use cacher::memo::{Freshness, Refresh};
use cacher::store::MemoryStore;
use cacher::{Cache, Call, ManualClock};

/// Holds computations until opened.
#[derive(Default)]
struct Gate(Mutex<bool>, Condvar);

impl Gate {
    fn pass(&self) {
        let mut open = self.0.lock().unwrap();
        while !*open {
            open = self.1.wait(open).unwrap();
        }
    }
    fn open(&self) {
        *self.0.lock().unwrap() = true;
        self.1.notify_all();
    }
}

/// Bounded, so a broken build fails an assertion instead of hanging.
fn until(what: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !what() && Instant::now() < deadline {
        std::thread::yield_now();
    }
}

/// A cache on `store` whose values expire after 10 s of a `ManualClock` at 0, and the clock.
fn ten_second_cache(store: impl cacher::store::Store + 'static) -> (Cache, ManualClock) {
    let clock = ManualClock::new(0);
    let cache = Cache::builder()
        .store(store)
        .clock(clock.clone())
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    (cache, clock)
}

/// The refresh a stale-while-revalidate call started: it must have been served stale and
/// have started one.
fn started_refresh(f: Freshness) -> Refresh {
    match f {
        Freshness::Stale {
            refresh: Some(refresh),
        } => refresh,
        f => panic!("expected a stale value with a refresh started, got {f:?}"),
    }
}

#[test]
fn prefetch_computes_only_the_missing_inputs_on_a_bounded_pool() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let memo = Arc::new(
        cache
            .memoize("square")
            .wrap({
                let calls = calls.clone();
                move |x: u64| {
                    calls.fetch_add(1, SeqCst);
                    assert!(x != 7, "input 7 panics");
                    x * x
                }
            })
            .unwrap(),
    );
    memo.call(3);
    let report = memo.prefetch(0..10, 3).wait();
    assert_eq!(
        (
            report.hits,
            report.computed,
            report.failed,
            report.cancelled
        ),
        (1, 8, 1, 0)
    );
    assert_eq!(calls.load(SeqCst), 10, "3 once before, 7 once and failed");
    for x in (0..10).filter(|&x| x != 7) {
        assert_eq!(memo.call_with(x, Call::cache_only()).unwrap(), x * x);
    }
    assert!(memo.call_with(7, Call::cache_only()).is_err());
}

#[test]
fn a_cancelled_prefetch_skips_what_it_has_not_started() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Gate::default());
    let memo = Arc::new(
        cache
            .memoize("slow")
            .wrap({
                let (calls, gate) = (calls.clone(), gate.clone());
                move |x: u64| {
                    calls.fetch_add(1, SeqCst);
                    gate.pass();
                    x
                }
            })
            .unwrap(),
    );
    let prefetch = memo.prefetch(0..5, 1);
    until(|| calls.load(SeqCst) == 1);
    prefetch.cancel();
    gate.open();
    let report = prefetch.wait();
    assert_eq!((report.computed, report.cancelled), (1, 4));
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(memo.call_with(0, Call::cache_only()).unwrap(), 0);
}

#[test]
fn a_stale_value_is_served_while_one_refresh_runs() {
    let (cache, clock) = ten_second_cache(MemoryStore::new());
    let calls = Arc::new(AtomicU32::new(0));
    let gate = Arc::new(Gate::default());
    let memo = Arc::new(
        cache
            .memoize("version")
            .wrap({
                let (calls, gate) = (calls.clone(), gate.clone());
                move |_: ()| {
                    let n = calls.fetch_add(1, SeqCst);
                    if n > 0 {
                        gate.pass(); // the refresh is slow
                    }
                    n
                }
            })
            .unwrap(),
    );
    let grace = Duration::from_secs(60);
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert!(matches!((v, f), (0, Freshness::Computed)));
    clock.advance(Duration::from_secs(11));
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, 0, "the expired value, served at once");
    let refresh = started_refresh(f);
    until(|| calls.load(SeqCst) == 2);
    // While the refresh runs, others get the stale value and start no second refresh.
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert!(matches!((v, f), (0, Freshness::Stale { refresh: None })));
    gate.open();
    assert!(refresh.wait());
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert!(matches!((v, &f), (1, Freshness::Fresh)), "{v} {f:?}");
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn a_failed_refresh_keeps_the_stale_value_for_the_grace_period_only() {
    let (cache, clock) = ten_second_cache(MemoryStore::new());
    let calls = Arc::new(AtomicU32::new(0));
    let memo = Arc::new(
        cache
            .memoize("feed")
            .wrap_result({
                let calls = calls.clone();
                move |_: ()| match calls.fetch_add(1, SeqCst) {
                    0 => Ok("first".to_string()),
                    _ => Err("upstream down"),
                }
            })
            .unwrap(),
    );
    let grace = Duration::from_secs(60);
    assert_eq!(
        memo.call_stale_while_revalidate((), grace).unwrap().0,
        Ok("first".into())
    );
    clock.advance(Duration::from_secs(11));
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, Ok("first".into()));
    let refresh = started_refresh(f);
    assert!(!refresh.wait(), "the refresh failed");
    assert_eq!(cache.stats().total.refresh_failures, 1);
    // Still within the grace: still the stale value.
    clock.advance(Duration::from_secs(40));
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, Ok("first".into()));
    if let Freshness::Stale { refresh: Some(r) } = f {
        assert!(!r.wait());
    }
    // Past expiry + grace: computed as on a miss, and the error is the caller's.
    clock.advance(Duration::from_secs(30));
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, Err("upstream down"));
    assert!(matches!(f, Freshness::Computed), "{f:?}");
}

/// A stale call on a store processes share leaves the refresh to another process already
/// refreshing the key (holding its lease): no second computation, the stale value served. Once
/// the lease is free, the next stale call refreshes. Before, every process refreshed.
#[test]
fn a_refresh_is_left_to_another_process_holding_the_keys_lease() {
    use cacher::store::{DirStore, Store};
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    let leases = cacher::store::lease::Leases::open(store.lease_dir().unwrap()).unwrap();
    let (cache, clock) = ten_second_cache(store);
    let calls = Arc::new(AtomicU32::new(0));
    let memo = Arc::new(
        cache
            .memoize("shared_version")
            .wrap({
                let calls = calls.clone();
                move |_: ()| calls.fetch_add(1, SeqCst)
            })
            .unwrap(),
    );
    let grace = Duration::from_secs(60);
    assert_eq!(memo.call_stale_while_revalidate((), grace).unwrap().0, 0);
    clock.advance(Duration::from_secs(11));
    let key = memo.key_for(&()).unwrap();
    let other = leases.try_acquire(&key).unwrap().expect("free");
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, 0, "the stale value");
    let refresh = started_refresh(f);
    assert!(refresh.wait(), "left to the other process, not failed");
    assert_eq!(calls.load(SeqCst), 1, "no second refresh");
    drop(other);
    let (v, f) = memo.call_stale_while_revalidate((), grace).unwrap();
    assert_eq!(v, 0);
    let refresh = started_refresh(f);
    assert!(refresh.wait());
    assert_eq!(calls.load(SeqCst), 2, "refreshed once the lease was free");
    assert_eq!(memo.call_stale_while_revalidate((), grace).unwrap().0, 1);
}
