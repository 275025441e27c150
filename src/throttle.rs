//! [`Throttle`]: a minimum delay, with random jitter, between the real calls of a fetch-style
//! function, per key group (e.g. per host), shared by threads and optionally by processes.
//!
//! A throttle is attached to a memoized function with [`Memo::throttle`](crate::Memo::throttle)
//! and runs only when the function really runs: a hit never waits.
//!
//! Each group remembers when its next call may start. A caller reserves the slot under a lock
//! (its start is the later of now and that time; the next start is its start plus one jittered
//! delay), releases the lock, and only then sleeps until its start — so threads queue in
//! order and nobody sleeps while holding the lock. With
//! [`across_processes`](Throttle::across_processes) the time lives in a small file beside the
//! store's leases ([`cacher_store::lease::Leases::update_stamp`]) and processes queue alike.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cacher_store::lease::Leases;
use cacher_store::Store;

use crate::clock::{duration_ms, Clock, SystemClock};
use crate::{Error, Result};

/// How a [`Throttle`] waits: the thread's sleep, or a test's fake.
pub trait Sleeper: Send + Sync + std::fmt::Debug {
    /// Blocks for `d`.
    fn sleep(&self, d: Duration);
}

/// The real sleep ([`std::thread::sleep`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct ThreadSleeper;

impl Sleeper for ThreadSleeper {
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

type GroupFn<A> = Arc<dyn Fn(&A) -> String + Send + Sync>;

/// A minimum delay between real calls, per key group: see the [module docs](self).
///
/// The delay between two calls of a group is `delay * (1 + variance * (U - 0.5))` with `U`
/// uniform in `[0, 1)`, drawn for each call: `variance` 0 is a fixed delay, 1 spreads it over
/// `[0.5, 1.5) * delay`, 2 (the largest allowed) over `[0, 2) * delay`.
///
/// Cheap to clone; clones share their groups' state, so one throttle given to two memoized
/// functions keeps one pace for both.
///
/// ```
/// use cacher::{Cache, store::MemoryStore, throttle::{host_of, Throttle}};
/// use std::time::Duration;
///
/// let cache = Cache::builder().store(MemoryStore::new()).build()?;
/// let throttle = Throttle::per_host(Duration::from_millis(1), 0.5, |url: &String| {
///     host_of(url).to_string()
/// })?;
/// let fetch = cache
///     .memoize("fetch")
///     .wrap(|url: String| format!("body of {url}"))?
///     .throttle(throttle);
/// assert_eq!(fetch.call("https://example.org/a".into()), "body of https://example.org/a");
/// // A hit does not wait; a second URL of the same host waits about 1 ms (0.75..1.25).
/// fetch.call("https://example.org/a".into());
/// fetch.call("https://example.org/b".into());
/// # Ok::<(), cacher::Error>(())
/// ```
pub struct Throttle<A> {
    delay: Duration,
    variance: f64,
    group: GroupFn<A>,
    clock: Arc<dyn Clock>,
    sleeper: Arc<dyn Sleeper>,
    random: Arc<dyn Fn() -> f64 + Send + Sync>,
    /// Each group's earliest next start, in ms of `clock`.
    next: Arc<Mutex<HashMap<String, u64>>>,
    /// Set by [`Throttle::across_processes`]: the shared timestamps.
    shared: Option<Leases>,
}

impl<A> Clone for Throttle<A> {
    fn clone(&self) -> Self {
        Throttle {
            delay: self.delay,
            variance: self.variance,
            group: self.group.clone(),
            clock: self.clock.clone(),
            sleeper: self.sleeper.clone(),
            random: self.random.clone(),
            next: self.next.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<A> std::fmt::Debug for Throttle<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("delay", &self.delay)
            .field("variance", &self.variance)
            .field("across_processes", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl<A> Throttle<A> {
    /// One pace per group, the group of a call being `group(&args)` (a host, an API key, a
    /// tenant). `variance` must be in `[0, 2]` (see the type docs), else
    /// [`Error::Config`].
    pub fn per_group<G, F>(delay: Duration, variance: f64, group: F) -> Result<Self>
    where
        G: Into<String>,
        F: Fn(&A) -> G + Send + Sync + 'static,
    {
        if !(0.0..=2.0).contains(&variance) {
            return Err(Error::Config(format!(
                "a throttle's variance must be between 0 and 2 (a delay of \
                 delay * (1 + variance * (U - 0.5)) never negative), not {variance}"
            )));
        }
        Ok(Throttle {
            delay,
            variance,
            group: Arc::new(move |a| group(a).into()),
            clock: Arc::new(SystemClock),
            sleeper: Arc::new(ThreadSleeper),
            random: Arc::new(fastrand::f64),
            next: Arc::default(),
            shared: None,
        })
    }

    /// [`per_group`](Throttle::per_group) named for its usual use: `host` picks the host out
    /// of the arguments (see [`host_of`]).
    pub fn per_host<F>(delay: Duration, variance: f64, host: F) -> Result<Self>
    where
        F: Fn(&A) -> String + Send + Sync + 'static,
    {
        Self::per_group(delay, variance, host)
    }

    /// One pace for every call.
    pub fn global(delay: Duration, variance: f64) -> Result<Self> {
        Self::per_group(delay, variance, |_: &A| "")
    }

    /// The clock the pace is kept by (default the system clock); tests inject a
    /// [`ManualClock`](crate::ManualClock).
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How a call waits (default [`ThreadSleeper`]); tests inject one that moves their clock.
    pub fn sleeper(mut self, sleeper: impl Sleeper + 'static) -> Self {
        self.sleeper = Arc::new(sleeper);
        self
    }

    /// The source of `U` in the jitter, uniform in `[0, 1)` (default `fastrand::f64`); a value
    /// outside is clamped into it.
    pub fn random(mut self, random: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.random = Arc::new(random);
        self
    }

    /// Keeps the pace across every process that uses `store` with a throttle of the same
    /// groups: the next start of each group is kept in a file beside the store's leases.
    /// Fails with [`Error::Config`] for a store no other process sees
    /// (one without [`Store::lease_dir`]).
    pub fn across_processes(mut self, store: &dyn Store) -> Result<Self> {
        let dir = store.lease_dir().ok_or_else(|| {
            Error::Config(
                "a throttle across processes needs a store shared by processes \
                 (DirStore, LogStore, LmdbStore)"
                    .into(),
            )
        })?;
        self.shared = Some(Leases::open(dir)?);
        Ok(self)
    }

    /// The delay until the call after one starting now: `delay * (1 + variance * (U - 0.5))`.
    fn jittered_ms(&self) -> u64 {
        let u = (self.random)().clamp(0.0, 1.0 - f64::EPSILON);
        let factor = 1.0 + self.variance * (u - 0.5);
        // `factor` is in [0, 2): the product is finite and not negative.
        (duration_ms(self.delay) as f64 * factor).round() as u64
    }

    /// Waits until a call for `args` may start, and reserves the slot after it; returns how
    /// long it slept. Called by a throttled memoized function just before the function runs.
    pub fn wait(&self, args: &A) -> Result<Duration> {
        let group = (self.group)(args);
        let now = self.clock.now_ms();
        let reserve = |next: Option<u64>| {
            let start = next.unwrap_or(0).max(now);
            (start, start.saturating_add(self.jittered_ms()))
        };
        let start = match &self.shared {
            None => {
                let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
                let slot = next.entry(group).or_insert(0);
                let (start, after) = reserve(Some(*slot));
                *slot = after;
                start
            }
            Some(leases) => {
                let mut start = now;
                leases.update_stamp(format!("throttle:{group}").as_bytes(), |next| {
                    let (s, after) = reserve(next);
                    start = s;
                    after
                })?;
                start
            }
        };
        let pause = Duration::from_millis(start - now);
        if !pause.is_zero() {
            self.sleeper.sleep(pause);
        }
        Ok(pause)
    }
}

/// The host (and port) of `url`: what lies between `scheme://` (and any `user@`) and the next
/// `/`, `?` or `#`; the whole of `url` when it has no scheme.
///
/// ```
/// use cacher::throttle::host_of;
/// assert_eq!(host_of("https://api.example.org:8443/v1/items?q=1"), "api.example.org:8443");
/// assert_eq!(host_of("http://user@example.org"), "example.org");
/// ```
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority.rsplit_once('@').map_or(authority, |(_, h)| h)
}
