//! The `#[memoize]` attribute on free functions and methods.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::LazyLock;

use cacher::store::MemoryStore;
use cacher::{memoize, Cache, Call};

static CACHE: LazyLock<Cache> =
    LazyLock::new(|| Cache::builder().store(MemoryStore::new()).build().unwrap());

struct Client {
    requests: AtomicU32,
}

/// The seed use case: a slow API call, keyed on endpoint and params, not on the client.
#[memoize(cache = CACHE, ignore(client))]
fn fetch_from_api(
    client: &Client,
    endpoint: &str,
    params: &BTreeMap<String, String>,
) -> Result<String, String> {
    client.requests.fetch_add(1, SeqCst);
    if endpoint.is_empty() {
        return Err("no endpoint".into());
    }
    Ok(format!("{endpoint}?{params:?}"))
}

#[test]
fn free_function_is_called_once_for_identical_calls() {
    let client = Client {
        requests: AtomicU32::new(0),
    };
    let other_client = Client {
        requests: AtomicU32::new(0),
    };
    let p = BTreeMap::from([("q".to_string(), "rust".to_string())]);
    let a = fetch_from_api(&client, "users", &p).unwrap();
    let b = fetch_from_api(&other_client, "users", &p).unwrap();
    assert_eq!(a, b);
    assert_eq!(
        client.requests.load(SeqCst) + other_client.requests.load(SeqCst),
        1
    );
    let p2 = BTreeMap::from([("q".to_string(), "zig".to_string())]);
    fetch_from_api(&client, "users", &p2).unwrap();
    assert_eq!(client.requests.load(SeqCst), 2);
}

#[test]
fn macro_errors_are_not_cached() {
    let client = Client {
        requests: AtomicU32::new(0),
    };
    let p = BTreeMap::new();
    assert!(fetch_from_api(&client, "", &p).is_err());
    assert!(fetch_from_api(&client, "", &p).is_err());
    assert_eq!(client.requests.load(SeqCst), 2);
}

static SQUARES: AtomicU32 = AtomicU32::new(0);

#[memoize(cache = CACHE, version = 3, namespace = "square_v")]
fn square(x: u64) -> u64 {
    SQUARES.fetch_add(1, SeqCst);
    x * x
}

#[test]
fn the_sibling_with_function_gives_per_call_control() {
    assert_eq!(square(7), 49);
    assert_eq!(square(7), 49);
    let n = SQUARES.load(SeqCst);
    assert_eq!(square_with(Call::refresh(), 7).unwrap(), 49);
    assert_eq!(SQUARES.load(SeqCst), n + 1);
    assert_eq!(square_with(Call::cache_only(), 7).unwrap(), 49);
    assert!(square_with(Call::cache_only(), 8).unwrap_err().is_miss());
    assert_eq!(SQUARES.load(SeqCst), n + 1);
}

#[memoize(cache = CACHE, namespace = "cube")]
fn cube(x: u64) -> u64 {
    x * x * x
}

#[memoize(cache = CACHE, ignore(trace_id))]
fn scaled(x: u64, factor: u64, trace_id: &str) -> u64 {
    let _ = trace_id;
    x * factor
}

#[test]
fn macro_and_wrapper_styles_share_keys() {
    let wrapped = CACHE.memoize("cube").wrap(|x: u64| x * x * x).unwrap();
    assert_eq!(cube(11), 1331);
    assert!(CACHE.contains(wrapped.key_for(&11).unwrap()).unwrap());

    let wrapped = CACHE
        .memoize("memoize_macro::scaled")
        .args(["x", "factor", "trace_id"])
        .ignore("trace_id")
        .wrap(|(x, factor, _t): (u64, u64, String)| x * factor)
        .unwrap();
    assert_eq!(scaled(3, 4, "req-1"), 12);
    let key = wrapped.key_for(&(3, 4, "req-2".to_string())).unwrap();
    assert!(CACHE.contains(&key).unwrap());
}

type ApiResult<T> = Result<T, String>;
static FLAKY: AtomicU32 = AtomicU32::new(0);

#[memoize(cache = CACHE, result)]
fn flaky(x: u32) -> ApiResult<u32> {
    FLAKY.fetch_add(1, SeqCst);
    Err(format!("no {x}"))
}

#[test]
fn the_result_flag_covers_result_aliases() {
    assert!(flaky(1).is_err());
    assert!(flaky(1).is_err());
    assert_eq!(
        FLAKY.load(SeqCst),
        2,
        "errors of an aliased Result are not cached"
    );
}

struct Counter {
    cache: Cache,
    calls: u32,
}

impl Counter {
    #[memoize(cache = self.cache, skip_self)]
    fn bump(&mut self, by: u32) -> u32 {
        self.calls += 1;
        by * 10
    }
}

#[test]
fn mut_self_methods_work() {
    let mut c = Counter {
        cache: Cache::builder().store(MemoryStore::new()).build().unwrap(),
        calls: 0,
    };
    assert_eq!(c.bump(2), 20);
    assert_eq!(c.bump(2), 20);
    assert_eq!(c.calls, 1);
}

struct Embedder {
    cache: Cache,
    model: String,
    dims: usize,
    calls: AtomicU32,
    _log_prefix: String,
}

impl Embedder {
    /// Only `model` and `dims` of `self` belong in the key.
    #[memoize(cache = self.cache, fields(model, dims))]
    fn embed(&self, text: &str) -> Vec<f32> {
        self.calls.fetch_add(1, SeqCst);
        vec![text.len() as f32; self.dims]
    }

    #[memoize(cache = self.cache, depends_on = self.dims, key = text.to_lowercase())]
    fn embed_ci(&self, text: &str) -> Option<Vec<f32>> {
        self.calls.fetch_add(1, SeqCst);
        (!text.is_empty()).then(|| vec![1.0; self.dims])
    }
}

#[test]
fn methods_key_on_the_named_fields_of_self() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    let mk = |model: &str, prefix: &str| Embedder {
        cache: cache.clone(),
        model: model.into(),
        dims: 4,
        calls: AtomicU32::new(0),
        _log_prefix: prefix.into(),
    };
    let a = mk("m1", "x");
    let b = mk("m1", "y");
    let c = mk("m2", "x");
    assert_eq!(a.embed("hello"), vec![5.0; 4]);
    assert_eq!(b.embed("hello"), vec![5.0; 4]);
    assert_eq!(b.calls.load(SeqCst), 0, "same model and dims: a hit");
    c.embed("hello");
    assert_eq!(c.calls.load(SeqCst), 1, "another model: computed");
}

#[test]
fn methods_support_custom_keys_dependencies_and_cached_none() {
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    let e = Embedder {
        cache,
        model: "m".into(),
        dims: 2,
        calls: AtomicU32::new(0),
        _log_prefix: String::new(),
    };
    assert_eq!(e.embed_ci("ABC"), Some(vec![1.0; 2]));
    assert_eq!(e.embed_ci("abc"), Some(vec![1.0; 2]));
    assert_eq!(e.embed_ci(""), None);
    assert_eq!(e.embed_ci(""), None);
    assert_eq!(e.calls.load(SeqCst), 2);
}

#[test]
fn macro_and_a_wrapped_function_of_several_arguments_share_keys() {
    let wrapped = CACHE.wrap(
        "memoize_macro::scaled",
        |x: u64, factor: u64, _trace_id: cacher::memo::Ignored<&str>| x * factor,
    );
    assert_eq!(scaled(5, 6, "req-1"), 30);
    let key = wrapped
        .key_for(&(5, 6, cacher::memo::Ignored("req-2")))
        .unwrap();
    assert!(CACHE.contains(&key).unwrap());
}

static EMBED_BATCHES: std::sync::Mutex<Vec<Vec<String>>> = std::sync::Mutex::new(Vec::new());

/// A batch function: one call for every missing text, in input order.
#[memoize(cache = CACHE, batch, ignore(client), namespace = "embed_batch")]
fn embed_all(client: &Client, texts: Vec<String>) -> Vec<u32> {
    client.requests.fetch_add(1, SeqCst);
    EMBED_BATCHES.lock().unwrap().push(texts.clone());
    texts.iter().map(|t| t.len() as u32).collect()
}

#[memoize(cache = CACHE, ignore(client), namespace = "embed_batch")]
fn embed_one(client: &Client, text: String) -> u32 {
    client.requests.fetch_add(1, SeqCst);
    text.len() as u32
}

fn texts(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_batch_function_runs_once_with_only_the_missing_inputs() {
    let client = Client {
        requests: AtomicU32::new(0),
    };
    assert_eq!(embed_all(&client, texts(&["bb", "a"])), vec![2, 1]);
    let out = embed_all(&client, texts(&["a", "ccc", "bb", "ccc", "dddd"]));
    assert_eq!(out, vec![1, 3, 2, 3, 4]);
    assert_eq!(client.requests.load(SeqCst), 2);
    let batches = EMBED_BATCHES.lock().unwrap().clone();
    assert_eq!(batches, vec![texts(&["bb", "a"]), texts(&["ccc", "dddd"])]);
    // The single-input function of the same namespace reads the batch's results.
    assert_eq!(embed_one(&client, "ccc".into()), 3);
    assert_eq!(client.requests.load(SeqCst), 2);
    let with = embed_all_with_status(Call::cache_only(), &client, texts(&["a", "dddd"])).unwrap();
    assert_eq!(
        with,
        vec![
            (1, cacher::memo::Status::Hit),
            (4, cacher::memo::Status::Hit)
        ]
    );
    assert!(embed_all_with(Call::cache_only(), &client, texts(&["new"]))
        .unwrap_err()
        .is_miss());
    assert_eq!(
        embed_all_invalidate(&client, texts(&["a", "zz"])).unwrap(),
        1
    );
}

static SHORT_CALLS: AtomicU32 = AtomicU32::new(0);

#[memoize(cache = CACHE, batch)]
fn short_batch(xs: Vec<u32>) -> Vec<u32> {
    SHORT_CALLS.fetch_add(1, SeqCst);
    xs.into_iter().skip(1).collect()
}

#[test]
fn a_batch_function_returning_the_wrong_count_is_reported_and_stores_nothing() {
    let err = short_batch_with(Call::default(), vec![1, 2, 3]).unwrap_err();
    match err {
        cacher::Error::BatchLength { expected, got, .. } => assert_eq!((expected, got), (3, 2)),
        other => panic!("expected a count error, got {other:?}"),
    }
    // The plain form behaves like the function: its own output, uncached.
    SHORT_CALLS.store(0, SeqCst);
    assert_eq!(short_batch(vec![1, 2, 3]), vec![2, 3]);
    assert_eq!(short_batch(vec![1, 2, 3]), vec![2, 3]);
    assert_eq!(
        SHORT_CALLS.load(SeqCst),
        4,
        "nothing was cached: two runs per call"
    );
}

/// A method whose cache is the receiver's: one call site, as many caches as receivers.
struct Holder {
    cache: Cache,
}

impl Holder {
    #[memoize(cache = self.cache, skip_self, namespace = "per_site_counters")]
    fn double(&self, x: u32) -> u32 {
        x * 2
    }
}

/// A generic function: one call site, a namespace per instantiation.
#[memoize(cache = CACHE)]
fn describe_site_counted<T: serde::Serialize + std::fmt::Debug>(value: T) -> String {
    format!("{value:?}")
}

/// A call site keeps its namespace's counters from its first call (no lookup per call); the
/// counts of a call through another cache, or under another namespace from the same site,
/// still go to that cache's and that namespace's counters.
#[test]
fn a_call_sites_counts_go_to_the_cache_and_namespace_it_was_called_for() {
    let one = Holder {
        cache: Cache::builder().store(MemoryStore::new()).build().unwrap(),
    };
    let two = Holder {
        cache: Cache::builder().store(MemoryStore::new()).build().unwrap(),
    };
    for _ in 0..3 {
        one.double(1);
    }
    two.double(1);
    two.double(2);
    let (a, b) = (one.cache.stats(), two.cache.stats());
    let (a, b) = (
        a.namespaces["per_site_counters"],
        b.namespaces["per_site_counters"],
    );
    assert_eq!((a.hits, a.misses), (2, 1));
    assert_eq!((b.hits, b.misses), (0, 2));

    describe_site_counted(1u8);
    describe_site_counted(1u8);
    describe_site_counted("x");
    let stats = CACHE.stats();
    let by_type = |t: &str| {
        stats
            .namespaces
            .iter()
            .find(|(ns, _)| ns.contains("describe_site_counted") && ns.contains(t))
            .map(|(_, c)| (c.hits, c.misses))
    };
    assert_eq!(by_type("<u8>"), Some((1, 1)));
    assert_eq!(by_type("<&str>"), Some((0, 1)));
}

static KEYED: LazyLock<(Cache, std::sync::Arc<MemoryStore>)> = LazyLock::new(|| {
    let store = std::sync::Arc::new(MemoryStore::new());
    let cache = Cache::builder().store(store.clone()).build().unwrap();
    (cache, store)
});
static REVISION: u32 = 3;

#[memoize(cache = KEYED.0, namespace = "keyed::short", depends_on = REVISION)]
fn keyed_short(a: u64, b: &str) -> String {
    format!("{a}{b}")
}

/// A namespace long enough that its key (namespace, version, 32 hex digits) is over the
/// 128 bytes a call's key buffer holds inline.
#[memoize(
    cache = KEYED.0,
    namespace = "keyed::a_namespace_long_enough_to_push_the_key_past_the_inline_buffer_of_one_hundred_and_twenty_eight_bytes"
)]
fn keyed_long(a: u64) -> u64 {
    a + 1
}

/// The key a call stores under is built in place on the call's stack; it must be the bytes
/// `cacher::key::store_key` gives for the same parts (and `NAME_invalidate`, which builds its
/// key the other way, must find it).
#[test]
fn a_call_stores_under_the_key_store_key_gives_inline_or_not() {
    use cacher::key::{canonical_bytes, store_key};
    use cacher::store::Store;
    let (_, store) = &*KEYED;
    assert_eq!(keyed_short(7, "x"), "7x");
    let args = canonical_bytes(&(&7u64, &"x")).unwrap();
    let dep = canonical_bytes(&REVISION).unwrap();
    let short = store_key("keyed::short", 1, &[&args, &dep]);
    assert!(
        store.get(&short).unwrap().is_some(),
        "stored under {short:?}"
    );
    assert_eq!(
        keyed_short_with_status(Call::default(), 7, "x").unwrap().1,
        cacher::memo::Status::Hit
    );

    assert_eq!(keyed_long(1), 2);
    let ns = "keyed::a_namespace_long_enough_to_push_the_key_past_the_inline_buffer_of_one_hundred_and_twenty_eight_bytes";
    let long = store_key(ns, 1, &[&canonical_bytes(&1u64).unwrap()]);
    assert!(long.len() > 128, "{} bytes", long.len());
    assert!(store.get(&long).unwrap().is_some(), "stored under {long:?}");

    assert!(keyed_short_invalidate(7, "x").unwrap());
    assert!(keyed_long_invalidate(1).unwrap());
    assert!(store.is_empty().unwrap());
}
