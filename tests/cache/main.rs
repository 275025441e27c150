//! The Cache front-end: typed values, memoization, per-call modes, expiry, limits, slots,
//! stats. Time comes from a `ManualClock`: no test sleeps.

mod allocations;
mod arguments;
mod batch;
mod expiry;
mod failures;
mod identity;
mod limits;
mod memo;
#[cfg(all(feature = "archive", feature = "lmdb"))]
mod revisions;
mod stats;
#[cfg(feature = "lmdb")]
mod store_limits;
mod unchecked;
mod values;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cacher::store::{MemoryStore, Store};
use cacher::{Cache, CacheBuilder, Call, Error, Eviction, ManualClock, Tiered};
use serde::{Deserialize, Serialize};

const T0: u64 = 1_700_000_000_000;

/// One test's surroundings: a memory store and a manual clock at `T0`, kept so the test can
/// look at the store or move time, and open caches over them.
struct Env {
    clock: ManualClock,
    store: Arc<MemoryStore>,
}

/// The setup of every test here.
fn env() -> Env {
    Env {
        clock: ManualClock::new(T0),
        store: Arc::new(MemoryStore::new()),
    }
}

impl Env {
    /// A builder over this store and clock, for the settings a test needs.
    fn builder(&self) -> CacheBuilder {
        Cache::builder()
            .store(self.store.clone())
            .clock(self.clock.clone())
    }

    /// A cache with the default settings over this store and clock.
    fn cache(&self) -> Cache {
        self.builder().build().unwrap()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Response {
    status: u16,
    body: String,
}
