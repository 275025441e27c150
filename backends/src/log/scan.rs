//! Reading records back: the scan that rebuilds the index, and the rule that tells a torn tail
//! from damage in the middle.
//!
//! The scan walks records from an offset and stops at the first one that is not whole and
//! valid. What that bad spot means depends on what follows it:
//! - nothing valid anywhere after it: a **torn tail** (a crash cut the last write short, or a
//!   streamed put never finished). The writer cuts it at open; a reader stops there.
//! - a valid record somewhere after it: **corruption** in the middle. Dropping it would
//!   silently lose acknowledged writes, so it is reported as [`Error::Corrupt`] with the offset.
//!
//! "Somewhere after" is searched byte by byte when the bad record's header is itself damaged
//! (its lengths cannot be trusted), and from the record's declared end when only its key or
//! value is damaged (so a value that happens to contain log records is never mistaken for
//! records). The search reads the file through a window, never the memory map, so a file
//! shortened under us yields a short read instead of `SIGBUS`.
//!
//! The scan only reads the file (with `pread`); it never maps it.

use std::fs::File;
use std::io;
use std::path::Path;

use super::positioned::read_full_at;
use super::record::{
    Kind, Layout, RecordHeader, RecordHeaderError, KEY_BLOCK_LEN, V1_HEADER_LEN, V2_HEADER_LEN,
    V2_MARKER,
};
use super::report::{Damage, TornReason};
use crate::{Error, Result};

/// One valid record, as the index needs it. The key is borrowed (from the scan's read
/// buffer, or the caller's batch), so scanning allocates nothing per record.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Entry<'k> {
    Put {
        key: &'k [u8],
        value_off: u64,
        value_len: u64,
        layout: Layout,
    },
    Tombstone {
        key: &'k [u8],
    },
}

impl<'k> Entry<'k> {
    pub(crate) fn key(&self) -> &'k [u8] {
        match *self {
            Entry::Put { key, .. } | Entry::Tombstone { key } => key,
        }
    }
}

/// Bytes at the end of the file that are not a whole valid record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tail {
    /// Where the first bad record starts (the end of the valid records).
    pub(crate) offset: u64,
    /// Whether a write was cut short, or a whole record is damaged.
    pub(crate) kind: TailKind,
}

/// The two kinds of bad tail, which recovery treats differently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TailKind {
    /// A write cut short (or never begun on disk): nothing acknowledged is lost by cutting it.
    Torn(TornReason),
    /// Bytes that are not cut short yet fail a checksum: possibly an acknowledged record, so
    /// they are kept aside, never simply dropped. `key` is the key as read when the header
    /// (and so the key's length) is sound.
    Damaged {
        reason: Damage,
        key: Option<Vec<u8>>,
    },
}

/// Who is scanning, which decides how a bad record followed by a valid one is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The writer: it holds the lock, so nothing changes under the scan.
    Writer,
    /// A read-only handle: the writer may be appending while we read.
    Reader,
}

/// What a scan found.
#[derive(Debug)]
pub(crate) struct Scanned {
    /// The end of the last valid record.
    pub(crate) end: u64,
    /// Valid records read.
    pub(crate) records: u64,
    /// A torn tail after `end`, if any.
    pub(crate) tail: Option<Tail>,
}

/// Scans records in `start..file_len` of `file`, handing each valid one to `apply`.
///
/// The first bad spot with no valid record anywhere after it is the tail. It is *torn* when
/// the file ends inside the record (fewer bytes than a header, a sound header declaring more
/// bytes than are left, a streamed put's placeholder) or when every byte left is zero (the
/// file grew but its data never reached the disk, as a power cut leaves it). Anything else is
/// *damaged*: a whole record whose checksum fails, or a header that fails its checksum over
/// bytes that are not zero. Only the writer's last appends can be torn; a damaged tail may be
/// an acknowledged write, so recovery must not just cut it.
///
/// From `strict_until` on (what a [`Durability::Periodic`](crate::Durability::Periodic)
/// writer had synced; `u64::MAX` for any other log) the first bad record of any kind is a
/// torn tail, [`TornReason::Unsynced`], even with valid records after it.
///
/// A [`Role::Reader`] may be reading while the writer appends: a bad record followed by a
/// valid one is then re-read once before it is called corrupt, because the writer may have
/// finished it in the meantime.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    start: u64,
    file_len: u64,
    role: Role,
    strict_until: u64,
    apply: &mut dyn FnMut(Entry<'_>),
) -> Result<Scanned> {
    let io_err = |e| Error::io("scanning", path, e);
    let mut w = Window::new(file);
    let mut pos = start;
    let mut records = 0;
    let mut rechecked_at = None;
    let mut key_buf = Vec::new();
    while pos < file_len {
        let (kind, search_from) = match check(&mut w, pos, file_len).map_err(io_err)? {
            Check::Valid { header, next } => {
                let key_off = pos + header.header_len();
                let key_len = header.key_len as usize;
                // The check has just read the key through the window; only a record longer
                // than the window has moved it on, and then the key is read again on its own.
                let key = match w.cached(key_off, key_len) {
                    Some(key) => key,
                    None => {
                        key_buf.resize(key_len, 0);
                        if read_full_at(file, &mut key_buf, key_off).map_err(io_err)? < key_len {
                            return Err(io_err(io::ErrorKind::UnexpectedEof.into()));
                        }
                        &key_buf[..]
                    }
                };
                apply(match header.kind {
                    Kind::Put => Entry::Put {
                        key,
                        value_off: key_off + header.key_len as u64,
                        value_len: header.value_len,
                        layout: header.layout,
                    },
                    _ => Entry::Tombstone { key },
                });
                records += 1;
                pos = next;
                continue;
            }
            // Past what a periodic writer synced, a bad record is a write a power loss left
            // half on disk, whatever follows it (see `super::periodic`).
            Check::Invalid(_) | Check::BadHeader | Check::BadBody { .. } if pos >= strict_until => {
                return Ok(Scanned {
                    end: pos,
                    records,
                    tail: Some(Tail {
                        offset: pos,
                        kind: TailKind::Torn(TornReason::Unsynced),
                    }),
                })
            }
            Check::Invalid(reason) => {
                return Err(Error::corrupt(
                    path,
                    None,
                    format!("record at offset {pos}: {reason}"),
                ))
            }
            // Only the single writer ever writes a pending header, while it holds the lock for
            // the whole stream, so nothing can follow one: it is always the tail.
            Check::Pending => {
                return Ok(Scanned {
                    end: pos,
                    records,
                    tail: Some(Tail {
                        offset: pos,
                        kind: TailKind::Torn(TornReason::UnfinishedStream),
                    }),
                })
            }
            Check::Short(reason) => (TailKind::Torn(reason), None),
            Check::BadHeader => (
                TailKind::Damaged {
                    reason: Damage::HeaderChecksum,
                    key: None,
                },
                Some(pos + 1),
            ),
            Check::BadBody {
                next,
                key_off,
                key_len,
            } => (
                TailKind::Damaged {
                    reason: Damage::RecordChecksum,
                    key: Some(read_key(&mut w, key_off, key_len).map_err(io_err)?),
                },
                Some(next),
            ),
        };
        let valid_after = match search_from {
            Some(from) => find_record(&mut w, from, file_len).map_err(io_err)?,
            None => None,
        };
        match valid_after {
            None => {
                let kind = match kind {
                    TailKind::Damaged { .. } if w.all_zero(pos, file_len).map_err(io_err)? => {
                        TailKind::Torn(TornReason::ZeroFilled)
                    }
                    kind => kind,
                };
                return Ok(Scanned {
                    end: pos,
                    records,
                    tail: Some(Tail { offset: pos, kind }),
                });
            }
            Some(_) if role == Role::Reader && rechecked_at != Some(pos) => {
                rechecked_at = Some(pos);
                w.forget();
            }
            Some(later) => {
                return Err(Error::corrupt(
                    path,
                    None,
                    format!(
                        "bad record at offset {pos} ({}) followed by a valid record at \
                         offset {later}: damage in the middle of the log, not a torn tail",
                        kind.describe()
                    ),
                ))
            }
        }
    }
    Ok(Scanned {
        end: pos,
        records,
        tail: None,
    })
}

/// The verdict on the bytes at one offset.
enum Check {
    /// A whole record whose checksums match.
    Valid { header: RecordHeader, next: u64 },
    /// A placeholder left by an unfinished streamed put.
    Pending,
    /// The file ends before the record does.
    Short(TornReason),
    /// The header fails its checksum.
    BadHeader,
    /// The header is sound but the key or value fails the record checksum.
    BadBody {
        next: u64,
        key_off: u64,
        key_len: u32,
    },
    /// The header passes its checksum yet holds fields this version never writes.
    Invalid(String),
}

fn check(w: &mut Window<'_>, pos: u64, file_len: u64) -> io::Result<Check> {
    let avail = (file_len - pos).min(V2_HEADER_LEN);
    if avail < V1_HEADER_LEN {
        return Ok(Check::Short(TornReason::IncompleteHeader));
    }
    let mut key_block = [0u8; KEY_BLOCK_LEN as usize];
    let header = match w.slice_at(pos, avail as usize)? {
        None => return Ok(Check::Short(TornReason::IncompleteHeader)),
        // The file ends inside what says it is a v2 header.
        Some(hb) if avail < V2_HEADER_LEN && hb[1] == V2_MARKER => {
            return Ok(Check::Short(TornReason::IncompleteHeader))
        }
        Some(hb) => match RecordHeader::decode(hb) {
            Ok(h) => {
                if h.layout == Layout::V2 {
                    key_block.copy_from_slice(&hb[V1_HEADER_LEN as usize..]);
                }
                h
            }
            Err(RecordHeaderError::Checksum) => return Ok(Check::BadHeader),
            Err(RecordHeaderError::Invalid(reason)) => return Ok(Check::Invalid(reason)),
        },
    };
    if header.kind == Kind::Pending {
        return Ok(Check::Pending);
    }
    let next = pos.saturating_add(header.record_len());
    if next > file_len {
        return Ok(Check::Short(TornReason::RunsPastEnd));
    }
    let key_off = pos + header.header_len();
    let trailer = header.layout.trailer_len();
    let mut crc = header.record_hasher();
    if !w.hash_range(key_off, next - trailer - key_off, &mut crc)? {
        return Ok(Check::Short(TornReason::RunsPastEnd));
    }
    let bad_body = Check::BadBody {
        next,
        key_off,
        key_len: header.key_len,
    };
    if crc.finalize() != header.crc {
        return Ok(bad_body);
    }
    // A v2 record's trailer repeats its header's key block (checked there by the header
    // checksum), so a byte changed in it is damage like any other.
    if trailer > 0 {
        match w.slice_at(next - trailer, trailer as usize)? {
            Some(t) if t == key_block => {}
            Some(_) => return Ok(bad_body),
            None => return Ok(Check::Short(TornReason::RunsPastEnd)),
        }
    }
    Ok(Check::Valid { header, next })
}

/// The `len` bytes of a key at `off` (the check found them in the file).
fn read_key(w: &mut Window<'_>, off: u64, len: u32) -> io::Result<Vec<u8>> {
    let mut key = vec![0; len as usize];
    if !w.read_exact_at(off, &mut key)? {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(key)
}

/// The first offset at or after `from` where a valid (or pending) record starts.
fn find_record(w: &mut Window<'_>, from: u64, file_len: u64) -> io::Result<Option<u64>> {
    let mut at = from;
    let mut hb = [0u8; V2_HEADER_LEN as usize];
    while at.saturating_add(V1_HEADER_LEN) <= file_len {
        let n = (file_len - at).min(V2_HEADER_LEN) as usize;
        if w.read_exact_at(at, &mut hb[..n])? && RecordHeader::decode(&hb[..n]).is_ok() {
            match check(w, at, file_len)? {
                Check::Valid { .. } | Check::Pending => return Ok(Some(at)),
                _ => {}
            }
        }
        at += 1;
    }
    Ok(None)
}

/// A read-ahead window over the file, so scanning many small records costs few syscalls.
struct Window<'a> {
    file: &'a File,
    buf: Vec<u8>,
    start: u64,
    len: usize,
}

/// Small enough that the bytes a read just copied are still in the L2 cache when the scan
/// parses them (a 1 MiB window spilled out of it), large enough to hold any key.
const WINDOW: usize = 256 << 10;

impl<'a> Window<'a> {
    fn new(file: &'a File) -> Self {
        Window {
            file,
            buf: Vec::new(),
            start: 0,
            len: 0,
        }
    }

    /// Drops the cached bytes, so the next read sees the file as it is now.
    fn forget(&mut self) {
        self.len = 0;
    }

    /// The `n` bytes at `off` if the window holds them, without reading.
    fn cached(&self, off: u64, n: usize) -> Option<&[u8]> {
        let held = off >= self.start && off + n as u64 <= self.start + self.len as u64;
        held.then(|| &self.buf[(off - self.start) as usize..][..n])
    }

    /// `n <= WINDOW` bytes at `off`, or `None` when the file ends first.
    fn slice_at(&mut self, off: u64, n: usize) -> io::Result<Option<&[u8]>> {
        debug_assert!(n <= WINDOW);
        if n == 0 {
            return Ok(Some(&[]));
        }
        let cached = off >= self.start && off + n as u64 <= self.start + self.len as u64;
        if !cached {
            if self.buf.is_empty() {
                self.buf = vec![0; WINDOW];
            }
            self.start = off;
            self.len = read_full_at(self.file, &mut self.buf, off)?;
            if self.len < n {
                return Ok(None);
            }
        }
        let at = (off - self.start) as usize;
        Ok(Some(&self.buf[at..at + n]))
    }

    /// Fills `out` from `off`; false when the file ends first.
    fn read_exact_at(&mut self, off: u64, out: &mut [u8]) -> io::Result<bool> {
        if out.len() > WINDOW {
            return Ok(read_full_at(self.file, out, off)? == out.len());
        }
        match self.slice_at(off, out.len())? {
            Some(s) => {
                out.copy_from_slice(s);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Whether every byte in `from..to` is zero (bytes past the end of the file count as zero).
    fn all_zero(&mut self, mut from: u64, to: u64) -> io::Result<bool> {
        while from < to {
            let n = (to - from).min(WINDOW as u64) as usize;
            match self.slice_at(from, n)? {
                Some(s) if s.iter().all(|&b| b == 0) => from += n as u64,
                Some(_) => return Ok(false),
                None => {
                    let got = &self.buf[..self.len];
                    return Ok(got.iter().all(|&b| b == 0));
                }
            }
        }
        Ok(true)
    }

    /// Feeds `len` bytes from `off` to `crc`; false when the file ends first.
    fn hash_range(
        &mut self,
        mut off: u64,
        len: u64,
        crc: &mut crc32fast::Hasher,
    ) -> io::Result<bool> {
        let end = off + len;
        while off < end {
            let n = (end - off).min(WINDOW as u64) as usize;
            match self.slice_at(off, n)? {
                Some(s) => crc.update(s),
                None => return Ok(false),
            }
            off += n as u64;
        }
        Ok(true)
    }
}

impl TailKind {
    /// The tail's trouble, in words.
    pub(crate) fn describe(&self) -> String {
        match self {
            TailKind::Torn(reason) => reason.to_string(),
            TailKind::Damaged { reason, .. } => reason.to_string(),
        }
    }
}
