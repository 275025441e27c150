//! [`Memo`]: a function wrapped so its results come from the cache.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::key::{KeyBuf, KeyError, KeyPrefix};
use crate::memo::args::{Keyed, MemoFn};
use crate::memo::builder::DepFn;
use crate::memo::{Call, Site, Status, StorePolicy};
use crate::stats::Atomics;
use crate::{Cache, Result};

/// A marker that owns nothing, is `Send + Sync` and is covariant in `T`.
pub(super) type Covariant<T> = PhantomData<fn() -> T>;

/// What every memoized function of the wrapper style holds: where its results live and how
/// its keys are made, whatever the shape of the function (one call, a batch, async).
pub(super) struct Identity {
    pub(super) cache: Cache,
    pub(super) namespace: String,
    pub(super) version: u32,
    /// Argument positions left out of the key.
    pub(super) skip: Vec<usize>,
    pub(super) deps: Vec<DepFn>,
    /// The fingerprint of the stored type, from `std::any::type_name`.
    pub(super) fingerprint: u64,
    pub(super) ttl: Option<Duration>,
    pub(super) stats: Arc<Atomics>,
    /// `{namespace}@{version}:`, the part of every key that is the same.
    pub(super) prefix: KeyPrefix,
}

impl Identity {
    pub(super) fn site(&self) -> Site<'_> {
        Site::with_stats(
            &self.cache,
            &self.namespace,
            self.version,
            self.ttl,
            self.fingerprint,
            &self.stats,
        )
    }

    /// The store key for canonically encoded arguments: the dependencies join them.
    pub(super) fn key(&self, encoded: std::result::Result<Vec<u8>, KeyError>) -> Result<Vec<u8>> {
        let args = encoded?;
        // The same construction as `key_in_place`, with the arguments already encoded.
        let mut key = KeyBuf::default();
        self.prefix.hashed(&mut key, |input| {
            input.part(&args);
            for dep in &self.deps {
                input.part(&dep()?);
            }
            Ok(())
        })?;
        Ok(key.into_vec())
    }

    /// The store key for `args` as `f` keys them, the same bytes as [`Identity::key`] gives,
    /// built in place into `key`: the arguments are encoded straight into the hash input and
    /// the key is held inline, so a hit allocates nothing for it.
    pub(super) fn key_in_place<'k, A, R>(
        &self,
        f: &impl MemoFn<A, R>,
        args: &A,
        key: &'k mut KeyBuf,
    ) -> Result<&'k [u8]> {
        self.prefix.hashed(key, |input| {
            input.part_with(|out| f.key_bytes_into(args, &self.skip, out))?;
            for dep in &self.deps {
                input.part(&dep()?);
            }
            Ok(())
        })?;
        Ok(key.as_slice())
    }
}

/// A memoized function: call it like the original, and its results come from the cache when
/// they can. Made by [`MemoBuilder::wrap`](super::MemoBuilder::wrap) or
/// [`MemoBuilder::wrap_result`](super::MemoBuilder::wrap_result).
///
/// `A` is what [`Memo::call`] takes: the argument of a function of one argument, the tuple of
/// the arguments of a function of several (`|url: &str, page: u32|` is called with
/// `(url, page)`).
pub struct Memo<A, R, F, P> {
    pub(super) id: Identity,
    pub(super) f: F,
    /// Covariant in `A`, so a memo of borrowed arguments takes arguments of any lifetime.
    pub(super) _marker: Covariant<(A, R, P)>,
}

impl<A, R, F, P> Memo<A, R, F, P>
where
    F: MemoFn<A, R>,
    P: StorePolicy<R>,
{
    /// Replaces the default key (a hash of the arguments) with `key(args)`, hashed the same
    /// stable way. The namespace, version and dependencies still join it.
    ///
    /// ```
    /// use cacher::{store::MemoryStore, Cache};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let len = cache.wrap("len", |s: &str| s.len()).key(|s: &&str| s.to_lowercase());
    /// assert_eq!(len.key_for(&"ABC")?, len.key_for(&"abc")?);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn key<K, KF>(self, key: KF) -> Memo<A, R, Keyed<F, KF>, P>
    where
        K: Serialize,
        KF: Fn(&A) -> K,
    {
        Memo {
            id: self.id,
            f: Keyed { f: self.f, key },
            _marker: PhantomData,
        }
    }

    /// The store key for `args`.
    pub fn key_for(&self, args: &A) -> Result<Vec<u8>> {
        self.id.key(self.f.key_bytes(args, &self.id.skip))
    }

    fn site(&self) -> Site<'_> {
        self.id.site()
    }

    /// Calls the function through the cache, like the original: a cache error (I/O, a corrupt
    /// entry, a failed write) never fails the call — the function's value is returned, the
    /// error is counted in the stats (`errors`) and the first of each kind is logged through
    /// `tracing`.
    pub fn call(&self, args: A) -> R {
        let mut key = KeyBuf::default();
        let key = self.id.key_in_place(&self.f, &args, &mut key);
        self.site()
            .call_keyed::<P, R, A, _>(key, args, &|a| self.f.call_fn(a))
    }

    /// The memoized function as a plain closure, for APIs that take an `Fn(A) -> R`.
    pub fn into_fn(self) -> impl Fn(A) -> R {
        move |args| self.call(args)
    }

    /// Calls the function through the cache and reports cache errors, a failed write of the
    /// computed value included.
    pub fn try_call(&self, args: A) -> Result<R> {
        self.call_with(args, Call::default())
    }

    /// Calls with per-call options (bypass, refresh, cache-only, TTL) and reports cache
    /// errors, a failed write of the computed value included.
    pub fn call_with(&self, args: A, opts: Call) -> Result<R> {
        Ok(self.call_with_status(args, opts)?.0)
    }

    /// Like [`Memo::call_with`], and says whether the value came from the cache.
    ///
    /// ```
    /// use cacher::{Cache, Call, memo::Status, store::MemoryStore};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let square = cache.memoize("square").wrap(|x: u64| x * x)?;
    /// assert_eq!(square.call_with_status(3, Call::default())?, (9, Status::Miss));
    /// assert_eq!(square.call_with_status(3, Call::default())?, (9, Status::Hit));
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn call_with_status(&self, args: A, opts: Call) -> Result<(R, Status)> {
        let mut key = KeyBuf::default();
        let key = self.id.key_in_place(&self.f, &args, &mut key);
        self.site()
            .call_with_keyed::<P, R, A, _>(key, opts, args, &|a| self.f.call_fn(a))
    }

    /// Removes the cached result for `args`; returns whether there was one.
    pub fn invalidate(&self, args: &A) -> Result<bool> {
        self.site().invalidate(self.key_for(args))
    }

    /// Removes every cached result of this function (its namespace, all versions); returns
    /// how many there were.
    pub fn clear(&self) -> Result<u64> {
        self.site().clear()
    }
}
