//! The `LmdbStore` layout: its databases, its format record, and how one key and value become
//! one LMDB entry and back (the [store docs](super::store) draw it).
//!
//! Everything here is a pure function of bytes, so the decoder is fuzzed on its own
//! ([`fuzz_entry`]) and every refusal is a [`Refusal`] the store turns into an error with its
//! path and key.

use crate::le::{u32_at, u64_at};
use crate::version::Refusal;

/// The name of the data database.
pub(super) const DATA_DB: &str = "cacher-store";
/// The name of the meta database.
pub(super) const META_DB: &str = "cacher-store-meta";
/// The meta key holding magic and version.
pub(super) const FORMAT_KEY: &[u8] = b"format";
/// The magic at the start of the format record.
pub(super) const MAGIC: &[u8; 8] = b"cacherLM";
/// Version 1: the tagged key layout; values stored bare. Still read, and still written to
/// stores created as version 1.
pub(super) const V1: u32 = 1;
/// Version 2: as version 1, and every LMDB value starts with a CRC-32 of its LMDB key and the
/// rest of the value, checked on every read.
pub(super) const V2: u32 = 2;
/// The newest version: what a new store is created with.
pub(super) const FORMAT_VERSION: u32 = V2;

/// Tag of a key stored as is.
pub(super) const TAG_PLAIN: u8 = 0x00;
/// Tag of a key stored under its blake3 hash.
pub(super) const TAG_HASHED: u8 = 0x01;
/// The longest key LMDB accepts (without heed's `longer-keys` feature).
pub(super) const LMDB_MAX_KEY: usize = 511;
/// The longest key stored as is: one byte goes to the tag.
pub(super) const MAX_PLAIN_KEY: usize = LMDB_MAX_KEY - 1;
/// The length of a hashed key's stored form: the tag and a 32-byte blake3 hash.
const HASHED_KEY_LEN: usize = 33;
/// The length of a long key's header in its LMDB value.
pub(super) const LONG_HEADER: usize = 8;
/// The length of the version-2 checksum field.
pub(super) const CRC_LEN: usize = 4;

/// The most bytes one LMDB value can hold here. LMDB writes a value's overflow pages with one
/// `pwrite`, which Linux cuts at `0x7fff_f000` bytes; LMDB takes the short write for an I/O
/// error (`EIO`) at commit. One value's pages (a 16-byte page header, then the value, rounded
/// up to whole pages of up to 64 KiB) must stay within that: 2 GiB − 64 KiB − 16 bytes.
pub(super) const MAX_LMDB_VALUE: usize = 0x7fff_0000 - 16;

/// The value layout of one store: which version its format record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// Values stored bare (no checksum).
    V1,
    /// Values behind a CRC-32.
    V2,
}

impl Layout {
    /// The layout version number.
    pub(super) fn version(self) -> u32 {
        match self {
            Layout::V1 => V1,
            Layout::V2 => V2,
        }
    }

    /// The format record naming this layout.
    pub(super) fn record(self) -> Vec<u8> {
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&self.version().to_le_bytes());
        record
    }

    /// Reads the format record.
    pub(super) fn from_record(raw: &[u8]) -> Result<Layout, Refusal> {
        let version = match raw.strip_prefix(&MAGIC[..]) {
            Some(rest) if rest.len() == 4 => u32_at(rest, 0),
            _ => None,
        }
        .ok_or_else(|| Refusal::corrupt(format!("bad format record ({} bytes)", raw.len())))?;
        match version {
            V1 => Ok(Layout::V1),
            V2 => Ok(Layout::V2),
            0 => Err(Refusal::corrupt("format version 0")),
            newer => Err(Refusal::Newer(newer)),
        }
    }

    /// The bytes before the key part of every value: the checksum, in version 2.
    pub(super) fn crc_len(self) -> usize {
        match self {
            Layout::V1 => 0,
            Layout::V2 => CRC_LEN,
        }
    }

    /// The bytes of an LMDB value around the caller's value: the checksum and, for a long
    /// key, its length and bytes.
    pub(super) fn overhead(self, key: &[u8]) -> usize {
        let long = if key.len() > MAX_PLAIN_KEY {
            LONG_HEADER + key.len()
        } else {
            0
        };
        self.crc_len() + long
    }

    /// The longest value `key` can hold in this layout.
    pub(super) fn max_value(self, key: &[u8]) -> usize {
        MAX_LMDB_VALUE.saturating_sub(self.overhead(key))
    }

    /// The prefix written before the caller's value: the checksum field (zero until
    /// [`Layout::seal_prefix`]) and, for a long key, its length and bytes.
    pub(super) fn prefix(self, key: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; self.crc_len()];
        if key.len() > MAX_PLAIN_KEY {
            out.extend_from_slice(&(key.len() as u64).to_le_bytes());
            out.extend_from_slice(key);
        }
        out
    }

    /// The checksum state after the LMDB key `stored` and the part of `prefix` after the
    /// checksum field: feed it the caller's value, then [`Layout::seal_prefix`].
    pub(super) fn hasher(self, stored: &[u8], prefix: &[u8]) -> crc32fast::Hasher {
        let mut crc = fresh_crc();
        crc.update(stored);
        crc.update(&prefix[self.crc_len()..]);
        crc
    }

    /// Writes the finished checksum into `prefix` (version 2; nothing in version 1).
    pub(super) fn seal_prefix(self, prefix: &mut [u8], crc: crc32fast::Hasher) {
        if self == Layout::V2 {
            prefix[..CRC_LEN].copy_from_slice(&crc.finalize().to_le_bytes());
        }
    }

    /// The framing `put` writes before `value` under `key` (stored as `stored`), checksum
    /// sealed: the same bytes as [`Layout::prefix`] sealed by [`Layout::seal_prefix`], built on
    /// the stack (a put of a short key allocates nothing for it).
    #[inline]
    pub(super) fn framing<'k>(self, key: &'k [u8], stored: &[u8], value: &[u8]) -> Framing<'k> {
        let mut head = [0u8; CRC_LEN + LONG_HEADER];
        let crc_len = self.crc_len();
        let (head_len, long_key) = match key.len() > MAX_PLAIN_KEY {
            true => {
                head[crc_len..crc_len + LONG_HEADER]
                    .copy_from_slice(&(key.len() as u64).to_le_bytes());
                (crc_len + LONG_HEADER, key)
            }
            false => (crc_len, &[][..]),
        };
        if self == Layout::V2 {
            let mut crc = fresh_crc();
            crc.update(stored);
            if !long_key.is_empty() {
                // A short key's framing is the checksum field alone: nothing more to feed.
                crc.update(&head[crc_len..head_len]);
                crc.update(long_key);
            }
            crc.update(value);
            head[..CRC_LEN].copy_from_slice(&crc.finalize().to_le_bytes());
        }
        Framing {
            head,
            head_len,
            long_key,
        }
    }

    /// The whole LMDB value for `key` and `value`, as `put` writes it (the layout upgrade
    /// rewrites entries with it; tests plant entries with it).
    pub(super) fn encode(self, key: &[u8], value: &[u8]) -> Vec<u8> {
        let stored = StoredKey::new(key);
        let mut prefix = self.prefix(key);
        let mut crc = self.hasher(stored.bytes(), &prefix);
        crc.update(value);
        self.seal_prefix(&mut prefix, crc);
        prefix.extend_from_slice(value);
        prefix
    }

    /// Decodes the LMDB value `raw` stored under the LMDB key `stored`: checks the checksum
    /// (version 2) and splits a long key's entry. Does not check a long key against its hash
    /// (a lookup compares the full key instead; see [`Layout::decode_entry`]).
    pub(super) fn decode<'s, 'a>(
        self,
        stored: &'s [u8],
        raw: &'a [u8],
    ) -> Result<Entry<'s, 'a>, Refusal> {
        self.decode_as(stored, raw, Check::Crc)
    }

    /// [`Layout::decode`], checking the CRC or not (`check`); the framing (the checksum
    /// field's presence, a long key's header and length) is checked either way, so an
    /// unchecked read never reaches outside the LMDB value nor hands out another key's value.
    #[inline(always)]
    fn decode_as<'s, 'a>(
        self,
        stored: &'s [u8],
        raw: &'a [u8],
        check: Check,
    ) -> Result<Entry<'s, 'a>, Refusal> {
        let body = match self {
            Layout::V1 => raw,
            Layout::V2 if check == Check::Framing => raw.get(CRC_LEN..).ok_or_else(|| {
                Refusal::corrupt(format!(
                    "a {}-byte value is shorter than its checksum",
                    raw.len()
                ))
            })?,
            Layout::V2 => {
                let (found, body) = match (u32_at(raw, 0), raw.get(CRC_LEN..)) {
                    (Some(found), Some(body)) => (found, body),
                    _ => {
                        return Err(Refusal::corrupt(format!(
                            "a {}-byte value is shorter than its checksum",
                            raw.len()
                        )))
                    }
                };
                let mut crc = fresh_crc();
                crc.update(stored);
                crc.update(body);
                let computed = crc.finalize();
                if computed != found {
                    return Err(Refusal::corrupt(format!(
                        "value checksum mismatch (stored {found:#010x}, computed {computed:#010x})"
                    )));
                }
                body
            }
        };
        match stored.split_first() {
            Some((&TAG_PLAIN, key)) if key.len() <= MAX_PLAIN_KEY => Ok(Entry {
                plain_key: Some(key),
                long_key: None,
                value: body,
            }),
            Some((&TAG_HASHED, hash)) if hash.len() == HASHED_KEY_LEN - 1 => {
                let (long_key, value) = split_long(body)?;
                Ok(Entry {
                    plain_key: None,
                    long_key: Some(long_key),
                    value,
                })
            }
            _ => Err(Refusal::corrupt(format!(
                "unknown key tag in stored key of {} bytes",
                stored.len()
            ))),
        }
    }

    /// Decodes an entry met by iteration back to the caller's key and value, checking a long
    /// key against the hash it is stored under.
    pub(super) fn decode_entry<'a>(
        self,
        stored: &'a [u8],
        raw: &'a [u8],
    ) -> Result<(&'a [u8], &'a [u8]), Refusal> {
        let entry = self.decode(stored, raw)?;
        match (entry.plain_key, entry.long_key) {
            (Some(key), _) => Ok((key, entry.value)),
            (None, Some(key)) => {
                if blake3::hash(key).as_bytes()[..] != stored[1..] {
                    return Err(Refusal::corrupt("long key does not match its hash"));
                }
                Ok((key, entry.value))
            }
            (None, None) => Err(Refusal::corrupt("entry without a key")),
        }
    }

    /// Looks up `key`'s value in the LMDB value `raw` found under its stored key: `None` when
    /// a long key's entry belongs to another key with the same hash.
    #[inline(always)]
    pub(super) fn lookup<'a>(
        self,
        key: &[u8],
        stored: &StoredKey,
        raw: &'a [u8],
        check: Check,
    ) -> Result<Option<&'a [u8]>, Refusal> {
        let entry = self.decode_as(stored.bytes(), raw, check)?;
        match entry.long_key {
            Some(full) if full != key => Ok(None),
            _ => Ok(Some(entry.value)),
        }
    }
}

/// A fresh CRC-32 state. `crc32fast::Hasher::new` detects the CPU's features at every call
/// (37 instructions in callgrind, half of the rest of a value's decode on a 100-byte read);
/// a state made once is copied instead.
#[inline]
fn fresh_crc() -> crc32fast::Hasher {
    static FRESH: std::sync::OnceLock<crc32fast::Hasher> = std::sync::OnceLock::new();
    FRESH.get_or_init(crc32fast::Hasher::new).clone()
}

/// The bytes of an LMDB value before the caller's value, as [`Layout::framing`] seals them:
/// the checksum field and a long key's length (`head`), then a long key's bytes.
pub(super) struct Framing<'k> {
    head: [u8; CRC_LEN + LONG_HEADER],
    head_len: usize,
    long_key: &'k [u8],
}

impl Framing<'_> {
    /// The checksum field and, for a long key, its length.
    pub(super) fn head(&self) -> &[u8] {
        &self.head[..self.head_len]
    }

    /// A long key's full bytes (empty for a short key).
    pub(super) fn long_key(&self) -> &[u8] {
        self.long_key
    }

    /// The framing's length in bytes.
    pub(super) fn len(&self) -> usize {
        self.head_len + self.long_key.len()
    }
}

/// How much of an LMDB value a read checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Check {
    /// The CRC over the key and the whole value (layout 2), and the framing: every checked
    /// read path.
    Crc,
    /// Only the framing (lengths, a long key's full bytes): the named unchecked reads, for
    /// callers whose bytes carry their own checksum.
    Framing,
}

/// One decoded LMDB value.
#[derive(Debug)]
pub(super) struct Entry<'s, 'a> {
    /// The caller's key, for a key stored as is (it is the LMDB key less its tag).
    pub(super) plain_key: Option<&'s [u8]>,
    /// The full key kept beside the value, for a key stored under its hash.
    pub(super) long_key: Option<&'a [u8]>,
    /// The caller's value.
    pub(super) value: &'a [u8],
}

/// Splits a long key's value body into the full key and the value.
fn split_long(body: &[u8]) -> Result<(&[u8], &[u8]), Refusal> {
    let key_len = u64_at(body, 0)
        .ok_or_else(|| Refusal::corrupt("long-key entry shorter than its header"))?;
    let rest = &body[LONG_HEADER..];
    match usize::try_from(key_len) {
        Ok(n) if n <= rest.len() && n > MAX_PLAIN_KEY => Ok(rest.split_at(n)),
        _ => Err(Refusal::corrupt(format!(
            "long-key entry claims a {key_len}-byte key in {} bytes",
            rest.len()
        ))),
    }
}

/// A key as stored in LMDB: the tag and either the key or its hash, on the stack for keys up
/// to [`INLINE_KEY`] bytes (every read builds one, so it is neither zeroed at LMDB's full
/// 511 bytes nor allocated for the short keys caches use).
pub(super) struct StoredKey {
    inline: [u8; INLINE_KEY],
    len: usize,
    /// The stored form of a plain key too long for `inline`; empty (no allocation) otherwise.
    spilled: Vec<u8>,
}

/// The longest stored key (tag included) kept on the stack; a hashed key (33 bytes) always is.
const INLINE_KEY: usize = 64;

impl StoredKey {
    #[inline]
    pub(super) fn new(key: &[u8]) -> Self {
        let mut inline = [0u8; INLINE_KEY];
        if key.len() > MAX_PLAIN_KEY {
            inline[0] = TAG_HASHED;
            inline[1..HASHED_KEY_LEN].copy_from_slice(blake3::hash(key).as_bytes());
            return StoredKey {
                inline,
                len: HASHED_KEY_LEN,
                spilled: Vec::new(),
            };
        }
        if key.len() < INLINE_KEY {
            inline[0] = TAG_PLAIN;
            inline[1..=key.len()].copy_from_slice(key);
            return StoredKey {
                inline,
                len: key.len() + 1,
                spilled: Vec::new(),
            };
        }
        let mut spilled = Vec::with_capacity(key.len() + 1);
        spilled.push(TAG_PLAIN);
        spilled.extend_from_slice(key);
        StoredKey {
            inline,
            len: spilled.len(),
            spilled,
        }
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            &self.spilled
        }
    }

    pub(super) fn is_hashed(&self) -> bool {
        self.bytes()[0] == TAG_HASHED
    }
}

/// The body of the LMDB value-layout fuzz target: decodes `stored`/`raw` in both layouts, as a
/// lookup and as iteration, and must never panic (the `lmdb` fuzz target and a proptest in the
/// normal suite call it).
#[cfg_attr(
    not(any(test, feature = "fuzzing")),
    expect(
        dead_code,
        reason = "called by the proptests and by fuzz/ (feature `fuzzing`)"
    )
)]
pub(crate) fn fuzz_entry(stored: &[u8], raw: &[u8]) {
    for layout in [Layout::V1, Layout::V2] {
        let _ = layout.decode(stored, raw);
        let _ = layout.decode_entry(stored, raw);
        let _ = Layout::from_record(raw);
        if stored.len() <= 4096 {
            let key = StoredKey::new(stored);
            for check in [Check::Crc, Check::Framing] {
                if let Ok(Some(value)) = layout.lookup(stored, &key, raw, check) {
                    assert!(value.len() <= raw.len());
                }
            }
        }
    }
}
