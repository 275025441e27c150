//! What a [`LogStore`](super::LogStore) tells about itself: what opening found
//! ([`OpenReport`]) and the sizes that tell when compaction is worth it ([`LogStats`]).

use super::record::FILE_HEADER_LEN;

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
    pub reason: TornReason,
    /// Whether it was truncated away (writers) or only skipped (read-only handles).
    pub cut: bool,
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
    /// The record header fails its checksum and no valid record follows.
    HeaderChecksum,
    /// The record fails its checksum and no valid record follows.
    RecordChecksum,
}

impl std::fmt::Display for TornReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TornReason::IncompleteHeader => "incomplete record header",
            TornReason::RunsPastEnd => "record runs past the end of the file",
            TornReason::UnfinishedStream => "a streamed put that never finished",
            TornReason::HeaderChecksum => "record header checksum mismatch",
            TornReason::RecordChecksum => "record checksum mismatch",
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
