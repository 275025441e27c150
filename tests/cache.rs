//! The Cache front-end: typed values, memoization, per-call modes, expiry, limits, slots,
//! stats. Time comes from a `ManualClock`: no test sleeps.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cacher::store::{MemoryStore, Store};
use cacher::{Cache, Call, Error, Eviction, ManualClock, Tiered};
use serde::{Deserialize, Serialize};

const T0: u64 = 1_700_000_000_000;

fn cache_with(clock: &ManualClock) -> Cache {
    Cache::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Response {
    status: u16,
    body: String,
}

#[test]
fn typed_values_round_trip_and_missing_keys_are_none() {
    let cache = cache_with(&ManualClock::new(T0));
    let r = Response {
        status: 200,
        body: "ok".into(),
    };
    cache.put("r", &r).unwrap();
    assert_eq!(cache.get::<Response>("r").unwrap(), Some(r));
    assert_eq!(cache.get::<Response>("nope").unwrap(), None);
    assert!(cache.contains("r").unwrap());
    assert!(cache.remove("r").unwrap());
    assert!(!cache.contains("r").unwrap());
    assert!(!cache.remove("r").unwrap());
}

#[test]
fn get_or_insert_with_computes_once() {
    let cache = cache_with(&ManualClock::new(T0));
    let mut calls = 0;
    for _ in 0..3 {
        let v: Vec<u32> = cache
            .get_or_insert_with("k", || {
                calls += 1;
                vec![1, 2, 3]
            })
            .unwrap();
        assert_eq!(v, vec![1, 2, 3]);
    }
    assert_eq!(calls, 1);
}

#[test]
fn clear_removes_everything() {
    let cache = cache_with(&ManualClock::new(T0));
    for i in 0..10 {
        cache.put(format!("k{i}"), &i).unwrap();
    }
    assert_eq!(cache.clear().unwrap(), 10);
    assert_eq!(cache.store().len().unwrap(), 0);
}

// ---- memoization ----

static API_CALLS: AtomicU32 = AtomicU32::new(0);

fn fetch_from_api(endpoint: &str, params: &BTreeMap<String, String>) -> Response {
    API_CALLS.fetch_add(1, SeqCst);
    Response {
        status: 200,
        body: format!("{endpoint}:{params:?}"),
    }
}

#[test]
fn slow_api_is_called_once_for_identical_calls_and_again_for_new_params() {
    let cache = cache_with(&ManualClock::new(T0));
    let fetch = cache.memoize("fetch_from_api").wrap(
        |(endpoint, params): (String, BTreeMap<String, String>)| fetch_from_api(&endpoint, &params),
    );
    let before = API_CALLS.load(SeqCst);
    let p1 = BTreeMap::from([("q".to_string(), "rust".to_string())]);
    let a = fetch.call(("users".into(), p1.clone()));
    let b = fetch.call(("users".into(), p1.clone()));
    assert_eq!(a, b);
    assert_eq!(API_CALLS.load(SeqCst) - before, 1);
    let p2 = BTreeMap::from([("q".to_string(), "go".to_string())]);
    fetch.call(("users".into(), p2));
    assert_eq!(API_CALLS.load(SeqCst) - before, 2);
    let s = cache.stats();
    let ns = &s.namespaces["fetch_from_api"];
    assert_eq!((ns.hits, ns.misses, ns.stores), (1, 2, 2));
}

#[test]
fn ignored_arguments_do_not_change_the_key() {
    let cache = cache_with(&ManualClock::new(T0));
    let calls = AtomicU32::new(0);
    let f = cache
        .memoize("f")
        .args(["x", "logger"])
        .ignore("logger")
        .wrap(|(x, _logger): (u32, String)| {
            calls.fetch_add(1, SeqCst);
            x * 2
        });
    assert_eq!(f.call((2, "a".into())), 4);
    assert_eq!(f.call((2, "b".into())), 4);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(f.call((3, "b".into())), 6);
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn ignoring_an_unknown_argument_name_is_a_config_error() {
    let cache = cache_with(&ManualClock::new(T0));
    let f = cache.memoize("f").args(["x"]).ignore("y").wrap(|x: u32| x);
    assert!(matches!(f.try_call(1), Err(Error::Config(_))));
    // `call` behaves like the function and counts the error.
    assert_eq!(f.call(1), 1);
    assert!(cache.stats().namespaces["f"].errors >= 1);
}

#[test]
fn a_custom_key_function_replaces_the_arguments() {
    let cache = cache_with(&ManualClock::new(T0));
    let calls = AtomicU32::new(0);
    let f = cache
        .memoize("lower")
        .wrap(|s: String| {
            calls.fetch_add(1, SeqCst);
            s.len()
        })
        .key(|s: &String| s.to_lowercase());
    assert_eq!(f.call("ABC".into()), 3);
    assert_eq!(f.call("abc".into()), 3);
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn depends_on_and_version_invalidate_old_results() {
    let cache = cache_with(&ManualClock::new(T0));
    let data_version = Arc::new(AtomicU32::new(1));
    let calls = Arc::new(AtomicU32::new(0));
    let make = |version: u32| {
        let dv = data_version.clone();
        let calls = calls.clone();
        cache
            .memoize("g")
            .version(version)
            .depends_on(move || dv.load(SeqCst))
            .wrap(move |x: u32| {
                calls.fetch_add(1, SeqCst);
                x + 1
            })
    };
    let g1 = make(1);
    g1.call(1);
    g1.call(1);
    assert_eq!(calls.load(SeqCst), 1);
    data_version.store(2, SeqCst);
    g1.call(1);
    assert_eq!(calls.load(SeqCst), 2, "a changed dependency recomputes");
    g1.call(1);
    assert_eq!(calls.load(SeqCst), 2);
    let g2 = make(2);
    g2.call(1);
    assert_eq!(calls.load(SeqCst), 3, "a raised version recomputes");
    assert_ne!(g1.key_for(&1).unwrap(), g2.key_for(&1).unwrap());
}

#[test]
fn errors_are_never_cached_but_none_and_unit_are() {
    let cache = cache_with(&ManualClock::new(T0));
    let calls = AtomicU32::new(0);
    let fallible = cache
        .memoize("fallible")
        .wrap_result(|x: i32| -> Result<i32, String> {
            calls.fetch_add(1, SeqCst);
            if x < 0 {
                Err("negative".into())
            } else {
                Ok(x)
            }
        });
    assert_eq!(fallible.call(-1), Err("negative".into()));
    assert_eq!(fallible.call(-1), Err("negative".into()));
    assert_eq!(calls.load(SeqCst), 2, "errors are not cached");
    assert_eq!(fallible.call(5), Ok(5));
    assert_eq!(fallible.call(5), Ok(5));
    assert_eq!(calls.load(SeqCst), 3);

    let none_calls = AtomicU32::new(0);
    let lookup = cache.memoize("lookup").wrap(|_x: u32| -> Option<String> {
        none_calls.fetch_add(1, SeqCst);
        None
    });
    assert_eq!(lookup.call(1), None);
    assert_eq!(lookup.call(1), None);
    assert_eq!(none_calls.load(SeqCst), 1, "a cached None is a hit");
    assert_eq!(lookup.call_with(1, Call::cache_only()).unwrap(), None);
    assert!(lookup
        .call_with(2, Call::cache_only())
        .unwrap_err()
        .is_miss());

    let unit_calls = AtomicU32::new(0);
    let side = cache.memoize("unit").wrap(|_x: u32| {
        unit_calls.fetch_add(1, SeqCst);
    });
    side.call(1);
    side.call(1);
    assert_eq!(unit_calls.load(SeqCst), 1);
}

#[test]
fn per_call_modes_bypass_refresh_cache_only_and_ttl() {
    let clock = ManualClock::new(T0);
    let cache = cache_with(&clock);
    let n = AtomicU32::new(0);
    let f = cache
        .memoize("counter")
        .wrap(|_x: u8| n.fetch_add(1, SeqCst));
    assert_eq!(f.call(0), 0);
    assert_eq!(
        f.call_with(0, Call::bypass()).unwrap(),
        1,
        "bypass computes"
    );
    assert_eq!(f.call(0), 0, "bypass did not write");
    assert_eq!(
        f.call_with(0, Call::refresh()).unwrap(),
        2,
        "refresh computes"
    );
    assert_eq!(f.call(0), 2, "refresh overwrote");
    assert_eq!(f.call_with(0, Call::cache_only()).unwrap(), 2);
    assert!(f.call_with(9, Call::cache_only()).unwrap_err().is_miss());
    assert_eq!(n.load(SeqCst), 3, "cache-only never computes");
    assert_eq!(
        f.call_with(1, Call::normal().ttl(Duration::from_secs(10)))
            .unwrap(),
        3
    );
    clock.advance(Duration::from_secs(9));
    assert_eq!(f.call(1), 3);
    clock.advance(Duration::from_secs(1));
    assert_eq!(f.call(1), 4, "the per-call TTL expired");
    assert_eq!(f.call(0), 2, "entries without a TTL stay");
}

// ---- expiry and limits ----

#[test]
fn expired_entries_are_never_returned_even_before_cleanup() {
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    cache.put("a", &1).unwrap();
    clock.advance(Duration::from_secs(59));
    assert_eq!(cache.get::<i32>("a").unwrap(), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get::<i32>("a").unwrap(), None);
    assert!(!cache.contains("a").unwrap());
    assert_eq!(cache.stats().total.expirations, 1);
}

#[test]
fn put_with_ttl_and_put_until_set_per_value_expiry() {
    let clock = ManualClock::new(T0);
    let cache = cache_with(&clock);
    cache
        .put_with_ttl("short", &1, Duration::from_secs(5))
        .unwrap();
    cache
        .put_until(
            "deadline",
            &2,
            UNIX_EPOCH + Duration::from_millis(T0 + 20_000),
        )
        .unwrap();
    cache.put("forever", &3).unwrap();
    clock.advance(Duration::from_secs(5));
    assert_eq!(cache.get::<i32>("short").unwrap(), None);
    assert_eq!(cache.get::<i32>("deadline").unwrap(), Some(2));
    clock.advance(Duration::from_secs(15));
    assert_eq!(cache.get::<i32>("deadline").unwrap(), None);
    assert_eq!(cache.get::<i32>("forever").unwrap(), Some(3));
}

#[test]
fn a_per_value_ttl_overrides_the_cache_ttl_both_ways() {
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .ttl(Duration::from_secs(60))
        .build()
        .unwrap();
    cache
        .put_with_ttl("long", &1, Duration::from_secs(3600))
        .unwrap();
    cache
        .put_with_ttl("short", &2, Duration::from_secs(1))
        .unwrap();
    cache
        .put_with_ttl("huge", &3, Duration::from_secs(u64::MAX))
        .unwrap();
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get::<i32>("short").unwrap(), None);
    clock.advance(Duration::from_secs(600));
    assert_eq!(
        cache.get::<i32>("long").unwrap(),
        Some(1),
        "outlives the cache TTL"
    );
    assert_eq!(
        cache.get::<i32>("huge").unwrap(),
        Some(3),
        "a huge TTL never wraps to 0"
    );
}

#[test]
fn an_absolute_cache_deadline_expires_everything() {
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .expires_at(UNIX_EPOCH + Duration::from_millis(T0 + 1000))
        .build()
        .unwrap();
    cache.put("a", &1).unwrap();
    clock.advance(Duration::from_millis(999));
    assert_eq!(cache.get::<i32>("a").unwrap(), Some(1));
    clock.advance(Duration::from_millis(1));
    assert_eq!(cache.get::<i32>("a").unwrap(), None);
}

#[test]
fn cleanup_removes_expired_entries_from_the_store() {
    let clock = ManualClock::new(T0);
    let store = Arc::new(MemoryStore::new());
    let cache = Cache::builder()
        .store(store.clone())
        .clock(clock.clone())
        .ttl(Duration::from_secs(10))
        .build()
        .unwrap();
    for i in 0..5 {
        cache.put(format!("old{i}"), &i).unwrap();
    }
    clock.advance(Duration::from_secs(10));
    cache.put("new", &1).unwrap();
    let report = cache.cleanup().unwrap();
    assert_eq!((report.scanned, report.expired), (6, 5));
    assert_eq!(store.len().unwrap(), 1);
}

fn limited(policy: Eviction, max: u64) -> Cache {
    Cache::builder()
        .store(MemoryStore::new())
        .clock(ManualClock::new(T0))
        .max_entries(max)
        .eviction(policy)
        .build()
        .unwrap()
}

#[test]
fn lru_eviction_keeps_recently_read_entries() {
    let cache = limited(Eviction::Lru, 3);
    for k in ["a", "b", "c"] {
        cache.put(k, &k).unwrap();
    }
    cache.get::<String>("a").unwrap();
    cache.put("d", &"d").unwrap();
    assert!(cache.contains("a").unwrap());
    assert!(!cache.contains("b").unwrap(), "b was least recently used");
    assert_eq!(cache.store().len().unwrap(), 3);
    assert_eq!(cache.stats().total.evictions, 1);
}

#[test]
fn lfu_eviction_keeps_frequently_read_entries() {
    let cache = limited(Eviction::Lfu, 3);
    for k in ["a", "b", "c"] {
        cache.put(k, &k).unwrap();
    }
    for _ in 0..3 {
        cache.get::<String>("a").unwrap();
        cache.get::<String>("c").unwrap();
    }
    cache.get::<String>("b").unwrap();
    cache.put("d", &"d").unwrap();
    assert!(!cache.contains("b").unwrap(), "b was least frequently used");
    assert!(cache.contains("a").unwrap() && cache.contains("c").unwrap());
}

#[test]
fn fifo_eviction_ignores_reads() {
    let cache = limited(Eviction::Fifo, 3);
    for k in ["a", "b", "c"] {
        cache.put(k, &k).unwrap();
    }
    cache.get::<String>("a").unwrap();
    cache.put("d", &"d").unwrap();
    assert!(!cache.contains("a").unwrap(), "a was written first");
}

#[test]
fn max_bytes_evicts_until_the_store_fits() {
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .clock(ManualClock::new(T0))
        .max_bytes(10_000)
        .build()
        .unwrap();
    for i in 0..20 {
        cache.put(format!("k{i}"), &vec![7u8; 1000]).unwrap();
    }
    let total: u64 = cache
        .store()
        .keys()
        .unwrap()
        .map(|k| cache.store().meta(&k.unwrap()).unwrap().unwrap().len)
        .sum();
    assert!(total <= 10_000, "{total} bytes stored");
    assert!(cache.contains("k19").unwrap());
    assert!(!cache.contains("k0").unwrap());
}

#[test]
fn limits_are_enforced_on_entries_found_at_open() {
    let store = Arc::new(MemoryStore::new());
    let clock = ManualClock::new(T0);
    let first = Cache::builder()
        .store(store.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    for i in 0..10 {
        clock.advance(Duration::from_millis(1));
        first.put(format!("k{i}"), &i).unwrap();
    }
    let reopened = Cache::builder()
        .store(store.clone())
        .clock(clock.clone())
        .max_entries(4)
        .eviction(Eviction::Fifo)
        .build()
        .unwrap();
    assert_eq!(store.len().unwrap(), 4, "opening evicted down to the limit");
    assert!(reopened.contains("k9").unwrap());
    assert!(!reopened.contains("k5").unwrap(), "the oldest went first");
}

#[test]
fn a_limit_of_zero_is_refused() {
    let err = Cache::builder()
        .store(MemoryStore::new())
        .max_entries(0)
        .build()
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)));
    assert!(matches!(
        Cache::builder().build().unwrap_err(),
        Error::Config(_)
    ));
}

#[test]
fn background_cleanup_runs_at_once_and_stops_when_dropped() {
    let clock = ManualClock::new(T0);
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .clock(clock.clone())
        .ttl(Duration::from_secs(1))
        .build()
        .unwrap();
    cache.put("a", &1).unwrap();
    clock.advance(Duration::from_secs(2));
    // The thread cleans up once at start; dropping the handle stops and joins it.
    let handle = cache.spawn_cleanup(Duration::from_secs(3600));
    drop(handle);
    assert!(cache.store().is_empty().unwrap());
}

// ---- slots, tiers, stats ----

#[test]
fn a_slot_recomputes_for_other_parameters_and_replaces_its_value() {
    let cache = cache_with(&ManualClock::new(T0));
    let slot = cache.slot::<Vec<f64>>("embeddings");
    let mut n = 0;
    let mut compute = |v: f64| {
        n += 1;
        vec![v; 3]
    };
    let a = slot
        .get_or_compute(&(true, 0.0, 1.0), || compute(1.0))
        .unwrap();
    let b = slot
        .get_or_compute(&(true, 0.0, 1.0), || compute(2.0))
        .unwrap();
    assert_eq!(a, b);
    let c = slot
        .get_or_compute(&(false, 0.0, 1.0), || compute(3.0))
        .unwrap();
    assert_eq!(c, vec![3.0; 3]);
    assert_eq!(slot.get(&(true, 0.0, 1.0)).unwrap(), None, "replaced");
    assert_eq!(slot.get(&(false, 0.0, 1.0)).unwrap(), Some(vec![3.0; 3]));
    assert_eq!(cache.store().len().unwrap(), 1, "a slot holds one value");
    let st = cache.stats().namespaces["embeddings"];
    assert_eq!((st.hits, st.stores), (2, 2), "{st:?}");
    assert_eq!(n, 2);
}

#[test]
fn a_memory_tier_in_front_serves_and_promotes_hits() {
    let cold = Arc::new(MemoryStore::new());
    let writer = Cache::builder().store(cold.clone()).build().unwrap();
    writer.put("k", &"v").unwrap();
    let cache = Cache::builder()
        .store(Tiered::new(cold.clone(), 1 << 20))
        .build()
        .unwrap();
    assert_eq!(cache.get::<String>("k").unwrap().as_deref(), Some("v"));
    cold.delete(b"k").unwrap();
    assert_eq!(
        cache.get::<String>("k").unwrap().as_deref(),
        Some("v"),
        "served from the memory tier"
    );
}

#[test]
fn stats_count_bytes_and_time_per_namespace() {
    let cache = cache_with(&ManualClock::new(T0));
    let f = cache.memoize("f").wrap(|x: u32| vec![x; 100]);
    f.call(1);
    f.call(1);
    cache.put("plain", &1).unwrap();
    let s = cache.stats();
    let ns = s.namespaces["f"];
    assert_eq!((ns.hits, ns.misses, ns.stores), (1, 1, 1));
    assert!(ns.bytes_written > 100 && ns.bytes_read == ns.bytes_written);
    assert_eq!(s.namespaces[""].stores, 1);
    assert_eq!(s.total.stores, 2);
    assert!(format!("{s}").contains("total"));
    assert!(ns.compute_time > Duration::ZERO && ns.read_time > Duration::ZERO);
    cache.reset_stats();
    assert_eq!(cache.stats().total.stores, 0);
    // Memoized functions keep counting after a reset.
    f.call(1);
    assert_eq!(cache.stats().namespaces["f"].hits, 1);
}
