//! [`AsyncMemo`]: an async function wrapped so its results come from the cache.

use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::memo::args::{AsyncMemoFn, IntoAsyncMemoFn};
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
/// [`AsyncMemo::offload_writes`] moves them (and waits for another process's lease) to a
/// blocking pool.
pub struct AsyncMemo<A, R, F, P> {
    id: Identity,
    f: F,
    offload: Option<Offload>,
    _marker: Covariant<(A, R, P)>,
}

impl MemoBuilder {
    /// Wraps an async function (`|args| async move { .. }`, or an `async fn`) of one to six
    /// arguments, whose every result is stored. A function of several arguments is called
    /// with their tuple and keyed as `wrap` keys it, so the sync and async wrappers of one
    /// namespace share results.
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
    ///
    /// async fn page(url: &str, n: u32) -> String {
    ///     format!("{url} page {n}")
    /// }
    /// let page = cache.memoize("page").wrap_async(page)?;
    /// block_on(async { assert_eq!(page.call(("a.org", 2)).await, "a.org page 2") });
    /// # Ok::<(), cacher::Error>(())
    /// ```
    #[allow(
        clippy::type_complexity,
        reason = "the wrapped function's type, spelled out"
    )]
    pub fn wrap_async<M, R, F>(self, f: F) -> Result<AsyncMemo<F::Args, R, F::Fn, Always>>
    where
        F: IntoAsyncMemoFn<M>,
        <F::Fn as AsyncMemoFn<F::Args>>::Future: Future<Output = R>,
        R: Serialize + DeserializeOwned,
    {
        self.build_async(f.into_async_memo_fn())
    }

    /// Wraps an async function (of one to six arguments) returning `Result`: `Ok` values are
    /// stored, errors are returned and never stored.
    #[allow(
        clippy::type_complexity,
        reason = "the wrapped function's type, spelled out"
    )]
    pub fn wrap_async_result<M, T, E, F>(
        self,
        f: F,
    ) -> Result<AsyncMemo<F::Args, std::result::Result<T, E>, F::Fn, OkOnly>>
    where
        F: IntoAsyncMemoFn<M>,
        <F::Fn as AsyncMemoFn<F::Args>>::Future: Future<Output = std::result::Result<T, E>>,
        T: Serialize + DeserializeOwned,
        E: 'static,
    {
        self.build_async(f.into_async_memo_fn())
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

impl<A, R, F, P> AsyncMemo<A, R, F, P>
where
    F: AsyncMemoFn<A>,
    F::Future: Future<Output = R>,
    P: StorePolicy<R>,
{
    /// Runs the blocking work of a miss through `offload` (a blocking pool) instead of on the
    /// awaiting task: the store write, and the wait for another process computing the same
    /// key on a shared store (without it the call tries that lease once and, if it is held,
    /// computes at once).
    pub fn offload_writes(mut self, offload: Offload) -> Self {
        self.offload = Some(offload);
        self
    }

    /// The store key for `args` (the same as the sync wrapper's).
    pub fn key_for(&self, args: &A) -> Result<Vec<u8>> {
        self.id.key(self.f.key_bytes(args, &self.id.skip))
    }

    /// Calls the function through the cache, like the original: a cache error never fails
    /// the call (it is counted in the stats and the first of each kind is logged).
    pub async fn call(&self, args: A) -> R {
        let key = self.key_for(&args);
        self.id
            .site()
            .call_async::<P, R, _, _>(key, move || self.f.call_async(args), self.offload.as_ref())
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
            .call_with_async::<P, R, _, _>(
                key,
                opts,
                move || self.f.call_async(args),
                self.offload.as_ref(),
            )
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
