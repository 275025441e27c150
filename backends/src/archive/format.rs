//! The archive file's bytes: frame kinds, the group record inside a data frame, the index entry
//! and the footer. `docs/archive-format.md` draws them; this module is the one place that
//! writes or parses them. All integers are little-endian.

use crate::le::{u32_at, u64_at};
use crate::version::Refusal;

/// The newest archive layout this build writes and reads.
///
/// - version 1: 40-byte index entries with a 16-byte key hash; a crc32 per value in the group
///   record (`CAGR`).
/// - version 2: 28-byte index entries with an 8-byte key hash, equal hashes side by side (a
///   read tries each and compares the key in the frame); group records (`CAG2`) without the
///   per-value crc32, which was 40 incompressible bytes per key of ten revisions: the frame's
///   zstd content checksum, checked on every decode, covers every value. Together: 18.4x ->
///   over 20x on the corpus (`benches/RESULTS.md`).
pub const VERSION: u32 = 2;

/// zstd's skippable-frame magic range is `0x184D2A50..=0x184D2A5F`; the archive uses one value
/// for all its own frames and tells them apart by a 4-byte tag at the start of the payload.
pub(crate) const SKIPPABLE_MAGIC: u32 = 0x184D_2A5C;
/// Any skippable frame (zstd ignores all sixteen magics); a scan skips those it does not know.
pub(crate) fn is_skippable(magic: u32) -> bool {
    magic & 0xFFFF_FFF0 == 0x184D_2A50
}
/// The magic of a zstd data frame.
pub(crate) const ZSTD_MAGIC: u32 = 0xFD2F_B528;

pub(crate) const TAG_HEADER: [u8; 4] = *b"CAHD";
pub(crate) const TAG_DICTIONARY: [u8; 4] = *b"CADI";
pub(crate) const TAG_INDEX: [u8; 4] = *b"CAIX";
pub(crate) const TAG_FOOTER: [u8; 4] = *b"CAFT";
/// First bytes of a version-1 group record (the decompressed content of one data frame).
pub(crate) const GROUP_MAGIC_V1: [u8; 4] = *b"CAGR";
/// First bytes of a version-2 group record: no crc32 per value.
pub(crate) const GROUP_MAGIC: [u8; 4] = *b"CAG2";

/// The header frame's payload: tag, version, flags (bit 0: a dictionary frame follows),
/// created (ms since the epoch).
pub(crate) const FLAG_DICTIONARY: u32 = 1;

/// One entry of the index, one per key: key hash (16), frame offset (8), frame length (4),
/// group length (4), revision count (4), reserved (4) = 40 bytes. (At 64 bytes per revision
/// the index of ten small revisions per key outweighed the compressed data; the revision
/// numbers, times and names are in the frame, which a read decodes anyway.)
pub(crate) const ENTRY_LEN_V1: usize = 40;
/// Version 2: key hash (8), frame offset (8), frame length (4), group length (4), revision
/// count (4) = 28 bytes.
pub(crate) const ENTRY_LEN: usize = 28;

/// Bytes of the key hash an index entry of `version` stores.
pub(crate) fn hash_len(version: u32) -> usize {
    if version == 1 {
        16
    } else {
        8
    }
}

/// Bytes of one index entry of `version`.
pub(crate) fn entry_len(version: u32) -> usize {
    if version == 1 {
        ENTRY_LEN_V1
    } else {
        ENTRY_LEN
    }
}

/// Footer frame: 8-byte skippable header, then tag, version, index offset, index length,
/// dictionary offset, dictionary length, crc32 of the 36 bytes before it = 40 bytes of payload.
pub(crate) const FOOTER_PAYLOAD: usize = 4 + 4 + 8 + 8 + 8 + 4 + 4;
pub(crate) const FOOTER_LEN: usize = 8 + FOOTER_PAYLOAD;

/// The key hash the index is sorted by: the first 16 bytes of BLAKE3 of the key (version 1),
/// or the first 8 with the rest zero (version 2).
pub(crate) fn key_hash(key: &[u8], version: u32) -> [u8; 16] {
    let hash = blake3::hash(key);
    let mut out = [0u8; 16];
    let n = hash_len(version);
    out[..n].copy_from_slice(&hash.as_bytes()[..n]);
    out
}

/// Appends a skippable frame holding `tag` and `body`.
pub(crate) fn skippable(out: &mut Vec<u8>, tag: [u8; 4], body: &[u8]) {
    out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&((4 + body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&tag);
    out.extend_from_slice(body);
}

/// One entry of the index, as stored: one per key (its revisions are listed in its frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub key_hash: [u8; 16],
    pub frame_offset: u64,
    pub frame_len: u32,
    pub group_len: u32,
    pub revisions: u32,
}

impl IndexEntry {
    /// Encodes a version-2 entry (the writer writes the current version only).
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key_hash[..hash_len(VERSION)]);
        out.extend_from_slice(&self.frame_offset.to_le_bytes());
        out.extend_from_slice(&self.frame_len.to_le_bytes());
        out.extend_from_slice(&self.group_len.to_le_bytes());
        out.extend_from_slice(&self.revisions.to_le_bytes());
    }

    pub(crate) fn decode(b: &[u8], version: u32) -> Option<IndexEntry> {
        let h = hash_len(version);
        if b.len() < entry_len(version) {
            return None;
        }
        let mut key_hash = [0u8; 16];
        key_hash[..h].copy_from_slice(&b[..h]);
        Some(IndexEntry {
            key_hash,
            frame_offset: u64_at(b, h)?,
            frame_len: u32_at(b, h + 8)?,
            group_len: u32_at(b, h + 12)?,
            revisions: u32_at(b, h + 16)?,
        })
    }
}

/// The footer's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Footer {
    pub version: u32,
    pub index_offset: u64,
    pub index_len: u64,
    pub dict_offset: u64,
    pub dict_len: u32,
}

impl Footer {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let mut body = Vec::with_capacity(FOOTER_PAYLOAD - 4);
        body.extend_from_slice(&self.version.to_le_bytes());
        body.extend_from_slice(&self.index_offset.to_le_bytes());
        body.extend_from_slice(&self.index_len.to_le_bytes());
        body.extend_from_slice(&self.dict_offset.to_le_bytes());
        body.extend_from_slice(&self.dict_len.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&TAG_FOOTER);
        crc.update(&body);
        body.extend_from_slice(&crc.finalize().to_le_bytes());
        skippable(out, TAG_FOOTER, &body);
    }

    /// Parses the last [`FOOTER_LEN`] bytes of a file.
    pub(crate) fn decode(b: &[u8]) -> Result<Footer, Refusal> {
        let corrupt = |why: &str| Refusal::Corrupt(format!("archive footer: {why}"));
        if b.len() != FOOTER_LEN {
            return Err(corrupt("file shorter than a footer"));
        }
        if u32_at(b, 0) != Some(SKIPPABLE_MAGIC) || b[8..12] != TAG_FOOTER {
            return Err(corrupt(
                "no footer frame at the end of the file (truncated or not an archive)",
            ));
        }
        if u32_at(b, 4) != Some(FOOTER_PAYLOAD as u32) {
            return Err(corrupt("footer frame has the wrong length"));
        }
        let stored = u32_at(b, FOOTER_LEN - 4).unwrap_or_default();
        if crc32fast::hash(&b[8..FOOTER_LEN - 4]) != stored {
            return Err(corrupt("footer checksum does not match"));
        }
        let version = u32_at(b, 12).unwrap_or_default();
        if version > VERSION {
            return Err(Refusal::Newer(version));
        }
        if version == 0 {
            return Err(corrupt("version 0"));
        }
        Ok(Footer {
            version,
            index_offset: u64_at(b, 16).unwrap_or_default(),
            index_len: u64_at(b, 24).unwrap_or_default(),
            dict_offset: u64_at(b, 32).unwrap_or_default(),
            dict_len: u32_at(b, 40).unwrap_or_default(),
        })
    }
}

/// One revision inside a group record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupRevision {
    pub revision: u64,
    pub time_ms: u64,
    pub name: Vec<u8>,
    pub value_offset: usize,
    pub value_len: usize,
    /// Version 1 only; version 2 relies on the frame's content checksum.
    pub value_crc: Option<u32>,
}

/// A parsed group record: the key and where each revision's value lies in the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Group {
    pub key: Vec<u8>,
    pub revisions: Vec<GroupRevision>,
}

/// Parses the decompressed content of a data frame (either version), checking every bound.
pub(crate) fn parse_group(b: &[u8]) -> Result<Group, String> {
    if b.len() < 12 || (b[..4] != GROUP_MAGIC && b[..4] != GROUP_MAGIC_V1) {
        return Err("data frame does not start with a group record".into());
    }
    let with_crc = b[..4] == GROUP_MAGIC_V1;
    let header_len = if with_crc { 30 } else { 26 };
    let key_len = u32_at(b, 4).unwrap_or_default() as usize;
    let mut at = 8usize;
    let key = b
        .get(at..at.saturating_add(key_len))
        .ok_or("group key runs past the record")?
        .to_vec();
    at += key_len;
    let count = u32_at(b, at).ok_or("group record ends before its revision count")? as usize;
    at += 4;
    // Each revision header is at least 26 bytes: a hostile count cannot allocate past the record.
    if count > (b.len() - at) / header_len {
        return Err(format!(
            "group claims {count} revisions, more than its {} bytes hold",
            b.len()
        ));
    }
    let mut headers = Vec::with_capacity(count);
    for _ in 0..count {
        let revision = u64_at(b, at).ok_or("revision header cut short")?;
        let time_ms = u64_at(b, at + 8).ok_or("revision header cut short")?;
        let value_len = u64_at(b, at + 16).ok_or("revision header cut short")?;
        let value_crc = if with_crc {
            Some(u32_at(b, at + 24).ok_or("revision header cut short")?)
        } else {
            None
        };
        let name_at = at + header_len - 2;
        let name_len = b
            .get(name_at..name_at + 2)
            .map(|n| u16::from_le_bytes([n[0], n[1]]))
            .ok_or("revision header cut short")? as usize;
        at += header_len;
        let name = b
            .get(at..at + name_len)
            .ok_or("revision name runs past the record")?
            .to_vec();
        at += name_len;
        headers.push((revision, time_ms, name, value_len, value_crc));
    }
    let mut revisions = Vec::with_capacity(count);
    for (revision, time_ms, name, value_len, value_crc) in headers {
        let value_len = usize::try_from(value_len).map_err(|_| "value length overflows")?;
        let end = at
            .checked_add(value_len)
            .filter(|&e| e <= b.len())
            .ok_or("revision value runs past the record")?;
        revisions.push(GroupRevision {
            revision,
            time_ms,
            name,
            value_offset: at,
            value_len,
            value_crc,
        });
        at = end;
    }
    if at != b.len() {
        return Err(format!(
            "{} bytes after the last value of the group",
            b.len() - at
        ));
    }
    Ok(Group { key, revisions })
}
