//! A Tiered memory tier in front of Redis, kept right when another client writes.

use std::time::{Duration, Instant};

use cacher_store::redis::{Invalidated, InvalidationWatch, RedisStore};
use cacher_store::{Store, Tiered};

use crate::server::Server;
use crate::unique_prefix;

fn watched(redis: &RedisStore) -> (Tiered<RedisStore>, InvalidationWatch) {
    let tiered = Tiered::new(redis.clone(), 1 << 20);
    let hot = tiered.invalidator();
    let watch = redis
        .watch_invalidations(move |change| match change {
            Invalidated::Key(k) => hot.invalidate(k),
            Invalidated::All => hot.invalidate_all(),
        })
        .unwrap();
    (tiered, watch)
}

/// Reads `key` until it gives `want`, for at most 10 s (the notice is asynchronous).
fn eventually(store: &impl Store, key: &[u8], want: Option<&[u8]>) {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let got = store.get(key).unwrap();
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < end,
            "still {got:?}, want {want:?}: the hot tier was not invalidated"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn another_clients_overwrite_and_delete_reach_the_hot_tier() {
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (one, two) = server.two_clients("inval");
    let (tiered, _watch) = watched(&one);
    tiered.put(b"k", b"v1").unwrap();
    // Our own writes are reported too and drop our hot copies once; read until k is hot again.
    let end = Instant::now() + Duration::from_secs(10);
    while tiered.hot_bytes() == 0 {
        assert_eq!(tiered.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
        assert!(Instant::now() < end, "k never stayed in the hot tier");
        std::thread::sleep(Duration::from_millis(5));
    }
    two.put(b"k", b"v2").unwrap();
    eventually(&tiered, b"k", Some(b"v2"));
    two.delete(b"k").unwrap();
    eventually(&tiered, b"k", None);
    // A flush of the whole database drops every hot copy.
    tiered.put(b"other", b"x").unwrap();
    eventually(&tiered, b"other", Some(b"x"));
    redis::cmd("FLUSHDB").exec(&mut server.raw("")).unwrap();
    eventually(&tiered, b"other", None);
}

#[test]
fn without_a_watch_the_hot_tier_keeps_a_stale_value() {
    // The observation the watch fixes: the memory tier alone never learns of the other write.
    let Some(server) = Server::start(&[]) else {
        return;
    };
    let (one, two) = server.two_clients("stale");
    let tiered = Tiered::new(one, 1 << 20);
    tiered.put(b"k", b"v1").unwrap();
    two.put(b"k", b"v2").unwrap();
    assert_eq!(tiered.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
}

#[test]
fn a_watch_that_loses_the_server_drops_everything_and_resumes() {
    let Some(mut server) = Server::start(&[]) else {
        return;
    };
    let prefix = unique_prefix("resume");
    let one = server.store(&prefix);
    let (tiered, _watch) = watched(&one);
    tiered.put(b"k", b"v1").unwrap();
    eventually(&tiered, b"k", Some(b"v1"));
    server.restart();
    // Written while the watch may not be back yet: the hot copy must still go.
    let two = server.store(&prefix);
    two.put(b"k", b"v2").unwrap();
    eventually(&tiered, b"k", Some(b"v2"));
    // And the watch is live again: a later write reaches it too.
    eventually(&tiered, b"k", Some(b"v2"));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        two.put(b"k", b"v3").unwrap();
        if tiered.get(b"k").unwrap().as_deref() == Some(&b"v3"[..]) {
            break;
        }
        assert!(Instant::now() < end, "the watch did not resume");
        std::thread::sleep(Duration::from_millis(20));
    }
    two.put(b"k", b"v4").unwrap();
    eventually(&tiered, b"k", Some(b"v4"));
}
