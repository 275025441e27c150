//! Issue 8: a plain `call` logs the first store error of each kind through `tracing` and
//! counts every one. Its own test binary: tracing caches each callsite's interest globally,
//! so another test thread meeting the log callsite with no subscriber made this flaky.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

use cacher::store::LogStore;
use cacher::Cache;

/// A cache over a store that refuses every write (a read-only `LogStore`).
fn read_only_cache(dir: &std::path::Path) -> Cache {
    let path = dir.join("log");
    drop(LogStore::open(&path).unwrap());
    let store = LogStore::options().read_only(true).open(&path).unwrap();
    Cache::builder().store(store).build().unwrap()
}

/// Counts the `tracing` events it is sent.
#[derive(Default)]
struct CountEvents(std::sync::atomic::AtomicUsize);

impl tracing::Subscriber for CountEvents {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {
        self.0.fetch_add(1, SeqCst);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn call_logs_the_first_error_of_each_kind_and_counts_every_one() {
    let dir = tempfile::tempdir().unwrap();
    let cache = read_only_cache(dir.path());
    let f = cache.memoize("f").wrap(|x: u32| x * 3).unwrap();
    let events = Arc::new(CountEvents::default());
    tracing::subscriber::with_default(events.clone(), || {
        for x in 0..3 {
            assert_eq!(f.call(x), x * 3);
        }
    });
    assert_eq!(
        events.0.load(SeqCst),
        1,
        "one log line for the first write error"
    );
    assert_eq!(cache.stats().namespaces["f"].errors, 3);
}
