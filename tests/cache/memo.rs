//! Memoization through the wrapper: keys, ignored arguments, dependencies, versions, policies, per-call modes.

use super::*;

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
    let cache = env().cache();
    let fetch = cache
        .memoize("fetch_from_api")
        .wrap(|(endpoint, params): (String, BTreeMap<String, String>)| {
            fetch_from_api(&endpoint, &params)
        })
        .unwrap();
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
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let f = cache
        .memoize("f")
        .args(["x", "logger"])
        .ignore("logger")
        .wrap(|(x, _logger): (u32, String)| {
            calls.fetch_add(1, SeqCst);
            x * 2
        })
        .unwrap();
    assert_eq!(f.call((2, "a".into())), 4);
    assert_eq!(f.call((2, "b".into())), 4);
    assert_eq!(calls.load(SeqCst), 1);
    assert_eq!(f.call((3, "b".into())), 6);
    assert_eq!(calls.load(SeqCst), 2);
}

#[test]
fn a_custom_key_function_replaces_the_arguments() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let f = cache
        .memoize("lower")
        .wrap(|s: String| {
            calls.fetch_add(1, SeqCst);
            s.len()
        })
        .unwrap()
        .key(|s: &String| s.to_lowercase());
    assert_eq!(f.call("ABC".into()), 3);
    assert_eq!(f.call("abc".into()), 3);
    assert_eq!(calls.load(SeqCst), 1);
}

#[test]
fn depends_on_and_version_invalidate_old_results() {
    let cache = env().cache();
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
            .unwrap()
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

/// `key_for` (keys from encoded arguments, as batches use) and a call (keys built in place)
/// give one key, dependencies included.
#[test]
fn key_for_names_the_entry_a_call_with_dependencies_stored() {
    let t = env();
    let cache = t.cache();
    let g = cache
        .memoize("g-deps")
        .depends_on(|| 7u32)
        .wrap(|x: u32| x + 1)
        .unwrap();
    assert_eq!(g.call(1), 2);
    assert!(t.store.get(&g.key_for(&1).unwrap()).unwrap().is_some());
    assert!(t.store.get(&g.key_for(&2).unwrap()).unwrap().is_none());
}

#[test]
fn errors_are_never_cached_but_none_and_unit_are() {
    let cache = env().cache();
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
        })
        .unwrap();
    assert_eq!(fallible.call(-1), Err("negative".into()));
    assert_eq!(fallible.call(-1), Err("negative".into()));
    assert_eq!(calls.load(SeqCst), 2, "errors are not cached");
    assert_eq!(fallible.call(5), Ok(5));
    assert_eq!(fallible.call(5), Ok(5));
    assert_eq!(calls.load(SeqCst), 3);

    let none_calls = AtomicU32::new(0);
    let lookup = cache
        .memoize("lookup")
        .wrap(|_x: u32| -> Option<String> {
            none_calls.fetch_add(1, SeqCst);
            None
        })
        .unwrap();
    assert_eq!(lookup.call(1), None);
    assert_eq!(lookup.call(1), None);
    assert_eq!(none_calls.load(SeqCst), 1, "a cached None is a hit");
    assert_eq!(lookup.call_with(1, Call::cache_only()).unwrap(), None);
    assert!(lookup
        .call_with(2, Call::cache_only())
        .unwrap_err()
        .is_miss());

    let unit_calls = AtomicU32::new(0);
    let side = cache
        .memoize("unit")
        .wrap(|_x: u32| {
            unit_calls.fetch_add(1, SeqCst);
        })
        .unwrap();
    side.call(1);
    side.call(1);
    assert_eq!(unit_calls.load(SeqCst), 1);
}

#[test]
fn per_call_modes_bypass_refresh_cache_only_and_ttl() {
    let t = env();
    let (clock, cache) = (&t.clock, t.cache());
    let n = AtomicU32::new(0);
    let f = cache
        .memoize("counter")
        .wrap(|_x: u8| n.fetch_add(1, SeqCst))
        .unwrap();
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

#[test]
fn the_wrapper_reports_hits_invalidates_and_clears_its_namespace() {
    use cacher::memo::Status;
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let f = cache
        .memoize("f")
        .wrap(|x: u32| {
            calls.fetch_add(1, SeqCst);
            x + 1
        })
        .unwrap();
    let other = cache.memoize("other").wrap(|x: u32| x).unwrap();
    other.call(1);
    assert_eq!(
        f.call_with_status(1, Call::default()).unwrap(),
        (2, Status::Miss)
    );
    assert_eq!(
        f.call_with_status(1, Call::default()).unwrap(),
        (2, Status::Hit)
    );
    assert!(f.call_with_status(1, Call::default()).unwrap().1.is_hit());
    assert!(f.invalidate(&1).unwrap());
    assert_eq!(
        f.call_with_status(1, Call::default()).unwrap().1,
        Status::Miss
    );
    f.call(2);
    assert_eq!(f.clear().unwrap(), 2, "both results of f");
    assert_eq!(cache.clear_namespace("f").unwrap(), 0);
    assert!(
        other
            .call_with_status(1, Call::default())
            .unwrap()
            .1
            .is_hit(),
        "another namespace is kept"
    );
    assert_eq!(calls.load(SeqCst), 3);
}

/// Calls alternating between many arguments on one thread (their key hashes come from the
/// thread's recent hashes after the first round) each return their own argument's value,
/// and every key is the one a fresh thread builds.
#[test]
fn alternating_arguments_on_one_thread_each_get_their_own_value() {
    let cache = env().cache();
    let calls = AtomicU32::new(0);
    let square = cache
        .memoize("square")
        .wrap(|x: u64| {
            calls.fetch_add(1, SeqCst);
            x * x
        })
        .unwrap();
    let args: Vec<u64> = (0..700).map(|i| i * 7919 % 1000).collect();
    let fresh_keys: Vec<Vec<u8>> = std::thread::scope(|s| {
        s.spawn(|| args.iter().map(|x| square.key_for(x).unwrap()).collect())
            .join()
            .unwrap()
    });
    for round in 0..3 {
        for (i, x) in args.iter().enumerate().rev().skip(round) {
            assert_eq!(square.call(*x), x * x, "argument {x}, round {round}");
            assert_eq!(square.key_for(x).unwrap(), fresh_keys[i], "key of {x}");
        }
    }
    assert_eq!(calls.load(SeqCst) as usize, args.len());
}
