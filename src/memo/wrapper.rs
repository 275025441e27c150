//! [`Memo`]: a function wrapped so its results come from the cache.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::key::{canonical_args, canonical_bytes, KeyError};
use crate::memo::builder::DepFn;
use crate::memo::{Call, Site, StorePolicy};
use crate::stats::{timed, Atomics};
use crate::{Cache, Error, Result};

type KeyFn<A> = Arc<dyn Fn(&A) -> std::result::Result<Vec<u8>, KeyError> + Send + Sync>;

/// A memoized function: call it like the original, and its results come from the cache when
/// they can. Made by [`MemoBuilder::wrap`] or [`MemoBuilder::wrap_result`].
pub struct Memo<A, R, F, P> {
    pub(super) cache: Cache,
    pub(super) namespace: String,
    pub(super) version: u32,
    /// Argument positions left out of the key.
    pub(super) skip: Vec<usize>,
    pub(super) deps: Vec<DepFn>,
    pub(super) config_error: Option<String>,
    pub(super) ttl: Option<Duration>,
    pub(super) key_fn: Option<KeyFn<A>>,
    pub(super) stats: Arc<Atomics>,
    pub(super) f: F,
    pub(super) _marker: PhantomData<fn(A) -> (R, P)>,
}

impl<A, R, F, P> Memo<A, R, F, P>
where
    A: Serialize,
    F: Fn(A) -> R,
    P: StorePolicy<R>,
{
    /// Replaces the default key (a hash of the arguments) with `key(args)`, hashed the same
    /// stable way. The namespace, version and dependencies still join it.
    pub fn key<K, KF>(mut self, key: KF) -> Self
    where
        K: Serialize,
        KF: Fn(&A) -> K + Send + Sync + 'static,
    {
        self.key_fn = Some(Arc::new(move |a| canonical_bytes(&key(a))));
        self
    }

    /// The store key for `args`.
    pub fn key_for(&self, args: &A) -> Result<Vec<u8>> {
        if let Some(msg) = &self.config_error {
            return Err(Error::Config(msg.clone()));
        }
        Ok(self.encoded_key(args)?)
    }

    fn encoded_key(&self, args: &A) -> std::result::Result<Vec<u8>, KeyError> {
        let encoded = match &self.key_fn {
            Some(kf) => kf(args),
            None => canonical_args(args, &self.skip),
        };
        self.site().key(encoded, self.deps.iter().map(|d| d()))
    }

    fn site(&self) -> Site<'_> {
        Site::with_stats(
            &self.cache,
            &self.namespace,
            self.version,
            self.ttl,
            self.stats.clone(),
        )
    }

    /// Calls the function through the cache, like the original: a cache error (I/O, a corrupt
    /// entry) never fails the call — the function runs and the error is counted in the stats.
    pub fn call(&self, args: A) -> R {
        self.run(args, Call::default(), false)
            .unwrap_or_else(|(args, _)| timed(&self.stats, || (self.f)(args)))
    }

    /// The memoized function as a plain closure, for APIs that take an `Fn(A) -> R`.
    pub fn into_fn(self) -> impl Fn(A) -> R {
        move |args| self.call(args)
    }

    /// Calls the function through the cache and reports cache errors.
    pub fn try_call(&self, args: A) -> Result<R> {
        self.call_with(args, Call::default())
    }

    /// Calls with per-call options: bypass, refresh, cache-only, TTL.
    pub fn call_with(&self, args: A, opts: Call) -> Result<R> {
        self.run(args, opts, true).map_err(|(_, e)| e)
    }

    /// Removes the cached result for `args`; returns whether there was one.
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.cache.remove(self.key_for(args)?)
    }

    /// On error before the function ran, hands the arguments back so `call` can still run it.
    fn run(&self, args: A, opts: Call, strict: bool) -> std::result::Result<R, (A, Error)> {
        let key = self.key_for(&args);
        self.site()
            .run::<P, R, A>(key, opts, strict, args, |a| (self.f)(a))
    }
}
