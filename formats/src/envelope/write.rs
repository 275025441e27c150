//! Writing version-3 envelopes: the header before the payload, then the seal after it.

use super::{
    Crc, EnvelopeMeta, CRC_LEN, CURRENT_VERSION, ENVELOPE_VERSION_2, FIXED_LEN_V2, FLAG_EXPIRES,
    FLAG_MAC, MAC_LEN, MAGIC,
};

/// The checksum of the version this build writes.
const WRITTEN: Crc = Crc::Castagnoli;

/// The header length for a pipeline name of `name_len` bytes.
pub(crate) fn header_len(name_len: usize, with_mac: bool) -> usize {
    FIXED_LEN_V2 + name_len + if with_mac { MAC_LEN } else { 0 } + CRC_LEN
}

/// The version-2 (and 3) MAC: keyed BLAKE3 of the header up to the MAC, the store key (length
/// first, so no key/payload split can be shifted), then the payload.
pub(super) fn mac(
    mac_key: &[u8; 32],
    covered_header: &[u8],
    store_key: &[u8],
    payload: &[u8],
) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_keyed(mac_key);
    hasher.update(covered_header);
    hasher.update(&(store_key.len() as u64).to_le_bytes());
    hasher.update(store_key);
    hasher.update(payload);
    hasher.finalize()
}

/// Writes a header with placeholder length, checksums and MAC to `out` (which must be empty)
/// and returns the header length; the payload is then appended and [`seal`] fills them in.
pub(crate) fn begin(
    out: &mut Vec<u8>,
    pipeline: &str,
    meta: &EnvelopeMeta,
    store_key: &[u8],
    with_mac: bool,
) -> usize {
    debug_assert!(out.is_empty());
    debug_assert!(!pipeline.is_empty() && pipeline.len() <= 255);
    let name_len = pipeline.len().min(255);
    let header_len = header_len(name_len, with_mac);
    let mut flags = 0;
    if meta.expires_ms.is_some() {
        flags |= FLAG_EXPIRES;
    }
    if with_mac {
        flags |= FLAG_MAC;
    }
    out.extend_from_slice(&MAGIC);
    out.push(CURRENT_VERSION);
    out.push(flags);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(&meta.created_ms.to_le_bytes());
    out.extend_from_slice(&meta.expires_ms.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&meta.revision.to_le_bytes());
    out.extend_from_slice(&[0u8; 12]); // payload_len + payload_crc, filled by seal
    out.extend_from_slice(&meta.type_fingerprint.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&WRITTEN.of(store_key).to_le_bytes());
    out.push(name_len as u8);
    out.extend_from_slice(&pipeline.as_bytes()[..name_len]);
    out.resize(header_len, 0); // MAC and header_crc, filled by seal
    header_len
}

/// Fills in payload length, payload checksum, MAC and header checksum once the payload has
/// been appended after the header written by [`begin`] (with the same `store_key`).
pub(crate) fn seal(
    out: &mut [u8],
    header_len: usize,
    store_key: &[u8],
    mac_key: Option<&[u8; 32]>,
) {
    let (header, payload) = out.split_at_mut(header_len);
    header[32..40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[40..44].copy_from_slice(&WRITTEN.of(payload).to_le_bytes());
    let crc_at = header_len - CRC_LEN;
    if let Some(key) = mac_key {
        let mac_at = crc_at - MAC_LEN;
        let mac = mac(key, &header[..mac_at], store_key, payload);
        header[mac_at..crc_at].copy_from_slice(mac.as_bytes());
    }
    let crc = WRITTEN.of(&header[..crc_at]);
    header[crc_at..].copy_from_slice(&crc.to_le_bytes());
}

/// Writes `revision` into `bytes`, a version-2 or version-3 value envelope sealed for
/// `store_key`, in place (keeping its version and so its checksum): the header is checked as [`Header::peek`](super::Header::peek) checks it and for
/// `store_key`, then the revision field, the MAC (with `mac_key`, over header, key and payload
/// as [`seal`] computes it) and the header checksum are rewritten. Nothing is copied and,
/// without a MAC, the payload is not read at all: its checksum does not cover the header, so
/// it stays exactly as valid as it was. Meant for bytes this process has just sealed (a
/// writer that learns the revision number only after encoding); a stored value from elsewhere
/// goes through `Registry::restamp_value`, which checks the payload first.
pub(crate) fn restamp_in_place(
    bytes: &mut [u8],
    store_key: &[u8],
    revision: u64,
    mac_key: Option<&[u8; 32]>,
) -> crate::error::Result<()> {
    use crate::error::Error;
    let header = super::Header::peek(bytes)?;
    if header.stream || header.version() < ENVELOPE_VERSION_2 {
        return Err(Error::corrupt(format!(
            "only a value envelope of version {ENVELOPE_VERSION_2} to {CURRENT_VERSION} is \
             restamped in place, not a version-{} {}",
            header.version(),
            if header.stream { "stream" } else { "value" }
        )));
    }
    header.check_key(store_key)?;
    let header_len = header.header_len();
    if (bytes.len() - header_len) as u64 != header.payload_len() {
        return Err(Error::corrupt(format!(
            "payload is {} bytes, the header says {}",
            bytes.len() - header_len,
            header.payload_len()
        )));
    }
    if header.has_mac() != mac_key.is_some() {
        return Err(Error::Unauthenticated {
            reason: if header.has_mac() {
                "the value carries a MAC but the registry has no MAC key to recompute it".into()
            } else {
                "the registry has a MAC key but the value carries no MAC".into()
            },
        });
    }
    let (head, payload) = bytes.split_at_mut(header_len);
    head[24..32].copy_from_slice(&revision.to_le_bytes());
    let crc_at = header_len - CRC_LEN;
    if let Some(key) = mac_key {
        let mac_at = crc_at - MAC_LEN;
        let mac = mac(key, &head[..mac_at], store_key, payload);
        head[mac_at..crc_at].copy_from_slice(mac.as_bytes());
    }
    let crc = header.crc().of(&head[..crc_at]);
    head[crc_at..].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}
