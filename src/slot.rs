//! [`Slot`]: one named value that is valid only for the parameters it was computed with.

use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::canonical_bytes;
use crate::stats::{timed, Atomics, RELAXED};
use crate::{Cache, Result};

/// A named slot holding one value together with a hash of the parameters it was computed
/// with. Asking with other parameters recomputes the value and replaces it, so the slot never
/// grows: e.g. an embeddings matrix valid for `(normed, scale_mean, scale_std)`.
///
/// ```
/// use cacher::{Cache, store::MemoryStore};
///
/// let cache = Cache::builder().store(MemoryStore::new()).build()?;
/// let embeddings = cache.slot::<Vec<f32>>("embeddings");
/// let mut computed = 0;
/// let a = embeddings.get_or_compute(&(true, 0.5), || { computed += 1; vec![1.0, 2.0] })?;
/// let b = embeddings.get_or_compute(&(true, 0.5), || { computed += 1; vec![9.0] })?;
/// assert_eq!((a, b.clone(), computed), (vec![1.0, 2.0], vec![1.0, 2.0], 1));
/// let c = embeddings.get_or_compute(&(false, 0.5), || { computed += 1; vec![3.0] })?;
/// assert_eq!((c, computed), (vec![3.0], 2));
/// # Ok::<(), cacher::Error>(())
/// ```
pub struct Slot<T> {
    cache: Cache,
    key: Vec<u8>,
    /// The fingerprint of `T` (by `std::any::type_name`): a slot of another type under the
    /// same name recomputes rather than reading the other's value.
    fingerprint: u64,
    stats: Arc<Atomics>,
    _marker: PhantomData<fn() -> T>,
}

impl Cache {
    /// The slot named `name` (stored under the key `name@slot`).
    pub fn slot<T>(&self, name: &str) -> Slot<T> {
        Slot {
            cache: self.clone(),
            key: format!("{name}@slot").into_bytes(),
            stats: self.inner.stats.namespace(name),
            fingerprint: cacher_formats::type_fingerprint(std::any::type_name::<T>()),
            _marker: PhantomData,
        }
    }
}

fn params_hash<P: Serialize + ?Sized>(params: &P) -> Result<String> {
    let bytes = canonical_bytes(params)?;
    Ok(blake3::hash(&bytes).to_hex().to_string())
}

impl<T: Serialize + DeserializeOwned> Slot<T> {
    /// The value, if the slot holds one computed with `params` (and not expired).
    pub fn get<P: Serialize + ?Sized>(&self, params: &P) -> Result<Option<T>> {
        self.held(&params_hash(params)?)
    }

    /// The value for `params`: the held one if it was computed with them, else `compute()`'s,
    /// which then replaces it.
    pub fn get_or_compute<P, F>(&self, params: &P, compute: F) -> Result<T>
    where
        P: Serialize + ?Sized,
        F: FnOnce() -> T,
    {
        let want = params_hash(params)?;
        if let Some(v) = self.held(&want)? {
            return Ok(v);
        }
        let value = timed(&self.stats, compute);
        self.cache.store_value(
            &self.key,
            &(&want, &value),
            None,
            Some(self.fingerprint),
            &self.stats,
        )?;
        Ok(value)
    }

    /// The held value if it was computed for the parameters hashing to `want`. A value for
    /// other parameters, one stored as another type, or one that no longer decodes as `T`
    /// (the type changed) is a miss: the slot is recomputed rather than failing.
    fn held(&self, want: &str) -> Result<Option<T>> {
        match self
            .cache
            .lookup::<(String, T)>(&self.key, &self.stats, Some(self.fingerprint))
        {
            Ok(Some((have, v))) if have == want => Ok(Some(v)),
            Ok(Some(_)) => {
                // The lookup counted a hit; for these parameters it is a miss.
                self.stats.hits.fetch_sub(1, RELAXED);
                self.stats.misses.fetch_add(1, RELAXED);
                Ok(None)
            }
            Ok(None) => Ok(None),
            Err(crate::Error::Format { .. }) => {
                self.stats.misses.fetch_add(1, RELAXED);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Empties the slot; returns whether it held a value.
    pub fn clear(&self) -> Result<bool> {
        self.cache.remove(&self.key)
    }
}
