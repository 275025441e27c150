//! Many inputs through the wrapper: [`Memo::call_many`] and its siblings compute the missing
//! ones with the wrapped function one by one (optionally on threads); [`BatchMemo`], made by
//! [`MemoBuilder::wrap_batch`], hands them all to one call of a batch function.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::{canonical_args, canonical_bytes, KeyError};
use crate::memo::args::MemoFn;
use crate::memo::wrapper::{Covariant, Identity};
use crate::memo::{Always, BatchError, Call, Memo, MemoBuilder, Status, StorePolicy};
use crate::{Error, Result};

impl From<BatchError<Infallible>> for Error {
    fn from(e: BatchError<Infallible>) -> Self {
        e.into_cache_error()
    }
}

impl<A, R, F, P> Memo<A, R, F, P>
where
    F: MemoFn<A, R>,
    P: StorePolicy<R>,
    R: Clone,
{
    /// Calls the function for many inputs: every key is looked up in one
    /// [`get_many`](crate::store::Store::get_many) (one read transaction on LMDB), the
    /// missing inputs are computed one by one in input order (an input repeated in the batch
    /// once), the new values written with one [`put_many`](crate::store::Store::put_many),
    /// and the results returned in input order. Reports cache errors like [`Memo::try_call`].
    ///
    /// ```
    /// use cacher::{store::MemoryStore, Cache};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let square = cache.wrap("square", |x: u64| x * x);
    /// square.call(3);
    /// assert_eq!(square.call_many([1, 2, 3, 2])?, vec![1, 4, 9, 4]); // 3 was a hit
    /// assert_eq!(cache.stats().total.stores, 3); // 3, then 1 and 2 in one write
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn call_many(&self, inputs: impl IntoIterator<Item = A>) -> Result<Vec<R>> {
        Ok(strip(self.call_many_with_status(inputs, Call::default())?))
    }

    /// [`Memo::call_many`] with per-call options, and where each result came from.
    pub fn call_many_with_status(
        &self,
        inputs: impl IntoIterator<Item = A>,
        opts: Call,
    ) -> Result<Vec<(R, Status)>> {
        let inputs: Vec<A> = inputs.into_iter().collect();
        let keys = inputs.iter().map(|a| self.key_for(a)).collect();
        let compute = |missing: Vec<A>| -> std::result::Result<Vec<R>, Infallible> {
            Ok(missing.into_iter().map(|a| self.f.call_fn(a)).collect())
        };
        Ok(self
            .id
            .site()
            .call_many_with::<P, R, A, Infallible>(keys, opts, inputs, compute)?)
    }

    /// [`Memo::call_many`] with the missing inputs computed on up to `threads` threads (each
    /// takes a contiguous run of them); the results are still in input order.
    ///
    /// ```
    /// use cacher::{store::MemoryStore, Cache};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let slow = cache.wrap("slow", |x: u64| x + 1);
    /// assert_eq!(slow.call_many_on_threads(0..100, 4)?, (1..101).collect::<Vec<u64>>());
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn call_many_on_threads(
        &self,
        inputs: impl IntoIterator<Item = A>,
        threads: usize,
    ) -> Result<Vec<R>>
    where
        F: Sync,
        A: Send,
        R: Send,
    {
        let inputs: Vec<A> = inputs.into_iter().collect();
        let keys = inputs.iter().map(|a| self.key_for(a)).collect();
        let compute = |missing: Vec<A>| -> std::result::Result<Vec<R>, Infallible> {
            Ok(on_threads(missing, threads.max(1), &|a| self.f.call_fn(a)))
        };
        let results = self.id.site().call_many_with::<P, R, A, Infallible>(
            keys,
            Call::default(),
            inputs,
            compute,
        )?;
        Ok(strip(results))
    }

    /// [`Memo::call_many`] over `(id, input)` pairs, returning `(id, result)` pairs collected
    /// into any map (`BTreeMap`, `HashMap`, a `Vec`).
    ///
    /// ```
    /// use std::collections::BTreeMap;
    /// use cacher::{store::MemoryStore, Cache};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let len = cache.wrap("len", |s: &str| s.len());
    /// let lens: BTreeMap<&str, usize> = len.call_map([("a", "x"), ("b", "yyy")])?;
    /// assert_eq!(lens, BTreeMap::from([("a", 1), ("b", 3)]));
    /// # Ok::<(), cacher::Error>(())
    /// ```
    pub fn call_map<K, M>(&self, pairs: impl IntoIterator<Item = (K, A)>) -> Result<M>
    where
        M: FromIterator<(K, R)>,
    {
        let (ids, inputs): (Vec<K>, Vec<A>) = pairs.into_iter().unzip();
        let results = self.call_many(inputs)?;
        Ok(ids.into_iter().zip(results).collect())
    }
}

/// `f` over `inputs` on up to `threads` scoped threads, in order.
fn on_threads<A: Send, R: Send>(
    inputs: Vec<A>,
    threads: usize,
    f: &(dyn Fn(A) -> R + Sync),
) -> Vec<R> {
    if threads <= 1 || inputs.len() <= 1 {
        return inputs.into_iter().map(f).collect();
    }
    let per = inputs.len().div_ceil(threads);
    let mut chunks: Vec<Vec<A>> = Vec::new();
    let mut rest = inputs.into_iter();
    loop {
        let chunk: Vec<A> = rest.by_ref().take(per).collect();
        if chunk.is_empty() {
            break;
        }
        chunks.push(chunk);
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| s.spawn(move || chunk.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(part) => part,
                // The function panicked on a thread: panic here as it would have without threads.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

fn strip<R>(results: Vec<(R, Status)>) -> Vec<R> {
    results.into_iter().map(|(r, _)| r).collect()
}

type KeyFn<A> = Arc<dyn Fn(&A) -> std::result::Result<Vec<u8>, KeyError> + Send + Sync>;

/// A memoized batch function: [`BatchMemo::call_many`] looks every input up at once and
/// calls the function **once** with only the missing inputs, in input order. Made by
/// [`MemoBuilder::wrap_batch`] and [`MemoBuilder::wrap_batch_result`].
///
/// Each input is keyed as the one argument of a function of one argument is, so a batch
/// function and a single-input function under the same namespace share results.
pub struct BatchMemo<A, R, E, F> {
    id: Identity,
    key_fn: Option<KeyFn<A>>,
    f: F,
    _marker: Covariant<(A, R, E)>,
}

impl MemoBuilder {
    /// Wraps a batch function: given inputs it returns one result per input, in order (an
    /// embedding API, a bulk lookup). Every result is stored.
    ///
    /// ```
    /// use cacher::{store::MemoryStore, Cache};
    /// let cache = Cache::builder().store(MemoryStore::new()).build()?;
    /// let embed = cache
    ///     .memoize("embed")
    ///     .wrap_batch(|texts: Vec<String>| texts.iter().map(|t| t.len()).collect::<Vec<_>>())?;
    /// assert_eq!(embed.call_many(["a".to_string(), "bb".to_string()])?, vec![1, 2]);
    /// // "a" is a hit: the function is called once, with ["ccc"] only.
    /// assert_eq!(embed.call_many(["a".to_string(), "ccc".to_string()])?, vec![1, 3]);
    /// # Ok::<(), cacher::Error>(())
    /// ```
    #[allow(
        clippy::type_complexity,
        reason = "the wrapped function's type, spelled out"
    )]
    pub fn wrap_batch<A, R, F>(
        self,
        f: F,
    ) -> Result<
        BatchMemo<A, R, Infallible, impl Fn(Vec<A>) -> std::result::Result<Vec<R>, Infallible>>,
    >
    where
        A: Serialize,
        R: Serialize + DeserializeOwned + Clone,
        F: Fn(Vec<A>) -> Vec<R>,
    {
        self.wrap_batch_result(move |inputs| Ok(f(inputs)))
    }

    /// Wraps a batch function that may fail as a whole: an `Err` stores nothing and is
    /// returned as [`BatchError::Compute`].
    pub fn wrap_batch_result<A, R, E, F>(self, f: F) -> Result<BatchMemo<A, R, E, F>>
    where
        A: Serialize,
        R: Serialize + DeserializeOwned + Clone,
        F: Fn(Vec<A>) -> std::result::Result<Vec<R>, E>,
    {
        let skip = self.skipped()?;
        Ok(BatchMemo {
            id: self.identity::<R, Always>(skip),
            key_fn: None,
            f,
            _marker: PhantomData,
        })
    }
}

impl<A, R, E, F> BatchMemo<A, R, E, F>
where
    A: Serialize,
    R: Serialize + DeserializeOwned + Clone,
    F: Fn(Vec<A>) -> std::result::Result<Vec<R>, E>,
{
    /// Replaces the default key of an input with `key(input)`, as [`Memo::key`] does.
    pub fn key<K, KF>(mut self, key: KF) -> Self
    where
        K: Serialize,
        KF: Fn(&A) -> K + Send + Sync + 'static,
    {
        self.key_fn = Some(Arc::new(move |a| canonical_bytes(&key(a))));
        self
    }

    /// The store key for one input.
    pub fn key_for(&self, input: &A) -> Result<Vec<u8>> {
        let encoded = match &self.key_fn {
            Some(kf) => kf(input),
            None => canonical_args(input, &self.id.skip),
        };
        self.id.key(encoded)
    }

    /// The results for `inputs`, in order: one lookup of all their keys, **one** call of the
    /// batch function with the inputs that missed (in input order, an input repeated in the
    /// batch once; no call when all hit), a check that it returned one result per input
    /// ([`Error::BatchLength`] otherwise, nothing stored), one write of the new values.
    pub fn call_many(
        &self,
        inputs: impl IntoIterator<Item = A>,
    ) -> std::result::Result<Vec<R>, BatchError<E>> {
        Ok(strip(self.call_many_with_status(inputs, Call::default())?))
    }

    /// [`BatchMemo::call_many`] with per-call options (bypass, refresh, cache-only, TTL), and
    /// where each result came from.
    pub fn call_many_with_status(
        &self,
        inputs: impl IntoIterator<Item = A>,
        opts: Call,
    ) -> std::result::Result<Vec<(R, Status)>, BatchError<E>> {
        let inputs: Vec<A> = inputs.into_iter().collect();
        let keys = inputs.iter().map(|a| self.key_for(a)).collect();
        self.id
            .site()
            .call_many_with::<Always, R, A, E>(keys, opts, inputs, &self.f)
    }

    /// [`BatchMemo::call_many`] over `(id, input)` pairs, returning `(id, result)` pairs
    /// collected into any map.
    pub fn call_map<K, M>(
        &self,
        pairs: impl IntoIterator<Item = (K, A)>,
    ) -> std::result::Result<M, BatchError<E>>
    where
        M: FromIterator<(K, R)>,
    {
        let (ids, inputs): (Vec<K>, Vec<A>) = pairs.into_iter().unzip();
        let results = self.call_many(inputs)?;
        Ok(ids.into_iter().zip(results).collect())
    }

    /// One input: a batch of one.
    pub fn call(&self, input: A) -> std::result::Result<R, BatchError<E>> {
        let mut out = self.call_many([input])?;
        match out.pop() {
            Some(r) => Ok(r),
            None => unreachable!("call_many checked the batch returned one result"),
        }
    }

    /// Removes the cached result for `input`; returns whether there was one.
    pub fn invalidate(&self, input: &A) -> Result<bool> {
        self.id.site().invalidate(self.key_for(input))
    }

    /// Removes every cached result of this function (its namespace, all versions).
    pub fn clear(&self) -> Result<u64> {
        self.id.site().clear()
    }
}
