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
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

use crate::{Blob, Durability, EntryMeta, Error, Result, Store};
use format::{Fault, Header, HEADER_LEN};

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
const STREAM_BUF: usize = 256 * 1024;
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

/// Options for opening a [`DirStore`]: `DirStore::options().durability(..).open(path)`.
#[derive(Debug, Clone)]
pub struct DirStoreOptions {
    durability: Durability,
    mmap_threshold: u64,
    stale_temp_age: Duration,
}

impl Default for DirStoreOptions {
    fn default() -> Self {
        DirStoreOptions {
            durability: Durability::Flush,
            mmap_threshold: DEFAULT_MMAP_THRESHOLD,
            stale_temp_age: DEFAULT_STALE_TEMP_AGE,
        }
    }
}

impl DirStoreOptions {
    /// The defaults: [`Durability::Flush`], [`DEFAULT_MMAP_THRESHOLD`],
    /// [`DEFAULT_STALE_TEMP_AGE`].
    pub fn new() -> Self {
        Self::default()
    }

    /// How far a write has gone before `put` returns.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Entry files of at least `bytes` bytes are read through a memory map.
    pub fn mmap_threshold(mut self, bytes: u64) -> Self {
        self.mmap_threshold = bytes;
        self
    }

    /// Temp files left by a crashed writer are removed on open once untouched this long (and
    /// not locked by a live writer).
    pub fn stale_temp_age(mut self, age: Duration) -> Self {
        self.stale_temp_age = age;
        self
    }

    /// Opens the store in `path`, creating the directory and its version marker if needed.
    ///
    /// Fails with [`Error::UpgradeRequired`] when the marker names a newer layout and with
    /// [`Error::Corrupt`] when the marker is not one. Stale temp files are removed on a best
    /// effort basis (a failure there does not fail the open).
    pub fn open(self, path: impl AsRef<Path>) -> Result<DirStore> {
        let root = path.as_ref().to_path_buf();
        fs::create_dir_all(&root)
            .map_err(|e| Error::io("creating the store directory", &root, e))?;
        let store = DirStore {
            entries: root.join(ENTRIES_DIR),
            tmp: root.join(TMP_DIR),
            root,
            durability: self.durability,
            mmap_threshold: self.mmap_threshold.max(HEADER_LEN as u64 + 1),
        };
        // A newer layout is refused before anything is created in it.
        let has_marker = store.check_marker()?;
        for dir in [&store.tmp, &store.entries] {
            create_dir_if_missing(dir)?;
        }
        if !has_marker {
            store.write_marker()?;
        }
        let _ = store.remove_stale_temp_files(self.stale_temp_age);
        Ok(store)
    }
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
                self.load(file, &path, Some(key), true, false)?;
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
            self.load(file, &path, None, true, false)?;
            n += 1;
        }
        Ok(n)
    }

    /// Removes temp files left in `tmp/` by writers that died, and returns how many.
    ///
    /// A temp file is removed only when it has not been modified for `older_than` *and* no
    /// process holds the lock every writer takes on its temp file for as long as it writes
    /// (`flock`, released by the kernel when the writer dies). The age guards the instant
    /// between a writer creating its file and locking it. If a live writer's file were removed
    /// anyway, its rename would fail and its `put` return an error: an entry is never damaged.
    pub fn remove_stale_temp_files(&self, older_than: Duration) -> Result<u64> {
        let now = SystemTime::now();
        let mut removed = 0;
        let listing = fs::read_dir(&self.tmp).map_err(|e| Error::io("listing", &self.tmp, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.tmp, e))?;
            let path = entry.path();
            let file = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io("opening a temp file", &path, e)),
            };
            let modified = file
                .metadata()
                .and_then(|m| m.modified())
                .map_err(|e| Error::io("reading the age of", &path, e))?;
            let age = now.duration_since(modified).unwrap_or(Duration::ZERO);
            if age < older_than {
                continue;
            }
            match file.try_lock() {
                Ok(()) => {}
                Err(fs::TryLockError::WouldBlock) => continue,
                Err(fs::TryLockError::Error(e)) => {
                    return Err(Error::io("locking a temp file", &path, e))
                }
            }
            match fs::remove_file(&path) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("removing a stale temp file", &path, e)),
            }
        }
        Ok(removed)
    }

    /// Checks the layout marker; `Ok(false)` when there is none yet.
    fn check_marker(&self) -> Result<bool> {
        let marker = self.root.join(format::MARKER_NAME);
        match fs::read_to_string(&marker) {
            Ok(text) => format::parse_marker(&text)
                .map(|_| true)
                .map_err(|f| fault_error(f, &marker, None, format::LAYOUT_VERSION)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                Err(Error::corrupt(&marker, None, "the marker is not UTF-8"))
            }
            Err(e) => Err(Error::io("reading", &marker, e)),
        }
    }

    /// Writes the layout marker atomically (through `tmp/`), so a concurrent opener sees no
    /// marker or a whole one. Openers racing here write the same text; either rename may win.
    fn write_marker(&self) -> Result<()> {
        let marker = self.root.join(format::MARKER_NAME);
        let mut tmp = NamedTempFile::new_in(&self.tmp)
            .map_err(|e| Error::io("creating a temp file in", &self.tmp, e))?;
        tmp.write_all(format::marker_text().as_bytes())
            .map_err(|e| Error::io("writing", tmp.path().to_path_buf(), e))?;
        if self.durability == Durability::Flush {
            sync_file(&tmp)?;
        }
        tmp.persist(&marker)
            .map_err(|e| Error::io("renaming into place", &marker, e.error))?;
        if self.durability == Durability::Flush {
            // Makes the marker and the new `tmp/` and `v1/` directories durable.
            sync_dir(&self.root)?;
        }
        Ok(())
    }

    /// Writes `key` and a value into a new locked temp file; returns it unsynced.
    fn write_temp(
        &self,
        key: &[u8],
        write_value: impl FnOnce(&mut File, &Path, &[u8; HEADER_LEN]) -> Result<u64>,
    ) -> Result<(NamedTempFile, u64)> {
        if u32::try_from(key.len()).is_err() {
            return Err(Error::InvalidKey {
                key: crate::KeyDisplay::new(key),
                reason: format!(
                    "{} bytes is longer than a DirStore key may be (4 GiB)",
                    key.len()
                ),
            });
        }
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.tmp)
            .map_err(|e| Error::io("creating a temp file in", &self.tmp, e))?;
        let path = tmp.path().to_path_buf();
        // Held until the file is closed after its rename; tells a cleaner it is in use.
        tmp.as_file()
            .lock()
            .map_err(|e| Error::io("locking", &path, e))?;
        let header = Header::encode(key, 0, 0);
        let n = write_value(tmp.as_file_mut(), &path, &header)?;
        Ok((tmp, n))
    }

    /// Moves a whole temp file over `key`'s entry; creates the fan-out directory on first use.
    /// Does not sync the entry's directory.
    fn publish(&self, tmp: NamedTempFile, dest: &Path) -> Result<()> {
        #[cfg(target_os = "linux")]
        let tmp = match exchange(tmp, dest)? {
            None => return Ok(()),
            Some(tmp) => tmp,
        };
        let tmp = match tmp.persist(dest) {
            Ok(_) => return Ok(()),
            Err(e) if e.error.kind() == io::ErrorKind::NotFound => e.file,
            Err(e) => return Err(Error::io("renaming into place", dest, e.error)),
        };
        let fanout = dest.parent().expect("entry paths have a fan-out directory");
        create_dir_if_missing(fanout)?;
        if self.durability == Durability::Flush {
            sync_dir(&self.entries)?;
        }
        tmp.persist(dest)
            .map(drop)
            .map_err(|e| Error::io("renaming into place", dest, e.error))
    }

    fn write_entry(&self, key: &[u8], value: &[u8]) -> Result<NamedTempFile> {
        let (tmp, _) = self.write_temp(key, |file, path, _| {
            let header = Header::encode(key, value.len() as u64, crc32fast::hash(value));
            // One write for small entries; large values are written from the caller's slice
            // instead of being copied next to the header.
            if value.len() < 64 * 1024 {
                let mut buf = Vec::with_capacity(HEADER_LEN + key.len() + value.len());
                buf.extend_from_slice(&header);
                buf.extend_from_slice(key);
                buf.extend_from_slice(value);
                file.write_all(&buf)
            } else {
                let mut head = Vec::with_capacity(HEADER_LEN + key.len());
                head.extend_from_slice(&header);
                head.extend_from_slice(key);
                file.write_all(&head).and_then(|()| file.write_all(value))
            }
            .map_err(|e| Error::io("writing", path, e))?;
            Ok(value.len() as u64)
        })?;
        Ok(tmp)
    }

    fn open_entry(&self, path: &Path) -> Result<Option<File>> {
        match File::open(path) {
            Ok(f) => Ok(Some(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("opening", path, e)),
        }
    }

    /// Reads a whole entry from `file`: through a map when large, else into a `Vec`.
    /// With `expect_key`, a file holding another key is corrupt; without it (iteration), a
    /// file whose name is not its key's hash is. `verify` checks the value checksum of a
    /// mapped value too. Returns the key and the value.
    fn load(
        &self,
        mut file: File,
        path: &Path,
        expect_key: Option<&[u8]>,
        verify: bool,
        owned: bool,
    ) -> Result<(Vec<u8>, Blob)> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading the length of", path, e))?
            .len();
        let mapped = !owned && file_len >= self.mmap_threshold;
        if !mapped && file_len > SPLIT_READ {
            return self.load_owned_split(file, file_len, path, expect_key);
        }
        if mapped {
            let map = map_file(&file, path)?;
            // The map's own length, in case the file changed length since the fstat above.
            let header = decode(
                &map[..HEADER_LEN.min(map.len())],
                map.len() as u64,
                path,
                expect_key,
            )?;
            let key = &map[HEADER_LEN..header.value_offset()];
            self.check_key(&header, key, path, expect_key)?;
            let range = header.value_offset()..map.len();
            if verify {
                header
                    .check_value(&map[range.clone()])
                    .map_err(|f| fault_error(f, path, Some(key), format::FORMAT_VERSION))?;
            }
            let key = key.to_vec();
            return Ok((key, Blob::mapped(Arc::new(map), range)));
        }
        // Entry files never change in place, so the length from fstat is the length to read;
        // reading exactly that saves the extra end-of-file probe `read_to_end` makes.
        let mut buf = vec![0u8; file_len as usize];
        let got = read_up_to(&mut file, &mut buf).map_err(|e| Error::io("reading", path, e))?;
        buf.truncate(got);
        // The length is checked against the bytes read, not the fstat above.
        let header = decode(
            &buf[..HEADER_LEN.min(buf.len())],
            buf.len() as u64,
            path,
            expect_key,
        )?;
        let key = &buf[HEADER_LEN..header.value_offset()];
        self.check_key(&header, key, path, expect_key)?;
        header
            .check_value(&buf[header.value_offset()..])
            .map_err(|f| fault_error(f, path, Some(key), format::FORMAT_VERSION))?;
        let key = key.to_vec();
        buf.drain(..header.value_offset());
        Ok((key, Blob::from(buf)))
    }

    /// Reads a large entry into a `Vec` holding just the value: the header and key first,
    /// then the value straight into its own buffer, so no memmove of the value follows.
    fn load_owned_split(
        &self,
        mut file: File,
        file_len: u64,
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Blob)> {
        let mut head = [0u8; HEADER_LEN];
        let got = read_up_to(&mut file, &mut head).map_err(|e| Error::io("reading", path, e))?;
        let header = decode(&head[..got], file_len, path, expect_key)?;
        let mut key = vec![0u8; header.value_offset() - HEADER_LEN];
        let got = read_up_to(&mut file, &mut key).map_err(|e| Error::io("reading", path, e))?;
        if got != key.len() {
            return Err(Error::corrupt(
                path,
                expect_key,
                "file shorter than its header says",
            ));
        }
        self.check_key(&header, &key, path, expect_key)?;
        let value_len = usize::try_from(file_len - header.value_offset() as u64)
            .map_err(|_| Error::corrupt(path, expect_key, "value too large for memory"))?;
        let mut value = vec![0u8; value_len];
        let got = read_up_to(&mut file, &mut value).map_err(|e| Error::io("reading", path, e))?;
        if got != value_len {
            return Err(Error::corrupt(
                path,
                expect_key,
                "file shorter than its header says",
            ));
        }
        header
            .check_value(&value)
            .map_err(|f| fault_error(f, path, Some(&key), format::FORMAT_VERSION))?;
        Ok((key, Blob::from(value)))
    }

    /// Reads only the header and key of an entry file.
    fn load_head(
        &self,
        file: &mut File,
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<(Header, Vec<u8>)> {
        let file_len = file
            .metadata()
            .map_err(|e| Error::io("reading the length of", path, e))?
            .len();
        let mut head = [0u8; HEADER_LEN];
        let got = read_up_to(file, &mut head).map_err(|e| Error::io("reading", path, e))?;
        let header = decode(&head[..got], file_len, path, expect_key)?;
        let mut key = vec![0u8; header.key_len as usize];
        file.read_exact(&mut key)
            .map_err(|e| Error::io("reading", path, e))?;
        self.check_key(&header, &key, path, expect_key)?;
        Ok((header, key))
    }

    fn check_key(
        &self,
        header: &Header,
        key: &[u8],
        path: &Path,
        expect_key: Option<&[u8]>,
    ) -> Result<()> {
        header.check_key(key).map_err(|f| {
            fault_error(
                f,
                path,
                Some(expect_key.unwrap_or(key)),
                format::FORMAT_VERSION,
            )
        })?;
        let misplaced = match expect_key {
            Some(expected) => expected != key,
            None => self.entry_path(key) != path,
        };
        if misplaced {
            return Err(Error::corrupt(
                path,
                Some(expect_key.unwrap_or(key)),
                format!(
                    "the file holds key {} but its name is the hash of another key",
                    crate::KeyDisplay::new(key)
                ),
            ));
        }
        Ok(())
    }

    /// Every entry file, walking the fan-out directories lazily; temp files live in `tmp/`
    /// and names that are not entries are skipped.
    fn entry_files(&self) -> Result<impl Iterator<Item = Result<PathBuf>> + '_> {
        let mut fanouts = Vec::new();
        let listing =
            fs::read_dir(&self.entries).map_err(|e| Error::io("listing", &self.entries, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("listing", &self.entries, e))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| is_hex(n, 2)) {
                fanouts.push(entry.path());
            }
        }
        fanouts.sort();
        Ok(fanouts.into_iter().flat_map(|dir| {
            let listing = match fs::read_dir(&dir) {
                Ok(l) => l,
                // Removed by hand since the listing: nothing in it to report.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Box::new(std::iter::empty()) as Box<dyn Iterator<Item = _>>
                }
                Err(e) => return Box::new(std::iter::once(Err(Error::io("listing", &dir, e)))),
            };
            Box::new(listing.filter_map(move |entry| match entry {
                Err(e) => Some(Err(Error::io("listing", &dir, e))),
                Ok(entry) => {
                    let name = entry.file_name();
                    name.to_str()
                        .is_some_and(|n| is_hex(n, 64))
                        .then(|| Ok(entry.path()))
                }
            }))
        }))
    }

    fn sync_entry_dir(&self, dest: &Path) -> Result<()> {
        if self.durability == Durability::Flush {
            sync_dir(dest.parent().expect("entry paths have a fan-out directory"))?;
        }
        Ok(())
    }
}

impl Store for DirStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        let path = self.entry_path(key);
        let Some(file) = self.open_entry(&path)? else {
            return Ok(None);
        };
        Ok(Some(self.load(file, &path, Some(key), false, false)?.1))
    }

    /// A copy is wanted: read into a `Vec` at any size (never through a map, whose page
    /// faults cost more than a read when every byte is copied anyway).
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let path = self.entry_path(key);
        let Some(file) = self.open_entry(&path)? else {
            return Ok(None);
        };
        Ok(Some(
            self.load(file, &path, Some(key), false, true)?.1.into_vec(),
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
        let (tmp, n) = self.write_temp(key, |file, path, placeholder| {
            let io_err = |e| Error::io("writing", path, e);
            file.write_all(placeholder).map_err(io_err)?;
            file.write_all(key).map_err(io_err)?;
            let mut crc = crc32fast::Hasher::new();
            let mut buf = vec![0u8; STREAM_BUF];
            let mut n = 0u64;
            loop {
                let got = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(got) => got,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io("reading the value for", path, e)),
                };
                crc.update(&buf[..got]);
                file.write_all(&buf[..got]).map_err(io_err)?;
                n += got as u64;
            }
            // The lengths and checksum are known only now: fill in the header.
            let header = Header::encode(key, n, crc.finalize());
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&header))
                .map_err(io_err)?;
            Ok(n)
        })?;
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
                self.load(file, &path, None, true, false)
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

fn decode(head: &[u8], file_len: u64, path: &Path, key: Option<&[u8]>) -> Result<Header> {
    Header::decode(head, file_len).map_err(|f| fault_error(f, path, key, format::FORMAT_VERSION))
}

fn fault_error(fault: Fault, path: &Path, key: Option<&[u8]>, supported: u32) -> Error {
    match fault {
        Fault::Corrupt(reason) => Error::corrupt(path, key, reason),
        Fault::Future(found) => Error::UpgradeRequired {
            path: path.to_path_buf(),
            found,
            supported,
        },
    }
}

fn map_file(file: &File, path: &Path) -> Result<memmap2::Mmap> {
    let len = file
        .metadata()
        .map_err(|e| Error::io("reading the metadata of", path, e))?
        .len();
    let len = usize::try_from(len).map_err(|_| {
        Error::io(
            "memory-mapping",
            path,
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                "file larger than the address space",
            ),
        )
    })?;
    // Sound by the rename-only rule of `crate::mmap::map_immutable`.
    crate::mmap::map_immutable(file, len, path)
}

fn sync_file(tmp: &NamedTempFile) -> Result<()> {
    // fdatasync covers the data and the length, all a new file needs to be read back.
    tmp.as_file()
        .sync_data()
        .map_err(|e| Error::io("syncing", tmp.path().to_path_buf(), e))
}

/// Makes a rename or create inside `dir` durable.
/// Replaces an existing entry by swapping the temp file with it (`renameat2` with
/// `RENAME_EXCHANGE`, atomic like a rename), then deletes the old entry, now at the temp path.
/// Returns the temp file back when there is nothing to swap with (no entry yet, or a file
/// system without exchange support): the caller renames it instead.
///
/// Why not a plain rename over the entry: ext4 (with its default `auto_da_alloc`) starts
/// writeback of the new file on every rename that replaces one, which made a 100 B put cost
/// 1.5x a raw in-place write; the exchange does not trigger it (measured: 42 µs against 101 µs
/// for a rename and 78 µs for the raw write). A crash between the swap and the delete leaves
/// the old value under the temp path, where the stale-temp cleanup removes it.
#[cfg(target_os = "linux")]
fn exchange(tmp: NamedTempFile, dest: &Path) -> Result<Option<NamedTempFile>> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, tmp.path(), CWD, dest, RenameFlags::EXCHANGE) {
        Ok(()) => {
            let (file, old) = tmp.into_parts();
            // Deleting the old entry's file; the new one (and its lock) is `file`.
            match old.close() {
                // A stale-temp cleaner may have removed it first: same outcome.
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io("removing the replaced entry", dest, e))
                }
                _ => {}
            }
            drop(file);
            Ok(None)
        }
        Err(Errno::NOENT | Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => Ok(Some(tmp)),
        Err(e) => Err(Error::io("replacing", dest, e.into())),
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let handle = File::open(dir).map_err(|e| Error::io("opening", dir, e))?;
        handle
            .sync_all()
            .map_err(|e| Error::io("syncing the directory", dir, e))?;
    }
    // Windows cannot open a directory as a file; NTFS journals renames itself.
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn create_dir_if_missing(dir: &Path) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("creating the directory", dir, e)),
    }
}

/// Above this size an owned read fetches the value into its own buffer instead of reading
/// the whole file and moving the value down over the header.
const SPLIT_READ: u64 = 64 << 10;

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn is_hex(name: &str, len: usize) -> bool {
    name.len() == len && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
