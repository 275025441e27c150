//! Which results of a memoized function are stored: [`StorePolicy`], [`Always`], [`OkOnly`].

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Decides which results of a function are stored, and how they come back.
pub trait StorePolicy<R>: Send + Sync + 'static {
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

impl<R: Serialize + DeserializeOwned> StorePolicy<R> for Always {
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

impl<T: Serialize + DeserializeOwned, E: 'static> StorePolicy<std::result::Result<T, E>>
    for OkOnly
{
    type Stored = T;
    fn stored(result: &std::result::Result<T, E>) -> Option<&T> {
        result.as_ref().ok()
    }
    fn restore(stored: T) -> std::result::Result<T, E> {
        Ok(stored)
    }
}
