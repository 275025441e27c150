//! No silent failure: configuration mistakes fail when the memoized function is built, write
//! errors reach `try_call`/`call_with`, and the stats display shows what went wrong.

use super::*;
use cacher::store::LogStore;

/// A cache over a store that refuses every write (a read-only `LogStore`).
fn read_only_cache(dir: &std::path::Path) -> Cache {
    let path = dir.join("log");
    drop(LogStore::open(&path).unwrap());
    let store = LogStore::options().read_only(true).open(&path).unwrap();
    Cache::builder().store(store).build().unwrap()
}

/// Issue 8: `.ignore("requestid")` (a typo) made every call recompute, visible only in a
/// hidden counter; now building the memoized function fails and names the arguments.
#[test]
fn ignoring_a_name_that_is_not_an_argument_fails_when_built() {
    let cache = env().cache();
    let err = cache
        .memoize("f")
        .args(["x", "request_id"])
        .ignore("requestid")
        .wrap(|(x, _id): (u32, String)| x)
        .err()
        .expect("a typo in ignore(..) is refused");
    assert!(matches!(err, Error::Config(_)), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("requestid") && msg.contains("request_id"),
        "{msg}"
    );
    let err = cache
        .memoize("g")
        .ignore("x")
        .wrap(|x: u32| x)
        .err()
        .expect("ignore(..) without args(..) is refused");
    assert!(err.to_string().contains("args"), "{err}");
}

/// Issue 8: `Memo::try_call` swallowed write errors (a read-only store gave `Ok`).
#[test]
fn try_call_and_call_with_report_store_write_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cache = read_only_cache(dir.path());
    let f = cache.memoize("f").wrap(|x: u32| x + 1).unwrap();
    assert!(f.try_call(1).is_err(), "the write failed");
    assert!(f.call_with(1, Call::refresh()).is_err());
    // `call` behaves like the function: the value, and the error counted.
    assert_eq!(f.call(1), 2);
    assert_eq!(cache.stats().namespaces["f"].errors, 1);
}

#[test]
fn the_stats_display_shows_errors_mismatches_and_the_hit_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let cache = read_only_cache(dir.path());
    let f = cache.memoize("f").wrap(|x: u32| x).unwrap();
    f.call(1);
    let shown = cache.stats().to_string();
    for word in ["errors 1", "mismatches 0", "hit ratio 0.0%"] {
        assert!(shown.contains(word), "{word:?} missing from:\n{shown}");
    }
}
