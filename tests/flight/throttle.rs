//! The throttle of fetch-style functions: a minimum delay with jitter between real calls of
//! one group, never on hits, shared by threads and (through the store) by processes. Time is
//! a `ManualClock` and sleeping is recorded, never real.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacher::store::{DirStore, MemoryStore};
use cacher::throttle::{host_of, Sleeper, Throttle};
use cacher::{Cache, Clock, Error, ManualClock};

/// Records each sleep and, when `advance`, moves the clock by it as a real sleep would.
#[derive(Debug, Clone)]
struct FakeSleep {
    clock: ManualClock,
    advance: bool,
    slept: Arc<Mutex<Vec<u64>>>,
}

impl Sleeper for FakeSleep {
    fn sleep(&self, d: Duration) {
        self.slept.lock().unwrap().push(d.as_millis() as u64);
        if self.advance {
            self.clock.advance(d);
        }
    }
}

fn fake(advance: bool) -> (ManualClock, FakeSleep) {
    let clock = ManualClock::new(1_000_000);
    let sleep = FakeSleep {
        clock: clock.clone(),
        advance,
        slept: Arc::default(),
    };
    (clock, sleep)
}

fn by_host(delay_ms: u64, variance: f64) -> Throttle<String> {
    Throttle::per_host(Duration::from_millis(delay_ms), variance, |u: &String| {
        host_of(u).to_string()
    })
    .unwrap()
}

#[test]
fn real_calls_of_one_host_are_spaced_by_the_delay_and_hits_never_wait() {
    let (clock, sleep) = fake(true);
    let cache = Cache::builder().store(MemoryStore::new()).build().unwrap();
    let fetch = cache
        .memoize("fetch")
        .wrap(|url: String| url.len())
        .unwrap()
        .throttle(
            by_host(100, 0.0)
                .clock(clock.clone())
                .sleeper(sleep.clone()),
        );
    fetch.call("https://a.example/1".into());
    fetch.call("https://a.example/1".into()); // a hit
    fetch.call("https://a.example/1".into()); // a hit
    fetch.call("https://a.example/2".into()); // same host: waits
    fetch.call("https://b.example/1".into()); // another host: does not
    clock.advance(Duration::from_millis(250));
    fetch.call("https://a.example/3".into()); // long after: does not
    assert_eq!(*sleep.slept.lock().unwrap(), vec![100]);
    assert_eq!(cache.stats().total.hits, 2);
}

#[test]
fn the_jitter_is_delay_times_one_plus_variance_times_u_minus_a_half() {
    let (_clock, sleep) = fake(true);
    let draws = Arc::new(Mutex::new(vec![0.0, 0.75, 0.5].into_iter()));
    let throttle = by_host(1000, 1.0)
        .clock(sleep.clock.clone())
        .sleeper(sleep.clone())
        .random(move || draws.lock().unwrap().next().unwrap());
    let url = "http://h/".to_string();
    for _ in 0..3 {
        throttle.wait(&url).unwrap();
    }
    // U = 0 gives 1000 * (1 + 1 * -0.5) = 500; U = 0.75 gives 1250.
    assert_eq!(*sleep.slept.lock().unwrap(), vec![500, 1250]);
}

#[test]
fn threads_share_one_pace_and_queue_in_distinct_slots() {
    let (_clock, sleep) = fake(false);
    let throttle = by_host(100, 0.0)
        .clock(sleep.clock.clone())
        .sleeper(sleep.clone());
    std::thread::scope(|s| {
        for i in 0..4 {
            let t = throttle.clone();
            s.spawn(move || t.wait(&format!("https://one.host/{i}")).unwrap());
        }
    });
    let mut slept = sleep.slept.lock().unwrap().clone();
    slept.sort();
    // The first starts at once (no sleep); the others at 100, 200 and 300 ms.
    assert_eq!(slept, vec![100, 200, 300]);
}

#[test]
fn throttles_of_two_processes_on_one_store_share_the_pace() {
    let dir = tempfile::tempdir().unwrap();
    let store = DirStore::open(dir.path()).unwrap();
    let (clock, sleep) = fake(false);
    // Two throttles that share nothing in memory, as two processes would.
    let first = by_host(100, 0.0)
        .clock(clock.clone())
        .sleeper(sleep.clone())
        .across_processes(&store)
        .unwrap();
    let second = by_host(100, 0.0)
        .clock(clock.clone())
        .sleeper(sleep.clone())
        .across_processes(&store)
        .unwrap();
    let url = "https://shared.host/x".to_string();
    assert_eq!(first.wait(&url).unwrap(), Duration::ZERO);
    assert_eq!(second.wait(&url).unwrap(), Duration::from_millis(100));
    assert_eq!(first.wait(&url).unwrap(), Duration::from_millis(200));
    assert_eq!(clock.now_ms(), 1_000_000);

    let err = by_host(1, 0.0)
        .across_processes(&MemoryStore::new())
        .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

#[test]
fn a_variance_outside_zero_to_two_is_refused() {
    for bad in [-0.1, 2.5, f64::NAN, f64::INFINITY] {
        let err = Throttle::<String>::global(Duration::from_secs(1), bad).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{bad}: {err}");
    }
}
