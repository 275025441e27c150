//! Fuzz entry points for the pickle and envelope decoders, shared by the proptest suite
//! (`tests/fuzz_decoders.rs`: fixed iterations, on stable, in every `cargo test`) and the
//! cargo-fuzz targets under `fuzz/` at the repository root (which include this file by path).
//! Each panics only when a decoder breaks a promise: never a panic on bad input, never a
//! value nested deeper than the documented limit, never a keyed value accepted after any
//! change or under another key.
#![allow(dead_code)]

use cacher_formats::{envelope, EnvelopeMeta, Error, Header, Registry};

/// The store key the mutation target's value is written under.
pub const KEY: &[u8] = b"is_admin:root";
/// Another key: the value copied there must never verify.
pub const OTHER_KEY: &[u8] = b"is_admin:mallory";
const MAC_KEY: [u8; 32] = [0x5a; 32];
/// Deepest nesting a decoded pickle may have (the pickle format's documented limit).
const MAX_DEPTH: usize = 128;

/// Nesting depth of a JSON value (a scalar is 0), without recursion: a broken depth check
/// must show up as a failed assertion, not as this function's own stack overflow.
fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, level)) = pending.pop() {
        let children: Vec<&serde_json::Value> = match value {
            serde_json::Value::Array(items) => items.iter().collect(),
            serde_json::Value::Object(map) => map.values().collect(),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        pending.extend(children.into_iter().map(|child| (child, level + 1)));
    }
    deepest
}

/// The pickle decoder on arbitrary bytes: errors only, and what it accepts nests at most
/// [`MAX_DEPTH`] levels.
pub fn pickle(data: &[u8]) {
    let registry = Registry::with_builtins();
    let pickle = registry.resolve("pickle").expect("pickle is built in");
    if let Ok(value) = pickle.decode::<serde_json::Value>(data) {
        assert!(
            depth(&value) <= MAX_DEPTH,
            "accepted a pickle nested {} deep",
            depth(&value)
        );
    }
    let _ = pickle.decode::<Vec<u8>>(data);
    let _ = pickle.decode::<(String, u64)>(data);
    let _ = pickle.decode_bytes(data);
}

/// The envelope decoder on arbitrary bytes as a stored value, through every read path, with
/// and without a MAC key: errors only.
pub fn envelope(data: &[u8]) {
    let _ = Header::peek(data);
    let _ = Header::len_hint(data);
    let _ = envelope::payload(data);
    for registry in [
        Registry::with_builtins(),
        Registry::with_builtins().with_mac_key(MAC_KEY),
    ] {
        for key in [KEY, OTHER_KEY] {
            let _ = registry.peek_value(key, data);
            let _ = registry.open_value(key, data);
            let _ = registry.decode_value_bytes(key, data);
            let _ = registry.decode_value::<serde_json::Value>(key, data);
        }
    }
}

/// A valid keyed envelope edited as `edits` says, 3 bytes an edit: (what, where, value).
/// What: XOR a byte, cut the value short, insert a byte, or recompute the header checksum
/// (as an attacker can). A keyed registry must accept the result only if it is byte for byte
/// the original, read under its own key; every other outcome is an error, never a panic.
pub fn envelope_mutation(edits: &[u8]) {
    let keyed = Registry::with_builtins().with_mac_key(MAC_KEY);
    let meta = EnvelopeMeta {
        created_ms: 1,
        expires_ms: Some(2),
        revision: 3,
        type_fingerprint: Some(cacher_formats::type_fingerprint("bool")),
    };
    for pipeline in ["cbor", "json+zstd:1", "raw"] {
        let pipeline = keyed.resolve(pipeline).expect("built in");
        let original = pipeline
            .encode_value(KEY, &serde_bytes::Bytes::new(b"true"), &meta)
            .expect("encodes");
        let mut bytes = original.clone();
        for edit in edits.chunks(3) {
            let (what, at, value) = (
                edit[0],
                *edit.get(1).unwrap_or(&0),
                *edit.get(2).unwrap_or(&0),
            );
            let at = usize::from(at) % bytes.len().max(1);
            match what % 4 {
                0 if !bytes.is_empty() => bytes[at] ^= value.max(1),
                1 => bytes.truncate(at),
                2 => bytes.insert(at.min(bytes.len()), value),
                _ => reseal_header(&mut bytes),
            }
        }
        for key in [KEY, OTHER_KEY] {
            match keyed.decode_value_bytes(key, &bytes) {
                Ok(_) => assert!(
                    key == KEY && bytes == original,
                    "accepted a changed value or another key's ({:?})",
                    String::from_utf8_lossy(key)
                ),
                Err(Error::Corrupt { .. } | Error::Unauthenticated { .. }) => {}
                Err(Error::UpgradeRequired { .. } | Error::UnknownFormat { .. }) => {}
                Err(Error::UnknownCodec { .. } | Error::InvalidPipeline { .. }) => {}
                Err(other) => assert!(bytes != original, "the original failed to read: {other:?}"),
            }
            let _ = keyed
                .peek_value(key, &bytes)
                .map(|header| assert!(key == KEY && bytes == original, "peek accepted {header:?}"));
        }
        let _ = Registry::with_builtins().decode_value_bytes(KEY, &bytes);
    }
}

/// Recomputes the header checksum where the header says it is, if the value is long enough.
fn reseal_header(bytes: &mut [u8]) {
    if bytes.len() < 8 {
        return;
    }
    let header_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    if header_len < 4 || header_len > bytes.len() {
        return;
    }
    // The checksum of the version byte: CRC-32C from version 3, CRC-32 before.
    let covered = &bytes[..header_len - 4];
    let crc = if bytes[4] >= 3 {
        crc32c(covered)
    } else {
        crc32fast::hash(covered)
    };
    bytes[header_len - 4..header_len].copy_from_slice(&crc.to_le_bytes());
}

/// CRC-32C (Castagnoli), envelope v3's checksum, from `crc-fast` (not the envelope's own code).
fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}
