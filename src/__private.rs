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
/// The one memoized-call path, for the macro's generated code.
pub use crate::memo::site::Site;

/// Runs the function body handed to [`Site::run`] (a closure the compiler would otherwise ask
/// to be `mut` when the body mutates `self`).
pub fn call_once<R>(f: impl FnOnce() -> R) -> R {
    f()
}
