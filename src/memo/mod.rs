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
//! [`OkOnly`] (the `Ok` values of a `Result`).

mod builder;
mod call;
mod policy;
pub(crate) mod site;
mod wrapper;

pub use builder::MemoBuilder;
pub use call::{Call, Mode, Status};
pub use policy::{Always, OkOnly, StorePolicy};
pub(crate) use site::Site;
pub use wrapper::Memo;
