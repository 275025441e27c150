//! The one path of a memoized call, shared by [`Memo`](super::Memo) and `#[memoize]`: a
//! [`Site`] makes the key and runs lookup → compute → store.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::duration_ms;
use crate::key::{key_from_parts, KeyError};
use crate::memo::{Call, Mode, StorePolicy};
use crate::stats::{timed, Atomics, RELAXED};
use crate::{Cache, Error};

/// One memoized function as the cache sees it: where its results live (namespace and
/// version) and how long they last. Borrowed for the length of one call.
pub struct Site<'a> {
    cache: &'a Cache,
    namespace: &'a str,
    version: u32,
    ttl: Option<Duration>,
    stats: Arc<Atomics>,
}

impl<'a> Site<'a> {
    /// The site of function `namespace` at `version` in `cache`; `ttl` overrides the cache's
    /// TTL for the values it stores.
    pub fn new(cache: &'a Cache, namespace: &'a str, version: u32, ttl: Option<Duration>) -> Self {
        Site {
            stats: cache.inner.stats.namespace(namespace),
            cache,
            namespace,
            version,
            ttl,
        }
    }

    /// Like [`Site::new`] with the namespace's counters already looked up.
    pub(crate) fn with_stats(
        cache: &'a Cache,
        namespace: &'a str,
        version: u32,
        ttl: Option<Duration>,
        stats: Arc<Atomics>,
    ) -> Self {
        Site {
            cache,
            namespace,
            version,
            ttl,
            stats,
        }
    }

    /// The store key for the canonically encoded arguments (or custom key) and the encoded
    /// dependencies, in order.
    pub fn key(
        &self,
        args: Result<Vec<u8>, KeyError>,
        deps: impl IntoIterator<Item = Result<Vec<u8>, KeyError>>,
    ) -> Result<Vec<u8>, KeyError> {
        let args = args?;
        let deps: Vec<Vec<u8>> = deps.into_iter().collect::<Result<_, _>>()?;
        Ok(key_from_parts(self.namespace, self.version, &args, &deps))
    }

    /// Looks `key` up, or computes `compute(args)`, stores what `P` keeps and returns it.
    ///
    /// With `strict == false` a cache error never fails the call: it is counted and the
    /// function runs. On an error before `compute` ran, `args` are handed back so the caller
    /// can still run it.
    pub fn run<P, R, A>(
        &self,
        key: Result<Vec<u8>, Error>,
        opts: Call,
        strict: bool,
        args: A,
        compute: impl FnOnce(A) -> R,
    ) -> Result<R, (A, Error)>
    where
        P: StorePolicy<R>,
    {
        let stats = &*self.stats;
        let key = match key {
            Ok(k) => k,
            Err(e) => {
                stats.errors.fetch_add(1, RELAXED);
                return Err((args, e));
            }
        };
        if opts.mode == Mode::Bypass {
            return Ok(timed(stats, || compute(args)));
        }
        if opts.mode != Mode::Refresh {
            match self.cache.lookup::<P::Stored>(&key, stats) {
                Ok(Some(v)) => return Ok(P::restore(v)),
                Ok(None) => {}
                Err(e) if strict => return Err((args, e)),
                Err(_) => {
                    stats.errors.fetch_add(1, RELAXED);
                }
            }
            if opts.mode == Mode::CacheOnly {
                return Err((
                    args,
                    Error::Miss {
                        key: cacher_store::KeyDisplay::new(&key),
                    },
                ));
            }
        }
        let result = timed(stats, || compute(args));
        if let Some(stored) = P::stored(&result) {
            let expires = opts
                .ttl
                .or(self.ttl)
                .map(|t| self.cache.now_ms().saturating_add(duration_ms(t)));
            if self
                .cache
                .store_value(&key, stored, expires, stats)
                .is_err()
            {
                // The value is computed: returning it beats failing the call; the error is
                // counted so a broken cache is visible in the stats.
                stats.errors.fetch_add(1, RELAXED);
            }
        }
        Ok(result)
    }
}
