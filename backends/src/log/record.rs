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

/// Format version 1: the layout in `LogStore`'s `# Format` docs. The only version so far.
pub(crate) const FORMAT_VERSION_1: u32 = 1;

/// The newest version this build reads and the one it writes.
pub(crate) const FORMAT_VERSION: u32 = FORMAT_VERSION_1;

/// Bytes in the file header.
pub(crate) const FILE_HEADER_LEN: u64 = 32;

/// The longest key a log holds. A scan allocates a key's bytes before it can check them, so
/// this bounds what a damaged or planted header can make it allocate (a header may declare
/// up to 4 GiB). Cache keys are digests and paths, far below it.
pub(crate) const MAX_KEY_LEN: u32 = 64 << 10;

/// Bytes in a record header.
pub(crate) const RECORD_HEADER_LEN: u64 = 24;

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
    pub(crate) fn fields(kind: Kind, key_len: u32, value_len: u64) -> [u8; 16] {
        let mut f = [0u8; 16];
        f[0] = kind as u8;
        f[4..8].copy_from_slice(&key_len.to_le_bytes());
        f[8..16].copy_from_slice(&value_len.to_le_bytes());
        f
    }

    /// The header of a complete record whose key-then-value bytes hash to `data_crc`
    /// (a `crc32fast::Hasher` fed the key, then the value).
    pub(crate) fn encode(
        kind: Kind,
        key_len: u32,
        value_len: u64,
        data_crc: &crc32fast::Hasher,
    ) -> [u8; RECORD_HEADER_LEN as usize] {
        let fields = Self::fields(kind, key_len, value_len);
        let mut record = crc32fast::Hasher::new();
        record.update(&fields);
        record.combine(data_crc);
        Self::assemble(fields, record.finalize())
    }

    /// A whole tombstone record for `key`: header, then the key.
    pub(crate) fn tombstone_record(key: &[u8]) -> Vec<u8> {
        let mut data = crc32fast::Hasher::new();
        data.update(key);
        let mut record = Self::encode(Kind::Tombstone, key.len() as u32, 0, &data).to_vec();
        record.extend_from_slice(key);
        record
    }

    /// The placeholder header `put_reader` writes before the value's length is known.
    pub(crate) fn encode_pending(key_len: u32) -> [u8; RECORD_HEADER_LEN as usize] {
        Self::assemble(Self::fields(Kind::Pending, key_len, 0), 0)
    }

    fn assemble(fields: [u8; 16], crc: u32) -> [u8; RECORD_HEADER_LEN as usize] {
        let mut b = [0u8; RECORD_HEADER_LEN as usize];
        b[0..16].copy_from_slice(&fields);
        b[16..20].copy_from_slice(&crc32fast::hash(&fields).to_le_bytes());
        b[20..24].copy_from_slice(&crc.to_le_bytes());
        b
    }

    pub(crate) fn decode(b: &[u8; RECORD_HEADER_LEN as usize]) -> Result<Self, RecordHeaderError> {
        if u32_at(b, 16) != Some(crc32fast::hash(&b[0..16])) {
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
        if b[1..4] != [0, 0, 0] {
            return Err(RecordHeaderError::Invalid("unknown record flags".into()));
        }
        // `b` is a whole header, so every field is there and no default is ever used.
        let header = RecordHeader {
            kind,
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
        if kind != Kind::Put && header.value_len != 0 {
            return Err(RecordHeaderError::Invalid(format!(
                "{kind:?} record with a value of {} bytes",
                header.value_len
            )));
        }
        Ok(header)
    }

    /// The record's total length: header, key and value (saturating: a huge declared length
    /// simply runs past the end of the file).
    pub(crate) fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN
            .saturating_add(self.key_len as u64)
            .saturating_add(self.value_len)
    }

    /// A hasher primed with this header's fields, to be fed the key and value; its result
    /// must equal [`RecordHeader::crc`].
    pub(crate) fn record_hasher(&self) -> crc32fast::Hasher {
        let mut h = crc32fast::Hasher::new();
        h.update(&Self::fields(self.kind, self.key_len, self.value_len));
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
        newer[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert_eq!(FileHeader::decode(&newer), Err(Refusal::Newer(2)));
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
        let b = RecordHeader::encode(Kind::Put, 3, 5, &data);
        let h = RecordHeader::decode(&b).unwrap();
        assert_eq!((h.kind, h.key_len, h.value_len), (Kind::Put, 3, 5));
        let mut whole = Vec::from(&b[0..16]);
        whole.extend_from_slice(b"keyvalue");
        assert_eq!(h.crc, crc32fast::hash(&whole));
        let mut check = h.record_hasher();
        check.update(b"keyvalue");
        assert_eq!(check.finalize(), h.crc);
    }

    #[test]
    fn record_header_with_flipped_bit_fails_its_checksum() {
        let b = RecordHeader::encode(Kind::Tombstone, 9, 0, &crc32fast::Hasher::new());
        for i in 0..20 {
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
