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
//! - the checksum over the whole body matches, and every entry points inside the covered
//!   part, once per key: in version 2, every slot's key hashes to the slot's place in its
//!   table (`Index::from_image`); in version 1, no key is inserted twice. On a mismatch the
//!   index built so far is dropped before the scan builds another, so memory never holds two.
//!
//! Version 2 (issue 15, the 150 ms open of 1,000,000 entries) stores the index's own tables
//! slot by slot and its keys packed as its arena holds them, with the hash seed they were
//! placed under: an open reads them straight into the tables it uses (one sequential read, a
//! checksum and a check of each slot), with no hash-table inserts, no table growth, and a
//! peak memory the size of the index. Version 1 (a list of entries, inserted one by one) is
//! still read; an open from one marks the index unvouched, so the writer's close replaces
//! it with a version 2.
//!
//! What it changes: records before the checkpoint's offset are not re-checked at open. Every
//! read still checks its record (`super::read`), and [`Store::verify`](crate::Store::verify)
//! checks all of them. It is written only by a writer, on close, after syncing the log (so it
//! never covers bytes a power loss could take back), through a temp file renamed into place.
//!
//! ```text
//! <log>.index, version 2
//! header (96 bytes)
//! 0   8  magic b"CACHEIDX"          48  8  key bytes u64 (all entries' keys)
//! 8   4  version u32 = 2            56  4  tail crc u32 = crc32(log[end - T, end)),
//! 12  4  flags u32 = 0                     T = min(64 KiB, end - 32)
//! 16  8  generation u64 (the log's) 60  4  body crc u32 = crc32(the whole body)
//! 24  8  end u64 (log offset covered) 64 8  records u64 (valid records in log[32, end))
//! 32  8  entries u64                72  8  hash seed u64
//! 40  8  live bytes u64             80  8  slots u64 (all tables' lengths)
//!                                   88  4  chunks u32; 92 4 header crc = crc32(bytes 0..92)
//! body: per shard (64): its table's slots, 3 x u64 each (value offset and 16 hash bits |
//!       value len, v2 bit and 15 hash bits | key's chunk, offset and length; all zero:
//!       empty), then its key chunks' bytes (a chunk holds one shard's keys);
//!       then per shard: slots u64, chunks u64; then every chunk's length u64
//!
//! <log>.index, version 1 (still read)
//! header (80 bytes): as above up to byte 72, then reserved u32 = 0, header crc over 0..76
//! then per live key: value offset u64 (bit 63 set: a v2 record) | value len u64 |
//!                    key len u32 | key
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::index::{ImageReader, Index, Loc, Slot, CHUNK_MAX, MAX_CHUNKS, SHARDS};
use super::open::{remove_stale_temp, sibling};
use super::positioned::{hash_section, read_full_at, write_all_at};
use super::record::{Layout, FILE_HEADER_LEN, MAX_KEY_LEN};
use super::state::State;
use super::LogStore;
use crate::fs::{create_new, keep_mode, open_regular, Access};
use crate::le::{u32_at, u64_at};
use crate::{Error, Result};

/// The checkpoint's file name suffix, and its temp file's.
pub(super) const SUFFIX: &str = ".index";
const TEMP_SUFFIX: &str = ".index.tmp";

const MAGIC: [u8; 8] = *b"CACHEIDX";
/// The layout this build writes.
pub(super) const VERSION: u32 = 2;
/// The first layout: a list of entries.
const VERSION_1: u32 = 1;
const HEADER_LEN: usize = 96;
const HEADER_LEN_V1: usize = 80;
/// Bytes of a version 1 entry before its key.
const ENTRY_HEAD: usize = 20;
/// Bytes of a slot.
const SLOT_LEN: usize = 24;
/// Bytes of log before the covered offset whose CRC-32 the checkpoint keeps.
const TAIL: u64 = 64 << 10;
/// A writer writes a checkpoint on close when at least this many records lie past the one it
/// opened with: below it a scan is fast anyway, and small logs get no side file.
pub(super) const MIN_RECORDS: u64 = 100_000;
/// The body is read and written in pieces of this size.
const CHUNK: usize = 1 << 20;
const V2_BIT: u64 = 1 << 63;

/// An index loaded from a checkpoint.
pub(super) struct Loaded {
    pub(super) index: Index,
    pub(super) live_bytes: u64,
    /// The log offset the index covers: the scan goes on from here.
    pub(super) end: u64,
    /// Valid records in the log before `end`.
    pub(super) records: u64,
    /// Read from an older layout than this build writes: the writer's close replaces it.
    pub(super) outdated: bool,
}

struct Header {
    version: u32,
    generation: u64,
    end: u64,
    entries: u64,
    live_bytes: u64,
    key_bytes: u64,
    tail_crc: u32,
    body_crc: u32,
    records: u64,
    /// Version 2 only (zero in version 1).
    seed: u64,
    slots: u64,
    chunks: u32,
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
        b[72..80].copy_from_slice(&self.seed.to_le_bytes());
        b[80..88].copy_from_slice(&self.slots.to_le_bytes());
        b[88..92].copy_from_slice(&self.chunks.to_le_bytes());
        let crc = crc32fast::hash(&b[0..92]);
        b[92..96].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// A header of either version; `None` when it is not a whole, intact header of one.
    fn decode(b: &[u8]) -> Option<Header> {
        if b.len() < HEADER_LEN_V1 || b[0..8] != MAGIC || u32_at(b, 12)? != 0 {
            return None;
        }
        let version = u32_at(b, 8)?;
        let (seed, slots, chunks) = match version {
            VERSION_1 => {
                if u32_at(b, 72)? != 0 || u32_at(b, 76)? != crc32fast::hash(&b[0..76]) {
                    return None;
                }
                (0, 0, 0)
            }
            VERSION => {
                if b.len() < HEADER_LEN || u32_at(b, 92)? != crc32fast::hash(&b[0..92]) {
                    return None;
                }
                (u64_at(b, 72)?, u64_at(b, 80)?, u32_at(b, 88)?)
            }
            _ => return None,
        };
        Some(Header {
            version,
            generation: u64_at(b, 16)?,
            end: u64_at(b, 24)?,
            entries: u64_at(b, 32)?,
            live_bytes: u64_at(b, 40)?,
            key_bytes: u64_at(b, 48)?,
            tail_crc: u32_at(b, 56)?,
            body_crc: u32_at(b, 60)?,
            records: u64_at(b, 64)?,
            seed,
            slots,
            chunks,
        })
    }

    fn header_len(&self) -> u64 {
        if self.version == VERSION_1 {
            HEADER_LEN_V1 as u64
        } else {
            HEADER_LEN as u64
        }
    }

    /// The body's length by the header's counts (`None` on an overflow).
    fn body_len(&self) -> Option<u64> {
        if self.version == VERSION_1 {
            return self
                .entries
                .checked_mul(ENTRY_HEAD as u64)?
                .checked_add(self.key_bytes);
        }
        (SHARDS as u64 * 16 + u64::from(self.chunks) * 8)
            .checked_add(self.slots.checked_mul(SLOT_LEN as u64)?)?
            .checked_add(self.key_bytes)
    }
}

/// The CRC-32 of the log's bytes just before `end`.
fn tail_crc(log: &File, end: u64) -> io::Result<Option<u32>> {
    let n = TAIL.min(end.saturating_sub(FILE_HEADER_LEN));
    let mut crc = crc32fast::Hasher::new();
    Ok(hash_section(log, end - n, n, &mut crc)?.then(|| crc.finalize()))
}

/// Whether a value of `value_len` bytes at `loc` after a key of `key_len` bytes lies inside
/// the log's first `end` bytes, after its file header.
fn sound(loc: Loc, key_len: usize, end: u64) -> bool {
    key_len <= MAX_KEY_LEN as usize
        && loc.value_off >= FILE_HEADER_LEN + loc.layout.header_len() + key_len as u64
        && loc
            .value_off
            .checked_add(loc.value_len)
            .and_then(|v| v.checked_add(loc.layout.trailer_len()))
            .is_some_and(|v| v <= end)
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
    if h.generation != generation
        || h.end > len
        || h.end < FILE_HEADER_LEN
        || h.body_len() != cp_len.checked_sub(h.header_len())
        || tail_crc(file, h.end).map_err(io_err)? != Some(h.tail_crc)
    {
        return Ok(None);
    }
    // The lengths matched the file's, so everything the header counts is really there.
    let loaded = if h.version == VERSION_1 {
        load_v1(&cp, &h, cp_len)
    } else {
        load_v2(&cp, &h, cp_len)
    };
    loaded.map_err(io_err)
}

/// Reads version 2: shard by shard, each table and its key chunks straight into the index's
/// own storage, checked while they are in the cache.
fn load_v2(cp: &File, h: &Header, cp_len: u64) -> io::Result<Option<Loaded>> {
    // Room is left for the chunks an index adds as it grows (a key reference numbers at most
    // `MAX_CHUNKS`): 32 TiB of keys, more than any index holds in memory.
    if u64::from(h.chunks) > MAX_CHUNKS / 2 {
        return Ok(None);
    }
    // The lengths at the end of the file come first.
    let lens_len = (SHARDS * 2 + h.chunks as usize) * 8;
    let mut lens = vec![0u8; lens_len];
    let lens_at = cp_len - lens_len as u64;
    if read_full_at(cp, &mut lens, lens_at)? != lens_len {
        return Ok(None);
    }
    let lens_bytes = lens;
    let lens: Vec<u64> = lens_bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    let (shards, chunk_lens) = lens.split_at(SHARDS * 2);
    let (mut slots_sum, mut chunks_sum) = (0u64, 0u64);
    for pair in shards.chunks_exact(2) {
        slots_sum = slots_sum.saturating_add(pair[0]);
        chunks_sum = chunks_sum.saturating_add(pair[1]);
    }
    if slots_sum != h.slots
        || chunks_sum != u64::from(h.chunks)
        || chunk_lens.iter().any(|&l| l > CHUNK_MAX as u64)
        || chunk_lens.iter().sum::<u64>() != h.key_bytes
    {
        return Ok(None);
    }
    let mut body = crc32fast::Hasher::new();
    let mut at = HEADER_LEN as u64;
    let mut read = |buf: &mut [u8], body: &mut crc32fast::Hasher| -> io::Result<bool> {
        let got = read_full_at(cp, buf, at)?;
        body.update(&buf[..got]);
        at += got as u64;
        Ok(got == buf.len())
    };
    let mut image = ImageReader::new(h.seed);
    let mut chunk_lens = chunk_lens.iter();
    let mut buf = Vec::new();
    for pair in shards.chunks_exact(2) {
        // The table's slots, decoded a piece at a time (a shard is a 64th of the index).
        let mut slots = Vec::with_capacity(pair[0] as usize);
        let mut left = pair[0] as usize;
        while left > 0 {
            let take = left.min(CHUNK / SLOT_LEN);
            buf.resize(take * SLOT_LEN, 0);
            if !read(&mut buf, &mut body)? {
                return Ok(None);
            }
            for w in buf.chunks_exact(SLOT_LEN) {
                let word = |i: usize| u64::from_le_bytes(w[i..i + 8].try_into().expect("8 bytes"));
                let slot = match Slot::from_words([word(0), word(8), word(16)]) {
                    Some(s) if !sound(s.loc(), s.key_len(), h.end) => return Ok(None),
                    Some(s) => s,
                    None => Slot::EMPTY,
                };
                slots.push(slot);
            }
            left -= take;
        }
        for &n in chunk_lens.by_ref().take(pair[1] as usize) {
            let mut chunk = vec![0u8; n as usize];
            if !read(&mut chunk, &mut body)? {
                return Ok(None);
            }
            image.chunk(chunk);
        }
        if !image.table(slots) {
            return Ok(None);
        }
    }
    body.update(&lens_bytes);
    if at != lens_at || body.finalize() != h.body_crc {
        return Ok(None);
    }
    let Some((index, live_bytes)) = image.finish() else {
        return Ok(None);
    };
    if index.len() as u64 != h.entries || live_bytes != h.live_bytes {
        return Ok(None);
    }
    Ok(Some(Loaded {
        index,
        live_bytes,
        end: h.end,
        records: h.records,
        outdated: false,
    }))
}

/// Reads version 1: a list of entries, inserted one by one.
fn load_v1(cp: &File, h: &Header, cp_len: u64) -> io::Result<Option<Loaded>> {
    let mut index = Index::with_capacity(h.entries as usize);
    let mut live_bytes = 0u64;
    let mut body = crc32fast::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let (mut held, mut used, mut at) = (0usize, 0usize, HEADER_LEN_V1 as u64);
    for _ in 0..h.entries {
        // Keeps at least one whole entry (head and key, at most 20 bytes + 64 KiB) in `buf`.
        if held - used < ENTRY_HEAD + MAX_KEY_LEN as usize {
            buf.copy_within(used..held, 0);
            held -= used;
            used = 0;
            let got = read_full_at(cp, &mut buf[held..], at)?;
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
        if !sound(loc, key_len, h.end) || index.insert(key, loc).is_some() {
            return Ok(None);
        }
        live_bytes = live_bytes.saturating_add(loc.record_len(key_len));
        used += ENTRY_HEAD + key_len;
    }
    if used != held || at != cp_len || body.finalize() != h.body_crc || live_bytes != h.live_bytes {
        return Ok(None);
    }
    Ok(Some(Loaded {
        index,
        live_bytes,
        end: h.end,
        records: h.records,
        outdated: true,
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
        let index = &st.index;
        let mut out = io::BufWriter::with_capacity(
            CHUNK,
            Positioned {
                file: &tmp,
                at: HEADER_LEN as u64,
            },
        );
        let mut body = crc32fast::Hasher::new();
        let (mut shard_lens, mut chunk_lens) = (Vec::new(), Vec::new());
        let (mut slots, mut key_bytes) = (0u64, 0u64);
        let mut b = Vec::new();
        index
            .image(|shard| {
                b.clear();
                for s in shard.slots {
                    for w in s.to_words() {
                        b.extend_from_slice(&w.to_le_bytes());
                    }
                }
                body.update(&b);
                body.update(shard.keys);
                out.write_all(&b)?;
                out.write_all(shard.keys)?;
                shard_lens.extend_from_slice(&(shard.slots.len() as u64).to_le_bytes());
                shard_lens.extend_from_slice(&(shard.chunk_lens.len() as u64).to_le_bytes());
                for l in shard.chunk_lens {
                    chunk_lens.extend_from_slice(&l.to_le_bytes());
                }
                slots += shard.slots.len() as u64;
                key_bytes += shard.keys.len() as u64;
                Ok(())
            })
            .map_err(io_err)?;
        body.update(&shard_lens);
        body.update(&chunk_lens);
        out.write_all(&shard_lens)
            .and_then(|()| out.write_all(&chunk_lens))
            .and_then(|()| out.flush())
            .map_err(io_err)?;
        drop(out);
        let chunks = chunk_lens.len() / 8;
        let header = Header {
            version: VERSION,
            generation: st.generation,
            end: st.end,
            entries: index.len() as u64,
            live_bytes: st.live_bytes,
            key_bytes,
            tail_crc: tail,
            body_crc: body.finalize(),
            records,
            seed: index.seed(),
            slots,
            chunks: u32::try_from(chunks).map_err(|_| {
                io_err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "too many key chunks",
                ))
            })?,
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
