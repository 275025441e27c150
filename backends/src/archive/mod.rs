//! Archive files: old revisions of cache entries, compressed with zstd, read one revision at a
//! time without decompressing the rest (issue 12).
//!
//! An archive is one immutable file, `<name>.archive.zst`, that is a valid multi-frame zstd
//! file: `zstd -d` decompresses it (with `-D dict` when it was written with a dictionary,
//! which [`Archive::dictionary`] hands out), skipping the archive's own frames, which are zstd
//! *skippable frames*:
//!
//! ```text
//! [header frame][dictionary frame]?[data frame]*[index frame][footer frame]
//! ```
//!
//! - one **data frame** per key holds all archived revisions of that key (grouping a key's
//!   revisions is what makes them compress well: they differ in a few fields); its content is
//!   self-describing (key, revision numbers, times, names, lengths; in version 1 a crc32 of each value), so
//!   [`Archive::scan`] rebuilds the index from the frames alone;
//! - the **index** lists every key, sorted by a 64-bit hash of it (128-bit in version 1), with
//!   its frame's offset, length and revision count: a read is one binary search, one positioned
//!   read, one frame decode (keys sharing a hash are told apart by the key in the frame);
//! - the **footer** (fixed size, last in the file, with its own crc32) points at the index and
//!   the dictionary.
//!
//! The byte layout is drawn in `docs/archive-format.md`; golden files in `fixtures/archive/`
//! are read by the tests of every later version.
//!
//! Archives are written by [`ArchiveWriter`] into a temp file that becomes the archive by
//! fsync and rename: a crash leaves either no archive or a complete one.

mod format;
mod read;
mod write;

pub use format::VERSION;
pub use read::{Archive, Scan, ScannedGroup};
pub use write::{train_dictionary, ArchiveWriter};

/// The archive file's extension: zstd tools recognise `.zst`.
pub const EXTENSION: &str = "archive.zst";

/// How an archive is written, and the limits a reader keeps.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ArchiveOptions {
    /// zstd level for the data frames (default 9: archives are written once, read rarely).
    pub level: i32,
    /// A dictionary (from [`train_dictionary`]) to compress every frame with; None for none.
    pub dictionary: Option<Vec<u8>>,
    /// The most bytes one key's revisions may take together (default 256 MiB); a reader
    /// refuses an index entry whose group is larger, so a hostile file cannot make it
    /// allocate more.
    pub max_group_bytes: u64,
    /// The mode of the archive file (default: `0o666` less the umask, as the stores' files).
    pub file_mode: crate::FileMode,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            level: 9,
            dictionary: None,
            max_group_bytes: 256 << 20,
            file_mode: crate::FileMode::default(),
        }
    }
}

impl ArchiveOptions {
    /// Compresses with `dictionary`.
    pub fn with_dictionary(mut self, dictionary: Vec<u8>) -> Self {
        self.dictionary = Some(dictionary);
        self
    }

    /// Compresses at zstd `level`.
    pub fn with_level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// Creates archive files with `mode`.
    pub fn with_file_mode(mut self, mode: crate::FileMode) -> Self {
        self.file_mode = mode;
        self
    }

    /// Bounds one key's revisions to `bytes`.
    pub fn with_max_group_bytes(mut self, bytes: u64) -> Self {
        self.max_group_bytes = bytes;
        self
    }
}

/// One revision handed to [`ArchiveWriter::add`].
#[derive(Debug, Clone, Copy)]
pub struct ArchivedRevision<'a> {
    /// Its number (1 = the newest before the current value, as `Cache` counts them).
    pub revision: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its name when it is a named revision.
    pub name: Option<&'a str>,
    /// Its bytes (for a `Cache`, the whole stored envelope).
    pub value: &'a [u8],
}

/// What an archive says of one revision, without its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArchivedInfo {
    /// Its number.
    pub revision: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Its name, for a named revision.
    pub name: Option<String>,
}

#[cfg(test)]
mod tests;
