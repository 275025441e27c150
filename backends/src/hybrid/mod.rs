//! [`HybridStore`]: the default store. Small values live inline in an LMDB index; values above
//! a measured threshold live in their own files, written by streaming and read by memory map.
//!
//! # Layout (hybrid layout version 1)
//!
//! ```text
//! <dir>/cacher-hybrid.toml       marker: layout = "hybrid", version = 1
//! <dir>/index/                   an LmdbStore (its own layout and marker): key -> record
//! <dir>/files/<2 hex>/<32 hex>.blob   one file per large value; the name is random, never
//!                                a key (the first two hex digits are the fan-out directory)
//! <dir>/files/tmp/put-XXXXXX     a large value being written
//! <dir>/leases/                  per-key lease files of processes sharing the store
//!                                (`Store::lease_dir`: single-flight across processes)
//! <dir>/archives/                archive files of old revisions (`Cache::archive`)
//! ```
//!
//! An index record (LMDB checksums it with its key):
//!
//! ```text
//! inline:  0x01 ‖ value bytes
//! file:    0x02 ‖ layout version (1) ‖ file id (16 bytes) ‖ value length (u64 LE) ‖
//!          value CRC-32 (u32 LE)                                       = 30 bytes
//! ```
//!
//! A value file is `b"CACHRHYB"` ‖ version (u32 LE, 1) ‖ 4 zero bytes ‖ the value; its length
//! and CRC are the index record's, checked on every read (streamed reads check at the end).
//!
//! # Why two places
//! A file per small value costs an inode, a directory entry and a rename each (DirStore
//! `put`s of 100 B values take about 1 ms on this machine's ext4); LMDB writes them in a few µs.
//! A large value in LMDB costs a copy of every page into the map at commit and cannot stream;
//! its own file is written once as it arrives and read by memory map. The threshold is
//! [`DEFAULT_INLINE_MAX`], measured by `benches/blobs.rs` (see `benches/RESULTS.md`).
//!
//! # Crash safety
//! A large value is written to a temp file, fsynced (with [`Durability::Flush`]), renamed to
//! its final random name, and only then is its record committed to the index; the file it
//! replaces is removed after that commit. A crash before the commit leaves the old record (and
//! an unreferenced file); after it, the new one. Unreferenced files are removed by
//! [`HybridStore::collect_garbage`], which deletes only names this store makes (`*.blob`
//! under `files/<2 hex>/`, `put-*` under `files/tmp/`), only regular files (never through a
//! symlink), only ones older than a grace period (a writer in another process may be between
//! its rename and its commit), and for `.blob` files only those starting with the file magic.

mod accounting;
mod files;
mod record;
#[cfg(test)]
mod tests;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::lmdb::LmdbOptions;
use crate::marker::{self, Kind};
use crate::value_reader::{CrcChecked, ValueReader};
use crate::{
    Blob, Durability, EntryMeta, Error, FileMode, KeyIter, LmdbStore, Result, Store, VerifyReport,
};

use record::Record;

/// A value file opened for reading, with its path for errors.
type OpenFile = (PathBuf, std::fs::File);

/// Values up to this many bytes are kept inline in the index; larger ones get a file. Measured
/// on this machine by `cargo bench --bench blobs -- threshold` (see `benches/RESULTS.md`).
pub const DEFAULT_INLINE_MAX: usize = 64 << 10;

/// How long an unreferenced file must have existed before
/// [`HybridStore::collect_garbage`] removes it: long enough for any writer between its
/// rename and its index commit to finish.
pub const DEFAULT_GARBAGE_AGE: Duration = Duration::from_secs(3600);

/// The layout version this build writes and the newest it opens (recorded in the marker,
/// `cacher-hybrid.toml`: see `crate::marker`).
const LAYOUT_VERSION: u32 = 1;

/// How a [`HybridStore`] is opened.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HybridOptions {
    /// Values up to this many bytes live inline in the index (default [`DEFAULT_INLINE_MAX`]).
    pub inline_max: usize,
    /// Flush (default): value files are fsynced before their rename and the index commits
    /// durably. None: both are left to the OS.
    pub durability: Durability,
    /// Permission bits of new files and directories.
    pub file_mode: FileMode,
}

impl Default for HybridOptions {
    fn default() -> Self {
        HybridOptions {
            inline_max: DEFAULT_INLINE_MAX,
            durability: Durability::Flush,
            file_mode: FileMode::default(),
        }
    }
}

impl HybridOptions {
    /// Sets [`inline_max`](HybridOptions::inline_max).
    pub fn inline_max(mut self, bytes: usize) -> Self {
        self.inline_max = bytes;
        self
    }

    /// Sets [`durability`](HybridOptions::durability).
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens (or creates) the store at `dir`.
    pub fn open(&self, dir: impl AsRef<Path>) -> Result<HybridStore> {
        HybridStore::open_with(dir, self)
    }
}

/// The default store: small values inline in LMDB, large ones in their own files; one index,
/// so one `keys()`, one `len()` and one place a `Cache` keeps expiry and limits.
///
/// Concurrency and durability are LMDB's for the index (threads and processes); value files are
/// published by rename before the index names them.
///
/// ```
/// use cacher_store::{HybridStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = HybridStore::open(dir.path())?;
/// store.put(b"small", b"inline in LMDB")?;
/// let big = vec![7u8; 1 << 20];
/// store.put_reader(b"big", &mut &big[..])?; // streamed into its own file
/// assert_eq!(store.get(b"small")?.as_deref(), Some(&b"inline in LMDB"[..]));
/// assert!(store.read(b"big")?.unwrap().is_mapped());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct HybridStore {
    index: LmdbStore,
    files: PathBuf,
    tmp: PathBuf,
    inline_max: usize,
    durability: Durability,
    file_mode: FileMode,
    /// The leases under the lease dir, opened on the first claim (`lease::claim_kept`).
    leases: std::sync::OnceLock<crate::lease::Leases>,
}

impl std::fmt::Debug for HybridStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridStore")
            .field("files", &self.files)
            .field("inline_max", &self.inline_max)
            .finish_non_exhaustive()
    }
}

impl HybridStore {
    /// Opens (or creates) the store at `dir` with the default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<HybridStore> {
        Self::open_with(dir, &HybridOptions::default())
    }

    /// Options to open a store with.
    pub fn options() -> HybridOptions {
        HybridOptions::default()
    }

    /// Opens (or creates) the store at `dir` with `options`.
    pub fn open_with(dir: impl AsRef<Path>, options: &HybridOptions) -> Result<HybridStore> {
        let dir = dir.as_ref();
        // The root and its parents are the caller's; inside it, every directory is checked.
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating the directory", dir, e))?;
        crate::fs::check_dir(dir)?;
        // Another kind's marker, or a newer layout of this one, is refused before anything
        // is written; then the marker is written when missing.
        marker::refuse_foreign(dir, Kind::Hybrid)?;
        marker::ensure(dir, Kind::Hybrid, LAYOUT_VERSION, options.file_mode)?;
        let index_dir = dir.join("index");
        crate::fs::ensure_dir(&index_dir, options.file_mode)?;
        let lmdb = LmdbOptions::default()
            .with_durability(options.durability)
            .with_file_mode(options.file_mode);
        let index = LmdbStore::open_with(&index_dir, &lmdb)?;
        let files = dir.join("files");
        crate::fs::ensure_dir(&files, options.file_mode)?;
        let tmp = files.join("tmp");
        crate::fs::ensure_dir(&tmp, options.file_mode)?;
        Ok(HybridStore {
            index,
            files,
            tmp,
            inline_max: options.inline_max,
            durability: options.durability,
            file_mode: options.file_mode,
            leases: Default::default(),
        })
    }

    /// The size up to which values are kept inline.
    pub fn inline_max(&self) -> usize {
        self.inline_max
    }

    /// The LMDB index (key -> record, see the module docs), for tools that look at the
    /// stored bytes themselves (`cacher verify --quarantine` copies a damaged record out).
    pub fn index(&self) -> &LmdbStore {
        &self.index
    }

    /// Where the value file of `id` lives.
    fn file_path(&self, id: &[u8; 16]) -> PathBuf {
        let hex = files::hex(id);
        self.files.join(&hex[..2]).join(format!("{hex}.blob"))
    }

    fn record(&self, key: &[u8]) -> Result<Option<Record>> {
        match self.index.get(key)? {
            None => Ok(None),
            Some(raw) => Record::decode(raw)
                .map(Some)
                .map_err(|r| Error::corrupt(self.index_path(), Some(key), r)),
        }
    }

    fn index_path(&self) -> PathBuf {
        self.files.with_file_name("index")
    }

    /// Commits `record` for `key`, then removes the file of the record it replaced.
    fn commit(&self, key: &[u8], record: &Record) -> Result<()> {
        self.commit_until(key, record, None)
    }

    /// [`HybridStore::commit`], with the deadline the accounting's expiry index keeps.
    fn commit_until(&self, key: &[u8], record: &Record, deadline: Option<u64>) -> Result<()> {
        let old = self.record(key).ok().flatten();
        // Counted as the value's length, not the index record's.
        self.index
            .put_accounted(key, &record.encode(), record.value_len(), deadline)?;
        if let Some(Record::File { id, .. }) = old {
            if !matches!(record, Record::File { id: new, .. } if *new == id) {
                self.remove_file(&id);
            }
        }
        Ok(())
    }

    /// Best effort: a file left behind is garbage that `collect_garbage` removes.
    fn remove_file(&self, id: &[u8; 16]) {
        let _ = std::fs::remove_file(self.file_path(id));
    }

    /// Opens `key`'s value file, re-reading the index once if the file went away (replaced by
    /// another writer between our index read and our open).
    fn open_file(
        &self,
        key: &[u8],
        mut record: Option<Record>,
    ) -> Result<Option<(Record, Option<OpenFile>)>> {
        for _ in 0..3 {
            let Some(rec) = record.take() else {
                return Ok(None);
            };
            let Record::File { id, .. } = &rec else {
                return Ok(Some((rec, None)));
            };
            let path = self.file_path(id);
            match crate::fs::open_regular(&path, crate::fs::Access::Read)? {
                Some(file) => return Ok(Some((rec, Some((path, file))))),
                None => {
                    let again = self.record(key)?;
                    if again.as_ref() == Some(&rec) {
                        return Err(Error::corrupt(
                            path,
                            Some(key),
                            "the index names a value file that is missing",
                        ));
                    }
                    record = again;
                }
            }
        }
        Err(Error::corrupt(
            &self.files,
            Some(key),
            "the value kept being replaced while it was read",
        ))
    }

    fn read_checked(&self, key: &[u8], check: bool) -> Result<Option<Blob>> {
        let record = self.record(key)?;
        let Some((rec, file)) = self.open_file(key, record)? else {
            return Ok(None);
        };
        match (rec, file) {
            (Record::Inline(v), _) => Ok(Some(Blob::from(v))),
            (Record::File { len, crc, .. }, Some((path, file))) => {
                files::map_value(file, &path, key, len, crc, check).map(Some)
            }
            (Record::File { .. }, None) => unreachable!("open_file opens every file record"),
        }
    }

    fn stream(&self, key: &[u8], check: bool) -> Result<Option<ValueReader>> {
        let record = self.record(key)?;
        let Some((rec, file)) = self.open_file(key, record)? else {
            return Ok(None);
        };
        match (rec, file) {
            (Record::Inline(v), _) => Ok(Some(ValueReader::from_blob(Blob::from(v)))),
            (Record::File { len, crc, .. }, Some((path, file))) => {
                let file = files::open_value(file, &path, key, len)?;
                if !check {
                    return Ok(Some(ValueReader::new(len, Box::new(file.take(len)))));
                }
                let what = format!("{} (key {})", path.display(), crate::KeyDisplay::new(key));
                let checked = CrcChecked::new(file, len, crc, what);
                Ok(Some(ValueReader::new(len, Box::new(checked))))
            }
            (Record::File { .. }, None) => unreachable!("open_file opens every file record"),
        }
    }

    /// Removes value files no index record names and temp files of interrupted writes, when
    /// older than `min_age` (see the module docs for what is never touched); returns how many
    /// were removed. Call it now and then, e.g. at start-up, with [`DEFAULT_GARBAGE_AGE`].
    ///
    /// A damaged index record (which [`verify`](Store::verify) lists) is no error here: it may
    /// name a value file, so while one is there no value file is removed, only temp files.
    /// `Cache::open` calls this, and one damaged record must not keep the cache from opening.
    pub fn collect_garbage(&self, min_age: Duration) -> Result<u64> {
        let mut live = std::collections::HashSet::new();
        let mut every_record_read = true;
        for entry in self.index.scan()? {
            match entry.map(|(_, raw)| Record::decode(raw)) {
                Ok(Ok(Record::File { id, .. })) => {
                    live.insert(id);
                }
                Ok(Ok(Record::Inline(_))) => {}
                Ok(Err(_)) => every_record_read = false,
                Err(e) if e.is_corrupt() => every_record_read = false,
                Err(e) => return Err(e),
            }
        }
        files::collect(
            &self.files,
            &self.tmp,
            every_record_read.then_some(&live),
            min_age,
        )
    }
}

impl Store for HybridStore {
    /// `<dir>/leases`, beside `index/` and `files/`: processes sharing the store take their
    /// per-key leases (single-flight) there.
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        self.files.parent().map(|root| root.join("leases"))
    }
    crate::lease::lease_from_kept!(leases);
    /// Inline values are copied out of the index; file values are mapped, their checksum
    /// checked before the view is returned (through the file for values over 32 MiB, so the
    /// check leaves no pages resident).
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read_checked(key, true)
    }

    /// The mapped view of a file value without its checksum pass.
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read_checked(key, false)
    }

    /// Lends an inline value straight from the index's map without the index's CRC (its
    /// [`LmdbStore::with_value_unchecked`], framing checked), and a file value as
    /// [`Store::read_unchecked`] maps it, without its checksum pass: for the `Cache`, whose
    /// envelope checks every byte of the value and its key binding, so a hit makes one pass
    /// over the bytes instead of two (and no copy of an inline value). Anything but an inline
    /// record is read again through the checked index.
    fn with_value_unchecked(&self, key: &[u8], f: &mut dyn FnMut(&[u8])) -> Result<bool> {
        let mut inline = false;
        let found = self.index.with_value_unchecked(key, &mut |raw| {
            if let Some((&record::TAG_INLINE, value)) = raw.split_first() {
                inline = true;
                f(value);
            }
        })?;
        if !found || inline {
            return Ok(found);
        }
        match self.read_checked(key, false)? {
            Some(blob) => {
                f(&blob);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// File values are streamed through the file descriptor, the checksum checked at the end.
    fn read_stream(&self, key: &[u8]) -> Result<Option<ValueReader>> {
        self.stream(key, true)
    }

    /// File values are streamed without the checksum pass (the file's magic, version and
    /// length are still checked before the first byte); inline values as `read_stream`.
    fn read_stream_unchecked(&self, key: &[u8]) -> Result<Option<ValueReader>> {
        self.stream(key, false)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        if value.len() <= self.inline_max {
            return self.commit(key, &Record::Inline(value.to_vec()));
        }
        self.put_reader(key, &mut &value[..]).map(drop)
    }

    /// Like `put`; an inline value's deadline goes into the accounting's expiry index.
    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        if value.len() <= self.inline_max {
            return self.commit_until(key, &Record::Inline(value.to_vec()), deadline_ms);
        }
        let written = files::write_value(self, key, value, &mut std::io::empty())?;
        self.commit_until(key, &written, deadline_ms)
    }

    fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> {
        Some(self)
    }

    /// Reads up to the inline threshold into memory; a value that ends there goes inline, a
    /// longer one is streamed into a new file (what was read first, then the rest).
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let mut head = Vec::new();
        let limit = self.inline_max as u64 + 1;
        reader
            .take(limit)
            .read_to_end(&mut head)
            .map_err(|e| Error::ValueSource {
                key: crate::KeyDisplay::new(key),
                source: e,
            })?;
        if head.len() <= self.inline_max {
            let n = head.len() as u64;
            self.commit(key, &Record::Inline(head))?;
            return Ok(n);
        }
        let written = files::write_value(self, key, &head, reader)?;
        let len = written.value_len();
        self.commit(key, &written)?;
        Ok(len)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let old = self.record(key).ok().flatten();
        let was = self.index.delete(key)?;
        if let Some(Record::File { id, .. }) = old.filter(|_| was) {
            self.remove_file(&id);
        }
        Ok(was)
    }

    fn keys(&self) -> Result<KeyIter<'_>> {
        self.index.keys()
    }

    fn flush(&self) -> Result<()> {
        self.index.flush()
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.record(key)?.map(|r| EntryMeta::new(r.value_len())))
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        self.index.contains(key)
    }

    fn len(&self) -> Result<u64> {
        self.index.len()
    }

    /// The index checks its own records (a damaged one is listed under its key, and the walk
    /// goes on); then every file value is read through its checksum.
    fn verify(&self) -> Result<VerifyReport> {
        let mut report = self.index.verify()?;
        let damaged: std::collections::HashSet<Vec<u8>> =
            report.damaged.iter().map(|(k, _)| k.clone()).collect();
        for key in self.index.keys()? {
            // A key the listing cannot give is a damaged record the index already reported.
            let Ok(key) = key else { continue };
            if damaged.contains(&key) {
                continue;
            }
            match self.record(&key) {
                Ok(Some(Record::File { .. })) => match self.read_checked(&key, true) {
                    Ok(_) => {}
                    Err(e) if e.is_corrupt() => report.damaged.push((key, e)),
                    Err(e) => return Err(e),
                },
                Ok(_) => {}
                Err(e) if e.is_corrupt() => report.damaged.push((key, e)),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }
}
