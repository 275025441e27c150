//! Expiry: TTLs, deadlines, cleanup (also on a background thread). Expired values are never returned.

use super::*;

#[test]
fn expired_entries_are_never_returned_even_before_cleanup() {
    let t = env();
    let clock = &t.clock;
    let cache = t.builder().ttl(Duration::from_secs(60)).build().unwrap();
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
    let t = env();
    let (clock, cache) = (&t.clock, t.cache());
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
    let t = env();
    let clock = &t.clock;
    let cache = t.builder().ttl(Duration::from_secs(60)).build().unwrap();
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
    let t = env();
    let clock = &t.clock;
    let cache = t
        .builder()
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
    let t = env();
    let (clock, store) = (&t.clock, &t.store);
    let cache = t.builder().ttl(Duration::from_secs(10)).build().unwrap();
    for i in 0..5 {
        cache.put(format!("old{i}"), &i).unwrap();
    }
    clock.advance(Duration::from_secs(10));
    cache.put("new", &1).unwrap();
    let report = cache.cleanup().unwrap();
    assert_eq!((report.scanned, report.expired), (6, 5));
    assert_eq!(store.len().unwrap(), 1);
}

#[test]
fn background_cleanup_runs_at_once_and_stops_when_dropped() {
    let t = env();
    let clock = &t.clock;
    let cache = t.builder().ttl(Duration::from_secs(1)).build().unwrap();
    cache.put("a", &1).unwrap();
    clock.advance(Duration::from_secs(2));
    // The thread cleans up once at start; dropping the handle stops and joins it.
    let handle = cache.spawn_cleanup(Duration::from_secs(3600));
    drop(handle);
    assert!(cache.store().is_empty().unwrap());
}

/// A store that records the deadline each write was given (RedisStore turns it into
/// `PEXPIREAT`, so Redis drops expired values itself).
struct DeadlineRecorder {
    inner: MemoryStore,
    deadlines: std::sync::Mutex<Vec<Option<u64>>>,
}

impl Store for DeadlineRecorder {
    fn read(&self, key: &[u8]) -> cacher::store::Result<Option<cacher::store::Blob>> {
        self.inner.read(key)
    }
    fn put(&self, key: &[u8], value: &[u8]) -> cacher::store::Result<()> {
        self.put_with_deadline(key, value, None)
    }
    fn put_with_deadline(
        &self,
        key: &[u8],
        value: &[u8],
        deadline_ms: Option<u64>,
    ) -> cacher::store::Result<()> {
        self.deadlines.lock().unwrap().push(deadline_ms);
        self.inner.put(key, value)
    }
    fn put_many_with_deadlines(
        &self,
        entries: &[(&[u8], &[u8], Option<u64>)],
    ) -> cacher::store::Result<()> {
        for &(key, value, deadline_ms) in entries {
            self.put_with_deadline(key, value, deadline_ms)?;
        }
        Ok(())
    }
    fn delete(&self, key: &[u8]) -> cacher::store::Result<bool> {
        self.inner.delete(key)
    }
    fn keys(&self) -> cacher::store::Result<cacher::store::KeyIter<'_>> {
        self.inner.keys()
    }
    fn flush(&self) -> cacher::store::Result<()> {
        self.inner.flush()
    }
}

/// A cache at `T0` with `ttl`, on a store that records the deadline of each write.
fn recording_deadlines(ttl: Duration) -> (Cache, Arc<DeadlineRecorder>) {
    let store = Arc::new(DeadlineRecorder {
        inner: MemoryStore::new(),
        deadlines: Default::default(),
    });
    let cache = Cache::builder()
        .store(store.clone())
        .clock(ManualClock::new(T0))
        .ttl(ttl)
        .build()
        .unwrap();
    (cache, store)
}

#[test]
fn the_store_is_given_each_values_expiry_deadline() {
    let (cache, store) = recording_deadlines(Duration::from_secs(3600));
    cache.put("a", &1u32).unwrap();
    cache
        .put_with_ttl("b", &2u32, Duration::from_secs(10))
        .unwrap();
    let memo = cache.memoize("deadline").wrap(|x: u32| x + 1).unwrap();
    memo.call(1);
    assert_eq!(
        *store.deadlines.lock().unwrap(),
        [
            Some(T0 + 3_600_000),
            Some(T0 + 10_000),
            Some(T0 + 3_600_000)
        ]
    );
}

#[test]
fn a_batch_store_gives_the_store_each_values_expiry_deadline() {
    let (cache, store) = recording_deadlines(Duration::from_secs(60));
    let double = cache
        .memoize("deadline_batch")
        .wrap_batch(|xs: Vec<u32>| xs.iter().map(|x| x * 2).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(double.call_many([1, 2]).unwrap(), vec![2, 4]);
    assert_eq!(
        *store.deadlines.lock().unwrap(),
        [Some(T0 + 60_000), Some(T0 + 60_000)]
    );
}
