//! Per-namespace counters and their display.

use super::*;

#[test]
fn stats_count_bytes_and_time_per_namespace() {
    let cache = env().cache();
    let f = cache.memoize("f").wrap(|x: u32| vec![x; 100]).unwrap();
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
