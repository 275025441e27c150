//! The accounting sidecar of a [`DirStore`]: an [`LmdbStore`] in `<root>/acct/` holding one
//! small record per entry, made by the store only when a limited cache turns accounting on.
//!
//! # Record (version 1), the sidecar's value under the entry's key
//!
//! ```text
//! version u8 (1) ‖ inode u64 LE ‖ mtime seconds i64 LE ‖ mtime nanoseconds u32 LE ‖
//! file length u64 LE ‖ value length u64 LE                              = 37 bytes
//! ```
//!
//! The record names the entry file its key's path held when the record was written: the
//! inode, modification time and length of the file, which the store compares before it
//! removes a file for an eviction, so a file renamed there since (another writer's newer
//! value) is never the one taken. (An inode freed and reused within one timestamp tick for a
//! file of the very same length is the one case the compare cannot tell apart.) The sidecar's accounting counts each entry as its value's
//! length, not the record's.
//!
//! # One order for files and records
//! Every rename into an entry path and every unlink of one by a handle with the sidecar open
//! happens inside a sidecar write transaction, together with its record
//! ([`LmdbStore::write_record`]): LMDB has one writer at a time across processes, so the
//! record of a key always names the file last renamed there. Before each write, a handle
//! that has not opened the sidecar looks for `acct/` (one `statx`) and opens it once it is
//! there, so a handle opened before accounting was turned on (another process, no limit)
//! records its writes from then on.
//!
//! # Crash window
//! The rename and its record are one step for other processes, but not for a crash: a
//! process killed between the rename and the commit (or a commit that fails after the rename)
//! leaves the new file in place with the old record, or none. The value read is always the
//! file's, so always right; the totals are off by that one entry (its size difference) until
//! [`DirStore::rebuild_accounting`] recounts. A write by a handle that looked for `acct/` just
//! before another process created it is not recorded either (the same one-entry drift), nor
//! are the writes of a handle of a build that does not know the sidecar (or was built
//! without the `lmdb` feature) that was already open when the sidecar appeared: such builds
//! refuse the store from their next open on (layout 2), but cannot be stopped mid-run.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::DirStore;
use crate::lmdb::{LmdbOptions, LmdbStore};
use crate::{Durability, Error, Result};

/// The sidecar's directory under the store's root.
pub(super) const ACCT_DIR: &str = "acct";
const RECORD_VERSION: u8 = 1;
const RECORD_LEN: usize = 1 + 8 + 8 + 4 + 8 + 8;

/// Which file an entry's record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileId {
    ino: u64,
    mtime: i64,
    mtime_ns: u32,
    len: u64,
}

/// A record: the file it names and its value's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntryRecord {
    pub file: FileId,
    pub value_len: u64,
}

impl EntryRecord {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_LEN);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.file.ino.to_le_bytes());
        out.extend_from_slice(&self.file.mtime.to_le_bytes());
        out.extend_from_slice(&self.file.mtime_ns.to_le_bytes());
        out.extend_from_slice(&self.file.len.to_le_bytes());
        out.extend_from_slice(&self.value_len.to_le_bytes());
        out
    }

    /// A record as stored; `None` for one of another version or length (never trusted to
    /// name a file, so never the reason a file is removed).
    pub(super) fn decode(raw: &[u8]) -> Option<EntryRecord> {
        if raw.len() != RECORD_LEN || raw[0] != RECORD_VERSION {
            return None;
        }
        let u64_at = |i| crate::le::u64_at(raw, i);
        let file = FileId {
            ino: u64_at(1)?,
            mtime: u64_at(9)? as i64,
            mtime_ns: crate::le::u32_at(raw, 17)?,
            len: u64_at(21)?,
        };
        Some(EntryRecord {
            file,
            value_len: u64_at(29)?,
        })
    }

    /// The file a stored record names.
    pub(super) fn file_of(raw: &[u8]) -> Option<FileId> {
        EntryRecord::decode(raw).map(|r| r.file)
    }
}

impl FileId {
    /// The identity of an open file (the temp file about to be renamed into place).
    pub(super) fn of_file(file: &File, path: &Path) -> Result<FileId> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", path, e))?;
        Ok(FileId::of(&meta))
    }

    pub(super) fn of(meta: &Metadata) -> FileId {
        FileId {
            ino: meta.ino(),
            mtime: meta.mtime(),
            mtime_ns: u32::try_from(meta.mtime_nsec()).unwrap_or_default(),
            len: meta.len(),
        }
    }

    /// The identity of what is at `path` now, not following a symlink; `None` when nothing is.
    pub(super) fn at(path: &Path) -> Result<Option<FileId>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_file() => Ok(Some(FileId::of(&meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("reading the metadata of", path, e)),
        }
    }
}

/// A record's value length (what the accounting counts), for the count of the records
/// written while accounting was off; a damaged record counts as its own length.
pub(super) fn record_size(raw: &[u8]) -> u64 {
    EntryRecord::decode(raw).map_or(raw.len() as u64, |r| r.value_len)
}

impl DirStore {
    fn acct_dir(&self) -> PathBuf {
        self.root.join(ACCT_DIR)
    }

    /// The sidecar when accounting was turned on (by this handle or any other process),
    /// opening it the first time `acct/` is seen; `None` while there is none.
    pub(super) fn sidecar(&self) -> Result<Option<&LmdbStore>> {
        if let Some(side) = self.sidecar.get() {
            return Ok(Some(side));
        }
        let dir = self.acct_dir();
        match std::fs::symlink_metadata(&dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("reading the metadata of", &dir, e)),
        }
        self.open_sidecar().map(Some)
    }

    /// Opens the sidecar in `acct/` (which must be a real directory of the store), creating
    /// it when missing.
    fn open_sidecar(&self) -> Result<&LmdbStore> {
        let dir = self.acct_dir();
        crate::fs::ensure_dir(&dir, self.file_mode)?;
        let durability = match self.durability {
            Durability::None => Durability::None,
            _ => Durability::Flush,
        };
        let options = LmdbOptions::default()
            .with_durability(durability)
            .with_file_mode(self.file_mode);
        let side = LmdbStore::open_with(&dir, &options)?;
        Ok(self.sidecar.get_or_init(|| side))
    }

    /// The sidecar, made when there is none yet: the marker says layout 2 first, so a build
    /// that does not know the sidecar refuses the store before any record exists for it to
    /// leave behind.
    pub(super) fn ensure_sidecar(&self) -> Result<&LmdbStore> {
        if let Some(side) = self.sidecar()? {
            return Ok(side);
        }
        self.write_marker(super::marker::LAYOUT_VERSION)?;
        let side = self.open_sidecar()?;
        // An opener of a brand-new store may have written its layout-1 marker over ours.
        if self.check_marker()? != Some(super::marker::LAYOUT_VERSION) {
            self.write_marker(super::marker::LAYOUT_VERSION)?;
        }
        Ok(side)
    }
}
