//! [`ValueReader`]: a stored value streamed in pieces, for values too large to hold or map.

use std::io::{self, Read};

use crate::Blob;

/// A stored value read as a stream (see [`Store::read_stream`](crate::Store::read_stream)).
///
/// Checked like every read: a store that checks its checksum while streaming reports a
/// damaged value as an error from `read` (kind `InvalidData`) **instead of** the end of the
/// stream, so a caller that reads to the end never takes a damaged value for a whole one.
///
/// ```
/// use cacher_store::{MemoryStore, Store};
/// use std::io::Read;
///
/// let store = MemoryStore::new();
/// store.put(b"k", b"streamed")?;
/// let mut reader = store.read_stream(b"k")?.unwrap();
/// assert_eq!(reader.len(), 8);
/// let mut out = String::new();
/// reader.read_to_string(&mut out).unwrap();
/// assert_eq!(out, "streamed");
/// # Ok::<(), cacher_store::Error>(())
/// ```
pub struct ValueReader {
    len: u64,
    inner: Box<dyn Read + Send>,
}

impl ValueReader {
    /// A reader over `len` bytes from `inner`, which must check the value itself (or read
    /// bytes already checked).
    pub fn new(len: u64, inner: Box<dyn Read + Send>) -> Self {
        ValueReader { len, inner }
    }

    /// A reader over a value already read and checked.
    pub fn from_blob(blob: Blob) -> Self {
        ValueReader {
            len: blob.len() as u64,
            inner: Box::new(io::Cursor::new(blob)),
        }
    }

    /// The value's whole length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Read for ValueReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl std::fmt::Debug for ValueReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ValueReader({} bytes)", self.len)
    }
}

/// Reads `len` bytes from `inner` into a running CRC-32 and, where `inner` would end, returns
/// an `InvalidData` error instead of the end when the checksum is not `expected` or the value
/// is short. Stores that keep a CRC-32 of each value stream through it.
pub(crate) struct CrcChecked<R> {
    inner: R,
    left: u64,
    crc: crc32fast::Hasher,
    expected: u32,
    what: String,
}

impl<R: Read> CrcChecked<R> {
    pub(crate) fn new(inner: R, len: u64, expected: u32, what: String) -> Self {
        Self::primed(inner, len, crc32fast::Hasher::new(), expected, what)
    }

    /// Like [`CrcChecked::new`] for a checksum that covers bytes before the value too (a
    /// LogStore record's covers its header fields and key): `crc` has been fed them already.
    pub(crate) fn primed(
        inner: R,
        len: u64,
        crc: crc32fast::Hasher,
        expected: u32,
        what: String,
    ) -> Self {
        CrcChecked {
            inner,
            left: len,
            crc,
            expected,
            what,
        }
    }
}

impl<R: Read> Read for CrcChecked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let actual = self.crc.clone().finalize();
            if actual != self.expected {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: value checksum mismatch (stored {:08x}, computed {actual:08x})",
                        self.what, self.expected
                    ),
                ));
            }
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 && want > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: truncated, {} bytes missing", self.what, self.left),
            ));
        }
        self.crc.update(&buf[..n]);
        self.left -= n as u64;
        Ok(n)
    }
}
