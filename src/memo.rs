//! Memoization: [`Memo`], the wrapper that turns a function into a cached one, and the
//! per-call controls ([`Call`]).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{timed, RELAXED};
use crate::key::{canonical_args, canonical_bytes, key_from_parts, KeyError};
use crate::stats::Atomics;
use crate::{Cache, Error, Result};

/// How one call uses the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Mode {
    /// Return a fresh cached value, or compute, store and return.
    #[default]
    Normal,
    /// Compute; neither read nor write the cache.
    Bypass,
    /// Compute and overwrite the cached value.
    Refresh,
    /// Return the cached value or an [`Error::Miss`]; never compute.
    CacheOnly,
}

/// Per-call options: a [`Mode`] and an optional TTL for the value this call stores.
///
/// ```
/// use cacher::Call;
/// use std::time::Duration;
/// let opts = Call::refresh().ttl(Duration::from_secs(60));
/// # let _ = opts;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Call {
    mode: Mode,
    ttl: Option<Duration>,
}

impl Call {
    /// Normal lookup-or-compute.
    pub fn normal() -> Self {
        Call::default()
    }
    /// Compute without reading or writing the cache.
    pub fn bypass() -> Self {
        Call {
            mode: Mode::Bypass,
            ..Call::default()
        }
    }
    /// Compute and overwrite.
    pub fn refresh() -> Self {
        Call {
            mode: Mode::Refresh,
            ..Call::default()
        }
    }
    /// Only read the cache; a miss is [`Error::Miss`].
    pub fn cache_only() -> Self {
        Call {
            mode: Mode::CacheOnly,
            ..Call::default()
        }
    }
    /// The value stored by this call expires `ttl` after it is written.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
    /// The call's mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

/// Decides which results of a function are stored, and how they come back.
pub trait Policy<R>: Send + Sync + 'static {
    /// What is stored.
    type Stored: Serialize + DeserializeOwned;
    /// The part of `result` to store, or `None` to store nothing (e.g. an `Err`).
    fn stored(result: &R) -> Option<&Self::Stored>;
    /// The result rebuilt from a stored value.
    fn restore(stored: Self::Stored) -> R;
}

/// Every result is stored, `None` and `()` included (a stored `None` is a hit, not a miss).
#[derive(Debug)]
pub struct Always;

impl<R: Serialize + DeserializeOwned> Policy<R> for Always {
    type Stored = R;
    fn stored(result: &R) -> Option<&R> {
        Some(result)
    }
    fn restore(stored: R) -> R {
        stored
    }
}

/// For `Result`-returning functions: `Ok` values are stored, errors never are.
#[derive(Debug)]
pub struct OkOnly;

impl<T: Serialize + DeserializeOwned, E: 'static> Policy<std::result::Result<T, E>> for OkOnly {
    type Stored = T;
    fn stored(result: &std::result::Result<T, E>) -> Option<&T> {
        result.as_ref().ok()
    }
    fn restore(stored: T) -> std::result::Result<T, E> {
        Ok(stored)
    }
}

type DepFn = Arc<dyn Fn() -> std::result::Result<Vec<u8>, KeyError> + Send + Sync>;
type KeyFn<A> = Arc<dyn Fn(&A) -> std::result::Result<Vec<u8>, KeyError> + Send + Sync>;

/// The identity of a memoized function: namespace, version, ignored arguments, dependencies.
/// Made by [`Cache::memoize`]; turned into a callable by [`MemoBuilder::wrap`].
#[must_use]
pub struct MemoBuilder {
    cache: Cache,
    namespace: String,
    version: u32,
    arg_names: Vec<String>,
    ignored: Vec<String>,
    ignored_positions: Vec<usize>,
    deps: Vec<DepFn>,
    ttl: Option<Duration>,
}

impl Cache {
    /// Memoizes `f` under `namespace` with the defaults (version 1, every argument in the
    /// key): shorthand for `cache.memoize(namespace).wrap(f)`.
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let add = cache.wrap("add", |(a, b): (i64, i64)| a + b).into_fn();
    /// assert_eq!(add((2, 3)), 5);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn wrap<A, R, F>(&self, namespace: impl Into<String>, f: F) -> Memo<A, R, F, Always>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned,
        F: Fn(A) -> R,
    {
        self.memoize(namespace).wrap(f)
    }

    /// Starts memoizing a function under `namespace` (usually the function's name): its results
    /// are stored under keys `namespace@version:hash(arguments)`.
    ///
    /// The seed use case — a slow API call made once for identical arguments:
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// use std::collections::BTreeMap;
    /// use std::sync::atomic::{AtomicU32, Ordering};
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    /// fn fetch_from_api(endpoint: &str, params: &BTreeMap<String, String>) -> String {
    ///     CALLS.fetch_add(1, Ordering::SeqCst); // pretend this takes seconds
    ///     format!("{endpoint}?{params:?}")
    /// }
    ///
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let fetch = cache
    ///     .memoize("fetch_from_api")
    ///     .args(["endpoint", "params"])
    ///     .wrap(|(endpoint, params): (String, BTreeMap<String, String>)| {
    ///         fetch_from_api(&endpoint, &params)
    ///     });
    ///
    /// let params = BTreeMap::from([("q".to_string(), "rust".to_string())]);
    /// let a = fetch.call(("users".into(), params.clone()));
    /// let b = fetch.call(("users".into(), params.clone()));
    /// assert_eq!(a, b);
    /// assert_eq!(CALLS.load(Ordering::SeqCst), 1); // the second call was a hit
    ///
    /// let other = BTreeMap::from([("q".to_string(), "python".to_string())]);
    /// fetch.call(("users".into(), other));
    /// assert_eq!(CALLS.load(Ordering::SeqCst), 2); // different params: computed again
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn memoize(&self, namespace: impl Into<String>) -> MemoBuilder {
        MemoBuilder {
            cache: self.clone(),
            namespace: namespace.into(),
            version: 1,
            arg_names: Vec::new(),
            ignored: Vec::new(),
            ignored_positions: Vec::new(),
            deps: Vec::new(),
            ttl: None,
        }
    }
}

impl MemoBuilder {
    /// The function's version (default 1). Raising it invalidates every old result.
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Names the positions of the argument tuple, so arguments can be ignored by name.
    /// (In this style ignored arguments must still be `Serialize`; the `#[memoize]`
    /// attribute has no such limit.)
    pub fn args<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.arg_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Leaves the named argument out of the key (a client handle, a logger, a progress bar).
    /// The name must be one given to [`MemoBuilder::args`]; an unknown name makes every call
    /// fail with [`Error::Config`] rather than silently keying on it.
    pub fn ignore(mut self, name: impl Into<String>) -> Self {
        self.ignored.push(name.into());
        self
    }

    /// Leaves the argument at `position` (0-based) out of the key.
    pub fn ignore_position(mut self, position: usize) -> Self {
        self.ignored_positions.push(position);
        self
    }

    /// Adds an external dependency to the key: `dep` is called at every call (a data version,
    /// a config hash, a file's modification time) and its value joins the key, so a change
    /// invalidates the results computed under the old value.
    pub fn depends_on<D, F>(mut self, dep: F) -> Self
    where
        D: Serialize,
        F: Fn() -> D + Send + Sync + 'static,
    {
        self.deps.push(Arc::new(move || canonical_bytes(&dep())));
        self
    }

    /// Results of this function expire `ttl` after they are written (overrides the cache TTL).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Wraps `f`, whose every result is stored (`None` and `()` too).
    pub fn wrap<A, R, F>(self, f: F) -> Memo<A, R, F, Always>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned,
        F: Fn(A) -> R,
    {
        self.build(f)
    }

    /// Wraps a `Result`-returning `f`: `Ok` values are stored, errors are returned and never
    /// stored.
    pub fn wrap_result<A, T, E, F>(self, f: F) -> Memo<A, std::result::Result<T, E>, F, OkOnly>
    where
        A: Serialize,
        T: Serialize + DeserializeOwned,
        E: 'static,
        F: Fn(A) -> std::result::Result<T, E>,
    {
        self.build(f)
    }

    fn build<A, R, F, P>(self, f: F) -> Memo<A, R, F, P> {
        let mut skip = self.ignored_positions.clone();
        let mut config_error = None;
        for name in &self.ignored {
            match self.arg_names.iter().position(|n| n == name) {
                Some(i) => skip.push(i),
                None => {
                    config_error = Some(format!(
                        "memoized function {:?} ignores argument {name:?}, but its arguments are named {:?}",
                        self.namespace, self.arg_names
                    ))
                }
            }
        }
        let stats = self.cache.inner.stats.namespace(&self.namespace);
        Memo {
            spec: KeySpec {
                namespace: self.namespace,
                version: self.version,
                skip,
                deps: self.deps,
            },
            config_error,
            ttl: self.ttl,
            key_fn: None,
            cache: self.cache,
            stats,
            f,
            _marker: PhantomData,
        }
    }
}

/// How a memoized call's key is made (shared by [`Memo`] and the `#[memoize]` macro).
#[doc(hidden)]
pub struct KeySpec {
    pub namespace: String,
    pub version: u32,
    pub skip: Vec<usize>,
    deps: Vec<DepFn>,
}

impl KeySpec {
    /// A spec with no ignored positions or dependencies.
    pub fn new(namespace: impl Into<String>, version: u32) -> Self {
        KeySpec {
            namespace: namespace.into(),
            version,
            skip: Vec::new(),
            deps: Vec::new(),
        }
    }

    /// The store key for already-encoded arguments.
    pub fn key_for_encoded(&self, args: &[u8]) -> std::result::Result<Vec<u8>, KeyError> {
        let deps: Vec<Vec<u8>> = self.deps.iter().map(|d| d()).collect::<Result<_, _>>()?;
        Ok(key_from_parts(&self.namespace, self.version, args, &deps))
    }
}

/// A memoized function: call it like the original, and its results come from the cache when
/// they can. Made by [`MemoBuilder::wrap`] or [`MemoBuilder::wrap_result`].
pub struct Memo<A, R, F, P> {
    cache: Cache,
    spec: KeySpec,
    config_error: Option<String>,
    ttl: Option<Duration>,
    key_fn: Option<KeyFn<A>>,
    stats: Arc<Atomics>,
    f: F,
    _marker: PhantomData<fn(A) -> (R, P)>,
}

impl<A, R, F, P> Memo<A, R, F, P>
where
    A: Serialize,
    F: Fn(A) -> R,
    P: Policy<R>,
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
        let encoded = match &self.key_fn {
            Some(kf) => kf(args)?,
            None => canonical_args(args, &self.spec.skip)?,
        };
        Ok(self.spec.key_for_encoded(&encoded)?)
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
        let key = match self.key_for(&args) {
            Ok(k) => k,
            Err(e) => {
                self.stats.errors.fetch_add(1, RELAXED);
                return Err((args, e));
            }
        };
        let f = &self.f;
        self.cache
            .memo_call::<R, P, A>(&key, &self.stats, opts, self.ttl, strict, args, f)
    }
}

impl Cache {
    /// The lookup-compute-store step of a memoized call, for [`Memo`] and the `#[memoize]`
    /// macro. With `strict == false`, cache errors are counted and the function runs anyway.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    pub fn memo_call<R, P: Policy<R>, A>(
        &self,
        key: &[u8],
        stats: &Atomics,
        opts: Call,
        ttl: Option<Duration>,
        strict: bool,
        args: A,
        compute: impl FnOnce(A) -> R,
    ) -> std::result::Result<R, (A, Error)> {
        if opts.mode == Mode::Bypass {
            return Ok(timed(stats, || compute(args)));
        }
        if opts.mode != Mode::Refresh {
            match self.lookup::<P::Stored>(key, stats) {
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
                        key: cacher_store::KeyDisplay::new(key),
                    },
                ));
            }
        }
        let result = timed(stats, || compute(args));
        if let Some(stored) = P::stored(&result) {
            let expires = opts
                .ttl
                .or(ttl)
                .map(|t| self.now_ms().saturating_add(crate::clock::duration_ms(t)));
            if self.store_value(key, stored, expires, stats).is_err() {
                // The value is computed: returning it beats failing the call; the error is
                // counted so a broken cache is visible in the stats.
                stats.errors.fetch_add(1, RELAXED);
            }
        }
        Ok(result)
    }

    /// The stats counters of a namespace, for the `#[memoize]` macro.
    #[doc(hidden)]
    pub fn namespace_stats(&self, namespace: &str) -> Arc<Atomics> {
        self.inner.stats.namespace(namespace)
    }
}
