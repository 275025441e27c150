//! The `LmdbStore` layout: its databases, format record, and how a key and value become one
//! LMDB entry (the [store docs](super::store) draw it).

use super::LmdbStore;
use crate::{Error, Result};

/// The name of the data database.
pub(super) const DATA_DB: &str = "cacher-store";
/// The name of the meta database.
pub(super) const META_DB: &str = "cacher-store-meta";
/// The meta key holding magic and version.
pub(super) const FORMAT_KEY: &[u8] = b"format";
/// The magic at the start of the format record.
pub(super) const MAGIC: &[u8; 8] = b"cacherLM";
/// Version 1: the tagged key layout described in the module docs.
pub(super) const FORMAT_VERSION: u32 = 1;

/// Tag of a key stored as is.
pub(super) const TAG_PLAIN: u8 = 0x00;
/// Tag of a key stored under its blake3 hash.
pub(super) const TAG_HASHED: u8 = 0x01;
/// The longest key LMDB accepts (without heed's `longer-keys` feature).
pub(super) const LMDB_MAX_KEY: usize = 511;
/// The longest key stored as is: one byte goes to the tag.
pub(super) const MAX_PLAIN_KEY: usize = LMDB_MAX_KEY - 1;
/// The length of a long key's header in its LMDB value.
pub(super) const LONG_HEADER: usize = 8;

/// A key as stored in LMDB: the tag and either the key or its hash, on the stack.
pub(super) struct StoredKey {
    buf: [u8; LMDB_MAX_KEY],
    len: usize,
}

impl StoredKey {
    pub(super) fn new(key: &[u8]) -> Self {
        let mut buf = [0u8; LMDB_MAX_KEY];
        let len = if key.len() <= MAX_PLAIN_KEY {
            buf[0] = TAG_PLAIN;
            buf[1..=key.len()].copy_from_slice(key);
            key.len() + 1
        } else {
            buf[0] = TAG_HASHED;
            buf[1..33].copy_from_slice(blake3::hash(key).as_bytes());
            33
        };
        StoredKey { buf, len }
    }

    pub(super) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub(super) fn is_hashed(&self) -> bool {
        self.buf[0] == TAG_HASHED
    }
}

impl LmdbStore {
    pub(super) fn corrupt(&self, key: Option<&[u8]>, reason: impl Into<String>) -> Error {
        Error::corrupt(self.env.path(), key, reason)
    }

    /// The value of `key` from `raw`, the LMDB value under its stored key: for a hashed key,
    /// checks the full key kept beside the value (`None` on a collision).
    pub(super) fn unwrap_value<'a>(
        &self,
        key: &[u8],
        stored: &StoredKey,
        raw: &'a [u8],
    ) -> Result<Option<&'a [u8]>> {
        if !stored.is_hashed() {
            return Ok(Some(raw));
        }
        let (full_key, value) = self.split_long(raw, Some(key))?;
        Ok((full_key == key).then_some(value))
    }

    /// Splits a long key's LMDB value into the full key and the value.
    pub(super) fn split_long<'a>(
        &self,
        raw: &'a [u8],
        key: Option<&[u8]>,
    ) -> Result<(&'a [u8], &'a [u8])> {
        let header: [u8; LONG_HEADER] = raw
            .get(..LONG_HEADER)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| self.corrupt(key, "long-key entry shorter than its header"))?;
        let key_len = u64::from_le_bytes(header);
        let rest = &raw[LONG_HEADER..];
        match usize::try_from(key_len) {
            Ok(n) if n <= rest.len() && n > MAX_PLAIN_KEY => Ok(rest.split_at(n)),
            _ => Err(self.corrupt(
                key,
                format!(
                    "long-key entry claims a {key_len}-byte key in {} bytes",
                    rest.len()
                ),
            )),
        }
    }

    /// Decodes a stored LMDB entry back to the caller's key and value.
    pub(super) fn decode_entry<'a>(
        &self,
        stored: &'a [u8],
        raw: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8])> {
        match stored.split_first() {
            Some((&TAG_PLAIN, key)) => Ok((key, raw)),
            Some((&TAG_HASHED, hash)) => {
                let (key, value) = self.split_long(raw, None)?;
                if blake3::hash(key).as_bytes()[..] != *hash {
                    return Err(self.corrupt(Some(key), "long key does not match its hash"));
                }
                Ok((key, value))
            }
            _ => Err(self.corrupt(
                Some(stored),
                format!("unknown key tag in stored key of {} bytes", stored.len()),
            )),
        }
    }
}
