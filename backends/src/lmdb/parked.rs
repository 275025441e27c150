//! Parked read transactions: each thread keeps, per environment, one reset LMDB read
//! transaction, and the hot reads renew it instead of allocating a new one (issue 15).
//!
//! A read through heed begins a transaction (`mdb_txn_begin`: a `calloc` of the `MDB_txn`, a
//! few hundred instructions depending on the heap) and aborts it (`mdb_txn_abort`: a `free`).
//! LMDB's answer is `mdb_txn_reset` + `mdb_txn_renew`: a reset read-only transaction keeps its
//! memory, and renewing it takes a fresh snapshot without allocating. heed 0.23 offers neither
//! (heed issue #301) nor a way to build a `RoTxn` from a raw handle, so the hot reads of
//! `LmdbStore` (`get`, `with_value`, `with_value_unchecked`, `meta`/`contains`, `get_many`)
//! call LMDB directly through [`Renewed::get`]; everything else stays on heed's `RoTxn`.
//!
//! Where the LMDB handles come from: heed keeps the `MDB_env` pointer private, but hands its
//! address to every [`OnCommit`] value as the [`CommitToken`] of a database-opening
//! transaction ([`env_address`]); a database's `MDB_dbi` is found by `mdb_dbi_open` of the same
//! name inside that hook, while heed still holds its database-opening lock ([`Parked::dbi`]).
//!
//! What makes it sound, from the vendored LMDB 0.9.36 (`vendor/lmdb-master-sys/lmdb/
//! libraries/liblmdb/mdb.c`); the environment is always opened with thread-local reader slots
//! (`Shared::open`, no `MDB_NOTLS`):
//! - **A parked transaction owns no reader slot and no thread.** `mdb_txn_reset` is
//!   `mdb_txn_end(txn, MDB_END_RESET)`, which for a read-only transaction sets the slot's
//!   `mr_txnid` to -1 and, without `MDB_NOTLS`, `txn->mt_u.reader = NULL` ("txn does not own
//!   reader"); the slot belongs to the *thread* (`pthread_setspecific(env->me_txkey, r)` in
//!   `mdb_txn_renew0`, released by `mdb_env_reader_dest` when the thread exits). `mdb_txn_renew0`
//!   takes the slot of the thread that calls it (`pthread_getspecific`), claiming one if the
//!   thread has none. So a parked transaction may be renewed by any thread, one at a time: by
//!   the thread it was parked on, or by a later thread that the `thread_local` crate gives
//!   the same id after the first one exited (its values are kept until the `ThreadLocal` is
//!   dropped, and handed only to the thread holding the id), and aborted from any thread.
//! - **Every parked transaction is aborted before the environment closes.** [`Parked`] lives in
//!   `Shared`, declared before the heed `Env`, so it is dropped first, by whichever thread
//!   drops the last handle; its `Drop` aborts every thread's parked transaction (all of them
//!   parked: a renewed one borrows the `Shared` that is being dropped, so none is). heed's
//!   `Env` then closes the environment (`mdb_env_close`), which frees `me_dbxs`, which a
//!   transaction points to: aborting after it would be a use after free.
//! - **Resizes.** `mdb_env_set_mapsize` refuses only while a *write* transaction is active
//!   (`env->me_txn`); a reset transaction holds no pointer into the map (its `mt_dbs` are
//!   copies in its own memory, a lookup uses a cursor on the stack and reaches pages through
//!   `env->me_map` at each call), and `mdb_txn_renew0` reads the meta page through the map as
//!   it is then. Every renew and reset happens under the resize gate held shared
//!   (`Shared::with_retry`), so this process never resizes while a renewed transaction reads.
//!   When another process grew the map, `mdb_txn_renew0` fails with `MDB_MAP_RESIZED`
//!   (`env->me_maxpg < txn->mt_next_pgno`) after ending the transaction: the error goes to
//!   `with_retry`, which adopts the new size and runs the read again.
//! - **A failed renew drops the transaction.** After a failed `mdb_txn_renew` the transaction
//!   is ended (or, for `MDB_BAD_RSLOT`, untouched); it is aborted, never parked again, and the
//!   retry begins a new one.
//! - **Nesting and writes behave as before.** A read inside a renewed read on the same thread
//!   finds the thread's slot empty and begins a transaction with `mdb_txn_begin`, which fails
//!   with `MDB_BAD_RSLOT` (the thread's slot is in use: `r->mr_txnid != -1`), as a nested heed
//!   read does. A write transaction takes no reader slot (it uses `env->me_txn0` and the writer
//!   mutex), so a parked transaction does not change it. The `Periodic` holder threads keep
//!   their pins in heed transactions on threads of their own, and clearing stale readers
//!   (`mdb_reader_check`) frees slots of dead processes only: a parked transaction holds none.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};
use std::num::NonZero;
use std::ptr::{self, NonNull};

use heed::types::Bytes;
use heed::{CommitOrAbort, CommitToken, MdbError, OnCommit, WithTls};
use lmdb_master_sys as ffi;
use thread_local::ThreadLocal;

// `env_address` reads heed's `CommitToken` as the one `NonZero<usize>` it holds (heed 0.23:
// `CommitToken { env_ident: NonZero<usize> }`, set to `env.env_mut_ptr().addr()`). A struct
// the size of its only field has that field at offset 0 and no padding, so the read is the
// field. A heed that changes the token's size fails to build here; one that changes its
// meaning fails `tests::parked::the_address_heed_hands_out_is_the_lmdb_environment`.
const _: () = assert!(std::mem::size_of::<CommitToken>() == std::mem::size_of::<usize>());

/// The address of the environment's `MDB_env`, as heed's commit token names it.
struct EnvAddress;

impl OnCommit for EnvAddress {
    type Committed = NonZero<usize>;

    fn on_commit(self, token: &CommitToken) -> NonZero<usize> {
        // SAFETY: `CommitToken` is exactly one `NonZero<usize>` (the assertion above), so its
        // bytes are that field's, all initialised and non-zero.
        #[expect(
            unsafe_code,
            reason = "reads heed's CommitToken as its one field (see SAFETY)"
        )]
        unsafe {
            std::mem::transmute_copy::<CommitToken, NonZero<usize>>(token)
        }
    }
}

/// The `MDB_env` of `env`. Valid as long as `env` (heed closes it when its last clone drops).
fn env_address(env: &heed::Env<WithTls>) -> Result<NonNull<ffi::MDB_env>, heed::Error> {
    let rtxn = env.read_txn()?;
    let addr = env.open_databases_and_commit(rtxn, |_, _| {
        Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(EnvAddress))
    })?;
    let CommitOrAbort::Commit(addr) = addr else {
        unreachable!("the closure always commits")
    };
    // An address heed took from the `MDB_env` pointer LMDB allocated (`mdb_env_create`) in C;
    // heed hands that pointer to C on every call, which exposes it, and this one is likewise
    // only ever handed back to LMDB's C functions, never dereferenced in Rust.
    let ptr = ptr::with_exposed_provenance_mut::<ffi::MDB_env>(addr.get());
    Ok(NonNull::new(ptr).expect("a NonZero address"))
}

/// A database's `MDB_dbi`, for [`Renewed::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dbi(ffi::MDB_dbi);

/// Finds the dbi of the named database `name`, which must exist; opened in heed's
/// database-opening transaction and looked up again by name in LMDB under heed's lock.
struct DbiByName<'a> {
    env: NonNull<ffi::MDB_env>,
    name: &'a CString,
    found: bool,
}

impl OnCommit for DbiByName<'_> {
    type Committed = Result<Option<Dbi>, heed::Error>;

    fn on_commit(self, _token: &CommitToken) -> Self::Committed {
        if !self.found {
            return Ok(None);
        }
        let mut txn: *mut ffi::MDB_txn = ptr::null_mut();
        let mut dbi: ffi::MDB_dbi = 0;
        // SAFETY: `env` is the open environment (the caller borrows it). heed's read
        // transaction has committed, so this thread's reader slot is free for this one; heed
        // still holds its database-opening lock (`open_databases_and_commit` calls `on_commit`
        // before releasing it), so no other thread opens a database meanwhile. The committed
        // transaction exported `name`'s handle to the environment (`mdb_dbis_update(txn, 1)`),
        // so `mdb_dbi_open` finds it by name ("Is the DB already open?") and returns that dbi
        // without opening anything new; the abort then closes nothing (no `DB_NEW` handle).
        #[expect(
            unsafe_code,
            reason = "LMDB's C API through lmdb-master-sys (see SAFETY)"
        )]
        unsafe {
            check(ffi::mdb_txn_begin(
                self.env.as_ptr(),
                ptr::null_mut(),
                ffi::MDB_RDONLY,
                &mut txn,
            ))?;
            let rc = ffi::mdb_dbi_open(txn, self.name.as_ptr(), 0, &mut dbi);
            ffi::mdb_txn_abort(txn);
            check(rc)?;
        }
        Ok(Some(Dbi(dbi)))
    }
}

/// LMDB's return code as heed's error.
fn check(rc: c_int) -> Result<(), heed::Error> {
    match rc {
        0 => Ok(()),
        rc => Err(MdbError::from_err_code(rc).into()),
    }
}

/// What this thread's [`STATE`] says of `ThreadLocal`: not asked yet.
const SLOTS_UNKNOWN: u8 = 0;
/// The [`SENTINEL`] lives, so `thread_local`'s guard does too: slots may be asked for.
const SLOTS_SAFE: u8 = 1;
/// The sentinel was destroyed: this thread's thread-locals are being destroyed.
const SLOTS_GONE: u8 = 2;

thread_local! {
    /// Whether this thread may ask a `ThreadLocal` for its slot ([`Parked::this_threads_slot`]).
    /// Const and without a destructor, so it can be read at any time, during thread exit too.
    static STATE: Cell<u8> = const { Cell::new(SLOTS_UNKNOWN) };
    /// Touched after the thread's first slot: destroyed before `thread_local`'s guard.
    static SENTINEL: Sentinel = const { Sentinel };
}

/// Marks [`STATE`] gone when this thread's thread-locals are destroyed.
struct Sentinel;

impl Drop for Sentinel {
    fn drop(&mut self) {
        STATE.set(SLOTS_GONE);
    }
}

/// One thread's parked transaction of one environment (null when none is parked).
#[derive(Default)]
struct Slot(Cell<*mut ffi::MDB_txn>);

// SAFETY: `ThreadLocal` needs `Send` because it drops (and `iter_mut` lends) every thread's
// value on the thread that drops it. A parked transaction is reset, which in an environment
// with thread-local reader slots leaves it owning no slot and tied to no thread (module docs),
// so aborting it on another thread is sound. That is what the vendored `mdb.c` does
// (`mdb_txn_end`, `mdb_txn_renew0`), not a promise of LMDB's documentation, which lets a read
// transaction change threads only with `MDB_NOTLS`: the workspace builds that vendored copy
// (`[patch]` in the root Cargo.toml), and a new LMDB needs this argument checked again.
#[expect(
    unsafe_code,
    reason = "a reset LMDB read transaction may move between threads (see SAFETY)"
)]
unsafe impl Send for Slot {}

/// Every thread's parked read transaction of one environment. Declared in `Shared` before the
/// heed `Env`, so it is dropped (aborting them all) before the environment closes.
pub(super) struct Parked {
    env: NonNull<ffi::MDB_env>,
    slots: ThreadLocal<Slot>,
    /// Transactions begun and not yet aborted (for the tests of leaks).
    #[cfg(test)]
    live: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Transactions begun (for the tests that a read renews rather than begins).
    #[cfg(test)]
    begun: std::sync::atomic::AtomicUsize,
}

// SAFETY: `env` is only handed to `mdb_txn_begin`, which LMDB allows from any thread (heed's
// `Env` is `Send + Sync` for the same reason); `slots` is `ThreadLocal<Slot>`, `Sync` since
// `Slot` is `Send`, and gives each thread its own slot only.
#[expect(
    unsafe_code,
    reason = "the MDB_env pointer may be used from any thread (see SAFETY)"
)]
unsafe impl Send for Parked {}
// SAFETY: as for `Send`.
#[expect(
    unsafe_code,
    reason = "the MDB_env pointer may be used from any thread (see SAFETY)"
)]
unsafe impl Sync for Parked {}

impl Parked {
    /// No transaction parked yet, for the environment `env`, which must outlive the result
    /// (`Shared` drops it first).
    pub(super) fn new(env: &heed::Env<WithTls>) -> Result<Parked, heed::Error> {
        Ok(Parked {
            env: env_address(env)?,
            slots: ThreadLocal::new(),
            #[cfg(test)]
            live: Default::default(),
            #[cfg(test)]
            begun: Default::default(),
        })
    }

    /// The dbi of the named database `name` of `env` (this `Parked`'s environment), if it
    /// exists. Call it under the resize gate, like any transaction.
    pub(super) fn dbi(
        &self,
        env: &heed::Env<WithTls>,
        name: &str,
    ) -> Result<Option<Dbi>, heed::Error> {
        let c_name = CString::new(name).map_err(|e| heed::Error::Io(std::io::Error::other(e)))?;
        let rtxn = env.read_txn()?;
        let found = env.open_databases_and_commit(rtxn, |opener, rtxn| {
            let db = opener.open_database::<Bytes, Bytes>(rtxn, Some(name))?;
            Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(DbiByName {
                env: self.env,
                name: &c_name,
                found: db.is_some(),
            }))
        })?;
        match found {
            CommitOrAbort::Commit(found) => found,
            CommitOrAbort::Abort(()) => unreachable!("the closure always commits"),
        }
    }

    /// This thread's parked transaction renewed on a fresh snapshot, or a new one when none
    /// is parked. Call it under the resize gate held shared; the transaction is reset and
    /// parked again when the result drops (still under the gate).
    #[inline]
    pub(super) fn renew(&self) -> Result<Renewed<'_>, heed::Error> {
        let Some(slot) = self.this_threads_slot() else {
            return self.begin(None);
        };
        let parked = slot.0.replace(ptr::null_mut());
        match NonNull::new(parked) {
            Some(txn) => {
                // SAFETY: `txn` is a reset read-only transaction of this environment (only
                // `Renewed::drop` parks, after `mdb_txn_reset`), taken out of this thread's
                // slot, so no one else holds it; the environment is open (`self` lives in its
                // `Shared`, which drops `Parked` before closing it).
                #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
                let rc = unsafe { ffi::mdb_txn_renew(txn.as_ptr()) };
                if rc != 0 {
                    // SAFETY: a transaction whose renew failed is ended or untouched (module
                    // docs); aborting frees it, and it is dropped here, never parked again.
                    #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
                    unsafe {
                        self.abort(txn.as_ptr())
                    };
                    check(rc)?;
                }
                Ok(Renewed {
                    parked: self,
                    slot: Some(slot),
                    txn,
                })
            }
            None => self.begin(Some(slot)),
        }
    }

    /// This thread's slot, or `None` once the thread's thread-locals are being destroyed.
    ///
    /// `ThreadLocal` finds a thread's slot by an id that `thread_local`'s own thread-local
    /// guard holds; once that guard is destroyed (at thread exit), asking for a slot panics,
    /// and a panic in a thread-local destructor aborts the process. A store read from the
    /// `Drop` of a user's thread-local made before this thread's first read runs after the
    /// guard is gone. So the first slot a thread takes is followed by touching [`SENTINEL`],
    /// whose destructor is thereby registered after the guard's and runs before it: while
    /// the sentinel lives, so does the guard; once it is gone, reads go without parking
    /// (begin, read, abort, as before parked transactions). What is left: a thread whose
    /// *first* read of any environment comes from such a destructor, on a thread where
    /// another crate's `ThreadLocal` already made and lost the guard (thread ids are taken by
    /// `tracing-subscriber`, for instance): that read still panics.
    #[inline]
    fn this_threads_slot(&self) -> Option<&Slot> {
        match STATE.get() {
            SLOTS_SAFE => Some(self.slots.get_or_default()),
            SLOTS_GONE => None,
            _ => {
                let slot = self.slots.get_or_default();
                if SENTINEL.try_with(|_| ()).is_ok() {
                    STATE.set(SLOTS_SAFE);
                }
                Some(slot)
            }
        }
    }

    /// A new read transaction for this thread (its first read, or after a failed renew).
    #[cold]
    fn begin<'p>(&'p self, slot: Option<&'p Slot>) -> Result<Renewed<'p>, heed::Error> {
        let mut txn: *mut ffi::MDB_txn = ptr::null_mut();
        // SAFETY: the environment is open (see `renew`); `mdb_txn_begin` either fails having
        // freed what it allocated, or returns a live read-only transaction in `txn`.
        #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
        check(unsafe {
            ffi::mdb_txn_begin(
                self.env.as_ptr(),
                ptr::null_mut(),
                ffi::MDB_RDONLY,
                &mut txn,
            )
        })?;
        let txn = NonNull::new(txn).expect("mdb_txn_begin returned a transaction");
        #[cfg(test)]
        self.live.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        #[cfg(test)]
        self.begun
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Renewed {
            parked: self,
            slot,
            txn,
        })
    }

    /// Aborts (and frees) `txn`.
    ///
    /// # Safety
    /// `txn` is a read-only transaction of this environment that no one else holds, and the
    /// environment is open.
    #[expect(unsafe_code, reason = "LMDB's C API (see the safety section)")]
    unsafe fn abort(&self, txn: *mut ffi::MDB_txn) {
        #[cfg(test)]
        self.live.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's promise.
        unsafe { ffi::mdb_txn_abort(txn) }
    }

    /// The count of this environment's transactions begun and not yet aborted, which outlives
    /// the environment (for the tests of leaks).
    #[cfg(test)]
    pub(super) fn live(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        std::sync::Arc::clone(&self.live)
    }

    /// How many transactions were begun so far (for tests: a renew begins none).
    #[cfg(test)]
    pub(super) fn begun(&self) -> usize {
        self.begun.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The `MDB_env` (for the test that checks where it came from).
    #[cfg(test)]
    pub(super) fn env_ptr(&self) -> *mut ffi::MDB_env {
        self.env.as_ptr()
    }

    /// This thread's parked transaction, if any (for tests: which one the next read renews).
    #[cfg(test)]
    pub(super) fn parked_here(&self) -> Option<usize> {
        let txn = self.slots.get()?.0.get();
        (!txn.is_null()).then_some(txn as usize)
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        let parked: Vec<*mut ffi::MDB_txn> = self
            .slots
            .iter_mut()
            .map(|slot| std::mem::replace(slot.0.get_mut(), ptr::null_mut()))
            .filter(|txn| !txn.is_null())
            .collect();
        for txn in parked {
            // SAFETY: a parked (reset) transaction of this environment, which is still open
            // (`Shared` drops `Parked` before the heed `Env`); no thread is reading (a read
            // borrows the `Shared` being dropped), and a reset transaction may be aborted from
            // any thread (module docs).
            #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
            unsafe {
                self.abort(txn)
            };
        }
    }
}

/// A renewed read transaction, lent to a hot read's closure; reset and parked in this thread's
/// slot when it drops (also when the closure panics).
pub(crate) struct Renewed<'p> {
    parked: &'p Parked,
    /// Where it is parked again; `None` during thread exit, when it is aborted instead.
    slot: Option<&'p Slot>,
    txn: NonNull<ffi::MDB_txn>,
}

impl Renewed<'_> {
    /// The value of `key` in database `dbi` (`mdb_get`), lent from the map for as long as
    /// the transaction is borrowed; `None` when the key has no entry.
    #[inline]
    pub(crate) fn get(&self, dbi: Dbi, key: &[u8]) -> Result<Option<&[u8]>, heed::Error> {
        let mut k = ffi::MDB_val {
            mv_size: key.len(),
            mv_data: key.as_ptr() as *mut c_void,
        };
        let mut v = ffi::MDB_val {
            mv_size: 0,
            mv_data: ptr::null_mut(),
        };
        // SAFETY: the transaction is live (renewed, not yet reset); `dbi` was found by name in
        // this environment (`Parked::dbi`) and LMDB checks it against the transaction
        // (`TXN_DBI_EXIST`, `EINVAL` otherwise); `mdb_get` only reads the key.
        #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
        let rc = unsafe { ffi::mdb_get(self.txn.as_ptr(), dbi.0, &mut k, &mut v) };
        match rc {
            0 if v.mv_size == 0 => Ok(Some(&[])),
            // SAFETY: on success `v` names the value's bytes in the map, valid until the
            // transaction ends (LMDB's contract for `mdb_get`): the slice borrows `self`, and
            // the transaction is reset only when `self` drops, under the resize gate.
            #[expect(unsafe_code, reason = "a value lent from LMDB's map (see SAFETY)")]
            0 => Ok(Some(unsafe {
                std::slice::from_raw_parts(v.mv_data as *const u8, v.mv_size)
            })),
            ffi::MDB_NOTFOUND => Ok(None),
            rc => Err(MdbError::from_err_code(rc).into()),
        }
    }
}

impl Drop for Renewed<'_> {
    #[inline]
    fn drop(&mut self) {
        let Some(slot) = self.slot else {
            // SAFETY: the transaction is live and this guard its only holder.
            #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
            unsafe {
                self.parked.abort(self.txn.as_ptr())
            };
            return;
        };
        // SAFETY: the transaction is live and this guard its only holder; resetting it ends
        // its snapshot and frees its thread's reader slot for the next read (module docs).
        #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
        unsafe {
            ffi::mdb_txn_reset(self.txn.as_ptr())
        };
        let displaced = slot.0.replace(self.txn.as_ptr());
        if !displaced.is_null() {
            // Another transaction was parked meanwhile (cannot happen with thread-local
            // slots: a nested begin fails), so keep one: abort the other.
            // SAFETY: a parked (reset) transaction taken out of the slot; no one else holds it.
            #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
            unsafe {
                self.parked.abort(displaced)
            };
        }
    }
}
