//! The one path of a memoized call, shared by [`Memo`](super::Memo) and `#[memoize]`: a
//! [`Site`] makes the key, then looks up, computes and stores.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::duration_ms;
use crate::flight::turn::{turn, Turn};
use crate::key::{canonical_bytes_into, hashed_in_place, key_from_parts, namespace_of, KeyError};
use crate::memo::{Call, Mode, Status, StorePolicy};
use crate::report::ErrorKind;
use crate::stats::{timed, Atomics, SiteStats};
use crate::{Cache, Error, Result};

/// One memoized function as the cache sees it: where its results live (namespace and
/// version), how long they last, and the fingerprint of the type they are stored as.
/// Borrowed for the length of one call.
pub struct Site<'a> {
    pub(super) cache: &'a Cache,
    pub(super) namespace: &'a str,
    version: u32,
    pub(super) ttl: Option<Duration>,
    pub(super) fingerprint: u64,
    /// Borrowed from a [`Memo`](super::Memo); looked up per call for the attribute.
    pub(super) stats: Cow<'a, Arc<Atomics>>,
}

/// How a run ended.
pub(super) enum Outcome<R, A> {
    /// The value, from the cache or computed (and stored if the policy keeps it).
    Done(R, Status),
    /// Failed before the function ran: the arguments come back so it still can.
    NotComputed(A, Error),
    /// The function ran; storing its value failed.
    WriteFailed(R, Error),
}

impl<'a> Site<'a> {
    /// The site of function `namespace` at `version` in `cache`, whose values are stored with
    /// the type fingerprint `fingerprint` ([`cacher_formats::type_fingerprint`]); `ttl`
    /// overrides the cache's TTL for the values it stores.
    pub fn new(
        cache: &'a Cache,
        namespace: &'a str,
        version: u32,
        ttl: Option<Duration>,
        fingerprint: u64,
    ) -> Self {
        let stats = Cow::Owned(cache.inner.stats.namespace(namespace));
        Site::with(stats, cache, namespace, version, ttl, fingerprint)
    }

    /// Like [`Site::new`] for a `#[memoize]` call site, whose namespace counters `cell` (a
    /// `static` of the generated code) keeps from the first call: later calls of the same
    /// cache and namespace look nothing up.
    pub fn at(
        cell: &'static SiteStats,
        cache: &'a Cache,
        namespace: &'a str,
        version: u32,
        ttl: Option<Duration>,
        fingerprint: u64,
    ) -> Self {
        let stats = cell.get(&cache.inner.stats, namespace);
        Site::with(stats, cache, namespace, version, ttl, fingerprint)
    }

    /// Like [`Site::new`] with the namespace's counters already looked up.
    pub(crate) fn with_stats(
        cache: &'a Cache,
        namespace: &'a str,
        version: u32,
        ttl: Option<Duration>,
        fingerprint: u64,
        stats: &'a Arc<Atomics>,
    ) -> Self {
        Site::with(
            Cow::Borrowed(stats),
            cache,
            namespace,
            version,
            ttl,
            fingerprint,
        )
    }

    /// The one place a site is put together; the constructors differ only in where the
    /// namespace's counters come from.
    fn with(
        stats: Cow<'a, Arc<Atomics>>,
        cache: &'a Cache,
        namespace: &'a str,
        version: u32,
        ttl: Option<Duration>,
        fingerprint: u64,
    ) -> Self {
        Site {
            stats,
            cache,
            namespace,
            version,
            ttl,
            fingerprint,
        }
    }

    /// The store key for the canonically encoded arguments (or custom key) and the encoded
    /// dependencies, in order.
    pub fn key(
        &self,
        args: std::result::Result<Vec<u8>, KeyError>,
        deps: impl IntoIterator<Item = std::result::Result<Vec<u8>, KeyError>>,
    ) -> Result<Vec<u8>> {
        let args = args?;
        let deps: Vec<Vec<u8>> = deps.into_iter().collect::<std::result::Result<_, _>>()?;
        Ok(key_from_parts(self.namespace, self.version, &args, &deps))
    }

    /// The store key [`Site::key`] makes of `args` (canonically encoded) and the encoded
    /// dependencies, the same bytes, built in place into `buf`: the arguments are encoded
    /// straight into the key's hash input and the key is held in `buf` (inline up to 128
    /// bytes), so a `#[memoize]` call allocates nothing for its key, as a
    /// [`Memo`](super::Memo) call does not.
    pub fn key_in_place<'k, T: serde::Serialize + ?Sized>(
        &self,
        args: &T,
        deps: impl IntoIterator<Item = std::result::Result<Vec<u8>, KeyError>>,
        buf: &'k mut crate::__private::KeyBuf,
    ) -> Result<&'k [u8]> {
        hashed_in_place(self.namespace, self.version, &mut buf.0, |input| {
            input.part_with(|out| canonical_bytes_into(args, out))?;
            for dep in deps {
                input.part(&dep?);
            }
            Ok(())
        })?;
        Ok(buf.0.as_slice())
    }

    /// A call that behaves like the function: a cache error never fails it (it is counted,
    /// and the first of each kind logged), the function's value is returned. The key is any
    /// buffer: [`Site::key`]'s `Vec`, or [`Site::key_in_place`]'s.
    pub fn call<P, R, A, K: AsRef<[u8]>>(
        &self,
        key: Result<K>,
        args: A,
        compute: &impl Fn(A) -> R,
    ) -> R
    where
        P: StorePolicy<R>,
    {
        self.call_keyed::<P, R, A, K>(key, args, compute)
    }

    /// [`Site::call`] with the key in any buffer (a [`Memo`](super::Memo)'s is inline).
    pub(super) fn call_keyed<P, R, A, K: AsRef<[u8]>>(
        &self,
        key: Result<K>,
        args: A,
        compute: &impl Fn(A) -> R,
    ) -> R
    where
        P: StorePolicy<R>,
    {
        match self.run::<P, R, A, K>(key, Call::default(), false, args, compute) {
            Outcome::Done(value, _) => value,
            Outcome::WriteFailed(value, e) => {
                self.swallowed(ErrorKind::Write, &e);
                value
            }
            Outcome::NotComputed(args, e) => {
                self.swallowed(ErrorKind::Key, &e);
                timed(&self.stats, || compute(args))
            }
        }
    }

    /// A call with per-call options that reports every cache error, a failed write of the
    /// computed value included. The key is any buffer, as for [`Site::call`].
    pub fn call_with<P, R, A, K: AsRef<[u8]>>(
        &self,
        key: Result<K>,
        opts: Call,
        args: A,
        compute: &impl Fn(A) -> R,
    ) -> Result<(R, Status)>
    where
        P: StorePolicy<R>,
    {
        self.call_with_keyed::<P, R, A, K>(key, opts, args, compute)
    }

    /// [`Site::call_with`] with the key in any buffer.
    pub(super) fn call_with_keyed<P, R, A, K: AsRef<[u8]>>(
        &self,
        key: Result<K>,
        opts: Call,
        args: A,
        compute: &impl Fn(A) -> R,
    ) -> Result<(R, Status)>
    where
        P: StorePolicy<R>,
    {
        match self.run::<P, R, A, K>(key, opts, true, args, compute) {
            Outcome::Done(value, status) => Ok((value, status)),
            Outcome::WriteFailed(_, e) | Outcome::NotComputed(_, e) => Err(e),
        }
    }

    /// Removes the cached result under `key`; returns whether there was one.
    pub fn invalidate(&self, key: Result<Vec<u8>>) -> Result<bool> {
        self.cache.remove(key?)
    }

    /// Removes every cached result of this function's namespace (all versions); returns how
    /// many there were.
    pub fn clear(&self) -> Result<u64> {
        self.cache.clear_namespace(self.namespace)
    }

    pub(super) fn swallowed(&self, kind: ErrorKind, e: &Error) {
        self.cache
            .inner
            .reported
            .swallowed(&self.stats, self.namespace, kind, e);
    }

    /// Looks `key` up, or computes `compute(args)`, stores what `P` keeps and returns it.
    /// With `strict == false` a failed read is counted and the function runs (and its value
    /// overwrites the unreadable one).
    fn run<P, R, A, K: AsRef<[u8]>>(
        &self,
        key: Result<K>,
        opts: Call,
        strict: bool,
        args: A,
        compute: &impl Fn(A) -> R,
    ) -> Outcome<R, A>
    where
        P: StorePolicy<R>,
    {
        let stats: &Atomics = &self.stats;
        let key = match key {
            Ok(k) => k,
            Err(e) => return Outcome::NotComputed(args, e),
        };
        let key = key.as_ref();
        debug_assert_eq!(namespace_of(key), Some(self.namespace));
        // Taken before the lookup, so a leader knows whether a flight ended after it.
        let ticket = self.cache.inner.flights.ticket();
        if opts.mode == Mode::Bypass {
            return Outcome::Done(timed(stats, || compute(args)), Status::Miss);
        }
        if opts.mode != Mode::Refresh {
            match self
                .cache
                .lookup::<P::Stored>(key, stats, Some(self.fingerprint))
            {
                Ok(Some(v)) => return Outcome::Done(P::restore(v), Status::Hit),
                Ok(None) => {}
                Err(e) if strict => return Outcome::NotComputed(args, e),
                Err(e) => self.swallowed(ErrorKind::Read, &e),
            }
            if opts.mode == Mode::CacheOnly {
                let key = cacher_store::KeyDisplay::new(key);
                return Outcome::NotComputed(args, Error::Miss { key });
            }
        }
        // One computation per key at a time (threads, then processes); a refresh computes
        // regardless, since it was asked to.
        let _holds = match opts.mode {
            Mode::Normal => {
                match turn::<P::Stored>(self.cache, key, ticket, Some(self.fingerprint), stats) {
                    Turn::Found(v) => return Outcome::Done(P::restore(v), Status::Hit),
                    Turn::Compute(holds) => Some(holds),
                }
            }
            _ => None,
        };
        let result = timed(stats, || compute(args));
        if let Some(stored) = P::stored(&result) {
            let expires = opts
                .ttl
                .or(self.ttl)
                .map(|t| self.cache.now_ms().saturating_add(duration_ms(t)));
            let fingerprint = Some(self.fingerprint);
            if let Err(e) = self
                .cache
                .store_value(key, stored, expires, fingerprint, stats)
            {
                return Outcome::WriteFailed(result, e);
            }
        }
        Outcome::Done(result, Status::Miss)
    }
}
