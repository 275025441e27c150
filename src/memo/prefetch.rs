//! Background work of a memoized function shared in an `Arc`: [`Memo::prefetch`] computes
//! missing values on a few threads, and [`Memo::call_stale_while_revalidate`] serves an
//! expired value while one refresh runs in the background (one among the processes sharing
//! the store, too: a refresh whose key's lease another process holds is left to it).
//!
//! Both need the function and its arguments to move to other threads, hence the receiver
//! `self: &Arc<Memo>` and the `Send + 'static` bounds; the plain calls keep none of them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use cacher_store::lease::Claim;
use serde::de::DeserializeOwned;

use crate::clock::duration_ms;
use crate::memo::args::MemoFn;
use crate::memo::{Call, Memo, Status, StorePolicy};
use crate::stats::{timed, RELAXED};
use crate::{Cache, Result};

/// The handle of a [`Memo::prefetch`]: wait for it, or cancel what has not started. Dropping
/// it lets the work go on in the background.
#[derive(Debug)]
#[must_use = "dropping the handle lets the prefetch run on unobserved; call wait() or cancel()"]
pub struct Prefetch {
    cancel: Arc<AtomicBool>,
    progress: Arc<Progress>,
    workers: Vec<JoinHandle<()>>,
}

/// What a prefetch did, from [`Prefetch::wait`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrefetchReport {
    /// Inputs whose value was already cached.
    pub hits: u64,
    /// Inputs the function ran for (its value stored unless the policy keeps no such value).
    pub computed: u64,
    /// Inputs that failed: a cache error or a panic of the function.
    pub failed: u64,
    /// Inputs not started because the prefetch was cancelled.
    pub cancelled: u64,
}

#[derive(Debug, Default)]
struct Progress {
    hits: AtomicU64,
    computed: AtomicU64,
    failed: AtomicU64,
    cancelled: AtomicU64,
}

impl Prefetch {
    /// Stops starting new inputs; computations already running finish and are stored.
    pub fn cancel(&self) {
        self.cancel.store(true, Relaxed);
    }

    /// Whether every worker has finished.
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(JoinHandle::is_finished)
    }

    /// Blocks until every input is done (or skipped after a cancel) and says what happened.
    pub fn wait(mut self) -> PrefetchReport {
        for w in self.workers.drain(..) {
            // A worker catches the function's panics itself; it cannot panic otherwise.
            let _ = w.join();
        }
        let p = &self.progress;
        PrefetchReport {
            hits: p.hits.load(Relaxed),
            computed: p.computed.load(Relaxed),
            failed: p.failed.load(Relaxed),
            cancelled: p.cancelled.load(Relaxed),
        }
    }
}

/// How a [`Memo::call_stale_while_revalidate`] value was served.
#[derive(Debug)]
#[non_exhaustive]
pub enum Freshness {
    /// A fresh cached value.
    Fresh,
    /// Computed by this call: nothing was cached, or the value was past its grace period.
    Computed,
    /// An expired value within its grace period. `refresh` is the background refresh this
    /// call started, or `None` when one was running already.
    Stale {
        /// The refresh started by this call.
        refresh: Option<Refresh>,
    },
}

/// A background refresh started by [`Memo::call_stale_while_revalidate`].
#[derive(Debug)]
#[must_use = "dropping the handle lets the refresh run on unobserved"]
pub struct Refresh(JoinHandle<bool>);

impl Refresh {
    /// Blocks until the refresh ends; `true` when it stored a new value (or found one that
    /// another caller stored, or left the refresh to another process holding the key's
    /// lease), `false` when it failed (counted in `refresh_failures`).
    pub fn wait(self) -> bool {
        self.0.join().unwrap_or(false)
    }
}

impl<A, R, F, P> Memo<A, R, F, P>
where
    A: Send + 'static,
    R: Send + 'static,
    F: MemoFn<A, R> + Send + Sync + 'static,
    P: StorePolicy<R>,
{
    /// Computes the values of `inputs` that are not cached on at most `threads` background
    /// threads (at least one; never more threads than inputs), each input through the usual
    /// memoized path (single-flight included, so a caller asking for a key being prefetched
    /// waits for it instead of computing it again). Returns at once with a handle.
    ///
    /// ```
    /// use cacher::{Cache, Call, store::MemoryStore};
    /// use std::sync::Arc;
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let square = Arc::new(cache.memoize("square").wrap(|x: u64| x * x)?);
    /// square.call(2);
    /// let report = square.prefetch(1..=4, 2).wait();
    /// assert_eq!((report.hits, report.computed), (1, 3));
    /// assert_eq!(square.call_with(3, Call::cache_only())?, 9);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn prefetch(
        self: &Arc<Self>,
        inputs: impl IntoIterator<Item = A>,
        threads: usize,
    ) -> Prefetch {
        let queue: VecDeque<A> = inputs.into_iter().collect();
        let threads = threads.max(1).min(queue.len());
        let queue = Arc::new(Mutex::new(queue));
        let cancel = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let workers = (0..threads)
            .map(|_| {
                let (memo, queue, cancel, progress) = (
                    self.clone(),
                    queue.clone(),
                    cancel.clone(),
                    progress.clone(),
                );
                std::thread::spawn(move || loop {
                    let Some(args) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
                    else {
                        return;
                    };
                    if cancel.load(Relaxed) {
                        progress.cancelled.fetch_add(1, Relaxed);
                        continue;
                    }
                    let done = catch_unwind(AssertUnwindSafe(|| {
                        memo.call_with_status(args, Call::default()).map(|(_, s)| s)
                    }));
                    let counter = match done {
                        Ok(Ok(Status::Hit)) => &progress.hits,
                        Ok(Ok(_)) => &progress.computed,
                        Ok(Err(_)) | Err(_) => &progress.failed,
                    };
                    counter.fetch_add(1, Relaxed);
                })
            })
            .collect();
        Prefetch {
            cancel,
            progress,
            workers,
        }
    }

    /// Like [`Memo::call_with_status`], but a value past its expiry and within `grace` of it
    /// is returned at once while one refresh runs on a background thread
    /// ([`Freshness::Stale`]). A refresh that fails (the policy keeps no value, the function
    /// panics, or storing fails) leaves the stale value in place, counted in the stats'
    /// `refresh_failures`; the value is served stale for at most `grace` past its expiry,
    /// after which a call computes it as on a miss. A stale call starts a refresh only when
    /// none runs for its key.
    ///
    /// ```
    /// use cacher::{Cache, ManualClock, memo::Freshness, store::MemoryStore};
    /// use std::sync::Arc;
    /// use std::time::Duration;
    /// let clock = ManualClock::new(0);
    /// let cache = Cache::builder()
    ///     .store(MemoryStore::new())
    ///     .clock(clock.clone())
    ///     .ttl(Duration::from_secs(60))
    ///     .build()?;
    /// let now = Arc::new(cache.memoize("now").wrap({
    ///     let clock = clock.clone();
    ///     move |_: ()| cacher::Clock::now_ms(&clock)
    /// })?);
    /// let grace = Duration::from_secs(3600);
    /// assert_eq!(now.call_stale_while_revalidate((), grace)?.0, 0);
    /// clock.advance(Duration::from_secs(61));
    /// let (old, freshness) = now.call_stale_while_revalidate((), grace)?;
    /// assert_eq!(old, 0); // served stale, at once
    /// let Freshness::Stale { refresh: Some(refresh) } = freshness else { unreachable!() };
    /// assert!(refresh.wait());
    /// assert_eq!(now.call_stale_while_revalidate((), grace)?.0, 61_000);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn call_stale_while_revalidate(
        self: &Arc<Self>,
        args: A,
        grace: Duration,
    ) -> Result<(R, Freshness)> {
        let key = self.key_for(&args)?;
        let now = self.id.cache.now_ms();
        let stale = match read_any::<P::Stored>(&self.id.cache, &key, self.id.fingerprint) {
            Some((value, expiry)) if expiry.is_none_or(|e| now < e) => {
                self.id.stats.hits.fetch_add(1, RELAXED);
                return Ok((P::restore(value), Freshness::Fresh));
            }
            Some((value, Some(e))) if now < e.saturating_add(duration_ms(grace)) => value,
            _ => {
                let (value, status) = self.call_with_status(args, Call::default())?;
                let freshness = match status {
                    Status::Hit => Freshness::Fresh,
                    _ => Freshness::Computed,
                };
                return Ok((value, freshness));
            }
        };
        self.id.stats.hits.fetch_add(1, RELAXED);
        let refresh = if self.id.cache.inner.flights.is_computing(&key) {
            None
        } else {
            let memo = self.clone();
            Some(Refresh(std::thread::spawn(move || {
                memo.refresh(&key, args)
            })))
        };
        Ok((P::restore(stale), Freshness::Stale { refresh }))
    }

    /// The background refresh of `key`: leads its flight and takes its lease (or leaves it to
    /// whoever holds either), looks again, computes and stores.
    fn refresh(&self, key: &[u8], args: A) -> bool {
        let Some(_flight) = self.id.cache.inner.flights.try_lead(key) else {
            return true;
        };
        // Among processes too, without waiting: one holding the key's lease is refreshing it
        // (or computing it), so the stale value stays until that one stores. Declared after
        // the flight, so it is released first.
        let _lease = match crate::flight::turn::terms(&self.id.cache) {
            None => None,
            Some(terms) => match self.id.cache.store().lease(key, &terms.without_waiting()) {
                Ok(Some(Claim::Won { lease, .. })) => Some(lease),
                Ok(Some(Claim::TimedOut)) => return true,
                Ok(None) => None,
                Err(e) => {
                    // Refreshing without the lease risks a duplicate, not a wrong value.
                    self.id.stats.errors.fetch_add(1, RELAXED);
                    tracing::debug!(error = %e, "cacher: no lease for a refresh");
                    None
                }
            },
        };
        let now = self.id.cache.now_ms();
        if let Some((_, expiry)) = read_any::<P::Stored>(&self.id.cache, key, self.id.fingerprint) {
            if expiry.is_none_or(|e| now < e) {
                return true; // refreshed by another caller meanwhile
            }
        }
        let stats = &self.id.stats;
        let computed = catch_unwind(AssertUnwindSafe(|| timed(stats, || self.f.call_fn(args))));
        let stored = computed.ok().and_then(|result| {
            let value = P::stored(&result)?;
            let expires = self
                .id
                .ttl
                .map(|t| self.id.cache.now_ms().saturating_add(duration_ms(t)));
            self.id
                .cache
                .store_value(key, value, expires, Some(self.id.fingerprint), stats)
                .inspect_err(|_| {
                    stats.errors.fetch_add(1, RELAXED);
                })
                .ok()
        });
        if stored.is_none() {
            stats.refresh_failures.fetch_add(1, RELAXED);
        }
        stored.is_some()
    }
}

/// `key`'s value and its expiry in ms (`None`: never), expired or not, without deleting it:
/// what a stale-while-revalidate call may still serve. Anything unreadable (missing, damaged,
/// another type) is `None`, and the ordinary path then deals with it.
fn read_any<T: DeserializeOwned>(
    cache: &Cache,
    key: &[u8],
    fingerprint: u64,
) -> Option<(T, Option<u64>)> {
    let blob = cache.store().read(key).ok()??;
    let (header, payload) = cache.registry().open_value(key, &blob).ok()?;
    if header.type_fingerprint().is_some_and(|f| f != fingerprint) {
        return None;
    }
    let value = cache
        .registry()
        .resolve(header.pipeline())
        .ok()?
        .decode(payload)
        .ok()?;
    let meta = header.meta();
    // The same rule as every read (own expiry, cache TTL, deadline), found by probing: the
    // earliest expiry that applies is the value's.
    let expiry = expiry_of(cache, &meta);
    Some((value, expiry))
}

/// When `meta`'s value expires by the cache's rules (`None`: never).
fn expiry_of(cache: &Cache, meta: &cacher_formats::EnvelopeMeta) -> Option<u64> {
    if !cache.is_expired(meta, u64::MAX) {
        return None;
    }
    // `is_expired` is monotone in time: bisect for the first expired millisecond.
    let (mut lo, mut hi) = (0u64, u64::MAX);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if cache.is_expired(meta, mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(lo)
}
