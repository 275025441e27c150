//! The streamed envelope: a blob written as it arrives, sealed by a trailer at its end.
//!
//! A value envelope ([version 2 or 3](super)) records the payload's length, checksum and MAC in its
//! header, before the payload, so the writer must hold the whole value first. A blob (a web
//! response, a download) is written while it arrives, so its length, checksum and MAC go in
//! a **trailer** after the body. The front header still carries everything a reader needs
//! before the body (expiry, the key binding, the caller's typed metadata), so expiry checks
//! and cleanup read only the front, as for every other value.
//!
//! # Layout (stream envelope version 2, written since value envelope v3; version 1 read forever)
//!
//! Its own magic (`CCHS`, not `CCHV`): an older reader refuses it as "not an envelope"
//! instead of misreading it, and the version-2 fixtures keep their meaning. All integers are
//! fixed-width little-endian. Version 2 is version 1 field for field with every checksum
//! (header, key, body, trailer) a CRC-32C instead of a CRC-32 (ISO-HDLC), as value envelope
//! 3 is to value envelope 2 (why: [the value envelope's docs](super)); the table names them
//! "checksum", the version says which.
//!
//! ```text
//! front header
//! offset      size      field
//! ----------  --------  --------------------------------------------------------------
//! 0           4         magic b"CCHS"
//! 4           1         stream envelope version (2; 1 still read). Newer -> UpgradeRequired;
//!                       0 -> Corrupt
//! 5           1         flags: bit 0 = expires_ms is set, bit 1 = MAC in the trailer;
//!                       other bits must be 0
//! 6           2         header_len (u16): bytes from offset 0 to the first body byte
//!                       (same place as in CCHV, so Header::len_hint works on both)
//! 8           8         created_ms
//! 16          8         expires_ms (0 when flag bit 0 is clear)
//! 24          8         revision
//! 32          8         type_fingerprint of the metadata's type (0 = not recorded)
//! 40          4         key_crc (checksum of the store key)
//! 44          4         meta_len (u32)
//! 48          1         n = length of the metadata's pipeline name (1..=255)
//! 49          n         pipeline name of the metadata (e.g. "cbor")
//! 49+n        meta_len  metadata, encoded by that pipeline
//! header_len-4 4        header_crc (checksum of bytes [0, header_len-4))
//!
//! body        body_len  the blob's bytes as given (no format, no codec)
//!
//! trailer (TRAILER_LEN bytes, or TRAILER_LEN + 32 with a MAC)
//! 0           8         body_len (u64)
//! 8           4         body_crc (checksum of the body, computed as it streams)
//! 12          32        MAC, only when flag bit 1: keyed BLAKE3 of the front header
//!                       [0, header_len) ‖ store key length (u64) ‖ store key ‖ body ‖
//!                       trailer bytes [0, 12)
//! end-8       4         trailer magic b"CCHE"
//! end-4       4         trailer_crc (checksum of the trailer bytes before it)
//! ```
//!
//! The body length is also the stored length minus front and trailer: a reader that knows the
//! stored length (every store does) finds the trailer without trusting the front header, and a
//! truncated or extended value fails the length check. A streaming reader checks checksum and
//! MAC when the body is used up, before it reports the end ([`BodyCheck::finish`]).
//!
//! Ordinary reads ([`Registry::open_value`](crate::Registry::open_value)) refuse a streamed
//! value with [`Error::TypeMismatch`]: its body is not a value of any format.

use std::ops::Range;

use super::checksum::Running;
use super::read::{check_header_bytes, expiry, pipeline_name, u32_at, u64_at};
use super::{Crc, EnvelopeMeta, Header, CRC_LEN, FLAG_EXPIRES, FLAG_MAC, KNOWN_FLAGS, MAC_LEN};
use crate::error::{Error, Result};
use crate::Registry;

/// The magic bytes a streamed envelope starts with.
pub const STREAM_MAGIC: [u8; 4] = *b"CCHS";

/// Stream envelope version 1: the layout documented on this module, checksums CRC-32
/// (ISO-HDLC).
pub const STREAM_VERSION_1: u8 = 1;

/// Stream envelope version 2: version 1's layout with CRC-32C checksums.
pub const STREAM_VERSION_2: u8 = 2;

/// The stream envelope version this build writes and the newest it reads.
pub const CURRENT_STREAM_VERSION: u8 = STREAM_VERSION_2;

/// The magic bytes near the end of a streamed envelope's trailer.
pub const TRAILER_MAGIC: [u8; 4] = *b"CCHE";

/// The trailer's length without a MAC: body length, body checksum, magic, trailer checksum.
pub const TRAILER_LEN: usize = 8 + 4 + 4 + CRC_LEN;

/// Bytes before the pipeline name in the front header.
const FIXED_LEN: usize = 49;

/// The longest metadata a streamed envelope holds (the front header's length is a u16).
pub const MAX_META_LEN: usize = u16::MAX as usize - FIXED_LEN - 255 - CRC_LEN;

/// The trailer's length for a header (with or without its MAC).
pub fn trailer_len(header: &Header) -> usize {
    TRAILER_LEN + if header.has_mac() { MAC_LEN } else { 0 }
}

/// Parses and checks a streamed front header (called by [`Header::peek`] on `CCHS`).
pub(super) fn peek(bytes: &[u8]) -> Result<Header> {
    let version = bytes[4];
    if version > CURRENT_STREAM_VERSION {
        return Err(Error::UpgradeRequired {
            found: version,
            supported: CURRENT_STREAM_VERSION,
        });
    }
    if version == 0 {
        return Err(Error::corrupt("stream envelope version 0"));
    }
    if bytes.len() < FIXED_LEN {
        return Err(Error::corrupt(format!(
            "truncated stream header: {} bytes, its fixed part is {FIXED_LEN}",
            bytes.len()
        )));
    }
    let flags = bytes[5];
    if flags & !KNOWN_FLAGS != 0 {
        return Err(Error::corrupt(format!("unknown flags 0x{flags:02x}")));
    }
    let header_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
    let meta_len = u32_at(bytes, 44) as usize;
    let name_len = usize::from(bytes[48]);
    let expected_len = FIXED_LEN + name_len + meta_len + CRC_LEN;
    let crc = Crc::of_stream(version);
    check_header_bytes(bytes, header_len, expected_len, "stream header", crc)?;
    let pipeline = pipeline_name(bytes, FIXED_LEN, name_len)?;
    let expires_ms = expiry(bytes, flags)?;
    let fingerprint = u64_at(bytes, 32);
    Ok(Header {
        version,
        meta: EnvelopeMeta {
            created_ms: u64_at(bytes, 8),
            expires_ms,
            revision: u64_at(bytes, 24),
            type_fingerprint: (fingerprint != 0).then_some(fingerprint),
        },
        header_len,
        // Recorded in the trailer, not the front: see `BodyCheck`.
        payload_len: 0,
        payload_crc: 0,
        key_crc: Some(u32_at(bytes, 40)),
        pipeline,
        // The MAC sits in the trailer; the flag says there is one.
        mac: (flags & FLAG_MAC != 0).then_some([0; MAC_LEN]),
        stream: true,
    })
}

/// The encoded metadata inside a streamed front header (`front` holds at least
/// `header.header_len()` bytes and was parsed into `header`).
pub fn metadata<'a>(header: &Header, front: &'a [u8]) -> &'a [u8] {
    let start = FIXED_LEN + header.pipeline().len();
    &front[start.min(front.len())..(header.header_len - CRC_LEN).min(front.len())]
}

/// Writes a streamed envelope: the front header at once, then the body as it arrives through
/// [`update`](StreamSealer::update), then the trailer from [`trailer`](StreamSealer::trailer).
///
/// ```
/// # #[cfg(feature = "cbor")]
/// # fn main() -> Result<(), cacher_formats::Error> {
/// use cacher_formats::{EnvelopeMeta, Registry};
///
/// let registry = Registry::with_builtins();
/// let pipeline = registry.resolve("cbor")?;
/// let mut sealer = registry.stream_sealer(b"page", &pipeline, &"text/html", &EnvelopeMeta::now())?;
/// let mut stored = sealer.front().to_vec();
/// for chunk in [&b"<html>"[..], b"</html>"] {
///     sealer.update(chunk);
///     stored.extend_from_slice(chunk);
/// }
/// stored.extend_from_slice(&sealer.trailer());
///
/// let (header, body) = registry.open_stream(b"page", &stored)?;
/// assert_eq!(&stored[body], b"<html></html>");
/// let content_type: String = registry.stream_metadata(&header, &stored)?;
/// assert_eq!(content_type, "text/html");
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "cbor"))]
/// # fn main() {}
/// ```
#[derive(Debug)]
pub struct StreamSealer {
    front: Vec<u8>,
    check: BodyCheck,
}

impl StreamSealer {
    /// The front header: write it first.
    pub fn front(&self) -> &[u8] {
        &self.front
    }

    /// Feeds the next body bytes (in order, each once).
    pub fn update(&mut self, chunk: &[u8]) {
        self.check.update(chunk);
    }

    /// Body bytes fed so far.
    pub fn body_len(&self) -> u64 {
        self.check.len
    }

    /// The trailer that seals the body fed so far: write it last.
    pub fn trailer(self) -> Vec<u8> {
        self.check.trailer()
    }
}

/// The running checksum (and MAC) of a streamed body; checks the trailer at the end.
#[derive(Debug)]
pub struct BodyCheck {
    len: u64,
    /// Which checksum the envelope's version uses (the trailer's own as well).
    kind: Crc,
    crc: Running,
    mac: Option<blake3::Hasher>,
}

impl BodyCheck {
    fn new(front: &[u8], store_key: &[u8], mac_key: Option<&[u8; 32]>, kind: Crc) -> Self {
        let mac = mac_key.map(|k| {
            let mut h = blake3::Hasher::new_keyed(k);
            h.update(front);
            h.update(&(store_key.len() as u64).to_le_bytes());
            h.update(store_key);
            h
        });
        BodyCheck {
            len: 0,
            kind,
            crc: kind.running(),
            mac,
        }
    }

    /// Feeds the next body bytes.
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.crc.update(chunk);
        if let Some(mac) = &mut self.mac {
            mac.update(chunk);
        }
    }

    /// Body bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no body byte was fed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn head_and_mac(&self) -> ([u8; 12], Option<blake3::Hash>) {
        let mut head = [0u8; 12];
        head[..8].copy_from_slice(&self.len.to_le_bytes());
        head[8..].copy_from_slice(&self.crc.finalize().to_le_bytes());
        let mac = self.mac.clone().map(|mut m| {
            m.update(&head);
            m.finalize()
        });
        (head, mac)
    }

    fn trailer(&self) -> Vec<u8> {
        let (head, mac) = self.head_and_mac();
        let mut out = Vec::with_capacity(TRAILER_LEN + MAC_LEN);
        out.extend_from_slice(&head);
        if let Some(mac) = mac {
            out.extend_from_slice(mac.as_bytes());
        }
        out.extend_from_slice(&TRAILER_MAGIC);
        let crc = self.kind.of(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks the stored `trailer` against the body fed: its own checksum, the body's length
    /// and checksum, and the MAC when this check has a MAC key. `Corrupt` for damage,
    /// `Unauthenticated` for a MAC that does not match (or is missing).
    pub fn finish(&self, trailer: &[u8]) -> Result<()> {
        let with_mac = self.mac.is_some();
        if trailer.len() < TRAILER_LEN {
            return Err(Error::corrupt(format!(
                "stream trailer is {} bytes, at least {TRAILER_LEN} expected",
                trailer.len()
            )));
        }
        let (body, seal) = trailer.split_at(trailer.len() - CRC_LEN);
        let stored_crc = u32_at(seal, 0);
        if self.kind.of(body) != stored_crc {
            return Err(Error::corrupt("stream trailer checksum mismatch"));
        }
        if body[body.len() - 4..] != TRAILER_MAGIC {
            return Err(Error::corrupt("stream trailer magic missing"));
        }
        let has_mac = trailer.len() == TRAILER_LEN + MAC_LEN;
        if !has_mac && trailer.len() != TRAILER_LEN {
            return Err(Error::corrupt(format!(
                "stream trailer length {} is neither {TRAILER_LEN} nor {}",
                trailer.len(),
                TRAILER_LEN + MAC_LEN
            )));
        }
        let (head, mac) = self.head_and_mac();
        let stored_len = u64_at(trailer, 0);
        if stored_len != self.len {
            return Err(Error::corrupt(format!(
                "body is {} bytes, the trailer says {stored_len}",
                self.len
            )));
        }
        if trailer[8..12] != head[8..12] {
            return Err(Error::corrupt(format!(
                "body checksum mismatch (stored {:08x}, computed {:08x})",
                u32_at(trailer, 8),
                u32_at(&head, 8)
            )));
        }
        match (with_mac, has_mac) {
            (true, false) => Err(Error::Unauthenticated {
                reason: "the registry has a MAC key but the blob carries no MAC".into(),
            }),
            (true, true) => {
                let mut stored = [0u8; MAC_LEN];
                stored.copy_from_slice(&trailer[12..12 + MAC_LEN]);
                // blake3::Hash compares in constant time.
                if mac != Some(blake3::Hash::from(stored)) {
                    return Err(Error::Unauthenticated {
                        reason: "MAC mismatch: the blob was not written under this key with \
                                 this cache's MAC key"
                            .into(),
                    });
                }
                Ok(())
            }
            (false, _) => Ok(()),
        }
    }
}

impl Registry {
    /// Starts a streamed envelope for `store_key` whose metadata `meta_value` is encoded by
    /// `pipeline`; with a MAC key on this registry, the trailer carries a MAC.
    pub fn stream_sealer<M: serde::Serialize + ?Sized>(
        &self,
        store_key: &[u8],
        pipeline: &crate::Pipeline,
        meta_value: &M,
        meta: &EnvelopeMeta,
    ) -> Result<StreamSealer> {
        let encoded = pipeline.encode(meta_value)?;
        if encoded.len() > MAX_META_LEN {
            return Err(Error::Encode {
                format: pipeline.format_name().to_owned(),
                detail: format!(
                    "blob metadata of {} bytes is longer than a streamed envelope holds \
                     ({MAX_META_LEN} bytes)",
                    encoded.len()
                )
                .into(),
            });
        }
        let name = pipeline.name();
        if name.is_empty() || name.len() > 255 {
            return Err(Error::InvalidPipeline {
                name: name.to_owned(),
                reason: "a pipeline name is 1..=255 bytes".into(),
            });
        }
        let mac_key = self.mac_key();
        let header_len = FIXED_LEN + name.len() + encoded.len() + CRC_LEN;
        let mut flags = 0;
        if meta.expires_ms.is_some() {
            flags |= FLAG_EXPIRES;
        }
        if mac_key.is_some() {
            flags |= FLAG_MAC;
        }
        let mut front = Vec::with_capacity(header_len);
        front.extend_from_slice(&STREAM_MAGIC);
        front.push(CURRENT_STREAM_VERSION);
        front.push(flags);
        front.extend_from_slice(&(header_len as u16).to_le_bytes());
        front.extend_from_slice(&meta.created_ms.to_le_bytes());
        front.extend_from_slice(&meta.expires_ms.unwrap_or(0).to_le_bytes());
        front.extend_from_slice(&meta.revision.to_le_bytes());
        front.extend_from_slice(&meta.type_fingerprint.unwrap_or(0).to_le_bytes());
        let kind = Crc::of_stream(CURRENT_STREAM_VERSION);
        front.extend_from_slice(&kind.of(store_key).to_le_bytes());
        front.extend_from_slice(&(encoded.len() as u32).to_le_bytes());
        front.push(name.len() as u8);
        front.extend_from_slice(name.as_bytes());
        front.extend_from_slice(&encoded);
        let crc = kind.of(&front);
        front.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(front.len(), header_len);
        let check = BodyCheck::new(&front, store_key, mac_key, kind);
        Ok(StreamSealer { front, check })
    }

    /// Checks a streamed front header read under `store_key` (`front` holds at least its
    /// `header_len` bytes) and returns the check to feed the body through. Does not check the
    /// body: [`BodyCheck::finish`] does, with the trailer.
    pub fn stream_check(&self, store_key: &[u8], front: &[u8]) -> Result<(Header, BodyCheck)> {
        let header = Header::peek(front)?;
        if !header.is_stream() {
            return Err(Error::corrupt("not a streamed envelope"));
        }
        header.check_key(store_key)?;
        let mac_key = self.mac_key();
        if mac_key.is_some() && !header.has_mac() {
            return Err(Error::Unauthenticated {
                reason: "the registry has a MAC key but the blob carries no MAC".into(),
            });
        }
        let check = BodyCheck::new(
            &front[..header.header_len],
            store_key,
            mac_key,
            header.crc(),
        );
        Ok((header, check))
    }

    /// Checks a whole streamed value (front, body, trailer) read under `store_key` and returns
    /// its header and the range of the body. One pass over the body.
    pub fn open_stream(&self, store_key: &[u8], bytes: &[u8]) -> Result<(Header, Range<usize>)> {
        let (header, mut check) = self.stream_check(store_key, bytes)?;
        let body = body_range(&header, bytes.len() as u64)?;
        check.update(&bytes[body.clone()]);
        check.finish(&bytes[body.end..])?;
        Ok((header, body))
    }

    /// Decodes the metadata of a streamed value whose front header is `header` (from `front`).
    pub fn stream_metadata<M: serde::de::DeserializeOwned>(
        &self,
        header: &Header,
        front: &[u8],
    ) -> Result<M> {
        self.resolve(header.pipeline())?
            .decode(metadata(header, front))
    }
}

/// Where the body of a streamed value of `stored_len` bytes lies, from its front header.
pub fn body_range(header: &Header, stored_len: u64) -> Result<Range<usize>> {
    let fixed = (header.header_len + trailer_len(header)) as u64;
    let body_len = stored_len.checked_sub(fixed).ok_or_else(|| {
        Error::corrupt(format!(
            "a streamed value of {stored_len} bytes is shorter than its header and trailer \
             ({fixed} bytes)"
        ))
    })?;
    let end = usize::try_from(header.header_len as u64 + body_len)
        .map_err(|_| Error::corrupt("streamed value larger than the address space"))?;
    Ok(header.header_len..end)
}

impl Header {
    /// Whether this is a streamed envelope's front header (a blob: metadata, a raw body, and a
    /// trailer; see [`stream`](super::stream)).
    pub fn is_stream(&self) -> bool {
        self.stream
    }
}

#[cfg(all(test, feature = "cbor"))]
mod tests {
    use super::*;

    fn sealed(registry: &Registry, key: &[u8], body: &[u8]) -> Vec<u8> {
        let pipeline = registry.resolve("cbor").unwrap();
        let meta = EnvelopeMeta {
            created_ms: 5,
            expires_ms: Some(9),
            revision: 0,
            type_fingerprint: Some(77),
        };
        let mut sealer = registry
            .stream_sealer(key, &pipeline, &(200u16, "text/plain"), &meta)
            .unwrap();
        let mut out = sealer.front().to_vec();
        sealer.update(body);
        out.extend_from_slice(body);
        out.extend_from_slice(&sealer.trailer());
        out
    }

    #[test]
    fn a_sealed_stream_opens_with_its_metadata_and_body() {
        let registry = Registry::with_builtins();
        let stored = sealed(&registry, b"k", b"hello body");
        let (header, body) = registry.open_stream(b"k", &stored).unwrap();
        assert_eq!(&stored[body], b"hello body");
        assert_eq!(header.expires_ms(), Some(9));
        assert_eq!(header.type_fingerprint(), Some(77));
        let meta: (u16, String) = registry.stream_metadata(&header, &stored).unwrap();
        assert_eq!(meta, (200, "text/plain".into()));
    }

    #[test]
    fn every_flipped_byte_is_refused_never_a_wrong_body() {
        let registry = Registry::with_builtins().with_mac_key([3; 32]);
        let stored = sealed(&registry, b"k", b"0123456789");
        for i in 0..stored.len() {
            let mut bad = stored.clone();
            bad[i] ^= 0x40;
            assert!(registry.open_stream(b"k", &bad).is_err(), "byte {i}");
        }
        for cut in 0..stored.len() {
            assert!(
                registry.open_stream(b"k", &stored[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn a_flipped_body_byte_fails_the_checksum_without_a_mac_key() {
        let registry = Registry::with_builtins();
        let stored = sealed(&registry, b"k", b"0123456789");
        let header_len = Header::peek(&stored).unwrap().header_len();
        let mut bad = stored.clone();
        bad[header_len + 3] ^= 1;
        let err = registry.open_stream(b"k", &bad).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn a_stream_is_bound_to_its_key_and_mac_key() {
        let keyed = Registry::with_builtins().with_mac_key([3; 32]);
        let stored = sealed(&keyed, b"k", b"body");
        assert!(keyed.open_stream(b"other", &stored).is_err());
        let other = Registry::with_builtins().with_mac_key([4; 32]);
        assert!(matches!(
            other.open_stream(b"k", &stored),
            Err(Error::Unauthenticated { .. })
        ));
        let unkeyed = sealed(&Registry::with_builtins(), b"k", b"body");
        assert!(matches!(
            keyed.open_stream(b"k", &unkeyed),
            Err(Error::Unauthenticated { .. })
        ));
    }

    #[test]
    fn an_ordinary_read_refuses_a_stream_as_another_kind_of_value() {
        let registry = Registry::with_builtins();
        let stored = sealed(&registry, b"k", b"body");
        let err = registry.decode_value::<String>(b"k", &stored).unwrap_err();
        assert!(matches!(err, Error::TypeMismatch { .. }), "{err}");
        // But its header reads, so expiry and cleanup see it.
        assert_eq!(
            registry.peek_value(b"k", &stored).unwrap().expires_ms(),
            Some(9)
        );
        let keyed = Registry::with_builtins().with_mac_key([1; 32]);
        let stored = sealed(&keyed, b"k", b"body");
        assert_eq!(
            keyed.peek_value(b"k", &stored).unwrap().expires_ms(),
            Some(9)
        );
        let mut bad = stored.clone();
        let n = bad.len();
        bad[n - 30] ^= 1;
        assert!(keyed.peek_value(b"k", &bad).is_err());
    }
}
