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
//!
//! # Where things are
//! - [`Cache`] and its [`CacheBuilder`]: typed `get`/`put`, expiry ([`Cache::cleanup`],
//!   [`Cache::spawn_cleanup`]), limits ([`Eviction`]), [`Stats`], [`Slot`]s.
//! - Memoization, two styles over one path: the wrapper ([`Cache::memoize`] → [`Memo`]) and
//!   the attribute [`#[memoize]`](memoize). Per-call control is [`Call`]; the rest
//!   ([`memo::Status`], [`memo::StorePolicy`], …) is in [`memo`]. The wrapper takes functions
//!   of one to six arguments (borrowed ones too; [`memo::Ignored`] ones need no `Serialize`).
//! - Many inputs at once: [`Memo::call_many`] (one `get_many`, the missing computed one by one
//!   or on threads, one `put_many`) and [`memo::BatchMemo`] from
//!   [`MemoBuilder::wrap_batch`](memo::MemoBuilder::wrap_batch) (one call of a batch function
//!   with only the missing inputs); `#[memoize(batch)]` for the attribute.
//! - Async: [`memo::AsyncMemo`] from [`MemoBuilder::wrap_async`](memo::MemoBuilder::wrap_async)
//!   and `#[memoize] async fn`, on any executor.
//! - [`key`]: how a key is made from a function's identity and its arguments, stable across
//!   processes, machines and crate upgrades.
//! - [`store`] (crate `cacher-store`): the [`store::Store`] trait and the stores
//!   (`MemoryStore`, `DirStore`, `LogStore`, `LmdbStore` with the `lmdb` feature, and
//!   [`Tiered`]).
//! - [`formats`] (crate `cacher-formats`): formats, codecs, the value envelope and its MAC.
//!
//! # A cache never returns a wrong value
//! A memoized function's namespace is its identity (the wrapper's name, or the function's
//! path with `#[memoize]`), and every stored value records a fingerprint of its type: a
//! value stored by another function or as another type is a miss that recomputes and
//! overwrites (the `mismatches` stat), never a value of the wrong function. With a MAC key
//! ([`formats::Registry::with_mac_key`]) a value is accepted only under the key it was
//! written for: [`Cache::get`], [`Cache::contains`] and the memoized calls all refuse a value
//! copied from another key.
//!
//! Errors are never silent: [`Memo::try_call`], [`Memo::call_with`] and the attribute's
//! `NAME_with` return them; [`Memo::call`] and the attribute's `NAME` return the computed
//! value, count the error in [`Stats`] and log the first of each kind through the
//! [`tracing`](https://docs.rs/tracing) crate.
#![deny(unsafe_code)]

#[doc(hidden)]
pub mod __private;
mod cache;
mod clock;
mod error;
pub mod flight;
pub mod key;
mod limits;
pub mod memo;
mod report;
mod slot;
mod stats;
pub mod throttle;
mod value_codec;

pub use cache::{is_revision_key, revision_key_kind, RevisionKeyKind};
#[cfg(feature = "archive")]
pub use cache::{ArchivePolicy, ArchiveReport};
pub use cache::{
    BlobEntry, BlobError, BlobMemo, BodyReader, Cache, CacheBuilder, CleanupReport, CleanupThread,
    MappedBlob, RevisionInfo, RevisionPlace,
};
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

/// The README's code blocks, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
