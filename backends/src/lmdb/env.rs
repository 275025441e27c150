//! [`LmdbEnv`]: one shared, self-growing LMDB environment handle per directory per process.

use std::collections::HashMap;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, MdbError, RoTxn, RwTxn, WithTls};

use super::error::TxnError;
use super::files;
use super::options::LmdbOptions;
use super::parked::{Dbi, Renewed};
use super::shared::Shared;
use crate::{Error, Result};

/// The process-wide registry of open environments, keyed by canonical path.
///
/// Every [`LmdbEnv`] handle is dropped while this lock is held (see `Drop for LmdbEnv`), so
/// an environment is closed before any later open of its path can run: a dead entry here
/// always means the environment is already closed.
fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Shared>>> {
    static REGISTRY: std::sync::OnceLock<Mutex<HashMap<PathBuf, Weak<Shared>>>> =
        std::sync::OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

/// A shared handle on one LMDB environment directory: clone it freely (a clone is a reference
/// count).
///
/// LMDB is fast and safe to share between processes, but it leaves a few sharp edges to its
/// caller. This handle files them down once for every LMDB store in the crate:
///
/// - **Once per process.** LMDB forbids opening the same environment twice in one process
///   (heed reports `EnvAlreadyOpened`). [`LmdbEnv::open`] keeps a process-wide registry keyed
///   by canonical path; a second open returns a clone of the live handle. The environment is
///   closed when the last handle drops, so a later open really reopens it.
/// - **The map grows by itself.** A write that hits `MDB_MAP_FULL` is aborted, the map is
///   doubled (up to [`LmdbOptions::max_map_size`], past which the write fails with
///   [`Error::Full`]) and the write is run again. LMDB only allows a resize while this process
///   has no transaction open, so every transaction made through [`LmdbEnv::read`] and
///   [`LmdbEnv::write`] holds a process-wide gate shared, and a resize holds it exclusive (the
///   gate is striped by thread, so concurrent readers write no shared lock word; a resize
///   takes every stripe); a
///   file lock (`cacher-resize.lock`, beside `data.mdb`) keeps two processes from resizing at
///   once. A process that finds the map grown by another one (`MDB_MAP_RESIZED`) adopts the new
///   size and retries.
/// - **Reader slots.** Read transactions use LMDB's thread-local reader slots (heed's
///   `WithTls`; not `MDB_NOTLS`): a thread claims a slot in the reader table at its first
///   read of the environment and keeps it, idle between its transactions, until the thread
///   exits (or the environment closes). Beginning a read then writes only the thread's own
///   slot, where `MDB_NOTLS` takes the table's process-shared mutex to claim a slot at every
///   transaction, which made concurrent readers slower than one (issue 15). So
///   [`LmdbOptions::max_readers`] bounds the *threads* of all processes that have read the
///   environment and are still alive, not the transactions open at once: a program that reads
///   from many short-lived threads frees their slots as they exit, but one with more live
///   reading threads than slots gets `MDB_READERS_FULL` (after the cleanup below). Background
///   durable points of a [`Durability::Periodic`](crate::Durability::Periodic) environment
///   hold two more slots, in two threads of their own that take turns holding the pin and
///   live as long as the environment. A read transaction cannot move
///   between threads (the closure of [`LmdbEnv::read`] runs on the calling thread), and a
///   thread may hold one at a time (a nested read fails with `MDB_BAD_RSLOT`; see below).
///   `LmdbStore`'s hot reads (`get`, `with_value`, `meta`, `get_many`...) do not begin a
///   transaction each: every thread keeps one reset read transaction per environment, renewed
///   for each read and reset after it (`mdb_txn_renew`/`mdb_txn_reset`, no allocation); a
///   reset transaction holds no reader slot, and all of them are aborted when the environment
///   closes. A thread that has read an environment may exit while another thread closes it
///   (drops its last handle): the vendored LMDB's thread-exit destructor frees the slot only
///   under a process-wide lock and only while the environment's reader table is still mapped
///   (`vendor/lmdb-master-sys/VENDOR.md`). Slots left by processes that died are cleared when
///   the environment is opened and again when LMDB reports `MDB_READERS_FULL`, after which
///   the call is retried once. (When no process has the environment open, LMDB itself resets
///   the whole reader table at the next open.) A full map is also a moment to clear them: a
///   slot of a dead process pins every page freed since its snapshot, so the file would grow
///   instead of reusing them; [`LmdbEnv::write`] clears stale readers before growing. (LMDB
///   checks readers itself when it recovers the write lock from a process that died holding
///   it, but it may run before the kernel has released the dead process's file locks, and
///   then takes the dead reader for a live one.)
///
/// # What a caller must not do
/// - **Do not nest**: no [`LmdbEnv::read`] or [`LmdbEnv::write`] (nor any store method) from
///   inside the closure of another one on the same environment. The nested call would take the
///   resize gate a second time on one thread and deadlock as soon as another thread waits to
///   resize, and a read inside a read fails with `MDB_BAD_RSLOT` (one reader slot per
///   thread). Finish the outer transaction first, or do the work in the same one.
/// - **Do not open transactions on [`LmdbEnv::heed`] directly** while other threads use the
///   environment: they bypass the gate, and a resize in another thread would unmap the pages
///   they read. Use the raw handle for what needs no transaction (stats, `force_sync`).
/// - **Do not keep clones of the raw `heed::Env`** beyond the [`LmdbEnv`] they came from: they
///   keep the environment open after the last `LmdbEnv` drops, and the next open fails.
/// - **Keep read transactions short**: a long one pins old pages and makes the file grow.
/// - Do not open the same directory with another LMDB binding in this process.
/// ```
/// use cacher_store::lmdb::{heed, LmdbEnv, LmdbOptions, TxnError};
///
/// let dir = tempfile::tempdir()?;
/// let env = LmdbEnv::open(dir.path(), &LmdbOptions::default().with_initial_map_size(1 << 20))?;
/// let db = env.create_database("numbers")?;
/// // A value far bigger than the initial map: the map grows and the write is retried.
/// let big = vec![7u8; 4 << 20];
/// env.write(|wtxn| db.put(wtxn, b"big", &big))?;
/// let len = env.read(|rtxn| -> Result<_, TxnError> {
///     Ok(db.get(rtxn, b"big")?.map(|v| v.len()))
/// })?;
/// assert_eq!(len, Some(4 << 20));
/// // Opening the directory again in this process shares the handle.
/// let again = LmdbEnv::open(dir.path(), &LmdbOptions::default())?;
/// assert!(again.same_env(&env));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct LmdbEnv {
    /// Never empty while the handle lives; taken only in `drop`, under the registry lock.
    shared: ManuallyDrop<Arc<Shared>>,
}

/// What an [`LmdbEnv`] has done to keep going, since it was opened in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct LmdbEnvStats {
    /// Times this process grew the map after `MDB_MAP_FULL`.
    pub map_grown: u64,
    /// Times this process adopted a bigger map recorded by another process (after
    /// `MDB_MAP_RESIZED`, or found while about to grow).
    pub map_adopted: u64,
    /// Stale reader slots cleared after `MDB_READERS_FULL` or before growing the map (not
    /// counting the open).
    pub stale_readers_cleared: u64,
}

impl LmdbEnv {
    /// The shared state, for tests that drive the background durable points by hand.
    #[cfg(test)]
    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Clone for LmdbEnv {
    fn clone(&self) -> Self {
        LmdbEnv {
            shared: ManuallyDrop::new(Arc::clone(&self.shared)),
        }
    }
}

impl Drop for LmdbEnv {
    fn drop(&mut self) {
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        // SAFETY: `shared` is taken exactly once, here, and never used afterwards.
        #[expect(unsafe_code, reason = "ManuallyDrop::take in Drop (see SAFETY)")]
        let shared = unsafe { ManuallyDrop::take(&mut self.shared) };
        if Arc::strong_count(&shared) == 1 {
            // The last handle: remove the entry and close the environment (by dropping it)
            // while holding the registry lock, so no open can find LMDB's own registry still
            // holding the path.
            registry.remove(&shared.path);
        }
        drop(shared);
        drop(registry);
    }
}

impl std::fmt::Debug for LmdbEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LmdbEnv")
            .field("path", &self.shared.path)
            .field("map_size", &self.map_size())
            .finish_non_exhaustive()
    }
}

impl LmdbEnv {
    /// Opens (creating it and its directory if needed) the environment in directory `path`,
    /// or returns the handle already open in this process for the same directory (whose
    /// options then apply). Clears reader slots left by dead processes.
    ///
    /// Before LMDB sees the directory, `data.mdb`, `lock.mdb` and the resize lock are checked
    /// with `lstat` (a symlink, FIFO or other non-regular file is [`Error::NotOwned`]) and
    /// created by cacher when missing (`O_EXCL | O_NOFOLLOW`, [`LmdbOptions::file_mode`]), and
    /// `data.mdb`'s two meta pages are checked: a file cut short, or meta pages whose
    /// transaction ids are not two consecutive commits (a damaged id would roll LMDB back to
    /// the older one), is [`Error::Corrupt`] instead of a `SIGBUS` or a silent rollback.
    pub fn open(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<LmdbEnv> {
        let path = path.as_ref();
        files::create_dir(path, options.file_mode)?;
        let path = path
            .canonicalize()
            .map_err(|e| Error::io("resolving", path, e))?;
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = registry.get(&path).and_then(Weak::upgrade) {
            if let Some(kind) = options.kind {
                match shared.options.kind {
                    Some(open_as) if open_as != kind => {
                        return Err(Error::WrongLayout {
                            path,
                            expected: kind.type_name(),
                            found: open_as.type_name(),
                        })
                    }
                    _ => crate::marker::refuse_foreign(&path, kind)?,
                }
            }
            return Ok(LmdbEnv {
                shared: ManuallyDrop::new(shared),
            });
        }
        files::prepare(&path, options.file_mode, options.kind, options.periodic())?;
        let shared = Arc::new(Shared::open(path.clone(), options.clone())?);
        registry.insert(path, Arc::downgrade(&shared));
        start_durable_points(&shared);
        Ok(LmdbEnv {
            shared: ManuallyDrop::new(shared),
        })
    }

    /// The canonical directory path of the environment.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The options the environment was opened with (by the first open in this process).
    pub fn options(&self) -> &LmdbOptions {
        &self.shared.options
    }

    /// The current size of this process's map, in bytes.
    pub fn map_size(&self) -> u64 {
        self.shared.map_size.load(Ordering::Acquire) as u64
    }

    /// LMDB's figures for the environment (`mdb_env_info`: newest commit, reader slots, map),
    /// read under the resize gate, since LMDB reads them from the meta pages through the map,
    /// which a resize in another thread unmaps. Prefer it to `heed().info()`.
    ///
    /// ```
    /// # use cacher_store::lmdb::{LmdbEnv, LmdbOptions};
    /// let dir = tempfile::tempdir()?;
    /// let env = LmdbEnv::open(dir.path(), &LmdbOptions::default())?;
    /// assert!(env.info().maximum_number_of_readers > 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn info(&self) -> heed::EnvInfo {
        let _gate = self.shared.gate_shared();
        self.shared.env.info()
    }

    /// How many stale reader slots (left by processes that died) were cleared when this
    /// environment was opened.
    pub fn stale_readers_cleared_on_open(&self) -> usize {
        self.shared.cleared_on_open
    }

    /// What the environment did to keep going (growths, adopted resizes, cleared readers).
    pub fn stats(&self) -> LmdbEnvStats {
        let s = &self.shared;
        LmdbEnvStats {
            map_grown: s.grown.load(Ordering::Relaxed),
            map_adopted: s.adopted.load(Ordering::Relaxed),
            stale_readers_cleared: s.readers_cleared.load(Ordering::Relaxed),
        }
    }

    /// Clears reader slots left by processes that died; returns how many there were.
    pub fn clear_stale_readers(&self) -> Result<usize> {
        self.shared
            .env
            .clear_stale_readers()
            .map_err(|e| self.shared.engine_error(e))
    }

    /// Whether two handles share one environment.
    pub fn same_env(&self, other: &LmdbEnv) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// The raw heed environment, for what needs no transaction (stats, info). Transactions
    /// opened on it bypass the resize gate: see [what a caller must not do](LmdbEnv#what-a-caller-must-not-do).
    pub fn heed(&self) -> &heed::Env<WithTls> {
        &self.shared.env
    }

    /// Makes a durable point now in a [`Durability::Periodic`](crate::Durability::Periodic)
    /// environment (every commit so far survives a power loss once it returns); the same as
    /// [`LmdbEnv::sync`] otherwise.
    pub fn durable_point(&self) -> Result<()> {
        match &self.shared.periodic {
            Some(_) => self.shared.durable_point(),
            None => self.sync(),
        }
    }

    /// Flushes written data to disk: makes [`Durability::None`](crate::Durability::None) commits durable.
    pub fn sync(&self) -> Result<()> {
        self.shared
            .env
            .force_sync()
            .map_err(|e| self.shared.engine_error(e))
    }

    /// Creates (or opens) the named byte database `name`. Counts against
    /// [`LmdbOptions::max_dbs`].
    ///
    /// An existing database is opened in a read transaction: only creating one takes LMDB's
    /// writer lock, so a process that opens an existing store to read it never waits for a
    /// writer (nor makes one wait).
    pub fn create_database(&self, name: &str) -> Result<Database<'static, Bytes, Bytes>> {
        self.open_database(Some(name))
    }

    /// Creates (or opens) LMDB's unnamed (default) database as bytes — the layout tools like
    /// NumpyLmdb use. It always exists, so this never takes the writer lock. Does not count
    /// against `max_dbs`.
    pub fn create_unnamed_database(&self) -> Result<Database<'static, Bytes, Bytes>> {
        self.open_database(None)
    }

    /// Opens the named byte database `name` if it exists, without creating it (`None` when
    /// it does not), so a store can tell a new environment from one that lost its databases.
    /// Takes no write lock.
    pub(crate) fn existing_database(
        &self,
        name: &str,
    ) -> Result<Option<Database<'static, Bytes, Bytes>>> {
        self.existing(Some(name))
    }

    /// Opens database `name` (`None`: the unnamed one) in a read transaction, if it exists.
    fn existing(&self, name: Option<&str>) -> Result<Option<Database<'static, Bytes, Bytes>>> {
        self.shared.with_retry(|| {
            let env = &self.shared.env;
            let rtxn = env.read_txn()?;
            let opened = env
                .open_databases_and_commit(rtxn, |opener, rtxn| {
                    opener
                        .open_database::<Bytes, Bytes>(rtxn, name)
                        .map(CommitOrAbort::<_, ()>::Commit)
                })
                .map_err(|e| self.too_many_databases(name, e))?;
            match opened {
                CommitOrAbort::Commit(db) => Ok(db),
                CommitOrAbort::Abort(()) => unreachable!("the closure always commits"),
            }
        })
    }

    /// Both openers: a read transaction finds an existing database; only a missing one is
    /// created, in a write transaction (through the resize gate and retry like every write).
    fn open_database(&self, name: Option<&str>) -> Result<Database<'static, Bytes, Bytes>> {
        if let Some(db) = self.existing(name)? {
            return Ok(db);
        }
        self.shared.before_first_write()?;
        let created = self.shared.with_retry(|| {
            let env = &self.shared.env;
            let wtxn = env.write_txn()?;
            let created = env
                .create_databases_and_commit(wtxn, |opener, wtxn| {
                    opener
                        .create_database::<Bytes, Bytes>(wtxn, name)
                        .map(CommitOrAbort::<_, ()>::Commit)
                })
                .map_err(|e| self.too_many_databases(name, e))?;
            // Under the gate: it reads the meta pages through the map.
            self.shared.record_commit();
            match created {
                CommitOrAbort::Commit(db) => Ok(db),
                CommitOrAbort::Abort(()) => unreachable!("the closure always commits"),
            }
        })?;
        Ok(created)
    }

    /// `MDB_DBS_FULL` as an error naming the option that sets the limit; other errors as they
    /// are.
    fn too_many_databases(&self, name: Option<&str>, e: heed::Error) -> TxnError {
        match e {
            heed::Error::Mdb(MdbError::DbsFull) => TxnError::Store(Error::InvalidArgument {
                op: "create_database",
                path: self.shared.path.clone(),
                reason: format!(
                    "cannot open the database {name:?}: this process may open at most {} named \
                     databases in the environment (LmdbOptions::max_dbs); open it with a \
                     larger max_dbs",
                    self.shared.options.max_dbs
                ),
            }),
            e => e.into(),
        }
    }

    /// Runs `f` in a write transaction and commits it. On `MDB_MAP_FULL` the map grows and
    /// `f` runs again in a fresh transaction (hence `FnMut`); likewise after adopting a map
    /// grown by another process, or clearing stale readers. Errors: [`Error::Full`] past the
    /// cap, [`Error::Corrupt`] for LMDB's corruption codes, [`Error::Engine`] for the rest, and
    /// a [`TxnError::Store`] returned by `f` as is.
    ///
    /// Write transactions are serialized by LMDB across threads and processes.
    pub fn write<T, E>(&self, mut f: impl FnMut(&mut RwTxn<'_>) -> Result<T, E>) -> Result<T>
    where
        E: Into<TxnError>,
    {
        self.shared.before_first_write()?;
        self.shared.with_retry(|| {
            let mut wtxn = self.shared.env.write_txn()?;
            let out = f(&mut wtxn).map_err(Into::into)?;
            wtxn.commit()?;
            self.shared.record_commit();
            Ok(out)
        })
    }

    /// Runs `f` in a read transaction, which ends when `f` returns: bytes read from the map
    /// are valid only inside `f`. The transaction uses this thread's reader slot (claimed at
    /// its first read, kept until it exits: see [reader slots](LmdbEnv)); `f` is given it as
    /// heed's `RoTxn<'_, AnyTls>`, the type every `Database` method takes and a `RwTxn`
    /// dereferences to, so one helper can read in either. `f` may run again after the map was resized by another
    /// process or stale readers were cleared. Errors are mapped as for [`LmdbEnv::write`].
    pub fn read<T, E>(&self, mut f: impl FnMut(&RoTxn<'_>) -> Result<T, E>) -> Result<T>
    where
        E: Into<TxnError>,
    {
        self.shared.with_retry(|| {
            let rtxn = self.shared.env.read_txn()?;
            f(&rtxn).map_err(Into::into)
        })
    }

    /// Runs `f` in this thread's parked read transaction, renewed on a fresh snapshot (or begun,
    /// at the thread's first read), and resets and parks it again when `f` returns: the hot
    /// reads' [`LmdbEnv::read`], without the allocation and free of a transaction per read
    /// (`parked`). `f` reads through [`Renewed::get`]; like `read`, it runs under the resize
    /// gate and may run again after a resize by another process.
    #[inline]
    pub(crate) fn read_parked<T>(
        &self,
        mut f: impl FnMut(&Renewed<'_>) -> Result<T, TxnError>,
    ) -> Result<T> {
        self.shared.with_retry(|| {
            let txn = self.shared.parked.renew()?;
            f(&txn)
        })
    }

    /// The LMDB handle of the named database `name`, which must exist (open it first with
    /// [`LmdbEnv::create_database`]), for [`Renewed::get`].
    pub(crate) fn raw_dbi(&self, name: &str) -> Result<Dbi> {
        self.shared.with_retry(|| {
            self.shared
                .parked
                .dbi(&self.shared.env, name)?
                .ok_or_else(|| {
                    TxnError::Store(Error::corrupt(
                        &self.shared.path,
                        None,
                        format!("the database {name:?} is not in the environment"),
                    ))
                })
        })
    }

    /// Maps a heed error to this crate's error for this environment (for callers that use
    /// the raw handle).
    pub fn map_heed_error(&self, e: heed::Error) -> Error {
        self.shared.engine_error(e)
    }
}

/// Starts the thread that makes a durable point every interval while this process writes a
/// [`Durability::Periodic`](crate::Durability::Periodic) environment. It holds only a weak
/// reference and ends when the environment closes (its stop channel is dropped with it).
fn start_durable_points(shared: &Arc<Shared>) {
    let Some(periodic) = &shared.periodic else {
        return;
    };
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    *periodic.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(stop);
    let weak = Arc::downgrade(shared);
    let interval = shared.options.periodic_interval;
    let spawned = std::thread::Builder::new()
        .name("cacher-lmdb-durable".into())
        .spawn(move || loop {
            match stopped.recv_timeout(interval) {
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            // Upgraded under the registry lock and dropped as a handle, so the environment is
            // closed under that lock even if this thread holds the last reference.
            let env = {
                let _registry = registry().lock().unwrap_or_else(|p| p.into_inner());
                weak.upgrade().map(|shared| LmdbEnv {
                    shared: ManuallyDrop::new(shared),
                })
            };
            let Some(env) = env else { return };
            if env.shared.wants_durable_point() {
                // A failure here leaves the previous point pinned and on record (nothing is
                // lost but the bound); `Store::flush` makes a point and reports errors.
                let _ = env.shared.durable_point();
            }
            drop(env);
        });
    // Without the thread, points are still made before the first write, by `flush` and when
    // the environment closes.
    drop(spawned);
}
