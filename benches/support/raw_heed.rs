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
