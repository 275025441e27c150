//! The index checkpoint, `<log>.index`: the index as it stood at an offset of the log, so an
//! open reads it and scans only the records after that offset (issue 15: a 1,000,000-entry
//! open scanned 168 MB of records, two CRC-32s and a header decode each).
//!
//! It is never trusted on its word. It is used only when all of these hold, else it is
//! ignored and the whole log is scanned as before (and the next writer close writes a fresh
//! one):
//! - its header checksum, magic and version are right, and its length is exactly what the
//!   header declares (so nothing is allocated on a damaged length's say-so);
//! - it names the log's generation (compaction, or a delete and re-create, changes it);
//! - the log is at least as long as the offset it covers, and the CRC-32 of the 64 KiB of log
//!   before that offset matches the one it recorded (a log cut back and written again is
//!   told apart);
//! - every entry points inside the covered part, no key appears twice, and the checksum over
//!   the whole body matches (checked as the body streams in: on a mismatch the index built
//!   so far is dropped before the scan builds another, so memory never holds two).
//!
//! What it changes: records before the checkpoint's offset are not re-checked at open. Every
//! read still checks its record (`super::read`), and [`Store::verify`](crate::Store::verify)
//! checks all of them. It is written only by a writer, on close, after syncing the log (so it
//! never covers bytes a power loss could take back), through a temp file renamed into place.
//!
//! ```text
//! <log>.index
//! header (80 bytes)
//! 0   8  magic b"CACHEIDX"          40  8  live bytes u64
//! 8   4  version u32 = 1            48  8  key bytes u64 (all entries' keys)
//! 12  4  flags u32 = 0              56  4  tail crc u32 = crc32(log[end - T, end)),
//! 16  8  generation u64 (the log's)        T = min(64 KiB, end - 32)
//! 24  8  end u64 (log offset covered) 60 4  body crc u32 = crc32(every entry)
//! 32  8  entries u64                64  8  records u64 (valid records in log[32, end))
//!                                   72  4  reserved = 0; 76 4 header crc = crc32(bytes 0..76)
//! then per live key: value offset u64 (bit 63 set: a v2 record) | value len u64 |
//!                    key len u32 | key
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::index::{Index, Loc, State};
use super::open::{remove_stale_temp, sibling};
use super::positioned::{hash_section, read_full_at, write_all_at};
use super::record::{Layout, FILE_HEADER_LEN, MAX_KEY_LEN};
use super::LogStore;
use crate::fs::{create_new, keep_mode, open_regular, Access};
use crate::le::{u32_at, u64_at};
use crate::{Error, Result};

/// The checkpoint's file name suffix, and its temp file's.
pub(super) const SUFFIX: &str = ".index";
const TEMP_SUFFIX: &str = ".index.tmp";

const MAGIC: [u8; 8] = *b"CACHEIDX";
pub(super) const VERSION: u32 = 1;
const HEADER_LEN: usize = 80;
/// Bytes of an entry before its key.
const ENTRY_HEAD: usize = 20;
/// Bytes of log before the covered offset whose CRC-32 the checkpoint keeps.
const TAIL: u64 = 64 << 10;
/// A writer writes a checkpoint on close when at least this many records lie past the one it
/// opened with: below it a scan is fast anyway, and small logs get no side file.
pub(super) const MIN_RECORDS: u64 = 100_000;
/// The body is read and written in pieces of this size.
const CHUNK: usize = 1 << 20;
const V2_BIT: u64 = 1 << 63;
/// Keys staged before they are inserted in bin order (40 bytes each, held twice): a 16th of
/// the entries, within these bounds, so staging costs a few percent of the index at any size
/// (at most 5 MiB; 2^18 measured no faster on a 1,000,000-entry open, at a peak of 1.22x).
const BATCH_MIN: usize = 1 << 12;
const BATCH_MAX: usize = 1 << 16;

/// An index loaded from a checkpoint.
pub(super) struct Loaded {
    pub(super) index: Index,
    pub(super) live_bytes: u64,
    /// The log offset the index covers: the scan goes on from here.
    pub(super) end: u64,
    /// Valid records in the log before `end`.
    pub(super) records: u64,
}

struct Header {
    generation: u64,
    end: u64,
    entries: u64,
    live_bytes: u64,
    key_bytes: u64,
    tail_crc: u32,
    body_crc: u32,
    records: u64,
}

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        b[24..32].copy_from_slice(&self.end.to_le_bytes());
        b[32..40].copy_from_slice(&self.entries.to_le_bytes());
        b[40..48].copy_from_slice(&self.live_bytes.to_le_bytes());
        b[48..56].copy_from_slice(&self.key_bytes.to_le_bytes());
        b[56..60].copy_from_slice(&self.tail_crc.to_le_bytes());
        b[60..64].copy_from_slice(&self.body_crc.to_le_bytes());
        b[64..72].copy_from_slice(&self.records.to_le_bytes());
        let crc = crc32fast::hash(&b[0..76]);
        b[76..80].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN
            || b[0..8] != MAGIC
            || u32_at(b, 8)? != VERSION
            || u32_at(b, 12)? != 0
            || u32_at(b, 72)? != 0
            || u32_at(b, 76)? != crc32fast::hash(&b[0..76])
        {
            return None;
        }
        Some(Header {
            generation: u64_at(b, 16)?,
            end: u64_at(b, 24)?,
            entries: u64_at(b, 32)?,
            live_bytes: u64_at(b, 40)?,
            key_bytes: u64_at(b, 48)?,
            tail_crc: u32_at(b, 56)?,
            body_crc: u32_at(b, 60)?,
            records: u64_at(b, 64)?,
        })
    }
}

/// The CRC-32 of the log's bytes just before `end`.
fn tail_crc(log: &File, end: u64) -> io::Result<Option<u32>> {
    let n = TAIL.min(end.saturating_sub(FILE_HEADER_LEN));
    let mut crc = crc32fast::Hasher::new();
    Ok(hash_section(log, end - n, n, &mut crc)?.then(|| crc.finalize()))
}

/// The index the checkpoint beside `path` holds for the log `file` (of `generation`, `len`
/// bytes long), or `None` when there is none or it does not hold for this log (see the
/// module docs). Only a planted non-regular file at its name is an error.
pub(super) fn load(path: &Path, file: &File, generation: u64, len: u64) -> Result<Option<Loaded>> {
    let cp_path = sibling(path, SUFFIX)?;
    let Some(cp) = open_regular(&cp_path, Access::Read)? else {
        return Ok(None);
    };
    let io_err = |e| Error::io("reading the index checkpoint", &cp_path, e);
    let mut hb = [0u8; HEADER_LEN];
    let n = read_full_at(&cp, &mut hb, 0).map_err(io_err)?;
    let Some(h) = Header::decode(&hb[..n]) else {
        return Ok(None);
    };
    let cp_len = cp.metadata().map_err(io_err)?.len();
    let body_len = h
        .entries
        .checked_mul(ENTRY_HEAD as u64)
        .and_then(|e| e.checked_add(h.key_bytes));
    if h.generation != generation
        || h.end > len
        || h.end < FILE_HEADER_LEN
        || body_len != Some(cp_len - HEADER_LEN as u64)
        || tail_crc(file, h.end).map_err(io_err)? != Some(h.tail_crc)
    {
        return Ok(None);
    }
    // The length matched the file's, so this many entries are really there.
    let mut index = Index::with_capacity(h.entries as usize);
    let mut live_bytes = 0u64;
    let mut body = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let batch = (h.entries as usize / 16).clamp(BATCH_MIN, BATCH_MAX);
    let mut staged = Vec::with_capacity(batch.min(h.entries as usize));
    let mut sorted = Vec::with_capacity(staged.capacity());
    let (mut held, mut used, mut at) = (0usize, 0usize, HEADER_LEN as u64);
    for _ in 0..h.entries {
        // Keeps at least one whole entry (head and key, at most 20 bytes + 64 KiB) in `buf`.
        if held - used < ENTRY_HEAD + MAX_KEY_LEN as usize {
            buf.copy_within(used..held, 0);
            held -= used;
            used = 0;
            let got = read_full_at(&cp, &mut buf[held..], at).map_err(io_err)?;
            body.update(&buf[held..held + got]);
            held += got;
            at += got as u64;
        }
        let e = &buf[used..held];
        let (Some(off), Some(value_len), Some(key_len)) =
            (u64_at(e, 0), u64_at(e, 8), u32_at(e, 16))
        else {
            return Ok(None);
        };
        let key_len = key_len as usize;
        let Some(key) = e.get(ENTRY_HEAD..ENTRY_HEAD + key_len) else {
            return Ok(None);
        };
        let loc = Loc {
            value_off: off & !V2_BIT,
            value_len,
            layout: if off & V2_BIT != 0 {
                Layout::V2
            } else {
                Layout::V1
            },
        };
        let sound = key_len <= MAX_KEY_LEN as usize
            && loc.value_off >= FILE_HEADER_LEN + loc.layout.header_len() + key_len as u64
            && loc
                .value_off
                .checked_add(value_len)
                .and_then(|v| v.checked_add(loc.layout.trailer_len()))
                .is_some_and(|v| v <= h.end);
        if !sound {
            return Ok(None);
        }
        staged.push(index.stage(key, loc));
        if staged.len() == batch && !index.insert_staged(&staged, &mut sorted) {
            return Ok(None);
        }
        if staged.len() == batch {
            staged.clear();
        }
        live_bytes += loc.record_len(key_len);
        used += ENTRY_HEAD + key_len;
    }
    if !index.insert_staged(&staged, &mut sorted) {
        return Ok(None);
    }
    if used != held || at != cp_len || body.finalize() != h.body_crc || live_bytes != h.live_bytes {
        return Ok(None);
    }
    Ok(Some(Loaded {
        index,
        live_bytes,
        end: h.end,
        records: h.records,
    }))
}

/// Writes the checkpoint of `st` beside `path`: syncs the log first, then writes a temp file,
/// syncs it and renames it over `<log>.index`.
fn write(path: &Path, st: &State, records: u64) -> Result<()> {
    let log = &st.file;
    log.sync_data().map_err(|e| Error::io("syncing", path, e))?;
    let Some(tail) = tail_crc(log, st.end).map_err(|e| Error::io("reading", path, e))? else {
        return Ok(());
    };
    let tmp_path = sibling(path, TEMP_SUFFIX)?;
    remove_stale_temp(&tmp_path)?;
    let tmp = create_new(&tmp_path, crate::fs::FileMode::Umask)?;
    let written = (|| -> Result<()> {
        let io_err = |e| Error::io("writing the index checkpoint", &tmp_path, e);
        let log_meta = log
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", path, e))?;
        keep_mode(&tmp, &log_meta, &tmp_path)?;
        let mut body = crc32fast::Hasher::new();
        let mut key_bytes = 0u64;
        let mut out = io::BufWriter::with_capacity(
            CHUNK,
            Positioned {
                file: &tmp,
                at: HEADER_LEN as u64,
            },
        );
        for (key, loc) in st.index.iter() {
            let off = loc.value_off
                | match loc.layout {
                    Layout::V2 => V2_BIT,
                    Layout::V1 => 0,
                };
            let mut head = [0u8; ENTRY_HEAD];
            head[0..8].copy_from_slice(&off.to_le_bytes());
            head[8..16].copy_from_slice(&loc.value_len.to_le_bytes());
            head[16..20].copy_from_slice(&(key.len() as u32).to_le_bytes());
            body.update(&head);
            body.update(key);
            out.write_all(&head)
                .and_then(|()| out.write_all(key))
                .map_err(io_err)?;
            key_bytes += key.len() as u64;
        }
        out.flush().map_err(io_err)?;
        drop(out);
        let header = Header {
            generation: st.generation,
            end: st.end,
            entries: st.index.len() as u64,
            live_bytes: st.live_bytes,
            key_bytes,
            tail_crc: tail,
            body_crc: body.finalize(),
            records,
        };
        write_all_at(&tmp, &header.encode(), 0)
            .and_then(|()| tmp.sync_all())
            .map_err(io_err)?;
        let cp_path = sibling(path, SUFFIX)?;
        std::fs::rename(&tmp_path, &cp_path)
            .map_err(|e| Error::io("renaming the index checkpoint to", &cp_path, e))?;
        crate::fs::sync_parent(&cp_path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp_path);
    }
    written
}

/// A `Write` at increasing offsets of a file (the checkpoint's body, after its header).
struct Positioned<'a> {
    file: &'a File,
    at: u64,
}

impl Write for Positioned<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_all_at(self.file, buf, self.at)?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LogStore {
    /// Writes the index checkpoint now (a writer only): what a writer's close does when
    /// [`MIN_RECORDS`] records lie past the last checkpoint.
    pub(super) fn write_checkpoint(&self) -> Result<()> {
        let mut slot = self.writer_slot();
        self.writable(&mut slot, "writing the index checkpoint")?;
        let st = self.state();
        write(&self.path, &st, st.records)?;
        drop(st);
        self.state_mut().unvouched = 0;
        Ok(())
    }
}

impl Drop for LogStore {
    /// A writer that read or wrote many records past its checkpoint leaves a new one, so the
    /// next open reads the index instead of scanning them. A failure is not reported (the
    /// next open scans, as without a checkpoint).
    fn drop(&mut self) {
        let writer = self.writer_slot().is_some();
        if writer && self.state().unvouched >= MIN_RECORDS {
            let _ = self.write_checkpoint();
        }
    }
}
