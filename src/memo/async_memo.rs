//! [`AsyncMemo`]: an async function wrapped so its results come from the cache.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::canonical_args;
use crate::memo::async_call::Offload;
use crate::memo::wrapper::{Covariant, Identity};
use crate::memo::{Always, Call, MemoBuilder, OkOnly, Status, StorePolicy};
use crate::Result;

/// A memoized async function, for any executor: the cache adds no runtime. Made by
/// [`MemoBuilder::wrap_async`] or [`MemoBuilder::wrap_async_result`]; keys, modes, policies
/// and stats are those of [`Memo`](super::Memo), so a sync and an async wrapper of one
/// namespace share results.
///
/// Where the store's blocking I/O runs is said in [`Site::call_async`](crate::__private::Site::call_async):
/// lookups inline (a hit is sub-microsecond on LMDB), writes inline unless
/// [`AsyncMemo::offload_writes`] moves them to a blocking pool.
pub struct AsyncMemo<A, R, F, P> {
    id: Identity,
    f: F,
    offload: Option<Offload>,
    _marker: Covariant<(A, R, P)>,
}

impl MemoBuilder {
    /// Wraps an async function (`|args| async move { .. }`, or an `async fn`), whose every
    /// result is stored. A function of several arguments takes their tuple.
    ///
    /// ```
    /// use cacher::{store::MemoryStore, Cache};
    /// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
    /// #     // A tiny executor for the example; use any runtime.
    /// #     let waker = std::task::Waker::noop();
    /// #     let mut cx = std::task::Context::from_waker(&waker);
    /// #     let mut f = std::pin::pin!(f);
    /// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
    /// # }
    /// async fn fetch(url: String) -> String {
    ///     format!("body of {url}") // stands in for an HTTP request
    /// }
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let fetch = cache.memoize("fetch").wrap_async(fetch)?;
    /// block_on(async {
    ///     assert_eq!(fetch.call("a.org".into()).await, "body of a.org"); // computed
    ///     assert_eq!(fetch.call("a.org".into()).await, "body of a.org"); // a hit
    /// });
    /// assert_eq!(cache.stats().total.hits, 1);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn wrap_async<A, R, F, Fut>(self, f: F) -> Result<AsyncMemo<A, R, F, Always>>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned,
        F: Fn(A) -> Fut,
        Fut: Future<Output = R>,
    {
        self.build_async(f)
    }

    /// Wraps an async function returning `Result`: `Ok` values are stored, errors are
    /// returned and never stored.
    #[allow(
        clippy::type_complexity,
        reason = "the wrapped function's type, spelled out"
    )]
    pub fn wrap_async_result<A, T, E, F, Fut>(
        self,
        f: F,
    ) -> Result<AsyncMemo<A, std::result::Result<T, E>, F, OkOnly>>
    where
        A: Serialize,
        T: Serialize + DeserializeOwned,
        E: 'static,
        F: Fn(A) -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        self.build_async(f)
    }

    fn build_async<A, R, F, P: StorePolicy<R>>(self, f: F) -> Result<AsyncMemo<A, R, F, P>> {
        let skip = self.skipped()?;
        Ok(AsyncMemo {
            id: self.identity::<R, P>(skip),
            f,
            offload: None,
            _marker: Covariant::default(),
        })
    }
}

impl<A, R, F, Fut, P> AsyncMemo<A, R, F, P>
where
    A: Serialize,
    F: Fn(A) -> Fut,
    Fut: Future<Output = R>,
    P: StorePolicy<R>,
{
    /// Runs the store write after a miss through `offload` (a blocking pool) instead of on
    /// the awaiting task.
    pub fn offload_writes(mut self, offload: Offload) -> Self {
        self.offload = Some(offload);
        self
    }

    /// The store key for `args` (the same as the sync wrapper's).
    pub fn key_for(&self, args: &A) -> Result<Vec<u8>> {
        self.id.key(canonical_args(args, &self.id.skip))
    }

    /// Calls the function through the cache, like the original: a cache error never fails
    /// the call (it is counted in the stats and the first of each kind is logged).
    pub async fn call(&self, args: A) -> R {
        let key = self.key_for(&args);
        self.id
            .site()
            .call_async::<P, R, _, _>(key, move || (self.f)(args), self.offload.as_ref())
            .await
    }

    /// Calls and reports cache errors, a failed write of the computed value included.
    pub async fn try_call(&self, args: A) -> Result<R> {
        Ok(self.call_with_status(args, Call::default()).await?.0)
    }

    /// Calls with per-call options (bypass, refresh, cache-only, TTL); reports cache errors.
    pub async fn call_with(&self, args: A, opts: Call) -> Result<R> {
        Ok(self.call_with_status(args, opts).await?.0)
    }

    /// Like [`AsyncMemo::call_with`], and says whether the value came from the cache.
    pub async fn call_with_status(&self, args: A, opts: Call) -> Result<(R, Status)> {
        let key = self.key_for(&args);
        self.id
            .site()
            .call_with_async::<P, R, _, _>(key, opts, move || (self.f)(args), self.offload.as_ref())
            .await
    }

    /// Removes the cached result for `args`; returns whether there was one.
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.id.site().invalidate(self.key_for(args))
    }

    /// Removes every cached result of this function (its namespace, all versions).
    pub fn clear(&self) -> Result<u64> {
        self.id.site().clear()
    }
}
