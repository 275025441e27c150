//! How a RedisStore names its Redis keys and frames its values.
//!
//! Keys: `cacher:{PREFIX}:d:<key bytes>` for data, `cacher:{PREFIX}:l:<name>` for leases. The
//! braces are a Redis Cluster hash tag: every key of one store hashes to the same slot, so a
//! batch (`MGET`, `MSET`, a pipeline) is one command to one node, `SCAN` of a store runs on
//! one node, and nothing needs regrouping by slot. The cost: one store lives on one shard;
//! spread load over the cluster with several stores (one per cache or namespace).
//!
//! Values: an 8-byte header `b"cR"`, version `1`, a reserved zero byte, then the CRC-32 of
//! the key (length-prefixed) and value, little-endian; then the value. The key is in the
//! checksum so a value copied or renamed under another key is caught too.

use crate::{Error, Result};

/// Bytes before the value in a stored string.
pub(crate) const HEADER_LEN: usize = 8;
const MAGIC: &[u8; 2] = b"cR";
const VERSION: u8 = 1;

/// Redis's limit on one string (`proto-max-bulk-len`'s default, and the hard limit of a
/// string value): 512 MiB.
pub(crate) const REDIS_STRING_LIMIT: u64 = 512 << 20;

/// The key names of one store.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    data: Vec<u8>,
    lease: Vec<u8>,
    /// `data` with Redis glob characters escaped, then `*`: the `SCAN MATCH` pattern.
    pattern: Vec<u8>,
}

impl Names {
    /// Names for `prefix`; refuses a prefix that would break the hash tag.
    pub(crate) fn new(prefix: &str, server: &str) -> Result<Self> {
        if prefix.is_empty() || prefix.contains(['{', '}']) {
            return Err(Error::InvalidArgument {
                op: "opening a RedisStore",
                path: server.into(),
                reason: format!(
                    "key prefix {prefix:?} must be non-empty and hold no '{{' or '}}' \
                     (it becomes the cluster hash tag)"
                ),
            });
        }
        let data = format!("cacher:{{{prefix}}}:d:").into_bytes();
        let lease = format!("cacher:{{{prefix}}}:l:").into_bytes();
        let mut pattern = Vec::with_capacity(data.len() + 8);
        for &b in &data {
            if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
                pattern.push(b'\\');
            }
            pattern.push(b);
        }
        pattern.push(b'*');
        Ok(Names {
            data,
            lease,
            pattern,
        })
    }

    pub(crate) fn data_key(&self, key: &[u8]) -> Vec<u8> {
        [&self.data[..], key].concat()
    }

    pub(crate) fn lease_key(&self, name: &[u8]) -> Vec<u8> {
        [&self.lease[..], name].concat()
    }

    /// The store's key for a Redis key, or `None` if it is not one of this store's data keys.
    pub(crate) fn strip<'a>(&self, redis_key: &'a [u8]) -> Option<&'a [u8]> {
        redis_key.strip_prefix(&self.data[..])
    }

    pub(crate) fn data_prefix(&self) -> &[u8] {
        &self.data
    }

    pub(crate) fn scan_pattern(&self) -> &[u8] {
        &self.pattern
    }
}

fn checksum(key: &[u8], value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    h.finalize()
}

/// The stored string for `value` under `key`.
pub(crate) fn frame(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + value.len());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&checksum(key, value).to_le_bytes());
    out.extend_from_slice(value);
    out
}

/// Checks a stored string read under `key`; `Err(reason)` when it is damaged or not ours.
pub(crate) fn check(key: &[u8], stored: &[u8]) -> std::result::Result<(), String> {
    if stored.len() < HEADER_LEN {
        return Err(format!(
            "stored string of {} bytes is shorter than the {HEADER_LEN}-byte header",
            stored.len()
        ));
    }
    if &stored[..2] != MAGIC {
        return Err(format!(
            "bad magic {:02x?} (not written by RedisStore)",
            &stored[..2]
        ));
    }
    if stored[2] != VERSION || stored[3] != 0 {
        return Err(format!(
            "value framing version {}.{} (this build reads {VERSION}.0)",
            stored[2], stored[3]
        ));
    }
    let want = u32::from_le_bytes([stored[4], stored[5], stored[6], stored[7]]);
    let got = checksum(key, &stored[HEADER_LEN..]);
    if want != got {
        return Err(format!(
            "checksum mismatch: header says {want:08x}, value hashes to {got:08x}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_value_checks_and_any_flipped_byte_is_caught() {
        let stored = frame(b"k", b"hello");
        assert_eq!(check(b"k", &stored), Ok(()));
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x40;
            assert!(check(b"k", &bad).is_err(), "flip at {i} not caught");
        }
        assert!(check(b"other", &stored).is_err(), "value under another key");
        assert!(check(b"k", &stored[..5]).is_err());
    }

    #[test]
    fn the_scan_pattern_escapes_glob_characters_of_the_prefix() {
        let names = Names::new("a*b?[c]\\", "test").unwrap();
        assert_eq!(names.scan_pattern(), br"cacher:{a\*b\?\[c\]\\}:d:*");
        assert!(Names::new("x}y", "test").is_err());
        assert!(Names::new("", "test").is_err());
    }
}
