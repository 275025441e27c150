//! The LMDB layouts (feature `lmdb`), built on [`heed`].
//!
//! - [`LmdbEnv`]: one shared handle per environment directory per process, whose map grows by
//!   itself, whose read transactions use thread-local reader slots (and, for `LmdbStore`'s hot reads,
//!   a parked transaction per thread, renewed instead of allocated), and whose errors are this
//!   crate's [`Error`](crate::Error). Every LMDB store here is built on it.
//! - [`LmdbStore`]: the general byte store many processes share at once.
//!
//! `heed` is re-exported as [`heed`] so callers name the same version.

mod accounting;
mod env;
mod error;
mod files;
mod freelist;
mod layout;
#[cfg(feature = "fuzzing")]
pub(crate) use layout::fuzz_entry as fuzz_value;
mod meta_pages;
mod options;
mod pages;
mod parked;
mod periodic;
mod raw;
mod retry;
mod shared;
mod store;
mod stream;
mod upgrade;
mod verify;

pub(crate) use accounting::{Adopted, RecordOp, Removed};
pub use env::{LmdbEnv, LmdbEnvStats};
pub use error::TxnError;
pub use heed;
pub use options::LmdbOptions;
pub use store::LmdbStore;

#[cfg(test)]
mod tests;
