//! Which kind of store a directory holds, so an [`ArrayStore`](super::ArrayStore) is never
//! opened on a [`NumpyLmdb`](super::NumpyLmdb) directory or the other way round (or on any
//! other cacher store).
//!
//! Both layouts are LMDB environments, and LMDB's default database tells them apart:
//!
//! - an ArrayStore keeps its arrays in named databases (`cacher-arrays`, ...), which LMDB
//!   records as entries of the default database whose values are its 48-byte `MDB_db`
//!   records; nothing else is in the default database;
//! - a NumpyLmdb (the Python tool, py-lmdb) keeps its vectors *in* the default database, under
//!   the user's keys, and its metadata in the sub-environment `metadata.lmdb`;
//! - an LmdbStore keeps its entries in the named databases `cacher-store` and
//!   `cacher-store-meta`.
//!
//! Opening either layout on the other wrote into the wrong place (an ArrayStore created its
//! databases among the user's vectors; a NumpyLmdb returned LMDB's `MDB_db` records as
//! vectors). Now each one first refuses a directory carrying another kind's marker
//! ([`marker::refuse_foreign`]), then checks the default database's contents, then writes its
//! own marker (`cacher-array.toml`, `cacher-numpy-lmdb.toml`). py-lmdb ignores extra files in
//! an environment directory, so the NumpyLmdb marker does not affect Python readers; Python
//! writers do not add one, which is why the contents are checked as well.

use std::path::Path;

use heed::types::Bytes;
use heed::Database;

use crate::fs::FileMode;
use crate::lmdb::{LmdbEnv, TxnError};
use crate::marker::{self, Kind};
use crate::{Error, Result};

/// The named databases of an ArrayStore; a newer ArrayStore may add more under this prefix.
const ARRAY_DB_PREFIX: &[u8] = b"cacher-arrays";
/// The named databases of an LmdbStore.
const LMDB_STORE_DBS: [&[u8]; 2] = [b"cacher-store", b"cacher-store-meta"];
/// The sub-environment a NumpyLmdb keeps its metadata in.
pub(super) const NUMPY_METADATA_DIR: &str = "metadata.lmdb";
/// Size of LMDB's `MDB_db` record, the value of a named database's entry in the default
/// database (64-bit builds: u32 pad, u16 flags, u16 depth, five u64 counts and the root).
const MDB_DB_RECORD: usize = 48;
/// Default-database entries an ArrayStore check looks at: an ArrayStore has three.
const ENTRIES_LOOKED_AT: usize = 16;

fn wrong(path: &Path, expected: Kind, found: &'static str) -> Error {
    Error::WrongLayout {
        path: path.to_path_buf(),
        expected: expected.type_name(),
        found,
    }
}

/// Before an ArrayStore creates anything in `dir`: refuses another kind's marker, its own
/// marker of a version above `version`, and a NumpyLmdb's metadata sub-environment.
pub(super) fn refuse_before_array_open(dir: &Path, version: u32) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(()); // a new store
    }
    marker::refuse_foreign(dir, Kind::Array)?;
    marker::read(&Kind::Array.path_in(dir), Kind::Array, version)?;
    if std::fs::symlink_metadata(dir.join(NUMPY_METADATA_DIR)).is_ok() {
        return Err(wrong(dir, Kind::Array, Kind::NumpyLmdb.type_name()));
    }
    Ok(())
}

/// After the environment is open, before the ArrayStore creates its databases: the default
/// database may hold only ArrayStore's own named databases.
pub(super) fn refuse_foreign_array_contents(env: &LmdbEnv) -> Result<()> {
    let main = env.create_unnamed_database()?;
    let found = env.read(|txn| -> Result<Option<&'static str>, TxnError> {
        for entry in main.iter(txn)?.take(ENTRIES_LOOKED_AT) {
            let (key, value) = entry?;
            if key.starts_with(ARRAY_DB_PREFIX) && value.len() == MDB_DB_RECORD {
                continue;
            }
            if LMDB_STORE_DBS.contains(&key) && value.len() == MDB_DB_RECORD {
                return Ok(Some(Kind::Lmdb.type_name()));
            }
            // Anything else is a store keeping its entries in the default database.
            return Ok(Some(Kind::NumpyLmdb.type_name()));
        }
        Ok(None)
    })?;
    match found {
        Some(found) => Err(wrong(env.path(), Kind::Array, found)),
        None => Ok(()),
    }
}

/// Before a NumpyLmdb creates anything in `dir`: refuses another kind's marker and its own
/// marker of a version above `version`.
pub(super) fn refuse_before_numpy_open(dir: &Path, version: u32) -> Result<()> {
    if std::fs::symlink_metadata(dir).is_err() {
        return Ok(());
    }
    marker::refuse_foreign(dir, Kind::NumpyLmdb)?;
    marker::read(&Kind::NumpyLmdb.path_in(dir), Kind::NumpyLmdb, version)?;
    Ok(())
}

/// After the main environment is open: refuses one whose default database holds the named
/// databases of an ArrayStore or an LmdbStore (point lookups: the default database of a
/// NumpyLmdb may hold millions of vectors).
pub(super) fn refuse_foreign_numpy_contents(
    env: &LmdbEnv,
    main: Database<'static, Bytes, Bytes>,
) -> Result<()> {
    let array_dbs: [&[u8]; 3] = [
        b"cacher-arrays",
        b"cacher-arrays-long-keys",
        b"cacher-arrays-info",
    ];
    let found = env.read(|txn| -> Result<Option<&'static str>, TxnError> {
        for (names, kind) in [
            (&array_dbs[..], Kind::Array),
            (&LMDB_STORE_DBS[..], Kind::Lmdb),
        ] {
            for name in names {
                if main
                    .get(txn, name)?
                    .is_some_and(|v| v.len() == MDB_DB_RECORD)
                {
                    return Ok(Some(kind.type_name()));
                }
            }
        }
        Ok(None)
    })?;
    match found {
        Some(found) => Err(wrong(env.path(), Kind::NumpyLmdb, found)),
        None => Ok(()),
    }
}

/// Reads `kind`'s marker in `dir`, writing it when missing (now shared: [`marker::ensure`]).
pub(super) fn ensure_marker(dir: &Path, kind: Kind, version: u32) -> Result<u32> {
    marker::ensure(dir, kind, version, FileMode::Umask)
}
