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
        heed::Error::Mdb(MdbError::VersionMismatch) => version_mismatch(path),
        e => Error::Engine {
            engine: "lmdb",
            path: path.to_path_buf(),
            source: Box::new(e),
        },
    }
}

/// The low bits of the format word at offset 4 of `lock.mdb` that hold LMDB's lock-file
/// version (`MDB_LOCK_VERSION_BITS` in `mdb.c`; releases 0.9.x store the bare version there).
const LOCK_VERSION_MASK: u32 = (1 << 12) - 1;
/// `MDB_MAGIC`, the first word of `lock.mdb` and of each meta page.
const MDB_MAGIC: u32 = 0xBEEF_C0DE;

/// `MDB_VERSION_MISMATCH` on open: explains which side differs. LMDB's releases (0.9.x,
/// bundled by py-lmdb from PyPI, and built by this workspace through its vendored
/// `lmdb-master-sys`) use lock-file format 1; heed's own `lmdb-master-sys` builds LMDB's
/// `mdb.master` branch, whose lock file has format 2 with a different header layout (the
/// reader-table mutex moved after the transaction id). The data file is the same, so the two
/// can use one environment one after the other but never while both have it open. A version
/// mismatch with a lock file in our own format is the data file's version instead (an
/// `mdb.master3` or LMDB 1.0 environment).
#[expect(
    clippy::host_endian_bytes,
    reason = "LMDB writes its lock file in the host's byte order"
)]
fn version_mismatch(path: &Path) -> Error {
    let lock = path.join(super::files::LOCK_FILE);
    // Only the first two words: magic and format. A file that cannot be read leaves the
    // generic explanation. Safe to open here: the open that failed left this process without
    // the environment (the registry and heed allow one open per process), so closing this
    // descriptor releases no POSIX lock LMDB holds on `lock.mdb`.
    let mut head = [0u8; 8];
    let lock_version = std::fs::File::open(&lock)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .ok()
        .and_then(|()| {
            let [m0, m1, m2, m3, f0, f1, f2, f3] = head;
            (u32::from_ne_bytes([m0, m1, m2, m3]) == MDB_MAGIC)
                .then_some(u32::from_ne_bytes([f0, f1, f2, f3]) & LOCK_VERSION_MASK)
        });
    let (own, linked) = linked_lock_version();
    match lock_version {
        Some(found) if found != own => Error::Locked {
            path: path.to_path_buf(),
            reason: format!(
                "another process has this LMDB environment open with lock-file format {found} \
                 (format 1: LMDB 0.9.x releases, such as py-lmdb from PyPI; format 2: LMDB's \
                 mdb.master, as heed's own lmdb-master-sys builds it, and LMDB 1.0); this \
                 process's LMDB ({linked}) uses format {own}, and the two cannot have one \
                 environment open at the same time. The data file of 0.9.x and mdb.master is \
                 the same: close the environment in the other process (e.g. `env.close()` in \
                 Python), then open it here, one after the other{hint}",
                hint = if own == MASTER_LOCK_VERSION {
                    "; or, to share it live with py-lmdb, build heed over LMDB 0.9.x with the \
                     `[patch.crates-io]` of cacher's docs/lmdb-live-sharing.md"
                } else {
                    ""
                }
            ),
        },
        _ => Error::Engine {
            engine: "lmdb",
            path: path.to_path_buf(),
            source: format!(
                "LMDB version mismatch: the data file or lock file was made by an LMDB build \
                 whose format this one cannot use ({})",
                heed::Error::Mdb(MdbError::VersionMismatch)
            )
            .into(),
        },
    }
}

/// The lock-file version of `mdb.master` (`MDB_LOCK_VERSION`), which heed's own
/// `lmdb-master-sys` builds.
const MASTER_LOCK_VERSION: u32 = 2;

/// The lock-file version of the LMDB this build links, and its version string: `mdb.master`
/// reports itself as 0.9.70 (format 2), the 0.9.x releases as 0.9.0 to 0.9.69 (format 1); a
/// `[patch]` of `lmdb-master-sys` decides which one heed links.
fn linked_lock_version() -> (u32, &'static str) {
    let v = heed::lmdb_version();
    let own = if (v.major, v.minor) == (0, 9) && v.patch < 70 {
        1
    } else {
        MASTER_LOCK_VERSION
    };
    (own, v.string)
}
