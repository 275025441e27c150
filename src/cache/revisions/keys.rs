//! The store keys of old revisions and of each key's revision manifest.
//!
//! A user key is any bytes, so a derived key can only be kept apart by a prefix no user key
//! may take: every derived key starts with [`RESERVED_PREFIX`] (`0xFF 0xFE "cacher-rev" 0x00`),
//! and the cache refuses to write a user value under a key starting with it
//! ([`is_reserved`]). After the prefix comes the first 16 bytes of BLAKE3(user key), so a
//! derived key has a fixed length (no store's key-length limit is reached by a long user key):
//!
//! ```text
//! revision record:  prefix | hash16(key) | b'r' | u64 revision, big-endian   (38 bytes)
//! manifest:         prefix | hash16(key) | b'm'                              (30 bytes)
//! ```
//!
//! Big-endian numbers keep a key's records in revision order in sorted stores (LMDB). A hash
//! collision between two user keys cannot hand one key's revision to the other: a record is
//! the envelope the user key was written with, opened with that key (its checksum and MAC bind
//! it), and the manifest carries the whole user key, compared on every read.

/// The first bytes of every derived key; no user key may start with them.
pub(crate) const RESERVED_PREFIX: &[u8] = b"\xff\xfecacher-rev\x00";

const HASH_LEN: usize = 16;

/// Whether `key` lies in the derived key space (a user write under it is refused).
pub(crate) fn is_reserved(key: &[u8]) -> bool {
    key.starts_with(RESERVED_PREFIX)
}

/// Whether `key` is the manifest of some user key.
#[cfg_attr(not(feature = "archive"), allow(dead_code))]
pub(crate) fn is_manifest(key: &[u8]) -> bool {
    is_reserved(key)
        && key.len() == RESERVED_PREFIX.len() + HASH_LEN + 1
        && key.last() == Some(&b'm')
}

fn base(key: &[u8], kind: u8, extra: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(RESERVED_PREFIX.len() + HASH_LEN + 1 + extra);
    out.extend_from_slice(RESERVED_PREFIX);
    out.extend_from_slice(&blake3::hash(key).as_bytes()[..HASH_LEN]);
    out.push(kind);
    out
}

/// The store key of revision `n` of `key`.
#[expect(
    clippy::big_endian_bytes,
    reason = "a key, not an on-disk integer: big-endian sorts a key's records by number"
)]
pub(crate) fn record_key(key: &[u8], n: u64) -> Vec<u8> {
    let mut out = base(key, b'r', 8);
    out.extend_from_slice(&n.to_be_bytes());
    out
}

/// The store key of `key`'s manifest.
pub(crate) fn manifest_key(key: &[u8]) -> Vec<u8> {
    base(key, b'm', 0)
}

/// What a key of the reserved space is (see [`crate::RevisionKeyKind`]); `None` for a user
/// key.
pub(crate) fn kind_of(key: &[u8]) -> Option<crate::RevisionKeyKind> {
    use crate::RevisionKeyKind as K;
    if !is_reserved(key) {
        return None;
    }
    let head = RESERVED_PREFIX.len() + HASH_LEN;
    // A reserved key shorter than the head (a newer cacher's) is `Other`, never a panic.
    Some(match (key.get(head), key.len().saturating_sub(head)) {
        (Some(b'r'), 9) => {
            let mut n = [0u8; 8];
            n.copy_from_slice(&key[head + 1..]);
            #[expect(
                clippy::big_endian_bytes,
                reason = "the key's number is big-endian, so a key's records sort by it"
            )]
            K::Record(u64::from_be_bytes(n))
        }
        (Some(b'm'), 1) => K::Manifest,
        _ => K::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_keys_are_reserved_and_distinct() {
        let long = vec![7u8; 4096];
        for key in [&b""[..], b"user:42", &long, RESERVED_PREFIX] {
            let r1 = record_key(key, 1);
            let m = manifest_key(key);
            assert!(is_reserved(&r1) && is_reserved(&m));
            assert!(is_manifest(&m) && !is_manifest(&r1));
            assert_ne!(r1, record_key(key, 2));
            assert_eq!((r1.len(), m.len()), (38, 30));
            assert_eq!(kind_of(&r1), Some(crate::RevisionKeyKind::Record(1)));
            assert_eq!(kind_of(&m), Some(crate::RevisionKeyKind::Manifest));
        }
        assert!(!is_reserved(b"user:42"));
        assert_eq!(kind_of(b"user:42"), None);
        assert_eq!(
            kind_of(RESERVED_PREFIX),
            Some(crate::RevisionKeyKind::Other)
        );
        assert!(!is_reserved(b"\xff\xfe"));
    }
}
