//! Support for the `#[memoize]` macro's generated code. Not a public API.

use std::sync::{Arc, LazyLock};

use crate::Cache;

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

pub use crate::key::canonical_bytes;

/// The buffer a `#[memoize]` call builds its key in ([`Site::key_in_place`]): on the caller's
/// stack, holding keys up to 128 bytes without allocating.
#[derive(Default)]
pub struct KeyBuf(pub(crate) crate::key::KeyBuf);
/// The one memoized-call path, for the macro's generated code.
pub use crate::memo::site::Site;
/// A `#[memoize]` call site's cell of namespace counters, for [`Site::at`].
pub use crate::stats::SiteStats;

/// Runs the function body handed to [`Site::call`] (a closure the compiler would otherwise ask
/// to be `mut` when the body mutates `self`).
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}

pub use cacher_formats::type_fingerprint;

/// The fingerprint of the return type `written`, computed once per function.
pub fn fingerprint(cell: &'static std::sync::OnceLock<u64>, written: &str) -> u64 {
    *cell.get_or_init(|| type_fingerprint(written))
}

/// `base::<P1, P2>`: the namespace of one instantiation of a generic function.
pub fn with_type_params(base: &str, params: &[String]) -> String {
    format!("{base}::<{}>", params.join(", "))
}
