//! Whose turn it is to compute a missed key: the in-process flight first, then (for a store
//! shared by processes) the key's lease; after each wait the cache is looked up again.

use std::sync::OnceLock;
use std::time::Duration;

use cacher_store::lease::{Acquired, Lease, Leases};
use serde::de::DeserializeOwned;

use super::{FlightGuard, Role, Ticket};
use crate::stats::{Atomics, RELAXED};
use crate::Cache;

/// How long a caller waits for another process's lease on the same key before it computes
/// itself, unless the memoized function says otherwise. Long enough for a slow web call,
/// short enough that a stuck process costs a duplicate computation and not a hung program.
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(30);

impl crate::CacheBuilder {
    /// How long a memoized call that missed waits for another process computing the same key
    /// on a shared store (DirStore, LogStore, LmdbStore: see
    /// [`Store::lease_dir`](cacher_store::Store::lease_dir)) before it computes itself;
    /// `None` turns cross-process single-flight off. Default [`DEFAULT_LEASE_TIMEOUT`].
    /// Threads of one process always wait for each other (see [`crate::flight`]).
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
    _lease: Option<Lease>,
    _flight: Option<FlightGuard<'c>>,
}

/// The lazily opened lease directory of a cache's store (`None`: the store has none, or it
/// could not be made, and then processes may compute the same key twice, never wrongly).
pub(crate) type LeaseSlot = OnceLock<Option<Leases>>;

/// Waits for `key`'s turn after a lookup that missed (`ticket` taken before it). `lease`:
/// how long to wait for another process's lease, or `None` to skip leases.
pub(crate) fn turn<'c, T: DeserializeOwned>(
    cache: &'c Cache,
    key: &[u8],
    ticket: Ticket,
    fingerprint: Option<u64>,
    stats: &Atomics,
) -> Turn<'c, T> {
    let flights = &cache.inner.flights;
    let lease = flights.lease_timeout;
    let mut ticket = ticket;
    let flight = loop {
        match flights.lead_or_wait_since(key, ticket) {
            // The caller already holds this key's flight (and lease) further up its stack.
            Role::Reentrant => return Turn::Compute(Holds::default()),
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
    let lease = match (lease, leases(cache)) {
        (Some(timeout), Some(leases)) => match leases.acquire(key, timeout) {
            Ok(Acquired::Won { lease, waited }) => {
                if waited {
                    if let Some(v) = recheck(cache, key, fingerprint, stats) {
                        return Turn::Found(v);
                    }
                }
                Some(lease)
            }
            Ok(Acquired::TimedOut) => None,
            Err(e) => {
                // Computing without the lease risks a duplicate computation, not a wrong
                // value; the error is counted, not raised.
                stats.errors.fetch_add(1, RELAXED);
                tracing::debug!(error = %e, "cacher: no lease for a missed key");
                None
            }
        },
        _ => None,
    };
    Turn::Compute(Holds {
        _lease: lease,
        _flight: Some(flight),
    })
}

fn leases(cache: &Cache) -> Option<&Leases> {
    cache
        .inner
        .flights
        .leases
        .get_or_init(|| {
            let dir = cache.store().lease_dir()?;
            match Leases::open(dir) {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::debug!(error = %e, "cacher: lease directory unusable");
                    None
                }
            }
        })
        .as_ref()
}

/// Looks `key` up again after a wait, with counters of its own: the call's miss is counted
/// already; a value found now counts as a wait.
fn recheck<T: DeserializeOwned>(
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
