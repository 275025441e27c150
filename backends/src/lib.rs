//! Byte stores for cacher: the [`Store`] trait and the layouts that implement it.
//!
//! Stores know bytes and nothing about serde: a key is any byte string, a value is any byte
//! string. Every method may fail with a typed [`Error`]; none panics on bad data.
//!
//! ```
//! use cacher_store::{MemoryStore, Store};
//!
//! let store = MemoryStore::new();
//! store.put(b"greeting", b"hello")?;
//! assert_eq!(store.get(b"greeting")?.as_deref(), Some(&b"hello"[..]));
//! assert!(store.delete(b"greeting")?);
//! assert_eq!(store.get(b"greeting")?, None);
//! # Ok::<(), cacher_store::Error>(())
//! ```
//!
//! | store | on disk | concurrency | durability |
//! |---|---|---|---|
//! | [`MemoryStore`] | nothing | threads | none |
//! | [`DirStore`] | one file per key under `v1/<2 hex>/<blake3 hex>`; temp file + rename | threads + processes | [`Durability::Flush`] (default) or [`Durability::None`] |
//! | [`LogStore`] | one append-only file of checksummed records + in-memory index | threads; one writer process (file lock), read-only processes alongside | `Flush` (default) or `None` |
//! | `LmdbStore` (feature `lmdb`) | LMDB environment | threads + processes | flush (default) or none |
//! | `RedisStore` (feature `redis`) | a Redis server or Redis Cluster, keys under `cacher:{prefix}:d:` | threads + processes + machines | the server's (`appendonly`, `appendfsync`) |
//! | [`ArrayStore`](array::ArrayStore) (feature `lmdb`) | LMDB environment of typed arrays, read zero-copy as `&[T]` | threads + processes | flush |

pub mod accounting;
#[cfg(feature = "archive")]
pub mod archive;
#[cfg(feature = "lmdb")]
pub mod array;
mod blob;
mod dir;
mod error;
mod fs;
#[cfg(feature = "lmdb")]
mod hybrid;
mod key;
mod le;
pub mod lease;
#[cfg(feature = "lmdb")]
pub mod lmdb;
mod log;
mod marker;
mod memory;
mod mmap;
#[cfg(feature = "redis")]
pub mod redis;
mod store;
mod tiered;
mod value_reader;
mod version;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

/// Entry points of the cargo-fuzz targets in `fuzz/` (feature `fuzzing`). Each feeds any
/// bytes to one decoder and checks it neither panics nor over-allocates; the same functions run
/// under proptest in the ordinary test suite. Not an API: no stability promise.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    /// A DirStore entry file.
    pub fn dir_entry(bytes: &[u8]) {
        crate::dir::fuzz_entry(bytes)
    }
    /// An ArrayStore value (feature `lmdb`).
    #[cfg(feature = "lmdb")]
    pub fn array_value(bytes: &[u8]) {
        crate::array::fuzz_value(bytes)
    }
    /// A `.npy` file (feature `lmdb`).
    #[cfg(feature = "lmdb")]
    pub fn npy_file(bytes: &[u8]) {
        crate::array::fuzz_npy(bytes)
    }
    /// An LmdbStore value as stored under the raw LMDB key `raw` (feature `lmdb`).
    #[cfg(feature = "lmdb")]
    pub fn lmdb_value(stored: &[u8], raw: &[u8]) {
        crate::lmdb::fuzz_value(stored, raw)
    }
}

pub use blob::Blob;
pub use dir::{DirStore, DirStoreOptions, DEFAULT_MMAP_THRESHOLD, DEFAULT_STALE_TEMP_AGE};
pub use error::{Error, Result};
pub use fs::FileMode;
#[cfg(feature = "lmdb")]
pub use hybrid::{HybridOptions, HybridStore, DEFAULT_GARBAGE_AGE, DEFAULT_INLINE_MAX};
pub use key::KeyDisplay;
#[cfg(feature = "lmdb")]
pub use lmdb::LmdbStore;
pub use log::{
    Damage, DamagedTail, LogOptions, LogStats, LogStore, OpenReport, TornReason, TornTail,
};
pub use memory::MemoryStore;
#[cfg(feature = "redis")]
pub use redis::RedisStore;
pub use store::{Durability, EntryIter, EntryMeta, KeyIter, Store, VerifyReport};
pub use tiered::{Invalidator, Tiered};
pub use value_reader::ValueReader;
