//! Trained zstd dictionaries: many small similar values (API responses, records) compress far
//! better with a dictionary trained on samples of them.
//!
//! A value compressed with dictionary `id` records it in its pipeline name
//! (`cbor+zstd:3:dict=<id>`), which the envelope stores; to read it back, the registry must be
//! given the same dictionary bytes ([`Registry::add_dictionary`](crate::Registry::add_dictionary)).
//! Keep the dictionary next to the cache (the cache front-end stores it under a reserved key).

use std::fmt;
use std::sync::Arc;

#[cfg(feature = "zstd")]
use crate::error::{Error, Result};

/// A zstd dictionary and the id values written with it refer to.
///
/// ```
/// # #[cfg(all(feature = "json", feature = "zstd"))]
/// # fn main() -> Result<(), cacher_formats::Error> {
/// use cacher_formats::{train_dictionary, Registry};
///
/// let samples: Vec<Vec<u8>> = (0..500)
///     .map(|i| format!(r#"{{"id":{i},"user":"user{}","status":"active","tags":["a","b"]}}"#, i % 37).into_bytes())
///     .collect();
/// let dict = train_dictionary(&samples, 4096)?;
///
/// let mut registry = Registry::with_builtins();
/// registry.add_dictionary(dict.clone());
/// let pipeline = registry.resolve(&format!("json+zstd:3:dict={}", dict.id()))?;
/// let bytes = pipeline.encode(&serde_json::json!({"id": 7, "user": "user7"}))?;
/// let back: serde_json::Value = pipeline.decode(&bytes)?;
/// assert_eq!(back["user"], "user7");
/// # Ok(())
/// # }
/// # #[cfg(not(all(feature = "json", feature = "zstd")))]
/// # fn main() {}
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Dictionary {
    id: u32,
    bytes: Arc<[u8]>,
}

impl Dictionary {
    /// A dictionary with an id of your choosing (use this to hand stored dictionary bytes back
    /// to a registry, or for a raw-content dictionary).
    pub fn new(id: u32, bytes: impl Into<Arc<[u8]>>) -> Self {
        Dictionary {
            id,
            bytes: bytes.into(),
        }
    }

    /// The id values written with this dictionary refer to.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The dictionary bytes, as zstd reads them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dictionary")
            .field("id", &self.id)
            .field("len", &self.bytes.len())
            .finish()
    }
}

#[cfg(feature = "zstd")]
/// Trains a zstd dictionary of at most `max_size` bytes from `samples` (typically a few
/// hundred values, a total of ~100× the dictionary size). Its id is the one zstd writes into
/// the dictionary header (random, non-zero).
///
/// Fails with [`Error::Dictionary`] when zstd cannot train (too few or too small samples).
pub fn train_dictionary<S: AsRef<[u8]>>(samples: &[S], max_size: usize) -> Result<Dictionary> {
    let bytes = zstd::dict::from_samples(samples, max_size).map_err(Error::Dictionary)?;
    let id = zstd::zstd_safe::get_dict_id(&bytes).map_or(0, |id| id.get());
    Ok(Dictionary::new(id, bytes))
}
