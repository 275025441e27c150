//! The access sidecar, `<log>.access`: the reads a limited cache recorded, so LRU/LFU history
//! survives a restart without a disk write per read.
//!
//! # Format (version 1)
//! ```text
//! header (24 bytes)
//! +-----------+---------+------------+------------+
//! | magic     | version | header crc | generation |
//! | "CACHEACS"| u32 LE  | u32 LE     | u64 LE     |
//! +-----------+---------+------------+------------+
//!  0           8         12           16          24
//!  header crc = crc32 of bytes 0..12 then 16..24; generation = the log's (file header), whose
//!  offsets the stamps are.
//!
//! batches, appended one per `record_access` call (and written whole by a rewrite)
//! +----------+----------+--------------------------------------------------------+
//! | body len | body crc | body: entries { key len u32 | pos u64 | seq u64 |        |
//! | u32 LE   | u32 LE   |                 hits u32 | key }, all LE               |
//! +----------+----------+--------------------------------------------------------+
//! ```
//! An entry gives a key's whole access state (last access stamp `(pos, seq)` and read
//! count), so replaying batches in order (last wins) rebuilds it. A batch whose length runs
//! past the file or over [`MAX_BATCH`], or whose crc fails, ends the replay: a torn tail (a
//! crash mid-append) is ignored, never an error. A sidecar of another generation (a crash
//! between a compaction and the sidecar's rewrite) or with a bad header is ignored whole: the
//! history is then lost, never wrong. A newer version is ignored the same way (an older build
//! reading a newer sidecar keeps going without history), and rewritten by the next flush.
//!
//! The writer appends with no sync: history is best effort, and a power loss can lose at
//! most the batches not yet written back by the OS. When the file holds over four times the
//! live entries' bytes (plus 1 MiB), it is rewritten whole through `<log>.access.tmp` and a
//! rename, as after a compaction (whose new offsets change every stamp).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::open::{remove_stale_temp, sibling};
use super::positioned::write_all_at;
use super::record::MAX_KEY_LEN;
use crate::fs::{create_new, open_regular, Access};
use crate::{Error, FileMode, Result};

/// The sidecar's name after the log's.
pub(super) const SUFFIX: &str = ".access";
const TMP_SUFFIX: &str = ".access.tmp";
const MAGIC: &[u8; 8] = b"CACHEACS";
/// The version this build writes and reads.
pub(super) const VERSION: u32 = 1;
const HEADER_LEN: u64 = 24;
/// The largest batch read back (a length field above it is damage).
pub(super) const MAX_BATCH: u32 = 64 << 20;
const ENTRY_FIXED: usize = 4 + 8 + 8 + 4;

/// One key's access state: its last access stamp and its read count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Access1 {
    /// Twice the log's end when the read was recorded (even: before any record written at
    /// that end, whose write stamps are odd; see `super::books`).
    pub(super) pos: u64,
    /// Orders reads recorded at the same `pos`.
    pub(super) seq: u64,
    pub(super) hits: u32,
}

fn header_crc(b: &[u8; HEADER_LEN as usize]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..12]);
    h.update(&b[16..24]);
    h.finalize()
}

fn header(generation: u64) -> [u8; HEADER_LEN as usize] {
    let mut b = [0u8; HEADER_LEN as usize];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&generation.to_le_bytes());
    let crc = header_crc(&b);
    b[12..16].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Encodes `entries` as one batch.
pub(super) fn batch<'a>(entries: impl Iterator<Item = (&'a [u8], Access1)>) -> Vec<u8> {
    let mut body = Vec::new();
    for (key, a) in entries {
        body.extend_from_slice(&(key.len() as u32).to_le_bytes());
        body.extend_from_slice(&a.pos.to_le_bytes());
        body.extend_from_slice(&a.seq.to_le_bytes());
        body.extend_from_slice(&a.hits.to_le_bytes());
        body.extend_from_slice(key);
    }
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The entries of one batch body, `None` when an entry runs past it (damage the crc missed).
fn entries(body: &[u8]) -> Option<Vec<(&[u8], Access1)>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let key_len = u32_at(body, at)?;
        if key_len > MAX_KEY_LEN {
            return None;
        }
        let a = Access1 {
            pos: u64_at(body, at + 4)?,
            seq: u64_at(body, at + 12)?,
            hits: u32_at(body, at + 20)?,
        };
        let start = at + ENTRY_FIXED;
        let key = body.get(start..start + key_len as usize)?;
        out.push((key, a));
        at = start + key_len as usize;
    }
    Some(out)
}

/// The writer's open sidecar.
#[derive(Debug)]
pub(super) struct Sidecar {
    path: PathBuf,
    file: File,
    end: u64,
    mode: FileMode,
}

impl Sidecar {
    /// Reads the sidecar of the log at `log` (generation `generation`), giving each entry to
    /// `each` in file order; returns it open for appends. A missing, foreign-generation or
    /// damaged one starts over empty (see the module docs).
    pub(super) fn load(
        log: &Path,
        generation: u64,
        mode: FileMode,
        each: &mut dyn FnMut(&[u8], Access1),
    ) -> Result<Sidecar> {
        let path = sibling(log, SUFFIX)?;
        let Some(mut file) = open_regular(&path, Access::ReadWrite)? else {
            return Self::rewrite(log, generation, mode, std::iter::empty());
        };
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading the metadata of", &path, e))?
            .len();
        let mut head = [0u8; HEADER_LEN as usize];
        let head_ok = crate::fs::read_up_to(&mut file, &mut head)
            .map_err(|e| Error::io("reading", &path, e))?
            == head.len()
            && &head[..8] == MAGIC
            && u32_at(&head, 8) == Some(VERSION)
            && u32_at(&head, 12) == Some(header_crc(&head))
            && u64_at(&head, 16) == Some(generation);
        if !head_ok {
            drop(file);
            return Self::rewrite(log, generation, mode, std::iter::empty());
        }
        let mut at = HEADER_LEN;
        let mut reader = io::BufReader::new(&mut file);
        loop {
            let mut frame = [0u8; 8];
            match reader.read_exact(&mut frame) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(Error::io("reading", &path, e)),
            }
            let body_len = u32_at(&frame, 0).unwrap_or(u32::MAX);
            if body_len > MAX_BATCH || at + 8 + u64::from(body_len) > len {
                break;
            }
            let mut body = vec![0u8; body_len as usize];
            if reader.read_exact(&mut body).is_err()
                || crc32fast::hash(&body) != u32_at(&frame, 4).unwrap_or_default()
            {
                break;
            }
            let Some(found) = entries(&body) else { break };
            for (key, a) in found {
                each(key, a);
            }
            at += 8 + u64::from(body_len);
        }
        drop(reader);
        if at < len {
            // Cut the torn tail so later appends follow the last whole batch.
            file.set_len(at)
                .map_err(|e| Error::io("cutting the torn tail of", &path, e))?;
        }
        Ok(Sidecar {
            path,
            file,
            end: at,
            mode,
        })
    }

    /// Writes a new sidecar holding `live` and renames it over the old one.
    pub(super) fn rewrite<'a>(
        log: &Path,
        generation: u64,
        mode: FileMode,
        live: impl Iterator<Item = (&'a [u8], Access1)>,
    ) -> Result<Sidecar> {
        let path = sibling(log, SUFFIX)?;
        let tmp = sibling(log, TMP_SUFFIX)?;
        remove_stale_temp(&tmp)?;
        let mut file = create_new(&tmp, mode)?;
        let body = batch(live);
        let mut out = Vec::with_capacity(HEADER_LEN as usize + body.len());
        out.extend_from_slice(&header(generation));
        if body.len() > 8 {
            out.extend_from_slice(&body);
        }
        let written = file.write_all(&out).and_then(|()| file.flush());
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("writing", &tmp, e));
        }
        if let Err(e) = std::fs::rename(&tmp, &path) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io("renaming the access sidecar over", &path, e));
        }
        Ok(Sidecar {
            path,
            file,
            end: out.len() as u64,
            mode,
        })
    }

    /// Appends one batch (no sync: see the module docs).
    pub(super) fn append(&mut self, batch: &[u8]) -> Result<()> {
        write_all_at(&self.file, batch, self.end)
            .map_err(|e| Error::io("appending to", &self.path, e))?;
        self.end += batch.len() as u64;
        Ok(())
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.end
    }

    pub(super) fn mode(&self) -> FileMode {
        self.mode
    }
}
