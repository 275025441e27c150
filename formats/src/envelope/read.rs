//! Parsing and checking stored envelopes of every version.

use super::{
    write, Crc, EnvelopeMeta, Header, PipelineName, CRC_LEN, CURRENT_VERSION, ENVELOPE_VERSION_1,
    FIXED_LEN_V1, FIXED_LEN_V2, FLAG_EXPIRES, FLAG_MAC, KNOWN_FLAGS, MAC_LEN, MAGIC,
};
use crate::error::{Error, Result};

#[inline]
pub(super) fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

#[inline]
pub(super) fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut le = [0u8; 4];
    le.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(le)
}

/// The checks every header kind shares (`what` names it in messages: "header", "stream
/// header"): its stated length matches its fields, the bytes hold all of it, and its trailing
/// checksum (`crc`, by its version) matches.
#[inline]
pub(super) fn check_header_bytes(
    bytes: &[u8],
    header_len: usize,
    expected_len: usize,
    what: &str,
    crc: Crc,
) -> Result<()> {
    if header_len != expected_len {
        return Err(Error::corrupt(format!(
            "{what} length {header_len} disagrees with its fields ({expected_len})"
        )));
    }
    if bytes.len() < header_len {
        return Err(Error::corrupt(format!(
            "truncated {what}: {} of {header_len} bytes",
            bytes.len()
        )));
    }
    let stored_crc = u32_at(bytes, header_len - CRC_LEN);
    let actual_crc = crc.of(&bytes[..header_len - CRC_LEN]);
    if stored_crc != actual_crc {
        return Err(Error::corrupt(format!(
            "{what} checksum mismatch (stored {stored_crc:08x}, computed {actual_crc:08x})"
        )));
    }
    Ok(())
}

/// The pipeline name of `name_len` bytes at `at` (never empty, UTF-8).
pub(super) fn pipeline_name(bytes: &[u8], at: usize, name_len: usize) -> Result<PipelineName> {
    pipeline_str(bytes, at, name_len).map(PipelineName::new)
}

/// Pipeline names a hit meets most (the built-in formats without codecs; `cbor` is a cache's
/// default), answered without the UTF-8 check: on a 4-byte name `str::from_utf8` cost 67
/// instructions of a ~4,000-instruction hit, comparing with these costs a few.
const COMMON_PIPELINES: [&str; 4] = ["cbor", "raw", "json", "pickle"];

/// The pipeline name of `name_len` bytes at `at`, borrowed (never empty, UTF-8).
#[inline]
fn pipeline_str(bytes: &[u8], at: usize, name_len: usize) -> Result<&str> {
    if name_len == 0 {
        return Err(Error::corrupt("empty pipeline name"));
    }
    let name = &bytes[at..at + name_len];
    if let Some(common) = COMMON_PIPELINES.iter().find(|c| c.as_bytes() == name) {
        return Ok(common);
    }
    std::str::from_utf8(name).map_err(|_| Error::corrupt("pipeline name is not UTF-8"))
}

/// The expiry field at offset 16, which must be 0 unless its flag is set.
#[inline]
pub(super) fn expiry(bytes: &[u8], flags: u8) -> Result<Option<u64>> {
    let raw = u64_at(bytes, 16);
    if flags & FLAG_EXPIRES != 0 {
        Ok(Some(raw))
    } else if raw != 0 {
        Err(Error::corrupt("expiry set without its flag"))
    } else {
        Ok(None)
    }
}

impl Header {
    /// Parses and checks the header only: magic, version, flags, lengths and the header
    /// checksum. Does not read, decompress or checksum the payload, and needs only the first
    /// `header_len` bytes (at most [`MAX_HEADER_LEN`](super::MAX_HEADER_LEN)).
    ///
    /// This is a structural check, not an authenticity one: it checks neither the store key
    /// nor the MAC (both need more, see [`Registry::peek_value`](crate::Registry::peek_value)).
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
        if bytes[..4] == super::stream::STREAM_MAGIC {
            return super::stream::peek(bytes);
        }
        let fields = Fields::parse(bytes)?;
        Ok(Header {
            version: fields.version,
            meta: fields.meta,
            header_len: fields.header_len,
            payload_len: fields.payload_len,
            payload_crc: fields.payload_crc,
            key_crc: fields.key_crc,
            pipeline: PipelineName::new(fields.pipeline),
            mac: fields.mac.copied(),
            stream: false,
        })
    }

    /// Checks the keyed BLAKE3 MAC over the header fields, `store_key` (version 2) and
    /// `payload`. `bytes` is the stored value the header was peeked from.
    pub(crate) fn verify_mac(
        &self,
        bytes: &[u8],
        store_key: &[u8],
        payload: &[u8],
        mac_key: &[u8; 32],
    ) -> Result<()> {
        let covered = MacCovered {
            version: self.version,
            key_bound: self.key_crc.is_some(),
            header_len: self.header_len,
            mac: self.mac.as_ref(),
        };
        covered.verify(bytes, store_key, payload, mac_key)
    }
}

/// What a MAC check needs from a parsed header, owned or lent.
struct MacCovered<'a> {
    version: u8,
    key_bound: bool,
    header_len: usize,
    mac: Option<&'a [u8; MAC_LEN]>,
}

impl MacCovered<'_> {
    /// The one MAC check behind [`Header::verify_mac`] and [`open_view_checked`].
    fn verify(
        &self,
        bytes: &[u8],
        store_key: &[u8],
        payload: &[u8],
        mac_key: &[u8; 32],
    ) -> Result<()> {
        let Some(stored) = self.mac else {
            return Err(Error::Unauthenticated {
                reason: "the registry has a MAC key but the value carries no MAC".into(),
            });
        };
        if !self.key_bound {
            return Err(Error::Unauthenticated {
                reason: format!(
                    "envelope version {} MACs do not cover the store key; the value must be \
                     rewritten",
                    self.version
                ),
            });
        }
        let covered = &bytes[..self.header_len - CRC_LEN - MAC_LEN];
        // blake3::Hash compares in constant time.
        if write::mac(mac_key, covered, store_key, payload) != blake3::Hash::from(*stored) {
            return Err(Error::Unauthenticated {
                reason: "MAC mismatch: the value was not written under this key with this \
                         cache's MAC key"
                    .into(),
            });
        }
        Ok(())
    }
}

/// Splits a stored value into its header and payload, lending the payload without copying.
/// Checks the header, that the length matches and the payload checksum — but neither the
/// store key nor the MAC (the registry's `open_value`/`decode_value*` do, given the key).
///
/// For a `raw` value without codecs the payload *is* the value.
///
/// ```
/// use cacher_formats::{envelope, EnvelopeMeta, Registry};
///
/// let raw = Registry::with_builtins().resolve("raw")?;
/// let stored = raw.encode_value_bytes(b"key", b"hello", &EnvelopeMeta::default())?;
/// let (header, payload) = envelope::payload(&stored)?;
/// assert_eq!(payload, b"hello");
/// assert_eq!(payload.as_ptr(), stored[header.header_len()..].as_ptr()); // lent, not copied
/// # Ok::<(), cacher_formats::Error>(())
/// ```
pub fn payload(bytes: &[u8]) -> Result<(Header, &[u8])> {
    let header = Header::peek(bytes)?;
    if header.stream {
        return Err(Error::TypeMismatch {
            format: header.pipeline().to_owned(),
            stored: "a streamed blob (read it as a blob: Cache::get_blob)".into(),
            expected: "an envelope value".into(),
            asked_for: "an envelope value".into(),
        });
    }
    let available = (bytes.len() - header.header_len) as u64;
    if available != header.payload_len {
        return Err(Error::corrupt(format!(
            "payload is {available} bytes, the header says {}",
            header.payload_len
        )));
    }
    let payload = &bytes[header.header_len..];
    let actual = header.crc().of(payload);
    if actual != header.payload_crc {
        return Err(Error::corrupt(format!(
            "payload checksum mismatch (stored {:08x}, computed {actual:08x})",
            header.payload_crc
        )));
    }
    Ok((header, payload))
}

/// The fields of a value envelope's header (not a stream's), borrowed from its bytes and
/// checked as [`Header::peek`] checks them: the one parser behind the owned [`Header`] and
/// the lent [`HeaderView`].
struct Fields<'a> {
    version: u8,
    /// The checksum of `version`.
    crc: Crc,
    meta: EnvelopeMeta,
    header_len: usize,
    payload_len: u64,
    payload_crc: u32,
    key_crc: Option<u32>,
    pipeline: &'a str,
    mac: Option<&'a [u8; MAC_LEN]>,
}

impl<'a> Fields<'a> {
    /// Parses `bytes`, at least 5 long and not starting with the stream magic. Inlined into
    /// the hit's one caller: its `Result` (with the error's room) is then never moved.
    #[inline]
    fn parse(bytes: &'a [u8]) -> Result<Self> {
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
        let fixed_len = if version == ENVELOPE_VERSION_1 {
            FIXED_LEN_V1
        } else {
            FIXED_LEN_V2
        };
        if bytes.len() < fixed_len {
            return Err(Error::corrupt(format!(
                "truncated header: {} bytes, the fixed part of version {version} is {fixed_len}",
                bytes.len()
            )));
        }
        let flags = bytes[5];
        if flags & !KNOWN_FLAGS != 0 {
            return Err(Error::corrupt(format!("unknown flags 0x{flags:02x}")));
        }
        let header_len = usize::from(u16::from_le_bytes([bytes[6], bytes[7]]));
        let name_len = usize::from(bytes[fixed_len - 1]);
        let mac_len = if flags & FLAG_MAC != 0 { MAC_LEN } else { 0 };
        let expected_len = fixed_len + name_len + mac_len + CRC_LEN;
        let crc = Crc::of_value(version);
        check_header_bytes(bytes, header_len, expected_len, "header", crc)?;
        let pipeline = pipeline_str(bytes, fixed_len, name_len)?;
        let expires_ms = expiry(bytes, flags)?;
        let mac = (mac_len > 0).then(|| {
            let at = fixed_len + name_len;
            <&[u8; MAC_LEN]>::try_from(&bytes[at..at + MAC_LEN])
        });
        let mac = mac
            .transpose()
            .map_err(|_| Error::corrupt("truncated MAC"))?;
        // Fixed offsets into arrays of known length: no bounds check per field.
        let v1: &[u8; FIXED_LEN_V1] = bytes[..FIXED_LEN_V1]
            .try_into()
            .map_err(|_| Error::corrupt("truncated header"))?;
        let (type_fingerprint, key_crc) = if version == ENVELOPE_VERSION_1 {
            (None, None)
        } else {
            let v2: &[u8; FIXED_LEN_V2] = bytes[..FIXED_LEN_V2]
                .try_into()
                .map_err(|_| Error::corrupt("truncated header"))?;
            let fingerprint = u64_at(v2, 44);
            (
                (fingerprint != 0).then_some(fingerprint),
                Some(u32_at(v2, 52)),
            )
        };
        Ok(Fields {
            version,
            crc,
            meta: EnvelopeMeta {
                created_ms: u64_at(v1, 8),
                expires_ms,
                revision: u64_at(v1, 24),
                type_fingerprint,
            },
            header_len,
            payload_len: u64_at(v1, 32),
            payload_crc: u32_at(v1, 40),
            key_crc,
            pipeline,
            mac,
        })
    }

    /// The payload, checked against the header's length and checksum.
    #[inline]
    fn payload(&self, bytes: &'a [u8]) -> Result<&'a [u8]> {
        let available = (bytes.len() - self.header_len) as u64;
        if available != self.payload_len {
            return Err(Error::corrupt(format!(
                "payload is {available} bytes, the header says {}",
                self.payload_len
            )));
        }
        let payload = &bytes[self.header_len..];
        let actual = self.crc.of(payload);
        if actual != self.payload_crc {
            return Err(Error::corrupt(format!(
                "payload checksum mismatch (stored {:08x}, computed {actual:08x})",
                self.payload_crc
            )));
        }
        Ok(payload)
    }
}

/// A checked envelope header lent from the stored bytes by [`open_view`]: what a cache hit
/// needs (expiry, type fingerprint, pipeline name) without copying the name or the MAC into
/// an owned [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderView<'a> {
    version: u8,
    meta: EnvelopeMeta,
    key_bound: bool,
    pipeline: &'a str,
}

impl HeaderView<'_> {
    /// The envelope version the value was written with.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Created time, expiry, revision and type fingerprint.
    pub fn meta(&self) -> EnvelopeMeta {
        self.meta
    }

    /// The fingerprint of the Rust type the value was written as, if recorded.
    pub fn type_fingerprint(&self) -> Option<u64> {
        self.meta.type_fingerprint
    }

    /// Whether the value is bound to the store key it was read under (version 2 and later;
    /// [`open_view`] has checked the binding).
    pub fn is_key_bound(&self) -> bool {
        self.key_bound
    }

    /// The full pipeline name the value was written with (e.g. `cbor+zstd:3`).
    pub fn pipeline(&self) -> &str {
        self.pipeline
    }
}

/// Checks a stored value of `store_key` as [`payload`] and the key check of
/// [`Registry::open_value`](crate::Registry::open_value) do — header, lengths, header and
/// payload checksums, and (version 2) that it was written under `store_key` — and lends its
/// header and payload without copying anything. **It does not check a MAC**: a registry with
/// a MAC key must read through [`Registry::open_value`](crate::Registry::open_value).
///
/// ```
/// use cacher_formats::{envelope, EnvelopeMeta, Registry};
///
/// let raw = Registry::with_builtins().resolve("raw")?;
/// let stored = raw.encode_value_bytes(b"key", b"hello", &EnvelopeMeta::default())?;
/// let (header, payload) = envelope::open_view(&stored, b"key")?;
/// assert_eq!((header.pipeline(), payload), ("raw", &b"hello"[..]));
/// assert!(envelope::open_view(&stored, b"another key").is_err());
/// # Ok::<(), cacher_formats::Error>(())
/// ```
pub fn open_view<'a>(bytes: &'a [u8], store_key: &[u8]) -> Result<(HeaderView<'a>, &'a [u8])> {
    open_view_checked(bytes, store_key, None)
}

/// [`open_view`], and with `mac_key` the MAC as well, checked in the order
/// [`Registry::open_value`](crate::Registry::open_value) checks them (header and payload,
/// then the MAC, then the key binding), so each refusal is the one `open_value` gives: the
/// one pass behind [`Registry::open_value_view`](crate::Registry::open_value_view).
pub(crate) fn open_view_checked<'a>(
    bytes: &'a [u8],
    store_key: &[u8],
    mac_key: Option<&[u8; 32]>,
) -> Result<(HeaderView<'a>, &'a [u8])> {
    if bytes.len() < 5 || bytes[..4] == super::stream::STREAM_MAGIC {
        // Too short, or a streamed blob: refused, in the words `payload` uses.
        return Err(match payload(bytes) {
            Err(e) => e,
            Ok(_) => Error::corrupt("not a value envelope"),
        });
    }
    let fields = Fields::parse(bytes)?;
    let payload = fields.payload(bytes)?;
    if let Some(mac_key) = mac_key {
        let covered = MacCovered {
            version: fields.version,
            key_bound: fields.key_crc.is_some(),
            header_len: fields.header_len,
            mac: fields.mac,
        };
        covered.verify(bytes, store_key, payload, mac_key)?;
    }
    if let Some(stored) = fields.key_crc {
        if stored != fields.crc.of(store_key) {
            return Err(Error::corrupt(
                "the value was written under another key (key checksum mismatch)",
            ));
        }
    }
    let view = HeaderView {
        version: fields.version,
        meta: fields.meta,
        key_bound: fields.key_crc.is_some(),
        pipeline: fields.pipeline,
    };
    Ok((view, payload))
}
