//! [`DirStore`]: one file per key, under fan-out directories named from a hash of the key.
//!
//! # Layout
//!
//! ```text
//! <root>/
//! ├── cacher-dir.toml          layout version marker (format = "cacher-dir", version = 1,
//! │                            or 2 once the accounting sidecar exists)
//! ├── tmp/                     values being written: put-XXXXXX, renamed into v1/ when whole;
//! │                            evict-XXXXXX, an evicted file being compared and removed
//! ├── acct/                    the accounting sidecar (feature `lmdb`), an LmdbStore made
//! │                            when a limited cache turns accounting on (see `sidecar.rs`)
//! └── v1/
//!     ├── 00/ … ff/            fan-out on the first byte of blake3(key)
//!     │   └── <64 hex>         hex of blake3(key): one entry file (see `format.rs`)
//! ```
//!
//! - A key is never a path: the file name is the hex of its 256-bit blake3 hash, and the
//!   whole key is stored inside the file. Reads compare the stored key with the one asked for,
//!   so even a hash collision could not hand back another key's value.
//! - One level of 256 directories: at ten million entries that is still about 40 000 files a
//!   directory, which ext4 and XFS index by hash; fewer directories make small stores and
//!   `put_many`'s per-directory fsyncs cheaper than a two-level `ab/cd/` fan-out would.
//! - Every write goes to a new temp file in `tmp/` (same filesystem), is fsynced when
//!   [`Durability::Flush`] asks for it, and is renamed over the entry. `rename` is atomic, so
//!   readers in any process see the old file or the new one, never a mix, and several processes
//!   may write the same store at once. The last rename wins.
//! - Files are only ever replaced by rename, never changed in place, so a memory map of an
//!   entry stays valid and unchanged while it is used (see [`DirStore`] for the caveat).
//! - The store opens only what it made: entry files with `O_NOFOLLOW | O_NONBLOCK` and only
//!   when they are regular files, fan-out and temp directories only when they are real
//!   directories (not symlinks), and it deletes from `tmp/` only its own `put-XXXXXX` files.
//!   Anything else at those paths (a symlink, FIFO, socket, device) is refused with
//!   [`Error::NotOwned`] naming the path, without blocking.

#[cfg(all(feature = "lmdb", unix))]
mod accounting;
mod format;
#[cfg(feature = "fuzzing")]
pub(crate) use format::fuzz_entry;
mod marker;
mod options;
mod path;
mod read;
#[cfg(all(feature = "lmdb", unix))]
mod sidecar;
mod stream;
#[cfg(test)]
mod tests;
mod tmp;
mod write;

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::fs::sync_dir;
use crate::{Blob, Durability, EntryMeta, Error, FileMode, Result, Store, VerifyReport};
use path::Fanouts;
use read::{Check, Target};
use write::sync_file;

pub use options::DirStoreOptions;

/// Entry files at least this long are read through a memory map, smaller ones are copied
/// into a `Vec`. Both are checked before they are returned.
///
/// Measured with `backends/benches/dir_read.rs` (warm page cache, each read followed by a pass
/// over every byte, 2-core VM, figures in `benches/RESULTS.md`): copying wins up to 128 KiB
/// (64 KiB: 8 µs copied vs 19 µs mapped) because a map costs mmap + page faults + munmap per
/// read; at 256 KiB the two are level or copying still wins (21 µs vs 22–38 µs); from 512 KiB
/// mapping wins (512 KiB: 35–56 µs vs 28–48 µs; 4 MiB: 425–616 µs vs 162–218 µs) and also
/// spares the memory of a copy.
pub const DEFAULT_MMAP_THRESHOLD: u64 = 512 * 1024;

/// A temp file untouched for this long, and not locked by a live writer, is removed on open.
pub const DEFAULT_STALE_TEMP_AGE: Duration = Duration::from_secs(15 * 60);

const ENTRIES_DIR: &str = "v1";
const TMP_DIR: &str = "tmp";
/// Every temp file the store makes is named `put-` and six random characters from
/// `[A-Za-z0-9]`; cleanup removes nothing else.
const TMP_PREFIX: &str = "put-";
/// The temp names an eviction takes a file away under before comparing it with its record
/// (`accounting.rs`); cleanup removes these too.
const EVICT_PREFIX: &str = "evict-";
const TMP_RANDOM_LEN: usize = 6;
/// Temp files `put_many` holds open at once.
const PUT_MANY_CHUNK: usize = 256;

/// A store keeping one file per key in a directory tree, safe to share between threads and
/// between processes.
///
/// Durability: [`Durability::Flush`] (the default) fsyncs each entry file before renaming it
/// into place and its directory after, before `put` returns; [`Durability::None`] leaves both
/// to the OS until [`Store::flush`]. A process crash leaves each key with its old or its new
/// value, never a torn one, under either setting; so does a power loss under `Flush`. After a
/// power loss under `None` an entry renamed before its data reached the disk may be empty or
/// short: it reads as [`Error::Corrupt`], never as a wrong value.
///
/// [`Durability::Periodic`] is treated as `Flush`. Its promise — never corrupt after a power
/// loss — needs each entry's data on disk before the rename that publishes it, and nothing
/// cheaper than an fsync per entry gives that order: a periodic `syncfs(2)` syncs data and
/// renames together but does not order them, so an entry renamed just before the power cut
/// could still be empty, and deferring the rename until a batch sync would make a `get` right
/// after `put` miss (or need a second index of pending entries). So a DirStore opened with
/// `Periodic` writes as with `Flush` and [`DirStore::durability`] reports `Flush`; use
/// `None` plus [`Store::flush`] where losing the last writes to a power cut (as entries that
/// read as corrupt) is acceptable.
///
/// Reads: entry files of at least [`DEFAULT_MMAP_THRESHOLD`] bytes come back as
/// [`Blob::is_mapped`], so a multi-GiB value is not copied into the heap; smaller ones as owned
/// blobs. Every read checks the value's checksum before returning it, which costs O(n): a
/// mapped value up to 32 MiB is checked through the map (its pages, which the caller is about
/// to touch, become resident), a larger one is streamed through the file with a fixed 256 KiB
/// buffer so memory stays bounded whatever the size. Measured (`benches/dir_read.rs`,
/// `dir_read_checked`, warm page cache, 2-core VM under load 6): 1 MiB `read` 93 µs against
/// 16 µs unchecked (113 µs against 78 µs when the caller then passes over every byte); 64 MiB
/// `read` 17-28 ms against 23-41 µs unchecked. [`Store::read_unchecked`] is the named way to
/// skip that pass and lend the mapped bytes as they are; [`Store::verify`] checks every entry.
///
/// Files: new files follow the process umask by default ([`FileMode::Umask`]); see
/// [`DirStoreOptions::file_mode`]. Keys are at most [`DirStore::MAX_KEY_LEN`] bytes, so a
/// damaged or planted entry file can never make a read allocate more than that for its key.
///
/// Caveat: the store never modifies a file in place, but a process *outside* the store that
/// truncates an entry file while it is mapped makes the next access to the missing pages raise
/// `SIGBUS`. Do not edit a store's files by hand while it is in use.
///
/// Accounting (feature `lmdb`, on by default; Unix): [`Store::accounting`] is the books of a
/// sidecar `LmdbStore` in `<root>/acct/`, made when a limited cache first opens the store
/// (which then marks it layout 2, refused by builds that do not know the sidecar). Every
/// handle of every process records its writes and deletes there from its next write on, in
/// the same sidecar transaction as the rename or unlink, so there is one total and one
/// eviction order, and a limited cache opens in O(1); an eviction removes an entry file only
/// when it is still the one its record names. A store written before is counted once by
/// [`Accounting::build`](crate::accounting::Accounting::build); a crash between a rename and
/// its record can leave the totals off by that entry until `DirStore::rebuild_accounting`.
/// Without the feature a DirStore offers no accounting (a limited cache keeps per-handle books
/// in memory). The sidecar is described in `backends/src/dir/sidecar.rs` and
/// `docs/layouts.md`.
///
/// Deleting a key whose file is damaged removes the damaged file. On Windows an entry cannot be
/// replaced while another handle maps it; the store is built and tested on Unix.
///
/// ```
/// use cacher_store::{DirStore, Durability, Store};
///
/// let dir = tempfile::tempdir()?;
/// let store = DirStore::open(dir.path())?;
/// store.put(b"../not/a/path", b"value")?;
/// assert_eq!(store.get(b"../not/a/path")?.as_deref(), Some(&b"value"[..]));
///
/// // Stream a large value in; it is read back through a memory map.
/// let big = vec![7u8; 1 << 20];
/// store.put_reader(b"big", &mut &big[..])?;
/// let blob = store.read(b"big")?.expect("present");
/// assert!(blob.is_zero_copy() && blob[..] == big[..]);
///
/// // Faster writes that survive a process crash but not a power loss, then one sync.
/// let fast = DirStore::options().durability(Durability::None).open(dir.path())?;
/// fast.put_many(&[(b"a", b"1"), (b"b", b"2")])?;
/// fast.flush()?;
/// assert_eq!(fast.len()?, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
    entries: PathBuf,
    tmp: PathBuf,
    durability: Durability,
    mmap_threshold: u64,
    file_mode: FileMode,
    /// Fan-out directories seen to be real directories, shared by clones of this handle.
    fanouts: Arc<Fanouts>,
    /// The leases under the lease dir, opened on the first claim (`lease::claim_kept`).
    leases: std::sync::OnceLock<crate::lease::Leases>,
    /// The accounting sidecar in `acct/`, once it exists and this handle has opened it
    /// (shared by clones).
    #[cfg(all(feature = "lmdb", unix))]
    sidecar: Arc<std::sync::OnceLock<crate::LmdbStore>>,
}

impl DirStore {
    /// The longest key a DirStore holds, in bytes (1 MiB). Longer keys are refused by `put`
    /// with [`Error::InvalidKey`], and an entry file declaring a longer key is
    /// [`Error::Corrupt`] before anything is allocated for it.
    pub const MAX_KEY_LEN: usize = format::MAX_KEY_LEN as usize;

    /// Opens (creating if needed) the store in `path` with the default options
    /// ([`Durability::Flush`]).
    pub fn open(path: impl AsRef<Path>) -> Result<DirStore> {
        DirStoreOptions::new().open(path)
    }

    /// Options for [`DirStoreOptions::open`].
    pub fn options() -> DirStoreOptions {
        DirStoreOptions::new()
    }

    /// The store's root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The durability this handle writes with.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The file that holds (or would hold) `key`'s entry.
    pub fn entry_path(&self, key: &[u8]) -> PathBuf {
        self.locate(key).0
    }

    /// Checks `key`'s whole entry (header, key and value checksum) by streaming it through a
    /// fixed buffer, without mapping or copying the value. `Ok(false)` when the key is missing.
    pub fn verify_key(&self, key: &[u8]) -> Result<bool> {
        let Some((path, file)) = self.open_key(key)? else {
            return Ok(false);
        };
        self.check_entry(file, &path, Some(key))
            .map_err(|(_, e)| e)?;
        Ok(true)
    }
}

impl Store for DirStore {
    fn lease_dir(&self) -> Option<std::path::PathBuf> {
        Some(self.root.join("leases"))
    }
    crate::lease::lease_from_kept!(leases);
    /// Checked: a mapped value's checksum is verified (one streamed pass over the file)
    /// before the view is returned. [`Store::read_unchecked`] skips that pass.
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read_key(key, Check::Full, Target::ViewOrCopy)
    }

    /// The mapped view of a large value without its O(n) checksum pass (header and key are
    /// still checked, and values below the mmap threshold are checked as they are copied).
    fn read_unchecked(&self, key: &[u8]) -> Result<Option<Blob>> {
        self.read_key(key, Check::SkipMappedValue, Target::ViewOrCopy)
    }

    /// A copy is wanted: read into a `Vec` at any size (never through a map, whose page
    /// faults cost more than a read when every byte is copied anyway).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .read_key(key, Check::Full, Target::Copy)?
            .map(Blob::into_vec))
    }

    /// Through the file descriptor in pieces (no map), the checksum checked at the end.
    fn read_stream(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.stream_key(key, true)
    }

    /// The value's bytes without the CRC pass (header and key still checked).
    fn read_stream_unchecked(&self, key: &[u8]) -> Result<Option<crate::ValueReader>> {
        self.stream_key(key, false)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        self.put_with_deadline(key, value, None)
    }

    /// Like `put`; with accounting on, the deadline goes into the sidecar's expiry index.
    fn put_with_deadline(&self, key: &[u8], value: &[u8], deadline_ms: Option<u64>) -> Result<()> {
        let dest = self.entry_path(key);
        let tmp = self.write_entry(key, value)?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        self.publish_counted(tmp, &dest, key, value.len() as u64, deadline_ms)?;
        self.sync_entry_dir(&dest)
    }

    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let dest = self.entry_path(key);
        let (tmp, n) = self.write_streamed(key, reader)?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        self.publish_counted(tmp, &dest, key, n, None)?;
        self.sync_entry_dir(&dest)?;
        Ok(n)
    }

    /// With the `lmdb` feature: the books of `acct/` (see `sidecar.rs`), off until a limited
    /// cache turns them on.
    #[cfg(all(feature = "lmdb", unix))]
    fn accounting(&self) -> Option<&dyn crate::accounting::Accounting> {
        Some(self)
    }

    /// Removes `key`'s entry file. Something at its path that is not a regular file (a
    /// planted symlink, FIFO, ...) is refused with [`Error::NotOwned`] and left in place.
    fn delete(&self, key: &[u8]) -> Result<bool> {
        #[cfg(all(feature = "lmdb", unix))]
        if let Some(side) = self.sidecar()? {
            // Unlinked inside the sidecar's transaction, so no other handle's rename and
            // record come between the unlink and the record's removal.
            let mut removed = false;
            return side.write_record(key, &mut |_| {
                removed |= self.remove_entry_file(key)?;
                Ok((crate::lmdb::RecordOp::Delete, removed))
            });
        }
        self.remove_entry_file(key)
    }

    /// Every key; an entry file that cannot be read (damaged, or not a regular file) is an
    /// `Err` item naming its path, and the walk goes on.
    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        let files = self.entry_files()?;
        Ok(Box::new(files.filter_map(move |path| {
            let path = match path {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            let mut file = match self.open_entry(&path) {
                Ok(Some(f)) => f,
                // Deleted since the listing.
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            Some(self.load_head(&mut file, &path, None).map(|(_, key)| key))
        })))
    }

    fn scan(&self) -> Result<Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + '_>> {
        let files = self.entry_files()?;
        Ok(Box::new(files.filter_map(move |path| {
            let path = match path {
                Ok(p) => p,
                Err(e) => return Some(Err(e)),
            };
            let file = match self.open_entry(&path) {
                Ok(Some(f)) => f,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            Some(
                self.load(file, &path, None, Check::Full, Target::Copy)
                    .map(|(k, v)| (k, v.into_vec())),
            )
        })))
    }

    /// Syncs everything written with [`Durability::None`]: one `syncfs(2)` of the store's
    /// filesystem on Linux, which covers entry files and directories written by any handle;
    /// `sync(2)` on other Unixes; each entry file in turn elsewhere. A no-op with
    /// [`Durability::Flush`], where every `put` already synced before returning.
    fn flush(&self) -> Result<()> {
        if self.durability == Durability::Flush {
            return Ok(());
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let root =
                std::fs::File::open(&self.root).map_err(|e| Error::io("opening", &self.root, e))?;
            rustix::fs::syncfs(&root)
                .map_err(|e| Error::io("syncing the filesystem of", &self.root, e.into()))?;
        }
        #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
        rustix::fs::sync();
        // Elsewhere each entry file is synced in turn (Windows needs write access to flush).
        #[cfg(not(unix))]
        for path in self.entry_files()? {
            let path = path?;
            match std::fs::OpenOptions::new().write(true).open(&path) {
                Ok(file) => file
                    .sync_all()
                    .map_err(|e| Error::io("syncing", &path, e))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("opening", &path, e)),
            }
        }
        Ok(())
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.meta(key)?.is_some())
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        let Some((path, mut file)) = self.open_key(key)? else {
            return Ok(None);
        };
        let (header, _) = self.load_head(&mut file, &path, Some(key))?;
        Ok(Some(EntryMeta::new(header.value_len)))
    }

    /// Entries go to temp files first, then one round of file syncs, then the renames, then one
    /// sync per touched directory at the end. Temp files are kept open until renamed (their
    /// lock marks them live), so a large batch goes in chunks of 256 files to
    /// stay far below the open-file limit. Each entry is replaced atomically; the batch as a
    /// whole is not (a crash midway leaves some entries new and some old).
    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        let dated: Vec<(&[u8], &[u8], Option<u64>)> =
            entries.iter().map(|&(k, v)| (k, v, None)).collect();
        self.put_many_with_deadlines(&dated)
    }

    /// Like `put_many`; with accounting on, each deadline goes into the sidecar's expiry
    /// index (so `Cache::cleanup` finds what a batch wrote with a TTL).
    fn put_many_with_deadlines(&self, entries: &[(&[u8], &[u8], Option<u64>)]) -> Result<()> {
        let mut touched = BTreeSet::new();
        for chunk in entries.chunks(PUT_MANY_CHUNK) {
            let mut written = Vec::with_capacity(chunk.len());
            for (key, value, _) in chunk {
                written.push((self.write_entry(key, value)?, self.entry_path(key)));
            }
            if self.durability == Durability::Flush {
                for (tmp, _) in &written {
                    sync_file(tmp)?;
                }
            }
            for (_, dest) in &written {
                touched.insert(dest.parent().expect("fan-out directory").to_path_buf());
            }
            // In order, so a later duplicate key is renamed last and wins.
            self.publish_chunk(written, chunk)?;
        }
        if self.durability == Durability::Flush {
            for dir in &touched {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Checks every entry file: header, key, file name and value checksum, streaming each
    /// value through a fixed buffer (mapped ones included), so memory stays bounded. Each
    /// entry that is damaged, not a regular file, or of a newer format is reported, under its
    /// key when the key could be read and checked, else under an empty key (the error names
    /// the file). Only errors about the store itself (listing `v1/`) end the walk.
    fn verify(&self) -> Result<VerifyReport> {
        let mut report = VerifyReport::default();
        for path in self.entry_files()? {
            let path = match path {
                Ok(path) => path,
                Err(e) if is_entry_damage(&e) => {
                    report.damaged.push((Vec::new(), e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let checked = match self.open_entry(&path) {
                Ok(Some(file)) => self.check_entry(file, &path, None),
                // Deleted since the listing.
                Ok(None) => continue,
                Err(e) => Err((None, e)),
            };
            report.checked += 1;
            match checked {
                Ok(_) => {}
                Err((key, e)) if is_entry_damage(&e) => {
                    report.damaged.push((key.unwrap_or_default(), e));
                }
                Err((_, e)) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Counts entry files by name without opening them, so a damaged entry is counted too
    /// (`keys`, `scan` and [`Store::verify`] report it).
    fn len(&self) -> Result<u64> {
        let mut n = 0;
        for path in self.entry_files()? {
            path?;
            n += 1;
        }
        Ok(n)
    }
}

impl DirStore {
    /// Removes `key`'s entry file; whether there was one.
    fn remove_entry_file(&self, key: &[u8]) -> Result<bool> {
        let Some((path, mut file)) = self.open_key(key)? else {
            return Ok(false);
        };
        // A file that provably holds another key is left alone; a damaged one at this key's
        // path is removed, since it can only have been this key's.
        match self.load_head(&mut file, &path, None) {
            Ok((_, stored)) if stored != key => return Ok(false),
            _ => {}
        }
        drop(file);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        self.sync_entry_dir(&path)?;
        Ok(true)
    }
}

/// Whether `e` is about one entry's file (reported by `verify`) rather than the store.
fn is_entry_damage(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupt { .. } | Error::NotOwned { .. } | Error::UpgradeRequired { .. }
    )
}
