//! Single-flight inside one process: concurrent callers of the same missing key wait for one
//! computation instead of each running the function.
//!
//! A [`Flights`] table maps a key to the computation in progress for it. The first caller
//! becomes the leader and gets a [`FlightGuard`]; it computes, stores, then drops the guard.
//! Later callers block (or, with [`Flights::lead_or_wait_async`], await) until the guard is
//! dropped and then look the cache up again. The guard is dropped however the leader ends:
//! returning `Ok` or `Err`, panicking (the guard drops while unwinding) or, for an async
//! leader, being cancelled (its future dropped). A waiter that then still misses calls
//! [`Flights::lead_or_wait`] again and becomes the next leader, so an erroring or panicking
//! leader never leaves its waiters with nothing: they compute themselves, one at a time.
//! Waits are bounded ([`Flights::wait_timeout`], set by
//! [`CacheBuilder::wait_timeout`](crate::CacheBuilder::wait_timeout)): a waiter whose leader
//! is stuck is told [`Role::TimedOut`] and computes itself — a duplicate computation, never a
//! hang. Async waits are timed by one process-wide timer thread, so no runtime is needed.
//!
//! Why a table of its own and not a lock per key: the leader never waits on anything its
//! waiters hold (moka #240 was a leader waiting on its own waiters). Dropping the guard only
//! takes the table's mutex for a map removal and then wakes everyone; no waiter holds a lock
//! while it waits. A recursive call of the same key from inside the leader's computation (on
//! the leader's thread, or inside the leader's future while it is polled through
//! [`FlightGuard::watch`]) is told [`Role::Reentrant`] and computes directly instead of
//! waiting for itself.
//!
//! ```
//! use cacher::flight::{Flights, Role};
//! let flights = Flights::new();
//! let ticket = flights.ticket(); // taken before the cache lookup that missed
//! match flights.lead_or_wait_since(b"key", ticket) {
//!     Role::Leader(guard) => {
//!         // compute and store the value here, then:
//!         drop(guard);
//!     }
//!     Role::Waited | Role::Reentrant | Role::TimedOut => unreachable!("nobody else computes"),
//! }
//! # Ok::<(), cacher::Error>(())
//! ```

mod timer;
pub(crate) mod turn;
mod wait;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

pub use turn::{DEFAULT_LEASE_TIMEOUT, DEFAULT_LEASE_TTL, DEFAULT_WAIT_TIMEOUT};
pub use wait::Wait;

/// The computations in progress, by key. One per [`Cache`](crate::Cache), shared by every
/// memoized function on it (keys carry their namespace, so functions never share a flight).
#[derive(Debug)]
pub struct Flights {
    map: Mutex<HashMap<Vec<u8>, Arc<Flight>>>,
    /// Counts finished flights; see [`Ticket`].
    finished: AtomicU64,
    /// How long a waiter waits for a leader of this process; `None`: as long as it takes.
    wait_timeout: Option<Duration>,
    /// How long a miss waits for another process's lease; `None`: no leases.
    pub(crate) lease_timeout: Option<Duration>,
    /// How long a lease outlives a holder that died, on stores whose leases have a TTL.
    pub(crate) lease_ttl: Duration,
    /// Leases claimed so far, which paces the cleaning of dead holders' lock files.
    pub(crate) claims: AtomicU64,
    /// Waits that gave up on a leader of this process; see [`Flights::timed_out`].
    timed_out: AtomicU64,
}

impl Default for Flights {
    fn default() -> Self {
        Flights {
            map: Mutex::default(),
            finished: AtomicU64::new(0),
            wait_timeout: Some(DEFAULT_WAIT_TIMEOUT),
            lease_timeout: Some(DEFAULT_LEASE_TIMEOUT),
            lease_ttl: DEFAULT_LEASE_TTL,
            claims: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
        }
    }
}

/// What a caller of [`Flights::lead_or_wait`] does next.
#[must_use = "a leader must compute and then drop its guard; a waiter must look the cache up again"]
#[derive(Debug)]
pub enum Role<'a> {
    /// Nobody else is computing this key: compute, store, then drop the guard. If
    /// [`FlightGuard::needs_recheck`] says so, look the cache up once more first: another
    /// leader may have stored the value since this caller's lookup.
    Leader(FlightGuard<'a>),
    /// Another caller's computation ended (stored, failed, panicked or was cancelled): look the
    /// cache up again, and on a miss ask [`Flights::lead_or_wait`] again.
    Waited,
    /// This key is being computed by the caller itself (a recursive call from inside the
    /// leader's computation): compute directly, without single-flight, rather than wait for
    /// itself forever.
    Reentrant,
    /// The leader kept the key past [`Flights::wait_timeout`]: compute without single-flight
    /// (the leader may be stuck; a duplicate computation is the price of not hanging).
    TimedOut,
}

/// How [`Flights::wait_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaited {
    /// Nobody (else) was computing the key: nothing to wait for.
    Nobody,
    /// The flight ended: look the cache up again.
    Finished,
    /// The deadline passed first; the flight goes on.
    TimedOut,
}

/// A reading of [`Flights`]' count of finished flights, taken before a cache lookup: a leader
/// whose ticket is still current knows no flight finished (and stored) since its lookup, so it
/// may compute without looking again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

impl Ticket {
    /// A ticket older than every flight: the leader always looks the cache up again.
    pub const STALE: Ticket = Ticket(u64::MAX);
}

/// The leader's hold on a key: while it lives, other callers of the key wait. Dropping it (at
/// the end of the computation, while unwinding from a panic, or when an async leader is
/// cancelled) removes the flight and wakes every waiter.
#[must_use = "dropping the guard at once releases the waiters before anything is stored"]
pub struct FlightGuard<'a> {
    flights: &'a Flights,
    key: Vec<u8>,
    flight: Arc<Flight>,
    recheck: bool,
}

impl std::fmt::Debug for FlightGuard<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlightGuard")
            .field("key", &cacher_store::KeyDisplay::new(&self.key))
            .field("needs_recheck", &self.recheck)
            .finish()
    }
}

#[derive(Debug)]
struct Flight {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug)]
struct State {
    finished: bool,
    /// The thread the leader is running on right now: a sync leader's thread for the whole
    /// flight, an async leader's only while [`FlightGuard::watch`] polls its future.
    running_on: Option<ThreadId>,
    /// Async waiters to wake when the flight ends.
    wakers: Vec<Waker>,
}

impl Flights {
    /// An empty table whose waits last at most [`DEFAULT_WAIT_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// The same table with waits bounded by `timeout` (`None`: unbounded).
    ///
    /// ```
    /// use cacher::flight::{Flights, Role};
    /// use std::time::Duration;
    /// let flights = Flights::new().with_wait_timeout(Some(Duration::from_millis(1)));
    /// let Role::Leader(_stuck) = flights.lead_or_wait(b"k") else { unreachable!() };
    /// std::thread::scope(|s| {
    ///     let waiter = s.spawn(|| matches!(flights.lead_or_wait(b"k"), Role::TimedOut));
    ///     assert!(waiter.join().unwrap(), "the leader never ended; the waiter gave up");
    /// });
    /// ```
    pub fn with_wait_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.wait_timeout = timeout;
        self
    }

    /// How long a caller waits for the leader of its key before it computes itself.
    pub fn wait_timeout(&self) -> Option<Duration> {
        self.wait_timeout
    }

    /// How many waits for a leader of this process gave up at the wait timeout so far (each
    /// one a caller that then computed itself): a stuck leader shows here.
    pub fn timed_out(&self) -> u64 {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// When a wait starting now ends (`None`: never).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.wait_timeout
            .and_then(|t| Instant::now().checked_add(t))
    }

    /// A ticket to take before the cache lookup that precedes
    /// [`lead_or_wait_since`](Flights::lead_or_wait_since). One atomic load: cheap on hits.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.finished.load(Ordering::Acquire))
    }

    /// The number of keys being computed right now.
    pub fn in_flight(&self) -> usize {
        lock(&self.map).len()
    }

    /// Whether someone is computing `key` right now.
    pub fn is_computing(&self, key: &[u8]) -> bool {
        lock(&self.map).contains_key(key)
    }

    /// Becomes the leader of `key` if nobody computes it, without waiting: `None` when
    /// someone does (a background refresh that finds one running has nothing to do).
    pub fn try_lead(&self, key: &[u8]) -> Option<FlightGuard<'_>> {
        self.try_lead_since(key, Ticket::STALE)
    }

    /// [`try_lead`](Flights::try_lead) with the ticket taken before the caller's lookup, so
    /// the guard's [`needs_recheck`](FlightGuard::needs_recheck) is exact.
    pub fn try_lead_since(&self, key: &[u8], ticket: Ticket) -> Option<FlightGuard<'_>> {
        self.join(key, ticket, Some(std::thread::current().id()))
            .ok()
    }

    /// Waits (bounded by [`Flights::wait_timeout`]) until nobody computes `key`, without
    /// leading it; returns whether a flight was waited for. For a caller that must not wait
    /// while leading other keys (a batch: see `src/memo/batch.rs`), so waits never form a
    /// cycle.
    pub fn wait_for(&self, key: &[u8]) -> bool {
        self.wait_until(key, self.deadline()) != Awaited::Nobody
    }

    /// [`wait_for`](Flights::wait_for) with a deadline of the caller's (`None`: none), so
    /// that one caller waiting for many keys (a batch) waits at most one timeout in all.
    ///
    /// ```
    /// use cacher::flight::{Awaited, Flights};
    /// use std::time::{Duration, Instant};
    /// let flights = Flights::new();
    /// assert_eq!(flights.wait_until(b"k", None), Awaited::Nobody);
    /// let _stuck = flights.try_lead(b"k").unwrap(); // a leader that never finishes
    /// let deadline = Instant::now().checked_add(Duration::from_millis(1));
    /// let waited = std::thread::scope(|s| s.spawn(|| flights.wait_until(b"k", deadline)).join());
    /// assert_eq!(waited.unwrap(), Awaited::TimedOut);
    /// assert_eq!(flights.timed_out(), 1);
    /// ```
    pub fn wait_until(&self, key: &[u8], deadline: Option<Instant>) -> Awaited {
        let Some(flight) = lock(&self.map).get(key).cloned() else {
            return Awaited::Nobody;
        };
        let state = lock(&flight.state);
        if state.running_on == Some(std::thread::current().id()) {
            return Awaited::Nobody;
        }
        if self.wait_on_until(&flight, state, deadline) {
            Awaited::Finished
        } else {
            Awaited::TimedOut
        }
    }

    /// Blocks until `flight` finishes or the wait times out; returns whether it finished.
    fn wait_on(&self, flight: &Flight, state: MutexGuard<'_, State>) -> bool {
        self.wait_on_until(flight, state, self.deadline())
    }

    fn wait_on_until(
        &self,
        flight: &Flight,
        mut state: MutexGuard<'_, State>,
        deadline: Option<Instant>,
    ) -> bool {
        while !state.finished {
            state = match deadline {
                None => flight.done.wait(state).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        self.timed_out.fetch_add(1, Ordering::Relaxed);
                        return false;
                    }
                    flight
                        .done
                        .wait_timeout(state, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
        }
        true
    }

    /// Like [`lead_or_wait_since`](Flights::lead_or_wait_since) with [`Ticket::STALE`]: a
    /// leader always looks the cache up again.
    pub fn lead_or_wait(&self, key: &[u8]) -> Role<'_> {
        self.lead_or_wait_since(key, Ticket::STALE)
    }

    /// Becomes the leader of `key`, or blocks the thread until the current leader's guard is
    /// dropped (then [`Role::Waited`]) or [`Flights::wait_timeout`] runs out (then
    /// [`Role::TimedOut`]). `ticket` was taken before the caller's cache lookup.
    pub fn lead_or_wait_since(&self, key: &[u8], ticket: Ticket) -> Role<'_> {
        let me = std::thread::current().id();
        let flight = match self.join(key, ticket, Some(me)) {
            Ok(guard) => return Role::Leader(guard),
            Err(flight) => flight,
        };
        let state = lock(&flight.state);
        if state.running_on == Some(me) {
            return Role::Reentrant;
        }
        if self.wait_on(&flight, state) {
            Role::Waited
        } else {
            Role::TimedOut
        }
    }

    /// The async twin of [`lead_or_wait_since`](Flights::lead_or_wait_since): a future that
    /// is ready at once for a leader, and for a waiter when the leader's guard is dropped. It
    /// needs no runtime (it keeps the task's waker and wakes it), so it works on any executor;
    /// dropping it while it waits just stops waiting. The wait is bounded like the sync one's.
    ///
    /// An async leader should poll its computation through [`FlightGuard::watch`], so a
    /// recursive call of the same key from inside it is told [`Role::Reentrant`].
    pub fn lead_or_wait_async<'a>(&'a self, key: &[u8], ticket: Ticket) -> Wait<'a> {
        Wait::new(self, key.to_vec(), ticket)
    }

    /// Makes the caller the leader of `key` (with its thread as the running one, for a sync
    /// leader), or hands back the flight in progress.
    fn join(
        &self,
        key: &[u8],
        ticket: Ticket,
        running_on: Option<ThreadId>,
    ) -> Result<FlightGuard<'_>, Arc<Flight>> {
        let mut map = lock(&self.map);
        if let Some(flight) = map.get(key) {
            return Err(flight.clone());
        }
        let flight = Arc::new(Flight {
            state: Mutex::new(State {
                finished: false,
                running_on,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        });
        map.insert(key.to_vec(), flight.clone());
        // Read under the map lock, where a finishing leader counts itself before it leaves the
        // map: a flight that left after this caller's lookup cannot go unnoticed.
        let recheck = ticket.0 != self.finished.load(Ordering::Acquire);
        Ok(FlightGuard {
            flights: self,
            key: key.to_vec(),
            flight,
            recheck,
        })
    }
}

impl FlightGuard<'_> {
    /// Whether a flight of any key finished since the caller's ticket was taken, so the value
    /// may have been stored after the caller's lookup: look the cache up again before
    /// computing.
    pub fn needs_recheck(&self) -> bool {
        self.recheck
    }

    /// The key this guard leads.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Polls `future` (an async leader's computation) as running on the polling thread, so
    /// that a recursive call of the same key made while it is polled is told
    /// [`Role::Reentrant`] instead of waiting for its own leader.
    pub fn watch<F: Future>(&self, future: F) -> Watched<'_, F> {
        Watched {
            flight: &self.flight,
            future: Box::pin(future),
        }
    }
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        {
            let mut map = lock(&self.flights.map);
            // Counted before the flight leaves the map (see `join`).
            self.flights.finished.fetch_add(1, Ordering::AcqRel);
            if map
                .get(&self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                map.remove(&self.key);
            }
        }
        let wakers = {
            let mut state = lock(&self.flight.state);
            state.finished = true;
            state.running_on = None;
            std::mem::take(&mut state.wakers)
        };
        self.flight.done.notify_all();
        for waker in wakers {
            waker.wake();
        }
    }
}

/// A leader's future polled by [`FlightGuard::watch`].
pub struct Watched<'g, F> {
    flight: &'g Arc<Flight>,
    future: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Watched<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").finish_non_exhaustive()
    }
}

impl<F: Future> Future for Watched<'_, F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let previous = {
            let mut state = lock(&self.flight.state);
            state.running_on.replace(std::thread::current().id())
        };
        // Restored even if the future panics, so the flight does not claim a thread forever.
        struct Restore<'f>(&'f Flight, Option<ThreadId>);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                let mut state = lock(&self.0.state);
                if !state.finished {
                    state.running_on = self.1;
                }
            }
        }
        let _restore = Restore(self.flight, previous);
        self.future.as_mut().poll(cx)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The table holds no invariant a panic could break halfway: every update is one insert,
    // one removal or one flag.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
