//! [`Blob`]: a value handed back by a store without copying it where the layout allows.

use std::ops::{Deref, Range};
use std::sync::Arc;

/// A stored value, owned or lent from the store. It derefs to `&[u8]`, so a multi-GiB value
/// read from a disk store is paged in on demand instead of copied into a `Vec`.
///
/// A `Blob` is opaque: a shared owner (a `Vec`, an `Arc<[u8]>`, a memory map, a buffer lent by
/// an engine) plus the range of it that holds the value. New backings can be added without
/// breaking users, and a user's own store builds one with [`From`] or [`Blob::from_owner`].
///
/// ```
/// use cacher_store::Blob;
/// use std::sync::Arc;
///
/// let owned = Blob::from(b"hello".to_vec());
/// assert_eq!(&*owned, b"hello");
/// assert!(!owned.is_zero_copy());
///
/// // A view into a buffer shared with the store: no copy.
/// let page: Arc<Vec<u8>> = Arc::new(b"header:value".to_vec());
/// let lent = Blob::from_owner(page, 7..12);
/// assert_eq!(&*lent, b"value");
/// assert!(lent.is_zero_copy());
/// ```
pub struct Blob {
    repr: Repr,
}

type Owner = Arc<dyn AsRef<[u8]> + Send + Sync>;

enum Repr {
    Owned(Vec<u8>),
    Shared(Arc<[u8]>),
    Lent {
        owner: Owner,
        range: Range<usize>,
        mapped: bool,
    },
}

impl Blob {
    /// A view of `range` inside a buffer shared with the store (no copy).
    ///
    /// A `range` past the end of `owner` is clamped to it (a blob never panics on deref).
    pub fn from_owner<T>(owner: Arc<T>, range: Range<usize>) -> Self
    where
        T: AsRef<[u8]> + Send + Sync + 'static,
    {
        Self::lent(owner, range, false)
    }

    /// A view of `range` inside a memory-mapped file (no copy). For stores of this crate, whose
    /// maps follow the rules of the `mmap` module.
    pub(crate) fn mapped(map: Arc<memmap2::Mmap>, range: Range<usize>) -> Self {
        Self::lent(map, range, true)
    }

    fn lent(owner: Owner, range: Range<usize>, mapped: bool) -> Self {
        let len = (*owner).as_ref().len();
        let end = range.end.min(len);
        let start = range.start.min(end);
        Blob {
            repr: Repr::Lent {
                owner,
                range: start..end,
                mapped,
            },
        }
    }

    /// The value as an owned `Vec` (copies unless it already is one).
    pub fn into_vec(self) -> Vec<u8> {
        match self.repr {
            Repr::Owned(v) => v,
            _ => self.to_vec(),
        }
    }

    /// True when the bytes are lent from the store rather than copied.
    pub fn is_zero_copy(&self) -> bool {
        !matches!(self.repr, Repr::Owned(_))
    }

    /// True when the bytes are a view of a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self.repr, Repr::Lent { mapped: true, .. })
    }
}

impl From<Vec<u8>> for Blob {
    fn from(v: Vec<u8>) -> Self {
        Blob {
            repr: Repr::Owned(v),
        }
    }
}

impl From<Arc<[u8]>> for Blob {
    fn from(a: Arc<[u8]>) -> Self {
        Blob {
            repr: Repr::Shared(a),
        }
    }
}

impl Deref for Blob {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.repr {
            Repr::Owned(v) => v,
            Repr::Shared(a) => a,
            Repr::Lent { owner, range, .. } => &(**owner).as_ref()[range.clone()],
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
        let kind = match &self.repr {
            Repr::Owned(_) => "owned",
            Repr::Shared(_) => "shared",
            Repr::Lent { mapped: true, .. } => "mapped",
            Repr::Lent { mapped: false, .. } => "lent",
        };
        write!(f, "Blob({kind}, {} bytes)", self.len())
    }
}

impl PartialEq<[u8]> for Blob {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}
