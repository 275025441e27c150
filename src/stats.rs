//! Hit/miss counters and timings, per namespace, kept in atomics so reading them is cheap and
//! possible at any time from any thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use crossbeam_utils::CachePadded;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// Counters of one namespace (or of the whole cache), as read at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Lookups that returned a fresh value.
    pub hits: u64,
    /// Lookups that found nothing, or only an expired value.
    pub misses: u64,
    /// Values written.
    pub stores: u64,
    /// Entries removed to respect `max_entries` / `max_bytes`.
    pub evictions: u64,
    /// Entries found expired (on read or by cleanup).
    pub expirations: u64,
    /// Stored bytes read on hits.
    pub bytes_read: u64,
    /// Stored bytes written.
    pub bytes_written: u64,
    /// Time spent in the memoized functions, computing misses.
    pub compute_time: Duration,
    /// Time spent reading and decoding hits.
    pub read_time: Duration,
    /// Cache errors swallowed by calls that behave like the wrapped function (`Memo::call`,
    /// a `#[memoize]` function, the cleanup thread); the first of each kind is also logged
    /// through `tracing`.
    pub errors: u64,
    /// Memoized lookups that found a value stored as another type (another function under
    /// the same namespace, or the type changed): counted as misses too, recomputed and
    /// overwritten.
    pub mismatches: u64,
    /// Memoized calls that missed and then got the value another caller computed (a leader
    /// in this process, or another process holding the key's lease) instead of computing it:
    /// counted as misses too. `misses - waits` is about how often the function ran.
    pub waits: u64,
    /// Background refreshes of a stale-while-revalidate value that failed (the function
    /// returned no value to store, panicked, or storing failed); the stale value stays served
    /// for the configured grace period.
    pub refresh_failures: u64,
}

impl Counters {
    /// Hits over lookups, 0 when there were none.
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 {
            0.0
        } else {
            self.hits as f64 / lookups as f64
        }
    }

    fn add(&mut self, o: &Counters) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.stores += o.stores;
        self.evictions += o.evictions;
        self.expirations += o.expirations;
        self.bytes_read += o.bytes_read;
        self.bytes_written += o.bytes_written;
        self.compute_time += o.compute_time;
        self.read_time += o.read_time;
        self.errors += o.errors;
        self.mismatches += o.mismatches;
        self.waits += o.waits;
        self.refresh_failures += o.refresh_failures;
    }
}

/// A snapshot of every namespace's counters and their total.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Counters per namespace (the function name for memoized calls, `""` for plain keys).
    pub namespaces: BTreeMap<String, Counters>,
    /// The sum over all namespaces.
    pub total: Counters,
}

impl std::fmt::Display for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row = |f: &mut std::fmt::Formatter<'_>, name: &str, c: &Counters| {
            writeln!(
                f,
                "{name:<24} hits {:>6}  misses {:>6}  hit ratio {:.1}%  stores {:>6}  evictions {:>5}  expired {:>5}  mismatches {}  errors {}  read {:>9} B  written {:>9} B  compute {:>9.3?}  reading {:>9.3?}",
                c.hits, c.misses, c.hit_ratio() * 100.0, c.stores, c.evictions, c.expirations, c.mismatches, c.errors, c.bytes_read, c.bytes_written, c.compute_time, c.read_time
            )
        };
        for (name, c) in &self.namespaces {
            row(
                f,
                if name.is_empty() {
                    "(plain keys)"
                } else {
                    name
                },
                c,
            )?;
        }
        row(f, "total", &self.total)
    }
}

/// How many stripes a namespace's counters are split into. Threads are given stripes in turn,
/// so up to this many threads never write the same cache line; more share a stripe (still
/// exact, just contended again). 16 stripes of 128 bytes cost 2 KiB per namespace.
const STRIPES: usize = 16;

/// One counter of one stripe. It can only be added to (or taken from): the value of a counter is the sum
/// over every stripe, which only [`Atomics::snapshot`] reads, so no caller can mistake one
/// thread's share for the total.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (with the ordering of [`AtomicU64::fetch_add`], whose shape this keeps so the
    /// call sites read as before).
    pub fn fetch_add(&self, n: u64, order: std::sync::atomic::Ordering) {
        self.0.fetch_add(n, order);
    }

    /// Takes back `n` added earlier, maybe by another thread into another stripe: this
    /// stripe's share may wrap below zero, the sum over stripes does not.
    pub fn fetch_sub(&self, n: u64, order: std::sync::atomic::Ordering) {
        self.0.fetch_sub(n, order);
    }
}

/// One thread's share of a namespace's counters, on its own cache lines.
#[derive(Debug, Default)]
pub(crate) struct Stripe {
    pub hits: Counter,
    pub misses: Counter,
    pub stores: Counter,
    pub evictions: Counter,
    pub expirations: Counter,
    pub bytes_read: Counter,
    pub bytes_written: Counter,
    pub compute_nanos: Counter,
    pub read_nanos: Counter,
    pub errors: Counter,
    pub mismatches: Counter,
    pub waits: Counter,
    pub refresh_failures: Counter,
}

impl Stripe {
    /// Hits counted by this stripe: a cheap, uncontended count for the calling thread to
    /// sample on (not the namespace's total, which only [`Atomics::snapshot`] gives).
    pub fn local_hits(&self) -> u64 {
        self.hits.0.load(Relaxed)
    }

    fn counters(&self) -> [&AtomicU64; 13] {
        [
            &self.hits.0,
            &self.misses.0,
            &self.stores.0,
            &self.evictions.0,
            &self.expirations.0,
            &self.bytes_read.0,
            &self.bytes_written.0,
            &self.compute_nanos.0,
            &self.read_nanos.0,
            &self.errors.0,
            &self.mismatches.0,
            &self.waits.0,
            &self.refresh_failures.0,
        ]
    }
}

/// The live counters of one namespace, striped: each thread adds to its own stripe (one
/// cache-padded block, see [`STRIPES`]), and a snapshot sums the stripes. With one shared
/// block, every hit of every thread wrote the same cache line, which then bounced between
/// cores: 4 threads of memoized hits scaled 1.17x where the store alone scaled 1.65x (issue
/// 10). Every add is still an atomic add, so the sums are exact.
///
/// `stats.hits.fetch_add(1, RELAXED)` reads as before: [`Deref`](std::ops::Deref) gives the
/// calling thread's stripe, found again at every field access (a thread-local load and an
/// index). An operation that bumps several counters takes the stripe once with
/// [`Atomics::local`].
#[derive(Debug, Default)]
pub(crate) struct Atomics {
    stripes: [CachePadded<Stripe>; STRIPES],
}

impl std::ops::Deref for Atomics {
    type Target = Stripe;
    fn deref(&self) -> &Stripe {
        self.local()
    }
}

/// The calling thread's stripe, given in turn the first time a thread asks.
#[inline]
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        // Const-initialized and without a destructor: a plain thread-local load on every
        // counter bump, usable even while the thread's other locals are torn down.
        static STRIPE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| match s.get() {
        usize::MAX => {
            let given = NEXT.fetch_add(1, Relaxed) % STRIPES;
            s.set(given);
            given
        }
        given => given,
    })
}

impl Atomics {
    /// The calling thread's stripe, found once: for an operation that adds to several
    /// counters (a hit's three, a store's two, a miss's two), where each access through
    /// `Deref` would find it again.
    #[inline]
    pub fn local(&self) -> &Stripe {
        &self.stripes[stripe_index()]
    }

    pub fn add_compute(&self, d: Duration) {
        self.compute_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }
    pub fn add_read(&self, d: Duration) {
        self.read_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }

    fn reset(&self) {
        for stripe in &self.stripes {
            for c in stripe.counters() {
                c.store(0, Relaxed);
            }
        }
    }

    fn snapshot(&self) -> Counters {
        // Wrapping: a stripe may hold a "negative" share (one thread's `fetch_sub` of what
        // another thread's stripe added); the sum over stripes is exact.
        let mut sums = [0u64; 13];
        for stripe in &self.stripes {
            for (sum, c) in sums.iter_mut().zip(stripe.counters()) {
                *sum = sum.wrapping_add(c.load(Relaxed));
            }
        }
        let [hits, misses, stores, evictions, expirations, bytes_read, bytes_written, compute_nanos, read_nanos, errors, mismatches, waits, refresh_failures] =
            sums;
        Counters {
            hits,
            misses,
            stores,
            evictions,
            expirations,
            bytes_read,
            bytes_written,
            compute_time: Duration::from_nanos(compute_nanos),
            read_time: Duration::from_nanos(read_nanos),
            errors,
            mismatches,
            waits,
            refresh_failures,
        }
    }
}

/// The registry of per-namespace counters. Looking up a namespace takes a read lock and a hash
/// (foldhash: the names are the program's own, not an attacker's); a memoized function looks
/// its namespace up once, when it is made, and plain keys (namespace `""`) have theirs held
/// apart, so a hit takes no lock. The counters themselves are lock-free.
#[derive(Debug)]
pub(crate) struct StatsRegistry {
    map: RwLock<HashMap<String, Arc<Atomics>, foldhash::fast::RandomState>>,
    /// The `""` namespace's counters, registered in `map` the first time they are asked for.
    plain: OnceLock<Arc<Atomics>>,
    /// Unique in the process (never reused, unlike an address): what a `#[memoize]` call
    /// site's cell ([`SiteStats`]) recognises its cache's counters by.
    id: u64,
}

impl Default for StatsRegistry {
    fn default() -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        StatsRegistry {
            map: RwLock::default(),
            plain: OnceLock::new(),
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }
}

/// One `#[memoize]` call site's namespace counters: looked up on its first call, then lent to
/// every later call of the same cache and namespace, so a call takes no lock, no hash and no
/// `Arc` count (a read-modify-write on a line every thread shares). A call through another
/// cache, or another namespace from the same site (a generic function's other
/// instantiations, a `Self` type's name), looks its counters up as before.
#[derive(Debug, Default)]
pub struct SiteStats(OnceLock<(u64, Box<str>, Arc<Atomics>)>);

impl SiteStats {
    /// An empty cell, for a `static` in the generated code.
    pub const fn new() -> Self {
        SiteStats(OnceLock::new())
    }

    /// The counters of `ns` in `registry`: the cell's when they are the ones it holds (or it
    /// is still empty and now keeps them), else looked up.
    pub(crate) fn get<'a>(
        &'a self,
        registry: &StatsRegistry,
        ns: &str,
    ) -> std::borrow::Cow<'a, Arc<Atomics>> {
        use std::borrow::Cow;
        let held = match self.0.get() {
            Some(held) => held,
            None => self
                .0
                .get_or_init(|| (registry.id, ns.into(), registry.namespace(ns))),
        };
        if held.0 == registry.id && *held.1 == *ns {
            Cow::Borrowed(&held.2)
        } else {
            Cow::Owned(registry.namespace(ns))
        }
    }
}

impl StatsRegistry {
    pub fn namespace(&self, ns: &str) -> Arc<Atomics> {
        if ns.is_empty() {
            return self.plain().clone();
        }
        self.lookup(ns)
    }

    /// The counters of plain keys (namespace `""`), without a lock once they exist.
    pub fn plain(&self) -> &Arc<Atomics> {
        self.plain.get_or_init(|| self.lookup(""))
    }

    fn lookup(&self, ns: &str) -> Arc<Atomics> {
        if let Some(a) = self.map.read().unwrap_or_else(|p| p.into_inner()).get(ns) {
            return a.clone();
        }
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ns.to_string())
            .or_default()
            .clone()
    }

    pub fn snapshot(&self) -> Stats {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let mut stats = Stats::default();
        for (ns, a) in map.iter() {
            let c = a.snapshot();
            stats.total.add(&c);
            stats.namespaces.insert(ns.clone(), c);
        }
        stats
    }

    /// Zeroes every counter in place: memoized functions and slots hold their namespace's
    /// counters, so the map must keep them.
    pub fn reset(&self) {
        for a in self.map.read().unwrap_or_else(|p| p.into_inner()).values() {
            a.reset();
        }
    }
}

pub(crate) const RELAXED: std::sync::atomic::Ordering = Relaxed;

/// Runs `f`, adding its time to the namespace's compute time.
pub(crate) fn timed<T>(stats: &Atomics, f: impl FnOnce() -> T) -> T {
    let start = std::time::Instant::now();
    let v = f();
    stats.add_compute(start.elapsed());
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_more_threads_than_stripes_sum_exactly() {
        let stats = Atomics::default();
        std::thread::scope(|s| {
            for t in 0..(2 * STRIPES as u64 + 3) {
                let stats = &stats;
                s.spawn(move || {
                    for _ in 0..1000 {
                        stats.hits.fetch_add(1, RELAXED);
                        stats.bytes_read.fetch_add(t, RELAXED);
                    }
                    stats.add_read(Duration::from_nanos(7));
                });
            }
        });
        let n = 2 * STRIPES as u64 + 3;
        let c = stats.snapshot();
        assert_eq!(c.hits, 1000 * n);
        assert_eq!(c.bytes_read, 1000 * (0..n).sum::<u64>());
        assert_eq!(c.read_time, Duration::from_nanos(7 * n));
        stats.reset();
        assert_eq!(stats.snapshot(), Counters::default());
    }

    #[test]
    fn a_count_taken_back_on_another_thread_sums_to_what_is_left() {
        let stats = Atomics::default();
        std::thread::scope(|s| {
            s.spawn(|| stats.hits.fetch_add(5, RELAXED));
        });
        // This thread's stripe goes below zero; the total does not.
        for _ in 0..3 {
            std::thread::scope(|s| {
                s.spawn(|| stats.hits.fetch_sub(1, RELAXED));
            });
        }
        assert_eq!(stats.snapshot().hits, 2);
    }

    /// `local` is the stripe `Deref` gives on the same thread, and counts through it are
    /// the namespace's like any other.
    #[test]
    fn the_local_stripe_is_the_threads_own_and_counts_into_the_total() {
        let stats = Atomics::default();
        let local = stats.local();
        assert!(std::ptr::eq(local, &*stats));
        local.hits.fetch_add(2, RELAXED);
        local.bytes_read.fetch_add(10, RELAXED);
        assert_eq!(local.local_hits(), 2);
        std::thread::scope(|s| {
            s.spawn(|| stats.local().hits.fetch_add(1, RELAXED));
        });
        let c = stats.snapshot();
        assert_eq!((c.hits, c.bytes_read), (3, 10));
    }

    /// A call site's cell lends its first cache's counters of its first namespace, and
    /// never another cache's or another namespace's (each gets its own, looked up).
    #[test]
    fn a_site_cell_lends_only_the_counters_it_was_filled_for() {
        let (one, two) = (StatsRegistry::default(), StatsRegistry::default());
        let cell = SiteStats::new();
        let first = cell.get(&one, "f");
        assert!(Arc::ptr_eq(&first, &one.namespace("f")));
        assert!(matches!(first, std::borrow::Cow::Borrowed(_)));
        assert!(matches!(cell.get(&one, "f"), std::borrow::Cow::Borrowed(_)));
        for (registry, ns) in [(&two, "f"), (&one, "g"), (&two, "g")] {
            let got = cell.get(registry, ns);
            assert!(Arc::ptr_eq(&got, &registry.namespace(ns)), "{ns}");
        }
        cell.get(&two, "f").hits.fetch_add(1, RELAXED);
        assert_eq!(one.snapshot().total.hits, 0);
        assert_eq!(two.snapshot().namespaces["f"].hits, 1);
    }

    /// What lets hits scale on threads: two threads bump counters on different cache lines,
    /// where before every thread wrote the one `AtomicU64` of the namespace.
    #[test]
    fn two_threads_count_on_different_cache_lines() {
        let stats = Atomics::default();
        let here = &stats.hits as *const Counter as usize;
        // Stripes are given in turn, so the next thread gets another one unless exactly a
        // multiple of STRIPES threads started meanwhile (other tests): three tries.
        let there: Vec<usize> = (0..3)
            .map(|_| {
                std::thread::scope(|s| {
                    s.spawn(|| &stats.hits as *const Counter as usize)
                        .join()
                        .unwrap()
                })
            })
            .collect();
        assert!(
            there.iter().any(|t| here.abs_diff(*t) >= 64),
            "{here:#x} {there:x?}"
        );
        // And reading it from one thread still gives the other's counts.
        std::thread::scope(|s| {
            s.spawn(|| stats.hits.fetch_add(1, RELAXED));
        });
        stats.hits.fetch_add(1, RELAXED);
        assert_eq!(stats.snapshot().hits, 2);
    }
}
