//! The async twin of the memoized call ([`Site::call_async`]), shared by [`AsyncMemo`](crate::memo::AsyncMemo) and
//! `#[memoize] async fn`: same keys, modes, policies and stats as the sync path, and no
//! runtime of its own, so it runs on any executor.
//!
//! # Where the store's blocking I/O runs
//! A lookup runs inline, on the task that awaits the call: a hit is one store read and a
//! decode (well under a microsecond on `MemoryStore` and `LmdbStore`, a few on a warm
//! `DirStore`; `benches/many.rs` measures an async hit against a sync one), far less than the
//! cost of moving it to a blocking pool and back. The write after a miss can block longer
//! (an fsync with [`Durability::Flush`](crate::store::Durability)): by default it runs inline
//! too, and [`AsyncMemo::offload_writes`](crate::memo::AsyncMemo::offload_writes) hands it to a blocking pool of the caller's
//! executor instead (`tokio::task::spawn_blocking`, `blocking::unblock`, ...). Only the write
//! moves: the value is encoded on the task, the pool gets bytes.
//!
//! # Leases across processes
//! A miss on a store shared by processes ([`Store::lease`](cacher_store::Store::lease)) first
//! tries the key's lease inline, without waiting (a lock-file `flock` or one Redis `SET NX`).
//! If another process holds it, waiting would block the executor's thread for as long as
//! the other computes, so the wait runs through the same [`Offload`] runner as the write;
//! without one the call computes at once (a duplicate computation, never a wrong value).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cacher_store::lease::{Claim, Held};

use crate::clock::duration_ms;
use crate::flight::turn::{lease_claimed, terms, LeaseStep};
use crate::flight::Role;
use crate::memo::site::Outcome;
use crate::memo::{Call, Mode, Site, Status, StorePolicy};
use crate::report::ErrorKind;
use crate::stats::{Atomics, RELAXED};
use crate::{Cache, Error, Result};

/// A unit of blocking work handed to an [`Offload`] runner.
pub type BlockingJob = Box<dyn FnOnce() + Send + 'static>;

/// The future an [`Offload`] runner returns: it completes once the job has run.
pub type BlockingDone = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs blocking store writes off the executor's threads: given a job, returns a future that
/// completes when the job has run on some blocking pool.
///
/// ```
/// use cacher::memo::Offload;
/// // With tokio (any executor's blocking pool works the same way):
/// // Offload::new(|job| Box::pin(async { let _ = tokio::task::spawn_blocking(job).await; }))
/// // A runner that runs the job right away, on the calling task:
/// let inline = Offload::new(|job| {
///     job();
///     Box::pin(std::future::ready(()))
/// });
/// # let _ = inline;
/// ```
#[derive(Clone)]
pub struct Offload(Arc<dyn Fn(BlockingJob) -> BlockingDone + Send + Sync>);

impl Offload {
    /// A runner from a function that starts `job` on a blocking pool.
    pub fn new(run: impl Fn(BlockingJob) -> BlockingDone + Send + Sync + 'static) -> Self {
        Offload(Arc::new(run))
    }
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload").finish_non_exhaustive()
    }
}

/// Awaits `fut`, adding the time to the compute time.
async fn timed_async<T>(stats: &Atomics, fut: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let v = fut.await;
    stats.add_compute(start.elapsed());
    v
}

impl<'a> Site<'a> {
    /// An async call that behaves like the function: a cache error never fails it (it is
    /// counted, and the first of each kind logged); `compute()` is awaited only on a miss.
    pub async fn call_async<P, R, C, Fut>(
        &self,
        key: Result<Vec<u8>>,
        compute: C,
        offload: Option<&Offload>,
    ) -> R
    where
        P: StorePolicy<R>,
        C: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        match self
            .run_async::<P, R, C, Fut>(key, Call::default(), false, compute, offload)
            .await
        {
            Outcome::Done(value, _) => value,
            Outcome::WriteFailed(value, e) => {
                self.swallowed(ErrorKind::Write, &e);
                value
            }
            Outcome::NotComputed(compute, e) => {
                self.swallowed(ErrorKind::Key, &e);
                timed_async(&self.stats, compute()).await
            }
        }
    }

    /// An async call with per-call options that reports every cache error, a failed write of
    /// the computed value included.
    pub async fn call_with_async<P, R, C, Fut>(
        &self,
        key: Result<Vec<u8>>,
        opts: Call,
        compute: C,
        offload: Option<&Offload>,
    ) -> Result<(R, Status)>
    where
        P: StorePolicy<R>,
        C: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        match self
            .run_async::<P, R, C, Fut>(key, opts, true, compute, offload)
            .await
        {
            Outcome::Done(value, status) => Ok((value, status)),
            Outcome::WriteFailed(_, e) | Outcome::NotComputed(_, e) => Err(e),
        }
    }

    /// The async path: the sync one's steps, with the computation awaited and the write
    /// optionally offloaded.
    async fn run_async<P, R, C, Fut>(
        &self,
        key: Result<Vec<u8>>,
        opts: Call,
        strict: bool,
        compute: C,
        offload: Option<&Offload>,
    ) -> Outcome<R, C>
    where
        P: StorePolicy<R>,
        C: FnOnce() -> Fut,
        Fut: Future<Output = R>,
    {
        let stats: &Atomics = &self.stats;
        let key = match key {
            Ok(k) => k,
            Err(e) => return Outcome::NotComputed(compute, e),
        };
        let flights = &self.cache.inner.flights;
        // Taken before the lookup, so a leader knows whether a flight ended after it.
        let mut ticket = flights.ticket();
        if opts.mode == Mode::Bypass {
            return Outcome::Done(timed_async(stats, compute()).await, Status::Miss);
        }
        if opts.mode != Mode::Refresh {
            match self
                .cache
                .lookup::<P::Stored>(&key, stats, Some(self.fingerprint))
            {
                Ok(Some(v)) => return Outcome::Done(P::restore(v), Status::Hit),
                Ok(None) => {}
                Err(e) if strict => return Outcome::NotComputed(compute, e),
                Err(e) => self.swallowed(ErrorKind::Read, &e),
            }
            if opts.mode == Mode::CacheOnly {
                let key = cacher_store::KeyDisplay::new(&key);
                return Outcome::NotComputed(compute, Error::Miss { key });
            }
        }
        // One computation per key at a time, as on the sync path: this process's tasks and
        // threads first, then (through the store's lease) other processes; a refresh computes
        // regardless. The guard and the lease drop however this future ends — done, failed,
        // panicked or dropped (cancelled) — and the waiters look again and on a miss lead.
        let mut guard = None;
        let mut lease: Option<Held> = None;
        if opts.mode == Mode::Normal {
            loop {
                match flights.lead_or_wait_async(&key, ticket).await {
                    // Inside the leader's own computation, or its leader is stuck: compute.
                    Role::Reentrant | Role::TimedOut => break,
                    Role::Leader(g) => {
                        if g.needs_recheck() {
                            if let Some(v) = self.recheck::<P::Stored>(&key) {
                                return Outcome::Done(P::restore(v), Status::Hit);
                            }
                        }
                        guard = Some(g);
                        break;
                    }
                    Role::Waited => {
                        ticket = flights.ticket();
                        if let Some(v) = self.recheck::<P::Stored>(&key) {
                            return Outcome::Done(P::restore(v), Status::Hit);
                        }
                    }
                }
            }
            if guard.is_some() {
                if let LeaseStep::Won { lease: l, waited } = self.claim_async(&key, offload).await {
                    // Declared after the guard, so dropped before it on every return.
                    lease = Some(l);
                    if waited {
                        if let Some(v) = self.recheck::<P::Stored>(&key) {
                            return Outcome::Done(P::restore(v), Status::Hit);
                        }
                    }
                }
            }
        }
        let result = match &guard {
            // Polled through the guard, so a recursive call of this key is told Reentrant.
            Some(g) => timed_async(stats, g.watch(compute())).await,
            None => timed_async(stats, compute()).await,
        };
        if let Some(stored) = P::stored(&result) {
            if let Err(e) = self.store_async(key, stored, opts, offload).await {
                return Outcome::WriteFailed(result, e);
            }
        }
        drop(lease);
        drop(guard);
        Outcome::Done(result, Status::Miss)
    }

    /// Claims `key`'s lease among processes: one try inline, then, if another process holds
    /// it, the bounded wait on `offload`'s blocking pool (see the [module docs](self)).
    async fn claim_async(&self, key: &[u8], offload: Option<&Offload>) -> LeaseStep {
        let Some(terms) = terms(self.cache) else {
            return LeaseStep::Without;
        };
        let first = self.cache.store().lease(key, &terms.without_waiting());
        if !matches!(first, Ok(Some(Claim::TimedOut))) {
            return lease_claimed(&self.stats, first);
        }
        let Some(offload) = offload else {
            return LeaseStep::Without;
        };
        type Slot = Arc<Mutex<Option<cacher_store::Result<Option<Claim>>>>>;
        let done: Slot = Arc::default();
        let job: BlockingJob = {
            let cache: Cache = self.cache.clone();
            let key = key.to_vec();
            let done = done.clone();
            // If this future is dropped meanwhile, a lease the job wins is dropped (released)
            // with the slot.
            Box::new(move || {
                let claim = cache.store().lease(&key, &terms);
                *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(claim);
            })
        };
        (offload.0)(job).await;
        let claim = done.lock().unwrap_or_else(|p| p.into_inner()).take();
        match claim {
            // Someone held it a moment ago, so the value may be stored by now: look again.
            Some(claim) => match lease_claimed(&self.stats, claim) {
                LeaseStep::Won { lease, .. } => LeaseStep::Won {
                    lease,
                    waited: true,
                },
                LeaseStep::Without => LeaseStep::Without,
            },
            None => LeaseStep::Without,
        }
    }

    /// A second look after another caller's computation: found values count as `waits`, and
    /// the look itself is not counted again as a hit or a miss.
    fn recheck<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Option<T> {
        let found = self
            .cache
            .lookup::<T>(key, &Atomics::default(), Some(self.fingerprint))
            .ok()
            .flatten()?;
        self.stats.waits.fetch_add(1, RELAXED);
        Some(found)
    }

    /// Encodes `stored` here and writes it, inline or through `offload`.
    async fn store_async<T: serde::Serialize + ?Sized>(
        &self,
        key: Vec<u8>,
        stored: &T,
        opts: Call,
        offload: Option<&Offload>,
    ) -> Result<()> {
        let expires = opts
            .ttl
            .or(self.ttl)
            .map(|t| self.cache.now_ms().saturating_add(duration_ms(t)));
        let mut entry = self
            .cache
            .encode_entry(&key, stored, expires, Some(self.fingerprint))?;
        let Some(offload) = offload else {
            return self.cache.put_encoded(&key, &mut entry, &self.stats);
        };
        let done: Arc<Mutex<Option<Result<()>>>> = Arc::default();
        let job: BlockingJob = {
            let cache: Cache = self.cache.clone();
            let stats: Arc<Atomics> = Arc::clone(&self.stats);
            let done = done.clone();
            Box::new(move || {
                let r = cache.put_encoded(&key, &mut entry, &stats);
                *done.lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            })
        };
        (offload.0)(job).await;
        let outcome = done.lock().unwrap_or_else(|p| p.into_inner()).take();
        outcome.unwrap_or_else(|| {
            Err(Error::Config(
                "the Offload runner finished without running the store write (its blocking \
                 pool dropped the job, or the job panicked)"
                    .into(),
            ))
        })
    }
}
