//! [`LmdbEnv`]: one shared, self-growing LMDB environment handle per directory per process.
//!
//! LMDB is fast and safe to share between processes, but it leaves a few sharp edges to its
//! caller. This module files them down once for every LMDB store in the crate:
//!
//! - **Once per process.** LMDB forbids opening the same environment twice in one process
//!   (heed reports `EnvAlreadyOpened`). [`LmdbEnv::open`] keeps a process-wide registry keyed
//!   by canonical path; a second open returns a clone of the live handle. The environment is
//!   closed when the last handle drops, so a later open really reopens it.
//! - **The map grows by itself.** A write that hits `MDB_MAP_FULL` is aborted, the map is
//!   doubled (up to [`LmdbOptions::max_map_size`], past which the write fails with
//!   [`Error::Full`]) and the write is run again. LMDB only allows a resize while this process
//!   has no transaction open, so every transaction made through [`LmdbEnv::read`] and
//!   [`LmdbEnv::write`] holds a process-wide gate shared, and a resize holds it exclusive; a
//!   file lock (`cacher-resize.lock`, beside `data.mdb`) keeps two processes from resizing at
//!   once. A process that finds the map grown by another one (`MDB_MAP_RESIZED`) adopts the new
//!   size and retries.
//! - **Reader slots.** Read transactions are opened without thread-local storage
//!   (`MDB_NOTLS`, heed's `WithoutTls`), so a read transaction may move between threads and
//!   each one frees its slot when it ends. Slots left by processes that died are cleared when
//!   the environment is opened and again when LMDB reports `MDB_READERS_FULL`, after which
//!   the call is retried once. (When no process has the environment open, LMDB itself resets
//!   the whole reader table at the next open.) A full map is also a moment to clear them: a
//!   slot of a dead process pins every page freed since its snapshot, so the file would grow
//!   instead of reusing them; [`LmdbEnv::write`] clears stale readers before growing. (LMDB
//!   checks readers itself when it recovers the write lock from a process that died holding
//!   it, but it may run before the kernel has released the dead process's file locks, and
//!   then takes the dead reader for a live one.)
//!
//! # What a caller must not do
//! - **Do not nest**: no [`LmdbEnv::read`] or [`LmdbEnv::write`] (nor any store method) from
//!   inside the closure of another one on the same environment. The nested call would take the
//!   resize gate a second time on one thread and deadlock as soon as another thread waits to
//!   resize. Finish the outer transaction first, or do the work in the same one.
//! - **Do not open transactions on [`LmdbEnv::heed`] directly** while other threads use the
//!   environment: they bypass the gate, and a resize in another thread would unmap the pages
//!   they read. Use the raw handle for what needs no transaction (stats, `force_sync`).
//! - **Do not keep clones of the raw `heed::Env`** beyond the [`LmdbEnv`] they came from: they
//!   keep the environment open after the last `LmdbEnv` drops, and the next open fails.
//! - **Keep read transactions short**: a long one pins old pages and makes the file grow.
//! - Do not open the same directory with another LMDB binding in this process.

use std::collections::HashMap;
use std::fs::File;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, Weak};

use heed::types::Bytes;
use heed::{CommitOrAbort, Database, EnvFlags, EnvOpenOptions, MdbError, RoTxn, RwTxn, WithoutTls};

use crate::{Durability, Error, Result};

/// Map sizes are kept a multiple of this, which is a multiple of every page size LMDB runs
/// with (4 KiB, 16 KiB, 64 KiB).
const MAP_ROUNDING: u64 = 64 << 10;

/// After this many retries of one transaction (each after a growth, an adopted resize or a
/// reader cleanup) the error is reported instead; only a pathological race gets near it.
const MAX_ATTEMPTS: u32 = 64;

/// The name of the inter-process resize lock file, beside `data.mdb` and `lock.mdb`.
const RESIZE_LOCK_FILE: &str = "cacher-resize.lock";

/// How an LMDB environment is opened. Build it from [`LmdbOptions::default`] and the `with_*`
/// setters, or set the public fields.
///
/// Only the first open of a directory in a process applies its options; later opens in the
/// same process share that handle. Open every process with the same options: LMDB sizes the
/// reader table once, from the first process that creates `lock.mdb`.
///
/// ```
/// use cacher_store::lmdb::LmdbOptions;
/// use cacher_store::Durability;
///
/// let options = LmdbOptions::default()
///     .with_initial_map_size(1 << 20)
///     .with_max_map_size(Some(1 << 30))
///     .with_durability(Durability::None);
/// assert_eq!(options.max_readers, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LmdbOptions {
    /// Reader slots in the lock table: concurrent read transactions across all processes.
    /// Default 1024 (LMDB's own default is 126).
    pub max_readers: u32,
    /// The map size the environment starts with, in bytes (rounded up to 64 KiB). The map is
    /// address space, not disk: the file only grows as data is written. Default 64 MiB. An
    /// existing environment whose recorded map size is larger keeps the larger one.
    pub initial_map_size: u64,
    /// A cap on the map size in bytes (rounded down to 64 KiB): a write that would need a
    /// bigger map fails with [`Error::Full`]. Default `None`: grow without limit.
    pub max_map_size: Option<u64>,
    /// Named databases the environment may hold. Default 16.
    pub max_dbs: u32,
    /// [`Durability::Flush`] (default): LMDB syncs data and meta page at every commit.
    /// [`Durability::None`]: `MDB_NOSYNC | MDB_NOMETASYNC`, the OS writes back when it likes;
    /// a commit survives a process crash but not a power loss ([`LmdbEnv::sync`] forces it).
    pub durability: Durability,
}

impl Default for LmdbOptions {
    fn default() -> Self {
        LmdbOptions {
            max_readers: 1024,
            initial_map_size: 64 << 20,
            max_map_size: None,
            max_dbs: 16,
            durability: Durability::Flush,
        }
    }
}

impl LmdbOptions {
    /// Sets [`LmdbOptions::max_readers`].
    pub fn with_max_readers(mut self, max_readers: u32) -> Self {
        self.max_readers = max_readers;
        self
    }

    /// Sets [`LmdbOptions::initial_map_size`].
    pub fn with_initial_map_size(mut self, bytes: u64) -> Self {
        self.initial_map_size = bytes;
        self
    }

    /// Sets [`LmdbOptions::max_map_size`].
    pub fn with_max_map_size(mut self, cap: Option<u64>) -> Self {
        self.max_map_size = cap;
        self
    }

    /// Sets [`LmdbOptions::max_dbs`].
    pub fn with_max_dbs(mut self, max_dbs: u32) -> Self {
        self.max_dbs = max_dbs;
        self
    }

    /// Sets [`LmdbOptions::durability`].
    pub fn with_durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The cap rounded down to the map granularity, if any.
    fn cap(&self) -> Option<u64> {
        self.max_map_size
            .map(|c| (c / MAP_ROUNDING * MAP_ROUNDING).max(MAP_ROUNDING))
    }
}

/// The error a transaction closure passed to [`LmdbEnv::read`] or [`LmdbEnv::write`] returns:
/// either heed's (which the environment inspects for map-full, map-resized and readers-full)
/// or one of this crate's (passed through unchanged, e.g. [`Error::Corrupt`] for bytes the
/// closure found damaged). Both convert with `?`.
#[derive(Debug)]
#[non_exhaustive]
pub enum TxnError {
    /// An error from heed or LMDB.
    Heed(heed::Error),
    /// An error of this crate, reported as is.
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
/// count). See the [module docs](self) for what it does for you and what you must not do.
///
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

struct Shared {
    env: heed::Env<WithoutTls>,
    /// The canonical directory path.
    path: PathBuf,
    options: LmdbOptions,
    /// Held shared by every transaction made through this handle, exclusive by a resize.
    gate: RwLock<()>,
    /// The current map size of this process's mapping; changes only under the exclusive gate.
    map_size: AtomicUsize,
    /// How many stale reader slots the open cleared.
    cleared_on_open: usize,
    /// Counters behind [`LmdbEnv::stats`].
    grown: AtomicU64,
    adopted: AtomicU64,
    readers_cleared: AtomicU64,
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
    pub fn open(path: impl AsRef<Path>, options: &LmdbOptions) -> Result<LmdbEnv> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| Error::io("creating", path, e))?;
        let path = path
            .canonicalize()
            .map_err(|e| Error::io("resolving", path, e))?;
        let mut registry = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(shared) = registry.get(&path).and_then(Weak::upgrade) {
            return Ok(LmdbEnv {
                shared: ManuallyDrop::new(shared),
            });
        }
        let shared = Arc::new(Shared::open(path.clone(), options.clone())?);
        registry.insert(path, Arc::downgrade(&shared));
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
    /// opened on it bypass the resize gate: see the [module docs](self).
    pub fn heed(&self) -> &heed::Env<WithoutTls> {
        &self.shared.env
    }

    /// Flushes written data to disk: makes [`Durability::None`] commits durable.
    pub fn sync(&self) -> Result<()> {
        self.shared
            .env
            .force_sync()
            .map_err(|e| self.shared.engine_error(e))
    }

    /// Creates (or opens) the named byte database `name`, in its own write transaction.
    /// Counts against [`LmdbOptions::max_dbs`].
    pub fn create_database(&self, name: &str) -> Result<Database<'static, Bytes, Bytes>> {
        self.open_database(Some(name))
    }

    /// Creates (or opens) LMDB's unnamed (default) database as bytes, in its own write
    /// transaction — the layout tools like NumpyLmdb use. Does not count against `max_dbs`.
    pub fn create_unnamed_database(&self) -> Result<Database<'static, Bytes, Bytes>> {
        self.open_database(None)
    }

    /// Both openers, through the resize gate and retry like every write.
    fn open_database(&self, name: Option<&str>) -> Result<Database<'static, Bytes, Bytes>> {
        self.shared.with_retry(|| {
            let env = &self.shared.env;
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
        })
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
        self.shared.with_retry(|| {
            let mut wtxn = self.shared.env.write_txn()?;
            let out = f(&mut wtxn).map_err(Into::into)?;
            wtxn.commit()?;
            Ok(out)
        })
    }

    /// Runs `f` in a read transaction, which ends when `f` returns: bytes read from the map
    /// are valid only inside `f`. `f` may run again after the map was resized by another
    /// process or stale readers were cleared. Errors are mapped as for [`LmdbEnv::write`].
    pub fn read<T, E>(&self, mut f: impl FnMut(&RoTxn<'_, WithoutTls>) -> Result<T, E>) -> Result<T>
    where
        E: Into<TxnError>,
    {
        self.shared.with_retry(|| {
            let rtxn = self.shared.env.read_txn()?;
            f(&rtxn).map_err(Into::into)
        })
    }

    /// Maps a heed error to this crate's error for this environment (for callers that use
    /// the raw handle).
    pub fn map_heed_error(&self, e: heed::Error) -> Error {
        self.shared.engine_error(e)
    }
}

/// What to do about a failed attempt.
enum Recovery {
    Grow,
    AdoptSize,
    ClearReaders,
}

impl Shared {
    fn open(path: PathBuf, options: LmdbOptions) -> Result<Shared> {
        let cap = options.cap();
        let mut initial = round_up(options.initial_map_size.max(MAP_ROUNDING));
        if let Some(cap) = cap {
            initial = initial.min(cap);
        }
        let initial = usize::try_from(initial).map_err(|_| {
            engine_error(
                &path,
                heed::Error::Io(std::io::Error::other("map size exceeds the address space")),
            )
        })?;
        let mut flags = EnvFlags::empty();
        if options.durability == Durability::None {
            flags |= EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC;
        }
        let mut builder = EnvOpenOptions::new().read_txn_without_tls();
        builder
            .map_size(initial)
            .max_readers(options.max_readers)
            .max_dbs(options.max_dbs);
        // SAFETY: `flags` only holds the sync flags, which affect durability, not memory
        // safety.
        #[expect(unsafe_code, reason = "heed EnvOpenOptions::flags (see SAFETY)")]
        unsafe {
            builder.flags(flags);
        }
        // SAFETY: LMDB's memory map is unsound only if the file is modified behind LMDB's
        // locks or the environment is opened twice in one process. The registry (whose lock
        // the caller holds) ensures the latter for cacher; the former is outside our control,
        // as with any memory-mapped file.
        #[expect(
            unsafe_code,
            reason = "heed EnvOpenOptions::open maps the file (see SAFETY)"
        )]
        let env = unsafe { builder.open(&path) }.map_err(|e| match e {
            heed::Error::EnvAlreadyOpened => Error::Locked {
                path: path.clone(),
                reason: "the LMDB environment is already open in this process outside cacher"
                    .into(),
            },
            e => engine_error(&path, e),
        })?;
        // An existing environment may record a bigger map (grown by another process): adopt
        // it rather than hit MAP_FULL at the first write; never go below the configured size.
        // SAFETY: the environment was just opened and no one else has it yet, so no
        // transaction is open on it.
        #[expect(
            unsafe_code,
            reason = "heed Env::resize with no open transaction (see SAFETY)"
        )]
        unsafe {
            env.resize(0).map_err(|e| engine_error(&path, e))?;
            if env.info().map_size < initial {
                env.resize(initial).map_err(|e| engine_error(&path, e))?;
            }
        }
        let cleared_on_open = env
            .clear_stale_readers()
            .map_err(|e| engine_error(&path, e))?;
        let map_size = AtomicUsize::new(env.info().map_size);
        Ok(Shared {
            env,
            path,
            options,
            gate: RwLock::new(()),
            map_size,
            cleared_on_open,
            grown: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            readers_cleared: AtomicU64::new(0),
        })
    }

    fn gate_shared(&self) -> RwLockReadGuard<'_, ()> {
        // The gate guards no data, so a panic while it was held leaves nothing inconsistent.
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    fn engine_error(&self, e: heed::Error) -> Error {
        engine_error(&self.path, e)
    }

    /// Runs `attempt` under the shared gate, recovering from map-full, map-resized and
    /// readers-full by fixing the cause and running it again.
    fn with_retry<T>(&self, mut attempt: impl FnMut() -> Result<T, TxnError>) -> Result<T> {
        let mut readers_cleared = false;
        for _ in 0..MAX_ATTEMPTS {
            let (result, size_seen) = {
                let _gate = self.gate_shared();
                let size_seen = self.map_size.load(Ordering::Acquire);
                (attempt(), size_seen)
            };
            let err = match result {
                Ok(out) => return Ok(out),
                Err(TxnError::Store(e)) => return Err(e),
                Err(TxnError::Heed(e)) => e,
            };
            let recovery = match &err {
                heed::Error::Mdb(MdbError::MapFull) => Recovery::Grow,
                heed::Error::Mdb(MdbError::MapResized) => Recovery::AdoptSize,
                heed::Error::Mdb(MdbError::ReadersFull) if !readers_cleared => {
                    Recovery::ClearReaders
                }
                _ => return Err(self.engine_error(err)),
            };
            match recovery {
                Recovery::Grow => self.grow(size_seen)?,
                Recovery::AdoptSize => self.adopt_size(size_seen)?,
                Recovery::ClearReaders => {
                    readers_cleared = true;
                    let n = self
                        .env
                        .clear_stale_readers()
                        .map_err(|e| self.engine_error(e))?;
                    self.readers_cleared.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
        Err(
            self.engine_error(heed::Error::Io(std::io::Error::other(format!(
                "gave up after {MAX_ATTEMPTS} attempts to resize the map or find a reader slot"
            )))),
        )
    }

    /// Takes the resize gate exclusive and the inter-process resize lock, then runs `resize`
    /// with the map size seen by the failed attempt, unless another thread changed it since.
    fn resize_exclusively(
        &self,
        size_seen: usize,
        resize: impl FnOnce(&heed::Env<WithoutTls>) -> Result<()>,
    ) -> Result<()> {
        let _gate = self.gate.write().unwrap_or_else(|p| p.into_inner());
        if self.map_size.load(Ordering::Acquire) != size_seen {
            // Another thread of this process resized while we waited: just retry.
            return Ok(());
        }
        let lock_path = self.path.join(RESIZE_LOCK_FILE);
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io("opening", &lock_path, e))?;
        lock.lock()
            .map_err(|e| Error::io("locking", &lock_path, e))?;
        let result = resize(&self.env);
        self.map_size
            .store(self.env.info().map_size, Ordering::Release);
        // Closing `lock` releases the file lock.
        result
    }

    /// Grows the map after `MDB_MAP_FULL` at size `size_seen`: adopts a bigger size another
    /// process recorded, or doubles, up to the cap. First clears stale readers: a slot left by
    /// a dead process pins every page freed since its snapshot, and freeing it lets the retry
    /// reuse them instead of growing.
    fn grow(&self, size_seen: usize) -> Result<()> {
        self.resize_exclusively(size_seen, |env| {
            let cleared = env
                .clear_stale_readers()
                .map_err(|e| self.engine_error(e))?;
            if cleared > 0 {
                self.readers_cleared
                    .fetch_add(cleared as u64, Ordering::Relaxed);
                return Ok(());
            }
            // SAFETY (both resizes): we hold the gate exclusive, so no transaction made
            // through this environment is open in this process.
            #[expect(
                unsafe_code,
                reason = "heed Env::resize with no open transaction (see SAFETY)"
            )]
            unsafe { env.resize(0) }.map_err(|e| self.engine_error(e))?;
            if env.info().map_size > size_seen {
                self.adopted.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            let doubled = round_up((size_seen as u64).saturating_mul(2));
            let target = match self.options.cap() {
                Some(cap) if size_seen as u64 >= cap => {
                    // Put the map back as it was; the write cannot fit.
                    #[expect(
                        unsafe_code,
                        reason = "heed Env::resize with no open transaction (see SAFETY)"
                    )]
                    unsafe { env.resize(size_seen) }.map_err(|e| self.engine_error(e))?;
                    return Err(Error::Full {
                        path: self.path.clone(),
                        cap,
                    });
                }
                Some(cap) => doubled.min(cap),
                None => doubled,
            };
            let target = usize::try_from(target).map_err(|_| {
                self.engine_error(heed::Error::Io(std::io::Error::other(
                    "the map cannot grow past the address space",
                )))
            })?;
            // SAFETY: as above.
            #[expect(
                unsafe_code,
                reason = "heed Env::resize with no open transaction (see SAFETY)"
            )]
            unsafe { env.resize(target) }.map_err(|e| self.engine_error(e))?;
            self.grown.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
    }

    /// Adopts the map size recorded by another process after `MDB_MAP_RESIZED`.
    fn adopt_size(&self, size_seen: usize) -> Result<()> {
        self.resize_exclusively(size_seen, |env| {
            // SAFETY: we hold the gate exclusive, so no transaction made through this
            // environment is open in this process.
            #[expect(
                unsafe_code,
                reason = "heed Env::resize with no open transaction (see SAFETY)"
            )]
            unsafe { env.resize(0) }.map_err(|e| self.engine_error(e))?;
            self.adopted.fetch_add(1, Ordering::Relaxed);
            if env.info().map_size < size_seen {
                // SAFETY: as above.
                #[expect(
                    unsafe_code,
                    reason = "heed Env::resize with no open transaction (see SAFETY)"
                )]
                unsafe { env.resize(size_seen) }.map_err(|e| self.engine_error(e))?;
            }
            Ok(())
        })
    }
}

fn round_up(bytes: u64) -> u64 {
    bytes.div_ceil(MAP_ROUNDING).saturating_mul(MAP_ROUNDING)
}

/// Maps a heed error on the environment at `path` to this crate's error.
fn engine_error(path: &Path, e: heed::Error) -> Error {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> LmdbOptions {
        LmdbOptions::default().with_initial_map_size(256 << 10)
    }

    #[test]
    fn second_open_in_a_process_shares_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let a = LmdbEnv::open(dir.path(), &small()).unwrap();
        let b = LmdbEnv::open(dir.path().join("."), &LmdbOptions::default()).unwrap();
        assert!(a.same_env(&b));
        assert_eq!(b.options(), &small());
    }

    #[test]
    fn last_handle_dropped_closes_so_reopen_works() {
        let dir = tempfile::tempdir().unwrap();
        let env = LmdbEnv::open(dir.path(), &small()).unwrap();
        let db = env.create_database("d").unwrap();
        env.write(|w| db.put(w, b"k", b"v")).unwrap();
        let clone = env.clone();
        drop(env);
        drop(clone);
        let env = LmdbEnv::open(dir.path(), &small()).unwrap();
        let db = env.create_database("d").unwrap();
        let v = env
            .read(|r| db.get(r, b"k").map(|v| v.map(<[u8]>::to_vec)))
            .unwrap();
        assert_eq!(v.as_deref(), Some(&b"v"[..]));
    }

    #[test]
    fn map_grows_past_the_initial_size_on_map_full() {
        let dir = tempfile::tempdir().unwrap();
        let env = LmdbEnv::open(dir.path(), &small()).unwrap();
        let start = env.map_size();
        let db = env.create_database("d").unwrap();
        let value = vec![1u8; 3 << 20];
        env.write(|w| db.put(w, b"big", &value)).unwrap();
        assert!(env.map_size() > start + (3 << 20));
        assert!(env.stats().map_grown >= 1, "{:?}", env.stats());
        let len = env
            .read(|r| db.get(r, b"big").map(|v| v.map(<[u8]>::len)))
            .unwrap();
        assert_eq!(len, Some(3 << 20));
    }

    #[test]
    fn map_full_at_the_cap_is_a_full_error_and_leaves_the_env_usable() {
        let dir = tempfile::tempdir().unwrap();
        let options = small().with_max_map_size(Some(1 << 20));
        let env = LmdbEnv::open(dir.path(), &options).unwrap();
        let db = env.create_database("d").unwrap();
        let err = env
            .write(|w| db.put(w, b"too-big", &vec![0u8; 2 << 20]))
            .unwrap_err();
        match err {
            Error::Full { cap, .. } => assert_eq!(cap, 1 << 20),
            other => panic!("expected Full, got {other:?}"),
        }
        env.write(|w| db.put(w, b"small", b"fits")).unwrap();
        assert_eq!(env.map_size(), 1 << 20);
    }

    #[test]
    fn store_errors_from_the_closure_pass_through_and_abort() {
        let dir = tempfile::tempdir().unwrap();
        let env = LmdbEnv::open(dir.path(), &small()).unwrap();
        let db = env.create_database("d").unwrap();
        let err = env
            .write(|w| -> Result<(), TxnError> {
                db.put(w, b"k", b"v")?;
                Err(Error::corrupt("x", None, "refused").into())
            })
            .unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
        let v = env.read(|r| db.get(r, b"k").map(|v| v.is_some())).unwrap();
        assert!(!v, "an aborted write left data behind");
    }

    #[test]
    fn reads_and_growing_writes_from_many_threads_do_not_deadlock() {
        let dir = tempfile::tempdir().unwrap();
        let env = LmdbEnv::open(dir.path(), &small()).unwrap();
        let db = env.create_database("d").unwrap();
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let env = &env;
                s.spawn(move || {
                    for i in 0..40u32 {
                        let key = [t, i as u8];
                        let value = vec![t; 20_000 + i as usize * 1000];
                        env.write(|w| db.put(w, &key, &value)).unwrap();
                        let got = env
                            .read(|r| db.get(r, &key).map(|v| v.map(<[u8]>::to_vec)))
                            .unwrap();
                        assert_eq!(got.as_deref(), Some(&value[..]));
                    }
                });
            }
        });
        assert!(env.map_size() > 256 << 10);
    }

    #[test]
    fn a_file_that_is_not_lmdb_is_reported_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.mdb"), vec![0xAB; 64 << 10]).unwrap();
        let err = LmdbEnv::open(dir.path(), &small()).unwrap_err();
        assert!(err.is_corrupt(), "{err:?}");
    }
}
