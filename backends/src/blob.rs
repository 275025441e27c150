//! [`Blob`]: a value handed back by a store without copying it where the layout allows.

use std::ops::{Deref, Range};
use std::sync::Arc;

/// A stored value, owned or lent from the store: a `Vec`, a shared in-memory buffer, or a
/// memory-mapped file range. It derefs to `&[u8]`, so a multi-GiB value read from a disk store
/// is paged in on demand instead of copied into a `Vec`.
pub enum Blob {
    /// Bytes copied out of the store.
    Owned(Vec<u8>),
    /// A buffer shared with the store (no copy).
    Shared(Arc<[u8]>),
    /// A range of a memory-mapped file (no copy).
    Mapped {
        /// The mapping; shared so many values can borrow one map.
        map: Arc<memmap2::Mmap>,
        /// Where the value sits inside the map.
        range: Range<usize>,
    },
}

impl Blob {
    /// The value as an owned `Vec` (copies unless it already is one).
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Blob::Owned(v) => v,
            other => other.to_vec(),
        }
    }

    /// True when the bytes are lent from the store rather than copied.
    pub fn is_zero_copy(&self) -> bool {
        !matches!(self, Blob::Owned(_))
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Blob::Owned(v) => v,
            Blob::Shared(a) => a,
            Blob::Mapped { map, range } => &map[range.clone()],
        }
    }
}

impl AsRef<[u8]> for Blob {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl std::fmt::Debug for Blob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self {
            Blob::Owned(_) => "Owned",
            Blob::Shared(_) => "Shared",
            Blob::Mapped { .. } => "Mapped",
        };
        write!(f, "Blob::{kind}({} bytes)", self.len())
    }
}

impl PartialEq<[u8]> for Blob {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}
