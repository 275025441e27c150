//! Recovery from map-full, map-resized and readers-full: the shared gate, the resize lock and
//! the growth policy.

use std::sync::atomic::Ordering;

use heed::{MdbError, WithTls};

use super::error::TxnError;
use super::files::RESIZE_LOCK_FILE;
use super::options::round_up;
use super::shared::Shared;
use crate::fs::{create_new, open_regular, Access};
use crate::{Error, Result};

/// After this many retries of one transaction (each after a growth, an adopted resize or a
/// reader cleanup) the error is reported instead; only a pathological race gets near it.
const MAX_ATTEMPTS: u32 = 64;

/// What to do about a failed attempt.
enum Recovery {
    Grow,
    AdoptSize,
    ClearReaders,
}

impl Shared {
    /// Runs `attempt` under the shared gate, recovering from map-full, map-resized and
    /// readers-full by fixing the cause and running it again.
    pub(super) fn with_retry<T>(
        &self,
        mut attempt: impl FnMut() -> Result<T, TxnError>,
    ) -> Result<T> {
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

    /// Takes the resize gate exclusive (waiting for every thread's shared hold to end) and the
    /// inter-process resize lock, then runs `resize`
    /// with the map size seen by the failed attempt, unless another thread changed it since.
    fn resize_exclusively(
        &self,
        size_seen: usize,
        resize: impl FnOnce(&heed::Env<WithTls>) -> Result<()>,
    ) -> Result<()> {
        let _gate = self.gate_exclusive();
        if self.map_size.load(Ordering::Acquire) != size_seen {
            // Another thread of this process resized while we waited: just retry.
            return Ok(());
        }
        let lock_path = self.path.join(RESIZE_LOCK_FILE);
        // Made by the open (see `files`); recreated the same way if someone removed it.
        let lock = match open_regular(&lock_path, Access::ReadWrite)? {
            Some(lock) => lock,
            None => create_new(&lock_path, self.options.file_mode)?,
        };
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
            // SAFETY (both resizes): we hold the gate exclusive, which locks every stripe of
            // the `ShardedLock`, whichever stripe a reader's thread maps to: so no
            // transaction made through this environment is open in this process, and nothing
            // reads through the map (every read of it, `mdb_env_info` included, takes the gate
            // shared). The one exception is a `Periodic` pin, which only holds a reader slot
            // and never reads.
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
            // SAFETY: we hold the gate exclusive (every stripe), so nothing in this process
            // reads through the map (as in `grow`, the `Periodic` pin only holds a reader slot).
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
