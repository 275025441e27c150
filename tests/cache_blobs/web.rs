//! The `web_cache` example, run against a temp directory: a local server, `ureq`, a memoized
//! per-host-throttled fetch; the second run is served from disk.

#[allow(dead_code)]
#[path = "../../examples/web_cache.rs"]
mod example;

use std::sync::atomic::Ordering;
use std::time::Duration;

#[test]
fn the_web_cache_example_downloads_once_and_serves_the_second_run_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let server = example::Server::start(300_000).unwrap();
    let (urls, throttle) = example::setup(&server, 4, Duration::from_millis(20));
    let first = example::run(dir.path(), &urls, &throttle).unwrap();
    assert_eq!((first.fetched, first.hits), (4, 0));
    assert_eq!(first.bytes, 4 * 300_000);
    assert_eq!((first.stats.total.misses, first.stats.total.hits), (4, 0));
    let second = example::run(dir.path(), &urls, &throttle).unwrap();
    assert_eq!((second.fetched, second.hits), (0, 4));
    assert_eq!(second.bytes, 4 * 300_000);
    assert_eq!((second.stats.total.hits, second.stats.total.stores), (4, 0));
    assert_eq!(
        server.served.load(Ordering::SeqCst),
        4,
        "one request per page, ever"
    );
    // Headers came through as metadata.
    let cache = cacher::Cache::open(dir.path()).unwrap();
    let key = cache
        .memoize_blob("web_cache::fetch")
        .version(1)
        .key_for(&urls[0])
        .unwrap();
    let entry = cache
        .get_blob::<example::ResponseMeta>(key)
        .unwrap()
        .unwrap();
    assert_eq!(entry.meta().status, 200);
    assert!(entry
        .meta()
        .headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v == "application/octet-stream"));
}
