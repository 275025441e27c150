//! [`MemoBuilder`]: a memoized function's identity (namespace, version, ignored arguments,
//! dependencies, TTL), made by [`Cache::memoize`] and turned into a [`Memo`] by `wrap`.

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::{canonical_bytes, KeyError, KeyPrefix};
use cacher_formats::type_fingerprint;

use crate::memo::args::IntoMemoFn;
use crate::memo::wrapper::Identity;
use crate::memo::{Always, Memo, OkOnly, StorePolicy};
use crate::{Cache, Error, Result};

pub(super) type DepFn = Arc<dyn Fn() -> std::result::Result<Vec<u8>, KeyError> + Send + Sync>;

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
    /// key): `cache.memoize(namespace).wrap(f)` without the `Result`, since with nothing
    /// ignored there is nothing to misconfigure.
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let add = cache.wrap("add", |(a, b): (i64, i64)| a + b).into_fn();
    /// assert_eq!(add((2, 3)), 5);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    ///
    /// A function of several arguments needs no tuple, and borrowed arguments are not cloned
    /// on a hit; it is called with the tuple of its arguments:
    ///
    /// ```
    /// use cacher::{Cache, store::MemoryStore};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let greet = cache.wrap("greet", |name: &str, times: usize| name.repeat(times));
    /// assert_eq!(greet.call(("ab", 2)), "abab");
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn wrap<M, R, F>(
        &self,
        namespace: impl Into<String>,
        f: F,
    ) -> Memo<F::Args, R, F::Fn, Always>
    where
        R: Serialize + DeserializeOwned,
        F: IntoMemoFn<M, R>,
    {
        self.memoize(namespace).memo(Vec::new(), f.into_memo_fn())
    }

    /// Starts memoizing a function under `namespace`: its results are stored under keys
    /// `namespace@version:hash(arguments)`.
    ///
    /// **The name is the function's identity.** Two wrappers given the same name share
    /// results on purpose, so give each function its own (e.g. `module_path!()` joined with
    /// the function's name, which is what `#[memoize]` does). Each value also records a
    /// fingerprint of its Rust type (from [`std::any::type_name`]): a wrapper of another
    /// type under the same name finds a mismatch, recomputes and overwrites — counted in the
    /// stats' `mismatches` — and never returns the other's value. `type_name` is not promised
    /// to stay the same across Rust releases; if it changes, each value costs one
    /// recomputation, never a wrong value.
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
    ///     })?;
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
    /// The name must be one given to [`MemoBuilder::args`]: `wrap` refuses an unknown name
    /// with [`Error::Config`] rather than silently keying on it.
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

    /// Wraps `f`, a function of one to six arguments, whose every result is stored (`None`
    /// and `()` too). A function of several arguments is called with their tuple; an argument
    /// wrapped in [`Ignored`](super::Ignored) is left out of the key and need not be
    /// `Serialize`.
    ///
    /// Like [`CacheBuilder::build`](crate::CacheBuilder::build), this last step checks the
    /// settings: an ignored name that is not among the [`args`](MemoBuilder::args) is an
    /// [`Error::Config`] here, not a silent recomputation on every call.
    pub fn wrap<M, R, F>(self, f: F) -> Result<Memo<F::Args, R, F::Fn, Always>>
    where
        R: Serialize + DeserializeOwned,
        F: IntoMemoFn<M, R>,
    {
        self.build(f.into_memo_fn())
    }

    /// Wraps a `Result`-returning `f`: `Ok` values are stored, errors are returned and never
    /// stored. Checks the settings as [`MemoBuilder::wrap`] does.
    #[allow(
        clippy::type_complexity,
        reason = "the wrapped function's type, spelled out"
    )]
    pub fn wrap_result<M, T, E, F>(
        self,
        f: F,
    ) -> Result<Memo<F::Args, std::result::Result<T, E>, F::Fn, OkOnly>>
    where
        T: Serialize + DeserializeOwned,
        E: 'static,
        F: IntoMemoFn<M, std::result::Result<T, E>>,
    {
        self.build(f.into_memo_fn())
    }

    fn build<A, R, F, P: StorePolicy<R>>(self, f: F) -> Result<Memo<A, R, F, P>> {
        let skip = self.skipped()?;
        Ok(self.memo(skip, f))
    }

    /// The positions left out of the key, or a configuration error.
    pub(super) fn skipped(&self) -> Result<Vec<usize>> {
        let mut skip = self.ignored_positions.clone();
        for name in &self.ignored {
            match self.arg_names.iter().position(|n| n == name) {
                Some(i) => skip.push(i),
                None if self.arg_names.is_empty() => {
                    return Err(Error::Config(format!(
                        "memoized function {:?} ignores argument {name:?}, but its arguments \
                         have no names: name them with .args([..]) first",
                        self.namespace
                    )))
                }
                None => {
                    return Err(Error::Config(format!(
                        "memoized function {:?} ignores argument {name:?}, which is not one of \
                         its arguments {:?}",
                        self.namespace, self.arg_names
                    )))
                }
            }
        }
        Ok(skip)
    }

    /// The memoized function with these settings and `skip`ped positions.
    fn memo<A, R, F, P: StorePolicy<R>>(self, skip: Vec<usize>, f: F) -> Memo<A, R, F, P> {
        Memo {
            id: self.identity::<R, P>(skip),
            f,
            _marker: std::marker::PhantomData,
        }
    }

    /// Where the results of a function stored by policy `P` live.
    pub(super) fn identity<R, P: StorePolicy<R>>(self, skip: Vec<usize>) -> Identity {
        let stats = self.cache.inner.stats.namespace(&self.namespace);
        let prefix = KeyPrefix::new(&self.namespace, self.version);
        Identity {
            prefix,
            cache: self.cache,
            namespace: self.namespace,
            version: self.version,
            skip,
            deps: self.deps,
            fingerprint: type_fingerprint(std::any::type_name::<P::Stored>()),
            ttl: self.ttl,
            stats,
        }
    }
}
