//! [`DirStore`]: one file per key, under fan-out directories named from a hash of the key.
//!
//! # Layout
//!
//! ```text
//! <root>/
//! ├── cacher-dir.toml          layout version marker (format = "cacher-dir", version = 1)
//! ├── tmp/                     values being written: put-XXXXXX, renamed into v1/ when whole
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

mod format;
mod marker;
mod options;
mod path;
mod read;
#[cfg(test)]
mod tests;
mod tmp;
mod write;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::fs::sync_dir;
use crate::{Blob, Durability, EntryMeta, Error, Result, Store};
use read::{Check, Target};
use write::sync_file;

pub use options::DirStoreOptions;

/// Entry files at least this long are read through a memory map, smaller ones are copied
/// into a `Vec` (and their checksum checked).
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
const TMP_PREFIX: &str = "put-";
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
/// short: it reads as [`Error::Corrupt`](crate::Error::Corrupt), never as a wrong value.
///
/// Reads: entry files of at least [`DEFAULT_MMAP_THRESHOLD`] bytes come back as
/// [`Blob::is_mapped`], so a multi-GiB value is paged in on demand rather than copied; smaller ones
/// as owned blobs, with their checksum checked. Mapped values are checked by
/// [`DirStore::verify`] only (checking on read would page the whole value in).
///
/// Caveat: the store never modifies a file in place, but a process *outside* the store that
/// truncates an entry file while it is mapped makes the next access to the missing pages raise
/// `SIGBUS`. Do not edit a store's files by hand while it is in use.
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
}

impl DirStore {
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
        let hex = blake3::hash(key).to_hex();
        self.entries.join(&hex[..2]).join(hex.as_str())
    }

    /// Reads `key`'s whole entry and checks its value checksum, which [`Store::read`] skips
    /// for memory-mapped values. `Ok(false)` when the key is missing.
    pub fn verify(&self, key: &[u8]) -> Result<bool> {
        let path = self.entry_path(key);
        match self.open_entry(&path)? {
            None => Ok(false),
            Some(file) => {
                self.load(file, &path, Some(key), Check::Full, Target::ViewOrCopy)?;
                Ok(true)
            }
        }
    }

    /// Checks every entry (header, key, value checksum, file name); returns how many were
    /// checked, or the first damaged one as [`Error::Corrupt`].
    pub fn verify_all(&self) -> Result<u64> {
        let mut n = 0;
        for path in self.entry_files()? {
            let path = path?;
            let Some(file) = self.open_entry(&path)? else {
                continue;
            };
            self.load(file, &path, None, Check::Full, Target::ViewOrCopy)?;
            n += 1;
        }
        Ok(n)
    }
}

impl Store for DirStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        let path = self.entry_path(key);
        let Some(file) = self.open_entry(&path)? else {
            return Ok(None);
        };
        Ok(Some(
            self.load(
                file,
                &path,
                Some(key),
                Check::SkipMappedValue,
                Target::ViewOrCopy,
            )?
            .1,
        ))
    }

    /// A copy is wanted: read into a `Vec` at any size (never through a map, whose page
    /// faults cost more than a read when every byte is copied anyway).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(key);
        let Some(file) = self.open_entry(&path)? else {
            return Ok(None);
        };
        Ok(Some(
            self.load(file, &path, Some(key), Check::Full, Target::Copy)?
                .1
                .into_vec(),
        ))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let dest = self.entry_path(key);
        let tmp = self.write_entry(key, value)?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        self.publish(tmp, &dest)?;
        self.sync_entry_dir(&dest)
    }

    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let dest = self.entry_path(key);
        let (tmp, n) = self.write_streamed(key, reader)?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        self.publish(tmp, &dest)?;
        self.sync_entry_dir(&dest)?;
        Ok(n)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let path = self.entry_path(key);
        let Some(mut file) = self.open_entry(&path)? else {
            return Ok(false);
        };
        // A file that provably holds another key is left alone; a damaged one at this key's
        // path is removed, since it can only have been this key's.
        match self.load_head(&mut file, &path, None) {
            Ok((_, stored)) if stored != key => return Ok(false),
            _ => {}
        }
        drop(file);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io("removing", &path, e)),
        }
        self.sync_entry_dir(&path)?;
        Ok(true)
    }

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
            // The value is copied out anyway, so its checksum is checked too.
            Some(
                self.load(file, &path, None, Check::Full, Target::ViewOrCopy)
                    .map(|(k, v)| (k, v.into_vec())),
            )
        })))
    }

    /// Syncs everything written with [`Durability::None`]: one `syncfs(2)` of the store's
    /// filesystem on Linux, which covers entry files and directories written by any handle;
    /// `sync(2)` on other Unixes; each entry file in turn elsewhere. A no-op with [`Durability::Flush`], where every `put` already
    /// synced before returning.
    fn flush(&self) -> Result<()> {
        if self.durability == Durability::Flush {
            return Ok(());
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let root = File::open(&self.root).map_err(|e| Error::io("opening", &self.root, e))?;
            rustix::fs::syncfs(&root)
                .map_err(|e| Error::io("syncing the filesystem of", &self.root, e.into()))?;
        }
        #[cfg(all(unix, not(any(target_os = "linux", target_os = "android"))))]
        rustix::fs::sync();
        // Elsewhere each entry file is synced in turn (Windows needs write access to flush).
        #[cfg(not(unix))]
        for path in self.entry_files()? {
            let path = path?;
            match fs::OpenOptions::new().write(true).open(&path) {
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
        let path = self.entry_path(key);
        let Some(mut file) = self.open_entry(&path)? else {
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
        let mut touched = BTreeSet::new();
        for chunk in entries.chunks(PUT_MANY_CHUNK) {
            let mut written = Vec::with_capacity(chunk.len());
            for (key, value) in chunk {
                written.push((self.write_entry(key, value)?, self.entry_path(key)));
            }
            if self.durability == Durability::Flush {
                for (tmp, _) in &written {
                    sync_file(tmp)?;
                }
            }
            // In order, so a later duplicate key is renamed last and wins.
            for (tmp, dest) in written {
                self.publish(tmp, &dest)?;
                touched.insert(dest.parent().expect("fan-out directory").to_path_buf());
            }
        }
        if self.durability == Durability::Flush {
            for dir in &touched {
                sync_dir(dir)?;
            }
        }
        Ok(())
    }

    /// Counts entry files by name without opening them, so a damaged entry is counted too
    /// (`keys`, `scan` and [`DirStore::verify_all`] report it).
    fn len(&self) -> Result<u64> {
        let mut n = 0;
        for path in self.entry_files()? {
            path?;
            n += 1;
        }
        Ok(n)
    }
}
