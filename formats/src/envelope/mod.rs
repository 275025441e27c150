//! The value envelope: the small versioned header every stored value starts with. This module
//! alone owns its layout.
//!
//! # Layout (version 3, written since envelope v3; version 2 is the same with CRC-32)
//!
//! All integers are fixed-width little-endian. "Checksum" is CRC-32C (Castagnoli) in version
//! 3, CRC-32 (ISO-HDLC, zlib's) in versions 1 and 2; the version byte says which.
//!
//! ```text
//! offset      size  field
//! ----------  ----  -----------------------------------------------------------------
//! 0           4     magic  b"CCHV"
//! 4           1     envelope version (3; 1 and 2 still read). Newer -> UpgradeRequired;
//!                   0 -> Corrupt
//! 5           1     flags: bit 0 = expires_ms is set, bit 1 = MAC present;
//!                   other bits must be 0 (refused as Corrupt)
//! 6           2     header_len (u16): bytes from offset 0 to the first payload byte
//! 8           8     created_ms (u64, unix milliseconds)
//! 16          8     expires_ms (u64, unix milliseconds; 0 when flag bit 0 is clear)
//! 24          8     revision (u64)
//! 32          8     payload_len (u64)
//! 40          4     payload_crc (u32, checksum of the payload as stored)
//! 44          8     type_fingerprint (u64; 0 = not recorded), see type_fingerprint()
//! 52          4     key_crc (u32, checksum of the store key the value was written under)
//! 56          1     n = length of the pipeline name (1..=255)
//! 57          n     pipeline name, UTF-8: format then codecs with every parameter,
//!                   e.g. "cbor+zstd:3:dict=1234" (the dictionary id lives here)
//! 57+n        32    MAC, only when flag bit 1: keyed BLAKE3 of
//!                   bytes [0, 57+n) ‖ store key length (u64) ‖ store key ‖ payload
//! header_len-4 4    header_crc (u32, checksum of bytes [0, header_len-4))
//! header_len  payload_len   payload: the pipeline's output (format, then codecs)
//! ```
//!
//! # Version 3 against version 2 (read forever, written before envelope v3)
//!
//! Version 2 is the table above field for field, version byte 2, with every checksum
//! (`payload_crc`, `key_crc`, `header_crc`) a CRC-32 (ISO-HDLC). Version 3 changed only the
//! polynomial, for speed: a cache hit checks three checksums (header, payload, key binding)
//! over 20 to 600 bytes, where crc32fast runs a table loop below 128 bytes plus a setup per
//! call (about 395 instructions per hit, a tenth of a `Cache::get`), while CRC-32C has an
//! instruction of its own on x86-64 (SSE4.2 `crc32`, 8 bytes an instruction; ARMv8 has one
//! too): about half the instructions at these sizes (`checksum`'s docs, and
//! `benches/RESULTS.md`, "Envelope version 3"). Both detect every error of up to 3 bits
//! in a value this short, every burst of up to 32 bits, and any other damage with
//! probability 1 - 2^-32: the checksums guard against accidents, the MAC against attackers,
//! in both versions. The separate header checksum stays, so [`Header::peek`] still judges
//! expiry without the payload. A version-2 value reads as it always did (its MAC covers the
//! same bytes, so it verifies with a MAC key as well); a relabelled one (version byte 3 over
//! CRC-32 checksums) fails its header checksum.
//!
//! # Layout (version 1, read forever, no longer written)
//!
//! ```text
//! offset      size  field
//! ----------  ----  -----------------------------------------------------------------
//! 0           4     magic  b"CCHV"
//! 4           1     envelope version (1)
//! 5           1     flags: bit 0 = expires_ms is set, bit 1 = MAC present
//! 6           2     header_len (u16)
//! 8           8     created_ms
//! 16          8     expires_ms
//! 24          8     revision
//! 32          8     payload_len
//! 40          4     payload_crc
//! 44          1     n = length of the pipeline name (1..=255)
//! 45          n     pipeline name
//! 45+n        32    MAC, only when flag bit 1: keyed BLAKE3 of bytes [0, 45+n) then the
//!                   payload (the store key is NOT covered)
//! header_len-4 4    header_crc
//! header_len  payload_len   payload
//! ```
//!
//! A version-1 value reads as "no type fingerprint" ([`Header::type_fingerprint`] is `None`)
//! and "not bound to a key" (its key is not checked). Its MAC does not cover the key, so a
//! registry with a MAC key refuses every version-1 value as [`Error::Unauthenticated`]: with
//! a MAC key, values written before envelope v2 are recomputed once. Without a MAC key they
//! keep reading.
//!
//! Why these choices:
//! - The format is stored by **name**, not a numeric id: names are stable across processes
//!   and versions and work for user-registered formats without a central id table. The name
//!   is canonical (`zstd` is stored as `zstd:3`), so a later change of a default cannot change
//!   how old values decode.
//! - A **header checksum** separate from the payload checksum lets [`Header::peek`] detect a
//!   damaged expiry or revision without touching the payload, so expiry checks stay cheap.
//!   `peek` needs only the first [`Header::len_hint`] / at most [`MAX_HEADER_LEN`] bytes.
//! - The **type fingerprint** lets a reader tell "stored as another Rust type" (a miss to
//!   recompute) from "damaged" (an error) before decoding anything.
//! - The **key checksum** catches a store that hands back another key's bytes (a damaged
//!   index, a reused file): reading a value under a key it was not written for is
//!   [`Error::Corrupt`]. It only guards against accidents; a CRC is no defence against an
//!   attacker, the MAC is.
//!
//! # What the MAC does and does not prove
//!
//! With a MAC key ([`Registry::set_mac_key`](crate::Registry::set_mac_key)) the MAC covers
//! the header fields, the **full store key** and the payload, so a holder of the cache
//! directory but not the key can neither plant a value, nor extend an expiry, nor copy a
//! value from one key to another (`is_admin:root` to `is_admin:mallory`): each is
//! [`Error::Unauthenticated`].
//!
//! A MAC needs the whole payload to check. A header-only look ([`Header::peek`]) proves
//! nothing about authenticity, so anything that answers "is there a valid value?" (a
//! `contains`, an expiry check that decides whether to return a value) must read the whole
//! value and go through [`Registry::peek_value`](crate::Registry::peek_value) or
//! [`Registry::open_value`](crate::Registry::open_value) when the registry has a key.
//!
//! A MAC cannot prevent **replay**: someone with write access to the cache directory can
//! put back an *older* value that was once legitimately written under the *same* key (its
//! MAC is still valid), for example a value that has since been overwritten, or one whose
//! expiry has passed is still refused as expired, but an older non-expiring one is not.
//! What would prevent it is state the attacker cannot roll back: a revision counter per key
//! kept in a trusted store outside the cache directory and checked against
//! [`Header::revision`], or a MAC over a monotonic counter (or a whole-cache epoch) kept
//! outside the cache directory.

mod checksum;
mod read;
pub mod stream;
mod write;

use std::ops::Range;

/// A pipeline name as a header holds it: inline up to 46 bytes (every built-in pipeline
/// name, a dictionary id included), so parsing a header on a cache hit allocates nothing;
/// a longer name (up to 255 bytes) on the heap, which keeps [`Header`] small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PipelineName {
    Inline(arrayvec::ArrayString<46>),
    Heap(Box<str>),
}

impl PipelineName {
    pub(crate) fn new(name: &str) -> Self {
        match arrayvec::ArrayString::from(name) {
            Ok(inline) => PipelineName::Inline(inline),
            Err(_) => PipelineName::Heap(name.into()),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match self {
            PipelineName::Inline(name) => name,
            PipelineName::Heap(name) => name,
        }
    }
}

use crate::error::Error;

pub(crate) use checksum::Crc;
pub(crate) use read::open_view_checked;
pub use read::{open_view, payload, HeaderView};

pub(crate) use write::{begin, header_len, restamp_in_place, seal};

/// The magic bytes every envelope starts with.
pub const MAGIC: [u8; 4] = *b"CCHV";

/// Version 1: the first published layout (no type fingerprint, MAC not bound to the key).
pub const ENVELOPE_VERSION_1: u8 = 1;

/// Version 2: adds the type fingerprint and the key checksum, and binds the store key into
/// the MAC. Its checksums are CRC-32 (ISO-HDLC).
pub const ENVELOPE_VERSION_2: u8 = 2;

/// Version 3: the version-2 layout field for field, every checksum (header, payload, key
/// binding) a CRC-32C. The layout documented first on this module.
pub const ENVELOPE_VERSION_3: u8 = 3;

/// The envelope version this build writes and the newest it reads.
pub const CURRENT_VERSION: u8 = ENVELOPE_VERSION_3;

/// Bytes before the pipeline name in a version-1 header.
const FIXED_LEN_V1: usize = 45;
/// Bytes before the pipeline name in a version-2 header.
const FIXED_LEN_V2: usize = 57;
/// Length of the keyed BLAKE3 MAC.
pub const MAC_LEN: usize = 32;
const CRC_LEN: usize = 4;

/// The longest possible header of any version: read this many bytes (or the whole value, if
/// shorter) to be sure [`Header::peek`] has enough.
pub const MAX_HEADER_LEN: usize = FIXED_LEN_V2 + 255 + MAC_LEN + CRC_LEN;

const FLAG_EXPIRES: u8 = 1 << 0;
const FLAG_MAC: u8 = 1 << 1;
const KNOWN_FLAGS: u8 = FLAG_EXPIRES | FLAG_MAC;

/// The caller-chosen metadata written into an envelope.
///
/// ```
/// use cacher_formats::{type_fingerprint, EnvelopeMeta};
///
/// let meta = EnvelopeMeta {
///     created_ms: 1_700_000_000_000,
///     expires_ms: Some(1_700_000_060_000),
///     revision: 3,
///     type_fingerprint: Some(type_fingerprint("Vec<u32>")),
/// };
/// assert!(meta.is_expired_at(1_700_000_060_000));
/// assert!(!EnvelopeMeta::now().is_expired_at(0));
/// assert_eq!(EnvelopeMeta::now().with_type_fingerprint(7).type_fingerprint, Some(7));
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvelopeMeta {
    /// When the value was created, in unix milliseconds.
    pub created_ms: u64,
    /// When the value expires, in unix milliseconds; `None` never expires.
    pub expires_ms: Option<u64>,
    /// The revision number of the value under its key (0 for the first).
    pub revision: u64,
    /// A fingerprint of the value's Rust type ([`type_fingerprint`](crate::type_fingerprint)),
    /// or `None` when the writer did not record one. `Some(0)` is written as "not recorded"
    /// (0 is never a fingerprint) and reads back as `None`.
    pub type_fingerprint: Option<u64>,
}

impl EnvelopeMeta {
    /// Created now (system clock), never expiring, revision 0, no type fingerprint.
    pub fn now() -> Self {
        let created_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        EnvelopeMeta {
            created_ms,
            ..EnvelopeMeta::default()
        }
    }

    /// The same metadata with `fingerprint` recorded as the value's type.
    #[must_use]
    pub fn with_type_fingerprint(self, fingerprint: u64) -> Self {
        EnvelopeMeta {
            type_fingerprint: (fingerprint != 0).then_some(fingerprint),
            ..self
        }
    }

    /// Whether the value is expired at `now_ms` (expiry is inclusive: a value expiring at
    /// `t` is not returned at `t`).
    pub fn is_expired_at(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|at| now_ms >= at)
    }
}

/// A parsed envelope header. Obtained cheaply with [`Header::peek`] (no payload work, no
/// authenticity), or checked together with the payload by the registry's `open_value`,
/// `peek_value` and `decode_value*`.
///
/// ```
/// # #[cfg(feature = "json")]
/// # fn main() -> Result<(), cacher_formats::Error> {
/// use cacher_formats::{envelope::Header, type_fingerprint, EnvelopeMeta, Registry};
///
/// let registry = Registry::with_builtins();
/// let meta = EnvelopeMeta { created_ms: 10, expires_ms: Some(20), revision: 1, type_fingerprint: None }
///     .with_type_fingerprint(type_fingerprint("&str"));
/// let stored = registry.resolve("json")?.encode_value(b"greeting", &"hello", &meta)?;
///
/// let header = Header::peek(&stored)?;
/// assert_eq!(header.pipeline(), "json");
/// assert_eq!(header.expires_ms(), Some(20));
/// assert_eq!(header.type_fingerprint(), Some(type_fingerprint("&str")));
/// assert!(header.meta().is_expired_at(25));
/// # Ok(())
/// # }
/// # #[cfg(not(feature = "json"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    version: u8,
    meta: EnvelopeMeta,
    header_len: usize,
    payload_len: u64,
    payload_crc: u32,
    /// Checksum of the store key (version 2 and later).
    key_crc: Option<u32>,
    /// Inline (a name is at most 255 bytes): a header is parsed on every read.
    pipeline: PipelineName,
    mac: Option<[u8; MAC_LEN]>,
    /// A streamed envelope's front header ([`stream`]).
    stream: bool,
}

impl Header {
    /// How many bytes [`peek`](Header::peek) needs, read from the first 8 bytes of an
    /// envelope of any version (`None` when fewer are given or the magic is wrong). A store
    /// that reads values from files can read this much to check expiry.
    pub fn len_hint(prefix: &[u8]) -> Option<usize> {
        if prefix.len() < 8 || prefix[..4] != MAGIC {
            return None;
        }
        Some(usize::from(u16::from_le_bytes([prefix[6], prefix[7]])))
    }

    /// The envelope version the value was written with.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Created time, expiry, revision and type fingerprint.
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

    /// The fingerprint of the Rust type the value was written as, or `None` for a value
    /// written without one (every version-1 value, and writers that passed none).
    pub fn type_fingerprint(&self) -> Option<u64> {
        self.meta.type_fingerprint
    }

    /// Whether the header binds the value to the store key it was written under (version 2
    /// and later); a version-1 value is not bound and its key is not checked.
    pub fn is_key_bound(&self) -> bool {
        self.key_crc.is_some()
    }

    /// The full pipeline name the value was written with (e.g. `cbor+zstd:3`).
    pub fn pipeline(&self) -> &str {
        self.pipeline.as_str()
    }

    /// The format part of the pipeline name (e.g. `cbor`).
    pub fn format_name(&self) -> &str {
        let name = self.pipeline.as_str();
        name.split_once('+').map_or(name, |(format, _)| format)
    }

    /// The codec specs of the pipeline, in the order they were applied on write.
    pub fn codecs(&self) -> impl Iterator<Item = &str> {
        self.pipeline.as_str().split('+').skip(1)
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

    /// The CRC-32 this header's checksums are (by its magic and version).
    pub(crate) fn crc(&self) -> Crc {
        if self.stream {
            Crc::of_stream(self.version)
        } else {
            Crc::of_value(self.version)
        }
    }

    /// Checks that the value was written under `store_key` (version 2; accidents only, see
    /// the module docs). Version-1 values are not bound to a key and pass.
    pub(crate) fn check_key(&self, store_key: &[u8]) -> Result<(), Error> {
        match self.key_crc {
            Some(stored) if stored != self.crc().of(store_key) => Err(Error::corrupt(
                "the value was written under another key (key checksum mismatch)",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{begin, seal, EnvelopeMeta, Header, PipelineName};

    /// `out` (sealed under `b"the key"`) read as itself and as another key's, then every
    /// single-byte flip and every truncation of it: what a check must refuse or accept
    /// alike on two read paths.
    fn damaged_variants(out: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut variants = vec![(out.to_vec(), b"the key".to_vec())];
        variants.push((out.to_vec(), b"another key".to_vec()));
        for at in 0..out.len() {
            let mut flipped = out.to_vec();
            flipped[at] ^= 0x20;
            variants.push((flipped, b"the key".to_vec()));
            variants.push((out[..at].to_vec(), b"the key".to_vec()));
        }
        variants
    }

    /// The lent view refuses exactly what the owned path refuses (every single-byte flip and
    /// every truncation of a value, and another key), and reads the same fields otherwise.
    #[test]
    fn open_view_refuses_and_accepts_what_payload_and_the_key_check_do() {
        let meta = EnvelopeMeta {
            created_ms: 5,
            expires_ms: Some(9),
            revision: 2,
            type_fingerprint: Some(77),
        };
        for with_mac in [false, true] {
            let mut out = Vec::new();
            let header_len = begin(&mut out, "cbor", &meta, b"the key", with_mac);
            out.extend_from_slice(b"some payload bytes");
            seal(
                &mut out,
                header_len,
                b"the key",
                with_mac.then_some(&[3; 32]),
            );
            let owned = |bytes: &[u8], key: &[u8]| {
                let (h, p) = super::payload(bytes)?;
                h.check_key(key)?;
                Ok::<_, crate::Error>((h, p.to_vec()))
            };
            for (bytes, key) in &damaged_variants(&out) {
                match (owned(bytes, key), super::open_view(bytes, key)) {
                    (Ok((h, p)), Ok((v, q))) => {
                        assert_eq!(
                            (h.meta(), h.pipeline(), h.version()),
                            (v.meta(), v.pipeline(), v.version())
                        );
                        assert_eq!(h.is_key_bound(), v.is_key_bound());
                        assert_eq!(p, q);
                    }
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => panic!("owned {:?}, view {:?}", a.map(|_| ()), b.map(|_| ())),
                }
            }
        }
    }

    /// With and without a MAC key, the one-pass view a cache hit reads through refuses
    /// exactly what `Registry::open_value` refuses (every single-byte flip and truncation,
    /// another key's value, a MAC made with another key), with the same errors, and lends
    /// the same header fields and payload otherwise.
    #[test]
    fn open_value_view_checks_what_open_value_checks_mac_included() {
        let meta = EnvelopeMeta {
            created_ms: 5,
            expires_ms: Some(9),
            revision: 2,
            type_fingerprint: Some(77),
        };
        let plain = crate::Registry::with_builtins();
        let keyed = crate::Registry::with_builtins().with_mac_key([3; 32]);
        let other_mac = crate::Registry::with_builtins().with_mac_key([4; 32]);
        for writer in [&plain, &keyed, &other_mac] {
            let out = writer
                .resolve("raw")
                .unwrap()
                .encode_value_bytes(b"the key", b"some payload bytes", &meta)
                .unwrap();
            let variants = damaged_variants(&out);
            for reader in [&plain, &keyed] {
                for (bytes, key) in &variants {
                    match (
                        reader.open_value(key, bytes),
                        reader.open_value_view(key, bytes),
                    ) {
                        (Ok((h, p)), Ok((v, q))) => {
                            assert_eq!(
                                (h.meta(), h.pipeline(), h.version(), h.is_key_bound()),
                                (v.meta(), v.pipeline(), v.version(), v.is_key_bound())
                            );
                            assert_eq!(p, q);
                        }
                        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                        (a, b) => panic!("owned {:?}, view {:?}", a.map(|_| ()), b.map(|_| ())),
                    }
                }
            }
        }
    }

    #[test]
    fn pipeline_names_inline_or_on_the_heap_read_back_whole() {
        for len in [1, 45, 46, 47, 255] {
            let name = "x".repeat(len);
            assert_eq!(PipelineName::new(&name).as_str(), name);
            let mut out = Vec::new();
            let header_len = begin(&mut out, &name, &EnvelopeMeta::default(), b"k", false);
            out.extend_from_slice(b"payload");
            seal(&mut out, header_len, b"k", None);
            let header = Header::peek(&out).unwrap();
            assert_eq!(header.pipeline(), name, "a {len}-byte name");
            assert_eq!(header.format_name(), name);
        }
    }

    /// A hit answers the common names from a table without the UTF-8 check: the names it
    /// holds, names near them and others read back as written, and a name that is not UTF-8
    /// is still refused.
    #[test]
    fn the_lent_view_reads_every_pipeline_name_as_written_and_refuses_one_not_utf8() {
        let sealed = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            let header_len = begin(&mut out, name, &EnvelopeMeta::default(), b"k", false);
            edit(&mut out);
            out.extend_from_slice(b"payload");
            seal(&mut out, header_len, b"k", None);
            out
        };
        for name in [
            "cbor",
            "raw",
            "json",
            "pickle",
            "cbo",
            "cborr",
            "cbor+zstd:3",
            "x",
        ] {
            let out = sealed(name, &|_| {});
            let (view, payload) = super::open_view(&out, b"k").unwrap();
            assert_eq!((view.pipeline(), payload), (name, &b"payload"[..]));
        }
        // The first byte of "cbor" made 0xff, under a valid header CRC.
        let out = sealed("cbor", &|out| out[super::FIXED_LEN_V2] = 0xff);
        let err = super::open_view(&out, b"k").unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }
}
