//! Memoization: turn a function into one whose results come from the cache.
//!
//! Two styles share one path through the cache (one key builder, one run function in
//! `site.rs`), so the same function, version and arguments give the same key in both:
//!
//! - the wrapper: [`Cache::memoize`](crate::Cache::memoize) → [`MemoBuilder`] →
//!   [`Memo`], called with [`Memo::call`];
//! - the attribute: [`#[memoize]`](crate::memoize) on a `fn` or a method.
//!
//! Each call can be steered with [`Call`] (its [`Mode`]: bypass, refresh, cache-only, and a
//! TTL), and a [`StorePolicy`] decides which results are stored: [`Always`] (every value) or
//! [`OkOnly`] (the `Ok` values of a `Result`). [`Memo::call_with_status`] (and the
//! attribute's `NAME_with_status`) also say where the value came from ([`Status`]);
//! [`Memo::invalidate`] and [`Memo::clear`] (`NAME_invalidate`, `NAME_clear`) remove results.
//!
//! A memoized function's identity is its namespace and version, and each stored value
//! records its type's fingerprint: see [`Cache::memoize`](crate::Cache::memoize) and
//! [`#[memoize]`](crate::memoize).
//!
//! **Memory per thread.** Building a key hashes the arguments with BLAKE3, most of a hit's
//! key cost. Each thread that builds keys remembers the hashes of its last 512 short inputs
//! (encoded arguments up to 48 bytes, e.g. two `u64`s or a short string), matched on every
//! byte, so a call repeating its arguments on that thread skips the hash and gets the same
//! key. The table takes about 44 KiB per such thread, made on its first short key and freed
//! when the thread exits; a key for arguments the thread has not seen costs about 10 % more
//! than without it (`benches/RESULTS.md`).

mod args;
mod async_call;
mod async_memo;
mod batch;
mod builder;
mod call;
mod many;
mod policy;
mod prefetch;
pub(crate) mod site;
mod throttled;
mod wrapper;

pub use args::{AsyncMemoFn, Ignored, IntoAsyncMemoFn, IntoMemoFn, KeyArg, Keyed, MemoFn, Spread};
pub use async_call::{BlockingDone, BlockingJob, Offload};
pub use async_memo::AsyncMemo;
pub use batch::BatchError;
pub use builder::MemoBuilder;
pub use call::{Call, Mode, Status};
pub use many::BatchMemo;
pub use policy::{Always, OkOnly, StorePolicy};
pub use prefetch::{Freshness, Prefetch, PrefetchReport, Refresh};
pub(crate) use site::Site;
pub use throttled::Throttled;
pub use wrapper::Memo;
