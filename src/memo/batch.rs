//! Many inputs at once: one [`get_many`](cacher_store::Store::get_many) for all their keys,
//! one computation of only the missing ones (in input order, each distinct key once), one
//! [`put_many`](cacher_store::Store::put_many), the results back in input order.
//!
//! Shared by the wrapper ([`Memo::call_many`](super::Memo::call_many),
//! [`BatchMemo`](super::BatchMemo)) and `#[memoize(batch)]`.
//!
//! # Single-flight per key
//! Concurrent batches (and single calls) of one process compute each missing key once: a
//! batch leads the keys nobody computes and waits for the others, then looks them up again.
//! It never waits while it leads: if a key it wants is taken while it gathers its own, it
//! lets go of what it gathered, waits for the taken keys, and tries again (at most
//! [`ROUNDS`] times, then computes the rest itself — a duplicate, never a deadlock). So two
//! batches wanting `[1, 2]` and `[2, 1]` cannot each hold one key and wait for the other.
//! All its waits share one deadline, one [wait timeout](crate::CacheBuilder::wait_timeout)
//! away: a stuck leader holds a batch up for one timeout, whatever the number of its keys.
//!
//! # Single-flight across processes
//! On a store processes share ([`Store::lease`](cacher_store::Store::lease): LmdbStore,
//! HybridStore, DirStore, LogStore, RedisStore), a batch then takes the lease of each key it
//! leads, as a single call does, in the order of the keys: a batch waits only for a lease
//! whose key is above every key it holds, so two batches (of any processes) cannot each hold
//! a lease the other waits for. Its claims share one deadline, one
//! [lease timeout](crate::CacheBuilder::lease_timeout) away, after which it computes the keys
//! it has no lease for itself. Once it holds its leases it looks all its led keys up again
//! (one `get_many`), so a key another process stored meanwhile is read, not computed. A
//! holder that dies (even by `SIGKILL`) loses its file leases with its process.

use std::collections::HashMap;
use std::time::Instant;

use cacher_store::lease::{self, Terms};

use crate::clock::duration_ms;
use crate::flight::turn::{self, LeaseStep};
use crate::flight::{Awaited, FlightGuard, Ticket};
use crate::memo::{Call, Mode, Site, Status, StorePolicy};
use crate::report::ErrorKind;
use crate::stats::timed;
use crate::stats::RELAXED;
use crate::Error;

/// How many times a batch gathers its keys before it computes without the ones others hold.
const ROUNDS: usize = 3;

/// What a batch holds while it computes the keys it leads; dropped once their values are
/// stored (or the batch failed).
#[derive(Default)]
struct Held<'a> {
    // Field order is drop order: the leases are released before this process's waiters wake,
    // so they never find a lease still held by their own process.
    _leases: Vec<lease::Held>,
    _flights: Vec<FlightGuard<'a>>,
}

/// Why a batch call failed: the cache, or the batch function itself.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError<E> {
    /// Making the keys, reading, writing, a cache-only miss, or a batch function that
    /// returned the wrong number of results ([`Error::BatchLength`]).
    #[error(transparent)]
    Cache(#[from] Error),
    /// The batch function returned an error; nothing was stored.
    #[error("the batch function failed")]
    Compute(#[source] E),
}

impl BatchError<std::convert::Infallible> {
    /// The cache error of a batch whose function cannot fail.
    pub fn into_cache_error(self) -> Error {
        match self {
            BatchError::Cache(e) => e,
            BatchError::Compute(never) => match never {},
        }
    }
}

impl<'a> Site<'a> {
    /// A batch call that reports every cache error: looks up every key in one pass, calls
    /// `compute` once with the inputs whose keys missed (in input order; an input whose key
    /// appears earlier in the batch is not passed again), checks it returned one result per
    /// input, stores what `P` keeps in one write and returns each input's result and where
    /// it came from, in input order.
    pub fn call_many_with<P, R, A, E>(
        &self,
        keys: Vec<crate::Result<Vec<u8>>>,
        opts: Call,
        inputs: Vec<A>,
        compute: impl FnOnce(Vec<A>) -> Result<Vec<R>, E>,
    ) -> Result<Vec<(R, Status)>, BatchError<E>>
    where
        P: StorePolicy<R>,
        R: Clone,
    {
        let keys = keys.into_iter().collect::<crate::Result<Vec<_>>>()?;
        self.run_many::<P, R, A, E>(&keys, opts, true, inputs, compute)
    }

    /// A batch call that behaves like the function: a cache error never fails it (it is
    /// counted and the first of each kind logged). Given keys that cannot be made, or a
    /// batch function that returns the wrong number of results, it runs `compute` on all
    /// the inputs and returns its output as it is, uncached — what the function itself
    /// returns; for that second run it keeps a clone of the inputs it passes the first.
    pub fn call_many<P, R, A>(
        &self,
        keys: Vec<crate::Result<Vec<u8>>>,
        inputs: Vec<A>,
        mut compute: impl FnMut(Vec<A>) -> Vec<R>,
    ) -> Vec<R>
    where
        P: StorePolicy<R>,
        R: Clone,
        A: Clone,
    {
        let keys = match keys.into_iter().collect::<crate::Result<Vec<_>>>() {
            Ok(keys) => keys,
            Err(e) => {
                self.swallowed(ErrorKind::Key, &e);
                return timed(&self.stats, || compute(inputs));
            }
        };
        let all = inputs.clone();
        let run = self.run_many::<P, R, A, std::convert::Infallible>(
            &keys,
            Call::default(),
            false,
            inputs,
            |missing| Ok(compute(missing)),
        );
        match run {
            Ok(results) => results.into_iter().map(|(r, _)| r).collect(),
            Err(e) => {
                self.swallowed(ErrorKind::Write, &e.into_cache_error());
                timed(&self.stats, || compute(all))
            }
        }
    }

    /// The batch path. With `strict == false` a failed read counts every key as missing, and
    /// a failed write is counted; the results are returned either way.
    fn run_many<P, R, A, E>(
        &self,
        keys: &[Vec<u8>],
        opts: Call,
        strict: bool,
        inputs: Vec<A>,
        compute: impl FnOnce(Vec<A>) -> Result<Vec<R>, E>,
    ) -> Result<Vec<(R, Status)>, BatchError<E>>
    where
        P: StorePolicy<R>,
        R: Clone,
    {
        if keys.len() != inputs.len() {
            return Err(Error::Config(format!(
                "a batch of {} inputs came with {} keys",
                inputs.len(),
                keys.len()
            ))
            .into());
        }
        let stats = &*self.stats;
        if opts.mode == Mode::Bypass {
            let n = inputs.len();
            let results = timed(stats, || compute(inputs)).map_err(BatchError::Compute)?;
            self.check_count(n, results.len())?;
            return Ok(results.into_iter().map(|r| (r, Status::Miss)).collect());
        }
        // Taken before the lookup, so a leader knows whether a flight ended after it.
        let ticket = self.cache.inner.flights.ticket();
        let mut found: Vec<Option<P::Stored>> = Vec::new();
        if opts.mode != Mode::Refresh {
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            match self
                .cache
                .lookup_many::<P::Stored>(&refs, stats, Some(self.fingerprint))
            {
                Ok(f) => found = f,
                Err(e) if strict => return Err(e.into()),
                Err(e) => self.swallowed(ErrorKind::Read, &e),
            }
        }
        found.resize_with(keys.len(), || None);

        // Each missing key once, in the order of its first input.
        let mut slot_of: HashMap<&[u8], usize> = HashMap::new();
        let mut uses: Vec<usize> = Vec::new();
        let mut todo: Vec<A> = Vec::new();
        let mut todo_keys: Vec<&[u8]> = Vec::new();
        let mut slots: Vec<Option<usize>> = Vec::with_capacity(keys.len());
        for ((key, hit), input) in keys.iter().zip(&found).zip(inputs) {
            if hit.is_some() {
                slots.push(None);
                continue;
            }
            let slot = *slot_of.entry(key).or_insert_with(|| {
                todo.push(input);
                todo_keys.push(key);
                uses.push(0);
                todo.len() - 1
            });
            uses[slot] += 1;
            slots.push(Some(slot));
        }
        if opts.mode == Mode::CacheOnly {
            if let Some(key) = todo_keys.first() {
                let key = cacher_store::KeyDisplay::new(key);
                return Err(Error::Miss { key }.into());
            }
        }

        // Values other callers stored while this batch waited for them, by slot.
        let mut late: Vec<Option<P::Stored>> = Vec::new();
        late.resize_with(todo.len(), || None);
        let _held = if opts.mode == Mode::Normal && !todo.is_empty() {
            self.lead_batch::<P::Stored>(&todo_keys, ticket, &mut late)
        } else {
            Held::default()
        };
        let mut computed: Vec<Option<(R, Status)>> = Vec::new();
        computed.resize_with(todo.len(), || None);
        let mut now: Vec<A> = Vec::new();
        let mut now_keys: Vec<&[u8]> = Vec::new();
        let mut now_slots: Vec<usize> = Vec::new();
        for (slot, input) in todo.into_iter().enumerate() {
            match late[slot].take() {
                Some(v) => computed[slot] = Some((P::restore(v), Status::Hit)),
                None => {
                    now.push(input);
                    now_keys.push(todo_keys[slot]);
                    now_slots.push(slot);
                }
            }
        }
        if !now.is_empty() {
            let n = now.len();
            let results = timed(stats, || compute(now)).map_err(BatchError::Compute)?;
            self.check_count(n, results.len())?;
            if let Err(e) = self.store_all::<P, R>(&now_keys, &results, opts) {
                if strict {
                    return Err(e.into());
                }
                self.swallowed(ErrorKind::Write, &e);
            }
            for (slot, r) in now_slots.into_iter().zip(results) {
                computed[slot] = Some((r, Status::Miss));
            }
        }

        let mut out = Vec::with_capacity(keys.len());
        for (hit, slot) in found.into_iter().zip(slots) {
            match (hit, slot) {
                (Some(v), _) => out.push((P::restore(v), Status::Hit)),
                (None, Some(slot)) => {
                    uses[slot] -= 1;
                    // The last input of a key takes the value; earlier duplicates clone it.
                    let value = if uses[slot] == 0 {
                        computed[slot].take()
                    } else {
                        computed[slot].clone()
                    };
                    match value {
                        Some(v) => out.push(v),
                        None => unreachable!("each computed value is taken by its last input"),
                    }
                }
                (None, None) => unreachable!("every missed input has a slot"),
            }
        }
        Ok(out)
    }

    /// Leads the batch's missing `keys` (see the [module docs](self)), in this process and
    /// then among the processes sharing the store: returns the flights and leases of the keys
    /// this batch computes, and fills `late` with the values of the keys others computed
    /// meanwhile (counted as waits). Keys neither led nor found are computed without
    /// single-flight (in this process), or without a lease (among processes).
    fn lead_batch<T: serde::de::DeserializeOwned>(
        &self,
        keys: &[&[u8]],
        ticket: Ticket,
        late: &mut [Option<T>],
    ) -> Held<'a> {
        let flights = &self.cache.inner.flights;
        // One deadline for the whole batch: a stuck leader costs it one wait timeout, however
        // many keys the leader holds and however many rounds the batch gathers.
        let deadline = flights.deadline();
        // The ticket stays the one taken before the batch's lookup: a key not waited for
        // was last looked up then, so a flight that ended since must make the leader look
        // again.
        let mut led: Vec<FlightGuard<'a>> = Vec::new();
        let mut timed_out = false;
        for round in 0..ROUNDS {
            // Wait for the keys others compute, holding nothing, then look them up again.
            let mut waited = Vec::new();
            for (i, key) in keys.iter().enumerate() {
                if late[i].is_some() || timed_out {
                    continue;
                }
                match flights.wait_until(key, deadline) {
                    Awaited::Nobody => {}
                    Awaited::Finished => waited.push(i),
                    Awaited::TimedOut => timed_out = true,
                }
            }
            if !waited.is_empty() {
                self.recheck_into(keys, &waited, late);
            }
            // Gather every key still missing; let go of all of them if one is taken, unless
            // this is the last gathering (then the taken ones are computed without a flight).
            let last = round + 1 == ROUNDS || timed_out;
            let mut taken = false;
            for (i, key) in keys.iter().enumerate() {
                if late[i].is_some() {
                    continue;
                }
                match flights.try_lead_since(key, ticket) {
                    Some(guard) => led.push(guard),
                    None => {
                        taken = true;
                        if !last {
                            break;
                        }
                    }
                }
            }
            if taken && !last {
                led.clear();
                continue;
            }
            break;
        }
        if led.is_empty() {
            return Held::default();
        }
        let index: HashMap<&[u8], usize> = keys.iter().enumerate().map(|(i, k)| (*k, i)).collect();
        let leases = self.lease_led(&mut led, &index);
        // After leases, always look again: another process may have stored a led key since
        // this batch's lookup (under its lease, which it released before this batch took it).
        // Without leases, only when a flight of this process ended since the lookup.
        if leases.is_some() || led.iter().any(FlightGuard::needs_recheck) {
            let led_slots: Vec<usize> = led.iter().map(|g| index[g.key()]).collect();
            self.recheck_into(keys, &led_slots, late);
        }
        let mut leases = leases.unwrap_or_default();
        // Keys found are not computed: let their leases go, then their flights.
        leases.retain(|&(slot, _)| late[slot].is_none());
        led.retain(|g| late[index[g.key()]].is_none());
        Held {
            _leases: leases.into_iter().map(|(_, lease)| lease).collect(),
            _flights: led,
        }
    }

    /// Takes the leases of the led keys among the processes sharing the store, in the order
    /// of their keys, so two batches never each hold a key the other waits for (the one
    /// holding the lower key never waits for it). All the claims share one deadline, one
    /// [lease timeout](crate::CacheBuilder::lease_timeout) away; a key whose lease it does
    /// not win in time is computed without one, and so is every key from the first claim
    /// that fails (counted once). `None`: no leases
    /// (the store has none, or the cache turned them off); the leases won otherwise, each
    /// with its key's slot in the batch (`index`), so no key is copied.
    fn lease_led(
        &self,
        led: &mut [FlightGuard<'a>],
        index: &HashMap<&[u8], usize>,
    ) -> Option<Vec<(usize, lease::Held)>> {
        let terms = turn::terms(self.cache)?;
        led.sort_unstable_by(|a, b| a.key().cmp(b.key()));
        let deadline = Instant::now().checked_add(terms.wait());
        let mut leases = Vec::with_capacity(led.len());
        for (i, guard) in led.iter().enumerate() {
            // The first claim waits the whole timeout (its own deadline is no earlier than
            // the batch's); the others what is left of it.
            let wait = match deadline {
                Some(d) if i > 0 => d.saturating_duration_since(Instant::now()),
                _ => terms.wait(),
            };
            let claim = self
                .cache
                .store()
                .lease(guard.key(), &Terms::new(terms.ttl(), wait));
            let failed = match claim {
                // A store no other process sees: nothing to share.
                Ok(None) => return None,
                Ok(_) => false,
                Err(_) => true,
            };
            match turn::lease_claimed(&self.stats, claim) {
                LeaseStep::Won { lease, .. } => leases.push((index[guard.key()], lease)),
                LeaseStep::Without => {}
            }
            if failed {
                // The store cannot lease now (a server down, a directory not writable): the
                // other keys would fail alike, one error each. Computed without leases.
                break;
            }
        }
        Some(leases)
    }

    /// Looks the keys at `slots` up again after a wait; found values go to `late` and count
    /// as waits (the batch's misses are counted already).
    fn recheck_into<T: serde::de::DeserializeOwned>(
        &self,
        keys: &[&[u8]],
        slots: &[usize],
        late: &mut [Option<T>],
    ) {
        let again: Vec<&[u8]> = slots.iter().map(|&i| keys[i]).collect();
        let Ok(values) = self.cache.lookup_many::<T>(
            &again,
            &crate::stats::Atomics::default(),
            Some(self.fingerprint),
        ) else {
            return;
        };
        for (&i, v) in slots.iter().zip(values) {
            if v.is_some() {
                self.stats.waits.fetch_add(1, RELAXED);
                late[i] = v;
            }
        }
    }

    fn check_count(&self, expected: usize, got: usize) -> crate::Result<()> {
        if expected == got {
            return Ok(());
        }
        Err(Error::BatchLength {
            namespace: self.namespace.to_string(),
            expected,
            got,
        })
    }

    /// Encodes the values `P` keeps and writes them with one `put_many`.
    fn store_all<P: StorePolicy<R>, R>(
        &self,
        keys: &[&[u8]],
        results: &[R],
        opts: Call,
    ) -> crate::Result<()> {
        let expires = opts
            .ttl
            .or(self.ttl)
            .map(|t| self.cache.now_ms().saturating_add(duration_ms(t)));
        let mut encoded = Vec::with_capacity(keys.len());
        for (key, result) in keys.iter().zip(results) {
            if let Some(stored) = P::stored(result) {
                let entry =
                    self.cache
                        .encode_entry(key, stored, expires, Some(self.fingerprint))?;
                encoded.push((*key, entry));
            }
        }
        self.cache.put_many_encoded(&mut encoded, &self.stats)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use crate::store::MemoryStore;
    use crate::Cache;

    /// A stuck in-process leader used to hold a batch for a wait timeout per key and round
    /// (three rounds): six timed-out waits for two stuck keys before the batch computed them.
    #[test]
    fn a_batch_whose_keys_stuck_leaders_hold_waits_one_timeout_in_all_then_computes_them() {
        let cache = Cache::builder()
            .store(MemoryStore::new())
            .wait_timeout(Some(Duration::from_millis(20)))
            .build()
            .unwrap();
        let computed = Mutex::new(Vec::<Vec<u64>>::new());
        let memo = cache
            .memoize("stuck")
            .wrap_batch(|xs: Vec<u64>| {
                computed.lock().unwrap().push(xs.clone());
                xs.iter().map(|x| x * 10).collect::<Vec<_>>()
            })
            .unwrap();
        let flights = &cache.inner.flights;
        // Two leaders that never finish (held by this thread; the batch runs on another).
        let keys = [memo.key_for(&1).unwrap(), memo.key_for(&2).unwrap()];
        let stuck: Vec<_> = keys.iter().map(|k| flights.try_lead(k).unwrap()).collect();
        let out = std::thread::scope(|s| s.spawn(|| memo.call_many([1, 2, 3])).join())
            .unwrap()
            .unwrap();
        assert_eq!(out, vec![10, 20, 30]);
        assert_eq!(
            *computed.lock().unwrap(),
            vec![vec![1, 2, 3]],
            "the batch computed the stuck keys itself, in its one call"
        );
        assert_eq!(
            flights.timed_out(),
            1,
            "one wait gave up, for the whole batch"
        );
        drop(stuck);
    }
}
