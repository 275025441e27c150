//! A minimal private LMDB environment used until the shared `crate::lmdb::LmdbEnv` lands on
//! this branch. It mirrors that type's API (`open`, `read`, `write`, `create_database`, `heed`)
//! so switching is a change of `use` lines. It does NOT grow the map: it opens with a large
//! map (address space, not disk) and reports `MDB_MAP_FULL` as [`Error::Full`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};

use crate::{Error, Result};

/// How the environment is opened.
#[derive(Debug, Clone)]
pub(crate) struct LmdbOptions {
    pub initial_map_size: u64,
    pub max_dbs: u32,
    pub max_readers: u32,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            initial_map_size: 64 << 30,
            max_dbs: 16,
            max_readers: 1024,
        }
    }
}

/// An error inside a transaction closure: heed's, or this crate's passed through.
#[derive(Debug)]
pub(crate) enum TxnError {
    Heed(heed::Error),
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

#[derive(Clone)]
pub(crate) struct LmdbEnv {
    env: heed::Env<WithoutTls>,
    path: Arc<PathBuf>,
}

impl LmdbEnv {
    pub fn open(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<LmdbEnv> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(options.initial_map_size as usize)
            .max_dbs(options.max_dbs)
            .max_readers(options.max_readers);
        // SAFETY: the map is unsound only if the files are modified behind LMDB's locks or
        // the environment is opened twice in one process (heed refuses the latter).
        let env = unsafe { builder.open(path) }.map_err(|e| engine(path, e))?;
        let _ = env.clear_stale_readers();
        Ok(LmdbEnv {
            env,
            path: Arc::new(path.to_path_buf()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn heed(&self) -> &heed::Env<WithoutTls> {
        &self.env
    }

    pub fn sync(&self) -> Result<()> {
        self.env.force_sync().map_err(|e| self.map_heed_error(e))
    }

    pub fn create_database(&self, name: &str) -> Result<Database<'static, Bytes, Bytes>> {
        create_database(&self.env, Some(name)).map_err(|e| self.map_heed_error(e))
    }

    pub fn write<T, E>(&self, mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, E>) -> Result<T>
    where
        E: Into<TxnError>,
    {
        let mut run = || -> Result<T, TxnError> {
            let mut wtxn = self.env.write_txn()?;
            let out = f(&mut wtxn).map_err(Into::into)?;
            wtxn.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.txn_error(e))
    }

    pub fn read<T, E>(&self, mut f: impl FnMut(&RoTxn<'_, WithoutTls>) -> Result<T, E>) -> Result<T>
    where
        E: Into<TxnError>,
    {
        let mut run = || -> Result<T, TxnError> {
            let rtxn = self.env.read_txn()?;
            f(&rtxn).map_err(Into::into)
        };
        run().map_err(|e| self.txn_error(e))
    }

    fn txn_error(&self, e: TxnError) -> Error {
        match e {
            TxnError::Heed(e) => self.map_heed_error(e),
            TxnError::Store(e) => e,
        }
    }

    pub fn map_heed_error(&self, e: heed::Error) -> Error {
        if let heed::Error::Mdb(MdbError::MapFull) = e {
            return Error::Full {
                path: self.path.to_path_buf(),
                cap: self.env.info().map_size as u64,
            };
        }
        engine(&self.path, e)
    }
}

fn engine(path: &Path, e: heed::Error) -> Error {
    Error::Engine {
        engine: "lmdb",
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Creates (or opens) the named database `name`, or the unnamed one for `None`, in its own
/// write transaction on the raw environment.
pub(crate) fn create_database(
    env: &heed::Env<WithoutTls>,
    name: Option<&str>,
) -> heed::Result<Database<'static, Bytes, Bytes>> {
    let wtxn = env.write_txn()?;
    let created = env.create_databases_and_commit(wtxn, |opener, wtxn| {
        opener
            .create_database::<Bytes, Bytes>(wtxn, name)
            .map(CommitOrAbort::<_, ()>::Commit)
    })?;
    match created {
        CommitOrAbort::Commit(db) => Ok(db),
        CommitOrAbort::Abort(()) => unreachable!("the closure always commits"),
    }
}
