//! A memoized function on a cache shared through Redis (RedisStore's `SET NX PX` leases under
//! `Store::lease`): four processes compute one missing key once; a holder killed mid-compute
//! is taken over once its lease's TTL runs out, while a live holder slower than the TTL keeps
//! its lease by renewing it; and with the server down, calls compute without the cache and
//! count the error, then use it again once it is back. Before `Store::lease`, the Cache's
//! single-flight took only file leases, so processes on Redis each computed. Batches take the
//! same leases: four processes with overlapping batches compute each key once. Children are this
//! test binary re-executed with `CACHER_REDIS_CHILD`; each test starts its own server.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cacher::store::redis::{RedisOptions, RedisStore};
use cacher::Cache;

use crate::children::{
    ask_for_batch, ask_for_one_key, assert_each_key_computed_once, assert_one_computed, inputs,
    spawn, until_marked, BATCHES, PROCESSES,
};
use crate::redis_server::{unique_prefix as prefix, Server};

fn cache_on(url: &str, prefix: &str, lease_ttl: Duration) -> Cache {
    let options = RedisOptions::new(prefix).with_timeout(Duration::from_millis(500));
    Cache::builder()
        .store(RedisStore::open_with(url, &options).unwrap())
        .lease_ttl(lease_ttl)
        .lease_timeout(Some(Duration::from_secs(60)))
        .build()
        .unwrap()
}

/// Not a test of its own: a child process's body when `CACHER_REDIS_CHILD` is set.
#[test]
fn redis_child_entry_point() {
    let Ok(role) = std::env::var("CACHER_REDIS_CHILD") else {
        return;
    };
    let url = std::env::var("CACHER_REDIS_URL").unwrap();
    let prefix = std::env::var("CACHER_REDIS_PREFIX").unwrap();
    let work = PathBuf::from(std::env::var("CACHER_REDIS_WORK").unwrap());
    let cache = cache_on(&url, &prefix, Duration::from_secs(2));
    if role == "batch" {
        let inputs = inputs(&std::env::var("CACHER_REDIS_INPUTS").unwrap());
        ask_for_batch(&cache, &work, inputs, false);
        return;
    }
    // A holder computes until killed.
    ask_for_one_key(&cache, &work, role == "hold");
}

fn child(role: &str, server: &Server, prefix: &str, work: &Path) -> std::process::Child {
    batch_child(role, server, prefix, work, "")
}

fn batch_child(
    role: &str,
    server: &Server,
    prefix: &str,
    work: &Path,
    inputs: &str,
) -> std::process::Child {
    spawn(
        "shared_redis::redis_child_entry_point",
        &[
            ("CACHER_REDIS_CHILD", role.as_ref()),
            ("CACHER_REDIS_URL", server.url().as_ref()),
            ("CACHER_REDIS_PREFIX", prefix.as_ref()),
            ("CACHER_REDIS_WORK", work.as_os_str()),
            ("CACHER_REDIS_INPUTS", inputs.as_ref()),
        ],
    )
}

#[test]
fn four_processes_sharing_a_redis_cache_compute_one_key_once() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let prefix = prefix("four");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| child("ask", &server, &prefix, work.path()))
        .collect();
    assert_one_computed(children, work.path());
}

/// Batches take the store's leases too (here Redis's, renewed while held): four processes
/// asking for overlapping batches compute each key once. Before, each computed its batch.
#[test]
fn four_processes_sharing_a_redis_cache_with_overlapping_batches_compute_each_key_once() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let prefix = prefix("batches");
    let children: Vec<_> = BATCHES
        .iter()
        .map(|b| batch_child("batch", &server, &prefix, work.path(), b))
        .collect();
    assert_each_key_computed_once(children, work.path());
}

#[test]
fn a_holder_killed_mid_compute_is_taken_over_once_its_lease_ttl_runs_out() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let prefix = prefix("killed");
    let ttl = Duration::from_secs(2);
    let mut holder = child("hold", &server, &prefix, work.path());
    until_marked(work.path(), "computed");
    let cache = cache_on(&server.url(), &prefix, ttl);
    let probe = RedisStore::open(&server.url(), &prefix).unwrap();
    let memo_key = cache
        .memoize("fetch")
        .wrap(|x: u64| x * 3)
        .unwrap()
        .key_for(&14)
        .unwrap();
    // Longer than the TTL: the live holder keeps its lease only by renewing it.
    std::thread::sleep(ttl + ttl / 2);
    assert!(
        probe.try_lease(&memo_key, ttl).unwrap().is_none(),
        "a live holder slower than its TTL keeps the lease"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();

    let computed = AtomicUsize::new(0);
    let held_by_us = AtomicBool::new(false);
    let memo = cache
        .memoize("fetch")
        .wrap(|x: u64| {
            computed.fetch_add(1, Ordering::SeqCst);
            // The lease is ours (taken over), not skipped after the 60 s lease timeout.
            let free = probe.try_lease(&memo_key, ttl).unwrap().is_some();
            held_by_us.store(!free, Ordering::SeqCst);
            x * 3
        })
        .unwrap();
    assert_eq!(memo.call(14), 42);
    assert_eq!(computed.load(Ordering::SeqCst), 1);
    assert!(
        held_by_us.load(Ordering::SeqCst),
        "computed under the lease"
    );
    assert!(
        probe.try_lease(&memo_key, ttl).unwrap().is_some(),
        "released after the value was stored"
    );
}

#[test]
fn with_the_server_down_a_memoized_call_computes_counts_the_error_and_recovers() {
    let Some(mut server) = Server::start(&[]) else {
        return;
    };
    let cache = cache_on(&server.url(), &prefix("down"), Duration::from_secs(2));
    let computed = AtomicUsize::new(0);
    let memo = cache
        .memoize("square")
        .wrap(|x: u64| {
            computed.fetch_add(1, Ordering::SeqCst);
            x * x
        })
        .unwrap();
    assert_eq!(memo.call(3), 9);
    assert_eq!(memo.call(3), 9);
    assert_eq!(
        computed.load(Ordering::SeqCst),
        1,
        "a hit while the server is up"
    );

    server.kill();
    let errors_before = cache.stats().total.errors;
    assert_eq!(memo.call(3), 9, "computed without the cache");
    assert_eq!(memo.call(4), 16);
    assert_eq!(computed.load(Ordering::SeqCst), 3);
    let errors = cache.stats().total.errors - errors_before;
    // Each call: its lookup, its lease and its write failed, and each was counted.
    assert!(errors >= 4, "errors counted: {errors}");
    let err = memo.try_call(5).unwrap_err();
    assert!(
        matches!(&err, cacher::Error::Store(e) if e.is_unavailable()),
        "a strict call reports the server as unavailable, and does not compute: {err:?}"
    );

    server.restart();
    assert_eq!(memo.call(6), 36);
    assert_eq!(memo.call(6), 36);
    assert_eq!(
        computed.load(Ordering::SeqCst),
        4,
        "the same cache stores and hits again once the server is back"
    );
}
