//! cacher: persistent caching that is boring and fast.
//!
//! A [`Cache`] joins one [`store::Store`] (bytes <-> disk) with one format from the
//! [`formats`] registry (values <-> bytes) and adds the policy: stable keys, memoization,
//! per-call control, expiry, limits, stats.
//!
//! ```
//! use cacher::{Cache, store::MemoryStore};
//!
//! let cache = Cache::builder().store(MemoryStore::new()).build()?;
//! let square = cache.memoize("square").wrap(|x: u64| x * x)?;
//! assert_eq!(square.call(12), 144); // computed
//! assert_eq!(square.call(12), 144); // read from the cache
//! assert_eq!(cache.stats().total.hits, 1);
//! # Ok::<(), cacher::Error>(())
//! ```
#![deny(unsafe_code)]

#[doc(hidden)]
pub mod __private;
mod cache;
mod clock;
mod error;
pub mod key;
mod limits;
pub mod memo;
mod report;
mod slot;
mod stats;
mod value_codec;

pub use cache::{Cache, CacheBuilder, CleanupReport, CleanupThread};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, Result};
pub use limits::Eviction;
pub use memo::{Call, Memo};
pub use slot::Slot;
pub use stats::{Counters, Stats};

pub use cacher_formats as formats;
#[doc = include_str!("memoize.md")]
pub use cacher_macros::memoize;
pub use cacher_store as store;
/// A bounded memory tier in front of a disk store (from [`store`]).
pub use cacher_store::Tiered;
