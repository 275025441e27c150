//! Support for the `#[memoize]` macro's generated code. Not a public API.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde::Serialize;

use crate::key::{canonical_bytes, key_from_parts, KeyError};
use crate::memo::{Call, Policy};
use crate::{Cache, Error};

/// Anything the `cache = ..` option may name.
pub trait CacheRef {
    /// The cache.
    fn cache_ref(&self) -> &Cache;
}

impl CacheRef for Cache {
    fn cache_ref(&self) -> &Cache {
        self
    }
}
impl<T: CacheRef + ?Sized> CacheRef for &T {
    fn cache_ref(&self) -> &Cache {
        (**self).cache_ref()
    }
}
impl CacheRef for Arc<Cache> {
    fn cache_ref(&self) -> &Cache {
        self
    }
}
impl CacheRef for LazyLock<Cache> {
    fn cache_ref(&self) -> &Cache {
        self
    }
}

/// The key of a macro-memoized call: the same algorithm as [`crate::Memo`] (the encoded
/// arguments, then each encoded dependency, as parts).
pub fn key<A: Serialize + ?Sized>(
    namespace: &str,
    version: u32,
    args: &A,
    deps: impl IntoIterator<Item = Result<Vec<u8>, KeyError>>,
) -> Result<Vec<u8>, KeyError> {
    let args = canonical_bytes(args)?;
    let deps: Vec<Vec<u8>> = deps.into_iter().collect::<Result<_, _>>()?;
    Ok(key_from_parts(namespace, version, &args, &deps))
}

/// Runs one macro-memoized call. On an error before `f` ran, `f` is handed back.
pub fn call<P: Policy<R>, R, F: FnOnce() -> R>(
    cache: &Cache,
    namespace: &str,
    key: Result<Vec<u8>, KeyError>,
    ttl: Option<Duration>,
    opts: Call,
    strict: bool,
    f: F,
) -> Result<R, (F, Error)> {
    let stats = cache.namespace_stats(namespace);
    let key = match key {
        Ok(k) => k,
        Err(e) => {
            stats
                .errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err((f, e.into()));
        }
    };
    cache.memo_call::<R, P, F>(&key, &stats, opts, ttl, strict, f, |f| f())
}
