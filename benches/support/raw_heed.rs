//! The raw heed baseline the LMDB benchmarks compare against: `benches/lmdb.rs` (criterion and
//! its multi-process driver) and `benches/peers.rs` (the peer benchmark) include this file with
//! `#[path]`, so both open the environment the same way: read transactions with TLS reader
//! slots (as `LmdbStore`), a 1 GiB map so it never grows during a run, 4 named databases at most, and
//! `MDB_NOSYNC | MDB_NOMETASYNC`, so an fsync does not hide the per-operation cost being
//! compared. [`open_raw_with`] varies the TLS mode and `max_dbs`, for the read-transaction
//! figures of `benches/lmdb.rs` (`lmdb/read-threads`).

use cacher_store::lmdb::heed::types::Bytes;
use cacher_store::lmdb::heed::{self, CommitOrAbort, Database, EnvFlags, EnvOpenOptions};

/// The map size of the raw environment (the stores under comparison use the same).
const RAW_MAP: usize = 1 << 30;

/// An environment and its one database, opened by [`open_raw`] (read transactions with TLS
/// reader slots) or [`open_raw_with`].
pub struct Raw<T = heed::WithTls> {
    pub env: heed::Env<T>,
    pub db: Database<'static, Bytes, Bytes>,
}

/// Opens (creating) the raw environment in `dir`, creating the directory if needed.
pub fn open_raw(dir: &std::path::Path) -> Raw {
    open_raw_with(dir, EnvOpenOptions::new().read_txn_with_tls(), 4)
}

/// [`open_raw`] with the TLS mode of `options` (heed's `WithTls` or `WithoutTls`) and room for
/// `max_dbs` named databases.
#[expect(unsafe_code, reason = "raw heed baseline: flags and open (see SAFETY)")]
pub fn open_raw_with<T: heed::TlsUsage>(
    dir: &std::path::Path,
    mut options: EnvOpenOptions<T>,
    max_dbs: u32,
) -> Raw<T> {
    std::fs::create_dir_all(dir).expect("raw heed dir");
    options.map_size(RAW_MAP).max_dbs(max_dbs).max_readers(1024);
    // SAFETY: the sync flags only weaken durability, which these benchmarks do not test.
    unsafe {
        options.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC);
    }
    // SAFETY: the directory holds only this environment, and each process opens it once.
    let env = unsafe { options.open(dir) }.expect("open raw heed");
    let wtxn = env.write_txn().expect("wtxn");
    let db = env
        .create_databases_and_commit(wtxn, |opener, wtxn| {
            opener
                .create_database::<Bytes, Bytes>(wtxn, Some("raw"))
                .map(CommitOrAbort::<_, ()>::Commit)
        })
        .expect("create db")
        .commit()
        .expect("committed");
    Raw { env, db }
}

/// Raw heed's environment read the way `LmdbStore`'s hot reads are (issue 15): one read
/// transaction begun once, then renewed (`mdb_txn_renew`) before each get and reset
/// (`mdb_txn_reset`) after it, through LMDB's C API, since heed 0.23 has neither call. The
/// B-tree limit of a read that allocates no transaction. One thread only (the bench's).
#[allow(
    dead_code,
    reason = "benches/lmdb.rs uses it; benches/peers.rs includes this file too"
)]
pub struct RawParked {
    txn: std::ptr::NonNull<lmdb_master_sys::MDB_txn>,
    dbi: lmdb_master_sys::MDB_dbi,
}

/// The `MDB_env` address heed hands to an `OnCommit` value (its `CommitToken`, one
/// `NonZero<usize>`; `LmdbStore` takes it the same way, see `backends/src/lmdb/parked.rs`).
struct EnvAddress;

impl heed::OnCommit for EnvAddress {
    type Committed = usize;

    #[expect(
        unsafe_code,
        reason = "reads heed's CommitToken as its one field (see SAFETY)"
    )]
    fn on_commit(self, token: &heed::CommitToken) -> usize {
        const _: () = assert!(size_of::<heed::CommitToken>() == size_of::<usize>());
        // SAFETY: `CommitToken` is one `NonZero<usize>` (asserted above): its bytes are it.
        unsafe { std::mem::transmute_copy::<heed::CommitToken, usize>(token) }
    }
}

#[allow(
    dead_code,
    reason = "benches/lmdb.rs uses it; benches/peers.rs includes this file too"
)]
impl RawParked {
    /// A parked (reset) read transaction on `raw`'s environment and the dbi of its database.
    #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
    pub fn new(raw: &Raw) -> RawParked {
        use lmdb_master_sys as ffi;
        let rtxn = raw.env.read_txn().expect("rtxn");
        let addr = raw
            .env
            .open_databases_and_commit(rtxn, |_, _| {
                Ok::<_, heed::Error>(CommitOrAbort::<_, ()>::Commit(EnvAddress))
            })
            .expect("env address")
            .commit()
            .expect("committed");
        let env = std::ptr::with_exposed_provenance_mut::<ffi::MDB_env>(addr);
        let mut txn = std::ptr::null_mut();
        let mut dbi = 0;
        // SAFETY: `env` is `raw`'s open environment; the database "raw" was opened and its
        // handle exported by `open_raw`, so `mdb_dbi_open` finds it by name; the transaction
        // is reset at once, so this thread's reader slot is free again.
        unsafe {
            assert_eq!(
                ffi::mdb_txn_begin(env, std::ptr::null_mut(), ffi::MDB_RDONLY, &mut txn),
                0
            );
            assert_eq!(ffi::mdb_dbi_open(txn, c"raw".as_ptr(), 0, &mut dbi), 0);
            ffi::mdb_txn_reset(txn);
        }
        RawParked {
            txn: std::ptr::NonNull::new(txn).expect("txn"),
            dbi,
        }
    }

    /// Renews the transaction, gets `key` (zero copy), lends the value to `f`, resets.
    #[inline(always)]
    #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
    pub fn get<T>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> T) -> T {
        use lmdb_master_sys as ffi;
        let mut k = ffi::MDB_val {
            mv_size: key.len(),
            mv_data: key.as_ptr() as *mut _,
        };
        let mut v = ffi::MDB_val {
            mv_size: 0,
            mv_data: std::ptr::null_mut(),
        };
        // SAFETY: the transaction is reset and only this thread uses it (`RawParked` is not
        // `Send`); the value's bytes are valid until the reset, after `f` returns.
        unsafe {
            assert_eq!(ffi::mdb_txn_renew(self.txn.as_ptr()), 0, "renew");
            let out = match ffi::mdb_get(self.txn.as_ptr(), self.dbi, &mut k, &mut v) {
                0 => f(Some(std::slice::from_raw_parts(
                    v.mv_data as *const u8,
                    v.mv_size,
                ))),
                ffi::MDB_NOTFOUND => f(None),
                rc => panic!("mdb_get: {rc}"),
            };
            ffi::mdb_txn_reset(self.txn.as_ptr());
            out
        }
    }
}

impl Drop for RawParked {
    #[expect(unsafe_code, reason = "LMDB's C API (see SAFETY)")]
    fn drop(&mut self) {
        // SAFETY: a reset transaction of an environment still open (the bench drops this
        // before its `Raw`).
        unsafe { lmdb_master_sys::mdb_txn_abort(self.txn.as_ptr()) }
    }
}
