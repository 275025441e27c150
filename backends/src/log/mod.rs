//! [`LogStore`]: one append-only file of checksummed records and an in-memory index.
//!
//! The store's contract — format, files, crashes, processes, memory-map soundness, index
//! memory — is written on [`LogStore`] itself, where rustdoc shows it. `record` holds the
//! codec, `scan` the torn-tail rule, `positioned` the `pread`/`pwrite` shims.

mod positioned;
pub(crate) mod record;
mod scan;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use memmap2::Mmap;

use self::positioned::{read_full_at, write_all_at};
use self::record::{
    FileHeader, HeaderError, Kind, RecordHeader, FILE_HEADER_LEN, RECORD_HEADER_LEN,
};
use self::scan::{scan, Entry, Scanned};
use crate::{Blob, Durability, EntryMeta, Error, Result, Store};

/// How to open a [`LogStore`]: durability, read-only, auto-compaction.
///
/// ```
/// use cacher_store::{Durability, LogOptions, Store};
/// let dir = tempfile::tempdir()?;
/// let store = LogOptions::new()
///     .durability(Durability::None)
///     .auto_compact(0.5, 64 << 20)
///     .open(dir.path().join("store.log"))?;
/// store.put(b"k", b"v")?;
/// store.flush()?; // with Durability::None, flush is what makes writes durable
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LogOptions {
    durability: Durability,
    read_only: bool,
    auto_compact: Option<AutoCompact>,
}

#[derive(Debug, Clone, Copy)]
struct AutoCompact {
    garbage_ratio: f64,
    min_file_bytes: u64,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl LogOptions {
    /// A writer with [`Durability::Flush`] and no auto-compaction.
    pub fn new() -> Self {
        LogOptions {
            durability: Durability::Flush,
            read_only: false,
            auto_compact: None,
        }
    }

    /// [`Durability::Flush`] (the default): each `put`, `delete` and `put_many` is fdatasync'ed
    /// before it returns (`put_many` syncs once for the whole batch).
    /// [`Durability::None`]: no syncs; [`Store::flush`] syncs.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Opens without the writer lock, alongside a writer process; writes fail with
    /// [`Error::Unsupported`]. The file must exist. See [`LogStore`] for what a read-only
    /// handle sees.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// After a write, compacts when the file is at least `min_file_bytes` long and more than
    /// `garbage_ratio` (0.0..1.0) of its record bytes are overwritten values and tombstones.
    /// The write that triggers it waits for the compaction; if the compaction fails (say, the
    /// disk is full) the write still succeeds and the log stays as it was. Off by default.
    pub fn auto_compact(mut self, garbage_ratio: f64, min_file_bytes: u64) -> Self {
        self.auto_compact = Some(AutoCompact {
            garbage_ratio,
            min_file_bytes,
        });
        self
    }

    /// Opens (a writer creates the file if missing) the log at `path`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<LogStore> {
        LogStore::open_with(path.as_ref(), self.clone())
    }
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Valid records read (puts and tombstones, including overwritten ones).
    pub records: u64,
    /// Bytes after the last valid record that were not a whole record: a crash cut a write
    /// short. A writer cuts them off; a read-only handle leaves them and ignores them.
    pub torn_tail: Option<TornTail>,
}

/// A torn tail found at open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TornTail {
    /// Where it started (the file's new length, when cut).
    pub offset: u64,
    /// How many bytes it held.
    pub len: u64,
    /// What was wrong with its first record.
    pub reason: String,
    /// Whether it was truncated away (writers) or only skipped (read-only handles).
    pub cut: bool,
}

/// Sizes that tell when compaction is worth it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogStats {
    /// Length of the file up to the end of the last valid record, header included.
    pub file_bytes: u64,
    /// Bytes of the records of live entries (headers, keys and values).
    pub live_bytes: u64,
    /// Live entries.
    pub entries: u64,
    /// The file's generation: it changes each time compaction swaps in a new file.
    pub generation: u64,
}

impl LogStats {
    /// Share of the record bytes held by overwritten values and tombstones: 0.0 right after
    /// compaction, approaching 1.0 as garbage piles up.
    pub fn garbage_ratio(&self) -> f64 {
        let records = self.file_bytes.saturating_sub(FILE_HEADER_LEN);
        if records == 0 {
            0.0
        } else {
            records.saturating_sub(self.live_bytes) as f64 / records as f64
        }
    }
}

/// Where a value sits in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Loc {
    value_off: u64,
    value_len: u64,
}

impl Loc {
    fn record_len(&self, key_len: usize) -> u64 {
        RECORD_HEADER_LEN + key_len as u64 + self.value_len
    }

    fn record_start(&self, key_len: usize) -> u64 {
        self.value_off - key_len as u64 - RECORD_HEADER_LEN
    }
}

type Index = HashMap<Box<[u8]>, Loc>;

/// What readers share, behind one `RwLock`.
struct State {
    /// The file, for positioned writes (writer) and scans.
    file: Arc<File>,
    /// A read-only map of (a prefix of) the file; remapped when a value lies beyond it.
    map: Arc<Mmap>,
    index: Index,
    /// End of the last valid record: where the next record goes.
    end: u64,
    live_bytes: u64,
    generation: u64,
}

/// Updates the index (and the live byte count) for one valid record.
fn apply(index: &mut Index, live_bytes: &mut u64, entry: Entry) {
    match entry {
        Entry::Put {
            key,
            value_off,
            value_len,
        } => {
            let loc = Loc {
                value_off,
                value_len,
            };
            *live_bytes += loc.record_len(key.len());
            let key_len = key.len();
            if let Some(old) = index.insert(key.into_boxed_slice(), loc) {
                *live_bytes -= old.record_len(key_len);
            }
        }
        Entry::Tombstone { key } => {
            if let Some(old) = index.remove(&key[..]) {
                *live_bytes -= old.record_len(key.len());
            }
        }
    }
}

impl State {
    fn apply(&mut self, entry: Entry) {
        apply(&mut self.index, &mut self.live_bytes, entry);
    }
}

/// A persistent store in one append-only file, for one writer process and any number of
/// readers.
///
/// Values are lent from a memory map of the file ([`Blob::is_mapped`]); `put_reader` streams a
/// value into the file without holding it in memory. Deletes and overwrites leave garbage
/// behind until [`LogStore::compact`] (or [`LogOptions::auto_compact`]) rewrites the live
/// records into a new file.
///
/// Durability: [`Durability::Flush`] by default (fdatasync before `put` returns, once per
/// `put_many`); [`Durability::None`] through [`LogOptions::durability`].
///
/// ```
/// use cacher_store::{LogOptions, LogStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("store.log");
/// let store = LogStore::open(&path)?;
/// store.put(b"greeting", b"hello")?;
/// store.put(b"greeting", b"hello again")?; // the old record becomes garbage
/// store.delete(b"gone")?;
///
/// // A read-only handle (in this or another process) sees what the writer appended.
/// let reader = LogOptions::new().read_only(true).open(&path)?;
/// assert_eq!(reader.get(b"greeting")?.as_deref(), Some(&b"hello again"[..]));
///
/// // Reads lend bytes from the memory map instead of copying.
/// let blob = store.read(b"greeting")?.unwrap();
/// assert!(blob.is_zero_copy());
///
/// assert!(store.stats().garbage_ratio() > 0.0);
/// store.compact()?;
/// assert_eq!(store.stats().garbage_ratio(), 0.0);
/// assert_eq!(&blob[..], b"hello again"); // still valid: the old file lives while mapped
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Format
/// A 32-byte file header, then records; a delete appends a tombstone record. The index maps
/// each live key to where its value sits; opening scans the file and rebuilds it.
///
/// ```text
/// file header (32 bytes, once at offset 0)
/// +---------+----------+----------+------------+------------+----------+
/// | magic   | version  | flags    | generation | header crc | reserved |
/// | 8 bytes | u32 LE   | u32 LE=0 | u64 LE     | u32 LE     | 4 bytes  |
/// +---------+----------+----------+------------+------------+----------+
///  0         8          12         16           24           28        32
///  magic = b"CACHELOG"; header crc = crc32 of bytes 0..24; reserved = 0.
///  generation changes whenever compaction swaps a new file in, so a reader holding the old
///  file can tell that the path now names another file.
///
/// record (24-byte header, then the key, then the value), repeated until the end of the file
/// +------+----------+---------+-----------+------------+------------+-----+-------+
/// | kind | reserved | key len | value len | header crc | record crc | key | value |
/// | u8   | 3 bytes  | u32 LE  | u64 LE    | u32 LE     | u32 LE     |     |       |
/// +------+----------+---------+-----------+------------+------------+-----+-------+
///  0      1          4         8           16           20           24
///  kind: 1 = put, 2 = tombstone (value len 0), 3 = pending (a streamed put in progress).
///  header crc = crc32 of header bytes 0..16: lets a scan trust the lengths before reading on.
///  record crc = crc32 of header bytes 0..16, then key, then value: covers the whole record.
///  A pending record has value len 0 and record crc 0; `put_reader` writes it, streams the
///  value after the key, then overwrites the header with the real put header.
/// ```
///
/// All integers are fixed-width little-endian; the checksums are CRC-32 (ISO-HDLC, as
/// computed by `crc32fast`).
///
/// # Files
/// A store opened at `path` (e.g. `cache/store.log`) uses, beside it in the same directory:
/// - `store.log.lock` — the writer's OS lock (never deleted; empty);
/// - `store.log.creating`, `store.log.compacting` — short-lived files renamed over `store.log`
///   when it is created or compacted.
///
/// # Crashes
/// Records are only ever appended. A crash mid-append leaves a *torn tail* — bytes after the
/// last whole record that do not form a valid one — which the next writer open cuts (the
/// [`OpenReport`] says so). A bad record with a valid record after it is not a crash artefact
/// but damage, and opening fails with [`Error::Corrupt`] naming the offset; the rule is in
/// `backends/src/log/scan.rs`.
///
/// # Processes, and why the memory map is sound
/// One writer process at a time holds an exclusive OS lock (`flock`) on `store.log.lock`; a
/// second writer — another process, or a second writer handle in the same process, since the
/// lock belongs to the open file — gets [`Error::Locked`]. Any number of read-only handles
/// ([`LogOptions::read_only`]) may open the file alongside; they take no lock.
///
/// Values are lent from a shared, read-only memory map of the file. A mapped page whose bytes
/// change or vanish under the map would make a read return other bytes or fault (`SIGBUS`), so
/// these rules hold for every byte a [`Blob`] or the index points at:
/// 1. While a store is open its file is only appended to. Bytes of a record, once that record
///    is whole and valid, are never rewritten or truncated by this crate in any process.
/// 2. Only the writer holding the lock mutates the file. It rewrites bytes in place in exactly
///    two cases, both strictly after the last valid record: the pending header a streamed put
///    overwrites with the real one, and the torn tail it cuts at open (or a failed append it
///    rolls back). No handle in any process indexes those bytes, because a scan accepts only
///    whole records with matching checksums — so no map access ever touches them.
/// 3. Compaction never rewrites the file in place: it writes a new file and renames it over
///    the path. The old file (its inode) lives on, unchanged, for as long as any handle or map
///    still holds it, so old [`Blob`]s stay valid after a compaction.
/// 4. Scans read with `pread`, never through the map, so a file shorter than expected gives a
///    short read, not a fault.
///
/// What this cannot protect against: another program truncating or rewriting the file. That
/// is outside the contract, as for every memory-mapped store.
///
/// # What a read-only handle sees
/// A read-only handle sees the records that were in the file when it last refreshed. It
/// refreshes — indexes records appended since, or reopens the path if the file it holds was
/// replaced (by compaction's rename, or a delete and re-create: on unix the held file's link
/// count is then zero, one `fstat`; elsewhere the header's generation differs) — when a lookup
/// misses, before `keys`, `scan` and `len`, and on an explicit [`LogStore::refresh`]. A *hit*
/// does not refresh, so a key the writer overwrote since the last refresh reads the older
/// value until the next refresh.
///
/// # Index memory
/// The index is a `HashMap<Box<[u8]>, Loc>` with a 16-byte `Loc` (value offset and length):
/// a 32-byte bucket (key pointer and length, `Loc`) plus one control byte, at hashbrown's
/// load factor of 7/16 to 7/8 (so 38 to 75 bytes of table per entry, depending on where the
/// entry count sits between two power-of-two capacities), plus the key's own heap
/// allocation. Measured by `backends/tests/log_index_memory.rs` with a counting allocator,
/// 100 000 entries (load factor 0.76):
///
/// | key length | bytes per entry, requested | with glibc malloc's chunk rounding |
/// |---|---|---|
/// | 16 | 59.3 | 75.3 |
/// | 64 | 107.3 | 123.3 |
///
/// That is about 43 bytes of table plus the key (plus 8 to 16 bytes of malloc overhead): a
/// million 16-byte keys cost about 75 MB. Keeping only a 64-bit hash of long keys would cut a
/// 64-byte-key entry to about 40 bytes, but two keys can share a hash, so the index would need
/// collision chains and every hit would compare the key stored in the file; `keys()` would read
/// every key back from the file. For typical cache keys (digests and paths under 100 bytes)
/// the saving does not pay for that, so whole keys are kept.
pub struct LogStore {
    path: PathBuf,
    options: LogOptions,
    state: RwLock<State>,
    /// The writer's lock file (`None` for read-only handles). Its mutex also serializes
    /// appends, compaction and (read-only) refreshes.
    writer: Mutex<Option<File>>,
    report: OpenReport,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.path)
            .field("read_only", &self.options.read_only)
            .field("durability", &self.options.durability)
            .finish_non_exhaustive()
    }
}

/// Values at least this long are written straight from the caller's buffer instead of being
/// copied into the batch buffer first.
const DIRECT_WRITE: usize = 64 << 10;
/// The batch buffer is written out when it grows past this.
const BATCH_BUFFER: usize = 1 << 20;
/// Chunk size of `put_reader` and compaction copies.
const STREAM_CHUNK: usize = 256 << 10;

impl LogStore {
    /// Opens the log at `path` as its writer with [`Durability::Flush`], creating the file if
    /// it is missing. Fails with [`Error::Locked`] while another writer has it open.
    pub fn open(path: impl AsRef<Path>) -> Result<LogStore> {
        LogOptions::new().open(path)
    }

    /// Options for [`LogOptions::open`]: durability, read-only, auto-compaction.
    pub fn options() -> LogOptions {
        LogOptions::new()
    }

    fn open_with(path: &Path, options: LogOptions) -> Result<LogStore> {
        let path = path.to_path_buf();
        let lock = if options.read_only {
            None
        } else {
            Some(lock_writer(&path)?)
        };
        let file = if options.read_only {
            File::open(&path).map_err(|e| Error::io("opening", &path, e))?
        } else {
            let _ = std::fs::remove_file(sibling(&path, ".compacting")?);
            let len = match std::fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
                Err(e) => return Err(Error::io("opening", &path, e)),
            };
            if len == 0 {
                create_file(&path, new_generation())?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("opening", &path, e))?
        };
        let (state, scanned, file_len) = load(file, &path, !options.read_only)?;
        let report = OpenReport {
            records: scanned.records,
            torn_tail: scanned.tail.map(|tail| TornTail {
                offset: tail.offset,
                len: file_len - tail.offset,
                reason: tail.reason,
                cut: !options.read_only,
            }),
        };
        Ok(LogStore {
            path,
            options,
            state: RwLock::new(state),
            writer: Mutex::new(lock),
            report,
        })
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening found, including a torn tail that was cut.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Whether this handle was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.options.read_only
    }

    /// Sizes that tell when compaction is worth it (see [`LogStats::garbage_ratio`]).
    pub fn stats(&self) -> LogStats {
        let st = self.state();
        LogStats {
            file_bytes: st.end,
            live_bytes: st.live_bytes,
            entries: st.index.len() as u64,
            generation: st.generation,
        }
    }

    /// Brings a read-only handle up to date with the writer: indexes the records appended
    /// since the last refresh, or reopens the file if compaction swapped in a new one.
    /// Returns whether anything changed. A writer handle is always current (returns `false`).
    pub fn refresh(&self) -> Result<bool> {
        if !self.options.read_only {
            return Ok(false);
        }
        let _serial = self.writer_slot();
        let (file, end, generation) = {
            let st = self.state();
            (st.file.clone(), st.end, st.generation)
        };
        let meta = file
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", &self.path, e))?;
        if let Some(current) = self.replacement(&meta, generation)? {
            let (fresh, _, _) = load(current, &self.path, false)?;
            *self.state_mut() = fresh;
            return Ok(true);
        }
        let len = meta.len();
        if len <= end {
            return Ok(false);
        }
        let mut entries = Vec::new();
        let scanned = scan(&file, &self.path, end, len, true, &mut |e| entries.push(e))?;
        let mut st = self.state_mut();
        for e in entries {
            st.apply(e);
        }
        st.end = scanned.end;
        Ok(scanned.records > 0)
    }

    /// The file now at the path, when it is no longer the one this handle reads (compaction
    /// renamed a new one over it, or the log was deleted and created again).
    fn replacement(&self, held: &std::fs::Metadata, generation: u64) -> Result<Option<File>> {
        let open = || File::open(&self.path).map_err(|e| Error::io("opening", &self.path, e));
        // On unix the file we hold loses its last link when another is renamed over it: one
        // fstat tells, without opening the path on every refresh.
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let _ = generation;
            if held.nlink() == 0 {
                return open().map(Some);
            }
            Ok(None)
        }
        #[cfg(not(unix))]
        {
            let _ = held;
            let current = open()?;
            if read_header(&current, &self.path)?.generation != generation {
                return Ok(Some(current));
            }
            Ok(None)
        }
    }

    /// Rewrites the live records into a new file, fsyncs it, renames it over the log and
    /// fsyncs the directory; the index then points into the new file. Blobs read before stay
    /// valid (they map the old file). Read-only handles in other processes notice the new
    /// generation on their next refresh. Returns the stats after compaction.
    pub fn compact(&self) -> Result<LogStats> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "compact")?;
        self.compact_locked()?;
        Ok(self.stats())
    }

    fn compact_locked(&self) -> Result<()> {
        let tmp_path = sibling(&self.path, ".compacting")?;
        let (map, mut live, generation) = {
            let mut st = self.state_mut();
            let end = st.end;
            remap_to(&mut st, end, &self.path)?;
            let live: Vec<(u64, u64)> = st
                .index
                .iter()
                .map(|(k, loc)| (loc.record_start(k.len()), loc.record_len(k.len())))
                .collect();
            (st.map.clone(), live, st.generation)
        };
        // Copying in file order keeps reads of the new file sequential.
        live.sort_unstable();
        let io_err = |e| Error::io("writing the compacted log", &tmp_path, e);
        let tmp = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp_path)
            .map_err(io_err)?;
        let header = FileHeader {
            generation: generation.wrapping_add(1),
        };
        let mut moves = Vec::with_capacity(live.len());
        let mut out = std::io::BufWriter::with_capacity(STREAM_CHUNK, &tmp);
        let mut pos = FILE_HEADER_LEN;
        let written: io::Result<()> = (|| {
            use std::io::Write;
            out.write_all(&header.encode())?;
            for &(start, len) in &live {
                // Records hold no offsets, so a record is valid anywhere: copy its bytes as
                // they are (checksums included).
                out.write_all(&map[start as usize..(start + len) as usize])?;
                moves.push((start, pos));
                pos += len;
            }
            out.flush()
        })();
        drop(out);
        if let Err(e) = written.and_then(|()| tmp.sync_all()) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(io_err(e));
        }
        // Mapped before the rename: once the rename is done nothing may fail before the state
        // points at the new file, or later appends would go to the unlinked old one.
        let new_map = match map_file(&tmp, &tmp_path) {
            Ok(map) => map,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
        };
        if let Err(e) = std::fs::rename(&tmp_path, &self.path) {
            let _ = std::fs::remove_file(&tmp_path);
            return Err(Error::io("renaming the compacted log over", &self.path, e));
        }
        let mut st = self.state_mut();
        for (key, loc) in st.index.iter_mut() {
            let start = loc.record_start(key.len());
            let at = moves
                .binary_search_by_key(&start, |m| m.0)
                .expect("every live record was copied");
            loc.value_off = moves[at].1 + RECORD_HEADER_LEN + key.len() as u64;
        }
        st.file = Arc::new(tmp);
        st.map = new_map;
        st.end = pos;
        st.generation = header.generation;
        drop(st);
        sync_dir(&self.path)
    }

    fn state(&self) -> RwLockReadGuard<'_, State> {
        // Every update of the state is made whole before it is stored, so a panic elsewhere
        // cannot leave it half-written: the poison flag carries no information.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn writer_slot(&self) -> MutexGuard<'_, Option<File>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn writable(&self, slot: &mut MutexGuard<'_, Option<File>>, op: &'static str) -> Result<()> {
        if slot.is_none() {
            return Err(Error::Unsupported {
                op,
                path: self.path.clone(),
                reason: "the log was opened read-only".into(),
            });
        }
        Ok(())
    }

    /// The value's map and range, remapping when the value lies beyond the current map and
    /// refreshing a read-only handle on a miss.
    fn locate(&self, key: &[u8]) -> Result<Option<(Arc<Mmap>, Range<usize>)>> {
        let mut refreshed = false;
        loop {
            {
                let st = self.state();
                match st.index.get(key) {
                    Some(loc) if loc.value_off + loc.value_len <= st.map.len() as u64 => {
                        return Ok(Some((st.map.clone(), range(loc))));
                    }
                    Some(_) => {}
                    None if self.options.read_only && !refreshed => {}
                    None => return Ok(None),
                }
            }
            let mut st = self.state_mut();
            if let Some(loc) = st.index.get(key).copied() {
                remap_to(&mut st, loc.value_off + loc.value_len, &self.path)?;
                return Ok(Some((st.map.clone(), range(&loc))));
            }
            drop(st);
            self.refresh()?;
            refreshed = true;
        }
    }

    /// The index entry of `key`, refreshing a read-only handle on a miss.
    fn loc(&self, key: &[u8]) -> Result<Option<Loc>> {
        if let Some(loc) = self.state().index.get(key) {
            return Ok(Some(*loc));
        }
        if self.options.read_only && self.refresh()? {
            return Ok(self.state().index.get(key).copied());
        }
        Ok(None)
    }

    /// Appends `batch` as records after the last one, syncs per the durability setting, then
    /// updates the index. On failure the file is cut back to where it was.
    fn append(
        &self,
        slot: &mut MutexGuard<'_, Option<File>>,
        op: &'static str,
        batch: &[(Kind, &[u8], &[u8])],
    ) -> Result<()> {
        self.writable(slot, op)?;
        for (_, key, _) in batch {
            key_len(key)?;
        }
        let (file, start) = {
            let st = self.state();
            (st.file.clone(), st.end)
        };
        let mut entries = Vec::with_capacity(batch.len());
        let mut buf = Vec::new();
        let mut buf_start = start;
        let mut pos = start;
        let written: io::Result<()> = (|| {
            for &(kind, key, value) in batch {
                let mut data = crc32fast::Hasher::new();
                data.update(key);
                data.update(value);
                let header =
                    RecordHeader::encode(kind, key.len() as u32, value.len() as u64, &data);
                buf.extend_from_slice(&header);
                buf.extend_from_slice(key);
                let value_off = pos + RECORD_HEADER_LEN + key.len() as u64;
                if value.len() >= DIRECT_WRITE {
                    write_all_at(&file, &buf, buf_start)?;
                    buf.clear();
                    write_all_at(&file, value, value_off)?;
                    buf_start = value_off + value.len() as u64;
                } else {
                    buf.extend_from_slice(value);
                }
                pos = value_off + value.len() as u64;
                entries.push(match kind {
                    Kind::Put => Entry::Put {
                        key: key.to_vec(),
                        value_off,
                        value_len: value.len() as u64,
                    },
                    _ => Entry::Tombstone { key: key.to_vec() },
                });
                if buf.len() >= BATCH_BUFFER {
                    write_all_at(&file, &buf, buf_start)?;
                    buf_start += buf.len() as u64;
                    buf.clear();
                }
            }
            write_all_at(&file, &buf, buf_start)?;
            if self.options.durability != Durability::None {
                file.sync_data()?;
            }
            Ok(())
        })();
        if let Err(e) = written {
            let _ = file.set_len(start);
            return Err(Error::io("appending to", &self.path, e));
        }
        self.commit(pos, entries)
    }

    fn commit(&self, end: u64, entries: Vec<Entry>) -> Result<()> {
        {
            let mut st = self.state_mut();
            for e in entries {
                st.apply(e);
            }
            st.end = end;
        }
        if let Some(auto) = self.options.auto_compact {
            let stats = self.stats();
            if stats.file_bytes >= auto.min_file_bytes && stats.garbage_ratio() > auto.garbage_ratio
            {
                // The write itself is done and must not be reported as failed. A compaction
                // that fails leaves the log as it was; the next write retries it, and an
                // explicit `compact()` reports the error.
                let _ = self.compact_locked();
            }
        }
        Ok(())
    }
}

impl Store for LogStore {
    fn read(&self, key: &[u8]) -> Result<Option<Blob>> {
        Ok(self
            .locate(key)?
            .map(|(map, range)| Blob::mapped(map, range)))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut slot = self.writer_slot();
        self.append(&mut slot, "put", &[(Kind::Put, key, value)])
    }

    /// Streams the value into the log: a placeholder header, the value in chunks (checksummed
    /// on the way), then the real header written over the placeholder. A crash midway leaves
    /// a torn tail that the next open cuts.
    fn put_reader(&self, key: &[u8], reader: &mut dyn Read) -> Result<u64> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "put_reader")?;
        let key_len = key_len(key)?;
        let (file, start) = {
            let st = self.state();
            (st.file.clone(), st.end)
        };
        let value_off = start + RECORD_HEADER_LEN + key.len() as u64;
        let mut pos = value_off;
        let mut data = crc32fast::Hasher::new();
        data.update(key);
        let mut reader_failed = None;
        let written: io::Result<()> = (|| {
            let mut head = RecordHeader::encode_pending(key_len).to_vec();
            head.extend_from_slice(key);
            write_all_at(&file, &head, start)?;
            let mut chunk = vec![0u8; STREAM_CHUNK];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        reader_failed = Some(e);
                        return Ok(());
                    }
                };
                data.update(&chunk[..n]);
                write_all_at(&file, &chunk[..n], pos)?;
                pos += n as u64;
            }
            let header = RecordHeader::encode(Kind::Put, key_len, pos - value_off, &data);
            write_all_at(&file, &header, start)?;
            if self.options.durability != Durability::None {
                file.sync_data()?;
            }
            Ok(())
        })();
        if written.is_err() || reader_failed.is_some() {
            let _ = file.set_len(start);
        }
        if let Some(e) = reader_failed {
            return Err(Error::io("reading the value to stream into", &self.path, e));
        }
        written.map_err(|e| Error::io("appending to", &self.path, e))?;
        self.commit(
            pos,
            vec![Entry::Put {
                key: key.to_vec(),
                value_off,
                value_len: pos - value_off,
            }],
        )?;
        Ok(pos - value_off)
    }

    fn delete(&self, key: &[u8]) -> Result<bool> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "delete")?;
        // The writer's index is complete, so a key it lacks needs no tombstone.
        if !self.state().index.contains_key(key) {
            return Ok(false);
        }
        self.append(&mut slot, "delete", &[(Kind::Tombstone, key, &[])])?;
        Ok(true)
    }

    fn keys(&self) -> Result<Box<dyn Iterator<Item = Result<Vec<u8>>> + '_>> {
        self.refresh()?;
        let keys: Vec<Vec<u8>> = self.state().index.keys().map(|k| k.to_vec()).collect();
        Ok(Box::new(keys.into_iter().map(Ok)))
    }

    fn flush(&self) -> Result<()> {
        let slot = self.writer_slot();
        if slot.is_some() {
            let file = self.state().file.clone();
            file.sync_data()
                .map_err(|e| Error::io("syncing", &self.path, e))?;
        }
        Ok(())
    }

    fn contains(&self, key: &[u8]) -> Result<bool> {
        Ok(self.loc(key)?.is_some())
    }

    fn meta(&self, key: &[u8]) -> Result<Option<EntryMeta>> {
        Ok(self.loc(key)?.map(|l| EntryMeta::new(l.value_len)))
    }

    /// Appends every record (one write per MiB of small records) and syncs once. Each record
    /// is atomic on its own; a crash midway can keep a prefix of the batch, never a torn record.
    fn put_many(&self, entries: &[(&[u8], &[u8])]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let batch: Vec<(Kind, &[u8], &[u8])> =
            entries.iter().map(|&(k, v)| (Kind::Put, k, v)).collect();
        let mut slot = self.writer_slot();
        self.append(&mut slot, "put_many", &batch)
    }

    fn len(&self) -> Result<u64> {
        self.refresh()?;
        Ok(self.state().index.len() as u64)
    }
}

fn range(loc: &Loc) -> Range<usize> {
    // Both ends lie within the map (checked by the caller), so they fit in usize.
    loc.value_off as usize..(loc.value_off + loc.value_len) as usize
}

fn key_len(key: &[u8]) -> Result<u32> {
    u32::try_from(key.len()).map_err(|_| Error::InvalidKey {
        key: crate::KeyDisplay::new(key),
        reason: format!("{} bytes; a log key holds at most 4 GiB", key.len()),
    })
}

/// `path` with `suffix` appended to its file name (`store.log` -> `store.log.lock`).
fn sibling(path: &Path, suffix: &str) -> Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            "opening",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "a log path must name a file"),
        )
    })?;
    let mut name = name.to_os_string();
    name.push(suffix);
    Ok(path.with_file_name(name))
}

fn lock_writer(path: &Path) -> Result<File> {
    let lock_path = sibling(path, ".lock")?;
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| Error::io("opening the lock file", &lock_path, e))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            path: path.to_path_buf(),
            reason: format!(
                "another LogStore writer holds {} (open it read-only to read alongside)",
                lock_path.display()
            ),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io("locking", &lock_path, e)),
    }
}

/// A generation for a brand-new file: distinct from any file that was at this path before,
/// so a reader of a deleted-and-recreated log also notices.
fn new_generation() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ ((std::process::id() as u64) << 32)
}

/// Creates the log with its header: written to a side file and renamed into place, so the
/// path never names a file with a partial header.
fn create_file(path: &Path, generation: u64) -> Result<()> {
    let tmp = sibling(path, ".creating")?;
    let io_err = |e| Error::io("creating", path, e);
    let f = File::create(&tmp).map_err(io_err)?;
    write_all_at(&f, &FileHeader { generation }.encode(), 0)
        .and_then(|()| f.sync_all())
        .map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    sync_dir(path)
}

/// Makes a rename in `path`'s directory durable.
fn sync_dir(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io("syncing the directory", dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io("reading the length of", path, e))
}

fn read_header(file: &File, path: &Path) -> Result<FileHeader> {
    let mut b = [0u8; FILE_HEADER_LEN as usize];
    let n = read_full_at(file, &mut b, 0).map_err(|e| Error::io("reading", path, e))?;
    FileHeader::decode(&b[..n]).map_err(|e| match e {
        HeaderError::Corrupt(reason) => Error::corrupt(path, None, reason),
        HeaderError::Newer(found) => Error::UpgradeRequired {
            path: path.to_path_buf(),
            found,
            supported: record::FORMAT_VERSION,
        },
    })
}

/// Reads the header, scans every record and maps the file. A writer (`writer`) cuts a torn
/// tail off first — before the file is mapped, so no map in this process ever covered the cut
/// bytes. A read-only handle leaves the tail and scans as "live" (a writer may be appending).
fn load(file: File, path: &Path, writer: bool) -> Result<(State, Scanned, u64)> {
    let header = read_header(&file, path)?;
    let len = file_len(&file, path)?;
    let mut index = HashMap::new();
    let mut live_bytes = 0;
    let scanned = scan(&file, path, FILE_HEADER_LEN, len, !writer, &mut |e| {
        apply(&mut index, &mut live_bytes, e)
    })?;
    if let (Some(tail), true) = (&scanned.tail, writer) {
        file.set_len(tail.offset)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io("cutting the torn tail of", path, e))?;
    }
    let state = State {
        map: map_file(&file, path)?,
        file: Arc::new(file),
        index,
        end: scanned.end,
        live_bytes,
        generation: header.generation,
    };
    Ok((state, scanned, len))
}

/// Remaps when the map ends before `needed`.
fn remap_to(st: &mut State, needed: u64, path: &Path) -> Result<()> {
    if (st.map.len() as u64) < needed {
        st.map = map_file(&st.file, path)?;
    }
    Ok(())
}

/// On 64-bit unix the map reaches past the end of the file to the next multiple of this, so
/// appends rarely force a remap (which would also drop the pages already faulted in). Address
/// space is cheap there; the bytes past the end are never touched (see `map_file`).
#[cfg(all(unix, target_pointer_width = "64"))]
const MAP_STEP: u64 = 64 << 20;

fn map_file(file: &File, path: &Path) -> Result<Arc<Mmap>> {
    let len = file_len(file, path)?;
    #[cfg(all(unix, target_pointer_width = "64"))]
    let len = len.div_ceil(MAP_STEP).max(1) * MAP_STEP;
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
    // Sound by the append-only rule of `crate::mmap::map_immutable` (see also `LogStore` docs,
    // "Processes, and why the memory map is sound").
    Ok(Arc::new(crate::mmap::map_immutable(file, len, path)?))
}
