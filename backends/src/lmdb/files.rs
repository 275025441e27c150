//! The files of an LMDB environment directory, checked and created by cacher before heed
//! opens them, so LMDB never opens or creates a file through a planted symlink or blocks on a
//! FIFO.
//!
//! LMDB opens `data.mdb` and `lock.mdb` with `O_CREAT` and no `O_NOFOLLOW`: a symlink planted
//! at either name would make it read, lock and rewrite the target. So each file of the
//! environment (`data.mdb`, `lock.mdb`, `cacher-resize.lock`) is looked at with `lstat` first:
//! a regular file is left for LMDB to open, anything else is refused with
//! [`Error::NotOwned`], and a missing one is created by cacher with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` and the [`FileMode`] of the options (LMDB then opens the
//! existing file, so the mode policy is cacher's, not LMDB's fixed `0644`/`0600`). An empty
//! `data.mdb` is what LMDB initialises as a new environment.
//!
//! What is left: a file swapped for a symlink between the check and LMDB's `open` (a race
//! with someone who can already write the directory).

use std::io;
use std::path::Path;

use super::meta_pages;
use crate::fs::{create_new, kind_name, FileMode};
use crate::marker::Kind;
use crate::{Error, Result};

/// LMDB's data file.
pub(super) const DATA_FILE: &str = "data.mdb";
/// LMDB's lock file.
pub(super) const LOCK_FILE: &str = "lock.mdb";
/// The inter-process resize lock file, beside `data.mdb` and `lock.mdb`.
pub(super) const RESIZE_LOCK_FILE: &str = "cacher-resize.lock";
/// The commit record: the id of the last transaction committed through cacher, written after
/// every commit (with [`Durability::Flush`](crate::Durability::Flush)), so a damaged meta page
/// that makes LMDB open an older commit is refused.
pub(super) const COMMIT_FILE: &str = "cacher-last-commit";
/// The first commit record's length: the id (u64 LE) and a CRC-32 of it (u32 LE).
const COMMIT_RECORD_V1_LEN: usize = 12;
/// The commit record's length since meta-page fingerprints (version 2): the version-1 record,
/// then the CRC-32 of each meta page after that commit (u32 LE each, see
/// `meta_pages::fingerprints`), then a CRC-32 of the 20 bytes before it. A version-1 reader
/// reads the first 12 bytes as before.
const COMMIT_RECORD_LEN: usize = 24;

/// What the commit record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CommitRecord {
    /// The newest transaction committed.
    pub(super) txn: u64,
    /// The CRC-32 of meta pages 0 and 1 after that commit (`None` in a version-1 record).
    pub(super) fingerprints: Option<[u32; 2]>,
}

/// Creates the directory `dir` (and its parents) when missing, with `mode`.
pub(super) fn create_dir(dir: &Path, mode: FileMode) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(mode.dir_bits());
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
        .create(dir)
        .map_err(|e| Error::io("creating", dir, e))
}

/// Prepares the canonical environment directory `dir` for heed: refuses another layout's
/// directory (when the caller names its `kind`), checks or creates each file of the
/// environment, and checks `data.mdb`'s meta pages (see [`meta_pages`]).
pub(super) fn prepare(
    dir: &Path,
    mode: FileMode,
    kind: Option<Kind>,
    periodic: bool,
) -> Result<()> {
    if let Some(kind) = kind {
        crate::marker::refuse_foreign(dir, kind)?;
    }
    for name in [DATA_FILE, LOCK_FILE, RESIZE_LOCK_FILE, COMMIT_FILE] {
        own_file(&dir.join(name), mode)?;
    }
    if periodic {
        own_file(&dir.join(super::periodic::DURABLE_FILE), mode)?;
    }
    // After a restart, a `Periodic` environment goes back to its last durable point before
    // anything reads its meta pages (whatever the durability of this open).
    super::periodic::recover(dir)?;
    let data = dir.join(DATA_FILE);
    let opened = meta_pages::check(&data)?;
    let initialised = opened.is_some();
    if let (Some(opened), Some(record)) = (opened, read_commit(dir)?) {
        let (opens_at, recorded) = (opened.txn, record.txn);
        if let Some(fingerprints) = record.fingerprints {
            if opened.older_page_raised_by_two(recorded, fingerprints) {
                return Err(Error::corrupt(
                    &data,
                    None,
                    format!(
                        "LMDB would open at commit {opens_at}, but that meta page is the one of \
                         commit {} (recorded in {COMMIT_FILE}) with its transaction id raised \
                         by two: a damaged meta page would roll the store back",
                        opens_at - 2
                    ),
                ));
            }
        }
        if recorded > opens_at {
            return Err(Error::corrupt(
                &data,
                None,
                format!(
                    "LMDB would open at commit {opens_at}, but commit {recorded} was made \
                     (recorded in {COMMIT_FILE}): a damaged meta page would roll the store \
                     back (if an older data.mdb was restored on purpose, remove {COMMIT_FILE})"
                ),
            ));
        }
    }
    if let Some(kind) = kind {
        let marker = kind.path_in(dir);
        if !initialised && std::fs::symlink_metadata(&marker).is_ok() {
            // The marker is written only after LMDB initialised the file: an empty data.mdb
            // under a marker lost its data, and opening it would silently start empty.
            return Err(Error::corrupt(
                &data,
                None,
                format!(
                    "empty, but {} marks this directory as a {} that was opened before",
                    kind.file_name(),
                    kind.type_name()
                ),
            ));
        }
    }
    Ok(())
}

/// Checks that `path` is a regular file, or creates it (empty) when nothing is there.
fn own_file(path: &Path, mode: FileMode) -> Result<()> {
    for _ in 0..2 {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => return Ok(()),
            Ok(meta) => {
                return Err(Error::NotOwned {
                    path: path.to_path_buf(),
                    expected: "a regular file",
                    found: kind_name(&meta),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create_new(path, mode) {
                Ok(_) => return Ok(()),
                // Another process created it first: look again.
                Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            },
            Err(e) => return Err(Error::io("reading the metadata of", path, e)),
        }
    }
    Err(Error::io(
        "creating",
        path,
        io::Error::other("the file appeared and vanished while being created"),
    ))
}

/// Reads the commit record in `dir`: `None` when missing, empty or damaged (a damaged record
/// only turns the check off; it never refuses a store by itself).
fn read_commit(dir: &Path) -> Result<Option<CommitRecord>> {
    let path = dir.join(COMMIT_FILE);
    let Some(file) = crate::fs::open_regular(&path, crate::fs::Access::Read)? else {
        return Ok(None);
    };
    read_commit_from(&file).map_err(|e| Error::io("reading", &path, e))
}

/// Reads the commit record from its open file (from the start, whatever the file position):
/// version 2 when its 24 bytes check, else version 1 (the id alone) when its first 12 do.
pub(super) fn read_commit_from(file: &std::fs::File) -> io::Result<Option<CommitRecord>> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(0))?;
    let mut record = [0u8; COMMIT_RECORD_LEN];
    let got = crate::fs::read_up_to(&mut file, &mut record)?;
    Ok(parse_commit(&record[..got]))
}

/// Decodes a commit record (either version); `None` when it does not check.
pub(super) fn parse_commit(record: &[u8]) -> Option<CommitRecord> {
    use crate::le::{u32_at, u64_at};
    let txn = u64_at(record, 0)?;
    if crc32fast::hash(record.get(..8)?) != u32_at(record, 8)? {
        return None;
    }
    let fingerprints = match (u32_at(record, 12), u32_at(record, 16), u32_at(record, 20)) {
        (Some(page0), Some(page1), Some(crc)) if crc32fast::hash(&record[..20]) == crc => {
            Some([page0, page1])
        }
        _ => None,
    };
    Some(CommitRecord { txn, fingerprints })
}

/// The commit record (version 2) for transaction `txn` with the meta pages' `fingerprints`,
/// or the version-1 record (the id alone, padded with zeros that fail the version-2 CRC)
/// when the pages could not be read consistently.
pub(super) fn commit_record(txn: u64, fingerprints: Option<[u32; 2]>) -> [u8; COMMIT_RECORD_LEN] {
    let mut record = [0u8; COMMIT_RECORD_LEN];
    record[..8].copy_from_slice(&txn.to_le_bytes());
    let crc = crc32fast::hash(&record[..8]);
    record[8..COMMIT_RECORD_V1_LEN].copy_from_slice(&crc.to_le_bytes());
    if let Some([page0, page1]) = fingerprints {
        record[12..16].copy_from_slice(&page0.to_le_bytes());
        record[16..20].copy_from_slice(&page1.to_le_bytes());
        let crc = crc32fast::hash(&record[..20]);
        record[20..].copy_from_slice(&crc.to_le_bytes());
    }
    record
}
