//! Hit/miss counters and timings, per namespace, kept in atomics so reading them is cheap and
//! possible at any time from any thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, RwLock};
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

/// The live counters of one namespace.
#[derive(Debug, Default)]
pub(crate) struct Atomics {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stores: AtomicU64,
    pub evictions: AtomicU64,
    pub expirations: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_written: AtomicU64,
    pub compute_nanos: AtomicU64,
    pub read_nanos: AtomicU64,
    pub errors: AtomicU64,
    pub mismatches: AtomicU64,
    pub waits: AtomicU64,
    pub refresh_failures: AtomicU64,
}

impl Atomics {
    pub fn add_compute(&self, d: Duration) {
        self.compute_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }
    pub fn add_read(&self, d: Duration) {
        self.read_nanos.fetch_add(d.as_nanos() as u64, Relaxed);
    }
    fn reset(&self) {
        for c in [
            &self.hits,
            &self.misses,
            &self.stores,
            &self.evictions,
            &self.expirations,
            &self.bytes_read,
            &self.bytes_written,
            &self.compute_nanos,
            &self.read_nanos,
            &self.errors,
            &self.mismatches,
            &self.waits,
            &self.refresh_failures,
        ] {
            c.store(0, Relaxed);
        }
    }

    fn snapshot(&self) -> Counters {
        Counters {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stores: self.stores.load(Relaxed),
            evictions: self.evictions.load(Relaxed),
            expirations: self.expirations.load(Relaxed),
            bytes_read: self.bytes_read.load(Relaxed),
            bytes_written: self.bytes_written.load(Relaxed),
            compute_time: Duration::from_nanos(self.compute_nanos.load(Relaxed)),
            read_time: Duration::from_nanos(self.read_nanos.load(Relaxed)),
            errors: self.errors.load(Relaxed),
            mismatches: self.mismatches.load(Relaxed),
            waits: self.waits.load(Relaxed),
            refresh_failures: self.refresh_failures.load(Relaxed),
        }
    }
}

/// The registry of per-namespace counters. Looking up a namespace takes a read lock once per
/// call; the counters themselves are lock-free.
#[derive(Debug, Default)]
pub(crate) struct StatsRegistry {
    map: RwLock<HashMap<String, Arc<Atomics>>>,
}

impl StatsRegistry {
    pub fn namespace(&self, ns: &str) -> Arc<Atomics> {
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
