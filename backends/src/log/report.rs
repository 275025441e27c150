//! What a [`LogStore`](super::LogStore) tells about itself: what opening found
//! ([`OpenReport`]) and the sizes that tell when compaction is worth it ([`LogStats`]).

use super::record::FILE_HEADER_LEN;

/// What opening found, and every recovery action it took.
///
/// Opening recovers from two things, and says so here (the `Cache` front-end surfaces them
/// in its stats):
/// - a **torn tail** ([`OpenReport::torn_tail`]): the last write was cut short by a crash
///   (the file ends inside a record, or holds only zeros past the last record). Nothing that
///   was acknowledged is lost by cutting it: a writer truncates it, a reader ignores it.
/// - a **damaged tail** ([`OpenReport::damaged_tail`]): the last bytes are not cut short but
///   fail a checksum — possibly an acknowledged write. A writer moves them to a side file
///   (never deleted) before cutting them, and, when the damaged record's key is known and has
///   an older value, appends a tombstone so the older value never comes back in its place:
///   the key reads as missing. A reader leaves the file alone and reads the key as
///   [`Error::Corrupt`](crate::Error::Corrupt).
///
/// - **stale temp files** ([`OpenReport::removed_temps`]): a writer that crashed mid-compaction
///   (or mid-creation) leaves `<log>.compacting` (or `<log>.creating`); the next writer removes
///   it when it is a regular file, and refuses to open when something else is planted there.
///
/// Damage with a valid record after it is not recovered from: opening fails with
/// [`Error::Corrupt`](crate::Error::Corrupt) naming the offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Valid records read (puts and tombstones, including overwritten ones).
    pub records: u64,
    /// Bytes after the last valid record that were not a whole record: a crash cut a write
    /// short. A writer cuts them off; a read-only handle leaves them and ignores them.
    pub torn_tail: Option<TornTail>,
    /// Bytes after the last valid record that are whole but fail a checksum.
    pub damaged_tail: Option<DamagedTail>,
    /// Temp files of a crashed writer that opening removed.
    pub removed_temps: Vec<std::path::PathBuf>,
    /// The log offset up to which the index was read from the index checkpoint
    /// (`<log>.index`) instead of scanned; `None` when the whole log was scanned (no
    /// checkpoint, or one that does not hold for this log and was ignored).
    pub checkpoint: Option<u64>,
}

impl OpenReport {
    /// Whether opening found anything to recover from.
    pub fn recovered(&self) -> bool {
        self.torn_tail.is_some() || self.damaged_tail.is_some() || !self.removed_temps.is_empty()
    }
}

/// A damaged tail found at open: see [`OpenReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DamagedTail {
    /// Where the damaged bytes start (the end of the last valid record).
    pub offset: u64,
    /// How many bytes, to the end of the file.
    pub len: u64,
    /// Which checksum failed.
    pub reason: Damage,
    /// The damaged record's key, as well as it can be told: named by a v2 record's key block
    /// (see `LogStore`'s "Format"), or read under a sound header, or
    /// recovered by undoing one flipped bit of a damaged header, or by finding the key of the
    /// log that makes the record's checksum match (when the stored key's bytes are the
    /// damaged ones), or by finding the key length whose record checksum matches the stored
    /// one (a header damaged beyond one bit, its record checksum field whole). `None` when
    /// nothing tells it: see `suspects`.
    pub key: Option<Vec<u8>>,
    /// The side file the writer moved the bytes to (`<log>.damaged-<offset>`), or `None` for
    /// a read-only handle, which leaves the file as it is.
    pub moved_to: Option<std::path::PathBuf>,
    /// When `key` is `None`: the keys the record may have been written for — the keys a v2
    /// key block names when CRCs collide, or every key of the log whose bytes follow the
    /// damaged header, where the record's key sits when only the header is damaged. Empty
    /// with `key` `None` when the key block names no key of the log: the record's key had
    /// no older value, so nothing can come back. Each is treated as the record's key: tombstoned by the writer
    /// (so it reads as missing, never as a value the damaged record may have replaced), read
    /// as corrupt by a reader.
    pub suspects: Vec<Vec<u8>>,
    /// Whether the writer appended a tombstone for `key` (or for suspects), so an older value
    /// does not come back in place of the damaged one.
    pub tombstoned: bool,
}

/// Which checksum a damaged record fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The record header's own checksum: its kind and lengths cannot be trusted, so neither
    /// can its key.
    HeaderChecksum,
    /// The whole-record checksum over a sound header, the key and the value.
    RecordChecksum,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Damage::HeaderChecksum => "record header checksum mismatch",
            Damage::RecordChecksum => "record checksum mismatch",
        })
    }
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
    pub reason: TornReason,
    /// Whether it was truncated away (writers) or only skipped (read-only handles).
    pub cut: bool,
    /// The side file a writer copied the tail to before cutting it
    /// (`<log>.damaged-<offset>`): only for [`TornReason::Unsynced`], whose bytes may hold
    /// whole records; `None` for the other reasons, which hold no whole record.
    pub moved_to: Option<std::path::PathBuf>,
}

/// Why the bytes after the last valid record are not a whole record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TornReason {
    /// Fewer bytes than a record header are left.
    IncompleteHeader,
    /// A sound record header declares more key and value bytes than the file holds.
    RunsPastEnd,
    /// A `put_reader` placeholder: the stream never finished.
    UnfinishedStream,
    /// Every byte after the last valid record is zero: the file grew but its data never
    /// reached the disk (a power cut after the size was written).
    ZeroFilled,
    /// A bad record after the offset a [`Durability::Periodic`](crate::Durability::Periodic)
    /// writer last synced: writes of the last interval that a power loss left half on disk
    /// (possibly with whole records after the bad one, which are cut with it).
    Unsynced,
}

impl std::fmt::Display for TornReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TornReason::IncompleteHeader => "incomplete record header",
            TornReason::RunsPastEnd => "record runs past the end of the file",
            TornReason::UnfinishedStream => "a streamed put that never finished",
            TornReason::ZeroFilled => "zero bytes where a record should start",
            TornReason::Unsynced => "a bad record among writes that were never synced",
        })
    }
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
    /// Heap bytes the in-memory index holds (its tables and its copy of the keys), as this
    /// handle counts them: what the index costs the process, give or take the allocator's
    /// rounding.
    pub index_bytes: u64,
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
