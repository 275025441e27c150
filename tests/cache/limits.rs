//! Entry and byte limits and the eviction policies.

use super::*;

fn limited(policy: Eviction, max: u64) -> Cache {
    env()
        .builder()
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
    let cache = env().builder().max_bytes(10_000).build().unwrap();
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
    let t = env();
    let (clock, store) = (&t.clock, &t.store);
    let first = t.cache();
    for i in 0..10 {
        clock.advance(Duration::from_millis(1));
        first.put(format!("k{i}"), &i).unwrap();
    }
    let reopened = t
        .builder()
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
