//! The value envelope: the small versioned header every stored value starts with. This module
//! alone owns its layout.
//!
//! # Layout (version 1)
//!
//! All integers are fixed-width little-endian.
//!
//! ```text
//! offset      size  field
//! ----------  ----  -----------------------------------------------------------------
//! 0           4     magic  b"CCHV"
//! 4           1     envelope version (1). Newer -> UpgradeRequired; 0 -> Corrupt
//! 5           1     flags: bit 0 = expires_ms is set, bit 1 = MAC present;
//!                   other bits must be 0 (a v1 reader refuses them as Corrupt)
//! 6           2     header_len (u16): bytes from offset 0 to the first payload byte
//! 8           8     created_ms (u64, unix milliseconds)
//! 16          8     expires_ms (u64, unix milliseconds; 0 when flag bit 0 is clear)
//! 24          8     revision (u64)
//! 32          8     payload_len (u64)
//! 40          4     payload_crc (u32, CRC-32 (ISO-HDLC) of the payload as stored)
//! 44          1     n = length of the pipeline name (1..=255)
//! 45          n     pipeline name, UTF-8: format then codecs with every parameter,
//!                   e.g. "cbor+zstd:3:dict=1234" (the dictionary id lives here)
//! 45+n        32    MAC, only when flag bit 1: keyed BLAKE3 of bytes [0, 45+n) and
//!                   then the payload
//! header_len-4 4    header_crc (u32, CRC-32 of bytes [0, header_len-4))
//! header_len  payload_len   payload: the pipeline's output (format, then codecs)
//! ```
//!
//! Why these choices:
//! - The format is stored by **name**, not a numeric id: names are stable across processes
//!   and versions and work for user-registered formats without a central id table. The name
//!   is canonical (`zstd` is stored as `zstd:3`), so a later change of a default cannot change
//!   how old values decode.
//! - A **header checksum** separate from the payload checksum lets [`Header::peek`] detect a
//!   damaged expiry or revision without touching the payload, so expiry checks stay cheap.
//!   `peek` needs only the first [`Header::len_hint`] / at most [`MAX_HEADER_LEN`] bytes.
//! - The **MAC** covers the header fields and the payload, so a holder of the cache directory
//!   but not the key can neither plant a value nor extend an expiry.

use std::ops::Range;

use crate::error::{Error, Result};

/// The magic bytes every envelope starts with.
pub const MAGIC: [u8; 4] = *b"CCHV";

/// Version 1: the layout documented on this module. The first published layout.
pub const ENVELOPE_VERSION_1: u8 = 1;

/// The envelope version this build writes and the newest it reads.
pub const CURRENT_VERSION: u8 = ENVELOPE_VERSION_1;

/// Bytes before the pipeline name.
const FIXED_LEN: usize = 45;
/// Length of the keyed BLAKE3 MAC.
pub const MAC_LEN: usize = 32;
const CRC_LEN: usize = 4;

/// The longest possible version-1 header: read this many bytes (or the whole value, if
/// shorter) to be sure [`Header::peek`] has enough.
pub const MAX_HEADER_LEN: usize = FIXED_LEN + 255 + MAC_LEN + CRC_LEN;

const FLAG_EXPIRES: u8 = 1 << 0;
const FLAG_MAC: u8 = 1 << 1;
const KNOWN_FLAGS: u8 = FLAG_EXPIRES | FLAG_MAC;

/// The caller-chosen metadata written into an envelope.
///
/// ```
/// use cacher_formats::EnvelopeMeta;
///
/// let meta = EnvelopeMeta { created_ms: 1_700_000_000_000, expires_ms: Some(1_700_000_060_000), revision: 3 };
/// assert!(meta.is_expired_at(1_700_000_060_000));
/// assert!(!EnvelopeMeta::now().is_expired_at(0));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeMeta {
    /// When the value was created, in unix milliseconds.
    pub created_ms: u64,
    /// When the value expires, in unix milliseconds; `None` never expires.
    pub expires_ms: Option<u64>,
    /// The revision number of the value under its key (0 for the first).
    pub revision: u64,
}

impl EnvelopeMeta {
    /// Created now (system clock), never expiring, revision 0.
    pub fn now() -> Self {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        EnvelopeMeta {
            created_ms,
            ..EnvelopeMeta::default()
        }
    }

    /// Whether the value is expired at `now_ms` (expiry is inclusive: a value expiring at
    /// `t` is not returned at `t`).
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A parsed envelope header. Obtained cheaply with [`Header::peek`] (no payload work), or
/// together with the payload from [`payload`] and the registry's `decode_value*`.
///
/// ```
/// use cacher_formats::{envelope::Header, EnvelopeMeta, Registry};
///
/// let registry = Registry::with_builtins();
/// let meta = EnvelopeMeta { created_ms: 10, expires_ms: Some(20), revision: 1 };
/// let stored = registry.resolve("json")?.encode_value(&"hello", &meta)?;
///
/// let header = Header::peek(&stored)?;
/// assert_eq!(header.pipeline(), "json");
/// assert_eq!(header.expires_ms(), Some(20));
/// assert!(header.meta().is_expired_at(25));
/// # Ok::<(), cacher_formats::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    version: u8,
    meta: EnvelopeMeta,
    header_len: usize,
    payload_len: u64,
    payload_crc: u32,
    pipeline: String,
    mac: Option<[u8; MAC_LEN]>,
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

impl Header {
    /// Parses and checks the header only: magic, version, flags, lengths and the header
    /// checksum. Does not read, decompress or checksum the payload, and needs only the first
    /// `header_len` bytes (at most [`MAX_HEADER_LEN`]).
    ///
    /// Errors: [`Error::UpgradeRequired`] for a newer envelope version, [`Error::Corrupt`] for
    /// anything damaged or truncated.
    pub fn peek(bytes: &[u8]) -> Result<Header> {
        if bytes.len() < 5 {
            return Err(Error::corrupt(format!(
                "{} bytes is too short for an envelope",
                bytes.len()
            )));
        }
        if bytes[..4] != MAGIC {
            return Err(Error::corrupt(format!(
                "bad magic {:02x?} (expected {:02x?})",
                &bytes[..4],
                MAGIC
            )));
        }
        let version = bytes[4];
        if version > CURRENT_VERSION {
            return Err(Error::UpgradeRequired {
                found: version,
                supported: CURRENT_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::corrupt("envelope version 0"));
        }
        if bytes.len() < FIXED_LEN {
            return Err(Error::corrupt(format!(
                "truncated header: {} bytes, the fixed part is {FIXED_LEN}",
                bytes.len()
            )));
        }
        let flags = bytes[5];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::corrupt(format!("unknown flags 0x{flags:02x}")));
        }
        let header_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        let name_len = usize::from(bytes[44]);
        let mac_len = if flags & FLAG_MAC != 0 { MAC_LEN } else { 0 };
        let expected_len = FIXED_LEN + name_len + mac_len + CRC_LEN;
        if header_len != expected_len {
            return Err(Error::corrupt(format!(
                "header length {header_len} disagrees with its fields ({expected_len})"
            )));
        }
        if bytes.len() < header_len {
            return Err(Error::corrupt(format!(
                "truncated header: {} of {header_len} bytes",
                bytes.len()
            )));
        }
        let stored_crc = u32_at(bytes, header_len - CRC_LEN);
        let actual_crc = crc32fast::hash(&bytes[..header_len - CRC_LEN]);
        if stored_crc != actual_crc {
            return Err(Error::corrupt(format!(
                "header checksum mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})"
            )));
        }
        if name_len == 0 {
            return Err(Error::corrupt("empty pipeline name"));
        }
        let pipeline = std::str::from_utf8(&bytes[FIXED_LEN..FIXED_LEN + name_len])
            .map_err(|_| Error::corrupt("pipeline name is not UTF-8"))?
            .to_owned();
        let expires_raw = u64_at(bytes, 16);
        let expires_ms = if flags & FLAG_EXPIRES != 0 {
            Some(expires_raw)
        } else if expires_raw != 0 {
            return Err(Error::corrupt("expiry set without its flag"));
        } else {
            None
        };
        let mac = (mac_len > 0).then(|| {
            let mut mac = [0u8; MAC_LEN];
            mac.copy_from_slice(&bytes[FIXED_LEN + name_len..FIXED_LEN + name_len + MAC_LEN]);
            mac
        });
        Ok(Header {
            version,
            meta: EnvelopeMeta {
                created_ms: u64_at(bytes, 8),
                expires_ms,
                revision: u64_at(bytes, 24),
            },
            header_len,
            payload_len: u64_at(bytes, 32),
            payload_crc: u32_at(bytes, 40),
            pipeline,
            mac,
        })
    }

    /// How many bytes [`peek`](Header::peek) needs, read from the first 45 bytes of a
    /// version-1 envelope (`None` when fewer are given or the magic is wrong). A store that
    /// reads values from files can read this much to check expiry.
    pub fn len_hint(prefix: &[u8]) -> Option<usize> {
        if prefix.len() < FIXED_LEN || prefix[..4] != MAGIC {
            return None;
        }
        Some(usize::from(u16::from_le_bytes([prefix[6], prefix[7]])))
    }

    /// The envelope version the value was written with.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Created time, expiry and revision.
    pub fn meta(&self) -> EnvelopeMeta {
        self.meta
    }

    /// When the value was created (unix milliseconds).
    pub fn created_ms(&self) -> u64 {
        self.meta.created_ms
    }

    /// When the value expires (unix milliseconds), if ever.
    pub fn expires_ms(&self) -> Option<u64> {
        self.meta.expires_ms
    }

    /// The revision number.
    pub fn revision(&self) -> u64 {
        self.meta.revision
    }

    /// The full pipeline name the value was written with (e.g. `cbor+zstd:3`).
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    /// The format part of the pipeline name (e.g. `cbor`).
    pub fn format_name(&self) -> &str {
        self.pipeline
            .split_once('+')
            .map_or(self.pipeline.as_str(), |(format, _)| format)
    }

    /// The codec specs of the pipeline, in the order they were applied on write.
    pub fn codecs(&self) -> impl Iterator<Item = &str> {
        self.pipeline.split('+').skip(1)
    }

    /// The id of the zstd dictionary the payload was compressed with, if any.
    pub fn dictionary_id(&self) -> Option<u32> {
        self.codecs()
            .flat_map(|codec| codec.split(':'))
            .find_map(|part| part.strip_prefix("dict=")?.parse().ok())
    }

    /// Whether the value carries a MAC.
    pub fn has_mac(&self) -> bool {
        self.mac.is_some()
    }

    /// Header length: the payload starts at this offset.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The payload length recorded in the header.
    pub fn payload_len(&self) -> u64 {
        self.payload_len
    }

    /// Where the payload sits in the stored bytes (as recorded; [`payload`] checks it against
    /// the actual length and the checksum).
    pub fn payload_range(&self) -> Range<usize> {
        let end = usize::try_from(self.payload_len)
            .ok()
            .and_then(|len| self.header_len.checked_add(len))
            .unwrap_or(usize::MAX);
        self.header_len..end
    }

    /// Checks the keyed BLAKE3 MAC over the header fields and `payload`.
    pub(crate) fn verify_mac(&self, bytes: &[u8], payload: &[u8], key: &[u8; 32]) -> Result<()> {
        let Some(stored) = self.mac else {
            return Err(Error::Unauthenticated {
                reason: "the registry has a MAC key but the value carries no MAC".into(),
            });
        };
        let covered = &bytes[..self.header_len - CRC_LEN - MAC_LEN];
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(covered);
        hasher.update(payload);
        // blake3::Hash compares in constant time.
        if hasher.finalize() != blake3::Hash::from(stored) {
            return Err(Error::Unauthenticated {
                reason: "MAC mismatch: the value was not written with this cache's key".into(),
            });
        }
        Ok(())
    }
}

/// Splits a stored value into its header and payload, lending the payload without copying.
/// Checks the header, that the length matches and the payload checksum — but not the MAC
/// (the registry's `open_value`/`decode_value*` do that when it has a key).
///
/// For a `raw` value without codecs the payload *is* the value.
///
/// ```
/// use cacher_formats::{envelope, EnvelopeMeta, Registry};
///
/// let raw = Registry::with_builtins().resolve("raw")?;
/// let stored = raw.encode_value_bytes(b"hello", &EnvelopeMeta::default())?;
/// let (header, payload) = envelope::payload(&stored)?;
/// assert_eq!(payload, b"hello");
/// assert_eq!(payload.as_ptr(), stored[header.header_len()..].as_ptr()); // lent, not copied
/// # Ok::<(), cacher_formats::Error>(())
/// ```
pub fn payload(bytes: &[u8]) -> Result<(Header, &[u8])> {
    let header = Header::peek(bytes)?;
    let available = (bytes.len() - header.header_len) as u64;
    if available != header.payload_len {
        return Err(Error::corrupt(format!(
            "payload is {available} bytes, the header says {}",
            header.payload_len
        )));
    }
    let payload = &bytes[header.header_len..];
    let actual = crc32fast::hash(payload);
    if actual != header.payload_crc {
        return Err(Error::corrupt(format!(
            "payload checksum mismatch (stored {:08x}, computed {actual:08x})",
            header.payload_crc
        )));
    }
    Ok((header, payload))
}

/// The header length for a pipeline name of `name_len` bytes.
pub(crate) fn header_len(name_len: usize, with_mac: bool) -> usize {
    FIXED_LEN + name_len + if with_mac { MAC_LEN } else { 0 } + CRC_LEN
}

/// Writes a header with placeholder length, checksums and MAC to `out` (which must be empty)
/// and returns the header length; the payload is then appended and [`seal`] fills them in.
pub(crate) fn begin(
    out: &mut Vec<u8>,
    pipeline: &str,
    meta: &EnvelopeMeta,
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
    out.push(name_len as u8);
    out.extend_from_slice(&pipeline.as_bytes()[..name_len]);
    out.resize(header_len, 0); // MAC and header_crc, filled by seal
    header_len
}

/// Fills in payload length, payload checksum, MAC and header checksum once the payload has
/// been appended after the header written by [`begin`].
pub(crate) fn seal(out: &mut [u8], header_len: usize, mac_key: Option<&[u8; 32]>) {
    let (header, payload) = out.split_at_mut(header_len);
    header[32..40].copy_from_slice(&(payload.len() as u64).to_le_bytes());
    header[40..44].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let crc_at = header_len - CRC_LEN;
    if let Some(key) = mac_key {
        let mac_at = crc_at - MAC_LEN;
        let mut hasher = blake3::Hasher::new_keyed(key);
        hasher.update(&header[..mac_at]);
        hasher.update(payload);
        header[mac_at..crc_at].copy_from_slice(hasher.finalize().as_bytes());
    }
    let crc = crc32fast::hash(&header[..crc_at]);
    header[crc_at..].copy_from_slice(&crc.to_le_bytes());
}
