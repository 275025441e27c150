//! The state every [`LmdbEnv`](super::LmdbEnv) handle of one environment shares, and how the
//! environment is opened.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize};

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};

use heed::{EnvFlags, EnvOpenOptions, WithTls};

use super::error::engine_error;
use super::files;
use super::meta_pages;
use super::options::{round_up, LmdbOptions, MAP_ROUNDING};
use super::parked::Parked;
use super::periodic::Periodic;
use crate::fs::{open_regular, Access};
use crate::{Durability, Error, Result};

/// One open environment: the heed handle, its gate and counters.
pub(super) struct Shared {
    /// Every thread's parked read transaction (`parked`). Declared before `env`: fields drop
    /// in declaration order, and every parked transaction must be aborted before the
    /// environment closes.
    pub(super) parked: Parked,
    pub(super) env: heed::Env<WithTls>,
    /// The canonical directory path.
    pub(super) path: PathBuf,
    pub(super) options: LmdbOptions,
    /// The resize gate: held shared by every transaction made through this handle and by every
    /// other read through the map (`mdb_env_info`), exclusive by a resize. A `ShardedLock`, so
    /// a reader locks only its own thread's cache-padded stripe (a shared `RwLock` makes every
    /// read write one counter, whose cache line then bounces between the cores of concurrent
    /// readers), and the exclusive side locks every stripe, so it still excludes every reader.
    gate: ShardedLock<()>,
    /// The current map size of this process's mapping; changes only under the exclusive gate.
    pub(super) map_size: AtomicUsize,
    /// How many stale reader slots the open cleared.
    pub(super) cleared_on_open: usize,
    /// The commit record file (see `files`), written after each commit with
    /// `Durability::Flush`; `None` with `Durability::None`, where a power loss may keep the
    /// record and lose the commit it names.
    pub(super) commit_record: Option<std::fs::File>,
    /// `data.mdb`, opened for reading the meta pages into the commit record (with the record).
    pub(super) data_file: Option<std::fs::File>,
    /// The durable points of a `Periodic` environment.
    pub(super) periodic: Option<Periodic>,
    /// Whether a non-`Periodic` environment has removed any durable-point record before its
    /// first write (see `periodic`).
    pub(super) durable_record_gone: std::sync::atomic::AtomicBool,
    /// Counters behind [`super::LmdbEnv::stats`].
    pub(super) grown: AtomicU64,
    pub(super) adopted: AtomicU64,
    pub(super) readers_cleared: AtomicU64,
}

impl Shared {
    pub(super) fn open(path: PathBuf, options: LmdbOptions) -> Result<Shared> {
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
        // Periodic commits are not synced either: durable points make them durable (see
        // `periodic`).
        if options.durability == Durability::None || options.periodic() {
            flags |= EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC;
        }
        let mut builder = EnvOpenOptions::new().read_txn_with_tls();
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
        // `Parked::new` reads in a transaction: another process may have grown the map since
        // the resize above, which LMDB reports as MAP_RESIZED; adopt the new size and retry.
        let mut resized = 0;
        let parked = loop {
            match Parked::new(&env) {
                Err(heed::Error::Mdb(heed::MdbError::MapResized)) if resized < 8 => {
                    resized += 1;
                    // SAFETY: as above: the environment is not shared yet, and the failed
                    // transaction was ended by LMDB, so none is open.
                    #[expect(
                        unsafe_code,
                        reason = "heed Env::resize with no open transaction (see SAFETY)"
                    )]
                    unsafe {
                        env.resize(0).map_err(|e| engine_error(&path, e))?;
                    }
                }
                other => break other.map_err(|e| engine_error(&path, e))?,
            }
        };
        let periodic = match options.periodic() {
            true => Some(Periodic::open(&path)?),
            false => None,
        };
        // Periodic keeps no per-commit record: a power loss may keep the record and lose the
        // commits it names (its durable points are its record).
        let commit_record = match options.durability {
            _ if periodic.is_some() => None,
            Durability::None => None,
            _ => {
                let record = path.join(files::COMMIT_FILE);
                open_regular(&record, Access::ReadWrite)?
            }
        };
        let data_file = match commit_record {
            Some(_) => open_regular(&path.join(files::DATA_FILE), Access::Read)?,
            None => None,
        };
        Ok(Shared {
            parked,
            durable_record_gone: false.into(),
            periodic,
            data_file,
            env,
            path,
            options,
            gate: ShardedLock::new(()),
            map_size,
            cleared_on_open,
            commit_record,
            grown: AtomicU64::new(0),
            adopted: AtomicU64::new(0),
            readers_cleared: AtomicU64::new(0),
        })
    }

    pub(super) fn gate_shared(&self) -> ShardedLockReadGuard<'_, ()> {
        // The gate guards no data, so a panic while it was held leaves nothing inconsistent.
        self.gate.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The gate exclusive, for a resize: returns once no thread of this process holds it shared
    /// (every stripe is locked), so no transaction made through this handle is open and nothing
    /// reads through the map.
    pub(super) fn gate_exclusive(&self) -> ShardedLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the gate could be taken exclusive right now (without waiting), for the tests
    /// of its exclusion.
    #[cfg(test)]
    pub(super) fn gate_is_free(&self) -> bool {
        self.gate.try_write().is_ok()
    }

    /// The newest commit of the environment, read under the resize gate: `mdb_env_info`
    /// reads the meta pages through the map, which a resize in another thread unmaps. Not for
    /// use inside a transaction closure (which already holds the gate: take it once only).
    pub(super) fn newest_txn(&self) -> u64 {
        let _gate = self.gate_shared();
        self.env.info().last_txn_id as u64
    }

    pub(super) fn engine_error(&self, e: heed::Error) -> Error {
        engine_error(&self.path, e)
    }

    /// Records the newest committed transaction after a commit; call it under the resize gate
    /// (inside the transaction closure), since it reads the meta pages through the map. Best effort: the commit has
    /// happened whatever this does, and a record that is missing or behind only weakens the
    /// rollback check at the next open (it never refuses a good store).
    ///
    /// The record only ever grows (read and rewritten under a lock on the file), so a process
    /// that writes late never lowers what another one recorded.
    pub(super) fn record_commit(&self) {
        if let Some(periodic) = &self.periodic {
            periodic
                .dirty
                .store(true, std::sync::atomic::Ordering::Release);
        }
        let Some(file) = &self.commit_record else {
            return;
        };
        let txn = self.env.info().last_txn_id as u64;
        if file.lock().is_err() {
            return;
        }
        // The meta pages as they are now (another process may have committed since ours: the
        // record names whatever the pages say is newest, with their fingerprints).
        let (txn, fingerprints) = match self
            .data_file
            .as_ref()
            .and_then(|f| meta_pages::fingerprints(f).ok().flatten())
        {
            Some((newest, fingerprints)) if newest >= txn => (newest, Some(fingerprints)),
            _ => (txn, None),
        };
        let recorded = files::read_commit_from(file)
            .ok()
            .flatten()
            .map_or(0, |r| r.txn);
        if txn > recorded {
            let _ = write_at(file, &files::commit_record(txn, fingerprints));
        }
        let _ = file.unlock();
    }
}

#[cfg(unix)]
fn write_at(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, 0)
}

#[cfg(not(unix))]
fn write_at(file: &std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(bytes)
}

impl Drop for Shared {
    /// A `Periodic` environment makes a last durable point as it closes, so closing loses
    /// nothing to a later power loss.
    fn drop(&mut self) {
        let dirty = self
            .periodic
            .as_ref()
            .is_some_and(|p| p.dirty.load(std::sync::atomic::Ordering::Acquire));
        if dirty {
            let _ = self.durable_point();
        }
    }
}
