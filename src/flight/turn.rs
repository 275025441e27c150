//! Whose turn it is to compute a missed key: the in-process flight first, then (for a store
//! shared by processes) the key's lease; after each wait the cache is looked up again.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cacher_store::lease::{Claim, Held, Leases, Terms};
use serde::de::DeserializeOwned;

use super::{FlightGuard, Role, Ticket};
use crate::stats::{Atomics, RELAXED};
use crate::Cache;

/// How long a caller waits for another process's lease on the same key before it computes
/// itself, unless the memoized function says otherwise. Long enough for a slow web call,
/// short enough that a stuck process costs a duplicate computation and not a hung program.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a lease outlives a holder that died, on stores whose leases end by a TTL rather
/// than with the holder's process (Redis). A live holder renews its lease, so this bounds
/// only the takeover after a crash.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(10);

/// How long a caller waits for another thread or task of its process computing the same key
/// before it computes itself: the in-process twin of [`DEFAULT_LEASE_TIMEOUT`].
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Every how many claimed leases the cache removes lock files left by dead holders, and how
/// many directory entries one cleaning looks at: the first claim of a process cleans, then
/// one claim in 1,024, each at a bounded cost.
const CLEAN_EVERY: u64 = 1024;
const CLEAN_AT_MOST: u64 = 256;

impl crate::CacheBuilder {
    /// How long a memoized call that missed waits for another process computing the same key
    /// on a shared store (DirStore, LogStore, LmdbStore, RedisStore: see
    /// [`Store::lease`](cacher_store::Store::lease)) before it computes itself; `None` turns
    /// cross-process single-flight off. Default [`DEFAULT_LEASE_TIMEOUT`].
    ///
    /// ```
    /// use cacher::{Cache, store::DirStore};
    /// use std::time::Duration;
    /// let dir = tempfile::tempdir()?;
    /// let cache = Cache::builder()
    ///     .store(DirStore::open(dir.path())?)
    ///     .lease_timeout(Some(Duration::from_secs(120)))
    ///     .build()?;
    /// # let _ = cache;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn lease_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.flights.lease_timeout = timeout;
        self
    }

    /// How long a lease outlives a holder that died, on stores whose leases end by a TTL
    /// (RedisStore; a file lease ends with its holder's process). The holder renews it every
    /// third of `ttl` while it computes. Default [`DEFAULT_LEASE_TTL`].
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// use std::time::Duration;
    /// let cache = Cache::builder()
    ///     .store(MemoryStore::new())
    ///     .lease_ttl(Duration::from_secs(3))
    ///     .build()?;
    /// # let _ = cache;
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.flights.lease_ttl = ttl;
        self
    }

    /// How long a memoized call that missed waits for another thread or task of this process
    /// computing the same key before it computes itself; `None`: as long as the other takes.
    /// Default [`DEFAULT_WAIT_TIMEOUT`].
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// use std::time::Duration;
    /// let cache = Cache::builder()
    ///     .store(MemoryStore::new())
    ///     .wait_timeout(Some(Duration::from_secs(5)))
    ///     .build()?;
    /// # let _ = cache;
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.flights = std::mem::take(&mut self.flights).with_wait_timeout(timeout);
        self
    }
}

/// The outcome of [`turn`].
pub(crate) enum Turn<'c, T> {
    /// Someone else computed and stored it while this caller waited.
    Found(T),
    /// Compute, store, then drop these (the lease first, then the flight).
    Compute(Holds<'c>),
}

/// What a computing caller holds until its value is stored.
#[derive(Default)]
pub(crate) struct Holds<'c> {
    // Field order is drop order: the lease is released before the in-process waiters wake,
    // so they never find it still held by their own process.
    _lease: Option<Held>,
    _flight: Option<FlightGuard<'c>>,
}

/// Waits for `key`'s turn after a lookup that missed (`ticket` taken before it): first among
/// this process's threads, then among the processes sharing the store.
pub(crate) fn turn<'c, T: DeserializeOwned>(
    cache: &'c Cache,
    key: &[u8],
    ticket: Ticket,
    fingerprint: Option<u64>,
    stats: &Atomics,
) -> Turn<'c, T> {
    let flights = &cache.inner.flights;
    let mut ticket = ticket;
    let flight = loop {
        match flights.lead_or_wait_since(key, ticket) {
            // The caller already holds this key's flight (and lease) further up its stack.
            Role::Reentrant => return Turn::Compute(Holds::default()),
            // The leader is stuck: compute without single-flight rather than hang.
            Role::TimedOut => return Turn::Compute(Holds::default()),
            Role::Leader(guard) => {
                if guard.needs_recheck() {
                    if let Some(v) = recheck(cache, key, fingerprint, stats) {
                        return Turn::Found(v);
                    }
                }
                break guard;
            }
            Role::Waited => {
                ticket = flights.ticket();
                if let Some(v) = recheck(cache, key, fingerprint, stats) {
                    return Turn::Found(v);
                }
                // The leader stored nothing (an error, a panic, a cancel): try to lead.
            }
        }
    };
    let lease = match terms(cache) {
        None => None,
        Some(terms) => match lease_claimed(stats, cache.store().lease(key, &terms)) {
            LeaseStep::Won { lease, waited } => {
                if waited {
                    if let Some(v) = recheck(cache, key, fingerprint, stats) {
                        return Turn::Found(v);
                    }
                }
                Some(lease)
            }
            LeaseStep::Without => None,
        },
    };
    Turn::Compute(Holds {
        _lease: lease,
        _flight: Some(flight),
    })
}

/// The lease terms of `cache`'s misses; `None` when cross-process single-flight is off. Also
/// where the lock files of dead holders are cleaned, at a bounded cost (see [`CLEAN_EVERY`]).
pub(crate) fn terms(cache: &Cache) -> Option<Terms> {
    let flights = &cache.inner.flights;
    let wait = flights.lease_timeout?;
    if flights
        .claims
        .fetch_add(1, Ordering::Relaxed)
        .is_multiple_of(CLEAN_EVERY)
    {
        clean_dead_holders(cache);
    }
    Some(Terms::new(flights.lease_ttl, wait))
}

/// Removes (a bounded number of) lock files that holders left when they died, which
/// nobody would otherwise remove if their keys are never asked for again.
fn clean_dead_holders(cache: &Cache) {
    let Some(dir) = cache.store().lease_dir() else {
        return;
    };
    if !dir.exists() {
        return;
    }
    match Leases::open(dir).and_then(|l| l.clean_stale_at_most(CLEAN_AT_MOST)) {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "cacher: removed lock files of dead holders"),
        Err(e) => tracing::debug!(error = %e, "cacher: cleaning the lease directory failed"),
    }
}

/// What a miss does after asking the store for its lease.
pub(crate) enum LeaseStep {
    /// Holds the lease; `waited`: look the cache up again first.
    Won { lease: Held, waited: bool },
    /// Computes without a lease: the store has none, the wait timed out, or the claim
    /// failed (counted as an error).
    Without,
}

/// Reads a claim's outcome. Computing without the lease risks a duplicate computation, not
/// a wrong value, so a failed claim (a server that is down) is counted and logged, not raised.
pub(crate) fn lease_claimed(
    stats: &Atomics,
    claim: cacher_store::Result<Option<Claim>>,
) -> LeaseStep {
    match claim {
        Ok(Some(Claim::Won { lease, waited })) => LeaseStep::Won { lease, waited },
        Ok(Some(Claim::TimedOut)) | Ok(None) => LeaseStep::Without,
        Err(e) => {
            stats.errors.fetch_add(1, RELAXED);
            tracing::debug!(error = %e, "cacher: no lease for a missed key");
            LeaseStep::Without
        }
    }
}

/// Looks `key` up again after a wait, with counters of its own: the call's miss is counted
/// already; a value found now counts as a wait.
pub(crate) fn recheck<T: DeserializeOwned>(
    cache: &Cache,
    key: &[u8],
    fingerprint: Option<u64>,
    stats: &Atomics,
) -> Option<T> {
    let found = cache
        .lookup::<T>(key, &Atomics::default(), fingerprint)
        .ok()
        .flatten()?;
    stats.waits.fetch_add(1, RELAXED);
    Some(found)
}
