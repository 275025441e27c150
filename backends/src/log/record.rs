//! The bytes of a log file: the file header and the record codec.
//!
//! The layout, drawn as a diagram, is the `# Format` section of [`super::LogStore`]'s docs
//! (the public spec); this module is its only encoder and decoder.
//!
//! All integers are fixed-width little-endian (CRC-32/ISO-HDLC, the `crc32fast` polynomial).

use crate::le::{u32_at, u64_at};
use crate::version::Refusal;

/// The first eight bytes of every log file.
pub(crate) const MAGIC: [u8; 8] = *b"CACHELOG";

/// Format version 1: every record has the 24-byte v1 header. A v1 file a writer of this
/// build appends to keeps its file header (a log is only ever appended to) and gains v2
/// records, each marked in its own header, so such a file mixes both layouts.
#[cfg(test)]
pub(crate) const FORMAT_VERSION_1: u32 = 1;

/// Format version 2: records are written with the 36-byte v2 header, whose key block names
/// the record's key on its own; v1 records (copied by compaction from a v1 log) may precede
/// them.
pub(crate) const FORMAT_VERSION_2: u32 = 2;

/// The newest version this build reads and the one it writes.
pub(crate) const FORMAT_VERSION: u32 = FORMAT_VERSION_2;

/// Bytes in the file header.
pub(crate) const FILE_HEADER_LEN: u64 = 32;

/// The longest key a log holds. A scan allocates a key's bytes before it can check them, so
/// this bounds what a damaged or planted header can make it allocate (a header may declare
/// up to 4 GiB). Cache keys are digests and paths, far below it.
pub(crate) const MAX_KEY_LEN: u32 = 64 << 10;

/// Bytes in a v1 record header, which are also the first bytes of a v2 header (the part
/// [`RecordHeader::decode`] reads: kind, layout, lengths and both record checksums).
pub(crate) const V1_HEADER_LEN: u64 = 24;

/// Bytes in a v2 record header: the v1 fields, then the key block.
pub(crate) const V2_HEADER_LEN: u64 = 36;

/// Bytes in a key block, which a v2 record holds twice: at the end of its header and after
/// its value.
pub(crate) const KEY_BLOCK_LEN: u64 = 12;

/// Bytes in the record header this build writes (v2).
pub(crate) const RECORD_HEADER_LEN: u64 = V2_HEADER_LEN;

/// Header byte 1 of a v2 record (0 in a v1 record).
pub(crate) const V2_MARKER: u8 = 2;

/// The record layouts, told apart by header byte 1 (covered by the header checksum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// Byte 1 is 0: a 24-byte header.
    V1,
    /// Byte 1 is 2: a 36-byte header ending in the key block.
    V2,
}

impl Layout {
    /// Bytes in a header of this layout (where the key starts).
    pub(crate) fn header_len(self) -> u64 {
        match self {
            Layout::V1 => V1_HEADER_LEN,
            Layout::V2 => V2_HEADER_LEN,
        }
    }

    /// Bytes after the value: a v2 record ends with a copy of its key block.
    pub(crate) fn trailer_len(self) -> u64 {
        match self {
            Layout::V1 => 0,
            Layout::V2 => KEY_BLOCK_LEN,
        }
    }

    fn marker(self) -> u8 {
        match self {
            Layout::V1 => 0,
            Layout::V2 => V2_MARKER,
        }
    }
}

/// A v2 header's key block (bytes 24..36), decoded: the key's length and CRC-32, which passed
/// their own checksum. The block is covered by the header checksum too, so the key's length
/// and CRC-32 survive when either the header fields or the key block is damaged: they name a
/// damaged record's key (see `super::identify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyBlock {
    pub(crate) key_len: u32,
    pub(crate) key_crc: u32,
}

impl KeyBlock {
    /// The key block of `key`, as a v2 record stores it at the end of its header and as its
    /// trailer.
    pub(crate) fn encode(key: &[u8]) -> [u8; KEY_BLOCK_LEN as usize] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&(key.len() as u32).to_le_bytes());
        b[4..8].copy_from_slice(&crc32fast::hash(key).to_le_bytes());
        let check = crc32fast::hash(&b[0..8]);
        b[8..12].copy_from_slice(&check.to_le_bytes());
        b
    }

    /// The key block of the v2 header starting `header` (at least 36 bytes), when its own
    /// checksum holds, whatever the rest of the header says.
    pub(crate) fn decode(header: &[u8]) -> Option<KeyBlock> {
        Self::decode_block(header.get(V1_HEADER_LEN as usize..V2_HEADER_LEN as usize)?)
    }

    /// The 12 bytes of a key block (a header's, or a record's trailer), when its own checksum
    /// holds.
    pub(crate) fn decode_block(b: &[u8]) -> Option<KeyBlock> {
        if b.len() != KEY_BLOCK_LEN as usize || u32_at(b, 8)? != crc32fast::hash(&b[0..8]) {
            return None;
        }
        let block = KeyBlock {
            key_len: u32_at(b, 0)?,
            key_crc: u32_at(b, 4)?,
        };
        (block.key_len <= MAX_KEY_LEN).then_some(block)
    }

    /// Whether `key` is the key this block names.
    pub(crate) fn names(&self, key: &[u8]) -> bool {
        key.len() == self.key_len as usize && crc32fast::hash(key) == self.key_crc
    }
}

/// The file header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileHeader {
    pub(crate) generation: u64,
}

impl FileHeader {
    pub(crate) fn encode(&self) -> [u8; FILE_HEADER_LEN as usize] {
        let mut b = [0u8; FILE_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&0u32.to_le_bytes());
        b[16..24].copy_from_slice(&self.generation.to_le_bytes());
        let crc = crc32fast::hash(&b[0..24]);
        b[24..28].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes the first bytes of a file (`bytes` may be shorter than a header).
    pub(crate) fn decode(bytes: &[u8]) -> Result<FileHeader, Refusal> {
        if bytes.is_empty() {
            return Err(Refusal::corrupt(
                "the log is empty (0 bytes): truncated, since a log always holds its file header",
            ));
        }
        if bytes.len() < MAGIC.len() && MAGIC.starts_with(bytes) {
            return Err(Refusal::corrupt(format!(
                "file header cut short: the log is truncated to {} bytes",
                bytes.len()
            )));
        }
        if bytes.len() < MAGIC.len() || bytes[0..8] != MAGIC {
            return Err(Refusal::Corrupt("bad magic: not a cacher log file".into()));
        }
        if bytes.len() < 12 {
            return Err(Refusal::Corrupt("file header cut short".into()));
        }
        // The version is checked before the rest so a newer layout is "upgrade required",
        // never "corrupt".
        let version = u32_at(bytes, 8).unwrap_or(0);
        if version > FORMAT_VERSION {
            return Err(Refusal::Newer(version));
        }
        if version == 0 {
            return Err(Refusal::Corrupt("format version 0".into()));
        }
        if bytes.len() < FILE_HEADER_LEN as usize {
            return Err(Refusal::Corrupt("file header cut short".into()));
        }
        let crc = u32_at(bytes, 24);
        if crc != Some(crc32fast::hash(&bytes[0..24])) {
            return Err(Refusal::Corrupt("file header checksum mismatch".into()));
        }
        if u32_at(bytes, 12) != Some(0) || u32_at(bytes, 28) != Some(0) {
            return Err(Refusal::Corrupt("unknown flags in the file header".into()));
        }
        let generation =
            u64_at(bytes, 16).ok_or_else(|| Refusal::corrupt("file header cut short"))?;
        Ok(FileHeader { generation })
    }
}

/// The header checksum a record header starting `b` should carry: of bytes 0..16 for a v1
/// header, of bytes 0..16 and the key block (24..36) for a v2 one, as byte 1 says; `None`
/// when `b` is too short for its layout.
pub(crate) fn header_crc(b: &[u8]) -> Option<u32> {
    let fields = b.get(0..16)?;
    let mut crc = crc32fast::Hasher::new();
    crc.update(fields);
    if fields[1] == Layout::V2.marker() {
        crc.update(b.get(24..36)?);
    } else if b.len() < V1_HEADER_LEN as usize {
        return None;
    }
    Some(crc.finalize())
}

/// What a record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Put = 1,
    Tombstone = 2,
    Pending = 3,
}

/// A record header, decoded (its header crc already checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: Kind,
    pub(crate) layout: Layout,
    pub(crate) key_len: u32,
    pub(crate) value_len: u64,
    /// The stored record crc (0 for a pending record).
    pub(crate) crc: u32,
}

/// Why a record header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordHeaderError {
    /// The header crc does not match: torn or damaged bytes, or not a record boundary.
    Checksum,
    /// The header crc matches but the fields are not ones this version writes.
    Invalid(String),
}

impl RecordHeader {
    /// The header bytes 0..16 the crcs cover.
    pub(crate) fn fields(kind: Kind, layout: Layout, key_len: u32, value_len: u64) -> [u8; 16] {
        let mut f = [0u8; 16];
        f[0] = kind as u8;
        f[1] = layout.marker();
        f[4..8].copy_from_slice(&key_len.to_le_bytes());
        f[8..16].copy_from_slice(&value_len.to_le_bytes());
        f
    }

    /// The v2 header of a complete record for `key` whose key-then-value bytes hash to
    /// `data_crc` (a `crc32fast::Hasher` fed the key, then the value).
    pub(crate) fn encode(
        kind: Kind,
        key: &[u8],
        value_len: u64,
        data_crc: &crc32fast::Hasher,
    ) -> [u8; V2_HEADER_LEN as usize] {
        let fields = Self::fields(kind, Layout::V2, key.len() as u32, value_len);
        let mut record = crc32fast::Hasher::new();
        record.update(&fields);
        record.combine(data_crc);
        Self::assemble(fields, record.finalize(), key)
    }

    /// The v1 header of a complete record (what builds before v2 wrote), for tests that make
    /// v1 logs.
    #[cfg(test)]
    pub(crate) fn encode_v1(
        kind: Kind,
        key_len: u32,
        value_len: u64,
        data_crc: &crc32fast::Hasher,
    ) -> [u8; V1_HEADER_LEN as usize] {
        let fields = Self::fields(kind, Layout::V1, key_len, value_len);
        let mut record = crc32fast::Hasher::new();
        record.update(&fields);
        record.combine(data_crc);
        let mut b = [0u8; V1_HEADER_LEN as usize];
        b[0..16].copy_from_slice(&fields);
        b[16..20].copy_from_slice(&crc32fast::hash(&fields).to_le_bytes());
        b[20..24].copy_from_slice(&record.finalize().to_le_bytes());
        b
    }

    /// A whole tombstone record for `key`: header, key, trailer.
    pub(crate) fn tombstone_record(key: &[u8]) -> Vec<u8> {
        let mut data = crc32fast::Hasher::new();
        data.update(key);
        let mut record = Self::encode(Kind::Tombstone, key, 0, &data).to_vec();
        record.extend_from_slice(key);
        record.extend_from_slice(&KeyBlock::encode(key));
        record
    }

    /// The placeholder header `put_reader` writes before the value's length is known (its
    /// key block is already whole).
    pub(crate) fn encode_pending(key: &[u8]) -> [u8; V2_HEADER_LEN as usize] {
        let fields = Self::fields(Kind::Pending, Layout::V2, key.len() as u32, 0);
        Self::assemble(fields, 0, key)
    }

    fn assemble(fields: [u8; 16], crc: u32, key: &[u8]) -> [u8; V2_HEADER_LEN as usize] {
        let mut b = [0u8; V2_HEADER_LEN as usize];
        b[0..16].copy_from_slice(&fields);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b[24..36].copy_from_slice(&KeyBlock::encode(key));
        let header_crc = header_crc(&b).unwrap_or_default();
        b[16..20].copy_from_slice(&header_crc.to_le_bytes());
        b
    }

    /// Decodes a record header of either layout from `b`, which holds the record's first
    /// bytes: at least 24, and 36 for a v2 header (fewer is [`RecordHeaderError::Checksum`],
    /// which a caller that checked the file's length never sees). The key block of a v2
    /// header is covered by the header checksum and by its own (see [`KeyBlock`]).
    pub(crate) fn decode(b: &[u8]) -> Result<Self, RecordHeaderError> {
        if header_crc(b).is_none_or(|crc| u32_at(b, 16) != Some(crc)) {
            return Err(RecordHeaderError::Checksum);
        }
        let kind = match b[0] {
            1 => Kind::Put,
            2 => Kind::Tombstone,
            3 => Kind::Pending,
            k => {
                return Err(RecordHeaderError::Invalid(format!(
                    "unknown record kind {k}"
                )))
            }
        };
        let layout = match b[1] {
            0 => Layout::V1,
            V2_MARKER => Layout::V2,
            _ => return Err(RecordHeaderError::Invalid("unknown record flags".into())),
        };
        if b[2..4] != [0, 0] {
            return Err(RecordHeaderError::Invalid("unknown record flags".into()));
        }
        // `b` is a whole header, so every field is there and no default is ever used.
        let header = RecordHeader {
            kind,
            layout,
            key_len: u32_at(b, 4).unwrap_or_default(),
            value_len: u64_at(b, 8).unwrap_or_default(),
            crc: u32_at(b, 20).unwrap_or_default(),
        };
        if header.key_len > MAX_KEY_LEN {
            return Err(RecordHeaderError::Invalid(format!(
                "a key of {} bytes, above the limit of {MAX_KEY_LEN} bytes",
                header.key_len
            )));
        }
        if layout == Layout::V2 && u32_at(b, 24) != Some(header.key_len) {
            return Err(RecordHeaderError::Invalid(
                "the key block's key length differs from the header's".into(),
            ));
        }
        if kind != Kind::Put && header.value_len != 0 {
            return Err(RecordHeaderError::Invalid(format!(
                "{kind:?} record with a value of {} bytes",
                header.value_len
            )));
        }
        Ok(header)
    }

    /// Bytes of this header (where the key starts).
    pub(crate) fn header_len(&self) -> u64 {
        self.layout.header_len()
    }

    /// The record's total length: header, key, value and trailer (saturating: a huge
    /// declared length simply runs past the end of the file).
    pub(crate) fn record_len(&self) -> u64 {
        self.header_len()
            .saturating_add(self.key_len as u64)
            .saturating_add(self.value_len)
            .saturating_add(self.layout.trailer_len())
    }

    /// A hasher primed with this header's fields, to be fed the key and value; its result
    /// must equal [`RecordHeader::crc`].
    pub(crate) fn record_hasher(&self) -> crc32fast::Hasher {
        let mut h = crc32fast::Hasher::new();
        h.update(&Self::fields(
            self.kind,
            self.layout,
            self.key_len,
            self.value_len,
        ));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_header_round_trips_and_refuses_newer_versions() {
        let h = FileHeader { generation: 77 };
        let b = h.encode();
        assert_eq!(FileHeader::decode(&b), Ok(h));
        let mut newer = b;
        newer[8..12].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(FileHeader::decode(&newer), Err(Refusal::Newer(3)));
        let mut flipped = b;
        flipped[20] ^= 1;
        assert!(matches!(
            FileHeader::decode(&flipped),
            Err(Refusal::Corrupt(_))
        ));
        assert!(matches!(
            FileHeader::decode(&b[..5]),
            Err(Refusal::Corrupt(_))
        ));
    }

    #[test]
    fn record_crc_covers_header_key_and_value() {
        let mut data = crc32fast::Hasher::new();
        data.update(b"key");
        data.update(b"value");
        let b = RecordHeader::encode(Kind::Put, b"key", 5, &data);
        let h = RecordHeader::decode(&b).unwrap();
        assert_eq!(
            (h.kind, h.layout, h.key_len, h.value_len),
            (Kind::Put, Layout::V2, 3, 5)
        );
        assert_eq!(h.record_len(), 36 + 3 + 5 + 12);
        let mut whole = Vec::from(&b[0..16]);
        whole.extend_from_slice(b"keyvalue");
        assert_eq!(h.crc, crc32fast::hash(&whole));
        let mut check = h.record_hasher();
        check.update(b"keyvalue");
        assert_eq!(check.finalize(), h.crc);
    }

    #[test]
    fn v1_headers_still_decode() {
        let mut data = crc32fast::Hasher::new();
        data.update(b"keyvalue");
        let b = RecordHeader::encode_v1(Kind::Put, 3, 5, &data);
        let h = RecordHeader::decode(&b).unwrap();
        assert_eq!(
            RecordHeader::decode(&b[..23]),
            Err(RecordHeaderError::Checksum)
        );
        assert_eq!((h.layout, h.record_len()), (Layout::V1, 24 + 3 + 5));
        let mut check = h.record_hasher();
        check.update(b"keyvalue");
        assert_eq!(check.finalize(), h.crc);
    }

    #[test]
    fn key_block_names_its_key_and_survives_damage_to_the_rest() {
        let b = RecordHeader::encode(Kind::Put, b"the key", 9, &crc32fast::Hasher::new());
        let mut damaged = b;
        damaged[..24].iter_mut().for_each(|x| *x = !*x);
        let block = KeyBlock::decode(&damaged).expect("key block is separately checked");
        assert!(block.names(b"the key"));
        assert!(!block.names(b"the kez"));
        assert!(!block.names(b"the key "));
        assert_eq!(
            KeyBlock::decode_block(&KeyBlock::encode(b"the key")),
            Some(block)
        );
        for i in 24..36 {
            let mut bad = b;
            bad[i] ^= 0x04;
            assert_eq!(KeyBlock::decode(&bad), None, "byte {i}");
        }
    }

    #[test]
    fn record_header_with_flipped_bit_fails_its_checksum() {
        let b = RecordHeader::encode(Kind::Tombstone, b"123456789", 0, &crc32fast::Hasher::new());
        for i in (0..20).chain(24..36) {
            let mut bad = b;
            bad[i] ^= 0x10;
            assert_eq!(
                RecordHeader::decode(&bad),
                Err(RecordHeaderError::Checksum),
                "byte {i}"
            );
        }
    }
}
