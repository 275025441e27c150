//! [`LogStore`]: one append-only file of checksummed records and an in-memory index.
//!
//! The store's contract — format, files, crashes, processes, memory-map soundness, index
//! memory — is written on [`LogStore`] itself, where rustdoc shows it. The work is split by
//! seam: `options` (how to open), `report` (what opening found, sizes), `record` (the codec),
//! `scan` (torn versus damaged tails), `identify` (a damaged record's key), `recover` (a
//! writer moving a damaged tail aside), `index` (the shared state and its map), `open` (lock,
//! create, load), `refresh` (read-only handles following the writer), `read` (lookups and the
//! checksum check), `append` (puts, batches, streamed puts), `compact`, `store` (the [`Store`]
//! methods), `positioned` (`pread`/`pwrite`), `fuzz` (fuzz entry points, tests only).

mod access;
mod append;
mod books;
mod checkpoint;
mod compact;
#[cfg(test)]
mod fuzz;
mod identify;
mod index;
mod open;
mod options;
mod periodic;
mod positioned;
mod read;
pub(crate) mod record;
mod recover;
mod refresh;
mod report;
mod scan;
mod state;
mod store;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use self::options::LogOptions;
pub use self::report::{Damage, DamagedTail, LogStats, OpenReport, TornReason, TornTail};
use self::state::State;
#[allow(unused_imports, reason = "named by the docs")]
use crate::{Blob, Durability, Error, Result, Store};

/// A persistent store in one append-only file, for one writer process and any number of
/// readers.
///
/// Values are lent from a memory map of the file ([`Blob::is_mapped`]); `put_reader` streams a
/// value into the file without holding it in memory. Deletes and overwrites leave garbage
/// behind until [`LogStore::compact`] (or [`LogOptions::auto_compact`]) rewrites the live
/// records into a new file.
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
/// # Durability
/// Set with [`LogOptions::durability`]. What each level promises:
///
/// | level | a write returns after | after a process crash | after a power loss |
/// |---|---|---|---|
/// | [`Durability::Flush`] (default) | fdatasync (once per `put_many`) | every acknowledged write | every acknowledged write |
/// | [`Durability::Periodic`] | the write to the OS; a background thread fdatasyncs within [`LogOptions::sync_interval`] (100 ms) | every acknowledged write | a consistent log missing at most the writes of the last interval (plus the sync's own time) |
/// | [`Durability::None`] | the write to the OS | every acknowledged write | no promise: unsynced writes may reach the disk out of order, and the open may then find corruption in the middle and refuse the log |
///
/// A process crash loses nothing at any level, since the writes are in the OS page cache.
/// `Periodic` keeps its power-loss promise by recording, after each background sync, how far
/// the log was synced (`<log>.synced`): at open, the first bad record past that offset starts
/// a torn tail that is copied aside and cut with everything after it, while damage before it
/// is still reported as damage. A background sync that fails is reported by the next write or
/// [`Store::flush`]. Dropping the store syncs what is left.
///
/// # Format
/// A 32-byte file header, then records; a delete appends a tombstone record. The index maps
/// each live key to where its value sits; opening scans the file and rebuilds it. Records come
/// in two layouts, told apart by header byte 1: v1 (what builds before format version 2
/// wrote) and v2 (what this build writes), so a v1 log keeps being read and, once written to,
/// holds v1 records followed by v2 ones.
///
/// ```text
/// file header (32 bytes, once at offset 0)
/// +---------+----------+----------+------------+------------+----------+
/// | magic   | version  | flags    | generation | header crc | reserved |
/// | 8 bytes | u32 LE   | u32 LE=0 | u64 LE     | u32 LE     | 4 bytes  |
/// +---------+----------+----------+------------+------------+----------+
///  0         8          12         16           24           28        32
///  magic = b"CACHELOG"; header crc = crc32 of bytes 0..24; reserved = 0.
///  version = 2 for a log created (or compacted) by this build; 1 for a log created before,
///  which keeps its header when v2 records are appended (a log is only appended to).
///  generation changes whenever compaction swaps a new file in, so a reader holding the old
///  file can tell that the path now names another file.
///
/// v2 record (36-byte header, key, value, 12-byte trailer), repeated until the end of the file
/// +------+--------+----------+---------+-----------+------------+------------+
/// | kind | layout | reserved | key len | value len | header crc | record crc |
/// | u8   | u8 = 2 | 2 bytes  | u32 LE  | u64 LE    | u32 LE     | u32 LE     |
/// +------+--------+----------+---------+-----------+------------+------------+
///  0      1        2          4         8           16           20           24
/// +---------------------------------------+-----+-------+-----------------------+
/// | key block: key len | key crc | check  | key | value | trailer = key block    |
/// |            u32 LE  | u32 LE  | u32 LE |     |       | (the same 12 bytes)    |
/// +---------------------------------------+-----+-------+-----------------------+
///  24                                      36
///  kind: 1 = put, 2 = tombstone (value len 0), 3 = pending (a streamed put in progress).
///  header crc = crc32 of header bytes 0..16, then 24..36: lets a scan trust the lengths
///  before reading on.
///  record crc = crc32 of header bytes 0..16, then key, then value: covers the whole record.
///  key block: the key's length (as at 4..8), key crc = crc32 of the key, check = crc32 of the
///  block's bytes 0..8. A record is valid when both crcs match and the trailer equals the key
///  block.
///  A pending record has value len 0 and record crc 0; `put_reader` writes it, streams the
///  value after the key, writes the trailer, then overwrites the header with the real put
///  header.
///
/// v1 record (24-byte header, then the key, then the value)
/// +------+--------+----------+---------+-----------+------------+------------+-----+-------+
/// | kind | layout | reserved | key len | value len | header crc | record crc | key | value |
/// | u8   | u8 = 0 | 2 bytes  | u32 LE  | u64 LE    | u32 LE     | u32 LE     |     |       |
/// +------+--------+----------+---------+-----------+------------+------------+-----+-------+
///  0      1        2          4         8           16           20           24
///  header crc = crc32 of header bytes 0..16; record crc as in v2.
/// ```
///
/// Why the key block: it names the key of a damaged record, which recovery must know to keep
/// the key's older value from coming back (see "Crashes and damage"). It is held three times
/// over — checked by the header crc, by its own check, and repeated as the trailer — so damage
/// to the header fields, to the block, or to both leaves one copy that tells the key.
///
/// All integers are fixed-width little-endian; the checksums are CRC-32 (ISO-HDLC, as
/// computed by `crc32fast`). A key holds at most 64 KiB (a write of a longer one is
/// [`Error::InvalidKey`]; a header declaring one is [`Error::Corrupt`], checked before the scan
/// allocates it), so no header, however damaged or planted, makes opening allocate more.
///
/// # Checked reads
/// Opening checks every record it scans: all of them, or those after the index checkpoint
/// (see "Opening fast"). [`Store::read`] (and `get`, `with_value`, `get_many`, `scan`)
/// checks the record again before lending the value, so bytes that changed on disk since are
/// [`Error::Corrupt`], never returned: values up to 1 MiB are hashed from the map, longer ones
/// through a small buffer with positioned reads (no page of the value is faulted in by the
/// check). [`Store::read_stream`] reads the value with positioned reads through the caller's
/// buffer (no map, bounded memory at any size), after checking the header and key; the record
/// checksum is checked by the end of the stream, where damage is an error instead of the end.
/// [`Store::read_unchecked`] skips the check; [`Store::verify`] checks every live record
/// and lists each damaged key.
///
/// # Files
/// A store opened at `path` (e.g. `cache/store.log`) uses, beside it in the same directory:
/// - `store.log.lock` — the writer's OS lock (never deleted; empty);
/// - `store.log.creating`, `store.log.compacting` — short-lived files renamed over `store.log`
///   when it is created or compacted;
/// - `store.log.damaged-<offset>` — a damaged tail (or a `Periodic` writer's unsynced tail)
///   moved aside at open (see [`OpenReport`]); never deleted by the store;
/// - `store.log.synced` — how far a [`Durability::Periodic`] writer synced the log (24 bytes;
///   removed by the next writer of another durability, after it synced the whole log);
/// - `store.log.index`, `store.log.index.tmp` — the index checkpoint a writer leaves on close
///   when at least 100,000 records lie past the last one, and its temp file (see "Opening
///   fast");
/// - `store.log.access`, `store.log.access.tmp` — the reads a limited cache recorded, for its
///   eviction order across restarts (`backends/src/log/access.rs`), written only by a writer
///   whose [`Store::accounting`] a limited `Cache` uses, and its temp file.
///
/// The store touches nothing else, and only regular files of its own: every file it creates
/// is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, every file it opens with `O_NOFOLLOW |
/// O_NONBLOCK`, so a symlink, FIFO, socket or device planted at any of these names is refused
/// with [`Error::NotOwned`] naming it (never followed, never blocked on). A stale temp file
/// from a crash is removed only when it is a regular file. New files follow the process umask
/// ([`FileMode::Umask`](crate::FileMode), the default) or are `0o600`
/// ([`LogOptions::file_mode`]); compaction gives the new file the mode of the old one.
///
/// A LogStore is one file, not a directory: opening a directory is refused (as
/// [`Error::WrongLayout`] naming the kind of store when the directory holds one), as is a log
/// path inside a directory marked as another kind of store. Another store's file is not a log
/// and opens as [`Error::Corrupt`] ("bad magic: not a cacher log file").
///
/// # Crashes and damage
/// Records are only ever appended. A crash mid-append leaves a *torn tail* — the file ends
/// inside the last record, or holds only zeros after it — which the next writer open cuts. A
/// last record that is whole but fails its checksum is *damage*, not a crash artefact: it may
/// be an acknowledged write, so the writer moves it to a side file before cutting it, and
/// writes a tombstone for its key when the key has an older value, so the key reads as missing
/// rather than as its older value; a reader reads that key as [`Error::Corrupt`]. A v2 record
/// tells its key from its key block (see "Format"): from the header when only the key, value
/// or record crc is damaged, from the block's own check when the header fields are damaged,
/// from the trailer when both are — and when the key block names no key of the log, the
/// record's key had no older value, so nothing can come back. Only damage that reaches the
/// header's key block, the key bytes *and* the trailer (for a put, three places with the
/// value between them; in effect a record destroyed whole, which cannot be told from garbage
/// after the log) leaves it to the v1 methods. For a v1 record, one flipped bit in the header
/// is undone, damage confined to the key is matched against the log's keys, and a header
/// damaged further is matched by key length against its record checksum field; when even
/// that field is gone, every key of the log whose bytes follow the damaged header is a
/// *suspect* and is handled as the record's key (tombstoned, or corrupt to a reader). What
/// only v2 closes: a v1 record whose record checksum field *and* key bytes are damaged names
/// no key (`backends/src/log/identify.rs`). A bad record with a
/// valid record after it fails the open with [`Error::Corrupt`] naming the offset. A file
/// shorter than its 32-byte header (a log truncated to 0 bytes) is [`Error::Corrupt`], never
/// an empty store. Every recovery is in [`LogStore::open_report`]; the rules are in
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
///    overwrites with the real one, and the torn tail it cuts at open (or the record a failed
///    append cut short). A failed append never takes back a record it wrote whole, since
///    another handle may have indexed it. No handle in any process indexes the bytes rewritten
///    or cut, because a scan accepts only whole records with matching checksums — so no map
///    access ever touches them.
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
/// # Opening fast
/// Opening rebuilds the index by scanning the records, unless an index checkpoint
/// (`store.log.index`, `backends/src/log/checkpoint.rs`) holds for the log: then the index is
/// read from it and only the records after the offset it covers are scanned. A writer writes
/// one when it closes with at least 100,000 records past the last (after syncing the log, so
/// it never covers bytes a power loss could take back). It is never trusted on its word: its
/// header and body checksums, its length, the log's generation, the CRC-32 of the 64 KiB of
/// log before its offset, and every entry's bounds must all hold, or it is ignored and the
/// whole log is scanned ([`OpenReport::checkpoint`] tells which). Records it covers are not
/// re-checked at open; every read still checks its record, and [`Store::verify`] checks
/// them all.
///
/// # Index memory
/// The index (`backends/src/log/index.rs`) is an open-addressing table of 24-byte slots —
/// the value's offset and length, where the key sits, 31 bits of the key's hash — with a tag
/// byte per slot (so a lookup of an absent key reads only the tags), split into 64 shards by
/// hash, plus one arena holding every live key's bytes back to back (in chunks of up to 1 MiB
/// that never move). There is no allocation per key. A table stays between a load of 2/5
/// (just after it doubles) and 4/5, and an open from the checkpoint starts it at 2/3: 31 to 63
/// bytes per entry plus the key itself (37.5 B at 2/3: a million 44-byte keys cost about
/// 82 MB; [`LogStats::index_bytes`] tells the figure for a live store). Removed keys' bytes
/// stay in the arena until they outweigh the live ones, then the arena is repacked.
///
/// Opening never holds two copies of the index: a shard that grows reallocates a 64th of the
/// table, and an open from the checkpoint reads the tables and keys straight into the index
/// (no inserts, no growth), so the open's peak memory stays within a few percent of the index
/// it builds (`backends/benches/log_open.rs` measures both, `benches/RESULTS.md` has the
/// figures). Keys are hashed with foldhash under a random seed per index (kept in its
/// checkpoint), so no key set chosen without knowing the seed makes lookups degrade; a lookup
/// compares the whole key, never only its hash.
pub struct LogStore {
    path: PathBuf,
    options: LogOptions,
    state: RwLock<State>,
    /// The writer's lock file (`None` for read-only handles). Its mutex also serializes
    /// appends, compaction and (read-only) refreshes.
    writer: Mutex<Option<File>>,
    /// The background syncer of a [`Durability::Periodic`] writer.
    syncer: Option<periodic::Syncer>,
    /// The writer's eviction books (`books`), loaded on first use by a limited cache.
    books: Mutex<Option<books::Books>>,
    /// Tests inject a failure (or a reader's refresh) before an append's write at an offset.
    #[cfg(test)]
    fault: Mutex<Option<WriteFault>>,
    report: OpenReport,
    /// The leases under the lease dir, opened on the first claim (`lease::claim_kept`).
    leases: std::sync::OnceLock<crate::lease::Leases>,
}

/// A test hook run before each append write, with its offset and length; an error stands
/// for the write failing.
#[cfg(test)]
pub(crate) type WriteFault = Box<dyn FnMut(u64, usize) -> std::io::Result<()> + Send>;

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("path", &self.path)
            .field("read_only", &self.options.read_only)
            .field("durability", &self.options.durability)
            .finish_non_exhaustive()
    }
}

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
            index_bytes: st.index.heap_bytes() as u64,
        }
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
}
