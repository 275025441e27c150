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
