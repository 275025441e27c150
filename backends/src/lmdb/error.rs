//! Errors inside LMDB transactions: [`TxnError`], and the mapping of heed's errors to this
//! crate's.

use std::path::Path;

use heed::MdbError;

use crate::Error;

/// The error a transaction closure passed to [`LmdbEnv::read`](super::LmdbEnv::read) or
/// [`LmdbEnv::write`](super::LmdbEnv::write) returns: either heed's (which the environment inspects for map-full, map-resized and readers-full)
/// or one of this crate's (passed through unchanged, e.g. [`Error::Corrupt`] for bytes the
/// closure found damaged). Both convert with `?`. It prints as the error it holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TxnError {
    /// An error from heed or LMDB.
    #[error(transparent)]
    Heed(heed::Error),
    /// An error of this crate, reported as is.
    #[error(transparent)]
    Store(Error),
}

impl From<heed::Error> for TxnError {
    fn from(e: heed::Error) -> Self {
        TxnError::Heed(e)
    }
}

impl From<Error> for TxnError {
    fn from(e: Error) -> Self {
        TxnError::Store(e)
    }
}

/// Maps a heed error on the environment at `path` to this crate's error.
pub(super) fn engine_error(path: &Path, e: heed::Error) -> Error {
    match e {
        heed::Error::Mdb(
            code @ (MdbError::Corrupted | MdbError::PageNotFound | MdbError::Invalid),
        ) => Error::corrupt(path, None, format!("LMDB reports: {code}")),
        heed::Error::Io(source) => Error::io("using the LMDB environment", path, source),
        e => Error::Engine {
            engine: "lmdb",
            path: path.to_path_buf(),
            source: Box::new(e),
        },
    }
}
