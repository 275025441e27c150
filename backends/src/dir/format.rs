//! The bytes of one DirStore entry file.
//!
//! # Entry file, format version 1
//!
//! ```text
//!  0         8        12        16                 24        28        32
//!  +---------+--------+---------+------------------+---------+---------+-----------+-------------+
//!  | magic   | version| key_len | value_len        | value   | header  | key       | value       |
//!  | b"CACHR | u32 LE | u32 LE  | u64 LE           | crc32   | crc32   | key_len B | value_len B |
//!  |   DIR"  |  = 1   |         |                  | u32 LE  | u32 LE  |           |             |
//!  +---------+--------+---------+------------------+---------+---------+-----------+-------------+
//! ```
//!
//! - `header crc32` covers bytes `0..28` followed by the key, so a damaged length, a damaged
//!   key or a damaged value checksum is caught by reading the header alone.
//! - `value crc32` covers the value. It is checked on every read before the value is returned,
//!   copied or memory-mapped (through the map up to 32 MiB, streamed through the file above);
//!   only `Store::read_unchecked` skips it for a mapped value.
//! - `key_len` is at most 1 MiB (`MAX_KEY_LEN`); a header declaring more is corrupt.
//! - The file is exactly `32 + key_len + value_len` bytes; anything shorter is truncated,
//!   anything longer is damaged. Both are [`Error::Corrupt`](crate::Error::Corrupt).
//! - A version above [`FORMAT_VERSION`] is [`Error::UpgradeRequired`](crate::Error::UpgradeRequired),
//!   checked before the header checksum because a newer header may be shaped differently.
//!
//! Checksums are crc32 (IEEE, `crc32fast`). Integers are little-endian and fixed width.

use crate::le;
use crate::version::Refusal;

/// The first eight bytes of every entry file.
pub(super) const MAGIC: [u8; 8] = *b"CACHRDIR";

/// The entry-file format this build writes and the newest it reads.
///
/// - 1: the layout drawn in this module's docs.
pub(super) const FORMAT_VERSION: u32 = 1;

/// Bytes before the key.
pub(super) const HEADER_LEN: usize = 32;

/// The longest key an entry file may hold. `put` refuses longer keys, and `decode` refuses a
/// header declaring one before anything is allocated for it, so a damaged or planted file
/// (say, a sparse file declaring a 4 GiB key) costs no memory. Version 1 files were always
/// written with this build's keys in mind; one holding a longer key reads as corrupt.
pub(super) const MAX_KEY_LEN: u32 = 1 << 20;

/// The fixed part of an entry file, decoded and checked against the file's length.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    raw: [u8; HEADER_LEN],
    /// Length of the key that follows the header.
    pub key_len: u32,
    /// Length of the value that follows the key.
    pub value_len: u64,
    /// crc32 of the value.
    pub value_crc: u32,
}

impl Header {
    /// The header of an entry holding `key` and a value of `value_len` bytes with crc
    /// `value_crc`.
    pub fn encode(key: &[u8], value_len: u64, value_crc: u32) -> [u8; HEADER_LEN] {
        let mut raw = [0u8; HEADER_LEN];
        raw[0..8].copy_from_slice(&MAGIC);
        raw[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        // The caller has checked the key fits in a u32.
        raw[12..16].copy_from_slice(&(key.len() as u32).to_le_bytes());
        raw[16..24].copy_from_slice(&value_len.to_le_bytes());
        raw[24..28].copy_from_slice(&value_crc.to_le_bytes());
        let crc = header_crc(&raw, key);
        raw[28..32].copy_from_slice(&crc.to_le_bytes());
        raw
    }

    /// Decodes the fixed header from `head` (the first `min(32, file_len)` bytes of a file of
    /// `file_len` bytes). The key checksum is checked later by [`Header::check_key`].
    pub fn decode(head: &[u8], file_len: u64) -> Result<Header, Refusal> {
        let truncated = || {
            Refusal::Corrupt(format!(
                "truncated: the file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"
            ))
        };
        if head.len() < MAGIC.len() {
            return Err(if MAGIC.starts_with(head) {
                truncated()
            } else {
                Refusal::Corrupt("bad magic: not a cacher DirStore entry file".into())
            });
        }
        if head[0..8] != MAGIC {
            return Err(Refusal::Corrupt(format!(
                "bad magic {:?}: not a cacher DirStore entry file",
                head[0..8].escape_ascii().to_string()
            )));
        }
        if head.len() < 12 {
            return Err(truncated());
        }
        let version = le::u32_at(head, 8).unwrap_or_default();
        if version > FORMAT_VERSION {
            return Err(Refusal::Newer(version));
        }
        if version == 0 {
            return Err(Refusal::Corrupt(
                "format version 0 was never written".into(),
            ));
        }
        if head.len() < HEADER_LEN {
            return Err(truncated());
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&head[..HEADER_LEN]);
        let header = Header {
            raw,
            key_len: le::u32_at(head, 12).unwrap_or_default(),
            value_len: le::u64_at(head, 16).unwrap_or_default(),
            value_crc: le::u32_at(head, 24).unwrap_or_default(),
        };
        if header.key_len > MAX_KEY_LEN {
            return Err(Refusal::Corrupt(format!(
                "the header declares a key of {} bytes, over the limit of {MAX_KEY_LEN}",
                header.key_len
            )));
        }
        let expected = (HEADER_LEN as u64)
            .checked_add(u64::from(header.key_len))
            .and_then(|n| n.checked_add(header.value_len));
        match expected {
            Some(n) if n == file_len => Ok(header),
            Some(n) if n > file_len => Err(Refusal::Corrupt(format!(
                "truncated: the file is {file_len} bytes, its header describes {n}"
            ))),
            Some(n) => Err(Refusal::Corrupt(format!(
                "the file is {file_len} bytes, its header describes only {n}"
            ))),
            None => Err(Refusal::Corrupt("header lengths overflow".into())),
        }
    }

    /// Checks the header checksum, which also covers `key` (the bytes after the header).
    pub fn check_key(&self, key: &[u8]) -> Result<(), Refusal> {
        let stored = le::u32_at(&self.raw, 28).unwrap_or_default();
        let actual = header_crc(&self.raw, key);
        if stored == actual {
            Ok(())
        } else {
            Err(Refusal::Corrupt(format!(
                "header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
            )))
        }
    }

    /// Checks the value checksum.
    pub fn check_value(&self, value: &[u8]) -> Result<(), Refusal> {
        self.check_value_crc(crc32fast::hash(value))
    }

    /// Checks a value checksum computed elsewhere (streamed through a buffer).
    pub fn check_value_crc(&self, actual: u32) -> Result<(), Refusal> {
        if actual == self.value_crc {
            Ok(())
        } else {
            Err(Refusal::Corrupt(format!(
                "value checksum mismatch (stored {:#010x}, computed {actual:#010x})",
                self.value_crc
            )))
        }
    }

    /// Offset of the value in the file.
    pub fn value_offset(&self) -> usize {
        HEADER_LEN + self.key_len as usize
    }
}

fn header_crc(raw: &[u8; HEADER_LEN], key: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&raw[..28]);
    h.update(key);
    h.finalize()
}

/// The body of the fuzz target for DirStore entry files: decodes `bytes` as a whole entry
/// file the way a copied read does (header, key checksum, value checksum) and panics only if
/// an accepted file is not exactly what [`Header::encode`] writes for its key and value. Any
/// input must return without panicking or allocating; the proptest below drives it, and the
/// `dir_entry` target under `fuzz/` calls it through `cacher_store::fuzzing`.
#[cfg_attr(
    not(any(test, feature = "fuzzing")),
    expect(
        dead_code,
        reason = "called by the proptests and by fuzz/ (feature `fuzzing`)"
    )
)]
pub(crate) fn fuzz_entry(bytes: &[u8]) {
    let head = &bytes[..HEADER_LEN.min(bytes.len())];
    let Ok(header) = Header::decode(head, bytes.len() as u64) else {
        return;
    };
    let key = &bytes[HEADER_LEN..header.value_offset()];
    let value = &bytes[header.value_offset()..];
    if header.check_key(key).is_err() || header.check_value(value).is_err() {
        return;
    }
    let rewritten = Header::encode(key, value.len() as u64, crc32fast::hash(value));
    assert_eq!(
        rewritten[..],
        bytes[..HEADER_LEN],
        "an accepted header re-encodes exactly"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_catches_each_damage() {
        let key = b"some key";
        let value = b"some value";
        let raw = Header::encode(key, value.len() as u64, crc32fast::hash(value));
        let len = (HEADER_LEN + key.len() + value.len()) as u64;
        let h = Header::decode(&raw, len).expect("decode");
        assert_eq!(h.key_len, key.len() as u32);
        assert_eq!(h.value_len, value.len() as u64);
        h.check_key(key).expect("key checks");
        h.check_value(value).expect("value checks");
        assert!(matches!(
            h.check_key(b"other key"),
            Err(Refusal::Corrupt(_))
        ));
        assert!(matches!(h.check_value(b"other"), Err(Refusal::Corrupt(_))));
        assert!(
            matches!(Header::decode(&raw, len - 1), Err(Refusal::Corrupt(r)) if r.starts_with("truncated"))
        );
        assert!(
            matches!(Header::decode(&raw[..20], 20), Err(Refusal::Corrupt(r)) if r.starts_with("truncated"))
        );
        let mut bad = raw;
        bad[0] ^= 1;
        assert!(
            matches!(Header::decode(&bad, len), Err(Refusal::Corrupt(r)) if r.starts_with("bad magic"))
        );
        let mut future = raw;
        future[8..12].copy_from_slice(&2u32.to_le_bytes());
        assert!(matches!(
            Header::decode(&future, len),
            Err(Refusal::Newer(2))
        ));
        let mut flipped = raw;
        flipped[29] ^= 0x40;
        let h = Header::decode(&flipped, len).expect("lengths still agree");
        assert!(
            matches!(h.check_key(key), Err(Refusal::Corrupt(r)) if r.contains("header checksum"))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config { cases: 2000, ..Default::default() })]

        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)) {
            fuzz_entry(&bytes);
            // The same bytes behind a valid magic and version reach the length checks.
            let mut framed = MAGIC.to_vec();
            framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
            framed.extend_from_slice(&bytes);
            fuzz_entry(&framed);
        }

        #[test]
        fn a_mutated_entry_is_refused_or_decodes_to_itself(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
            value in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 1..=255u8), 1..4),
        ) {
            let mut bytes = Header::encode(&key, value.len() as u64, crc32fast::hash(&value)).to_vec();
            bytes.extend_from_slice(&key);
            bytes.extend_from_slice(&value);
            fuzz_entry(&bytes);
            let pristine = bytes.clone();
            for (at, x) in &flips {
                let i = at.index(bytes.len());
                bytes[i] ^= x;
            }
            fuzz_entry(&bytes);
            if bytes != pristine {
                let head = &bytes[..HEADER_LEN];
                let accepted = Header::decode(head, bytes.len() as u64).is_ok_and(|h| {
                    let off = h.value_offset();
                    h.check_key(&bytes[HEADER_LEN..off]).is_ok() && h.check_value(&bytes[off..]).is_ok()
                });
                proptest::prop_assert!(!accepted, "a damaged entry file was accepted");
            }
        }
    }
}
