//! Async memoization (issue 10, item 4): `wrap_async` and `#[memoize] async fn`, with the
//! keys, modes, policies and stats of the sync path, on tokio here (the core has no runtime).

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::ThreadId;

use cacher::memo::{Offload, Status};
use cacher::store::{Blob, KeyIter, MemoryStore, Store};
use cacher::{memoize, Cache, Call};

fn cache() -> Cache {
    Cache::builder().store(MemoryStore::new()).build().unwrap()
}

#[tokio::test]
async fn an_async_function_runs_once_for_identical_calls() {
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let fetch = {
        let calls = calls.clone();
        cache
            .memoize("fetch")
            .wrap_async(move |url: String| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, SeqCst);
                    tokio::task::yield_now().await;
                    format!("body of {url}")
                }
            })
            .unwrap()
    };
    assert_eq!(fetch.call("a".into()).await, "body of a");
    assert_eq!(fetch.call("a".into()).await, "body of a");
    assert_eq!(fetch.call("b".into()).await, "body of b");
    assert_eq!(calls.load(SeqCst), 2);
    let ns = &cache.stats().namespaces["fetch"];
    assert_eq!((ns.hits, ns.misses, ns.stores), (1, 2, 2));
}

#[tokio::test]
async fn sync_and_async_wrappers_of_one_namespace_share_keys_and_values() {
    let cache = cache();
    let sync = cache
        .memoize("double")
        .wrap(|(a, b): (u32, u32)| (a + b) * 2)
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let asynk = cache
        .memoize("double")
        .wrap_async(move |(a, b): (u32, u32)| {
            c.fetch_add(1, SeqCst);
            async move { (a + b) * 2 }
        })
        .unwrap();
    assert_eq!(
        sync.key_for(&(1, 2)).unwrap(),
        asynk.key_for(&(1, 2)).unwrap()
    );
    assert_eq!(sync.call((1, 2)), 6);
    assert_eq!(
        asynk
            .call_with_status((1, 2), Call::default())
            .await
            .unwrap(),
        (6, Status::Hit)
    );
    assert_eq!(calls.load(SeqCst), 0);
}

#[tokio::test]
async fn async_modes_bypass_refresh_and_cache_only() {
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let sq = cache
        .memoize("sq")
        .wrap_async(move |x: u64| {
            c.fetch_add(1, SeqCst);
            async move { x * x }
        })
        .unwrap();
    assert!(sq
        .call_with(3, Call::cache_only())
        .await
        .unwrap_err()
        .is_miss());
    assert_eq!(sq.call_with(3, Call::bypass()).await.unwrap(), 9);
    assert!(
        sq.call_with(3, Call::cache_only()).await.is_err(),
        "bypass stores nothing"
    );
    assert_eq!(sq.try_call(3).await.unwrap(), 9);
    assert_eq!(
        sq.call_with_status(3, Call::refresh()).await.unwrap(),
        (9, Status::Miss)
    );
    assert_eq!(sq.call_with(3, Call::cache_only()).await.unwrap(), 9);
    assert_eq!(calls.load(SeqCst), 3);
    assert!(sq.invalidate(&3).unwrap());
    assert_eq!(sq.clear().unwrap(), 0);
}

#[tokio::test]
async fn async_errors_are_returned_and_never_stored() {
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let parse = cache
        .memoize("parse")
        .wrap_async_result(move |s: String| {
            c.fetch_add(1, SeqCst);
            async move { s.parse::<u32>().map_err(|e| e.to_string()) }
        })
        .unwrap();
    assert!(parse.call("x".into()).await.is_err());
    assert!(parse.call("x".into()).await.is_err());
    assert_eq!(parse.call("7".into()).await, Ok(7));
    assert_eq!(parse.call("7".into()).await, Ok(7));
    assert_eq!(calls.load(SeqCst), 3);
}

/// Records the thread of each `put`.
#[derive(Default)]
struct PutThreads {
    inner: MemoryStore,
    puts: Mutex<Vec<ThreadId>>,
}

impl Store for PutThreads {
    fn read(&self, key: &[u8]) -> cacher::store::Result<Option<Blob>> {
        self.inner.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> cacher::store::Result<()> {
        self.puts.lock().unwrap().push(std::thread::current().id());
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
}

fn spawn_blocking() -> Offload {
    Offload::new(|job| {
        Box::pin(async move {
            let _ = tokio::task::spawn_blocking(job).await;
        })
    })
}

#[tokio::test(flavor = "current_thread")]
async fn offloaded_writes_run_on_the_blocking_pool_not_on_the_task() {
    let store = Arc::new(PutThreads::default());
    let cache = Cache::builder().store(store.clone()).build().unwrap();
    let inline = cache
        .memoize("inline")
        .wrap_async(|x: u32| async move { x + 1 })
        .unwrap();
    let offloaded = cache
        .memoize("offloaded")
        .wrap_async(|x: u32| async move { x + 2 })
        .unwrap()
        .offload_writes(spawn_blocking());
    let here = std::thread::current().id();
    assert_eq!(inline.call(1).await, 2);
    assert_eq!(offloaded.call(1).await, 3);
    assert_eq!(offloaded.call(1).await, 3);
    let puts = store.puts.lock().unwrap().clone();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0], here, "a write without offload runs on the task");
    assert_ne!(
        puts[1], here,
        "an offloaded write runs on the blocking pool"
    );
    let ns = &cache.stats().namespaces["offloaded"];
    assert_eq!((ns.hits, ns.stores), (1, 1));
}

#[tokio::test]
async fn a_runner_that_drops_the_write_is_an_error_not_a_silent_loss() {
    let cache = cache();
    let dropping = Offload::new(|job| {
        drop(job);
        Box::pin(std::future::ready(()))
    });
    let f = cache
        .memoize("f")
        .wrap_async(|x: u32| async move { x * 3 })
        .unwrap()
        .offload_writes(dropping);
    let err = f.try_call(2).await.unwrap_err();
    assert!(
        err.to_string().contains("without running the store write"),
        "{err}"
    );
    assert_eq!(f.call(2).await, 6, "the plain call still returns the value");
    assert_eq!(cache.stats().namespaces["f"].errors, 1);
}

static CACHE: LazyLock<Cache> = LazyLock::new(cache);
static FETCHES: AtomicU32 = AtomicU32::new(0);

struct Client;

/// `client` is not `Serialize`: ignored, as in a sync function.
#[memoize(cache = CACHE, ignore(client))]
async fn fetch_page(client: &Client, url: &str, page: u32) -> Result<String, String> {
    let _ = client;
    FETCHES.fetch_add(1, SeqCst);
    tokio::task::yield_now().await;
    if url.is_empty() {
        return Err("no url".into());
    }
    Ok(format!("{url}#{page}"))
}

#[tokio::test]
async fn an_async_fn_under_the_attribute_is_called_once_and_errors_are_not_cached() {
    let before = FETCHES.load(SeqCst);
    assert_eq!(fetch_page(&Client, "a.org", 1).await.unwrap(), "a.org#1");
    assert_eq!(fetch_page(&Client, "a.org", 1).await.unwrap(), "a.org#1");
    assert!(fetch_page(&Client, "", 1).await.is_err());
    assert!(fetch_page(&Client, "", 1).await.is_err());
    assert_eq!(FETCHES.load(SeqCst) - before, 3);
    let (v, status) = fetch_page_with_status(Call::default(), &Client, "a.org", 1)
        .await
        .unwrap();
    assert_eq!((v, status), (Ok("a.org#1".to_string()), Status::Hit));
    assert!(fetch_page_with(Call::cache_only(), &Client, "b.org", 1)
        .await
        .unwrap_err()
        .is_miss());
    assert!(fetch_page_invalidate(&Client, "a.org", 1).unwrap());
}

#[memoize(cache = CACHE, namespace = "async_shared")]
async fn async_square(x: u64) -> u64 {
    x * x
}

#[tokio::test]
async fn the_attribute_and_the_wrappers_share_keys_across_sync_and_async() {
    let wrapped = CACHE.wrap("async_shared", |x: u64| x * x);
    assert_eq!(async_square(12).await, 144);
    assert!(CACHE.contains(wrapped.key_for(&12).unwrap()).unwrap());
}

struct Service {
    cache: Cache,
    region: String,
    calls: AtomicU32,
}

impl Service {
    #[memoize(cache = self.cache, fields(region))]
    async fn lookup(&self, id: u32) -> String {
        self.calls.fetch_add(1, SeqCst);
        format!("{}-{id}", self.region)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_methods_work_and_their_futures_are_send() {
    let svc = Arc::new(Service {
        cache: cache(),
        region: "eu".into(),
        calls: AtomicU32::new(0),
    });
    // `tokio::spawn` needs a `Send` future: this compiles only if the generated one is.
    let s = svc.clone();
    let first = tokio::spawn(async move { s.lookup(1).await })
        .await
        .unwrap();
    assert_eq!(first, "eu-1");
    assert_eq!(svc.lookup(1).await, "eu-1");
    assert_eq!(svc.calls.load(SeqCst), 1);
}

/// A computation that counts its calls and, on its first call only, waits until `open`.
struct Gated {
    calls: AtomicU32,
    open: tokio::sync::Semaphore,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Gated {
            calls: AtomicU32::new(0),
            open: tokio::sync::Semaphore::new(0),
        })
    }
    /// Returns the call's number (1, 2, ..) once it may finish.
    async fn run(&self) -> u32 {
        let n = self.calls.fetch_add(1, SeqCst) + 1;
        if n == 1 {
            let _ = self.open.acquire().await;
        }
        n
    }
}

/// Lets every spawned task of a current-thread runtime run until it waits.
async fn let_tasks_run() {
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "current_thread")]
async fn eight_tasks_asking_one_missing_key_compute_it_once() {
    let cache = cache();
    let gate = Gated::new();
    let g = gate.clone();
    let memo = Arc::new(
        cache
            .memoize("slow")
            .wrap_async(move |x: u32| {
                let g = g.clone();
                async move { g.run().await * 100 + x }
            })
            .unwrap(),
    );
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let m = memo.clone();
            tokio::spawn(async move { m.call(7).await })
        })
        .collect();
    let_tasks_run().await;
    gate.open.add_permits(1);
    for t in tasks {
        assert_eq!(t.await.unwrap(), 107);
    }
    assert_eq!(gate.calls.load(SeqCst), 1);
    let ns = &cache.stats().namespaces["slow"];
    assert_eq!((ns.stores, ns.waits), (1, 7));
}

#[tokio::test(flavor = "current_thread")]
async fn a_cancelled_async_leader_does_not_leave_its_waiters_stuck() {
    let cache = cache();
    let gate = Gated::new();
    let g = gate.clone();
    let memo = Arc::new(
        cache
            .memoize("cancelled")
            .wrap_async(move |x: u32| {
                let g = g.clone();
                async move { g.run().await * 100 + x }
            })
            .unwrap(),
    );
    let m = memo.clone();
    let leader = tokio::spawn(async move { m.call(1).await });
    let_tasks_run().await;
    let waiters: Vec<_> = (0..3)
        .map(|_| {
            let m = memo.clone();
            tokio::spawn(async move { m.call(1).await })
        })
        .collect();
    let_tasks_run().await;
    // The leader's future is dropped mid-computation; the gate never opens for it.
    leader.abort();
    assert!(leader.await.unwrap_err().is_cancelled());
    // A guard against a hang, not a timing assertion: the waiters finish at once.
    let results = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut out = Vec::new();
        for w in waiters {
            out.push(w.await.unwrap());
        }
        out
    })
    .await
    .expect("waiters of a cancelled leader must not hang");
    assert_eq!(
        results,
        vec![201, 201, 201],
        "the next leader computed (call 2)"
    );
    assert_eq!(
        gate.calls.load(SeqCst),
        2,
        "the cancelled call and one more"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn an_erroring_async_leader_releases_its_waiters_who_compute_in_turn() {
    let cache = cache();
    let gate = Gated::new();
    let g = gate.clone();
    let memo = Arc::new(
        cache
            .memoize("erroring")
            .wrap_async_result(move |x: u32| {
                let g = g.clone();
                async move {
                    match g.run().await {
                        1 => Err(format!("first call of {x} fails")),
                        n => Ok(n * 100 + x),
                    }
                }
            })
            .unwrap(),
    );
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let m = memo.clone();
            tokio::spawn(async move { m.call(3).await })
        })
        .collect();
    let_tasks_run().await;
    gate.open.add_permits(1);
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    assert_eq!(results[0], Err("first call of 3 fails".to_string()));
    assert_eq!(&results[1..], &[Ok(203), Ok(203), Ok(203)]);
    assert_eq!(
        gate.calls.load(SeqCst),
        2,
        "the failed leader, then one more"
    );
}

#[tokio::test]
async fn wrap_async_takes_functions_of_several_arguments_keyed_like_wrap() {
    let cache = cache();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let page = cache
        .memoize("page")
        .wrap_async(move |url: &str, n: u32, big: bool| {
            c.fetch_add(1, SeqCst);
            let body = format!("{url}#{n}{}", if big { "!" } else { "" });
            async move { body }
        })
        .unwrap();
    let sync = cache.wrap("page", |url: &str, n: u32, big: bool| {
        format!("{url}#{n}{}", if big { "!" } else { "" })
    });
    assert_eq!(
        page.key_for(&("a.org", 2, true)).unwrap(),
        sync.key_for(&("a.org", 2, true)).unwrap()
    );
    assert_eq!(page.call(("a.org", 2, true)).await, "a.org#2!");
    assert_eq!(page.call(("a.org", 2, true)).await, "a.org#2!");
    assert_eq!(
        sync.call(("a.org", 2, true)),
        "a.org#2!",
        "a hit for the sync one"
    );
    assert_eq!(calls.load(SeqCst), 1);

    let six = cache
        .memoize("six")
        .wrap_async(|a: u8, b: u8, c: u8, d: u8, e: u8, f: u8| async move {
            u32::from(a + b + c + d + e + f)
        })
        .unwrap();
    assert_eq!(six.call((1, 2, 3, 4, 5, 6)).await, 21);
    assert_eq!(cache.stats().namespaces["six"].stores, 1);
}

/// A DirStore cache, and the lease directory that other processes would share.
fn shared_dir_cache(dir: &std::path::Path) -> (Cache, cacher::store::lease::Leases) {
    let store = cacher::store::DirStore::open(dir).unwrap();
    let leases = cacher::store::lease::Leases::open(store.lease_dir().unwrap()).unwrap();
    let cache = Cache::builder().store(store).build().unwrap();
    (cache, leases)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_miss_waits_for_another_processs_lease_on_the_blocking_pool() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, leases) = shared_dir_cache(dir.path());
    let calls = Arc::new(AtomicU32::new(0));
    let offloaded = Arc::new(AtomicU32::new(0));
    let runner = {
        let offloaded = offloaded.clone();
        Offload::new(move |job| {
            offloaded.fetch_add(1, SeqCst);
            Box::pin(async move {
                let _ = tokio::task::spawn_blocking(job).await;
            })
        })
    };
    let c = calls.clone();
    let memo = Arc::new(
        cache
            .memoize("remote")
            .wrap_async(move |x: u64| {
                c.fetch_add(1, SeqCst);
                async move { x + 1 }
            })
            .unwrap()
            .offload_writes(runner),
    );
    let key = memo.key_for(&1).unwrap();
    // Another process computes the key and holds its lease.
    let held = leases.try_acquire(&key).unwrap().expect("free");
    let call = tokio::spawn({
        let memo = memo.clone();
        async move { memo.call(1).await }
    });
    while offloaded.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        calls.load(SeqCst),
        0,
        "waiting for the lease, not computing"
    );
    // The other process stores its value, then releases its lease.
    let other = Cache::builder()
        .store(cacher::store::DirStore::open(dir.path()).unwrap())
        .build()
        .unwrap();
    other.put(&key, &100u64).unwrap();
    drop(held);
    assert_eq!(call.await.unwrap(), 100, "the other process's value");
    assert_eq!(calls.load(SeqCst), 0);
    assert_eq!(cache.stats().total.waits, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn without_an_offload_an_async_miss_on_a_held_lease_computes_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, leases) = shared_dir_cache(dir.path());
    let memo = cache
        .memoize("remote")
        .wrap_async(|x: u64| async move { x + 1 })
        .unwrap();
    let held = leases.try_acquire(&memo.key_for(&1).unwrap()).unwrap();
    assert!(held.is_some());
    // Waiting would block this runtime's only thread: the call computes instead.
    assert_eq!(memo.call(1).await, 2);
    assert_eq!(cache.stats().total.stores, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn an_async_waiter_whose_leader_is_stuck_computes_itself_after_the_wait_timeout() {
    let cache = Cache::builder()
        .store(MemoryStore::new())
        .wait_timeout(Some(std::time::Duration::from_millis(50)))
        .build()
        .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let (release, stuck) = tokio::sync::oneshot::channel::<()>();
    let stuck = Arc::new(tokio::sync::Mutex::new(Some(stuck)));
    let c = calls.clone();
    let memo = Arc::new(
        cache
            .memoize("stuck")
            .wrap_async(move |x: u64| {
                let n = c.fetch_add(1, SeqCst);
                let stuck = stuck.clone();
                async move {
                    if n == 0 {
                        // The first caller's computation waits until the test lets it go.
                        if let Some(rx) = stuck.lock().await.take() {
                            let _ = rx.await;
                        }
                    }
                    x * 10
                }
            })
            .unwrap(),
    );
    let leader = tokio::spawn({
        let memo = memo.clone();
        async move { memo.call(1).await }
    });
    let_tasks_run().await;
    assert_eq!(calls.load(SeqCst), 1, "the leader is computing");
    // Before wait timeouts this waited as long as the leader: here, until the bound below.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(30), memo.call(1)).await;
    assert_eq!(waited.ok(), Some(10), "computed itself");
    assert_eq!(calls.load(SeqCst), 2);
    release.send(()).unwrap();
    assert_eq!(leader.await.unwrap(), 10);
}
